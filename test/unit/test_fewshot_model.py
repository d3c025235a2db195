"""Few-shot CNN (l2l_nmhw_ros.fewshot.model): forward pass on hand-computed inputs.

Every expected value below is worked out by hand in the comment next to it (conv 3×3, stride 2,
padding 1; BatchNorm without affine, ε = 1e-3; global 2×2 max-pool; readout without bias).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.fewshot import model as M


def test_conv_stride2_pad1_on_3x3_matches_hand_sums() -> None:
    # x = [[1,2,3],[4,5,6],[7,8,9]], all-ones 3×3 kernel, stride 2, padding 1: output (i, j)
    # sums the real pixels of rows 2i-1..2i+1, cols 2j-1..2j+1:
    # (0,0) 1+2+4+5 = 12; (0,1) 2+3+5+6 = 16; (1,0) 4+5+7+8 = 24; (1,1) 5+6+8+9 = 28
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    k = torch.ones(1, 1, 3, 3)
    want = torch.tensor([[[[12.0, 16.0], [24.0, 28.0]]]])
    assert torch.equal(M.conv2d(x, k), want)
    # the im2col path (an MVM per layer, as on the crossbar) gives the same numbers
    y = M.conv2d(x, k, mvm=lambda cols: cols @ k.reshape(1, -1).T)
    assert torch.allclose(y, want, atol=0)


def test_im2col_conv_equals_conv2d_on_random_input() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, 14, 14, generator=g)
    k = torch.randn(6, 5, 3, 3, generator=g)
    y_ref = M.conv2d(x, k)
    y = M.conv2d(x, k, mvm=lambda cols: cols @ k.reshape(6, -1).T)
    assert y.shape == (4, 6, 7, 7)
    assert torch.allclose(y, y_ref, atol=1e-5)


def test_batch_norm_modes_hand_values() -> None:
    # one episode, two 1×1 images of one channel with values 0 and 2: mean 1, biased var 1,
    # y = (x - 1)/sqrt(1 + 1e-3) = ∓0.99950037...
    x = torch.tensor([0.0, 2.0]).reshape(1, 2, 1, 1, 1)
    y = M.batch_norm(x, 'batch').flatten()
    s = 1.0 / math.sqrt(1.001)
    assert torch.allclose(y, torch.tensor([-s, s]), atol=1e-7)
    # fixed (moving statistics 0 / 1 of the code's momentum-1 layers): x / sqrt(1 + eps)
    assert torch.allclose(M.batch_norm(x, 'fixed').flatten(), torch.tensor([0.0, 2.0 * s]))
    # statistics are per episode: a second episode with other values does not change the first
    x2 = torch.cat([x, x * 10 + 5])
    assert torch.allclose(M.batch_norm(x2, 'batch')[0].flatten(), torch.tensor([-s, s]),
                          atol=1e-7)
    with pytest.raises(ValueError, match='mode'):
        M.batch_norm(x, 'moving')


def _centre_tap_weights(readout: list[list[float]]) -> M.CNNWeights:
    k = torch.zeros(1, 1, 3, 3)
    k[0, 0, 1, 1] = 1.0  # centre tap: out(i, j) = in(2i, 2j)
    return M.CNNWeights(tuple(k.clone() for _ in range(4)), torch.tensor(readout))


def test_cnn_forward_hand_computed_tiny_network() -> None:
    # 1 channel, centre-tap kernels: layer l output (i, j) = input(2^l i, 2^l j); the final 2×2
    # map holds x[0,0], x[0,16], x[16,0], x[16,16]. Fixed BN divides by sqrt(1.001) per layer,
    # ReLU keeps positives, the max-pool takes the largest: f = 0.9 / 1.001**2.
    w = _centre_tap_weights([[2.0], [-1.0]])
    x = torch.full((1, 1, 28, 28), 0.05)
    x[0, 0, 0, 0], x[0, 0, 0, 16], x[0, 0, 16, 0], x[0, 0, 16, 16] = 0.2, 0.9, -0.4, 0.3
    x[0, 0, 5, 5] = 7.0  # never sampled by the centre taps: must not matter
    f = M.features(x, w.kernels, 'fixed')
    want = 0.9 / 1.001 ** 2
    assert f.shape == (1, 1)
    assert float(f) == pytest.approx(want, rel=1e-6)
    z = M.readout_logits(f, w.readout)
    assert torch.allclose(z, torch.tensor([[2 * want, -want]]), atol=1e-6)


def test_cnn_forward_batch_bn_hand_computed() -> None:
    # Two constant images (1 and 3) through centre-tap kernels stay constant maps (a centre tap
    # never reads padding). Per layer: conv = identity on the values, ReLU, then batch BN over
    # the 2 images and all positions: m = mean, v = biased variance, (r - m)/sqrt(v + 1e-3).
    # Layer 1: r = (1, 3), m = 2, v = 1 -> (-0.9995, 0.9995); layer 2: r = (0, 0.9995),
    # m = 0.49975, v = 0.24975 -> ±0.49975/0.50075 = ±0.99800; layers 3 and 4: r = (0, s),
    # s' = (s/2)/sqrt(s²/4 + 1e-3) stays ±0.99800 (computed below in the same order); the
    # max-pool of a constant map is its value.
    w = _centre_tap_weights([[1.0]])
    x = torch.stack([torch.full((1, 28, 28), 1.0), torch.full((1, 28, 28), 3.0)])
    f = M.features(x, w.kernels, 'batch').flatten()
    vals = [1.0, 3.0]
    for _ in range(4):
        r = [max(v0, 0.0) for v0 in vals]
        m = sum(r) / 2
        var = sum((q - m) ** 2 for q in r) / 2
        vals = [(q - m) / math.sqrt(var + 1e-3) for q in r]
    assert vals == pytest.approx([-0.99800, 0.99800], abs=1e-5)
    assert f.tolist() == pytest.approx(vals, abs=1e-5)


def test_weights_shapes_and_round_trip() -> None:
    w = M.CNNWeights.glorot(torch.Generator().manual_seed(0), channels=8, ways=5)
    assert [tuple(k.shape) for k in w.kernels] == [(8, 1, 3, 3)] + [(8, 8, 3, 3)] * 3
    # Glorot bound of the code's TF kernel (3, 3, 8, 8): sqrt(6 / (9·8 + 9·8)) = 0.2041
    assert float(w.kernels[1].abs().max()) <= math.sqrt(6 / 144) + 1e-7
    back = M.CNNWeights.from_arrays(w.to_arrays())
    assert all(torch.equal(a, b) for a, b in zip(back.kernels, w.kernels, strict=True))
    with pytest.raises(ShapeError, match='readout'):
        M.CNNWeights(w.kernels, torch.zeros(5, 7))
    with pytest.raises(ValueError, match='missing'):
        M.CNNWeights.from_arrays({'omniglot.kernel1': np.zeros((8, 1, 3, 3))})
