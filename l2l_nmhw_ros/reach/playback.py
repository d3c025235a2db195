"""From the trainee's readout to a stream of joint-position commands (ROS-free).

The trainee outputs joint angular velocities omega (the paper code's integrator units); the arm
takes joint-position set-points (ros2_control forward-command convention). This module:

- integrates the readout: q^t = q0 + omega_scale * sum_{s<=t} omega^s on the learned joints (the
  first ``n_out`` of the commanded joints: base and shoulder), every other joint held at its
  ``q0`` value (paper code: angle_0 = 0, elbow and wrist at 0);
- time-scales it: network step k (dt = 1 ms) plays at robot time (k + 1) * dt * time_scale,
  with time_scale the smallest value that keeps every joint within ``velocity_fraction`` of its
  velocity limit (``control.time_scale = 0``), never below ``min_time_scale`` (the robot never
  plays faster than the network ran), or a fixed value;
- builds moves between poses (minimum-jerk, duration so the peak speed stays within the limit);
- streams a queue of such segments from ONE periodic tick (:class:`Streamer`): each tick returns
  the set-point at that time, linearly interpolated between the trajectory's samples, so the
  command rate is independent of the network's 1 kHz (no 1 kHz timers anywhere), then the hold
  after each segment.

Times are seconds on whatever clock the caller passes in (ROS time in the node).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ['Segment', 'SegmentEvent', 'Streamer', 'integrate_readout', 'min_time_scale_for',
           'move_segment', 'trajectory_segment']

#: peak speed of a minimum-jerk move / mean speed (15/8)
MIN_JERK_PEAK = 1.875
#: samples of a minimum-jerk move segment (interpolated linearly in between)
MOVE_SAMPLES = 64

FloatArray = npt.NDArray[np.float64]


def integrate_readout(omega: npt.ArrayLike, q0: npt.ArrayLike, omega_scale: float,
                      learned: Sequence[int] | None = None) -> FloatArray:
    """Integrate the readout to joint positions (paper code integrator).

    Args:
        omega: readout (time, n_out) [integrator units].
        q0: start pose of all commanded joints [rad], shape (n_joints,).
        omega_scale: rad per step per unit (``task.omega_scale``, paper: 0.01).
        learned: indices of the joints driven by the n_out readouts (default 0..n_out-1).

    Returns:
        q (time, n_joints) [rad]: q[t, learned] = q0 + omega_scale cumsum(omega), others = q0.

    Raises:
        ValueError: shapes disagree or values are not finite.
    """
    omega = np.asarray(omega, dtype=np.float64)
    q0 = np.asarray(q0, dtype=np.float64)
    if omega.ndim != 2 or q0.ndim != 1:
        raise ValueError(f'omega: expected (time, n_out) and q0 (n_joints,), got {omega.shape}, '
                         f'{q0.shape}')
    learned = list(range(omega.shape[1])) if learned is None else list(learned)
    if len(learned) != omega.shape[1] or max(learned, default=-1) >= q0.shape[0]:
        raise ValueError(f'learned: {learned} does not match omega {omega.shape} / q0 {q0.shape}')
    if not (np.isfinite(omega).all() and np.isfinite(q0).all()):
        raise ValueError('omega and q0 must be finite')
    q = np.repeat(q0[None, :], omega.shape[0], axis=0)
    q[:, learned] += omega_scale * np.cumsum(omega, axis=0)
    return q


def min_time_scale_for(q: npt.ArrayLike, q_start: npt.ArrayLike, dt: float,
                       max_velocity: npt.ArrayLike) -> float:
    """Return the smallest playback scale that keeps every joint within ``max_velocity``.

    The path is q_start, q[0], q[1], ... with one network step ``dt`` between samples; at scale
    s a step lasts s * dt of robot time, so s = max_k,j |Δq_kj| / (dt * v_max_j).

    Args:
        q: positions (time, n) [rad].
        q_start: position before the first sample (n,) [rad].
        dt: network step [s].
        max_velocity: limit per joint (n,) or scalar [rad/s] (> 0).
    """
    q = np.asarray(q, dtype=np.float64)
    path = np.concatenate([np.asarray(q_start, dtype=np.float64)[None, :], q], axis=0)
    speed = np.abs(np.diff(path, axis=0)) / dt  # (time, n) rad per network second
    vmax = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64), (q.shape[1],))
    if np.any(vmax <= 0):
        raise ValueError(f'max_velocity: must be > 0, got {vmax}')
    return float(np.max(speed / vmax[None, :], initial=0.0))


@dataclasses.dataclass(frozen=True)
class Segment:
    """A piece of motion to stream: positions at times, then a hold.

    Attributes:
        name: phase name (reported when the segment starts and ends).
        t: sample times [s] from the segment start, shape (k,), strictly increasing, t[0] = 0.
        q: positions [rad], shape (k, n_joints).
        hold: time [s] to keep commanding the last sample after t[-1].
        time_scale: playback scale of a network trajectory (1 for moves).
    """

    name: str
    t: FloatArray
    q: FloatArray
    hold: float = 0.0
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=np.float64)
        q = np.asarray(self.q, dtype=np.float64)
        if t.ndim != 1 or q.ndim != 2 or q.shape[0] != t.shape[0] or t.shape[0] < 1:
            raise ValueError(f'Segment {self.name}: t (k,) and q (k, n) needed, got {t.shape}, '
                             f'{q.shape}')
        if t[0] != 0.0 or np.any(np.diff(t) <= 0):
            raise ValueError(f'Segment {self.name}: t must start at 0 and increase')
        if not np.isfinite(q).all():
            raise ValueError(f'Segment {self.name}: positions must be finite')
        object.__setattr__(self, 't', t)
        object.__setattr__(self, 'q', q)

    @property
    def duration(self) -> float:
        """Motion time [s] (without the hold)."""
        return float(self.t[-1])

    def position(self, tau: float) -> FloatArray:
        """Set-point at ``tau`` s after the segment start (clamped to [0, duration])."""
        tau = min(max(tau, 0.0), self.duration)
        i = int(np.searchsorted(self.t, tau, side='right'))
        if i >= len(self.t):
            return self.q[-1].copy()
        t0, t1 = self.t[i - 1], self.t[i]
        w = (tau - t0) / (t1 - t0)
        return (1.0 - w) * self.q[i - 1] + w * self.q[i]


def trajectory_segment(name: str, q: npt.ArrayLike, q_start: npt.ArrayLike, dt: float,
                       time_scale: float, hold: float) -> Segment:
    """A network trajectory as a segment: q_start at 0, q[k] at (k + 1) dt time_scale.

    Raises:
        ValueError: ``time_scale`` or ``dt`` not > 0, or bad shapes.
    """
    if not (time_scale > 0 and dt > 0):
        raise ValueError(f'time_scale and dt must be > 0, got {time_scale}, {dt}')
    q = np.asarray(q, dtype=np.float64)
    pts = np.concatenate([np.asarray(q_start, dtype=np.float64)[None, :], q], axis=0)
    return Segment(name, np.arange(len(pts)) * dt * time_scale, pts, hold, time_scale)


def move_segment(name: str, q_from: npt.ArrayLike, q_to: npt.ArrayLike,
                 max_velocity: npt.ArrayLike, hold: float) -> Segment:
    """A minimum-jerk move from ``q_from`` to ``q_to`` whose peak speed is ``max_velocity``.

    Duration T = 1.875 max_j |Δq_j| / v_max_j (0-length moves become a pure hold).
    """
    a = np.asarray(q_from, dtype=np.float64)
    b = np.asarray(q_to, dtype=np.float64)
    vmax = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64), a.shape)
    if np.any(vmax <= 0):
        raise ValueError(f'max_velocity: must be > 0, got {vmax}')
    duration = MIN_JERK_PEAK * float(np.max(np.abs(b - a) / vmax, initial=0.0))
    if duration <= 0.0:
        return Segment(name, np.zeros(1), b[None, :], hold)
    tau = np.linspace(0.0, 1.0, MOVE_SAMPLES)
    s = tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)
    return Segment(name, tau * duration, a[None, :] + s[:, None] * (b - a)[None, :], hold)


@dataclasses.dataclass
class SegmentEvent:
    """A segment started (``kind='start'``) or finished its hold (``kind='end'``) at ``t``."""

    kind: str
    segment: Segment
    t: float


class Streamer:
    """Plays queued segments back-to-back from one periodic tick.

    ``tick(now)`` returns the set-point to command now (None when idle) and the events of this
    tick. A segment starts at the first tick after the previous one ended (its start time is that
    tick's time, so a late tick delays, never skips, the motion) and ends after its duration
    plus hold.
    """

    def __init__(self) -> None:
        self._queue: deque[Segment] = deque()
        self._current: Segment | None = None
        self._start = 0.0
        self._final_sent = False
        self.last_command: FloatArray | None = None

    def push(self, *segments: Segment) -> None:
        """Queue segments (played in order)."""
        self._queue.extend(segments)

    def clear(self) -> None:
        """Drop the current and queued segments (the caller stops commanding)."""
        self._queue.clear()
        self._current = None

    @property
    def busy(self) -> bool:
        """True while a segment plays or waits."""
        return self._current is not None or bool(self._queue)

    @property
    def current(self) -> Segment | None:
        """The segment playing now."""
        return self._current

    def tick(self, now: float) -> tuple[FloatArray | None, list[SegmentEvent]]:
        """Advance to ``now``; return (set-point or None, events).

        The last sample of a segment is always commanded at least once (even with no hold and
        a tick that falls after its end), before the next segment starts.
        """
        events: list[SegmentEvent] = []
        while True:
            if self._current is None:
                if not self._queue:
                    return None, events
                self._current = self._queue.popleft()
                self._start = now
                self._final_sent = False
                events.append(SegmentEvent('start', self._current, now))
            seg = self._current
            tau = now - self._start
            if tau < seg.duration + seg.hold or not self._final_sent:
                q = seg.position(tau)
                self._final_sent = tau >= seg.duration
                self.last_command = q
                return q, events
            events.append(SegmentEvent('end', seg, now))
            self._current = None
