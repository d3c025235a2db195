"""Safety filter between joint-position commands and an arm (ROS-free; used by every driver).

Never trust the sender. Per control step the filter turns the latest accepted command into a
position target the arm may follow:

1. **Validation** (:meth:`SafetyFilter.command`): a command must have one finite value per
   commanded joint (and, when names are given, only known joints, each once). A rejected command
   is logged with its reason and the arm **holds its measured position** (the target becomes the
   measured position at the next :meth:`SafetyFilter.update`); the previous command is dropped.
2. **Joint limits**: accepted values are clamped to [lower, upper] of the URDF.
3. **Velocity and acceleration limits**: the target moves toward the command on a trapezoidal
   velocity profile, per joint: speed at most ``v_max`` (= min(URDF velocity limit,
   ``max_velocity``)), so the target moves at most ``v_max * dt`` per update, and speed changes of
   at most ``max_acceleration * dt`` per update (decelerating so as to stop on the command; the
   step that lands on the command may brake by up to twice that).
   Smooth targets keep an effort-limited arm from being thrown past its velocity limit by the
   reaction torques of abrupt reversals.
4. **Watchdog**: when no command arrived for longer than ``cmd_timeout``, the target becomes the
   measured position at that moment and stays there until a new command arrives.
5. **E-stop** (:meth:`SafetyFilter.estop`): target = measured position, every command rejected,
   until :meth:`SafetyFilter.reset`; after a reset the arm holds until a *new* command arrives.

Whenever the filter holds, the hold position is the *measured* position captured once (not
re-read every step, so a sagging arm does not creep), clamped to the limits. Times are passed in
(seconds on any monotonic clock the caller chooses: simulated time in the simulator, a steady
clock on the real arm); nothing here reads a clock.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from l2l_nmhw_ros.arm.kinematics import JointLimits


class Mode(enum.Enum):
    """What the filter's target does."""

    IDLE = 'idle'  #: no command yet: holding the first measured position
    TRACKING = 'tracking'  #: moving toward the last accepted command (velocity limited)
    HOLD_REJECTED = 'hold_rejected'  #: last command was rejected: holding
    HOLD_WATCHDOG = 'hold_watchdog'  #: commands went stale: holding
    ESTOP = 'estop'  #: e-stop latched: holding until reset


class SafetyFilter:
    """Validate, clamp and rate-limit joint-position commands; watchdog and latching e-stop.

    Args:
        limits: joint limits of the arm, in the arm's joint order (the order of ``update``'s
            measured positions and of the returned target).
        joints: names of the commanded joints, in command order (a subset of ``limits.names``,
            any order); joints not commanded hold their position.
        cmd_timeout: watchdog timeout [s] (> 0).
        max_velocity: extra velocity cap [rad/s] (> 0); the URDF limit applies in any case.
        max_acceleration: acceleration limit of the target [rad/s^2] (> 0; inf = none).
        logger: where rejections are logged (warning); None = no logging (caller logs).

    Raises:
        ValueError: unknown or repeated names in ``joints``, non-positive timeout or velocity.
    """

    def __init__(self, limits: JointLimits, joints: Sequence[str], *, cmd_timeout: float,
                 max_velocity: float = float('inf'), max_acceleration: float = float('inf'),
                 logger: logging.Logger | None = None) -> None:
        joints = tuple(joints)
        if not joints:
            raise ValueError('joints: at least one commanded joint is needed')
        if len(set(joints)) != len(joints):
            raise ValueError(f'joints: repeated names in {list(joints)}')
        self._cmd_index = np.array([limits.index(n) for n in joints], dtype=np.intp)
        if not cmd_timeout > 0:
            raise ValueError(f'cmd_timeout: must be > 0 s, got {cmd_timeout}')
        if not max_velocity > 0:
            raise ValueError(f'max_velocity: must be > 0 rad/s, got {max_velocity}')
        if not max_acceleration > 0:
            raise ValueError(f'max_acceleration: must be > 0 rad/s^2, got {max_acceleration}')
        self.limits = limits
        self.a_max = float(max_acceleration)
        self.joints = joints
        self.cmd_timeout = float(cmd_timeout)
        self.v_max = np.minimum(limits.velocity, float(max_velocity))
        self._log = logger
        n = len(limits.names)
        self._goal: npt.NDArray[np.float64] | None = None  # clamped goal in arm order
        self._t_cmd = -np.inf  # time of the last accepted command
        self._target: npt.NDArray[np.float64] | None = None
        self._v = np.zeros(n)  # velocity of the target [rad/s]
        self._t_update: float | None = None
        self._hold_pending = False  # next update captures the measured position as hold
        self._holding = True  # no command yet: hold
        self._estop = False
        self.mode = Mode.IDLE
        self.n_rejected = 0
        self.t_hold: float | None = None  # time [s] the last hold started
        self.last_rejection: str | None = None
        self._n = n

    # ---- inputs --------------------------------------------------------------------------
    @property
    def estopped(self) -> bool:
        """True while the e-stop is latched."""
        return self._estop

    def command(self, positions: npt.ArrayLike, t: float,
                names: Sequence[str] | None = None) -> bool:
        """Offer a joint-position command [rad] received at time ``t`` [s].

        Args:
            positions: one value per name in ``names`` (default: the commanded ``joints``, in
                that order).
            t: receive time [s].
            names: joint names of ``positions``; each must be a known joint, at most once.

        Returns:
            True when accepted; False when rejected (reason in :attr:`last_rejection`; the arm
            holds its measured position; the previous command is dropped).
        """
        reason = self._validate(positions, names)
        if reason is not None:
            self.n_rejected += 1
            self.last_rejection = reason
            if self._log is not None:
                self._log.warning('command rejected, holding: %s', reason)
            if not self._estop:
                self._hold_here()
                self.mode = Mode.HOLD_REJECTED
            return False
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        idx = (self._cmd_index if names is None
               else np.array([self.limits.index(n) for n in names], dtype=np.intp))
        if self._holding or self._goal is None:
            # joints not named stay where the target is (NaN: at the first measurement)
            goal = self._target.copy() if self._target is not None else np.full(self._n, np.nan)
        else:
            goal = self._goal.copy()
        goal[idx] = np.clip(q, self.limits.lower[idx], self.limits.upper[idx])
        self._goal = goal
        self._t_cmd = float(t)
        self._hold_pending = False
        self._holding = False
        self.mode = Mode.TRACKING
        return True

    def _validate(self, positions: npt.ArrayLike, names: Sequence[str] | None) -> str | None:
        if self._estop:
            return 'e-stop latched (call reset)'
        try:
            q = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError):
            return f'positions are not numbers: {positions!r}'
        if q.ndim != 1:
            return f'positions: expected a flat list, got shape {q.shape}'
        expected = len(self.joints) if names is None else len(names)
        if names is not None:
            unknown = [n for n in names if n not in self.limits.names]
            if unknown:
                return f'unknown joints {unknown}; known: {list(self.limits.names)}'
            if len(set(names)) != len(names):
                return f'repeated joint names {list(names)}'
            if not names:
                return 'empty joint name list'
        if q.shape[0] != expected:
            return f'wrong length: got {q.shape[0]} values, expected {expected}'
        if not np.all(np.isfinite(q)):
            return f'non-finite values {q.tolist()}'
        return None

    def hold(self, reason: str) -> None:
        """Hold the measured position now (as after a rejected command), e.g. on lost feedback.

        The previous command is dropped; a new command resumes motion.
        """
        self.last_rejection = reason
        if not self._estop:
            self._hold_here()
            self.mode = Mode.HOLD_REJECTED

    def _hold_here(self) -> None:
        # capture the hold point once: while already holding (rejected commands keep coming,
        # feedback stays lost) the hold point stays where it was and does not creep
        if not self._holding:
            self._hold_pending = True

    def estop(self) -> None:
        """Latch the e-stop: hold the measured position and reject commands until :meth:`reset`."""
        self._estop = True
        self._hold_pending = True
        self.mode = Mode.ESTOP

    def reset(self) -> None:
        """Release the e-stop (and any hold); the arm holds until a new command arrives."""
        self._estop = False
        self._t_cmd = -np.inf
        self._hold_pending = True
        self.mode = Mode.IDLE

    # ---- control step --------------------------------------------------------------------
    def update(self, q_measured: npt.ArrayLike | None, t: float) -> npt.NDArray[np.float64]:
        """Return the position target [rad], shape (n,), for time ``t`` [s].

        Args:
            q_measured: measured joint positions [rad] in arm order, shape (n,); None when no
                measurement is available (then holds use the last target instead).
            t: current time [s]; non-decreasing across calls.

        Raises:
            ValueError: no measurement has ever been given, or ``q_measured`` is malformed.
        """
        t = float(t)
        meas = None
        if q_measured is not None:
            meas = np.asarray(q_measured, dtype=np.float64)
            if meas.shape != (self._n,) or not np.all(np.isfinite(meas)):
                raise ValueError(f'q_measured: expected {self._n} finite values, got {meas}')
            meas = self.limits.clip(meas)
        if self._target is None:
            if meas is None:
                raise ValueError('q_measured: the first update needs a measurement')
            self._target = meas.copy()
            self._t_update = t
        if not self._holding and t - self._t_cmd > self.cmd_timeout:
            self._hold_pending = True
            self.mode = Mode.HOLD_WATCHDOG
        if self._hold_pending:
            self._start_hold(meas if meas is not None else self._target)
            self.t_hold = t
        if self._goal is None:  # first command named only some joints: others hold
            self._goal = self._target.copy()
        self._goal = np.where(np.isnan(self._goal), self._target, self._goal)
        dt = max(0.0, t - (self._t_update if self._t_update is not None else t))
        self._t_update = t
        if dt > 0:
            self._target, self._v = _trapezoid(self._target, self._v, self._goal, self.v_max,
                                               self.a_max, dt)
            self._target = self.limits.clip(self._target)
        return self._target.copy()

    def _start_hold(self, q_hold: npt.NDArray[np.float64]) -> None:
        # stop where the arm is: the target becomes the measured position, captured once
        self._target = q_hold.copy()
        self._v = np.zeros(self._n)
        self._goal = self._target.copy()
        self._holding = True
        self._hold_pending = False
        return self._target.copy()

    @property
    def t_command(self) -> float:
        """Receive time [s] of the last accepted command (-inf before the first)."""
        return self._t_cmd

    @property
    def target(self) -> npt.NDArray[np.float64] | None:
        """The last target [rad] returned by :meth:`update` (None before the first update)."""
        return None if self._target is None else self._target.copy()


def _trapezoid(x: npt.NDArray[np.float64], v: npt.NDArray[np.float64],
               goal: npt.NDArray[np.float64], v_max: npt.NDArray[np.float64], a_max: float,
               dt: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One step of a per-joint trapezoidal velocity profile from (x, v) toward goal.

    Desired speed sign(e) * min(v_max, v_brake(|e|)), v_brake the largest speed from which
    braking by a_max dt per step stops on the goal (discrete form of sqrt(2 a_max |e|)); the
    velocity moves toward it by at most a_max * dt; the position by v * dt, snapping to the goal
    when it would cross it. Guarantees |x_new - x| <= v_max * dt when |v| <= v_max.
    """
    e = goal - x
    if np.isinf(a_max):
        brake = np.full_like(e, np.inf)
    else:  # discrete braking: speeds k a dt, (k-1) a dt, ..., a dt cover a dt^2 k (k + 1) / 2
        adt = a_max * dt
        brake = adt * 0.5 * (np.sqrt(1.0 + 8.0 * np.abs(e) / (adt * dt)) - 1.0)
    v_des = np.sign(e) * np.minimum(v_max, brake)
    dv = np.clip(v_des - v, -a_max * dt, a_max * dt)
    v_new = np.clip(v + dv, -v_max, v_max)
    step = v_new * dt
    arrive = np.abs(step) >= np.abs(e)  # would reach or cross the goal this step
    step = np.where(arrive & (np.sign(step) == np.sign(e)), e, step)
    v_new = np.where(arrive & (np.sign(step) == np.sign(e)), 0.0, v_new)
    return x + step, v_new
