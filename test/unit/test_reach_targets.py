"""Random reach targets drawn uniformly from the set the learned joints reach; the nearest
reachable point of an unreachable target; how `l2l-nmhw reach` prints it."""

from __future__ import annotations

import numpy as np
import pytest

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.arm.kinematics import JOINT_NAMES, forward_kinematics, jacobian
from l2l_nmhw_ros.reach.episode import (ReachPlanner, UnreachableTarget, planner_limits,
                                        random_reachable_targets)
from l2l_nmhw_ros.ros.tools import reach_cli

REACH3 = {'trainee': {'n_out': 3}, 'task': {
    'learned_joints': ['base_joint', 'shoulder', 'elbow'],
    'joint_lo': [-2.18, -1.22, -1.57], 'joint_hi': [2.18, 1.22, 1.57]}}


def _volume_element(cfg: C.L2LConfig, q: np.ndarray) -> np.ndarray:
    cols = [JOINT_NAMES.index(j) for j in cfg.task.learned_joints]
    jk = jacobian(q)[:, :, cols]
    return np.sqrt(np.abs(np.linalg.det(np.swapaxes(jk, 1, 2) @ jk)))


def test_targets_are_reachable_far_enough_and_seeded() -> None:
    cfg = C.from_dict(REACH3)
    p = random_reachable_targets(cfg, 200, np.random.default_rng(0), min_travel=0.1)
    home = forward_kinematics(np.zeros(4))
    assert p.shape == (200, 3) and (np.linalg.norm(p - home, axis=1) >= 0.1).all()
    np.testing.assert_array_equal(  # seeded: the same draw again; another seed, other targets
        p, random_reachable_targets(cfg, 200, np.random.default_rng(0), min_travel=0.1))
    assert not np.allclose(
        p, random_reachable_targets(cfg, 200, np.random.default_rng(1), min_travel=0.1))
    lim = planner_limits(cfg)
    planner = ReachPlanner(cfg, {'w_in': np.zeros((1, 1)), 'w_rec': np.zeros((1, 1)),
                                 'w_out': np.zeros((cfg.trainee.n_rec, 1))})
    for x in p[:10]:  # the controller accepts them (IK inside the same limits)
        assert planner.plan(x).ik_distance <= cfg.control.reach_tolerance
    assert lim.upper[lim.index('elbow')] == pytest.approx(1.57)


def test_targets_are_uniform_in_the_reachable_volume_not_in_joint_space() -> None:
    """Kept with probability v(q) / v_max: the share of targets drawn where the arm is nearly
    folded (v < v_max / 5) is the v-weighted share, not the joint-space share."""
    cfg = C.from_dict(REACH3)
    rng = np.random.default_rng(1)
    lim = planner_limits(cfg)
    lo = [lim.lower[lim.index(j)] for j in cfg.task.learned_joints]
    hi = [lim.upper[lim.index(j)] for j in cfg.task.learned_joints]
    q = np.zeros((200_000, 4))
    q[:, :3] = rng.uniform(lo, hi, size=(200_000, 3))
    far = np.linalg.norm(forward_kinematics(q) - forward_kinematics(np.zeros(4)), axis=1) >= 0.1
    v = _volume_element(cfg, q)[far]
    small = v < v.max() / 5
    expected = float((v * small).sum() / v.sum())  # the v-weighted share
    n = 4000
    p = random_reachable_targets(cfg, n, np.random.default_rng(2), min_travel=0.1)
    # the volume element at each target (IK of a 3-joint arm: solve and measure)
    planner = ReachPlanner(cfg, {'w_in': np.zeros((1, 1)), 'w_rec': np.zeros((1, 1)),
                                 'w_out': np.zeros((cfg.trainee.n_rec, 1))})
    sub = p[:400]
    vq = np.array([_volume_element(cfg, planner.plan(x).q_goal[None, :])[0] for x in sub])
    observed = float((vq < v.max() / 5).mean())
    se = np.sqrt(expected * (1 - expected) / len(sub))
    assert abs(observed - expected) < 4 * se + 0.01, (observed, expected)
    assert float(small.mean()) > expected + 8 * se  # joint-uniform would crowd there


def test_unreachable_target_names_the_nearest_reachable_point_and_the_cli_prints_it() -> None:
    cfg = C.L2LConfig()  # base + shoulder learned: a surface
    planner = ReachPlanner(cfg, {'w_in': np.zeros((1, 1)), 'w_rec': np.zeros((1, 1)),
                                 'w_out': np.zeros((cfg.trainee.n_rec, 1))})
    target = np.array([0.3, 0.2, 0.9])
    with pytest.raises(UnreachableTarget) as info:
        planner.plan(target)
    near = info.value.nearest
    assert np.linalg.norm(near - target) == pytest.approx(info.value.distance, abs=1e-9)
    assert planner.plan(near).ik_distance < cfg.control.reach_tolerance  # it IS reachable
    text = reach_cli.describe({'target': target.tolist(), 'status': 'unreachable',
                               'nearest_x': str(near[0]), 'nearest_y': str(near[1]),
                               'nearest_z': str(near[2])})
    xyz = ' '.join(f'{v:.3f}' for v in near)
    assert text.endswith(f'nearest reachable point: l2l-nmhw reach {xyz}')
