"""PyBulletArm: own client, fixed step, gravity, position control within the URDF limits."""

from __future__ import annotations

import numpy as np
import pytest

from l2l_nmhw_ros.errors import ShapeError

pytest.importorskip('pybullet')
from l2l_nmhw_ros.arm.kinematics import forward_kinematics  # noqa: E402
from l2l_nmhw_ros.arm.sim import PyBulletArm  # noqa: E402


@pytest.fixture
def arm():
    a = PyBulletArm()
    yield a
    a.close()


def test_time_is_steps_times_dt(arm):
    arm.step(250)
    assert arm.n_steps == 250
    assert arm.t == pytest.approx(250 * 0.004)


def test_holds_home_against_gravity(arm):
    arm.step(500)
    # the stretched arm is the worst case (23.7 N m at the shoulder, motor 30 N m); PyBullet's
    # soft motor constraint leaves a small static deflection (measured 2.6e-4 rad at the pitch)
    np.testing.assert_allclose(arm.joint_positions(), 0.0, atol=1e-3)


def test_reaches_a_position_target_at_the_velocity_limit(arm):
    goal = np.array([0.5, -1.0, 1.0, 0.5])
    arm.set_position_targets(goal)
    q_prev = arm.joint_positions()
    steps = []
    for _ in range(500):  # 2 s; the longest move (1 rad at 1 rad/s) takes 1 s
        arm.step()
        q = arm.joint_positions()
        steps.append(np.abs(q - q_prev))
        q_prev = q
    np.testing.assert_allclose(arm.joint_positions(), goal, atol=1e-3)
    steps = np.array(steps)
    assert steps.max() <= 1.0 * arm.dt + 1e-12
    # the base (no gravity load) moves at the limit: 1 rad/s for most of the 0.5 rad move
    assert steps[:100, 0].max() == pytest.approx(arm.dt, rel=1e-3)
    np.testing.assert_allclose(arm.end_effector_position(),
                               forward_kinematics(arm.joint_positions()), atol=1e-6)


def test_targets_are_clamped_to_the_limits(arm):
    arm.set_position_targets([10.0, -10.0, 0.0, 0.0])
    np.testing.assert_allclose(arm.target[:2], [arm.limits.upper[0], arm.limits.lower[1]])
    arm.step(1000)
    assert arm.limits.within(arm.joint_positions(), tol=1e-3)


def test_two_arms_in_one_process_are_independent():
    with PyBulletArm() as a, PyBulletArm() as b:
        a.set_position_targets([1.0, 0.0, 0.0, 0.0])
        a.step(100)
        b.step(100)
        assert a.joint_positions()[0] > 0.3
        assert abs(b.joint_positions()[0]) < 1e-6


def test_reset_teleports_and_restarts_time(arm):
    arm.step(10)
    arm.reset([0.1, 0.2, 0.3, 0.4])
    assert arm.t == 0.0
    np.testing.assert_allclose(arm.joint_positions(), [0.1, 0.2, 0.3, 0.4], atol=1e-12)


def test_bad_input_and_close_is_idempotent(arm):
    with pytest.raises(ShapeError, match='q'):
        arm.set_position_targets([0.0, 0.0])
    with pytest.raises(ValueError, match='finite'):
        arm.set_position_targets([np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='dt'):
        PyBulletArm(dt=0.0)
    arm.close()
    arm.close()
