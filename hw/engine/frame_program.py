"""The P-frame program: the integer decoder's inter path (`quant.codec.int_codec.IntCodec.inter_residual` and the
reconstruction) as one layer program, and the memory plan a host driver fills in.

Per P-frame, after the host has written the latent y and the block vectors (both entropy-decoded from the stream):

    warp                   the reference frame, the vectors -> the warped frame
    p_from_latent (convs)  y -> x
    GRU layer 0, 1         x, h_{t-1}, sums -> h_t, sums (ping-pong buffers: program `parity` reads buffer parity)
    add (one input)        warped - 128 -> the context input
    p_context (convs)      -> ctx
    p_synth (convs)        concat(h_t of the last layer, ctx) -> residual
    add                    clamp(residual + warped, 0, 255) -> the reconstruction (the next reference)

Program `parity` reads frame buffer `parity` as the reference and writes the reconstruction to the other one.

Frames are packed maps (`quant.codec.int_codec.pack_planes`: 6 channels at half resolution, padded to a multiple
of PE with zero channels), in the engine's map words like every other map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from base.errors import EdgecodecError
from hw.engine.gru_unit import GruSpec
from hw.engine.layers import conv_layers
from hw.engine.program import (DESC_WORDS, FLAG_LAST, EngineShape, Image, _round_up, add_cycles, add_descriptor,
                               frame_channels, gru_cycles, gru_descriptor, map_words, stack_descriptors,
                               warp_cycles_frame, warp_descriptor)
from quant import fixed_point as fp
from quant.cell.params import CellParams


def gru_specs(int_state: dict, latent_hw: tuple[int, int]) -> tuple[GruSpec, ...]:
    """The decoder's ASE-GRU layers at the map size of a latent of `latent_hw` (x is twice the latent's size)."""
    return cell_specs([CellParams.from_json(c) for c in int_state["dec_cells"]], latent_hw)


def cell_specs(cells: list, latent_hw: tuple[int, int]) -> tuple[GruSpec, ...]:
    """GruSpecs of ASE-GRU layers `cells` (CellParams, in stack order) for a latent of `latent_hw`."""
    h, w = 2 * latent_hw[0], 2 * latent_hw[1]
    return tuple(GruSpec(p, h, w, 0 if n == 0 else cells[n - 1].f_h - p.f_x) for n, p in enumerate(cells))


def fold_problems(cells: list, context: int | None, shape: EngineShape) -> list[str]:
    """What keeps an engine of `shape` from running a decoder whose ASE-GRU layers are `cells` (CellParams) and
    whose context map has `context` channels (None: not checked), each naming the layer and the count ([] when it
    folds). A pruned checkpoint's widths are multiples of `prune.multiple` (docs/pruning.md): with multiple = PE they
    fold. The GRU units read and write C/PE map words a pixel (PE lanes, no padding lanes) and fold C by `gru_fold`;
    p_synth reads h_t and the context map concatenated, each a whole number of SIMD words."""
    out = []
    for n, p in enumerate(cells):
        c = p.channels
        if c % shape.pe:
            out.append(f"decoder ASE-GRU layer {n}: hidden size C = {c} is not a multiple of the array's PE {shape.pe} "
                       "(the lanes of a map word)")
        if c % shape.gru_fold:
            out.append(f"decoder ASE-GRU layer {n}: hidden size C = {c} is not a multiple of the GRU units' folding "
                       f"{shape.gru_fold} (--gru-pe)")
    if context is not None and context % shape.simd:
        out.append(f"p_synth: its second input, p_context's {context} output channels, is not a multiple of the "
                   f"array's SIMD {shape.simd} (the concatenated input's words)")
    return out


def decoder_fold_problems(int_state: dict, shape: EngineShape) -> list[str]:
    """`fold_problems` of a checkpoint's integer decoder (checkpoint["int"])."""
    cells = [CellParams.from_json(c) for c in int_state["dec_cells"]]
    synth = conv_layers(int_state["nets"]["p_synth"]["layers"])[0]
    return fold_problems(cells, synth.cin - cells[-1].channels, shape)


def check_fold(int_state: dict, shape: EngineShape, what: str = "engine") -> None:
    """Raise EdgecodecError naming every layer of the checkpoint's decoder an engine of `shape` cannot fold."""
    problems = decoder_fold_problems(int_state, shape)
    if problems:
        raise EdgecodecError(f"{what}: the checkpoint's decoder does not fold onto a PE {shape.pe} x {shape.simd} "
                             f"array with GRU folding {shape.gru_fold}: " + "; ".join(problems) +
                             " (prune with prune.multiple a multiple of both, or choose --pe / --gru-pe dividing them)")


def p_frame_extra_cycles(int_state: dict, latent_hw: tuple[int, int], shape: EngineShape) -> dict:
    """Cycles of a P-frame program's descriptors that are not convolutions (the cycle model of
    `program.program_cycles`): the warp, the GRU layers, the two adds."""
    specs = gru_specs(int_state, latent_hw)
    fh, fw = 8 * latent_hw[0], 8 * latent_hw[1]
    words = fh * fw * frame_channels(shape) // shape.pe
    gru = 0
    for s in specs:
        g = math.gcd(shape.pe, s.params.channels)     # an array wider than C: the GRU unit folded at C (not built)
        gru += gru_cycles(s.params.channels, s.height, s.width, replace(shape, pe=g, simd=g))
    return {"warp": warp_cycles_frame(fh, fw, shape), "gru": gru,
            "adds": add_cycles(words, False) + add_cycles(words, True)}


@dataclass
class PFrame:
    """Memory plan and the two programs (h buffers ping-pong) of a P-frame."""

    image: Image
    programs: tuple[int, int]
    y: int                   # the latent y_hat (host)
    vectors: int             # the block vectors (host): a word a block, dx low 16 bits, dy the next 16
    frames: list             # the two frame buffers: reference and reconstruction, by parity
    warped: int              # the warped reference
    h: list                  # per GRU layer, its two h buffers
    sums: list               # per GRU layer, its two pool-sum buffers
    frame_shape: tuple[int, int, int]    # (C padded, H/2, W/2) of the packed frame maps
    map_shape: tuple[int, int, int]      # (C, h, w) of the GRU maps
    latent_shape: tuple[int, int, int]   # (C padded, h, w) of y

    def put_map(self, addr: int, codes: np.ndarray, shape: EngineShape) -> None:
        """Write codes (C, H, W) at addr, zero channels appended up to the region's channel count."""
        want = {self.y: self.latent_shape, self.warped: self.frame_shape, self.frames[0]: self.frame_shape,
                self.frames[1]: self.frame_shape}.get(addr, self.map_shape)
        if codes.shape[1:] != want[1:] or codes.shape[0] > want[0]:
            raise EdgecodecError(f"engine: a map of shape {codes.shape} does not fit the region of {want}")
        full = np.zeros(want, dtype=np.int64)
        full[:codes.shape[0]] = codes
        self.image.put(addr, map_words(full, shape.pe, shape.act_bits))

    def put_vectors(self, motion: np.ndarray) -> None:
        """Block vectors (2, H/16, W/16): dx, dy in quarter luma pixels."""
        self.image.put(self.vectors, [(int(dx) & 0xFFFF) | ((int(dy) & 0xFFFF) << 16)
                                      for dx, dy in zip(motion[0].reshape(-1), motion[1].reshape(-1))])

    def put_sums(self, addr: int, h: np.ndarray) -> None:
        self.image.put(addr, [int(v) & 0xFFFFFFFF for v in h.reshape(h.shape[0], -1).sum(axis=1)])


def p_frame_program(int_state: dict, latent_hw: tuple[int, int], shape: EngineShape) -> PFrame:
    """The P-frame programs of a checkpoint's integer decoder for a latent of `latent_hw` (module docstring)."""
    nets = int_state["nets"]
    parts = {n: conv_layers(nets[n]["layers"]) for n in ("p_from_latent", "p_context", "p_synth")}
    parts["cells"] = [CellParams.from_json(c) for c in int_state["dec_cells"]]
    return p_frame_program_from_parts(parts, latent_hw, shape)


def p_frame_program_from_parts(parts: dict, latent_hw: tuple[int, int], shape: EngineShape) -> PFrame:
    """The same from its parts: {"p_from_latent", "p_context", "p_synth": ConvLayer lists, "cells": CellParams},
    as `hw.engine.from_qonnx.p_frame_from_qonnx` compiles them from the decoder's QONNX graph."""
    shape.check()
    P = shape.pe
    problems = fold_problems(parts["cells"], parts["p_synth"][0].cin - parts["cells"][-1].channels, shape)
    if problems:
        raise EdgecodecError("engine: the P-frame program does not fold onto the engine: " + "; ".join(problems))
    specs = cell_specs(parts["cells"], latent_hw)
    img = Image(shape.data_bits // 8)
    lh, lw = latent_hw
    from_layers = parts["p_from_latent"]
    lat_c = _round_up(from_layers[0].cin, P)
    y = img.alloc(lh * lw * lat_c // P)
    from_latent = stack_descriptors(img, from_layers, lh, lw, shape, y)
    c = specs[0].params.channels
    mh, mw = specs[0].height, specs[0].width
    if from_latent.output_shape != (c, mh, mw):
        raise EdgecodecError(f"engine: p_from_latent gives {from_latent.output_shape}, the GRU takes {(c, mh, mw)}")
    k = c // P
    h = [[img.alloc(mh * mw * k) for _ in range(2)] for _ in specs]
    sums = [[img.alloc(c) for _ in range(2)] for _ in specs]
    fh, fw, fc = 4 * mh, 4 * mw, frame_channels(shape)   # the packed frame (H/2): 4x the GRU map's size (H/8)
    frame_words = fh * fw * fc // P
    frames = [img.alloc(frame_words), img.alloc(frame_words)]
    vectors = img.alloc((fh // 8) * (fw // 8))
    warped, ctx_in = img.alloc(frame_words), img.alloc(frame_words)
    context = stack_descriptors(img, parts["p_context"], fh, fw, shape, ctx_in)
    if context.output_shape[1:] != (mh, mw):
        raise EdgecodecError(f"engine: p_context gives {context.output_shape}, p_synth needs {mh}x{mw}")
    programs = []
    for parity in (0, 1):
        gru = []
        for n, spec in enumerate(specs):
            gru.append(gru_descriptor(n, mh, mw, sums_in=sums[n][parity], h_prev=h[n][parity],
                                      sums_out=sums[n][1 - parity],
                                      x=from_latent.output_addr if n == 0 else h[n - 1][1 - parity],
                                      h_out=h[n][1 - parity], x_pitch=mw * k * img.word_bytes,
                                      h_pitch=mw * k * img.word_bytes))
        synth = stack_descriptors(img, parts["p_synth"], mh, mw, shape, h[-1][1 - parity],
                                  concat=(context.output_addr, c))
        if synth.output_shape != (fc, fh, fw):
            raise EdgecodecError(f"engine: p_synth gives {synth.output_shape}, the frame is {(fc, fh, fw)}")
        lo, hi = fp.srange(shape.act_bits)
        descs = ([warp_descriptor(fh, fw, ref=frames[parity], out=warped, vectors=vectors)] + from_latent.descs + gru
                 + [add_descriptor(frame_words, a=warped, out=ctx_in, k=-128, lo=lo, hi=hi)]
                 + context.descs + synth.descs
                 + [add_descriptor(frame_words, a=synth.output_addr, b=warped, out=frames[1 - parity], lo=0, hi=255)])
        descs = [list(d) for d in descs]
        descs[-1][0] |= FLAG_LAST
        prog = img.alloc(DESC_WORDS * len(descs))
        for i, d in enumerate(descs):
            img.put(prog + i * DESC_WORDS * img.word_bytes, d)
        programs.append(prog)
    return PFrame(img, tuple(programs), y, vectors, frames, warped, h, sums, (fc, fh, fw), (c, mh, mw),
                  (lat_c, lh, lw))
