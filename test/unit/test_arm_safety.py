"""SafetyFilter: validation, clamping, velocity/acceleration limits, watchdog, latching e-stop."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2l_nmhw_ros.arm.kinematics import JOINT_NAMES, load_joint_limits
from l2l_nmhw_ros.arm.safety import Mode, SafetyFilter

DT = 0.02  # control period [s] of these tests
LIM = load_joint_limits()


def make(**kw) -> SafetyFilter:
    kw.setdefault('cmd_timeout', 0.5)
    return SafetyFilter(LIM, JOINT_NAMES, **kw)


def run(f: SafetyFilter, q: np.ndarray, t0: float, n: int) -> tuple[np.ndarray, float]:
    """Ideal arm (measured = target) for n updates."""
    t = t0
    for _ in range(n):
        t += DT
        q = f.update(q, t)
    return q, t


def test_first_update_holds_the_measured_position():
    f = make()
    q0 = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(f.update(q0, 0.0), q0)
    assert f.mode is Mode.IDLE
    with pytest.raises(ValueError, match='first update'):
        make().update(None, 0.0)


@pytest.mark.parametrize(('cmd', 'names', 'reason'), [
    ([0.0, 0.0, 0.0], None, 'wrong length'),
    ([0.0, 0.0, 0.0, 0.0, 0.0], None, 'wrong length'),
    ([np.nan, 0.0, 0.0, 0.0], None, 'non-finite'),
    ([0.0, np.inf, 0.0, 0.0], None, 'non-finite'),
    ([0.0, 0.0], ['base_joint', 'wrist_roll'], 'unknown joints'),
    ([0.0, 0.0], ['base_joint', 'base_joint'], 'repeated'),
    ('abc', None, 'not numbers'),
    ([[0.0, 0.0], [0.0, 0.0]], None, 'flat list'),
], ids=['short', 'long', 'nan', 'inf', 'unknown', 'repeated', 'text', '2d'])
def test_bad_commands_are_rejected_logged_and_hold_the_measured_position(cmd, names, reason,
                                                                         caplog):
    f = make(logger=logging.getLogger('safety_test'))
    q0 = np.zeros(4)
    f.update(q0, 0.0)
    assert f.command([1.0, 1.0, 1.0, 1.0], 0.0)
    q, t = run(f, q0, 0.0, 10)  # moving now
    with caplog.at_level(logging.WARNING, logger='safety_test'):
        assert not f.command(cmd, t, names)
    assert reason in f.last_rejection
    assert reason in caplog.text
    assert f.mode is Mode.HOLD_REJECTED
    assert f.n_rejected == 1
    q_meas = q - 0.01  # measured lags the target
    held = f.update(q_meas, t + DT)
    np.testing.assert_array_equal(held, q_meas)
    q2, _ = run(f, held, t + DT, 100)
    np.testing.assert_array_equal(q2, q_meas)  # never moves again without a good command


def test_commands_are_clamped_to_the_joint_limits():
    f = make()
    f.update(np.zeros(4), 0.0)
    f.command([100.0, -100.0, 100.0, -100.0], 0.0)
    t, q = 0.0, np.zeros(4)
    for _ in range(400):  # long enough to arrive (2.2 rad at 1 rad/s)
        t += DT
        q = f.update(q, t)
        f.command([100.0, -100.0, 100.0, -100.0], t)
    np.testing.assert_allclose(q, [LIM.upper[0], LIM.lower[1], LIM.upper[2], LIM.lower[3]])


def test_velocity_and_acceleration_limits_by_hand():
    f = make(max_velocity=0.5, max_acceleration=2.0, cmd_timeout=100.0)
    f.update(np.zeros(4), 0.0)
    f.command([1.0, 0.0, 0.0, 0.0], 0.0)
    q = [f.update(None, k * DT)[0] for k in range(1, 200)]
    v = np.diff(np.r_[0.0, q]) / DT
    # accelerates at 2 rad/s^2: v = 0.04, 0.08, ... reaches the 0.5 rad/s cap, brakes to 1.0
    np.testing.assert_allclose(v[:3], [0.04, 0.08, 0.12], atol=1e-12)
    assert v.max() == pytest.approx(0.5)
    dv = np.abs(np.diff(np.r_[0.0, v]))
    arrive = int(np.nonzero(v)[0][-1])  # the step that lands on the goal
    assert np.all(np.delete(dv, [arrive, arrive + 1]) <= 2.0 * DT + 1e-12)
    assert np.all(dv <= 2 * 2.0 * DT + 1e-12)  # arrival: at most twice the acceleration limit
    assert q[-1] == 1.0


def test_watchdog_holds_the_measured_position_then_commands_resume():
    f = make(cmd_timeout=0.3)
    f.update(np.zeros(4), 0.0)
    t = 0.0
    for _ in range(10):
        f.command([1.0, 0.0, 0.0, 0.0], t)
        t += DT
        f.update(np.array([t * 0.5, 0.0, 0.0, 0.0]), t)
    t_last = t - DT  # commands stop here
    assert f.mode is Mode.TRACKING
    meas = None
    while t <= t_last + 0.3:
        t += DT
        meas = np.array([t * 0.5, 0.0, 0.0, 0.0])
        tgt = f.update(meas, t)
    # fired within cmd_timeout + one period; the target is the measured position at that moment
    assert f.mode is Mode.HOLD_WATCHDOG
    np.testing.assert_array_equal(tgt, meas)
    for _ in range(20):
        t += DT
        np.testing.assert_array_equal(f.update(meas + 0.001, t), meas)  # captured once
    f.command([1.0, 0.0, 0.0, 0.0], t)
    assert f.update(meas, t + DT)[0] > meas[0]  # motion resumes
    assert f.mode is Mode.TRACKING


def test_estop_latches_until_reset_and_reset_needs_a_new_command():
    f = make()
    f.update(np.zeros(4), 0.0)
    f.command([1.0, 1.0, 1.0, 1.0], 0.0)
    q, t = run(f, np.zeros(4), 0.0, 10)
    f.estop()
    assert f.estopped
    held = f.update(q, t + DT)
    np.testing.assert_array_equal(held, q)
    assert not f.command([0.5, 0.5, 0.5, 0.5], t + DT)
    assert 'e-stop' in f.last_rejection
    q2, t = run(f, held, t + DT, 50)
    np.testing.assert_array_equal(q2, held)
    f.reset()
    assert not f.estopped
    q3, t = run(f, q2, t, 50)
    np.testing.assert_array_equal(q3, q2)  # the old command is not resumed
    assert f.command([0.5, 0.5, 0.5, 0.5], t)
    assert not np.array_equal(run(f, q3, t, 5)[0], q3)


def test_subset_of_joints_by_name_and_by_parameter():
    f = SafetyFilter(LIM, ('shoulder', 'base_joint'), cmd_timeout=1.0)
    f.update(np.array([0.0, 0.0, 0.2, 0.3]), 0.0)
    f.command([0.4, -0.2], 0.0)  # shoulder, base_joint
    q, t = run(f, np.array([0.0, 0.0, 0.2, 0.3]), 0.0, 30)
    np.testing.assert_allclose(q, [-0.2, 0.4, 0.2, 0.3])
    f.command([0.1], t, names=['pitch'])
    q, _ = run(f, q, t, 30)
    np.testing.assert_allclose(q, [-0.2, 0.4, 0.2, 0.1])


def test_constructor_rejects_bad_configuration():
    with pytest.raises(ValueError, match='unknown joint'):
        SafetyFilter(LIM, ('base_joint', 'roll'), cmd_timeout=1.0)
    with pytest.raises(ValueError, match='repeated'):
        SafetyFilter(LIM, ('elbow', 'elbow'), cmd_timeout=1.0)
    with pytest.raises(ValueError, match='cmd_timeout'):
        SafetyFilter(LIM, JOINT_NAMES, cmd_timeout=0.0)


# ---- property test: random command streams through the filter into the simulated arm ----------

finite = st.floats(-20.0, 20.0, allow_nan=False)
bad_value = st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300])
good_cmd = st.lists(finite, min_size=4, max_size=4)
bad_cmd = st.one_of(
    st.lists(finite, min_size=0, max_size=3),
    st.lists(finite, min_size=5, max_size=8),
    st.tuples(st.integers(0, 3), bad_value, good_cmd).map(
        lambda x: [x[1] if i == x[0] else v for i, v in enumerate(x[2])]),
)
# (command or None = no message, number of sim steps until the next one)
events = st.lists(st.tuples(st.one_of(good_cmd, bad_cmd, st.none()), st.integers(1, 60)),
                  min_size=5, max_size=30)


@pytest.fixture(scope='module')
def sim():
    pytest.importorskip('pybullet')
    from l2l_nmhw_ros.arm.sim import PyBulletArm

    a = PyBulletArm()
    yield a
    a.close()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events)
def test_random_command_streams_keep_the_simulated_arm_safe(sim, events):
    sim.reset(np.zeros(4))
    f = SafetyFilter(sim.limits, sim.joint_names, cmd_timeout=0.1, max_acceleration=5.0)
    q = sim.joint_positions()
    f.update(q, sim.t)
    for cmd, n in events:
        hold_from = None
        if cmd is not None:
            # already holding: the hold point stays (no creep); tracking: hold where measured
            held = f.target if f.mode is not Mode.TRACKING else None
            if not f.command(cmd, sim.t):
                hold_from = held if held is not None else sim.limits.clip(sim.joint_positions())
        for _ in range(n):
            tgt = f.update(sim.joint_positions(), sim.t)
            if hold_from is not None:
                # a bad command never moves the arm: the target is where the hold began
                np.testing.assert_array_equal(tgt, hold_from)
            sim.set_position_targets(tgt)
            sim.step()
            q_new = sim.joint_positions()
            # measured positions never leave the limits (PyBullet's joint-limit constraint is
            # soft: 1e-3 rad margin), per-step motion never exceeds the velocity limit
            assert sim.limits.within(q_new, tol=1e-3)
            assert np.all(np.abs(q_new - q) <= sim.limits.velocity * sim.dt + 1e-9)
            q = q_new
