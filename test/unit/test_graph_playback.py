"""Readout integration, time scaling and the one-tick command streamer (graph core, no rclpy)."""

from __future__ import annotations

import numpy as np
import pytest

from l2l_nmhw_ros.reach import playback as P


def test_integrate_readout_is_the_paper_integrator() -> None:
    omega = np.array([[1.0, 2.0], [3.0, 4.0]])
    q = P.integrate_readout(omega, [0.1, 0.2, 0.3, 0.4], 0.01)
    # q[t] = q0 + 0.01 * cumsum(omega) on joints 0, 1; joints 2, 3 held at q0
    np.testing.assert_allclose(q, [[0.11, 0.22, 0.3, 0.4], [0.14, 0.26, 0.3, 0.4]])
    q = P.integrate_readout(omega, [0.0, 0.0, 0.0], 0.01, learned=[2, 0])
    np.testing.assert_allclose(q, [[0.02, 0.0, 0.01], [0.06, 0.0, 0.04]])
    with pytest.raises(ValueError, match='finite'):
        P.integrate_readout([[np.nan, 0.0]], [0.0, 0.0], 0.01)
    with pytest.raises(ValueError, match='learned'):
        P.integrate_readout(omega, [0.0], 0.01)


def test_min_time_scale_hand_computed() -> None:
    # 2 mrad per 1 ms step on joint 0 = 2 rad/s network speed; limit 1 rad/s -> scale 2.
    # the jump from q_start (0.01 rad on joint 1 in one step = 10 rad/s) dominates: scale 10.
    q = np.array([[0.002, 0.0], [0.004, 0.0]])
    assert P.min_time_scale_for(q, [0.0, 0.0], 0.001, 1.0) == pytest.approx(2.0)
    assert P.min_time_scale_for(q, [0.0, 0.01], 0.001, 1.0) == pytest.approx(10.0)
    assert P.min_time_scale_for(q, [0.0, 0.0], 0.001, [4.0, 1.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='max_velocity'):
        P.min_time_scale_for(q, [0.0, 0.0], 0.001, 0.0)


def test_trajectory_segment_times_and_interpolation() -> None:
    seg = P.trajectory_segment('x', [[1.0], [3.0]], [0.0], dt=0.001, time_scale=10.0, hold=0.5)
    np.testing.assert_allclose(seg.t, [0.0, 0.01, 0.02])
    assert seg.duration == pytest.approx(0.02)
    assert seg.position(0.005)[0] == pytest.approx(0.5)
    assert seg.position(0.015)[0] == pytest.approx(2.0)
    assert seg.position(7.0)[0] == 3.0
    assert seg.position(-1.0)[0] == 0.0


def test_move_segment_peak_speed_is_the_limit() -> None:
    seg = P.move_segment('home', [0.5, -1.0], [0.0, 0.0], max_velocity=0.9, hold=0.2)
    # T = 1.875 * max|dq| / v = 1.875 * 1.0 / 0.9
    assert seg.duration == pytest.approx(1.875 / 0.9)
    t = np.linspace(0.0, seg.duration, 20001)
    q = np.array([seg.position(x) for x in t])
    speed = np.abs(np.diff(q, axis=0)) / np.diff(t)[:, None]
    # linear interpolation of 64 samples of the minimum-jerk curve: the secant speeds stay below
    # the curve's peak 0.9 rad/s and come within 0.5 % of it (the middle secant)
    assert speed.max() <= 0.9 + 1e-9
    assert speed.max() > 0.9 * 0.995
    np.testing.assert_allclose(seg.q[-1], [0.0, 0.0])
    still = P.move_segment('hold', [0.1], [0.1], 1.0, hold=0.3)
    assert still.duration == 0.0
    assert still.hold == 0.3


def test_streamer_plays_segments_back_to_back_with_events() -> None:
    a = P.Segment('a', np.array([0.0, 1.0]), np.array([[0.0], [1.0]]), hold=0.5)
    b = P.Segment('b', np.array([0.0, 2.0]), np.array([[1.0], [-1.0]]), hold=0.0)
    c = P.Segment('c', np.zeros(1), np.array([[5.0]]), hold=0.0)
    s = P.Streamer()
    assert s.tick(0.0) == (None, [])
    s.push(a, b, c)
    got = []
    for now in (10.0, 10.5, 11.2, 11.5, 12.5, 13.6, 13.7):
        q, ev = s.tick(now)
        got.append((None if q is None else round(float(q[0]), 6),
                    [(e.kind, e.segment.name, e.t) for e in ev]))
    assert got == [
        (0.0, [('start', 'a', 10.0)]),
        (0.5, []),
        (1.0, []),  # holding after the motion
        (1.0, [('end', 'a', 11.5), ('start', 'b', 11.5)]),  # b starts at the tick a ended
        (0.0, []),
        (-1.0, []),  # b's last sample is commanded once although the tick is past its end
        (5.0, [('end', 'b', 13.7), ('start', 'c', 13.7)]),  # zero-length: one command
    ]
    q, ev = s.tick(13.8)
    assert q is None
    assert [(e.kind, e.segment.name) for e in ev] == [('end', 'c')]
    assert s.tick(13.9) == (None, [])
    assert not s.busy


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_streamed_commands_respect_the_velocity_limit(seed: int) -> None:
    # random smooth readouts, automatic scale at 90 % of 1 rad/s, sampled by a 50 Hz tick
    rng = np.random.default_rng(seed)
    omega = np.cumsum(rng.normal(0.0, 0.05, size=(249, 2)), axis=0)
    q = P.integrate_readout(omega, np.zeros(4), 0.01)
    vmax = 0.9
    scale = max(1.0, P.min_time_scale_for(q, np.zeros(4), 0.001, vmax))
    seg = P.trajectory_segment('adapted', q, np.zeros(4), 0.001, scale, hold=0.0)
    s = P.Streamer()
    s.push(seg)
    ticks = 0.02 * np.arange(int(seg.duration / 0.02) + 3)
    cmds = [q for q, _ in (s.tick(t) for t in ticks) if q is not None]
    speed = np.abs(np.diff(np.array(cmds), axis=0)) / 0.02
    assert speed.max() <= vmax * (1 + 1e-9)
    np.testing.assert_allclose(cmds[-1], q[-1])
