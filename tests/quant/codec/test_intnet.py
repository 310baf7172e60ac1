"""quant.codec.intnet.IntSequential.run against the contract's int64 arithmetic (docs/numerics.md, "Convolution
stacks"; `run_int64`: acc = sum w * x + bias exactly, requant_t (round half to even, saturate), ReLU / Hardtanh
clamps, PixelShuffle). run() computes on integer-valued float64 tensors; it must give the same codes. Hand-worked
codes pin the rounding of ties and the negative shifts independently of both."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quant.codec.intnet import IntSequential, convert


def _stack(seed: int) -> tuple[nn.Sequential, int]:
    g = torch.Generator().manual_seed(seed)
    cin = int(torch.randint(2, 9, (1,), generator=g))
    mid = int(torch.randint(2, 9, (1,), generator=g))
    stride = int(torch.randint(1, 3, (1,), generator=g))
    torch.manual_seed(seed)
    seq = nn.Sequential(nn.Conv2d(cin, 4 * mid, 3, stride, 1), nn.ReLU(), nn.PixelShuffle(2),
                        nn.Conv2d(mid, mid, 1), nn.Hardtanh(-0.5, 0.75), nn.Conv2d(mid, 3, 3, 1, 1))
    with torch.no_grad():
        for m in seq:
            if isinstance(m, nn.Conv2d):       # channels of very different ranges: per-channel grids differ
                m.weight.mul_(torch.logspace(-3, 1, m.out_channels, base=2)[:, None, None, None])
    return seq, cin


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("act_bits", [8, 12])
def test_run_equals_the_int64_contract(seed, act_bits):
    seq, cin = _stack(seed)
    calib = [torch.randn(2, cin, 12, 10) for _ in range(2)]
    net = convert(seq, calib, 6, 9, act_bits, 8)
    x = torch.randint(-256, 256, (3, cin, 12, 10))
    x[0, 0, 0, :4] = torch.tensor([-256, 255, 0, -1])          # the input range's ends
    got, want = net.run(x), net.run_int64(x)
    assert got.dtype == want.dtype == torch.int64 and torch.equal(got, want)


def test_ties_round_to_even_and_negative_shifts_are_exact():
    """Hand-made layers: accumulators exactly halfway between two codes (both parities, both signs), and a
    negative requantization shift (an exact left shift) that saturates."""
    w = np.zeros((1, 1, 1, 1), dtype=np.int64)
    w[0, 0, 0, 0] = 1
    tie = IntSequential([{"kind": "conv", "w": w, "f_w": [0], "b": np.array([0]), "stride": 1, "pad": 0,
                          "shift": 2, "bits": 8, "in_bits": 12}], 0, 0)
    x = torch.tensor([2, 6, -2, -6, 10, -10, 3, -3, 5, -5, 1000, -1000]).view(1, 1, 1, -1)
    assert tie.run(x).flatten().tolist() == [0, 2, 0, -2, 2, -2, 1, -1, 1, -1, 127, -128]
    assert torch.equal(tie.run(x), tie.run_int64(x))
    left = IntSequential([{"kind": "conv", "w": w * 3, "f_w": [0], "b": np.array([1]), "stride": 1, "pad": 0,
                           "shift": -3, "bits": 10, "in_bits": 12}], 0, 0)
    assert left.run(x).flatten().tolist()[:4] == [56, 152, -40, -136]
    assert torch.equal(left.run(x), left.run_int64(x))


def test_a_changed_weight_code_changes_the_output():
    seq, cin = _stack(1)
    net = convert(seq, [torch.randn(2, cin, 12, 10)], 6, 9, 12, 8)
    x = torch.randint(-256, 256, (2, cin, 12, 10))
    before = net.run(x)
    layer = net.layers[0]
    layer["w"] = np.asarray(layer["w"]).copy()
    layer["w"][0, 0, 1, 1] += 7
    assert not torch.equal(IntSequential(net.layers, net.f_in, net.f_out).run(x), before)
