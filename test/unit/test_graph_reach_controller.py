"""The controller node's core with a fake planner, fake outputs and a fake clock (no rclpy):
targets, the hand-over of the signal, evaluation into results, timeouts."""

from __future__ import annotations

import numpy as np
import pytest

from _reach_fakes import (DT, SCALE, T, controller as _controller, execute as _execute,
                          status as _status)
from l2l_nmhw_ros.reach.reports import signal_crc


def test_an_episode_from_target_to_result() -> None:
    ctl, out, clock = _controller()
    p = np.array([0.3, -0.2, 0.5])
    ctl.add_target(p)  # before any joint state: waits for the arm
    assert ctl.current is None and out.signals == []
    ctl.on_joint_state(1.0, np.zeros(4))
    cur = ctl.current
    assert cur is not None and cur.number == 1
    assert len(out.demos) == 1 and out.markers == [{}] and len(out.signals) == 1
    crc = signal_crc(out.signals[0])
    ctl.add_target([0.1, 0.1, 0.1])  # meanwhile: queued
    clock.t += 2.5
    ctl.poll()  # not acknowledged: sent again
    assert len(out.signals) == 2
    ctl.on_status(_status(crc, 'computed', 'computed', devices_programmed=2500,
                          devices_restored=0, adaptation_latency_ms=15.5))
    assert cur.handshake.acknowledged
    clock.t += 10.0
    ctl.poll()
    assert len(out.signals) == 2  # acknowledged: no more sends
    for name, t0, err in (('baseline', 10.0, 0.4), ('adapted', 20.0, 0.05)):
        ctl.on_status(_status(crc, name, phase_start=t0, phase_duration=T * DT * SCALE,
                              phase_hold=0.5, time_scale=SCALE))
        _execute(ctl, cur.demo, t0, err)
        ctl.on_joint_state(t0 + T * DT * SCALE + 0.4, cur.demo.q[-1] + [err, 0, 0, 0])  # hold
    # every status of the episode carries its summary (the last one counts)
    ctl.on_status(_status(crc, 'done', 'end', devices_programmed=2500, devices_restored=2500,
                          adaptation_latency_ms=15.5))
    r = out.results[0]
    assert (r.status, r.episode, r.accelerator_episode, r.signal_sends) == ('ok', 1, 5, 2)
    assert (r.target_x, r.target_y, r.target_z) == (0.3, -0.2, 0.5)
    assert r.error_final_baseline == pytest.approx(0.4)
    assert r.error_final_adapted == pytest.approx(0.05)
    assert r.error_path_adapted == pytest.approx(0.025, abs=1e-3)
    assert r.devices_programmed == 2500 and r.devices_restored == 2500
    assert r.adaptation_latency_ms == 15.5 and r.learning_signal_crc32 == crc
    assert r.arm_moved_rad > 0.3 and r.evaluation_error_adapted is None
    assert 'final error 0.050 m after the update (0.400 m before)' == r.message
    assert set(out.markers[-2]) == {'baseline', 'adapted'}  # [-1]: the next episode's
    # the queued target started next
    assert ctl.current is not None and ctl.current.number == 2 and ctl.results == [r]


def test_unreachable_target_is_answered_at_once() -> None:
    ctl, out, _ = _controller()
    ctl.on_joint_state(0.0, np.zeros(4))
    ctl.add_target([3.0, 0.0, 0.0])
    r = out.results[0]
    assert r.status == 'unreachable' and r.ik_distance == pytest.approx(2.0)
    assert ctl.current is None and out.signals == []


def test_bad_targets_raise() -> None:
    ctl, _, _ = _controller()
    with pytest.raises(ValueError, match='camera_link'):
        ctl.add_target([0.1, 0.0, 0.0], 'camera_link')
    with pytest.raises(ValueError, match='non-finite'):
        ctl.add_target([np.nan, 0.0, 0.0])
    ctl.add_target([0.1, 0.0, 0.0], 'base_link')  # the configured frame is fine
    assert len(ctl.targets) == 1


def test_full_target_queue_drops_the_oldest() -> None:
    ctl, _, _ = _controller()
    for x in (0.1, 0.2, 0.3):
        ctl.add_target([x, 0.0, 0.0])
    assert [t[0] for t in ctl.targets] == [0.2, 0.3]


def test_timeout_when_never_acknowledged_and_when_done_never_comes() -> None:
    ctl, out, clock = _controller()
    out.subscribers = 0
    ctl.on_joint_state(0.0, np.zeros(4))
    ctl.add_target([0.1, 0.0, 0.0])
    assert out.signals == []  # nobody listens yet
    clock.t += 61.0
    ctl.poll()
    r = out.results[0]
    assert r.status == 'timeout' and 'sent 0 times, never acknowledged' in r.message
    assert ctl.current is None
    out.subscribers = 1
    ctl.add_target([0.2, 0.0, 0.0])
    crc = signal_crc(out.signals[-1])
    ctl.on_status(_status(crc, 'computed', 'computed'))
    clock.t += 61.0
    ctl.poll()
    assert out.results[-1].status == 'timeout'
    assert 'accelerator episode 5 did not reach phase done' in out.results[-1].message


def _computed_episode():
    """A controller whose one target's episode the accelerator has computed: (ctl, out, crc)."""
    ctl, out, _ = _controller()
    ctl.on_joint_state(0.0, np.zeros(4))
    ctl.add_target([0.1, 0.0, 0.0])
    crc = signal_crc(out.signals[-1])
    ctl.on_status(_status(crc, 'computed', 'computed'))
    return ctl, out, crc


def test_done_without_an_adapted_execution_is_incomplete() -> None:
    ctl, out, crc = _computed_episode()
    ctl.on_status(_status(crc, 'done', 'reset'))  # e.g. the accelerator's ~/reset
    r = out.results[0]
    assert r.status == 'incomplete' and r.message == 'no adapted execution reported'
    assert r.error_final_adapted is None


def test_an_execution_without_joint_states_is_reported() -> None:
    ctl, out, crc = _computed_episode()
    ctl.on_status(_status(crc, 'adapted', phase_start=50.0, phase_duration=1.0, phase_hold=0.5,
                          time_scale=SCALE))
    ctl.on_status(_status(crc, 'done', 'end'))
    r = out.results[0]
    assert r.status == 'no_joint_states' and r.level.name == 'ERROR'
    assert 'buffer: 1 samples' in r.evaluation_error_adapted


def test_joint_state_time_going_back_starts_the_buffer_over() -> None:
    ctl, _, _ = _controller()
    for t in (5.0, 6.0, 7.0):
        ctl.on_joint_state(t, np.zeros(4))
    ctl.on_joint_state(1.0, np.zeros(4))  # the simulation was reset
    assert list(ctl.js_t) == [1.0]
