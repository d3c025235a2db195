"""Fault injection, accelerator side (no rclpy): hostile learning signals and updates, impossible
joint states, commands outside the joint limits, a dead arm, a stopped clock, a restarted
accelerator, and the safety filter's hold point under a stream of bad commands.

For each: nothing raises out of the core, nothing is programmed that should not be, the arm never
gets a command outside the safe joint range, and the requester is answered (status ``rejected`` or
an episode result) at once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _reach_fakes import controller as _controller, status as _status
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.arm.kinematics import load_joint_limits
from l2l_nmhw_ros.arm.safety import Mode, SafetyFilter
from l2l_nmhw_ros.errors import RejectedInput
from l2l_nmhw_ros.reach.accelerator import Accelerator, AdaptOutcome
from l2l_nmhw_ros.reach.episode import ArmLimits
from l2l_nmhw_ros.reach.handshake import HandshakeAction, HandshakeUpdate, SignalHandshake
from l2l_nmhw_ros.reach.onchip import Admission, OnChipLearner
from l2l_nmhw_ros.reach.reports import Level, signal_crc
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, learning_signal_bound, run_lsg_full
from l2l_nmhw_ros.snn.trainee import init_trainee_weights
from test_graph_onchip import T, Clock, FakeAccelerator, Outputs, _play, _signal

N_REC, N_LSG = 40, 30


# ---- a real accelerator with an LSG (the signal bound comes from its readout) -----------------
def _cfg(**control) -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': 'ideal', 'stochastic_rounding': False},
                        'trainee': {'n_rec': N_REC}, 'lsg': {'n_rec': N_LSG},
                        'control': {'settle_time': 0.1, **control}})


def _weights(cfg: C.L2LConfig) -> dict[str, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    w = init_trainee_weights(cfg.trainee, g)
    w['w_in'] = w['w_in'] * 3.0  # enough input drive for spikes in a small network
    lsg = init_lsg_weights(cfg.lsg, 10, N_REC, g)
    lsg['w_out'] = lsg['w_out'] * 20.0  # signals of a few hundred: updates of many weights
    return {**{k: v.numpy() for k, v in w.items()},
            **{f'lsg.{k}': v.numpy() for k, v in lsg.items()}}


def _real_learner(**control):
    cfg = _cfg(**control)
    w = _weights(cfg)
    acc = Accelerator(cfg, w, 0.0, seed=3, fast=False)
    out, now, clock = Outputs(), Clock(10.0), Clock(500.0)
    core = OnChipLearner(cfg, acc, out, now=now, clock=clock)
    bound = learning_signal_bound(torch.as_tensor(w['lsg.w_out']), cfg.lsg).numpy()
    return core, acc, out, bound


def _at_bound(bound: np.ndarray, frac: float, seed: int = 0) -> np.ndarray:
    """A signal whose peak |L| per neuron is ``frac`` of the bound (random signs and times)."""
    rng = np.random.default_rng(seed)
    sig = rng.uniform(-1.0, 1.0, (T, N_REC))
    sig /= np.abs(sig).max(axis=0)
    return (sig * bound * frac).astype(np.float32)


def _one(bound: np.ndarray, value: float, j: int = 7) -> np.ndarray:
    sig = _at_bound(bound, 0.1)
    sig[100, j] = value
    return sig


SIGNALS = {
    'nan_one_value': lambda b: _one(b, np.nan),
    'inf_one_value': lambda b: _one(b, np.inf),
    'minus_inf_one_value': lambda b: _one(b, -np.inf),
    'all_nan': lambda b: np.full((T, N_REC), np.nan, np.float32),
    'huge_1e30_overflows_dw': lambda b: np.full((T, N_REC), 1e30, np.float32),
    'float32_max': lambda b: _one(b, np.finfo(np.float32).max),
    'one_neuron_1pct_above_bound': lambda b: _one(b, 1.01 * b[7]),
    'negative_1pct_above_bound': lambda b: _one(b, -1.01 * b[7]),
    'every_neuron_twice_the_bound': lambda b: _at_bound(b, 2.0),
    'large_24x_everywhere': lambda b: _at_bound(b, 24.0),
}


@pytest.mark.parametrize('make', SIGNALS.values(), ids=SIGNALS.keys())
def test_hostile_learning_signal_is_refused_and_programs_nothing(make) -> None:
    core, acc, out, bound = _real_learner()
    w_before, total = acc.crossbar.w_target.clone(), acc.devices_programmed_total
    sig = make(bound)
    assert core.on_learning_signal(sig, 0.0) is Admission.REJECTED
    assert core.running is None and core.episode == 0 and not acc.crossbar.w_target.ne(
        w_before).any() and acc.devices_programmed_total == total
    st = out.status[-1]  # answered at once, with the signal's identity and the reason
    assert (st.event, st.rejected_crc32) == ('rejected', signal_crc(sig))
    assert 'NaN or inf' in st.rejected_reason or 'the most the checkpoint' in st.rejected_reason
    assert core.status('periodic').rejected_messages == 1


def test_a_signal_the_lsg_can_emit_is_accepted() -> None:
    core, acc, out, bound = _real_learner()
    assert core.on_learning_signal(_at_bound(bound, 0.99), 0.0) is Admission.STARTED
    assert core.episode == 1 and acc.devices_programmed_total > 0


def test_the_bound_is_the_lsgs_largest_output_and_is_reached() -> None:
    cfg = C.LSGConfig(n_rec=N_LSG)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        w = init_lsg_weights(cfg, 10, 12, g)
        bound = learning_signal_bound(w['w_out'], cfg)
        x = (torch.rand(T, 2, 10, generator=g) < 0.3).float() * 5.0  # random strong input
        sig = run_lsg_full(w, x, cfg).learning_signal
        assert bool((sig.abs().amax(dim=(0, 1)) <= bound * (1 + 1e-5)).all())
    # every readout weight positive and every neuron at its highest rate: the bound is reached
    w['w_out'] = w['w_out'].abs()
    w['w_in'] = torch.full_like(w['w_in'], 5.0)
    sig = run_lsg_full(w, torch.ones(T, 1, 10), cfg).learning_signal
    np.testing.assert_allclose(sig.abs().amax(dim=(0, 1)).numpy(),
                               learning_signal_bound(w['w_out'], cfg).numpy(), rtol=1e-4)


def test_an_update_that_changes_too_many_weights_is_refused_before_programming() -> None:
    core, acc, out, bound = _real_learner(max_weights_changed=5)
    w_before, total = acc.crossbar.w_target.clone(), acc.devices_programmed_total
    sig = _at_bound(bound, 0.9)
    assert core.on_learning_signal(sig, 0.0) is Admission.REJECTED
    assert not acc.crossbar.w_target.ne(w_before).any() and acc.devices_programmed_total == total
    assert 'more than the limit of 5' in out.status[-1].rejected_reason
    assert out.status[-1].rejected_crc32 == signal_crc(sig)


@pytest.mark.parametrize('bad', [np.nan, np.inf, 1e38], ids=['nan_dw', 'inf_dw', 'dw_1e38'])
def test_a_non_finite_or_overflowing_update_is_refused_by_the_substrate(bad) -> None:
    cfg = _cfg()
    acc = Accelerator(cfg, _weights(cfg), 0.0, seed=3, fast=False)
    sub = acc.substrate(1.0)
    w_before = acc.crossbar.w_target.clone()
    dw = torch.zeros(N_REC, cfg.trainee.n_in)
    dw[2, 1] = bad
    with pytest.raises(RejectedInput):
        sub.update(dw, None)
    assert not acc.crossbar.w_target.ne(w_before).any() and sub.changed is None


# ---- joint states ------------------------------------------------------------------------------
URDF = load_joint_limits()
BASE_HI = float(URDF.upper[URDF.index('base_joint')])
BAD_READINGS = {
    '100_rad': [100.0, 0, 0, 0],
    'minus_100_rad': [0, -100.0, 0, 0],
    'nan': [0, 0, np.nan, 0],
    'inf': [0, 0, 0, np.inf],
    'three_values': [0, 0, 0],
    'just_outside_the_margin': [BASE_HI + 0.11, 0, 0, 0],
}


@pytest.mark.parametrize('q', BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_impossible_joint_states_are_not_used(q) -> None:
    core = OnChipLearner(C.from_dict({'control': {'settle_time': 0.1}}), FakeAccelerator(),
                         Outputs(), now=Clock(10.0), clock=Clock(500.0))
    core.on_joint_state(np.array([0.3, 0.1, 0.0, 0.0]))
    with pytest.raises(ValueError, match='joint|values|finite'):
        core.on_joint_state(np.asarray(q, dtype=np.float64))
    np.testing.assert_array_equal(core._current_pose(), [0.3, 0.1, 0.0, 0.0])  # the last good


def test_a_reading_inside_the_margin_is_used() -> None:
    limits = ArmLimits.from_config(C.L2LConfig())
    q = np.array([BASE_HI + 0.09, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(limits.check_measurement(q), q)


# ---- commands stay inside the safe range -------------------------------------------------------
class WildAccelerator(FakeAccelerator):
    """Readouts that would drive the base far past its limit (as near the workspace edge)."""

    def adapt(self, sig, t: float, *, baseline: bool = True) -> AdaptOutcome:
        out = super().adapt(sig, t, baseline=baseline)
        omega = np.full((T, 2), 60.0)
        return AdaptOutcome(**{**out.__dict__, 'omega_adapted': omega, 'omega_baseline': -omega})


def test_every_streamed_command_is_inside_the_safe_joint_range() -> None:
    out, now = Outputs(), Clock(10.0)
    core = OnChipLearner(C.from_dict({'control': {'settle_time': 0.1}}), WildAccelerator(), out,
                         now=now, clock=Clock(500.0))
    core.on_learning_signal(_signal(1), 500.0)
    _play(core, now, now.t + 600.0, dt=0.05)
    q = np.array(out.commands)
    lim = core.limits
    assert len(q) > 100 and core.running is None
    assert (q >= lim.safe_lower - 1e-12).all() and (q <= lim.safe_upper + 1e-12).all()
    assert np.isclose(q[:, 0].max(), lim.safe_upper[0])  # it did want to go further
    assert core.status('periodic').commands_clamped > 0


# ---- liveness: a dead arm, a stopped clock -----------------------------------------------------
def _streaming(js: bool = True):
    out, now, clock = Outputs(), Clock(10.0), Clock(500.0)
    acc = FakeAccelerator()
    core = OnChipLearner(C.from_dict({'control': {'settle_time': 0.1}}), acc, out, now=now,
                         clock=clock)
    if js:
        core.on_joint_state(np.zeros(4))
    core.on_learning_signal(_signal(1), clock.t)
    for _ in range(20):  # streaming, with the arm reporting every tick
        now.t += 0.02
        clock.t += 0.02
        if js:
            core.on_joint_state(np.zeros(4))
        core.tick()
    assert core.streamer.busy
    return core, acc, out, now, clock


def test_arm_that_stops_reporting_ends_the_episode_as_a_fault() -> None:
    core, acc, out, now, clock = _streaming()
    n = len(out.commands)
    clock.t += 1.5  # the arm driver died: no joint_states for 1.5 s (> joint_state_timeout 1 s)
    assert core.watchdog() is True
    st = out.status[-1]
    assert (st.event, st.phase) == ('end', 'done') and 'no joint_states' in st.fault
    assert st.level is Level.WARN and len(acc.restored) == 1  # the update was undone
    _play(core, now, now.t + 10.0)
    assert len(out.commands) == n  # streaming stopped


def test_a_reporting_arm_and_an_arm_that_never_reported_are_not_faults() -> None:
    core, _, out, now, clock = _streaming()
    clock.t += 0.5
    assert core.watchdog() is False and core.streamer.busy
    core, _, out, now, clock = _streaming(js=False)  # no joint_states at all (e.g. dry run)
    clock.t += 5.0
    assert core.watchdog() is False and core.streamer.busy


def test_a_stopped_ros_clock_is_reported_and_clears_when_it_moves() -> None:
    core, _, out, now, clock = _streaming()
    for _ in range(20):  # the ROS clock stands still (paused simulation); the arm still reports
        clock.t += 0.2
        core.on_joint_state(np.zeros(4))
        core.watchdog()
    st = core.status('periodic')
    assert st.clock_stalled_s == pytest.approx(4.0) and st.level is Level.WARN
    assert 'has not advanced' in st.message
    now.t += 0.02
    core.watchdog()
    assert core.status('periodic').clock_stalled_s == 0.0


# ---- the controller side: restart, refusal, fault ----------------------------------------------
def test_handshake_restart_resends_at_once_and_rejection_ends_it() -> None:
    hs = SignalHandshake('abcd0123', 0.0, retry_s=2.0, timeout_s=60.0)
    assert hs.poll(0.0, 1) is HandshakeAction.SEND
    assert hs.on_status(_status('abcd0123', 'computed', 'computed', boot_id='b1')) is \
        HandshakeUpdate.ACKNOWLEDGED
    # the accelerator was killed and respawned: its first status has another boot id
    assert hs.on_status(_status('', '', 'periodic', boot_id='b2')) is HandshakeUpdate.RESTARTED
    assert not hs.acknowledged and hs.poll(0.1, 1) is HandshakeAction.RESEND  # not after 2 s
    other = _status('', '', 'rejected', boot_id='b2', rejected_crc32='ffff0000',
                    rejected_reason='x')
    assert hs.on_status(other) is HandshakeUpdate.IGNORED  # another signal's refusal
    mine = _status('', '', 'rejected', boot_id='b2', rejected_crc32='abcd0123',
                   rejected_reason='too large')
    assert hs.on_status(mine) is HandshakeUpdate.REJECTED and hs.reject_reason == 'too large'
    assert hs.poll(100.0, 1) is HandshakeAction.NONE  # final: no timeout either


def test_timeout_message_says_the_clock_stood_still() -> None:
    hs = SignalHandshake('abcd0123', 0.0, retry_s=2.0, timeout_s=60.0)
    hs.poll(0.0, 1)
    hs.on_status(_status('', '', 'periodic', clock_stalled_s=42.0))
    assert hs.poll(61.0, 1) is HandshakeAction.TIMEOUT
    assert 'stood still for 42.0 s' in hs.timeout_reason()


def _running_controller():
    ctl, out, clock = _controller()
    ctl.on_joint_state(0.0, np.zeros(4))
    ctl.add_target([0.1, 0.0, 0.0])
    ctl.add_target([0.2, 0.0, 0.0])  # waits
    return ctl, out, clock, signal_crc(out.signals[-1])


def test_controller_answers_a_refused_signal_at_once_and_goes_on() -> None:
    ctl, out, _, crc = _running_controller()
    ctl.on_status(_status('', '', 'rejected', rejected_crc32=crc, rejected_reason='too large'))
    r = out.results[-1]
    assert r.status == 'rejected' and 'too large' in r.message and r.learning_signal_crc32 == crc
    assert ctl.current is not None and ctl.current.number == 2  # the next target runs


def test_controller_result_is_failed_when_the_accelerator_ends_early() -> None:
    ctl, out, _, crc = _running_controller()
    ctl.on_status(_status(crc, 'computed', 'computed'))
    ctl.on_status(_status(crc, 'done', 'end', fault='no joint_states for 1.2 s'))
    r = out.results[-1]
    assert r.status == 'failed' and 'no joint_states' in r.message


def test_controller_resends_at_once_when_the_accelerator_restarts() -> None:
    ctl, out, _, crc = _running_controller()
    ctl.on_status(_status(crc, 'computed', 'computed', boot_id='b1'))
    n = len(out.signals)
    ctl.on_status(_status('', '', 'periodic', boot_id='b2'))  # no clock advance
    assert len(out.signals) == n + 1 and ctl.current.handshake.restarts == 1


# ---- the safety filter's hold point does not creep ---------------------------------------------
@pytest.mark.parametrize('first', ['rejected_command', 'watchdog'])
def test_hold_point_stays_while_bad_commands_keep_arriving(first) -> None:
    f = SafetyFilter(URDF, URDF.names, cmd_timeout=0.1, max_acceleration=5.0)
    q = np.zeros(len(URDF.names))
    f.update(q, 0.0)
    f.command(q + 0.2, 0.0)
    for k in range(1, 20):  # tracking
        f.update(q + 0.01 * k, 0.02 * k)
    t = 0.4
    if first == 'watchdog':
        t += 0.2  # no command for longer than cmd_timeout: hold
        f.update(q + 0.19, t)
    else:
        f.command([np.nan] * len(URDF.names), t)
        f.update(q + 0.19, t)
    held = f.target
    assert f.mode in (Mode.HOLD_REJECTED, Mode.HOLD_WATCHDOG)
    for k in range(1, 50):  # bad commands keep coming while the arm sags
        f.command([np.nan] * len(URDF.names), t + 0.02 * k)
        np.testing.assert_array_equal(f.update(q + 0.19 - 0.005 * k, t + 0.02 * k), held)
