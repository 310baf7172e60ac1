"""Structured pruning of convolution stacks by output channel, with gradient decay (seed 002; issue 13).

A stack is an `nn.Sequential` of Conv2d / ReLU / Hardtanh / PixelShuffle (every stack of the codec, model/codec).
Each prunable convolution gets a `ChannelGate`: a learnable threshold tau on the L2 norms of its *groups* of output
channels (the r^2 channels a PixelShuffle(r) folds into one output channel, else single channels):

    mask_g = 1[ ||W_g||_2 > tau ]                         the hard mask of the forward pass
    keep   = mean_g sigmoid((||W_g||_2 - tau) / T)        a differentiable estimate of the kept fraction

Gradient decay (instead of the straight-through estimator): the forward pass uses W * mask; the gradient that
reaches a pruned weight is the gradient of the unmasked weight *scaled* by beta, beta annealed from 1 to 0 while the
masks settle (beta = 1 is the straight-through estimator, beta = 0 plain hard masking). The authors' public code
replaces the gradient by beta and applies it after the mask multiplication, so pruned weights got no gradient at
all; here `decay_mask` scales it.

`shrink` removes what the masks prune: a narrower `nn.Sequential` (real MAC savings, not a masked model) whose
outputs equal the masked stack's; `ChannelGate.multiple` snaps kept channel counts to a multiple (an accelerator's
PE / SIMD) inside the mask, so training sees the snapped model. The stack's last convolution keeps its outputs (they are the stack's interface); the caller prunes interfaces
shared between stacks as one group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from base.errors import EdgecodecError


class _DecayMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.beta = beta
        return w * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad * (mask + ctx.beta * (1 - mask)), None, None


def decay_mask(w: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """w * mask forward; backward, d/dw = grad (kept) or beta * grad (pruned): gradient decay."""
    if not 0.0 <= beta <= 1.0:
        raise EdgecodecError(f"gradient decay beta must be in [0, 1] (got {beta})")
    return _DecayMask.apply(w, mask, beta)


def shuffle_groups(seq: nn.Sequential, index: int) -> int:
    """Output channels of conv `index` that one PixelShuffle output channel takes (r^2), or 1."""
    for m in list(seq)[index + 1:]:
        if isinstance(m, nn.PixelShuffle):
            return m.upscale_factor ** 2
        if isinstance(m, nn.Conv2d):
            return 1
    return 1


def group_norms(weight: torch.Tensor, group: int) -> torch.Tensor:
    """L2 norm of each group of `group` consecutive output channels' filters."""
    return weight.reshape(weight.shape[0] // group, -1).norm(dim=1)


class ChannelGate(nn.Module):
    """The pruning state of one convolution: its threshold tau, group size, temperature and gradient decay beta."""

    def __init__(self, conv: nn.Conv2d | None, group: int, temperature: float = 0.05, tau: float = 0.0,
                 multiple: int = 1, floor: int = 1):
        super().__init__()
        if conv is not None and conv.out_channels % group:
            raise EdgecodecError(f"a convolution of {conv.out_channels} outputs cannot prune in groups of {group}")
        if multiple < 1:
            raise EdgecodecError(f"channel multiple must be >= 1 (got {multiple})")
        if floor < 1:
            raise EdgecodecError(f"a gate's floor (groups always kept) must be >= 1 (got {floor})")
        self.group = group
        self.multiple = multiple
        self.floor = floor
        self.temperature = temperature
        self.beta = 1.0
        self.tau = nn.Parameter(torch.tensor(float(tau)))

    def group_mask(self, weight: torch.Tensor) -> torch.Tensor:
        """1 for each kept group: those above tau, at least `floor` (a layer never prunes to nothing), rounded up to
        a multiple of `multiple` groups (or all) by the next largest norms: the kept channels the next layer sees
        (one a group) fold onto the accelerator's PE / SIMD."""
        return self.mask_from_norms(group_norms(weight.detach(), self.group))

    def mask_from_norms(self, norms: torch.Tensor) -> torch.Tensor:
        """group_mask of given group norms (a group shared by several layers combines their norms)."""
        norms = norms.detach()
        n = len(norms)
        above = int((norms > self.tau.detach()).sum())
        want = min(n, -(-max(self.floor, above) // self.multiple) * self.multiple)
        mask = torch.zeros(n, device=norms.device)
        mask[torch.argsort(norms, descending=True, stable=True)[:want]] = 1.0
        return mask

    def keep_fraction(self, weight: torch.Tensor) -> torch.Tensor:
        """Differentiable estimate of the kept fraction (in tau and in the weights)."""
        return self.keep_from_norms(group_norms(weight, self.group))

    def keep_from_norms(self, norms: torch.Tensor) -> torch.Tensor:
        """keep_fraction of given (differentiable) group norms."""
        return torch.sigmoid((norms - self.tau) / self.temperature).mean()

    def channel_mask(self, weight: torch.Tensor) -> torch.Tensor:
        return self.group_mask(weight).repeat_interleave(self.group)


class GatedConv(nn.Module):
    """A Conv2d whose output channels a ChannelGate masks (forward: pruned filters and biases are zero)."""

    def __init__(self, conv: nn.Conv2d, gate: ChannelGate):
        super().__init__()
        self.conv, self.gate = conv, gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        m = self.gate.channel_mask(c.weight)
        w = decay_mask(c.weight, m.view(-1, 1, 1, 1), self.gate.beta)
        b = None if c.bias is None else decay_mask(c.bias, m, self.gate.beta)
        return F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)


def gate_stack(seq: nn.Sequential, temperature: float = 0.05, multiple: int = 1) -> nn.Sequential:
    """The stack with every convolution but the last wrapped in a GatedConv (same parameters, shared)."""
    convs = [i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)]
    mods = list(seq)
    for i in convs[:-1]:
        mods[i] = GatedConv(seq[i], ChannelGate(seq[i], shuffle_groups(seq, i), temperature, multiple=multiple))
    return nn.Sequential(*mods)


def stack_macs(seq: nn.Sequential, height: int, width: int, keep: dict | None = None):
    """MACs of a stack on a height x width input; keep = {conv index: kept output channels (float allowed)} for the
    pruned convolutions (GatedConv or Conv2d), the others at full width; tensors give a differentiable count. The
    next convolution's input channels follow its producer's kept outputs (over r^2 after a PixelShuffle)."""
    keep = keep or {}
    h, w, cin = height, width, None
    total = 0.0
    for i, m in enumerate(seq):
        conv = m.conv if isinstance(m, GatedConv) else m
        if isinstance(conv, nn.Conv2d):
            cin = conv.in_channels if cin is None else cin
            s, p, k = conv.stride[0], conv.padding[0], conv.kernel_size[0]
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            cout = keep.get(i, conv.out_channels)
            total += k * k * h * w * cin * cout
            cin = cout
        elif isinstance(m, nn.PixelShuffle):
            r = m.upscale_factor
            h, w, cin = h * r, w * r, cin / (r * r)
    return total


def shrink(gated: nn.Sequential) -> nn.Sequential:
    """A plain nn.Sequential without the pruned channels of `gated` (gate_stack's output): each GatedConv keeps its
    kept groups, the next convolution loses the matching input channels. Its outputs equal the gated stack's (for
    activations that keep 0 at 0: ReLU, Hardtanh around 0)."""
    mods, keep_in = [], None
    for m in gated:
        if isinstance(m, GatedConv):
            conv, gate = m.conv, m.gate
            groups = torch.nonzero(gate.group_mask(conv.weight)).flatten().tolist()
            out_idx = torch.tensor([g * gate.group + j for g in groups for j in range(gate.group)])
            new = _narrow(conv, out_idx, keep_in)
            mods.append(new)
            keep_in = ("shuffle", torch.tensor(groups)) if gate.group > 1 else ("plain", out_idx)
        elif isinstance(m, nn.Conv2d):
            mods.append(_narrow(m, None, keep_in))
            keep_in = None
        elif isinstance(m, nn.PixelShuffle):
            mods.append(nn.PixelShuffle(m.upscale_factor))
            if keep_in is not None and keep_in[0] == "shuffle":
                keep_in = ("plain", keep_in[1])
        else:
            mods.append(m)
    return nn.Sequential(*mods)


def _narrow(conv: nn.Conv2d, out_idx: torch.Tensor | None, keep_in) -> nn.Conv2d:
    w = conv.weight.detach()
    b = None if conv.bias is None else conv.bias.detach()
    if keep_in is not None:
        if keep_in[0] != "plain":
            raise EdgecodecError("a pruned sub-pixel convolution must be followed by its PixelShuffle")
        w = w[:, keep_in[1]]
    if out_idx is not None:
        w = w[out_idx]
        b = None if b is None else b[out_idx]
    new = nn.Conv2d(w.shape[1], w.shape[0], conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def feature_distortion(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Layer-wise distillation distance: features L2-normalised per pixel over channels, then their MSE."""
    if student.shape != teacher.shape:
        raise EdgecodecError(f"distillation needs equal feature shapes (student {tuple(student.shape)}, teacher "
                             f"{tuple(teacher.shape)})")
    s = student / (student.norm(dim=1, keepdim=True) + eps)
    t = teacher / (teacher.norm(dim=1, keepdim=True) + eps)
    return F.mse_loss(s, t)


def distill_stack(gated: nn.Sequential, teacher: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Run the gated stack on x; at each of its GatedConvs also run the teacher's convolution at the same position on
    the student's own input (the teacher is the dense stack the gated one was made from, `gate_stack`). Returns
    (output, per GatedConv feature_distortion)."""
    if len(gated) != len(teacher):
        raise EdgecodecError(f"teacher stack has {len(teacher)} modules, the gated one {len(gated)}")
    losses = []
    for m, t in zip(gated, teacher):
        if isinstance(m, GatedConv):
            with torch.no_grad():
                want = t(x)
            x = m(x)
            losses.append(feature_distortion(x, want))
        else:
            x = m(x)
    return x, losses


def decay_beta(step: int, start: int, end: int) -> float:
    """Gradient decay's beta: 1 until `start`, linear to 0 at `end`, 0 after."""
    if end <= start:
        raise EdgecodecError(f"gradient decay needs end > start (got {start}, {end})")
    return float(min(1.0, max(0.0, (end - step) / (end - start))))


def check_budget(budget: float) -> float:
    """A MAC budget: the fraction of the dense model's MACs to remove, strictly between 0 and 1."""
    if not 0.0 < budget < 1.0:
        raise EdgecodecError(f"MAC budget must be in (0, 1): the fraction of MACs to remove (got {budget})")
    return float(budget)


def soft_stack_macs(gated: nn.Sequential, height: int, width: int) -> torch.Tensor:
    """stack_macs with each GatedConv's kept outputs at its differentiable estimate (keep_fraction x width)."""
    keep = {i: m.gate.keep_fraction(m.conv.weight) * m.conv.out_channels
            for i, m in enumerate(gated) if isinstance(m, GatedConv)}
    return stack_macs(gated, height, width, keep)


def resize_to_state(module: nn.Module, state: dict) -> nn.Module:
    """Give every Conv2d / Linear of `module` the channel counts of its weight in `state` (a pruned model's state
    dict): narrower layers replace the constructor's ones, same kernel, stride, padding and bias; a depth-wise
    convolution stays depth-wise. Layers whose shapes already match are left as they are (a dense state dict
    changes nothing). The weights themselves are not loaded (load_state_dict does that)."""
    for name, m in list(module.named_modules()):
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or f"{name}.weight" not in state:
            continue
        w = state[f"{name}.weight"]
        if tuple(w.shape) == tuple(m.weight.shape):
            continue
        bias = m.bias is not None
        if isinstance(m, nn.Linear):
            new = nn.Linear(w.shape[1], w.shape[0], bias=bias)
        elif m.groups == 1:
            new = nn.Conv2d(w.shape[1], w.shape[0], m.kernel_size, m.stride, m.padding, m.dilation, bias=bias,
                            padding_mode=m.padding_mode)
        elif m.groups == m.in_channels == m.out_channels and w.shape[1] == 1:
            new = nn.Conv2d(w.shape[0], w.shape[0], m.kernel_size, m.stride, m.padding, m.dilation,
                            groups=w.shape[0], bias=bias, padding_mode=m.padding_mode)
        else:
            raise EdgecodecError(f"{name}: a grouped convolution ({m.groups} groups) cannot be resized")
        parent, _, leaf = name.rpartition(".")
        (module.get_submodule(parent) if parent else module)._modules[leaf] = new
    return module
