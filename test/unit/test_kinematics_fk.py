"""Analytic forward kinematics of the paper code (hand-computed cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.arm.kinematics import forward_kinematics
from l2l_nmhw_ros.errors import ShapeError


def test_home_pose():
    np.testing.assert_allclose(forward_kinematics(np.zeros(4)), [0.920, -0.033, 0.3585],
                               atol=1e-12)


def test_base_quarter_turn_by_hand():
    # q1 = -pi/2 -> theta1 = +pi/2: x = -(d2 + d3) = 0.033, y = r = 0.92
    np.testing.assert_allclose(forward_kinematics([-math.pi / 2, 0.0]), [0.033, 0.92, 0.3585],
                               atol=1e-12)


def test_shoulder_quarter_turn_by_hand():
    # q2 = -pi/2 -> theta2 = pi/2: r = a1 = 0.05; z = d1 - a2 - a3 - a4 = 0.3585 - 0.87
    np.testing.assert_allclose(forward_kinematics([0.0, -math.pi / 2]), [0.05, -0.033, -0.5115],
                               atol=1e-12)


def test_torch_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, size=(7, 5, 2))
    qt = torch.tensor(q, requires_grad=True)
    p = forward_kinematics(qt)
    np.testing.assert_allclose(p.detach().numpy(), forward_kinematics(q), atol=1e-12)
    p.sum().backward()
    assert qt.grad is not None and torch.isfinite(qt.grad).all()


def test_bad_shape():
    with pytest.raises(ShapeError, match='q: expected'):
        forward_kinematics(np.zeros(5))
