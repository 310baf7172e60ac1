"""Conventional-codec anchors: x264, x265 and libaom AV1 through Debian's ffmpeg, in low-delay P.

Each run encodes the first N frames of a Y4M clip as a raw elementary stream with a constant-quality
setting, decodes it back, measures bits per frame from the stream's packets and the distortion per frame
(`edgecodec.codec.metrics`). The coding structure is the one an edge codec competes with: low-delay P (no
B-frames, no lookahead, an I-frame exactly every `gop` frames and never elsewhere), one thread.

Encoder settings (besides ``-frames:v N -an -pix_fmt yuv420p``):

* x264 (``-f h264``): ``-c:v libx264 -preset medium -crf Q -threads 1 -x264-params
  keyint=G:min-keyint=G:scenecut=0:bframes=0:rc-lookahead=0:open-gop=0:threads=1``.
  rc-lookahead=0 also turns off MB-tree (as ``-tune zerolatency`` does, minus its sliced threads).
* x265 (``-f hevc``): ``-c:v libx265 -preset medium -crf Q -threads 1 -x265-params
  keyint=G:min-keyint=G:scenecut=0:bframes=0:rc-lookahead=0:open-gop=0:frame-threads=1:pools=none:info=0``.
  rc-lookahead=0 disables cu-tree; pools=none makes it single-threaded (no WPP).
* AV1 (``-f obu``): ``-c:v libaom-av1 -usage good -cpu-used 4 -crf Q -b:v 0 -lag-in-frames 0
  -auto-alt-ref 0 -g G -keyint_min G -threads 1 -row-mt 0 -tiles 1x1 -aom-params
  min-gf-interval=4:max-gf-interval=4``. lag 0 means no alt-ref / hidden frames and no scene-cut
  detection; kf min = max distance = G fixes the key-frame grid. The fixed golden-frame interval is needed:
  without it libaom 3.6 one-pass good quality with lag 0 codes nearly every inter frame as a boosted golden
  frame, so crf hardly matters (crf 60 gave 0.64 bpp / 40.6 dB on the 320x192 clip, crf 20 gave 1.7 bpp).
  A boosted golden frame every 4 frames matches the period-4 QP cascade of JVET's low-delay configs;
  "realtime" usage avoids the problem too, but measured about +20 % BD-rate against x264 on the 320x192
  clip where good usage with this setting gave about -7 % (9 frames, gop 8, YUV 6:1:1 PSNR).

Bit accounting: for H.264/HEVC, SEI NAL units (x264 writes ~600 bytes of its option string into the first
frame, which would dominate tiny test clips) are removed from the stream with ffmpeg's ``filter_units``
bitstream filter before anything is measured; the bytes removed are reported as ``sei_bytes_removed``.
Bits per frame are ffprobe's packet sizes of the final stream (one access unit / temporal unit per packet,
start codes, SPS/PPS/VPS and AV1 sequence headers included) and their sum is checked to equal the file
size for all three codecs. For AV1 the Section-5 "low overhead" OBU stream is the container; its only
overhead is a 2-byte temporal-delimiter OBU per frame, which ffmpeg's obu demuxer counts inside each
packet, so it is included in the bits (16 bits per frame).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError
from base.files import write_json_atomic
from edgecodec.codec.metrics import frame_metrics, mean_metrics

CODECS = ("x264", "x265", "av1")

#: Default constant-quality points per codec: a spread of rates for ~320x192 content, high to low quality,
#: down to the encoders' lowest qualities so the curves reach the low-rate range of the learned codec.
DEFAULT_QPS = {
    "x264": (22, 26, 30, 34, 38, 42, 46, 51),
    "x265": (22, 26, 30, 34, 38, 42, 46, 51),
    "av1": (33, 39, 45, 51, 57, 63),
}

#: libaom usage and speed ("good" 0 slowest .. 6; 4 codes 320x192 at ~3 frames/s on one core).
AV1_USAGE = "good"
AV1_CPU_USED = 4

#: Fixed golden-frame interval for libaom; see the module docstring for why it is needed with lag 0.
AV1_AOM_PARAMS = "min-gf-interval=4:max-gf-interval=4"

_INSTALL_HINT = "install Debian's ffmpeg (apt-get install ffmpeg), which ships libx264, libx265 and libaom"

_SPEC = {
    # codec: (ffmpeg encoder, elementary-stream format, decoder, SEI NAL types to drop or None, qp range)
    "x264": ("libx264", "h264", "h264", "6", (0, 51)),
    "x265": ("libx265", "hevc", "hevc", "39|40", (0, 51)),
    "av1": ("libaom-av1", "obu", "libdav1d", None, (0, 63)),
}

_STDERR_TAIL_LINES = 15


def _tail(text: str, n: int = _STDERR_TAIL_LINES) -> str:
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run a command, turning a missing binary or a non-zero exit into EdgecodecError with its stderr tail."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise EdgecodecError(f"{cmd[0]} not found on PATH; {_INSTALL_HINT}") from None
    if proc.returncode != 0:
        raise EdgecodecError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{_tail(proc.stderr)}")
    return proc


@functools.lru_cache(maxsize=None)
def _tools() -> tuple[str, str]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        raise EdgecodecError(f"ffmpeg/ffprobe not found on PATH; {_INSTALL_HINT}")
    return ffmpeg, ffprobe


@functools.lru_cache(maxsize=None)
def _ffmpeg_version() -> str:
    out = _run([_tools()[0], "-hide_banner", "-version"], "ffmpeg -version").stdout
    return out.splitlines()[0].strip() if out else "unknown"


@functools.lru_cache(maxsize=None)
def _available(kind: str) -> frozenset[str]:
    out = _run([_tools()[0], "-hide_banner", f"-{kind}"], f"ffmpeg -{kind}").stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6:
            names.add(parts[1])
    return frozenset(names)


def check_codec(codec: str) -> None:
    """Raise EdgecodecError unless ffmpeg, ffprobe, the encoder and the decoder for `codec` are available."""
    if codec not in _SPEC:
        raise EdgecodecError(f"unknown codec '{codec}'; choose one of {', '.join(CODECS)}")
    encoder, _, decoder, _, _ = _SPEC[codec]
    if encoder not in _available("encoders"):
        raise EdgecodecError(f"this ffmpeg has no {encoder} encoder; {_INSTALL_HINT}")
    if decoder not in _available("decoders"):
        raise EdgecodecError(f"this ffmpeg has no {decoder} decoder; {_INSTALL_HINT}")


def encoder_args(codec: str, qp: int, gop: int) -> list[str]:
    """The ffmpeg output options selecting the encoder and its low-delay-P constant-quality settings."""
    if codec == "x264":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:rc-lookahead=0:open-gop=0:threads=1"
        return ["-c:v", "libx264", "-preset", "medium", "-crf", str(qp), "-threads", "1", "-x264-params", params]
    if codec == "x265":
        params = (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:rc-lookahead=0:open-gop=0"
                  f":frame-threads=1:pools=none:info=0")
        return ["-c:v", "libx265", "-preset", "medium", "-crf", str(qp), "-threads", "1", "-x265-params", params]
    if codec == "av1":
        return ["-c:v", "libaom-av1", "-usage", AV1_USAGE, "-cpu-used", str(AV1_CPU_USED), "-crf", str(qp),
                "-b:v", "0", "-lag-in-frames", "0", "-auto-alt-ref", "0", "-g", str(gop), "-keyint_min", str(gop),
                "-threads", "1", "-row-mt", "0", "-tiles", "1x1", "-aom-params", AV1_AOM_PARAMS]
    raise EdgecodecError(f"unknown codec '{codec}'; choose one of {', '.join(CODECS)}")


def _encoder_version(codec: str, stderr: str, raw: Path) -> str:
    if codec == "x264":
        m = re.search(rb"x264 - core \d+ r\d+ [0-9a-f]+", raw.read_bytes()[:4096])
        return m.group(0).decode() if m else "x264 (version not found)"
    if codec == "x265":
        m = re.search(r"HEVC encoder version (\S+)", stderr)
        return f"x265 {m.group(1)}" if m else "x265 (version not found)"
    m = re.search(r"\[libaom-av1 @ [^\]]*\] (v\d+\.\d+\.\d+\S*)", stderr)
    return f"libaom {m.group(1)}" if m else "libaom (version not found)"


def _packet_bits(ffprobe: str, es: Path) -> tuple[list[int], str]:
    cmd = [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_packets", "-show_entries", "packet=size",
           "-of", "csv=p=0", str(es)]
    out = _run(cmd, "ffprobe packet sizes").stdout
    try:
        sizes = [int(s.strip().rstrip(",")) for s in out.splitlines() if s.strip()]
    except ValueError:
        raise EdgecodecError(f"unexpected ffprobe packet output from: {' '.join(cmd)}\n{_tail(out)}") from None
    return sizes, " ".join(cmd)


def _pict_types(ffprobe: str, es: Path) -> tuple[list[str], str]:
    cmd = [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_frames", "-show_entries", "frame=pict_type",
           "-of", "csv=p=0", str(es)]
    out = _run(cmd, "ffprobe picture types").stdout
    return [s.strip().rstrip(",") for s in out.splitlines() if s.strip()], " ".join(cmd)


def check_low_delay(pict_types: list[str], gop: int, frames: int, where: str = "") -> None:
    """Raise EdgecodecError unless the display-order picture types are I exactly at multiples of `gop`, P elsewhere."""
    if len(pict_types) != frames:
        raise EdgecodecError(f"{where}: decoder reports {len(pict_types)} pictures, expected {frames}")
    if "B" in pict_types:
        raise EdgecodecError(f"{where}: B-frames present ({''.join(pict_types)}); the anchor must be low-delay P")
    expected = ["I" if i % gop == 0 else "P" for i in range(frames)]
    if pict_types != expected:
        raise EdgecodecError(f"{where}: picture types {''.join(pict_types)} are not low-delay P with an I-frame every "
                        f"{gop} frames (expected {''.join(expected)})")


def _atomic_ffmpeg_output(final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    tmp.unlink(missing_ok=True)
    return tmp


def run_codec(codec: str, clip_y4m, workdir, qp: int, gop: int, frames: int, keep_decoded: bool = False) -> dict:
    """Encode, decode and measure one rate point of a conventional codec in low-delay P.

    Parameters
    ----------
    codec : {"x264", "x265", "av1"}
    clip_y4m : path
        8-bit 4:2:0 Y4M clip; its first `frames` frames are coded.
    workdir : path
        Run folder; files go to ``<workdir>/<codec>_q<qp>_g<gop>_f<frames>/``: the elementary stream
        (``stream.h264`` / ``.hevc`` / ``.obu``), ``result.json`` and, with `keep_decoded`, ``decoded.y4m``.
    qp : int
        Constant-quality value: ``-crf`` for x264/x265 (0..51), ``-crf`` with ``-b:v 0`` for libaom (0..63).
    gop : int
        I-frame period; I-frames are placed at frames 0, gop, 2 gop, ... and nowhere else.
    frames : int
        Number of frames to code (the clip must have at least this many).
    keep_decoded : bool
        Keep the decoded Y4M (removed after measuring by default).

    Returns
    -------
    dict
        ``codec, qp, gop, frames, width, height, clip, bytes`` (sum of packet sizes = stream file size),
        ``file_bytes, sei_bytes_removed, bits, bpp`` (bits per luma pixel over all frames), ``pict_types``,
        ``per_frame`` (list of dict: ``frame, pict_type, bits, bpp`` and the `frame_metrics` keys),
        ``metrics`` (`mean_metrics` output) whose values are also copied to the top level (``psnr_y``,
        ``psnr_yuv611``, ``psnr_rgb``, ``ms_ssim``, ...) so a result is directly an RD point,
        ``commands`` (dict of the exact command lines: encode, strip_sei, probe_packets, probe_frames,
        decode), ``ffmpeg_version``, ``encoder_version``, ``stream`` (path) and ``result_json`` (path).
    """
    from model.video import read_yuv420  # lazy: model.video may land after this module

    if codec not in _SPEC:
        raise EdgecodecError(f"unknown codec '{codec}'; choose one of {', '.join(CODECS)}")
    encoder, fmt, decoder, sei_types, (qmin, qmax) = _SPEC[codec]
    for name, val in (("qp", qp), ("gop", gop), ("frames", frames)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
            raise EdgecodecError(f"{codec}: {name} must be an integer, got {val!r}")
    qp, gop, frames = int(qp), int(gop), int(frames)
    if not qmin <= qp <= qmax:
        raise EdgecodecError(f"{codec}: crf {qp} outside {qmin}..{qmax}")
    if gop < 1 or frames < 1:
        raise EdgecodecError(f"{codec}: gop and frames must be >= 1, got gop={gop}, frames={frames}")
    clip = Path(clip_y4m)
    ffmpeg, ffprobe = _tools()
    check_codec(codec)

    y, u, v = read_yuv420(clip, max_frames=frames)
    if y.shape[0] < frames:
        raise EdgecodecError(f"{clip}: has only {y.shape[0]} frames, {frames} requested")
    _, height, width = y.shape

    out_dir = Path(workdir) / f"{codec}_q{qp}_g{gop}_f{frames}"
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = out_dir / f"stream.{fmt}"
    raw = out_dir / f"raw.{fmt}"
    decoded = out_dir / "decoded.y4m"
    where = f"{codec} crf {qp} gop {gop} on {clip.name}"
    commands: dict[str, str] = {}

    # 1. encode
    tmp = _atomic_ffmpeg_output(raw)
    enc = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "verbose", "-y", "-i", str(clip),
           "-frames:v", str(frames), "-an", "-pix_fmt", "yuv420p", *encoder_args(codec, qp, gop), "-f", fmt, str(tmp)]
    proc = _run(enc, f"{codec} encode")
    tmp.replace(raw)
    commands["encode"] = " ".join(enc)
    encoder_version = _encoder_version(codec, proc.stderr, raw)

    # 2. drop SEI (H.264 / HEVC) so bits count coded video only
    if sei_types is not None:
        tmp = _atomic_ffmpeg_output(stream)
        strip = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i", str(raw),
                 "-c:v", "copy", "-bsf:v", f"filter_units=remove_types={sei_types}", "-f", fmt, str(tmp)]
        _run(strip, f"{codec} SEI removal")
        tmp.replace(stream)
        commands["strip_sei"] = " ".join(strip)
        sei_removed = raw.stat().st_size - stream.stat().st_size
        raw.unlink()
    else:
        raw.replace(stream)
        sei_removed = 0

    # 3. bits per frame from packets; must add up to the file
    sizes, commands["probe_packets"] = _packet_bits(ffprobe, stream)
    file_bytes = stream.stat().st_size
    if len(sizes) != frames:
        raise EdgecodecError(f"{where}: stream has {len(sizes)} packets for {frames} frames ({stream})")
    if sum(sizes) != file_bytes:
        raise EdgecodecError(f"{where}: packet sizes add up to {sum(sizes)} bytes but {stream} has {file_bytes}")

    # 4. coding structure
    pict_types, commands["probe_frames"] = _pict_types(ffprobe, stream)
    check_low_delay(pict_types, gop, frames, where)

    # 5. decode and measure
    tmp = _atomic_ffmpeg_output(decoded)
    dec = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-threads", "1", "-c:v", decoder,
           "-i", str(stream), "-pix_fmt", "yuv420p", "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-y", str(tmp)]
    _run(dec, f"{codec} decode")
    tmp.replace(decoded)
    commands["decode"] = " ".join(dec)
    y2, u2, v2 = read_yuv420(decoded)
    if not keep_decoded:
        decoded.unlink()
    if y2.shape != y.shape or u2.shape != u.shape:
        raise EdgecodecError(f"{where}: decoded {y2.shape[0]} frames of {y2.shape[2]}x{y2.shape[1]}, "
                        f"expected {frames} of {width}x{height}")

    per = frame_metrics((y, u, v), (y2, u2, v2))
    pixels = width * height
    per_frame = []
    for i, (size, ptype, m) in enumerate(zip(sizes, pict_types, per)):
        per_frame.append(dict(frame=i, pict_type=ptype, bits=8 * size, bpp=8 * size / pixels, **m))
    mean = mean_metrics(per)
    total = sum(sizes)
    result = dict(codec=codec, qp=qp, gop=gop, frames=frames, width=width, height=height, clip=str(clip),
                  bytes=total, file_bytes=file_bytes, sei_bytes_removed=sei_removed, bits=8 * total,
                  bpp=8 * total / (pixels * frames), pict_types="".join(pict_types))
    for k, val in mean.items():
        if k != "frames":
            result[k] = val
    result.update(metrics=mean, per_frame=per_frame, commands=commands, ffmpeg_version=_ffmpeg_version(),
                  encoder_version=encoder_version, stream=str(stream), result_json=str(out_dir / "result.json"))
    write_json_atomic(out_dir / "result.json", result, indent=1, sort_keys=True)
    return result


def sweep(codec: str, clip, workdir, qps=None, gop: int = 8, frames: int = 8) -> list[dict]:
    """`run_codec` at each quality point, sorted by increasing bpp; writes ``<workdir>/<codec>_sweep.json``.

    Parameters
    ----------
    codec : {"x264", "x265", "av1"}
    clip, workdir, gop, frames
        As for `run_codec`.
    qps : sequence of int, optional
        Quality points; ``DEFAULT_QPS[codec]`` when None.

    Returns
    -------
    list of dict
        The `run_codec` results, lowest rate first.
    """
    if codec not in _SPEC:
        raise EdgecodecError(f"unknown codec '{codec}'; choose one of {', '.join(CODECS)}")
    qps = list(DEFAULT_QPS[codec] if qps is None else qps)
    if not qps:
        raise EdgecodecError(f"{codec} sweep: empty qp list")
    results = [run_codec(codec, clip, workdir, q, gop, frames) for q in qps]
    results.sort(key=lambda r: (r["bpp"], -r["qp"]))
    write_json_atomic(Path(workdir) / f"{codec}_sweep.json", results, indent=1, sort_keys=True)
    return results
