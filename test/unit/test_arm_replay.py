"""Recorded ED-Scorbot trajectories (square, lemniscate) replayed through the simulated arm.

Each recorded point (joints 1-4 in degrees; the real robot's convention, which is also the
convention of our joint positions, see docs/arm.md) is commanded through the safety filter until
the arm settles; every point must then be reached within REACH_TOL on every joint, and the end
effector within REACH_TOL x 0.92 m (the longest lever arm) of the point's forward kinematics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from l2l_nmhw_ros.arm.kinematics import forward_kinematics
from l2l_nmhw_ros.arm.safety import SafetyFilter
from l2l_nmhw_ros.config import ArmConfig

pytest.importorskip('pybullet')
from l2l_nmhw_ros.arm.sim import PyBulletArm  # noqa: E402

#: Reach tolerance per joint [rad] (0.057 deg; the static gravity sag of the sim is < 3e-4 rad).
REACH_TOL = 1e-3
#: Settled: every joint slower than this [rad/s].
SETTLED_SPEED = 1e-2


def replay(q_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the settled joint positions and end-effector points, one row per recorded point."""
    cfg = ArmConfig()
    reached, p_ee = [], []
    with PyBulletArm(q0=q_points[0]) as arm:
        f = SafetyFilter(arm.limits, arm.joint_names, cmd_timeout=cfg.cmd_timeout,
                         max_velocity=cfg.max_velocity, max_acceleration=cfg.max_acceleration)
        for goal in q_points:
            # deadline: the move at the velocity limit plus 2 s to accelerate and settle
            deadline = arm.t + np.abs(goal - arm.joint_positions()).max() / cfg.max_velocity + 2.0
            while arm.t < deadline:
                f.command(goal, arm.t)  # streamed, as a controller would
                arm.set_position_targets(f.update(arm.joint_positions(), arm.t))
                arm.step()
                q, dq, _ = arm.joint_state()
                if np.abs(q - goal).max() < REACH_TOL and np.abs(dq).max() < SETTLED_SPEED:
                    break
            reached.append(arm.joint_positions())
            p_ee.append(arm.end_effector_position())
    return np.array(reached), np.array(p_ee)


@pytest.mark.parametrize('name', ['square_x_13_6.67_4', 'lemniscate_Rz60Rx-60_100_1.32_4'])
def test_recorded_trajectory_is_reached_point_by_point(shared_data, name):
    path = shared_data / 'ed_scorbot' / 'trajectories' / name / 'joints_degrees.json'
    if not path.is_file():
        pytest.skip(f'recorded trajectory {path} is absent')
    q_points = np.radians(np.array(json.loads(path.read_text()), dtype=np.float64)[:, :4])
    assert q_points.shape[0] > 10
    reached, p_ee = replay(q_points)
    err = np.abs(reached - q_points).max(axis=1)
    assert err.max() < REACH_TOL, f'worst point {err.argmax()}: {err.max():.3g} rad'
    ee_err = np.linalg.norm(p_ee - forward_kinematics(q_points), axis=1)
    assert ee_err.max() < REACH_TOL * 0.92
