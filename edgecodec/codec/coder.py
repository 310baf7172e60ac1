"""Encoding and decoding of whole clips with one codec checkpoint (`edgecodec encode` / `decode`).

Two modes share one bitstream layout:
- "int" (hardware-exact, the default): motion compensation, hyper-synthesis, synthesis and all four ASE-GRU
  layers run in integer arithmetic (quant/codec/int_codec.py); the probability tables are integers. A stream decodes
  to the same frames on every machine.
- "float": the float PyTorch model (the training reference); decoding is only guaranteed on the machine and
  library build that encoded it.

Entropy coding: "ans" (constriction's rANS over the integer tables) or "rice" (Golomb-Rice codes whose
parameter follows the same table row: what a hardware entropy coder would do).

Motion (stream version 3): the encoder finds Delta_t, one quarter-pel vector per 16x16 luma block, by a
rate-constrained block search on the previous reconstruction (`model.codec.motion.block_search`, integer: the
same vectors on every machine); the decoder moves every block by its vector (`warp_int`). Vectors are coded as
differences from the median of their neighbours (`predict_median`; the decoder rebuilds them in raster order).
The prior of those differences is forward-adaptive: for each P-frame and component the encoder picks the Laplace
table row that codes them in the fewest bits (integer cost) and sends it as an offset from the checkpoint's
row, coded under a fixed side row, as the frame's first two symbols. A still scene costs almost nothing for
motion. The hyper-latent z_t gets the same treatment with one offset for all its channels' rows (one side
symbol per frame, I and P), so a frame whose z is almost all zero does not pay the checkpoint's average.

The encoder runs the decoder's own reconstruction (closed loop), so reference frames match on both sides.
Frames are padded (edge replication) to multiples of 64 luma pixels and cropped back after decoding.

Untrusted streams: `decode` refuses, before decoding anything, a frame size above `max_pixels`, decoded frames
above `max_output_bytes` (both checked by `parse_stream` from the header) and a payload too short for the symbols
its frame size codes (`Coder.check_payload_sizes`); each frame's payload is read and checked to its end before
the frame is synthesised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.codec.motion import block_search, predict_median, rebuild_from_differences, warp_packed
from edgecodec.entropy import FrameDecoder, FrameEncoder, ans_weights, rice_parameters
from model.yuv import crop, pad_to_multiple, to_codes
from quant.codec.int_codec import IntCodec, pack_planes, rows_from_float, unpack_planes, warp_int

from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.bitstream import (DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_PIXELS, FRAME_I, FRAME_P, VERSION,
                                       BitstreamError, StreamHeader, encode_stream, parse_stream)
from base.errors import EdgecodecError

PAD = 64
MAX_SYMBOL = 255
MODES, ENTROPIES = ("int", "float"), ("ans", "rice")
_ANS_STEP_LOSS = math.log2(1 + 2 ** -8)   # bits one rANS step can lose to rounding (state >= 2^32, weights <= 2^24)
MOTION_SIDE_SCALE = 4.0                   # Laplace scale of the side symbols that send the motion rows
_PAYLOAD_SLACK_BITS = 128                 # payload bits the bound forgives (ANS start-up state below 2^32)


@dataclass
class CodingResult:
    data: bytes
    recon: tuple[np.ndarray, np.ndarray, np.ndarray]
    frame_bits: list[int] = field(default_factory=list)          # payload + frame header bits per frame
    frame_types: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _clamp_round(v: torch.Tensor) -> torch.Tensor:
    return torch.round(v).clamp(-MAX_SYMBOL, MAX_SYMBOL).to(torch.int64)


def _fps(fps: str) -> tuple[int, int]:
    try:
        num, den = (int(x) for x in str(fps).split(":"))
    except ValueError:
        return 30, 1
    return (num, den) if num > 0 and den > 0 else (30, 1)


def min_symbol_bits(tables: np.ndarray, entropy: str) -> float:
    """Fewest bits one coded symbol can take with `tables` under `entropy` (a lower bound for payload sizes).

    Rice: a codeword is at least 1 + k bits (k the row's parameter). ANS: a symbol of 24-bit weight w adds at
    least log2(2**24 / w) bits of state, less `_ANS_STEP_LOSS` for rounding; w is at most the largest weight.
    """
    if entropy == "rice":
        return 1.0 + int(rice_parameters(tables).min())
    return max(0.0, math.log2((1 << 24) / int(ans_weights(tables).max())) - _ANS_STEP_LOSS)


def padded_size(header: StreamHeader) -> tuple[int, int]:
    """(height, width) of a stream's frames padded to multiples of `PAD`, as the decoder works on them."""
    return -(-header.height // PAD) * PAD, -(-header.width // PAD) * PAD


class Coder:
    """Encoder and decoder of one quality (a loaded checkpoint dict, see codec_checkpoint.load)."""

    def __init__(self, ck: dict, mode: str = "int", entropy: str = "ans"):
        if mode not in MODES:
            raise EdgecodecError(f"mode must be one of {MODES}, got {mode!r}")
        if entropy not in ENTROPIES:
            raise EdgecodecError(f"entropy coder must be one of {ENTROPIES}, got {entropy!r}")
        self.ck, self.mode, self.entropy = ck, mode, entropy
        self.net = ck["codec"]
        self.int = IntCodec(ck["int"])
        t = ck["tables"]
        self.n_scales = len(t["scales"])
        self.tables = np.concatenate([t["gaussian"], t["laplace"]]).astype(np.int64)   # laplace rows offset
        r = ck["int"]["rows"]
        lap = self.n_scales
        self.rows_z = {"intra": np.asarray(r["intra_z"]) + lap, "p": np.asarray(r["p_z"]) + lap}
        self.rows_m = np.asarray(r["motion"]) + lap
        scales = np.asarray(t["scales"], dtype=np.float64)
        self.side_row = lap + int(np.argmin(np.abs(scales - MOTION_SIDE_SCALE)))
        lap_tables = self.tables[lap:]
        # -log2 P(v | row) in 1/2^16 bit units, integers: the row choice is exact and the same on every machine
        self._motion_cost = np.round(-np.log2(lap_tables / lap_tables.sum(1, keepdims=True)) * 65536).astype(np.int64)
        self.search_range, self.search_lam = int(ck["search"]["range"]), int(ck["search"]["lam"])
        self.hash = bytes.fromhex(ck["hash"])
        self.quality = int(ck["quality"])
        self.min_symbol_bits = min_symbol_bits(self.tables, entropy)

    # ------------------------------------------------------------------ shared pieces
    def _y_rows(self, prefix: str, z_hat: torch.Tensor) -> np.ndarray:
        if self.mode == "int":
            return self.int.y_rows(prefix, z_hat).numpy()
        hyper = self.net.intra.hyper if prefix == "intra" else self.net.inter.hyper
        return rows_from_float(hyper.h_s(z_hat.float()).double()).numpy()

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        return to_codes(x).to(torch.int64)

    # ------------------------------------------------------------------ I-frames
    def _intra_synth(self, y_hat: torch.Tensor) -> torch.Tensor:
        if self.mode == "int":
            return self.int.intra_recon(y_hat)
        return self._codes(self.net.intra.g_s(y_hat.float()) + 0.5)

    def _encode_intra(self, x: torch.Tensor, enc: FrameEncoder) -> torch.Tensor:
        intra = self.net.intra
        y = intra.g_a(x.float() / 256 - 0.5)
        z_hat = _clamp_round(intra.hyper.h_a(y))
        y_hat = _clamp_round(y)
        self._write_z(z_hat.numpy(), self.rows_z["intra"], enc)
        enc.add(y_hat.numpy(), self._y_rows("intra", z_hat))
        return self._intra_synth(y_hat)

    def _read_intra(self, dec: FrameDecoder, hp: int, wp: int) -> torch.Tensor:
        """y_hat of an I-frame (its z_hat, then y_hat with the rows z_hat gives)."""
        s = self.net.shape
        z_hat = self._read_z(dec, self.rows_z["intra"], (1, s.hyper, hp // 64, wp // 64))
        return torch.from_numpy(dec.read(self._y_rows("intra", z_hat)))

    # ------------------------------------------------------------------ P-frames
    def motion_rows(self, m_hat: np.ndarray) -> np.ndarray:
        """The two Laplace rows (table indices) that code motion codes m_hat (1, 2, h, w) in the fewest bits,
        counting the side symbol that sends each row; ties go to the lower row."""
        lap, (s, n) = self.n_scales, self._motion_cost.shape
        big_m = (n - 1) // 2
        rows = []
        for c, hist in enumerate(self._histograms(m_hat)):
            offsets = np.arange(s) - (int(self.rows_m[c]) - lap)
            side = self._motion_cost[self.side_row - lap, np.clip(offsets, -big_m, big_m) + big_m]
            rows.append(lap + int(np.argmin(self._motion_cost @ hist + side)))
        return np.asarray(rows, dtype=np.int64)

    def _histograms(self, v: np.ndarray) -> np.ndarray:
        """(C, n) symbol counts per channel of v (1, C, ...), values clamped to the table's range."""
        n = self._motion_cost.shape[1]
        big_m = (n - 1) // 2
        vals = np.clip(v[0].reshape(v.shape[1], -1), -big_m, big_m) + big_m
        return np.stack([np.bincount(c, minlength=n) for c in vals]).astype(np.int64)

    def z_offset(self, z_hat: np.ndarray, rows: np.ndarray) -> int:
        """The one offset o added to every z channel's Laplace row (clamped to the table) that codes z_hat
        (1, C, h, w) in the fewest bits with the side symbol that sends it; ties go to the smaller |o|, then
        to the negative one."""
        lap, (s, n) = self.n_scales, self._motion_cost.shape
        big_m = (n - 1) // 2
        hists = self._histograms(z_hat)
        best, best_o = None, 0
        for o in sorted(range(-(s - 1), s), key=lambda o: (abs(o), o)):
            r = np.clip(rows + o, lap, 2 * lap - 1) - lap
            cost = int((self._motion_cost[r] * hists).sum()) + int(self._motion_cost[self.side_row - lap, o + big_m])
            if best is None or cost < best:
                best, best_o = cost, o
        return best_o

    def _z_rows(self, rows: np.ndarray, offset: int) -> np.ndarray:
        return np.clip(rows + offset, self.n_scales, 2 * self.n_scales - 1)[None, :, None, None]

    def _write_z(self, z_hat: np.ndarray, rows: np.ndarray, enc: FrameEncoder) -> None:
        o = self.z_offset(z_hat, rows)
        enc.add(np.full((1, 1), o), np.full((1, 1), self.side_row))
        enc.add(z_hat, self._z_rows(rows, o))

    def _read_z(self, dec: FrameDecoder, rows: np.ndarray, shape: tuple) -> torch.Tensor:
        o = int(dec.read(np.full((1, 1), self.side_row))[0, 0])
        if abs(o) >= self.n_scales:
            raise BitstreamError(f"z prior offset {o} out of range (|offset| < {self.n_scales})")
        return torch.from_numpy(dec.read(self._z_rows(rows, o), shape))

    def _write_motion(self, m_hat: torch.Tensor, enc: FrameEncoder) -> None:
        mvd = (m_hat - predict_median(m_hat)).numpy()
        if np.abs(mvd).max(initial=0) > MAX_SYMBOL:
            raise EdgecodecError(f"motion vector difference {int(np.abs(mvd).max())} exceeds the coded range "
                                 f"+-{MAX_SYMBOL}: lower codec.search_range")
        rows = self.motion_rows(mvd)
        enc.add((rows - self.rows_m).reshape(1, 2), np.full((1, 2), self.side_row))
        enc.add(mvd, rows[None, :, None, None])

    def _read_motion(self, dec: FrameDecoder, hp: int, wp: int) -> torch.Tensor:
        rows = self.rows_m + dec.read(np.full((1, 2), self.side_row)).reshape(2)
        if rows.min() < self.n_scales or rows.max() >= 2 * self.n_scales:
            raise BitstreamError(f"motion prior rows {rows - self.n_scales} out of the Laplace table "
                                 f"(0..{self.n_scales - 1})")
        mvd = dec.read(rows[None, :, None, None], (1, 2, hp // 16, wp // 16))
        return torch.from_numpy(rebuild_from_differences(mvd[0].astype(np.int64)))[None]

    def _search(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Block vectors (1, 2, H/16, W/16) of frame codes x against the reference codes (both packed)."""
        cur_y, ref_y = unpack_planes(x.to(torch.int64))[0], unpack_planes(ref.to(torch.int64))[0]
        return block_search(cur_y[None], ref_y[None], self.search_range, self.search_lam)

    def _warp(self, ref: torch.Tensor, m_hat: torch.Tensor) -> torch.Tensor:
        """Warped reference: integer codes (int mode) or float values on the code scale (float mode)."""
        if self.mode == "int":
            return pack_planes(*warp_int(*unpack_planes(ref), m_hat[0]))
        return warp_packed(ref.float() / 256, m_hat.float()) * 256

    def _p_decode_side(self, y_hat: torch.Tensor, warped: torch.Tensor, state: dict) -> torch.Tensor:
        if self.mode == "int":
            res, state["dec"] = self.int.inter_residual(y_hat, warped, state["dec"])
            return (warped + res).clamp(0, 255)
        p = self.net.inter
        h, state["dec"] = p.dec_rnn(p.from_latent(y_hat.float()), state["dec"] or p.dec_rnn.init_state(
            torch.zeros(1, p.dec_rnn.cells[0].channels, y_hat.shape[2] * 2, y_hat.shape[3] * 2)))
        ctx = p.context(warped.float() / 256 - 0.5)
        return self._codes((warped + p.synth(torch.cat([h, ctx], dim=1)) * 256) / 256)

    def _encode_inter(self, x: torch.Tensor, ref: torch.Tensor, state: dict, enc: FrameEncoder) -> torch.Tensor:
        p = self.net.inter
        m_hat = self._search(x, ref)
        warped = self._warp(ref, m_hat)
        # the analysis (features, the encoder's ASE-GRU stack, to_latent, h_a) is float in both modes: it only
        # chooses what to send, and the integer decoder side decodes whatever it chose identically everywhere
        feat = p.feat(p.encoder_input(x.float() / 256, warped.float() / 256))
        h, state["enc"] = p.enc_rnn(feat, state["enc"] or p.enc_rnn.init_state(feat))
        y = p.to_latent(h)
        z_hat = _clamp_round(p.hyper.h_a(y))
        y_hat = _clamp_round(y)
        self._write_motion(m_hat, enc)
        self._write_z(z_hat.numpy(), self.rows_z["p"], enc)
        enc.add(y_hat.numpy(), self._y_rows("p", z_hat))
        return self._p_decode_side(y_hat, warped, state)

    def _read_inter(self, dec: FrameDecoder, hp: int, wp: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(m_hat, y_hat) of a P-frame (motion, z_hat, then y_hat with the rows z_hat gives)."""
        s = self.net.shape
        m_hat = self._read_motion(dec, hp, wp)
        z_hat = self._read_z(dec, self.rows_z["p"], (1, s.hyper, hp // 64, wp // 64))
        return m_hat, torch.from_numpy(dec.read(self._y_rows("p", z_hat)))

    def symbols_per_frame(self, kind: int, hp: int, wp: int) -> int:
        """Symbols one frame of type `kind` codes at padded size `hp` x `wp` (motion for P, then z, then y)."""
        s = self.net.shape
        latent = s.i_latent if kind == FRAME_I else s.latent
        n = 1 + s.hyper * (hp // 64) * (wp // 64) + latent * (hp // 16) * (wp // 16)   # z offset, z, y
        return n + (2 + 2 * (hp // 16) * (wp // 16) if kind == FRAME_P else 0)   # P: 2 motion-row symbols

    def check_payload_sizes(self, header: StreamHeader, frames: list[tuple[int, bytes]]) -> None:
        """Refuse frames whose payload is too short for the symbols their frame size codes.

        Raises
        ------
        BitstreamError
            For the first frame with fewer than symbols x `min_symbol_bits` bits (less a small slack): no
            stream this coder writes is that short, and decoding it would only allocate for garbage.
        """
        hp, wp = padded_size(header)
        for i, (kind, payload) in enumerate(frames):
            n = self.symbols_per_frame(kind, hp, wp)
            need = math.ceil((n * self.min_symbol_bits - _PAYLOAD_SLACK_BITS) / 8)
            if len(payload) < need:
                raise BitstreamError(
                    f"frame {i}: payload of {len(payload)} bytes is too short for a {header.width}x{header.height} "
                    f"{'I' if kind == FRAME_I else 'P'}-frame ({n} {self.entropy} symbols need at least {need} bytes)")

    # ------------------------------------------------------------------ clips
    @torch.no_grad()
    def encode(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, gop: int, fps: str = "30:1") -> CodingResult:
        """Code frames (T, H, W) / (T, ceil(H/2), ceil(W/2)) uint8; returns the bitstream and the decoder's frames."""
        t0 = time.perf_counter()
        if y.ndim != 3 or y.shape[0] < 1:
            raise EdgecodecError(f"encode: expected frames (T, H, W), got shape {y.shape}")
        h, w = y.shape[1:]
        yp, up_, vp, _ = pad_to_multiple(y, u, v, PAD)
        hp, wp = yp.shape[1:]
        frames, recon, bits, types = [], [], [], []
        ref, state = None, None
        for i in range(y.shape[0]):
            x = pack_planes(torch.from_numpy(yp[i]).to(torch.int64), torch.from_numpy(up_[i]).to(torch.int64),
                           torch.from_numpy(vp[i]).to(torch.int64))
            enc = FrameEncoder(self.tables, self.entropy)
            if i % gop == 0:
                kind, state = FRAME_I, {"enc": None, "dec": None}
                ref = self._encode_intra(x, enc)
            else:
                kind = FRAME_P
                ref = self._encode_inter(x, ref, state, enc)
            payload = enc.finish()
            frames.append((kind, payload))
            bits.append(8 * (len(payload) + 1 + _varint_len(len(payload))))
            types.append(kind)
            recon.append(unpack_planes(ref))
        fn, fd = _fps(fps)
        header = StreamHeader(version=VERSION, mode=self.mode, entropy=self.entropy, model_hash=self.hash,
                              quality=self.quality, width=w, height=h, fps_num=fn, fps_den=fd, gop=gop,
                              frame_count=y.shape[0])
        data = encode_stream(header, frames)
        return CodingResult(data, _stack_crop(recon, h, w), bits, types, time.perf_counter() - t0)

    @torch.no_grad()
    def decode_frames(self, header: StreamHeader, frames: list[tuple[int, bytes]]):
        """Decoded frames (y, u, v), uint8 (T, H, W) / (T, ceil(H/2), ceil(W/2)), of a parsed stream.

        The checkpoint hash and every payload size (`check_payload_sizes`) are checked first; the output arrays
        are bounded by `parse_stream`'s limits; each payload is read to its end and checked (close) before its
        frame is synthesised.
        """
        if header.model_hash != self.hash:
            raise EdgecodecError(f"the bitstream names model {header.model_hash.hex()}, but the quality-{self.quality} "
                            f"checkpoint {self.ck['path']} is {self.hash.hex()}: decode with the checkpoint "
                            f"that encoded it")
        self.check_payload_sizes(header, frames)
        hp, wp = padded_size(header)
        h, w, ch, cw = header.height, header.width, (header.height + 1) // 2, (header.width + 1) // 2
        out = (np.empty((len(frames), h, w), np.uint8), np.empty((len(frames), ch, cw), np.uint8),
               np.empty((len(frames), ch, cw), np.uint8))
        ref, state = None, None
        for i, (kind, payload) in enumerate(frames):
            dec = FrameDecoder(payload, self.tables, self.entropy)
            if kind == FRAME_I:
                y_hat = self._read_intra(dec, hp, wp)
                dec.close()
                state = {"enc": None, "dec": None}
                ref = self._intra_synth(y_hat)
            else:
                m_hat, y_hat = self._read_inter(dec, hp, wp)
                dec.close()
                ref = self._p_decode_side(y_hat, self._warp(ref, m_hat), state)
            for dst, plane in zip(out, unpack_planes(ref)):
                dst[i] = plane[:dst.shape[1], :dst.shape[2]].to(torch.uint8).numpy()
        return out


def _varint_len(n: int) -> int:
    k = 1
    while n >= 128:
        n >>= 7
        k += 1
    return k


def _stack_crop(recon, h: int, w: int):
    y = torch.stack([r[0] for r in recon]).to(torch.uint8).numpy()
    u = torch.stack([r[1] for r in recon]).to(torch.uint8).numpy()
    v = torch.stack([r[2] for r in recon]).to(torch.uint8).numpy()
    return crop(y, u, v, h, w)


def read_bitstream_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"bitstream not found: {path}")
    return path.read_bytes()


def decode(data: bytes, checkpoints: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
           max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES, coders: dict | None = None):
    """Decode a whole bitstream with the checkpoint of its quality from the folder `checkpoints`.

    Parameters
    ----------
    data : bytes
        The stream (untrusted: every size is checked before it drives an allocation).
    checkpoints : str or Path
        Folder with `codec_q<quality>.pt`.
    max_pixels, max_output_bytes : int
        Decoder limits (see `parse_stream`): largest width x height, largest size of all decoded frames.
    coders : dict, optional
        Cache of `Coder` objects by (quality, mode, entropy), filled as needed: for callers that decode many
        streams with the same checkpoint folder (the fuzz benchmark).

    Returns
    -------
    (StreamHeader, (y, u, v))
        The header and the decoded uint8 frames.

    Raises
    ------
    BitstreamError
        On a malformed, corrupt or over-limit stream.
    """
    header, frames = parse_stream(data, max_pixels=max_pixels, max_output_bytes=max_output_bytes)
    key = (header.quality, header.mode, header.entropy)
    coder = coders.get(key) if coders is not None else None
    if coder is None:
        coder = Coder(ckpt.load(checkpoints, header.quality), header.mode, header.entropy)
        if coders is not None:
            coders[key] = coder
    try:
        return header, coder.decode_frames(header, frames)
    except BitstreamError:
        raise
    except (ValueError, IndexError, RuntimeError) as exc:
        raise BitstreamError(f"corrupt bitstream: decoding failed ({exc.__class__.__name__}: {exc})") from None
