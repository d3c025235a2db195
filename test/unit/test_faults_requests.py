"""Fault injection, controller core: every bad request gets an immediate answer (no rclpy).

A bad target (wrong frame or shape, non-finite, too close to home, dropped from the full queue) is
answered with a ``rejected`` result in the same call, no clock advance, no learning signal; an
impossible joint-state reading (outside the URDF limits by more than the margin, non-finite) is
refused before the buffer sees it; the controller then serves the next valid target normally.
The fakes are those of ``test_graph_reach_controller.py`` (FK = the first three joint angles, home
at the origin).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _reach_fakes import Clock, Outputs, controller
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.arm.kinematics import forward_kinematics, load_joint_limits
from l2l_nmhw_ros.reach.episode import ReachPlanner
from l2l_nmhw_ros.reach.reach_controller import ReachController
from l2l_nmhw_ros.reach.reports import Level
from l2l_nmhw_ros.ros.tools import reach_cli
from l2l_nmhw_ros.ros.tools.demo import draw_targets
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in

NAN, INF = math.nan, math.inf
#: a valid target of the fake planner (0.37 m from home, reachable)
GOOD = [0.3, 0.1, 0.2]

#: (target, frame_id, a word of the reason)
BAD_TARGETS = {
    'wrong_frame': ([0.3, 0.1, 0.2], 'camera_link', 'frame'),
    'frame_map': ([0.3, 0.1, 0.2], 'map', 'frame'),
    'wrong_frame_and_nan': ([NAN, 0.1, 0.2], 'odom', 'frame'),
    'nan_x': ([NAN, 0.1, 0.2], '', 'non-finite'),
    'inf_z': ([0.3, 0.1, INF], 'base_link', 'non-finite'),
    'minus_inf_y': ([0.3, -INF, 0.2], '', 'non-finite'),
    'all_nan': ([NAN, NAN, NAN], '', 'non-finite'),
    'two_coords': ([0.3, 0.1], '', 'shape'),
    'four_coords': ([0.3, 0.1, 0.2, 0.0], '', 'shape'),
    'column_3x1': ([[0.3], [0.1], [0.2]], '', 'shape'),
    'not_numbers': (['x', 'y', 'z'], '', 'shape'),
    'empty': ([], '', 'shape'),
    'at_home': ([0.0, 0.0, 0.0], '', 'min_travel'),
    '1cm_from_home': ([0.01, 0.0, 0.0], '', 'min_travel'),
    'just_below_min_travel': ([0.0, 0.0, -0.0499], '', 'min_travel'),
}


def _ready():
    """A controller that has joint states (a valid target would start at once)."""
    ctl, out, clock = controller()
    ctl.on_joint_state(0.0, np.zeros(4))
    return ctl, out, clock


def _runs_next_target_normally(ctl: ReachController, out: Outputs, n_results: int) -> None:
    ctl.add_target(GOOD)
    assert ctl.current is not None and ctl.current.number == 1
    np.testing.assert_array_equal(ctl.current.demo.target, GOOD)
    assert len(out.signals) == 1 and len(out.demos) == 1
    assert len(out.results) == n_results  # the episode runs: no result yet


@pytest.mark.parametrize(('p', 'frame', 'word'), list(BAD_TARGETS.values()),
                         ids=list(BAD_TARGETS))
def test_a_bad_target_is_answered_rejected_at_once(p, frame, word) -> None:
    ctl, out, clock = _ready()
    t0 = clock.t
    with pytest.raises(ValueError, match=word):
        ctl.add_target(p, frame)
    assert clock.t == t0 and len(out.results) == 1  # in the same call
    r = out.results[0]
    assert (r.status, r.level, r.episode) == ('rejected', Level.ERROR, ReachController.NO_EPISODE)
    assert word in r.message
    xyz = [r.target_x, r.target_y, r.target_z]
    if len(p) == 3 and all(isinstance(v, float) for v in p):
        np.testing.assert_array_equal(xyz, p)  # the coordinates as received, NaN and inf too
    else:  # not a point
        assert all(math.isnan(v) for v in xyz)
    assert out.signals == [] and out.demos == [] and ctl.current is None and ctl.episode == 0
    assert not ctl.targets
    _runs_next_target_normally(ctl, out, 1)


def test_a_bad_target_during_an_episode_is_answered_at_once_and_not_queued() -> None:
    ctl, out, _ = _ready()
    ctl.add_target(GOOD)
    with pytest.raises(ValueError, match='non-finite'):
        ctl.add_target([NAN, 0.0, 0.5])
    assert [r.status for r in out.results] == ['rejected'] and not ctl.targets
    assert ctl.current.number == 1 and len(out.signals) == 1


def test_a_target_at_min_travel_is_accepted() -> None:
    ctl, out, _ = _ready()
    ctl.add_target([0.05, 0.0, 0.0])  # exactly control.min_travel from home
    assert out.results == [] and ctl.current is not None


def test_min_travel_changes_at_run_time() -> None:
    ctl, out, _ = _ready()
    ctl.configure(C.from_dict({'control': {**C.to_dict(ctl.cfg)['control'], 'min_travel': 0.5}}))
    with pytest.raises(ValueError, match='min_travel = 0.5 m'):
        ctl.add_target(GOOD)  # 0.37 m from home
    assert out.results[0].status == 'rejected'


@pytest.mark.parametrize('n', [3, 50], ids=['queue_overflow_one', 'queue_overflow_burst'])
def test_every_target_dropped_from_the_full_queue_is_answered_at_once(n: int) -> None:
    ctl, out, _ = controller()  # queue_size 2; no joint states yet: every target waits
    targets = [[0.1 + 0.01 * i, 0.0, 0.2] for i in range(n)]
    for i, p in enumerate(targets):
        ctl.add_target(p)
        assert len(out.results) == max(0, i - 1)  # the drop is answered in the same call
    assert len(out.results) + len(ctl.targets) == n  # every target: an answer or a place
    assert [[r.target_x, r.target_y, r.target_z] for r in out.results] == targets[:n - 2]
    for r in out.results:
        assert (r.status, r.episode) == ('rejected', 0)
        assert r.message.startswith('queue full (2 waiting')
    np.testing.assert_array_equal(np.array(ctl.targets), targets[n - 2:])
    assert out.signals == []
    ctl.on_joint_state(0.0, np.zeros(4))  # the arm is up: the oldest kept target runs
    assert ctl.current.number == 1 and ctl.current.demo.target.tolist() == targets[n - 2]
    assert len(out.signals) == 1 and len(out.results) == n - 2


_LIM = load_joint_limits()
_MARGIN = C.ControlConfig().joint_state_margin
_SHOULDER = _LIM.index('shoulder')


def _q(joint: int, value: float) -> np.ndarray:
    q = np.zeros(4)
    q[joint] = value
    return q


#: (t [s], q [rad] in arm.joints order, a word of the reason)
BAD_JOINT_STATES = {
    '100_rad': (1.0, _q(0, 100.0), 'outside'),
    '-100_rad': (1.0, _q(2, -100.0), 'outside'),
    'nan': (1.0, _q(1, NAN), 'not finite'),
    'inf': (1.0, _q(3, INF), 'not finite'),
    'just_outside_margin': (1.0, _q(_SHOULDER, _LIM.upper[_SHOULDER] + _MARGIN + 0.005),
                            'outside'),
    'just_outside_margin_below': (1.0, _q(_SHOULDER, _LIM.lower[_SHOULDER] - _MARGIN - 0.005),
                                  'outside'),
    'three_joints': (1.0, np.zeros(3), 'expected 4 values'),
    'nan_time': (NAN, np.zeros(4), 'not finite'),
}


@pytest.mark.parametrize(('t', 'q', 'word'), list(BAD_JOINT_STATES.values()),
                         ids=list(BAD_JOINT_STATES))
def test_an_impossible_joint_state_is_refused_before_the_buffer(t, q, word) -> None:
    ctl, out, _ = controller()
    ctl.add_target(GOOD)  # waits for the arm
    with pytest.raises(ValueError, match=word):
        ctl.on_joint_state(t, q)
    assert len(ctl.js_t) == len(ctl.js_q) == 0  # never buffered
    assert ctl.current is None and out.signals == [] and out.results == []  # no episode on it
    ctl.on_joint_state(2.0, np.zeros(4))  # a possible reading: the waiting target runs
    assert list(ctl.js_t) == [2.0] and ctl.current is not None and ctl.current.number == 1
    assert len(out.signals) == 1 and out.results == []


def test_a_joint_state_just_inside_the_margin_is_accepted() -> None:
    ctl, _, _ = controller()
    q = _q(_SHOULDER, _LIM.upper[_SHOULDER] + _MARGIN - 0.005)
    ctl.on_joint_state(1.0, q)
    assert list(ctl.js_t) == [1.0]
    np.testing.assert_array_equal(ctl.js_q[-1], q)


def _real_planner(cfg: C.L2LConfig) -> ReachPlanner:
    g = torch.Generator().manual_seed(0)
    w = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), cfg.trainee.n_rec, g)
    return ReachPlanner(cfg, w)


def test_min_travel_uses_the_arms_fk_and_never_rejects_the_demos_targets() -> None:
    cfg = C.load()
    # the task family draws targets with at least task.reach_min_distance of travel
    assert cfg.control.min_travel <= cfg.task.reach_min_distance
    out = Outputs()
    ctl = ReachController(cfg, _real_planner(cfg), out, clock=Clock())
    np.testing.assert_allclose(ctl.p_home, forward_kinematics(np.zeros(4)), atol=1e-12)
    many = draw_targets(cfg, 2000, 0)
    assert np.linalg.norm(many - ctl.p_home, axis=1).min() >= cfg.control.min_travel
    for p in draw_targets(cfg, 5, 1):  # `l2l-nmhw demo` defaults: --targets 5 --seed 1
        ctl.add_target(p)  # no joint states: every target waits
    assert out.results == [] and len(ctl.targets) == 5
    with pytest.raises(ValueError, match='too close to home'):
        ctl.add_target(ctl.p_home + [0.0, 0.01, 0.0])
    assert out.results[-1].status == 'rejected' and len(ctl.targets) == 5


def test_reach_cli_prints_a_rejected_nan_target_and_fails() -> None:
    ok = {'target': [0.5, 0.0, 0.5], 'status': 'ok', 'error_final_adapted': '0.01'}
    rejected = {'target': [NAN, 0.0, 0.5], 'status': 'rejected', 'episode': '0',
                'message': 'non-finite coordinates [nan, 0.0, 0.5] [m]'}
    unreachable = {'target': [3.0, 0.0, 0.0], 'status': 'unreachable', 'message': 'far'}
    assert reach_cli.describe(rejected) == (
        'target [nan, 0.0, 0.5] m: status=rejected, '
        'message=non-finite coordinates [nan, 0.0, 0.5] [m]')
    assert reach_cli.exit_code([ok, ok]) == 0
    assert reach_cli.exit_code([ok, rejected]) == 1
    assert reach_cli.exit_code([unreachable, ok]) == 1
