"""FINN (finn-plus) side by side: FINN's analytic estimates for the cell's convolutions, next to our cycles.

FINN has no GRU, squeeze-excite or LUT-gather hardware layers, so the whole-cell QONNX graph only converts
partly (`whole_cell` in the result lists what is left). For a like-for-like comparison the parts FINN does
support are exported as stand-alone QONNX models built from the trained cell's *own* Brevitas modules (same
weights, weight quantizers and activation quantizers) and pushed through the usual FINN recipe:

    ConvertQONNXtoFINN -> (input quantizer removed: the stream carries integer codes, as in our RTL)
    -> Streamline -> LowerConvsToMatMul -> Streamline -> Infer{ConvInpGen, VectorVectorActivation,
    QuantizedMatrixVectorActivation, Thresholding, ...} -> SpecializeLayers(fpgapart) -> folding
    -> AnnotateCycles + AnnotateResources("estimate")

* projector: the k x k depth-wise conv (+ its output requantizer, which FINN absorbs as thresholds) ->
  FMPadding + ConvolutionInputGenerator (depthwise) + VVAU with PE = hw.dw_parallel, SIMD = k*k (our
  projector multiplies all k*k taps of dw_parallel channels per cycle: k*k*dw_parallel multipliers).
* gates: the six 1x1 gate convolutions Wz, Wr, W (on x~) and Uz, Ur, U (on h~), each an MVAU with
  PE = hw.pe, SIMD = hw.simd. Our array has PE x SIMD multipliers per matrix, six matrices working on the
  same beat, so six MVAUs running concurrently in a FINN dataflow pipeline have the same multiplier count
  and the same cycles per frame.

Nothing here runs Vivado/Vitis: the numbers are FINN's analytic models (`get_exp_cycles`,
`lut/bram/uram/dsp_estimation`) for a Xilinx part (ECP5 has no FINN part; default xc7z020clg400-1).
See docs/finn.md.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections import Counter
from pathlib import Path

from base.errors import EdgecodecError

DEFAULT_FPGAPART = "xc7z020clg400-1"
GATE_MATS = (("w", "z"), ("u", "z"), ("w", "r"), ("u", "r"), ("w", "n"), ("u", "n"))
_HW_DOMAIN = "finn.custom_op.fpgadataflow"
_RES_KEYS = {"LUT": "finn_lut", "BRAM_18K": "finn_bram18", "URAM": "finn_uram", "DSP": "finn_dsp"}


# ---------------------------------------------------------------- FINN import
def finn_modules() -> dict:
    """Import the parts of finn-plus this module uses; EdgecodecError when finn-plus is missing or broken."""
    try:
        import finn
        from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
        from finn.transformation.fpgadataflow.annotate_resources import AnnotateResources
        from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
        from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import InferDuplicateStreamsLayer
        from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
            InferElementwiseBinaryOperation)
        from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer
        from finn.transformation.fpgadataflow.convert_to_hw.lookup import InferLookupLayer
        from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
            InferQuantizedMatrixVectorActivation)
        from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
        from finn.transformation.fpgadataflow.convert_to_hw.vector_vector_activation import (
            InferVectorVectorActivation)
        from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
        from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
        from finn.transformation.streamline import Streamline
        from finn.transformation.streamline.absorb import (AbsorbConsecutiveTransposes,
                                                           AbsorbTransposeIntoMultiThreshold)
    except Exception as e:  # ImportError, or a broken install raising anything at import time
        raise EdgecodecError(
            f"finn-plus is not importable ({type(e).__name__}: {e}). Install it into the venv with "
            "`pip install --no-deps finn-plus==1.6.1 scipy` (FINN's fpgadataflow custom ops import scipy); "
            "see docs/finn.md") from e
    try:
        from importlib.metadata import version
        ver = version("finn-plus")
    except Exception:
        ver = getattr(finn, "__version__", "unknown")
    return dict(version=ver, AnnotateCycles=AnnotateCycles, AnnotateResources=AnnotateResources,
                InferConvInpGen=InferConvInpGen, InferDuplicateStreamsLayer=InferDuplicateStreamsLayer,
                InferElementwiseBinaryOperation=InferElementwiseBinaryOperation,
                InferGlobalAccPoolLayer=InferGlobalAccPoolLayer, InferLookupLayer=InferLookupLayer,
                InferQuantizedMatrixVectorActivation=InferQuantizedMatrixVectorActivation,
                InferThresholdingLayer=InferThresholdingLayer,
                InferVectorVectorActivation=InferVectorVectorActivation, SpecializeLayers=SpecializeLayers,
                ConvertQONNXtoFINN=ConvertQONNXtoFINN, Streamline=Streamline,
                AbsorbConsecutiveTransposes=AbsorbConsecutiveTransposes,
                AbsorbTransposeIntoMultiThreshold=AbsorbTransposeIntoMultiThreshold)


@contextlib.contextmanager
def _quiet():
    """FINN/qonnx/Brevitas print and warn a lot; keep the caller's output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- our analytic cycles
def ours_projector_cycles(channels: int, height: int, width: int, kernel: int, dw_parallel: int) -> int:
    """Cycles per frame of hw.rtl.dwconv.DWConvResidual (the same formula, without building it)."""
    from hw.rtl.dwconv import cycles_per_frame
    return cycles_per_frame(channels, height, width, kernel, dw_parallel)


def ours_gate_cycles(channels: int, height: int, width: int, pe: int, simd: int) -> int:
    """Gate MAC bound of hw.rtl.gru_datapath: C^2/(PE*SIMD) cycles per pixel, the six matrices in parallel."""
    return height * width * (channels // pe) * (channels // simd)


def finn_vvau_cycles(channels: int, height: int, width: int, kernel: int, pe: int, simd: int) -> int:
    """FINN's VVAU model: C * k*k / (PE * SIMD) cycles per output pixel."""
    return int(channels * kernel * kernel / pe / simd * height * width)


def finn_mvau_cycles(mh: int, mw: int, pixels: int, pe: int, simd: int) -> int:
    """FINN's MVAU model: (MH/PE) * (MW/SIMD) cycles per input vector."""
    return (mh // pe) * (mw // simd) * pixels


# ---------------------------------------------------------------- stand-alone Brevitas models
def _standalone_modules(cell):
    """(name, torch module, in-channels) of the parts FINN supports, sharing the trained cell's modules."""
    from torch import nn

    class Projector(nn.Module):
        """x codes -> k x k depth-wise conv + bias -> x' requantizer (the residual add is left out)."""

        def __init__(self, c):
            super().__init__()
            self.x_q, self.conv, self.out_q = c.x_q, c.proj.conv, c.proj.out_q

        def forward(self, x):
            return self.out_q(self.conv(self.x_q(x)))

    class Gate(nn.Module):
        """x~ (or h~) codes -> one 1x1 gate conv; the accumulator leaves unquantized (MVAU noActivation)."""

        def __init__(self, in_q, conv):
            super().__init__()
            self.in_q, self.conv = in_q, conv

        def forward(self, x):
            return self.conv(self.in_q(x))

    mods = [("projector", Projector(cell), "dw")]
    for side, g in GATE_MATS:
        in_q = cell.xt_q if side == "w" else cell.ht_q
        mods.append((f"gate_{side.upper()}{g}", Gate(in_q, getattr(cell, side)[g]), "mat"))
    return mods


# ---------------------------------------------------------------- FINN recipe
def _fix_scalar_quant_params(model):
    """qonnx ExtractBiasFromConv reshapes a Quant's zero-point/scale unless its shape is exactly (1,); Brevitas
    exports them as 0-d tensors, so give them shape (1,) (same value)."""
    for n in model.graph.node:
        if n.op_type == "Quant":
            for i in (1, 2):
                v = model.get_initializer(n.input[i])
                if v is not None and v.shape == ():
                    model.set_initializer(n.input[i], v.reshape(1))
    return model


def _strip_input_quant(model):
    """Our RTL streams integer codes, so drop the MultiThreshold (+ sign offset Add) FINN made of each graph
    input's quantizer and declare the input as INT<bits>; the scale Mul that follows streamlines away."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import RemoveUnusedTensors

    g = model.graph
    for inp in [i.name for i in g.input]:
        mt = model.find_consumer(inp)
        if mt is None or mt.op_type != "MultiThreshold":
            continue
        odt = DataType[getCustomOp(mt).get_nodeattr("out_dtype")]
        bits, last, dt = odt.bitwidth(), mt, odt
        nxt = model.find_consumer(mt.output[0])
        if nxt is not None and nxt.op_type == "Add" and model.get_initializer(nxt.input[1]) is not None:
            off = float(model.get_initializer(nxt.input[1]).reshape(-1)[0])
            if off != -(2 ** (bits - 1)):
                raise EdgecodecError(f"input quantizer of {inp}: unexpected offset {off} for {bits}-bit codes")
            last, dt = nxt, DataType[f"INT{bits}"]
        for c in model.find_consumers(last.output[0]):
            for k, name in enumerate(c.input):
                if name == last.output[0]:
                    c.input[k] = inp
        if last is not mt:
            g.node.remove(last)
        g.node.remove(mt)
        model.set_tensor_datatype(inp, dt)
    return model.transform(RemoveUnusedTensors())


def _to_hw(model, fm, log: list, whole: bool = False):
    """Streamline and convert to HW layers. Each step is tried; a failing step is logged, not fatal."""
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    steps = [("Streamline", fm["Streamline"]())]
    if whole:  # scales feeding several consumers (x~, h~ feed three convs each) must cross the fork first
        from finn.transformation.streamline.reorder import MoveLinearPastEltwiseAdd, MoveLinearPastFork
        steps += [("MoveLinearPastFork", MoveLinearPastFork()),
                  ("MoveLinearPastEltwiseAdd", MoveLinearPastEltwiseAdd()), ("Streamline", fm["Streamline"]()),
                  ("MoveLinearPastFork", MoveLinearPastFork()), ("Streamline", fm["Streamline"]())]
    steps += [("LowerConvsToMatMul", LowerConvsToMatMul()),
             ("AbsorbTransposeIntoMultiThreshold", fm["AbsorbTransposeIntoMultiThreshold"]()),
             ("Streamline", fm["Streamline"]()), ("InferDataLayouts", InferDataLayouts()),
             ("InferConvInpGen", fm["InferConvInpGen"]()),
             ("InferVectorVectorActivation", fm["InferVectorVectorActivation"]()),
             ("InferQuantizedMatrixVectorActivation", fm["InferQuantizedMatrixVectorActivation"]()),
             ("InferThresholdingLayer", fm["InferThresholdingLayer"]())]
    if whole:
        steps += [("InferGlobalAccPoolLayer", fm["InferGlobalAccPoolLayer"]()),
                  ("InferLookupLayer", fm["InferLookupLayer"]()),
                  ("InferElementwiseBinaryOperation", fm["InferElementwiseBinaryOperation"]()),
                  ("InferDuplicateStreamsLayer", fm["InferDuplicateStreamsLayer"]())]
    steps += [("AbsorbConsecutiveTransposes", fm["AbsorbConsecutiveTransposes"]())]
    for name, t in steps:
        try:
            with _quiet():
                model = model.transform(t)
                model = model.transform(InferShapes()).transform(InferDataTypes())
        except Exception as e:
            log.append(f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return model.transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())


def _is_hw(node) -> bool:
    return node.domain.startswith(_HW_DOMAIN)


def _set_folding(model, pe: int, simd: int, dw_pe: int, dw_simd: int):
    """Our folding on FINN's nodes; the depth-wise SWG follows its VVAU as FINN's SetFolding does."""
    from qonnx.custom_op.registry import getCustomOp

    for n in model.graph.node:
        if not _is_hw(n):
            continue
        inst = getCustomOp(n)
        if n.op_type.startswith("VVAU"):
            inst.set_nodeattr("PE", dw_pe)
            inst.set_nodeattr("SIMD", dw_simd)
            swg = model.find_producer(n.input[0])
            if swg is not None and swg.op_type.startswith("ConvolutionInputGenerator"):
                s = getCustomOp(swg)
                s.set_nodeattr("SIMD", dw_pe)
                if swg.op_type.endswith("_rtl"):
                    s.set_nodeattr("parallel_window", int(dw_simd > 1))
            fmp = model.find_producer(swg.input[0]) if swg is not None else None
            if fmp is not None and fmp.op_type.startswith("FMPadding"):
                getCustomOp(fmp).set_nodeattr("SIMD", dw_pe)
        elif n.op_type.startswith("MVAU"):
            inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
    return model


def _estimates(model, fm, fpgapart: str) -> list[dict]:
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth

    with _quiet():  # as FINN's step_minimize_bit_width: weight and accumulator widths from the actual weights
        model = model.transform(MinimizeWeightBitWidth()).transform(MinimizeAccumulatorWidth())
        model = model.transform(fm["AnnotateCycles"]())
        model = model.transform(fm["AnnotateResources"]("estimate", fpgapart))
    rows = []
    for n in model.graph.node:
        if not _is_hw(n):
            continue
        inst = getCustomOp(n)
        res = inst.node_res_estimation(fpgapart)
        attrs = {a.name for a in n.attribute}
        row = {"finn_node": n.name, "finn_op": n.op_type,
               "pe": inst.get_nodeattr("PE") if "PE" in attrs else None,
               "simd": inst.get_nodeattr("SIMD") if "SIMD" in attrs else None,
               "finn_cycles": int(inst.get_nodeattr("cycles_estimate"))}
        for k, dst in _RES_KEYS.items():
            row[dst] = float(res.get(k, 0))
        if n.op_type.startswith(("MVAU", "VVAU")):
            row["res_type"] = inst.get_nodeattr("resType")
            row["no_activation"] = int(inst.get_nodeattr("noActivation"))
            row["weight_dtype"] = inst.get_input_datatype(1).name
            row["input_dtype"] = inst.get_input_datatype(0).name
            if row["no_activation"] == 0:  # FINN's LUT model without the threshold memory and comparators
                inst.set_nodeattr("noActivation", 1)
                row["finn_lut_without_thresholds"] = float(inst.lut_estimation(fpgapart))
                inst.set_nodeattr("noActivation", 0)
            row["acc_dtype"] = inst.get_accumulator_datatype().name if hasattr(inst, "get_accumulator_datatype") \
                else inst.get_nodeattr("accDataType")
        rows.append(row)
    return rows, model


def _convert(path_in: Path, out_dir: Path, stem: str, fm, fpgapart: str, impl: str, res_type: str,
             whole: bool = False):
    """QONNX file -> FINN HW graph (specialized). Returns (model, log)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    log: list[str] = []
    model = _fix_scalar_quant_params(ModelWrapper(str(path_in)))
    try:
        with _quiet():
            model = model.transform(fm["ConvertQONNXtoFINN"]())
    except Exception as e:
        raise EdgecodecError(f"FINN could not read {path_in} (ConvertQONNXtoFINN): {type(e).__name__}: {e}") from e
    model = _strip_input_quant(model)
    model.save(str(out_dir / f"{stem}.finn.onnx"))
    model = _to_hw(model, fm, log, whole)
    model.save(str(out_dir / f"{stem}.hw.onnx"))
    for n in model.graph.node:
        if _is_hw(n):
            inst = getCustomOp(n)
            if n.op_type in ("MVAU", "VVAU"):
                inst.set_nodeattr("preferred_impl_style", impl)
                inst.set_nodeattr("resType", res_type)
    try:
        with _quiet():
            model = model.transform(fm["SpecializeLayers"](fpgapart))
    except Exception as e:
        log.append(f"SpecializeLayers failed: {type(e).__name__}: {e}")
    return model, log


# ---------------------------------------------------------------- entry point
def _check_cell(cell):
    if not all(hasattr(cell, a) for a in ("proj", "w", "u", "xt_q", "ht_q", "x_q")):
        raise EdgecodecError(f"finn_compare: {type(cell).__name__} is not a quant.cell.qat.QuantASEGRUCell")
    return cell


def finn_compare(cell, height: int, width: int, hw, out_dir, *, fpgapart: str = DEFAULT_FPGAPART,
                 measured_step_cycles: int | None = None, whole_cell_qonnx: Path | None = None,
                 impl_style: str = "hls", res_type: str = "lut", whole_cell: bool = True) -> dict:
    """FINN's analytic estimates for the cell's depth-wise conv and gate convs, next to our analytic cycles.

    Parameters
    ----------
    cell : the QAT cell (quant.cell.qat.QuantASEGRUCell).
    height, width : feature map of the layer.
    hw : HwConfig (pe, simd, dw_parallel) -> FINN MVAU PE/SIMD and VVAU PE (VVAU SIMD = k*k).
    out_dir : the intermediate ONNX files go here (<part>.qonnx.onnx, .finn.onnx, .hw.onnx, .folded.onnx).
    fpgapart : Xilinx part for FINN's estimates (FINN has no Lattice parts).
    measured_step_cycles : our measured cycles per cell step (RTL simulation), reported next to FINN's.
    whole_cell_qonnx : the whole-cell QONNX export to push through FINN; exported here when None.
    impl_style : "hls" (default: FINN's LUT estimate models exist for HLS MVAU/VVAU) or "rtl".
    res_type : "lut" or "dsp" multipliers in FINN's MVAU/VVAU estimate.
    whole_cell : also push the whole-cell graph through FINN (about 45 s); `whole_cell` is None otherwise.
    """
    import torch

    from quant.export import export_module

    t0 = time.time()
    fm = finn_modules()
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise EdgecodecError(f"finn_compare: {name} must be a positive int, got {v!r}")
    if impl_style not in ("hls", "rtl"):
        raise EdgecodecError(f"finn_compare: impl_style must be 'hls' or 'rtl', got {impl_style!r}")
    if res_type not in ("lut", "dsp", "auto"):
        raise EdgecodecError(f"finn_compare: res_type must be 'lut', 'dsp' or 'auto', got {res_type!r}")
    cell = _check_cell(cell)
    C = int(cell.channels)
    k = int(cell.proj.conv.kernel_size[0])
    gk = int(cell.w["z"].kernel_size[0])
    if gk != 1:
        raise EdgecodecError(f"finn_compare: gate kernel {gk} x {gk}; the hardware (and this comparison) needs 1 x 1")
    for name, v in (("pe", hw.pe), ("simd", hw.simd), ("dw_parallel", hw.dw_parallel)):
        if not isinstance(v, int) or v < 1 or C % v:
            raise EdgecodecError(f"finn_compare: hw.{name}={v!r} must be a positive divisor of channels={C}")
    if k > min(height, width):
        raise EdgecodecError(f"finn_compare: {k} x {k} kernel larger than the {height} x {width} feature map")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    ours_proj = ours_projector_cycles(C, height, width, k, hw.dw_parallel)
    ours_gate = ours_gate_cycles(C, height, width, hw.pe, hw.simd)
    layers, notes = [], []
    for name, module, kind in _standalone_modules(cell):
        with _quiet():
            export_module(module, (torch.zeros(1, C, height, width),), out / f"{name}.qonnx.onnx")
        model, log = _convert(out / f"{name}.qonnx.onnx", out, name, fm, fpgapart, impl_style, res_type)
        model = _set_folding(model, hw.pe, hw.simd, hw.dw_parallel, k * k)
        rows, model = _estimates(model, fm, fpgapart)
        model.save(str(out / f"{name}.folded.onnx"))
        remaining = sorted(n.op_type for n in model.graph.node if not _is_hw(n))
        core = [r for r in rows if r["finn_op"].startswith(("VVAU", "MVAU"))]
        if len(core) != 1:
            raise EdgecodecError(f"FINN did not turn {name} into one VVAU/MVAU (got {[r['finn_op'] for r in rows]}; "
                            f"remaining {remaining}; log {log}); see {out / (name + '.hw.onnx')}")
        for r in rows:
            r.update(name=name, block="projector" if kind == "dw" else "gates",
                     ours_cycles=(ours_proj if kind == "dw" else ours_gate) if r is core[0] else None)
            if r is core[0]:
                r["ours_ideal_cycles"] = (height * width * C // hw.dw_parallel) if kind == "dw" else ours_gate
                r["ours_multipliers"] = (k * k * hw.dw_parallel) if kind == "dw" else hw.pe * hw.simd
        layers.extend(rows)
        if remaining or log:
            notes.append(f"{name}: non-HW ops left around the FINN layers: {remaining}"
                         + (f"; {'; '.join(log)}" if log else ""))

    whole = _whole_cell(cell, C, height, width, out, fm, fpgapart, whole_cell_qonnx) if whole_cell else None

    def block_sum(block):
        rs = [r for r in layers if r["block"] == block]
        s = {dst: sum(r[dst] for r in rs) for dst in _RES_KEYS.values()}
        s["finn_cycles_max"] = max(r["finn_cycles"] for r in rs)
        return s

    blocks = {"projector": dict(block_sum("projector"), ours_cycles=ours_proj),
              "gates": dict(block_sum("gates"), ours_cycles=ours_gate)}
    finn_pipeline = max(r["finn_cycles"] for r in layers)
    notes += _explain(C, k, hw, ours_proj, ours_gate, fpgapart, impl_style, res_type)
    return {
        "finn_version": fm["version"], "fpgapart": fpgapart, "impl_style": impl_style, "res_type": res_type,
        "channels": C, "height": height, "width": width, "dw_kernel": k,
        "hw": {"pe": hw.pe, "simd": hw.simd, "dw_parallel": hw.dw_parallel},
        "layers": layers, "blocks": blocks,
        "cell_step": {"finn_pipeline_cycles": finn_pipeline, "ours_analytic_cycles": max(ours_proj, ours_gate),
                      "ours_measured_cycles": measured_step_cycles,
                      "note": "FINN: slowest node of a dataflow pipeline of the converted parts only "
                              "(projector and six gate MVAUs concurrent, SE/LUT/update not included)."},
        "whole_cell": whole, "notes": notes, "out_dir": str(out), "seconds": round(time.time() - t0, 2),
    }


def _whole_cell(cell, C, height, width, out: Path, fm, fpgapart, path) -> dict:
    """Push the whole-cell QONNX through the same recipe; count what became a FINN HW layer."""
    from qonnx.core.modelwrapper import ModelWrapper

    if path is None:
        from quant.export import export_cell
        path = out / "ase_gru_cell.qonnx.onnx"
        with _quiet():
            export_cell(cell, C, height, width, path)
    path = Path(path)
    if not path.exists():
        raise EdgecodecError(f"whole-cell QONNX {path} does not exist")
    src = ModelWrapper(str(path))
    src_ops = Counter(n.op_type for n in src.graph.node)
    model, log = _convert(path, out, "ase_gru_cell", fm, fpgapart, "hls", "lut", whole=True)
    model.save(str(out / "ase_gru_cell.specialized.onnx"))
    hw_nodes = [n for n in model.graph.node if _is_hw(n)]
    rest = Counter(n.op_type for n in model.graph.node if not _is_hw(n))
    return {"source": str(path), "qonnx_nodes": sum(src_ops.values()), "qonnx_ops": dict(src_ops),
            "nodes_total": len(model.graph.node), "nodes_converted_to_hw": len(hw_nodes),
            "hw_ops": dict(Counter(n.op_type for n in hw_nodes)),
            "remaining_ops": [f"{op} x{c}" for op, c in sorted(rest.items())], "log": log}


def _explain(C, k, hw, ours_proj, ours_gate, fpgapart, impl, res_type) -> list[str]:
    return [
        f"Estimates are FINN's analytic models for {fpgapart} (Xilinx 7-series LUT6, 18 Kb BRAM, DSP48E1); "
        "ours are ECP5 (LUT4, DP16KD, MULT18X18D) post-synthesis: compare orders of magnitude and "
        "scaling, not absolute counts. FINN's are estimates, not synthesis results.",
        f"Folding: FINN VVAU PE = hw.dw_parallel = {hw.dw_parallel} channels, SIMD = k*k = {k * k} taps "
        f"(ours multiplies k*k*dw_parallel = {k * k * hw.dw_parallel} products per cycle); MVAU PE = hw.pe = "
        f"{hw.pe} output channels, SIMD = hw.simd = {hw.simd} inputs, one MVAU per gate matrix (six, concurrent) "
        f"against our one array of 6 x PE x SIMD = {6 * hw.pe * hw.simd} multipliers.",
        f"Cycles: FINN counts MACs only (VVAU C*k*k/(PE*SIMD)*H*W, MVAU (C/PE)(C/SIMD)*H*W). Our projector "
        f"walks the padded frame, (H+pad)(W+pad) + H*W*(C/P-1) = {ours_proj}; our gate array's bound is "
        f"{ours_gate}, and the measured step adds the SE phase and the pipeline drain.",
        "Requantization: FINN absorbs scale, bias and rounding of an activation quantizer into per-channel "
        "thresholds (2^bits - 1 comparisons per output, thresholds in LUTRAM/BRAM); our RTL adds the bias "
        "into the accumulator and requantizes with a shift and round-half-even (docs/numerics.md), no tables.",
        "The gate MVAUs run with noActivation=1 (accumulator out): in the cell the two accumulators of z/r "
        "are summed before one requant + LUT, which FINN would need as ElementwiseAdd + Thresholding layers; "
        "the W gates' bias stays as an Add (listed as non-HW) while ours preloads it into the accumulator.",
        "The projector's residual x (ours: x << f_w preloaded in the accumulator) is left out of the FINN "
        "model; FINN would need DuplicateStreams + an elementwise add stream for it.",
        f"Multipliers: resType={res_type!r} ({impl} variant). With 'lut' FINN builds LUT multipliers (FINN-R "
        "cost model), with 'dsp' one DSP48 per PE; our ECP5 design maps products to MULT18X18D.",
    ]
