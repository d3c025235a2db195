"""Closed-form Jacobian, joint limits and safe ranges, numerical inverse kinematics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from l2l_nmhw_ros.arm import kinematics as K
from l2l_nmhw_ros.errors import ShapeError


def test_jacobian_matches_central_differences():
    rng = np.random.default_rng(1)
    q = rng.uniform(-1.5, 1.5, size=(20, 4))
    h = 1e-6
    num = np.stack([(K.forward_kinematics(q + h * e) - K.forward_kinematics(q - h * e)) / (2 * h)
                    for e in np.eye(4)], axis=-1)
    # central differences: truncation O(h^2 |FK'''|) ~ 1e-12, rounding ~ eps/h ~ 1e-10
    np.testing.assert_allclose(K.jacobian(q), num, atol=1e-8)


def test_jacobian_at_home_by_hand():
    # q = 0: x = 0.92, y = -0.033; dx/dq1 = y (theta1 = -q1) = -0.033; dy/dq1 = -x = -0.92;
    # dz/dq2 = a2 + a3 + a4 = 0.87; dz/dq3 = a3 + a4 = 0.57; dz/dq4 = -a4 = -0.22
    j = K.jacobian(np.zeros(4))
    np.testing.assert_allclose(j[:, 0], [-0.033, -0.92, 0.0], atol=1e-12)
    np.testing.assert_allclose(j[2, 1:], [0.87, 0.57, -0.22], atol=1e-12)
    np.testing.assert_allclose(j[:2, 1:], 0.0, atol=1e-12)


def test_safe_limits_intersect_the_paper_ranges_with_the_urdf():
    s = K.safe_limits()
    assert s.upper[1] == pytest.approx(math.radians(70.0))  # shoulder: paper's 70 deg
    assert s.upper[0] == pytest.approx(2.18166156499)  # base: URDF's 125 deg < paper's 130
    assert s.upper[2] == K.load_joint_limits().upper[2]


def test_joint_limits_reject_inconsistent_values():
    with pytest.raises(ValueError, match='lower > upper'):
        K.JointLimits(('a',), np.array([1.0]), np.array([0.0]), np.array([1.0]), np.array([1.0]))
    with pytest.raises(ShapeError, match='upper'):
        K.JointLimits(('a',), np.array([0.0]), np.zeros(2), np.array([1.0]), np.array([1.0]))


def test_ik_recovers_reachable_targets_within_limits():
    lim = K.load_joint_limits()
    rng = np.random.default_rng(7)
    for q_true in rng.uniform(lim.lower * 0.9, lim.upper * 0.9, size=(10, 4)):
        p = K.forward_kinematics(q_true)
        res = K.inverse_kinematics(p)
        assert res.reachable
        assert res.distance < 1e-6
        assert lim.within(res.q)
        np.testing.assert_allclose(K.forward_kinematics(res.q), p, atol=1e-6)


def test_ik_two_joint_solution_is_exact_for_a_two_joint_target():
    q_true = np.array([0.3, 0.5, 0.0, 0.0])
    res = K.inverse_kinematics(K.forward_kinematics(q_true), active_joints=(0, 1))
    assert res.reachable
    np.testing.assert_allclose(res.q, q_true, atol=1e-7)
    assert res.q[2] == 0.0
    assert res.q[3] == 0.0


def test_unreachable_target_reports_distance_to_workspace():
    # At shoulder height the farthest reachable points are the stretched, horizontal arm tips,
    # on a circle of radius rho = hypot(0.92, d2 + d3) around the base axis (any bend or tilt
    # shortens the horizontal reach and changes the height). A target at that height and
    # horizontal distance D > rho is therefore D - rho away, reached along its own direction.
    p = np.array([2.0, -0.033, 0.3585])
    rho, d = math.hypot(0.92, -0.033), math.hypot(2.0, -0.033)
    res = K.inverse_kinematics(p)
    assert not res.reachable
    assert res.distance == pytest.approx(d - rho, abs=1e-7)
    np.testing.assert_allclose(res.p[:2] / np.linalg.norm(res.p[:2]), p[:2] / d, atol=1e-6)
    assert res.p[2] == pytest.approx(0.3585, abs=1e-6)


def test_two_joint_workspace_is_a_surface():
    # elbow and pitch fixed at 0: the tip is 0.87 m from the shoulder axis in the arm plane.
    # A target at shoulder height, horizontal distance D = 0.551 m (inside the reach) is nearest
    # to the horizontal tip: rho - D with rho = hypot(0.92, d2 + d3) (tilting by phi costs
    # 0.87 sin(phi) in height more than it gains radially; checked to second order by hand:
    # (0.87 c - 0.5)^2 + 0.87^2 s^2 = 1.0069 - 0.87 c is smallest at c = 1).
    rho, d = math.hypot(0.92, -0.033), math.hypot(0.55, -0.033)
    res = K.inverse_kinematics(np.array([0.55, -0.033, 0.3585]), active_joints=(0, 1))
    assert not res.reachable
    assert res.distance == pytest.approx(rho - d, abs=1e-6)


def test_ik_rejects_bad_input():
    with pytest.raises(ShapeError, match='p_target'):
        K.inverse_kinematics(np.zeros(2))
    with pytest.raises(ValueError, match='p_target'):
        K.inverse_kinematics(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match='active_joints'):
        K.inverse_kinematics(np.zeros(3), active_joints=(4,))
    with pytest.raises(ShapeError, match='q0'):
        K.inverse_kinematics(np.zeros(3), q0=np.zeros(3))
