"""pcm.layout: the trainee packed into one (252, 255) crossbar matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.pcm import pack_trainee, trainee_mask, unpack_trainee


def test_pack_places_blocks_and_unpack_inverts_torch() -> None:
    g = torch.Generator().manual_seed(0)
    w_in = torch.randn(3, 250, 5, generator=g)
    w_rec = torch.randn(3, 250, 250, generator=g)
    w_out = torch.randn(3, 2, 250, generator=g)
    w = pack_trainee(w_in, w_rec, w_out)
    assert w.shape == (3, 252, 255)
    assert torch.equal(w[1, 7, 2], w_in[1, 7, 2])
    assert torch.equal(w[1, 7, 5 + 9], w_rec[1, 7, 9])
    assert torch.equal(w[2, 251, 5 + 4], w_out[2, 1, 4])
    assert w[:, 250:, :5].abs().sum() == 0
    a, b, c = unpack_trainee(w)
    assert torch.equal(a, w_in)
    assert torch.equal(b, w_rec)
    assert torch.equal(c, w_out)


def test_pack_numpy_and_mask() -> None:
    w_in, w_rec, w_out = np.ones((4, 2)), np.full((4, 4), 2.0), np.full((1, 4), 3.0)
    w = pack_trainee(w_in, w_rec, w_out)
    assert w.shape == (5, 6)
    assert w.tolist()[4] == [0.0, 0.0, 3.0, 3.0, 3.0, 3.0]
    a, b, c = unpack_trainee(w, n_in=2)
    assert np.array_equal(b, w_rec)
    assert np.array_equal(c, w_out)
    m = trainee_mask(2, 4, 1)
    assert m.shape == (5, 6)
    assert int(m.sum()) == 5 * 6 - 2 - 4  # zero block and w_rec diagonal unused
    assert not m[1, 2 + 1]


def test_layout_shape_errors_name_the_argument() -> None:
    with pytest.raises(ShapeError, match='^w_in:'):
        pack_trainee(torch.zeros(249, 5), torch.zeros(250, 250), torch.zeros(2, 250))
    with pytest.raises(ShapeError, match='^w_out:'):
        pack_trainee(torch.zeros(250, 5), torch.zeros(250, 250), torch.zeros(2, 249))
    with pytest.raises(ValueError):
        pack_trainee(np.zeros((250, 5)), torch.zeros(250, 250), torch.zeros(2, 250))
    with pytest.raises(ShapeError, match='^w:'):
        unpack_trainee(torch.zeros(252, 4))
