"""Codec-wide structured pruning of the ASE-GRU codec (seed 002; issue 13): channel groups, masks, decoder MACs,
layer-wise distillation and channel removal over the whole `VideoCodec` (model/prune.py holds the arithmetic).

A *group* is a set of channels that is kept or removed as one: its *producers* are the convolutions whose output
channels (`unit` of them per group channel: r^2 before a PixelShuffle(r), else 1) make it, its *consumers* the
layers that read it as input channels. Groups:

- inside every stack (`STACKS`), each convolution but the last: its own group (model/prune.py's rule);
- `inter.hidden`, the ASE-GRU hidden size C: produced by feat's last convolution, from_latent (4 channels a unit,
  sub-pixel), and in every cell of *both* ASE-GRU stacks by the projector (depth-wise), the gate convolutions
  W_{z,r,n} and U_{z,r,n}; read by the cells (gates, SE fc1), to_latent and the synthesis; the SE's fc2 rows
  follow it. One group for encoder and decoder: one C, one cell design for the hardware (`CodecShape.channels`);
- `inter.context`, the context features of the warped frame: context's last convolution, read by the synthesis
  beside the hidden channels.

Fixed (interfaces): the packed frame (6 channels in, 24 = 6 x 2^2 out of the synthesis), the latent y (its
channel count is what the bitstream codes per frame and what the hyper-synthesis predicts a scale for; the
hyperprior and `Coder.symbols_per_frame` rely on it), the hyper-latent z (a learned prior row per channel in the
checkpoint), and the SE bottleneck (per-frame MACs only). A masked group channel is exactly zero where it is
used: a pruned hidden channel's projector, gates and input are masked, so from h_0 = 0 it stays 0 (z = 1/2,
n = tanh 0), and the shrunk codec equals the gated one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from base.errors import EdgecodecError
from model.codec.network import CodecShape, VideoCodec
from model.prune import ChannelGate, decay_mask, feature_distortion, group_norms, resize_to_state, shuffle_groups

HIDDEN, CONTEXT = "inter.hidden", "inter.context"
STACKS = ("intra.g_a", "intra.g_s", "intra.hyper.h_a", "intra.hyper.h_s", "inter.feat", "inter.from_latent",
          "inter.hyper.h_a", "inter.hyper.h_s", "inter.context", "inter.synth")
INTERFACE = {"inter.feat": HIDDEN, "inter.from_latent": HIDDEN, "inter.context": CONTEXT}
DISTILL_STAGES = ("intra", "inter", "codec")    # intra codec -> P path (ASE-GRU, residual) -> whole codec
PROBE = 64                                      # luma size of the one forward pass that measures map sizes


@dataclass
class Layer:
    """One Conv2d / Linear: its output group (name, channels per unit) or None (fixed), its input segments
    [(group or None, channels)], kernel area and whether it is depth-wise."""

    out: tuple[str, int] | None
    ins: list[tuple[str | None, int]]
    out_channels: int
    kernel: int = 1
    depthwise: bool = False
    linear: bool = False


@dataclass
class Group:
    units: int
    producers: list[tuple[str, int]] = field(default_factory=list)   # (path, channels per unit): norms and masks
    passive: list[str] = field(default_factory=list)                  # rows follow the group, no norm (SE fc2)


def codec_structure(codec: VideoCodec) -> tuple[dict[str, Group], dict[str, Layer]]:
    """The groups and layers of a codec (dense or already pruned: widths are read from the modules)."""
    layers: dict[str, Layer] = {}
    for name, m in codec.named_modules():
        if isinstance(m, nn.Conv2d):
            dw = m.groups > 1
            if dw and not m.groups == m.in_channels == m.out_channels:
                raise EdgecodecError(f"{name}: only dense or depth-wise convolutions can be pruned")
            layers[name] = Layer(None, [(None, m.in_channels)], m.out_channels, m.kernel_size[0] * m.kernel_size[1],
                                 dw)
        elif isinstance(m, nn.Linear):
            layers[name] = Layer(None, [(None, m.in_features)], m.out_features, linear=True)
    groups: dict[str, Group] = {}
    p = codec.inter
    c = p.enc_rnn.cells[0].channels
    if any(cell.channels != c for cell in list(p.enc_rnn.cells) + list(p.dec_rnn.cells)):
        raise EdgecodecError("the ASE-GRU stacks of a codec must share one hidden size")
    groups[HIDDEN] = Group(c)
    groups[CONTEXT] = Group(p.context[[i for i, m in enumerate(p.context) if isinstance(m, nn.Conv2d)][-1]]
                            .out_channels)
    for path in STACKS:
        seq = codec.get_submodule(path)
        convs = [i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)]
        for k, i in enumerate(convs):
            name, unit = f"{path}.{i}", shuffle_groups(seq, i)
            last = k + 1 == len(convs)
            if last and path not in INTERFACE:
                continue
            g = INTERFACE[path] if last else name
            if not last:
                groups[g] = Group(seq[i].out_channels // unit)
                layers[f"{path}.{convs[k + 1]}"].ins = [(g, groups[g].units)]
            groups[g].producers.append((name, unit))
            layers[name].out = (g, unit)
    for stack in ("enc_rnn", "dec_rnn"):
        for li in range(len(getattr(p, stack).cells)):
            cell = f"inter.{stack}.cells.{li}"
            for name in [f"{cell}.proj.conv"] + [f"{cell}.{wu}.{g}" for wu in "wu" for g in "zrn"]:
                groups[HIDDEN].producers.append((name, 1))
                layers[name].out = (HIDDEN, 1)
                layers[name].ins = [(HIDDEN, c)]
            layers[f"{cell}.se.fc1"].ins = [(HIDDEN, c)]
            layers[f"{cell}.se.fc2"].out = (HIDDEN, 1)
            groups[HIDDEN].passive.append(f"{cell}.se.fc2")
    layers["inter.to_latent"].ins = [(HIDDEN, c)]
    layers["inter.synth.0"].ins = [(HIDDEN, c), (CONTEXT, groups[CONTEXT].units)]
    for name, layer in layers.items():
        m = codec.get_submodule(name)
        cin = m.in_features if layer.linear else m.in_channels
        if sum(n for _, n in layer.ins) != cin:
            raise EdgecodecError(f"{name} reads {cin} input channels, its producers make "
                                 f"{sum(n for _, n in layer.ins)}")
    for g, grp in groups.items():
        for name, unit in grp.producers:
            if layers[name].out_channels != grp.units * unit:
                raise EdgecodecError(f"{name}: {layers[name].out_channels} outputs do not make {grp.units} "
                                     f"channels of group {g}")
    return groups, layers


def decoder_calls(codec: VideoCodec) -> dict[str, list[tuple[str, int]]]:
    """For the I- and P-frame decoders: every Conv2d / Linear call as (path, output pixels) on a PROBE x PROBE
    luma frame (what the decoder of `edgecodec.codec.evaluate.macs_per_pixel` runs). Output sizes scale with the
    frame area for frames of a multiple of 64 pixels (Linear layers run once a frame)."""
    names = {m: n for n, m in codec.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    calls: list = []

    def hook(m, _args, out):
        calls.append((names[m], 1 if isinstance(m, nn.Linear) else out.shape[-2] * out.shape[-1]))

    hooks = [m.register_forward_hook(hook) for m in names]
    res = {}
    try:
        with torch.no_grad():
            x = torch.zeros(1, 6, PROBE // 2, PROBE // 2)
            intra, p = codec.intra, codec.inter
            y = torch.zeros(1, intra.g_s[0].in_channels, PROBE // 16, PROBE // 16)
            z = torch.zeros(1, intra.hyper.h_s[0].in_channels, PROBE // 64, PROBE // 64)
            intra.hyper.h_s(z)
            intra.g_s(y)
            res["I"], calls[:] = list(calls), []
            p.hyper.h_s(z)
            h = p.dec_rnn(p.from_latent(y), p.init_state(x)[1])[0]
            p.synth(torch.cat([h, p.context(x)], dim=1))
            res["P"] = list(calls)
    finally:
        for hk in hooks:
            hk.remove()
    return res


def layer_macs(layer: Layer, pixels, kept: dict):
    """MACs of one call of a layer with `pixels` output pixels, group widths `kept` (units, floats allowed)."""
    cout = kept[layer.out[0]] * layer.out[1] if layer.out else layer.out_channels
    if layer.depthwise:
        return layer.kernel * cout * pixels
    cin = sum(kept[g] if g else n for g, n in layer.ins)
    return layer.kernel * cin * cout * pixels


def frame_macs(calls, layers: dict, kept: dict, height: int, width: int):
    """MACs of one frame of height x width luma pixels (padded to multiples of 64) for the calls of
    `decoder_calls` (one kind), group widths `kept`."""
    hp, wp = -(-height // 64) * 64, -(-width // 64) * 64
    scale = hp * wp / (PROBE * PROBE)
    return sum(layer_macs(layers[n], pix if layers[n].linear else pix * scale, kept) for n, pix in calls)


def cosine_distortion(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Layer-wise distillation distance of one layer: feature_distortion (per-pixel L2-normalised features, MSE)
    times C / 2, i.e. the mean over pixels of 1 - cos(student, teacher): comparable across layer widths."""
    return feature_distortion(student, teacher) * student.shape[1] / 2


class MaskedConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state-dict keys) whose output channels a `GatedCodec` group masks,
    with gradient decay (model.prune.decay_mask); it records its layer-wise distillation distance to the
    teacher's convolution run on the same (the student's own) input while its GatedCodec records."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner, group, unit, path, teacher = self._prune
        gate = owner.gate(group)
        m = owner.mask(group).repeat_interleave(unit)
        w = decay_mask(self.weight, m.view(-1, 1, 1, 1), gate.beta)
        b = None if self.bias is None else decay_mask(self.bias, m, gate.beta)
        out = self._conv_forward(x, w, b)
        if owner.recorder is not None and torch.is_grad_enabled() and teacher is not None:
            with torch.no_grad():
                want = teacher(x)
            owner.recorder.append((path, cosine_distortion(out, want)))
        return out


def _key(name: str) -> str:
    return name.replace(".", "/")


class GatedCodec(nn.Module):
    """A codec whose groups are gated: one ChannelGate (learnable tau) per group over the group's norms (the
    L2 norm of a group channel's filters in all its producers together), the producers swapped in place for
    MaskedConv2d. `teacher` (a dense codec of the same widths) gives the layer-wise distillation targets.

    Parameters
    ----------
    codec : the student (modified in place: its producers become MaskedConv2d, parameters unchanged).
    teacher : the frozen dense codec, or None (no distillation).
    multiple : kept channels of every group snap to a multiple of it (the accelerator's PE), or all.
    temperature : of the soft kept-fraction estimate.
    min_keep : every group keeps at least this fraction of its channels (rounded up, at least one) whatever its
        threshold: a floor that stops the budget from emptying one group (the ASE-GRU's C fell 16 -> 4 without).
    min_keep_hidden : the floor of the hidden group `HIDDEN` (None: `min_keep`).
    floors : floors of named groups, replacing the two above for them (a name that is not a group: error).
    """

    def __init__(self, codec: VideoCodec, teacher: VideoCodec | None = None, multiple: int = 4,
                 temperature: float = 0.05, min_keep: float = 0.0, min_keep_hidden: float | None = None,
                 floors: dict[str, float] | None = None):
        super().__init__()
        self.codec = codec
        self.groups, self.layers = codec_structure(codec)
        floors, named = {g: min_keep for g in self.groups}, floors
        floors[HIDDEN] = min_keep if min_keep_hidden is None else min_keep_hidden
        unknown = sorted(set(named or {}) - set(self.groups))
        if unknown:
            raise EdgecodecError(f"prune: no channel group {unknown[0]!r} in this codec (groups: "
                                 f"{', '.join(sorted(self.groups))})")
        floors.update(named or {})
        for g, f in floors.items():
            if not 0.0 <= f <= 1.0:
                raise EdgecodecError(f"prune: the kept-fraction floor of {g} must be in [0, 1], got {f}")
        self.gates = nn.ModuleDict({_key(g): ChannelGate(None, 1, temperature, multiple=multiple,
                                                         floor=max(1, math.ceil(floors[g] * grp.units - 1e-9)))
                                    for g, grp in self.groups.items()})
        self.recorder = None
        self._masks = {}
        for g, grp in self.groups.items():
            for path, unit in grp.producers:
                conv = codec.get_submodule(path)
                conv.__class__ = MaskedConv2d
                conv._prune = (self, g, unit, path, teacher.get_submodule(path) if teacher is not None else None)
        self.calls = decoder_calls(codec)

    def gate(self, group: str) -> ChannelGate:
        return self.gates[_key(group)]

    def norms(self, group: str) -> torch.Tensor:
        """The group's channel norms over its mean norm (differentiable in the weights; the mean is a constant):
        tau is relative to the group's own scale, so one temperature and one tau learning rate serve layers
        whose filters differ in size and norm."""
        sq = 0.0
        for path, unit in self.groups[group].producers:
            sq = sq + group_norms(self.codec.get_submodule(path).weight, unit) ** 2
        n = torch.sqrt(sq)
        return n / n.detach().mean().clamp_min(1e-12)

    def mask(self, group: str) -> torch.Tensor:
        """The group's hard mask (units), cached while its weights and tau are unchanged."""
        tensors = [self.codec.get_submodule(p).weight for p, _ in self.groups[group].producers]
        tensors.append(self.gate(group).tau)
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        hit = self._masks.get(group)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = (key, self.gate(group).mask_from_norms(self.norms(group)))
            self._masks[group] = hit
        return hit[1]

    def set_beta(self, beta: float) -> None:
        for gate in self.gates.values():
            gate.beta = float(beta)

    def kept(self) -> dict[str, int]:
        """Kept units of every group (the hard masks)."""
        return {g: int(self.mask(g).sum()) for g in self.groups}

    def soft_kept(self) -> dict[str, torch.Tensor]:
        """Differentiable kept units of every group (keep_fraction x units)."""
        return {g: self.gate(g).keep_from_norms(self.norms(g)) * grp.units for g, grp in self.groups.items()}

    def full(self) -> dict[str, int]:
        return {g: grp.units for g, grp in self.groups.items()}

    def decoder_macs(self, kept: dict, height: int, width: int, gop: int) -> dict:
        """Decoder MACs per frame (I, P and the mean over a GOP of 1 I + gop - 1 P) at height x width."""
        i = frame_macs(self.calls["I"], self.layers, kept, height, width)
        p = frame_macs(self.calls["P"], self.layers, kept, height, width)
        return {"I": i, "P": p, "gop_mean": (i + (gop - 1) * p) / gop}

    def distortions(self, stage: str) -> list[torch.Tensor]:
        """The recorded distillation distances of a stage's layers (`DISTILL_STAGES`: "intra" the intra codec,
        "inter" the P path, "codec" every gated layer)."""
        return [d for path, d in (self.recorder or []) if stage == "codec" or path.startswith(stage + ".")]


def shrink_codec(gated: GatedCodec) -> tuple[VideoCodec, dict[str, int]]:
    """A plain, narrower VideoCodec without the masked channels of `gated` (same outputs), and the output width
    of every convolution it has."""
    idx = {g: torch.nonzero(gated.mask(g)).flatten() for g in gated.groups}
    state = {k: v.detach().clone() for k, v in gated.codec.state_dict().items()}
    full = gated.full()
    for path, layer in gated.layers.items():
        w, b = state[f"{path}.weight"], state.get(f"{path}.bias")
        if layer.out is not None:
            g, unit = layer.out
            rows = (idx[g][:, None] * unit + torch.arange(unit)[None]).flatten()
            w, b = w[rows], None if b is None else b[rows]
        if not layer.depthwise and any(g for g, _ in layer.ins):
            cols, off = [], 0
            for g, n in layer.ins:
                cols.append(off + (idx[g] if g else torch.arange(n)))
                off += full[g] if g else n
            w = w[:, torch.cat(cols)]
        state[f"{path}.weight"] = w
        if b is not None:
            state[f"{path}.bias"] = b
    kept = gated.kept()
    shape = dataclasses.replace(gated.codec.shape, channels=kept[HIDDEN], context=kept[CONTEXT])
    codec = codec_from_state(shape, state)
    widths = {n: m.out_channels for n, m in codec.named_modules() if isinstance(m, nn.Conv2d)}
    return codec, widths


def codec_from_state(shape: CodecShape, state: dict) -> VideoCodec:
    """A VideoCodec whose layers have the widths of `state` (a pruned checkpoint's weights; a dense one loads as
    VideoCodec(shape)), the weights loaded, eval mode. Raises RuntimeError / KeyError when they do not fit."""
    # the constructor's SE bottleneck (C // reduction) must not be empty for a narrow C; the state's sizes win
    codec = VideoCodec(dataclasses.replace(shape, channels=max(shape.channels, shape.reduction)))
    resize_to_state(codec, state)
    for stack in (codec.inter.enc_rnn, codec.inter.dec_rnn):
        for cell in stack.cells:
            cell.channels = cell.proj.conv.out_channels
    codec.shape = shape
    codec.load_state_dict(state)
    codec_structure(codec)          # the widths must chain: each layer reads what its producers make
    return codec.eval()


def keep_strongest(gated: GatedCodec, kept: dict[str, int]) -> None:
    """Set each named group's tau so that its hard mask keeps the `kept[group]` channels of largest norm (then
    snapped up to the gate's multiple, as training's masks are): a structural prune without training, for sizing
    the hardware of a pruned decoder. Groups not named keep every channel."""
    with torch.no_grad():
        for g, grp in gated.groups.items():
            n = int(kept.get(g, grp.units))
            if not 1 <= n <= grp.units:
                raise EdgecodecError(f"prune: group {g} has {grp.units} channels, cannot keep {n}")
            norms = torch.sort(gated.norms(g).detach(), descending=True).values
            # tau between the n-th and the (n+1)-th norm: exactly n above it (ties: the stable order decides)
            tau = -1.0 if n == grp.units else float(norms[n - 1] + norms[n]) / 2
            gated.gate(g).tau.fill_(tau)
