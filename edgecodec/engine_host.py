"""The host side of the decoder engine, as firmware does it: parse the stream, entropy-decode each frame's symbols
(the rANS / Rice decoders stay on the host), fill the engine's memory and start its programs, frame by frame:

Every program is compiled from the decoder's QONNX export (`quant.codec.qonnx_export`: the convolution stacks, and
the P-frame decoder with its ASE-GRU layers and warp as custom ops) by `hw.engine.from_qonnx`.

- every frame: z from the stream; the engine runs the hyper-synthesis (`intra_h_s` / `p_h_s`, a convolution
  program); its output codes give the entropy rows with which the host reads y;
- I-frame: the engine runs the synthesis (`intra_g_s`) with the reconstruction folded into its last layer
  (`program.pixel_output`): the frame's packed planes;
- P-frame: the host writes y_hat and the block vectors, and the engine runs the P-frame program
  (`hw.engine.frame_program`: warp, `p_from_latent`, both ASE-GRU layers, context, synthesis, reconstruction) of
  the frame's parity, which swaps h, pool sums and frame buffers.

Beside each memory image the integer decoder gives every map the program must write, and the frames are checked
against `decode` (the `edgecodec decode --mode int` frames) here. A run's inputs are the integer model's maps: a bench
that finds the RTL's outputs equal to them (code for code) has shown that the RTL, fed its own outputs, decodes the
same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from base.errors import EdgecodecError

KINDS = ("intra_h_s", "intra_g_s", "p_h_s", "p_frame")


@dataclass
class EngineRun:
    """One program on the engine: the frame, what it computes (KINDS), the memory image before it, the program's
    address, and the maps (address, codes (C, H, W), lanes, bits) it must leave in memory."""

    frame: int
    kind: str
    image: bytes
    program_addr: int
    expected: list


def _stack_run(frame: int, kind: str, layers: list, x: np.ndarray, out: np.ndarray, shape) -> EngineRun:
    """A convolution program (hw.engine.program.compile_stack) on input codes x; `out` its expected codes."""
    from hw.engine.program import compile_stack, load_input
    prog = compile_stack(layers, x.shape[1], x.shape[2], shape)
    load_input(prog, x, shape)
    full = np.zeros(prog.output_shape, dtype=np.int64)      # padded channels come out as zeros
    full[:prog.channels] = out
    return EngineRun(frame, kind, prog.image.to_bytes(), prog.program_addr,
                     [(prog.output_addr, full, shape.pe, shape.act_bits)])


def frame_runs(data: bytes, folder: Path, shape, hyper: bool = True,
               crop: tuple[int, int] | None = None) -> tuple[list[EngineRun], tuple]:
    """The engine runs that decode stream `data` (checkpoints in `folder`) on an engine of `shape`, in order; also
    the GRU units (hw.engine.gru_unit.GruSpec) the engine must be generated with. `hyper=False` leaves out the
    hyper-synthesis runs (the host then computes the rows itself, as `decode` does).

    `crop` = (h, w) of a latent: the runs decode the top-left h x w latent of every frame (16h x 16w pixels; z cut to
    its top-left ceil(h/4) x ceil(w/4)) as a video of its own, the integer model giving every expected map (a small
    real workload, e.g. for gate-level activity); the frames are not compared with `decode --mode int` then."""
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.bitstream import FRAME_I, parse_stream
    from edgecodec.codec.coder import Coder, decode, padded_size
    from edgecodec.entropy import FrameDecoder
    from hw.engine.frame_program import gru_specs, p_frame_program_from_parts
    from hw.engine.from_qonnx import layers_from_qonnx, p_frame_from_qonnx
    from hw.engine.program import pixel_output
    from quant.codec.int_codec import IntCodec, pack_planes, rows_from_codes, unpack_planes, warp_int
    from quant.codec.qonnx_export import export_p_frame, export_stack
    header, payloads = parse_stream(data)
    ck = ckpt.load(folder, header.quality)
    _, want = decode(data, folder)
    coder = Coder(ck, "int", header.entropy)
    hp, wp = padded_size(header)
    latent = crop or (hp // 16, wp // 16)

    def cut(x: torch.Tensor, scale: int = 1) -> torch.Tensor:
        return x if crop is None else x[..., :-(-crop[0] // scale), :-(-crop[1] // scale)]
    icodec = IntCodec(ck["int"])
    nets = ck["int"]["nets"]
    wbits = int(ck["int"]["weight_bits"])
    # every program is compiled from the decoder's QONNX export (hw.engine.from_qonnx), not from the checkpoint
    plan = p_frame_program_from_parts(p_frame_from_qonnx(export_p_frame(ck["int"], latent, wbits)), latent, shape)

    def stack_layers(name: str, height: int, width: int) -> list:
        return layers_from_qonnx(export_stack(nets[name], height, width, wbits, name))[0]
    z_shape = (1, coder.net.shape.hyper, hp // 64, wp // 64)
    runs, hs, ref, parity = [], None, None, 0

    def frame_map(packed: torch.Tensor) -> np.ndarray:
        full = np.zeros(plan.frame_shape, dtype=np.int64)     # zero channels up to a multiple of PE
        full[:6] = packed[0].numpy()
        return full

    def check(t: int, recon: torch.Tensor) -> None:
        if crop is not None:
            return
        for got, plane in zip(unpack_planes(recon), want):
            if not np.array_equal(got.numpy()[:plane.shape[1], :plane.shape[2]].astype(np.uint8), plane[t]):
                raise EdgecodecError(f"engine host: frame {t} of the integer model differs from decode --mode int")

    def read_y(t: int, dec, prefix: str) -> torch.Tensor:
        """z from the stream, the hyper-synthesis (a run on the engine), y with the rows its codes give."""
        z_hat = coder._read_z(dec, coder.rows_z[prefix], z_shape)
        codes = icodec.nets[f"{prefix}_h_s"].run(z_hat)
        if hyper:
            z_run = cut(z_hat, 4)
            out = codes if crop is None else icodec.nets[f"{prefix}_h_s"].run(z_run)
            runs.append(_stack_run(t, f"{prefix}_h_s", stack_layers(f"{prefix}_h_s", *z_run.shape[2:]),
                                   z_run[0].numpy(), out[0].numpy(), shape))
        return torch.from_numpy(dec.read(rows_from_codes(codes, ck["int"]["thresholds"][prefix]).numpy()))

    for t, (kind, payload) in enumerate(payloads):
        dec = FrameDecoder(payload, coder.tables, coder.entropy)
        if kind == FRAME_I:
            y_hat = cut(read_y(t, dec, "intra"))
            dec.close()
            recon = icodec.intra_recon(y_hat)
            check(t, recon)
            g_s = stack_layers("intra_g_s", *y_hat.shape[2:])
            g_s[-1] = pixel_output(g_s[-1])        # the reconstruction (+128, clamp 0..255) folded into the last layer
            runs.append(_stack_run(t, "intra_g_s", g_s, y_hat[0].numpy(), recon[0].numpy(), shape))
            ref, hs, parity = recon, None, 0
            continue
        m_hat = cut(coder._read_motion(dec, hp, wp))
        y_hat = cut(read_y(t, dec, "p"))
        dec.close()
        warped = pack_planes(*warp_int(*unpack_planes(ref), m_hat[0]))
        res, new = icodec.inter_residual(y_hat, warped, hs)
        recon = (warped + res).clamp(0, 255)
        check(t, recon)
        plan.put_map(plan.y, y_hat[0].numpy(), shape)
        plan.put_vectors(m_hat[0].numpy())
        plan.put_map(plan.frames[parity], ref[0].numpy(), shape)
        expected = [(plan.warped, frame_map(warped), shape.pe, shape.act_bits),
                    (plan.frames[1 - parity], frame_map(recon), shape.pe, shape.act_bits)]
        for n, h in enumerate(new):
            prev = np.zeros_like(h) if hs is None else hs[n]
            plan.put_map(plan.h[n][parity], prev, shape)
            plan.put_sums(plan.sums[n][parity], prev)
            expected += [(plan.h[n][1 - parity], h, shape.pe, shape.act_bits),
                         (plan.sums[n][1 - parity], h.reshape(h.shape[0], -1).sum(axis=1).reshape(-1, 1, 1), 1, 32)]
        runs.append(EngineRun(t, "p_frame", plan.image.to_bytes(), plan.programs[parity], expected))
        hs, ref, parity = new, recon, 1 - parity
    return runs, gru_specs(ck["int"], latent)


def p_frame_runs(data: bytes, folder: Path, shape) -> tuple[list[EngineRun], tuple]:
    """Only the P-frame programs of `frame_runs` (the host computes the rows; I-frames come from the integer model)."""
    runs, specs = frame_runs(data, folder, shape, hyper=False)
    return [r for r in runs if r.kind == "p_frame"], specs
