"""The host side of the decoder engine's P-frames, as firmware does it: parse the stream, entropy-decode each
P-frame's symbols (block vectors, z, y: the rANS / Rice decoders stay on the host), and fill the engine's memory
plan (`hw.engine.frame_program`) before starting the P-frame program of the frame's parity.

Beside each memory image the integer decoder gives every map the program must write (the warped frame, each ASE-GRU
layer's h_t and pool sums, the reconstruction), so a bench can compare the RTL's memory with them; the
reconstructions are checked against `decode` (the `edgecodec decode --mode int` frames) here. I-frames are taken from
`decode` (the engine's I-frame path is `tests/hw/engine/test_engine.py`'s): they reset the hidden state and become
the next reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from base.errors import EdgecodecError


@dataclass
class PFrameRun:
    """One P-frame on the engine: the memory image before the program, the program's address, and the maps
    (address, codes (C, H, W), lanes, bits) the program must leave in memory."""

    frame: int
    image: bytes
    program_addr: int
    expected: list


def p_frame_runs(data: bytes, folder: Path, shape) -> tuple[list[PFrameRun], tuple]:
    """The P-frames of stream `data` (checkpoints in `folder`) for an engine of `shape`; also the GRU units
    (hw.engine.gru_unit.GruSpec) the engine must be generated with."""
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.bitstream import FRAME_I, parse_stream
    from edgecodec.codec.coder import Coder, decode, padded_size
    from edgecodec.entropy import FrameDecoder
    from hw.engine.frame_program import gru_specs, p_frame_program
    from quant.codec.int_codec import IntCodec, pack_planes, unpack_planes, warp_int
    header, payloads = parse_stream(data)
    ck = ckpt.load(folder, header.quality)
    _, want = decode(data, folder)
    coder = Coder(ck, "int", header.entropy)
    hp, wp = padded_size(header)
    latent = (hp // 16, wp // 16)
    icodec = IntCodec(ck["int"])
    plan = p_frame_program(ck["int"], latent, shape)
    runs, hs, ref, parity = [], None, None, 0

    def frame_map(packed: torch.Tensor) -> np.ndarray:
        full = np.zeros(plan.frame_shape, dtype=np.int64)     # zero channels up to a multiple of PE
        full[:6] = packed[0].numpy()
        return full

    for t, (kind, payload) in enumerate(payloads):
        if kind == FRAME_I:
            ref = pack_planes(*(torch.from_numpy(want[i][t].astype(np.int64)) for i in range(3)))
            hs, parity = None, 0
            continue
        dec = FrameDecoder(payload, coder.tables, coder.entropy)
        m_hat, y_hat = coder._read_inter(dec, hp, wp)
        dec.close()
        warped = pack_planes(*warp_int(*unpack_planes(ref), m_hat[0]))
        res, new = icodec.inter_residual(y_hat, warped, hs)
        recon = (warped + res).clamp(0, 255)
        for got, plane in zip(unpack_planes(recon), want):
            if not np.array_equal(got.numpy()[:plane.shape[1], :plane.shape[2]].astype(np.uint8), plane[t]):
                raise EdgecodecError(f"engine host: frame {t} of the integer model differs from decode --mode int")
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
        runs.append(PFrameRun(t, plan.image.to_bytes(), plan.programs[parity], expected))
        hs, ref, parity = new, recon, 1 - parity
    return runs, gru_specs(ck["int"], latent)
