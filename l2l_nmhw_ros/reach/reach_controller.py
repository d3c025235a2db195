"""The controller's episodes: targets in, learning signals out, executions evaluated (ROS-free).

:class:`ReachController` is everything ``snn_controller`` does; the node only converts messages
and calls it. One episode at a time:

1. a target [m] (frame ``control.frame_id`` or empty, 3 finite coordinates, at least
   ``control.min_travel`` from the end effector at ``control.home``) starts an episode when none
   runs and joint states have arrived (the executions could not be evaluated otherwise); else it
   waits in a queue of ``control.queue_size`` (when full the oldest is dropped). Every target that
   gets no episode is answered at once with a result ``rejected`` whose message gives the reason
   (``episode`` 0, the coordinates as received): a bad one on arrival (``add_target`` also
   raises ValueError), a dropped one when the newer target arrives;
2. reachability and demonstration (:class:`~l2l_nmhw_ros.reach.episode.ReachPlanner`); an
   unreachable target ends the episode at once (result ``unreachable`` with the distance and
   the nearest reachable point ``nearest_x/y/z``);
3. the LSG's learning signal, handed over to the accelerator by a
   :class:`~l2l_nmhw_ros.reach.handshake.SignalHandshake` (sent, re-sent every
   ``control.signal_retry`` s until acknowledged or queued, the accelerator episode followed);
   the demonstration and its markers are shown;
4. on that episode's ``phase = done`` the measured joint states of the ``baseline`` and ``adapted``
   windows are evaluated (:func:`~l2l_nmhw_ros.reach.episode.evaluate`) into an
   :class:`~l2l_nmhw_ros.reach.reports.EpisodeResult` (``ok``, ``no_joint_states`` or
   ``incomplete`` when no adapted execution was reported, e.g. after the accelerator's reset);
   an episode without ``done`` for ``control.episode_timeout`` s (wall clock) ends as
   ``timeout``.

Joint states outside the URDF limits of ``arm.urdf`` by more than ``control.joint_state_margin``
(:class:`~l2l_nmhw_ros.reach.episode.ArmLimits`), or not finite, are impossible readings: refused
(ValueError), the buffer never sees them.

``clock`` is a monotonic clock [s] (re-sends, timeouts, the LSG's time), passed in; joint-state
times are the caller's stamps [s] on the accelerator's clock (ROS time).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.reach.episode import (ArmLimits, Demonstration, Evaluation, ReachPlanner,
                                      UnreachableTarget, evaluate, load_checkpoint)
from l2l_nmhw_ros.reach.handshake import (EXECUTIONS, HandshakeAction, HandshakeUpdate,
                                        SignalHandshake)
from l2l_nmhw_ros.reach.reports import AcceleratorStatus, EpisodeResult, signal_crc

__all__ = ['JOINT_BUFFER', 'ControllerOutputs', 'ReachController', 'ReachEpisode']

_LOG = logging.getLogger(__name__)

#: joint-state samples kept for evaluation (10 min at 50 Hz)
JOINT_BUFFER = 30000


class ControllerOutputs(Protocol):
    """Where the core's outputs go (the node's publishers)."""

    def signal_subscribers(self) -> int:
        """Readers of the learning-signal topic now."""

    def publish_signal(self, signal: np.ndarray) -> None:
        """The learning signal L (time, n_signals)."""

    def publish_demonstration(self, demo: Demonstration) -> None:
        """The episode's demonstration."""

    def publish_markers(self, demo: Demonstration, executed: Mapping[str, Evaluation]) -> None:
        """Target, demonstration and the executed paths so far (name -> evaluation)."""

    def publish_result(self, result: EpisodeResult) -> None:
        """The episode's result."""


@dataclasses.dataclass
class ReachEpisode:
    """The controller's running episode.

    Attributes:
        number: the controller's episode number (1, 2, ...).
        demo: the demonstration of the target.
        signal: the learning signal L (time, n_signals).
        lsg_ms: time the LSG took [ms].
        handshake: the hand-over of the signal and the following of its accelerator episode.
    """

    number: int
    demo: Demonstration
    signal: np.ndarray
    lsg_ms: float
    handshake: SignalHandshake


class ReachController:
    """The controller node's core (see the module docstring).

    Args:
        cfg: whole configuration (network sections from the checkpoint).
        planner: reachability, demonstrations, learning signals.
        outputs: receives the signal, demonstrations, markers and results.
        clock: monotonic clock [s].
        logger: info/warning/error sink (a ``logging.Logger`` or the node's logger).
    """

    #: configuration keys this core reads; the node declares only these
    CONFIG_KEYS = {'arm': ('joints', 'urdf'),
                   'control': ('checkpoint', 'home', 'reach_tolerance', 'min_travel', 'frame_id',
                               'queue_size', 'episode_timeout', 'signal_retry',
                               'joint_state_margin')}
    #: keys read per target or per watchdog tick: a change at run time applies at once
    LIVE_KEYS = ('control.reach_tolerance', 'control.min_travel', 'control.queue_size',
                 'control.episode_timeout', 'control.signal_retry')
    #: the ``episode`` of a ``rejected`` result: the target got no episode (they count from 1)
    NO_EPISODE = 0
    #: the network sections the controller runs (from the checkpoint, read-only)
    NETWORK_SECTIONS = ('trainee', 'lsg', 'task')

    def __init__(self, cfg: L2LConfig, planner: ReachPlanner, outputs: ControllerOutputs, *,
                 clock: Callable[[], float], logger: Any = None) -> None:
        self.cfg = cfg
        self.planner = planner
        self.out = outputs
        self._clock = clock
        self._log = logger or _LOG
        self.joints = list(cfg.arm.joints)
        self.limits = ArmLimits.from_config(cfg)
        #: the end effector at ``control.home`` [m], (3,)
        self.p_home = np.asarray(planner.fk(np.asarray(cfg.control.home, dtype=np.float64)),
                                 dtype=np.float64)
        self.js_t: collections.deque[float] = collections.deque(maxlen=JOINT_BUFFER)
        self.js_q: collections.deque[np.ndarray] = collections.deque(maxlen=JOINT_BUFFER)
        self.targets: collections.deque[np.ndarray] = collections.deque()
        self.episode = 0
        self.current: ReachEpisode | None = None
        self.results: list[EpisodeResult] = []
        self.rejected: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_checkpoint(cls, cfg: L2LConfig, outputs: ControllerOutputs, *,
                        clock: Callable[[], float], logger: Any = None) -> ReachController:
        """Load ``cfg.control.checkpoint`` (its network sections and LSG), build the core.

        Raises:
            CheckpointError: checkpoint missing or unusable.
            ConfigError, ShapeError: configuration or weights do not fit.
        """
        log = logger or _LOG
        ck = load_checkpoint(cfg, log)
        log.info(f'checkpoint {ck.path}')
        return cls(ck.cfg, ReachPlanner(ck.cfg, ck.weights), outputs, clock=clock, logger=log)

    def configure(self, cfg: L2LConfig) -> None:
        """Take a new configuration (:data:`LIVE_KEYS` change; the rest is as at start)."""
        self.cfg = cfg
        self.planner.cfg = cfg

    # ---- inputs ------------------------------------------------------------------------------
    def on_joint_state(self, t: float, q: np.ndarray) -> None:
        """A measured joint position [rad] (arm.joints order) at time ``t`` [s].

        Raises:
            ValueError: ``t`` not finite, or ``q`` not a possible reading (wrong length, not
                finite, outside the URDF limits by more than ``control.joint_state_margin``,
                :meth:`~l2l_nmhw_ros.reach.episode.ArmLimits.check_measurement`); the buffer is
                left as it was.
        """
        q = self.limits.check_measurement(q)
        if not np.isfinite(t):
            raise ValueError(f'joint state time {t} s is not finite')
        if self.js_t and t < self.js_t[-1]:  # time went back (sim reset): start over
            self.js_t.clear()
            self.js_q.clear()
        self.js_t.append(float(t))
        self.js_q.append(q)
        self._next()  # targets waited for the first joint states

    def add_target(self, p: Any, frame_id: str = '') -> None:
        """A reach target [m], (3,), in ``frame_id`` (empty = ``control.frame_id``).

        A target that cannot get an episode is answered at once with a ``rejected`` result
        (:meth:`reject_target`); a valid one starts an episode or waits in the queue, whose
        oldest target is dropped (and answered ``rejected``) when it is full.

        Raises:
            ValueError: the target is rejected (its result is published first): another frame
                (no tf2 here), not 3 numbers, not finite, or closer than ``control.min_travel``
                [m] to the end effector at ``control.home``.
        """
        reason = self._target_problem(p, frame_id)
        if reason:
            self.reject_target(p, reason)
            raise ValueError(reason)
        p = np.asarray(p, dtype=np.float64)
        if self.current is None and self.js_t:
            self._start(p)
            return
        if not self.js_t:
            self._log.warning('no joint_states received yet: the target waits for the arm')
        size = self.cfg.control.queue_size
        while len(self.targets) >= size:
            waiting = len(self.targets)
            old = self.targets.popleft()
            reason = (f'queue full ({waiting} waiting, control.queue_size = {size}): dropped for '
                      f'a newer target')
            self._log.warning(f'target {np.round(old, 3).tolist()}: {reason}')
            self.reject_target(old, reason)
        self.targets.append(p)
        self._log.info(f'episode {self.episode} running: target {np.round(p, 3).tolist()} queued '
                       f'({len(self.targets)} waiting)')

    def reject_target(self, p: Any, reason: str) -> EpisodeResult:
        """Publish the ``rejected`` result of target ``p`` (as received) with ``reason``.

        ``episode`` is :data:`NO_EPISODE`; ``target_x/y/z`` are the coordinates when ``p`` is 3
        numbers (NaN and inf included), else NaN. Never raises for a bad ``p``.
        """
        try:
            xyz = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError):
            xyz = np.full(3, np.nan)
        if xyz.shape != (3,):
            xyz = np.full(3, np.nan)
        result = EpisodeResult(episode=self.NO_EPISODE, target_x=float(xyz[0]),
                               target_y=float(xyz[1]), target_z=float(xyz[2]), status='rejected',
                               message=reason)
        self._publish(result)
        return result

    def _target_problem(self, p: Any, frame_id: str) -> str:
        """Why target ``p`` in ``frame_id`` is rejected, or '' when it is acceptable."""
        frame = self.cfg.control.frame_id
        if frame_id not in ('', frame):
            return (f'wrong frame: {frame_id!r} is not {frame!r} (no tf2 here: send targets in '
                    'the arm base frame)')
        try:
            xyz = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError):
            return f'wrong shape: expected 3 coordinates [m], got {p!r}'
        if xyz.shape != (3,):
            return (f'wrong shape: expected 3 coordinates [m], got shape {xyz.shape}: '
                    f'{xyz.tolist()}')
        if not np.isfinite(xyz).all():
            return f'non-finite coordinates {xyz.tolist()} [m]'
        travel = float(np.linalg.norm(xyz - self.p_home))
        min_travel = self.cfg.control.min_travel
        if travel < min_travel:
            return (f'too close to home: {travel:.3f} m from the end effector at control.home '
                    f'{np.round(self.p_home, 3).tolist()} m, below control.min_travel = '
                    f'{min_travel} m (no motion to learn)')
        return ''

    def on_status(self, status: AcceleratorStatus) -> None:
        """One accelerator status: acknowledges, gives windows or ends the running episode.

        Raises:
            ValueError: an execution of the followed episode starts without its timing.
        """
        cur = self.current
        if cur is None:
            return
        update = cur.handshake.on_status(status)
        if update is HandshakeUpdate.QUEUED:
            self._log.info(f'episode {cur.number}: learning signal queued by the accelerator')
        elif update is HandshakeUpdate.DONE:
            self._finish(cur)
        elif update is HandshakeUpdate.RESTARTED:
            self._log.warning(f'episode {cur.number}: pcm_accelerator restarted (boot '
                              f'{status.boot_id}): sending the learning signal again now')
            self.poll()
        elif update is HandshakeUpdate.REJECTED:
            reason = f'pcm_accelerator refused the learning signal: {cur.handshake.reject_reason}'
            self._log.error(f'episode {cur.number}: {reason}')
            self._publish(self._result(cur.demo.target, 'rejected', message=reason,
                                       ik_distance=cur.demo.ik_distance, lsg_ms=cur.lsg_ms,
                                       signal_sends=cur.handshake.sends,
                                       learning_signal_crc32=cur.handshake.crc))
            self.current = None
            self._next()

    def poll(self) -> None:
        """Watchdog (every 0.5 s): first send, re-sends, episode timeout."""
        cur = self.current
        if cur is None:
            return
        hs = cur.handshake
        action = hs.poll(self._clock(), self.out.signal_subscribers())
        if action is HandshakeAction.WAIT:
            self._log.warning('no subscriber on the learning-signal topic yet (pcm_accelerator '
                              'not up?): waiting')
        elif action is HandshakeAction.RESEND:
            self._log.warning(f'episode {cur.number}: no acknowledgement of learning signal '
                              f'{hs.crc} within {hs.retry_s} s: sending it again '
                              f'(send {hs.sends})')
        if action in (HandshakeAction.SEND, HandshakeAction.RESEND):
            self.out.publish_signal(cur.signal)
        elif action is HandshakeAction.TIMEOUT:
            reason = (f'no answer from pcm_accelerator within {hs.timeout_s} s '
                      f'({hs.timeout_reason()})')
            self._log.error(f'episode {cur.number}: {reason}')
            self._publish(self._result(cur.demo.target, 'timeout', message=reason))
            self.current = None
            self._next()

    # ---- episodes ----------------------------------------------------------------------------
    def _next(self) -> None:
        if self.current is None and self.targets and self.js_t:
            self._start(self.targets.popleft())

    def _start(self, p: np.ndarray) -> None:
        cc = self.cfg.control
        self.episode += 1
        try:
            demo = self.planner.plan(p)
        except UnreachableTarget as exc:
            self._log.warning(f'episode {self.episode}: {exc}')
            near = {} if exc.nearest is None else dict(zip(
                ('nearest_x', 'nearest_y', 'nearest_z'), map(float, exc.nearest), strict=True))
            self._publish(self._result(p, 'unreachable', message=str(exc),
                                       ik_distance=exc.distance, **near))
            self._next()
            return
        c0 = self._clock()
        signal = self.planner.learning_signal(demo)
        lsg_ms = 1e3 * (self._clock() - c0)
        crc = signal_crc(signal)
        hs = SignalHandshake(crc, self._clock(), retry_s=cc.signal_retry,
                             timeout_s=cc.episode_timeout)
        self.current = ReachEpisode(self.episode, demo, signal, lsg_ms, hs)
        self.out.publish_demonstration(demo)
        self.out.publish_markers(demo, {})
        self._log.info(f'episode {self.episode}: target {np.round(p, 3).tolist()} m, joint goal '
                       f'{np.round(demo.q_goal, 3).tolist()} rad; LSG {lsg_ms:.0f} ms, crc {crc}')
        self.poll()  # the first send (or the wait for a subscriber)

    def _finish(self, cur: ReachEpisode) -> None:
        hs, demo = cur.handshake, cur.demo
        st = hs.last_status or AcceleratorStatus()
        fields: dict[str, Any] = {k: getattr(st, k) for k in EpisodeResult.FROM_STATUS}
        fields.update(ik_distance=demo.ik_distance, lsg_ms=cur.lsg_ms, signal_sends=hs.sends,
                      accelerator_episode=hs.accelerator_episode)
        t = np.fromiter(self.js_t, dtype=np.float64)
        q = np.array(self.js_q) if self.js_q else np.zeros((0, len(self.joints)))
        status, notes, moved = 'ok', [], 0.0
        executed: dict[str, Evaluation] = {}
        for name in EXECUTIONS:
            w = hs.windows.get(name)
            if w is None:
                continue
            try:
                ev = evaluate(self.planner, demo, t, q, w.start, w.time_scale, w.end)
            except ValueError as exc:
                status = 'no_joint_states'
                span = f'{t[0]:.3f}..{t[-1]:.3f} s' if len(t) else 'none'
                fields[f'evaluation_error_{name}'] = f'{exc} (buffer: {len(t)} samples, {span})'
                notes.append(f'{name}: {exc}')
                continue
            executed[name] = ev
            moved = max(moved, ev.moved)
            fields.update({f'error_final_{name}': ev.final_error,
                           f'error_path_{name}': ev.path_error,
                           f'error_max_{name}': ev.max_error, f'joint_rmse_{name}': ev.joint_rmse})
        if 'adapted' in executed:
            msg = f"final error {executed['adapted'].final_error:.3f} m after the update"
            if 'baseline' in executed:
                msg += f" ({executed['baseline'].final_error:.3f} m before)"
        else:
            msg = '; '.join(notes) or 'no adapted execution reported'
            if status == 'ok':
                status = 'incomplete'  # e.g. the accelerator was reset midway
        if st.fault:  # the accelerator ended the episode early (e.g. the arm stopped reporting)
            status, msg = 'failed', f'{st.fault}; {msg}'
        self.out.publish_markers(demo, executed)
        self._publish(self._result(demo.target, status, message=msg, arm_moved_rad=moved,
                                   **fields))
        self._log.info(f'episode {cur.number}: {msg}')
        self.current = None
        self._next()

    def _result(self, p: np.ndarray, status: str, **fields: Any) -> EpisodeResult:
        return EpisodeResult(episode=self.episode, target_x=float(p[0]), target_y=float(p[1]),
                             target_z=float(p[2]), status=status, **fields)

    def _publish(self, result: EpisodeResult) -> None:
        self.results.append(result)
        self.out.publish_result(result)
