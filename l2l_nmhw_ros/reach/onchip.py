"""The accelerator's episodes: learning-signal queue, on-chip learning, playback (ROS-free core).

:class:`OnChipLearner` is everything ``pcm_accelerator`` does between a received learning signal
and the joint-position commands it streams; the node only converts messages and calls it.

Per learning signal L (time, n_signals), one episode:

1. **Admission**: a signal identical (same CRC-32, :func:`~l2l_nmhw_ros.reach.reports.signal_crc`)
   to the running or a queued one is the controller's re-send of an unacknowledged signal and is
   ignored; while an episode runs, a new one waits in a bounded FIFO (:class:`SignalQueue`,
   ``control.queue_size``; when full the oldest is dropped) and a status with event ``queued``
   lists the waiting CRCs (it stops the sender's re-sends).
2. **On-chip learning** (:meth:`Accelerator.adapt`): baseline test trial
   (``control.run_baseline``), learning trial, quantised e-prop update re-programming only the
   changed devices, adapted test trial. Its :class:`~l2l_nmhw_ros.reach.accelerator.AdaptOutcome`
   stays here, with the episode, as the pending undo.
3. **Playback planning** (:mod:`l2l_nmhw_ros.reach.playback`): each readout integrated to joint
   positions from ``control.home`` and time-scaled to ``control.velocity_fraction`` x
   ``arm.max_velocity`` (``control.time_scale``, ``control.min_time_scale``); the segments move
   home, baseline, return_baseline, adapted, return_adapted, each followed by
   ``control.settle_time`` of hold, streamed by :meth:`tick` (the node's command timer).
   Every set-point is clamped to the safe joint range (:class:`~l2l_nmhw_ros.reach.episode.
   ArmLimits`: URDF ∩ the paper's safe ranges), at planning and again when streamed
   (``commands_clamped`` counts them).
4. **End**: the update undone on-chip (``control.restore_weights``: the changed weights
   programmed back to their targets before it), the device state saved
   (``control.state_file``), status ``end`` with ``phase = done``, the next queued signal starts.

Refusals and faults (nothing here raises out of a message): a learning signal that is not finite
or larger than the checkpoint's LSG can emit, or whose update is not finite or would change more
than ``control.max_weights_changed`` weights, is refused before anything is programmed (status
event ``rejected`` with its CRC and reason); a joint-state reading outside the URDF limits by more
than ``control.joint_state_margin`` is not used; :meth:`OnChipLearner.watchdog` ends an episode
whose arm stopped reporting (``fault``) and warns while the ROS clock stands still.
``boot_id`` (random per start) tells the controller that the node restarted.

Status reports (:class:`~l2l_nmhw_ros.reach.reports.AcceleratorStatus`) go out on every phase
start/end, when an episode is computed or queued, on reset and when the node asks (periodic).
The adaptation latency is the monotonic ``clock`` time from the signal's arrival (``t_in``) to
the adapted command stream ready, minus the baseline trial. ``now`` is the emulator clock [s]
(the node's ROS time); both clocks are passed in.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.errors import ConfigError, RejectedInput, ShapeError
from l2l_nmhw_ros.reach.accelerator import Accelerator, AdaptOutcome
from l2l_nmhw_ros.reach.episode import ArmLimits, joint_index, load_checkpoint
from l2l_nmhw_ros.reach.playback import (Segment, SegmentEvent, Streamer, integrate_readout,
                                       min_time_scale_for, move_segment, trajectory_segment)
from l2l_nmhw_ros.reach.reports import AcceleratorStatus, signal_crc

__all__ = ['AcceleratorOutputs', 'Admission', 'OnChipLearner', 'QueuedSignal',
           'RunningEpisode', 'SignalQueue']

_LOG = logging.getLogger(__name__)


class AcceleratorOutputs(Protocol):
    """Where the core's outputs go (the node's publishers)."""

    def publish_command(self, q: np.ndarray) -> None:
        """Joint positions [rad], (n_joints,) in ``arm.joints`` order."""

    def publish_status(self, status: AcceleratorStatus) -> None:
        """One status report."""


@dataclasses.dataclass(frozen=True)
class QueuedSignal:
    """A learning signal waiting for its episode.

    Attributes:
        signal: L (time, n_signals) float32.
        crc: its CRC-32 (8 hex digits).
        t_in: monotonic time of its arrival [s] (start of the adaptation latency).
    """

    signal: np.ndarray
    crc: str
    t_in: float


class SignalQueue:
    """Bounded FIFO of learning signals, de-duplicated by CRC.

    Args:
        size: capacity (>= 1); a push into a full queue drops the oldest.

    Raises:
        ValueError: ``size`` < 1.
    """

    def __init__(self, size: int) -> None:
        self._items: collections.deque[QueuedSignal] = collections.deque()
        self.size = size

    @property
    def size(self) -> int:
        """Capacity (a smaller new size applies at the next push)."""
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        if size < 1:
            raise ValueError(f'queue size: must be >= 1, got {size}')
        self._size = int(size)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, crc: object) -> bool:
        return any(item.crc == crc for item in self._items)

    @property
    def crcs(self) -> tuple[str, ...]:
        """CRCs of the waiting signals, oldest first."""
        return tuple(item.crc for item in self._items)

    def push(self, item: QueuedSignal) -> list[QueuedSignal]:
        """Append ``item``; return the oldest items dropped to make room (usually none)."""
        dropped = []
        while len(self._items) >= self._size:
            dropped.append(self._items.popleft())
        self._items.append(item)
        return dropped

    def pop(self) -> QueuedSignal | None:
        """Remove and return the oldest item, or None when empty."""
        return self._items.popleft() if self._items else None

    def clear(self) -> None:
        """Drop every waiting signal."""
        self._items.clear()


@dataclasses.dataclass(frozen=True)
class RunningEpisode:
    """The episode on the crossbar now.

    Attributes:
        number: the accelerator's episode number (1, 2, ...).
        crc: CRC-32 of its learning signal.
        outcome: what the update did: the pending undo (:meth:`Accelerator.restore`).
    """

    number: int
    crc: str
    outcome: AdaptOutcome


class Admission(enum.Enum):
    """What :meth:`OnChipLearner.on_learning_signal` did with a signal."""

    STARTED = 'started'
    QUEUED = 'queued'
    DUPLICATE = 'duplicate'
    REJECTED = 'rejected'


_NO_PHASE = {'phase_duration': 0.0, 'phase_hold': 0.0, 'time_scale': 0.0}


class OnChipLearner:
    """The accelerator node's core (see the module docstring).

    Args:
        cfg: whole configuration (network sections from the checkpoint; arm and control used).
        accelerator: the trainee on the crossbar (owned from now on).
        outputs: receives commands and status reports.
        now: emulator clock [s] (the node's ROS time).
        clock: monotonic clock [s] for the adaptation latency.
        logger: info/warning/error sink (a ``logging.Logger`` or the node's logger).

    Raises:
        ConfigError: ``control.home`` does not give one value per ``arm.joints``, or a joint the
            trainee drives is missing from ``arm.joints``.
    """

    #: configuration keys this core (and its node's timers) read; the node declares only these
    CONFIG_KEYS = {'arm': ('joints', 'max_velocity', 'urdf'),
                   'control': ('home', 'velocity_fraction', 'time_scale', 'min_time_scale',
                               'settle_time', 'run_baseline', 'restore_weights', 'fast_trials',
                               'queue_size', 'command_rate', 'status_rate', 'checkpoint',
                               'state_file', 'max_weights_changed', 'joint_state_timeout',
                               'clock_timeout', 'joint_state_margin')}
    #: keys read per episode: a change at run time applies from the next episode on
    LIVE_KEYS = ('arm.max_velocity', 'control.velocity_fraction', 'control.time_scale',
                 'control.min_time_scale', 'control.settle_time', 'control.run_baseline',
                 'control.restore_weights', 'control.queue_size',
                 'control.max_weights_changed', 'control.joint_state_timeout',
                 'control.clock_timeout')
    #: period of the node's wall-clock watchdog [s] (:meth:`watchdog`)
    WATCHDOG_PERIOD = 0.2
    #: the network sections the accelerator runs (from the checkpoint, read-only)
    NETWORK_SECTIONS = ('trainee', 'eprop', 'task')

    def __init__(self, cfg: L2LConfig, accelerator: Accelerator, outputs: AcceleratorOutputs,
                 *, now: Callable[[], float], clock: Callable[[], float],
                 logger: Any = None) -> None:
        self.accelerator = accelerator
        self.out = outputs
        self._now, self._clock = now, clock
        self._log = logger or _LOG
        self.joints = list(cfg.arm.joints)
        _, self.learned_idx = joint_index(self.joints, cfg.task.learned_joints)
        self.limits = ArmLimits.from_config(cfg)
        self.queue = SignalQueue(cfg.control.queue_size)
        self.configure(cfg)
        self.streamer = Streamer()
        self.running: RunningEpisode | None = None
        self.episode = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self._q_measured: np.ndarray | None = None
        self._js_clock: float | None = None  # monotonic arrival time of the last joint state
        self._episode_clock = 0.0  # monotonic start of the running episode
        self._ros_now = now()
        self._ros_moved_clock = clock()  # monotonic time the ROS clock last advanced
        self._clamped = 0
        self.boot_id = secrets.token_hex(4)
        self._report = AcceleratorStatus(boot_id=self.boot_id, phase='', phase_start=0.0,
                                         **_NO_PHASE)

    @classmethod
    def from_checkpoint(cls, cfg: L2LConfig, outputs: AcceleratorOutputs, *,
                        now: Callable[[], float], clock: Callable[[], float],
                        logger: Any = None) -> OnChipLearner:
        """Load ``cfg.control.checkpoint``, program (or restore) the crossbar, build the core.

        Logs the network values the checkpoint sets and warns when the pcm settings differ
        from those it was meta-trained with.

        Raises:
            CheckpointError: checkpoint missing or unusable.
            ConfigError, ShapeError: configuration or weights do not fit.
        """
        log = logger or _LOG
        ck = load_checkpoint(cfg, log)
        if ck.pcm_differences:
            log.warning('pcm settings differ from those the checkpoint was meta-trained with '
                        "(kept, but its model-card errors do not apply): "
                        + '; '.join(ck.pcm_differences))
        cc = ck.cfg.control
        acc = Accelerator(ck.cfg, ck.weights, now(), seed=ck.cfg.seed,
                          state_file=cc.state_file or None, clock=clock, logger=log)
        origin = (f'restored from {cc.state_file}' if acc.loaded_from_state else
                  'programmed from the checkpoint')
        log.info(f'checkpoint {ck.path}; crossbar {origin} ({acc.devices_programmed_total} '
                 f'devices written so far); trials in the '
                 f'{"compiled kernel (numba)" if acc.fast else "torch loop"}')
        return cls(ck.cfg, acc, outputs, now=now, clock=clock, logger=log)

    def configure(self, cfg: L2LConfig) -> None:
        """Take a new configuration; the :data:`LIVE_KEYS` apply from the next episode on.

        Raises:
            ConfigError: ``control.home`` does not give one value per joint.
        """
        home = np.asarray(cfg.control.home, dtype=np.float64)
        if home.shape != (len(self.joints),):
            raise ConfigError(f'control.home: {len(cfg.control.home)} values for '
                              f'{len(self.joints)} joints (arm.joints)')
        self.cfg, self.home = cfg, home
        self.queue.size = cfg.control.queue_size

    # ---- inputs ------------------------------------------------------------------------------
    def on_joint_state(self, q: np.ndarray) -> None:
        """The measured joint positions [rad] (arm.joints order): where the first move starts,
        and the arm's sign of life while streaming.

        Raises:
            ValueError: not one finite value per joint, or outside the URDF limits by more than
                ``control.joint_state_margin`` (an impossible reading; not used).
        """
        self._q_measured = self.limits.check_measurement(q).copy()
        self._js_clock = self._clock()

    def on_learning_signal(self, signal: np.ndarray, t_in: float) -> Admission:
        """Run, queue or ignore (a re-send) a learning signal L (time, n_signals).

        Args:
            signal: the learning signal.
            t_in: monotonic ``clock`` time of its arrival [s].

        A signal that is not finite or larger than the checkpoint's LSG can emit is refused
        (:data:`Admission.REJECTED`): logged, counted, and a status with event ``rejected``,
        its CRC and the reason goes out at once (the controller ends its episode with it).

        Raises:
            ShapeError: not (task.n_steps, n_signals).
        """
        crc = signal_crc(signal)
        try:
            self.accelerator.check_learning_signal(signal)
        except ShapeError:
            raise
        except ValueError as exc:  # not finite, or RejectedInput (too large)
            return self._reject(crc, str(exc))
        if (self.running is not None and self.running.crc == crc) or crc in self.queue:
            self._log.info(f'learning signal {crc} is already running or queued: ignored '
                           '(a re-send)')
            return Admission.DUPLICATE
        item = QueuedSignal(np.asarray(signal, dtype=np.float32), crc, t_in)
        if self.running is None and not len(self.queue):
            return self._start(item)
        for old in self.queue.push(item):
            self._log.warning(f'learning-signal queue full ({self.queue.size}): dropped the '
                              f'oldest ({old.crc})')
        self._log.info(f'episode running: learning signal {crc} queued ({len(self.queue)} '
                       'waiting)')
        self.publish_status('queued')  # tells the sender to stop re-sending it
        return Admission.QUEUED

    def _reject(self, crc: str, reason: str) -> Admission:
        self.rejected['learning_signal'] += 1
        self._log.warning(f'learning signal {crc} refused: {reason}')
        self.publish_status('rejected', rejected_crc32=crc, rejected_reason=reason)
        return Admission.REJECTED

    # ---- episodes ----------------------------------------------------------------------------
    def _start(self, item: QueuedSignal) -> Admission:
        cc = self.cfg.control
        t_emu = self._now()
        try:
            out = self.accelerator.adapt(item.signal, t_emu, baseline=cc.run_baseline)
        except RejectedInput as exc:  # refused before anything was programmed
            self._reject(item.crc, str(exc))
            nxt = self.queue.pop()
            if nxt is not None:
                self._start(nxt)
            return Admission.REJECTED
        self.episode += 1
        self._episode_clock = self._clock()
        self._clamped = 0
        segments, scales = self._plan(out)
        latency = self._clock() - item.t_in - out.timings['baseline_trial']
        self.streamer.push(*segments)
        self.running = RunningEpisode(self.episode, item.crc, out)
        self._report = dataclasses.replace(
            self._report, phase='computed', phase_start=t_emu, **_NO_PHASE, episode=self.episode,
            learning_signal_crc32=item.crc, devices_programmed=out.devices_programmed,
            weights_changed=out.weights_changed, devices_restored=0,
            adaptation_latency_ms=1e3 * latency,
            baseline_trial_ms=1e3 * out.timings['baseline_trial'],
            learning_trial_ms=1e3 * out.timings['learning_trial'],
            update_ms=1e3 * out.timings['update'], test_trial_ms=1e3 * out.timings['test_trial'],
            trainee_rate_hz=out.rate_hz, time_scale_baseline=scales.get('baseline', 0.0),
            time_scale_adapted=scales['adapted'], fault=None, commands_clamped=self._clamped)
        self._log.info(f'episode {self.episode}: {out.devices_programmed} devices programmed '
                       f'({out.weights_changed} weights), adaptation latency '
                       f'{1e3 * latency:.0f} ms, time scale {scales["adapted"]:.1f}')
        self.publish_status('computed')
        return Admission.STARTED

    def _plan(self, out: AdaptOutcome) -> tuple[list[Segment], dict[str, float]]:
        """Segments home -> (baseline -> home) -> adapted -> home, and the time scales."""
        cc, tc = self.cfg.control, self.cfg.task
        vmax = self.cfg.arm.max_velocity * cc.velocity_fraction
        segments = [move_segment('home', self._current_pose(), self.home, vmax, cc.settle_time)]
        scales = {}
        for name, omega in (('baseline', out.omega_baseline), ('adapted', out.omega_adapted)):
            if omega is None:
                continue
            q = integrate_readout(omega, self.home, tc.omega_scale, self.learned_idx)
            q, n_out = self.limits.clamp_command(q)
            if n_out:
                self._clamped += n_out
                self._log.warning(f'{name} execution leaves the safe joint range at {n_out} '
                                  'set-points: clamped to it')
            scale = cc.time_scale or max(cc.min_time_scale,
                                         min_time_scale_for(q, self.home, tc.dt, vmax))
            scales[name] = scale
            segments.append(trajectory_segment(name, q, self.home, tc.dt, scale, cc.settle_time))
            segments.append(move_segment(f'return_{name}', q[-1], self.home, vmax,
                                         cc.settle_time))
        return segments, scales

    def _current_pose(self) -> np.ndarray:
        if self._q_measured is not None:
            return self._q_measured.copy()
        if self.streamer.last_command is not None:
            return self.streamer.last_command.copy()
        return self.home.copy()

    def tick(self) -> None:
        """Stream the set-point of now (the node's command timer); end the episode after its
        last segment."""
        now = self._now()
        if self.watchdog():
            return
        q, events = self.streamer.tick(now)
        for ev in events:
            self._on_event(ev)
        if q is not None:
            q, n_out = self.limits.clamp_command(q)  # defence in depth: planned inside already
            if n_out:
                self._clamped += n_out
                self._report = dataclasses.replace(self._report, commands_clamped=self._clamped)
            self.out.publish_command(q)
        elif self.running is not None:
            self._finish(self.running, now)

    def watchdog(self) -> bool:
        """Liveness checks of a running episode (from :meth:`tick` and the node's wall-clock
        timer, every :data:`WATCHDOG_PERIOD` s); True when it ended the episode.

        - joint_states: once the arm has reported, none for ``control.joint_state_timeout`` s
          (monotonic clock) while an episode runs: streaming stops, the update is undone, the
          episode ends (``phase = done``) with ``fault`` saying why;
        - ROS clock: standing still for ``control.clock_timeout`` s during an episode: a warning
          (log and ``clock_stalled_s``, level WARN) until it moves again.
        """
        cc = self.cfg.control
        wall, now = self._clock(), self._now()
        if now != self._ros_now:
            self._ros_now, self._ros_moved_clock = now, wall
        stalled = wall - self._ros_moved_clock if self.running is not None else 0.0
        stalled = stalled if stalled > cc.clock_timeout else 0.0
        if stalled and not self._report.clock_stalled_s:
            self._log.warning(f'the ROS clock has not advanced for {stalled:.1f} s during episode '
                              f'{self.episode} (simulation paused or no /clock?)')
        self._report = dataclasses.replace(self._report, clock_stalled_s=stalled)
        if self.running is None or self._js_clock is None:
            return False
        silent = wall - max(self._js_clock, self._episode_clock)
        if silent <= cc.joint_state_timeout:
            return False
        fault = (f'no joint_states for {silent:.1f} s (arm driver down?): streaming stopped')
        if stalled:
            fault += f'; the ROS clock stood still for {stalled:.1f} s'
        self._log.error(f'episode {self.episode}: {fault}')
        self.streamer.clear()
        self._report = dataclasses.replace(self._report, fault=fault)
        self._finish(self.running, now)
        return True

    def _on_event(self, ev: SegmentEvent) -> None:
        seg = ev.segment
        start = ev.t if ev.kind == 'start' else self._report.phase_start
        self._report = dataclasses.replace(
            self._report, phase=seg.name, phase_start=start, phase_duration=seg.duration,
            phase_hold=seg.hold, time_scale=seg.time_scale)
        self.publish_status(ev.kind)

    def _finish(self, running: RunningEpisode, now: float) -> None:
        restored = (self.accelerator.restore(running.outcome, now)
                    if self.cfg.control.restore_weights else 0)
        self.running = None
        self._report = dataclasses.replace(self._report, devices_restored=restored,
                                           phase='done', phase_start=now, **_NO_PHASE)
        if self.cfg.control.state_file:
            ok, msg = self.save()
            if not ok:
                self._log.error(msg)
        self.publish_status('end')
        nxt = self.queue.pop()
        if nxt is not None:
            self._start(nxt)

    # ---- services, status --------------------------------------------------------------------
    def reset(self) -> str:
        """Drop the queue, end a running episode (``phase = done``), re-program every device
        to the checkpoint weights; return the service message."""
        now = self._now()
        self.streamer.clear()
        self.queue.clear()
        if self.running is not None:  # the episode ends here: its follower must not wait
            self._report = dataclasses.replace(self._report, phase='done', phase_start=now,
                                               **_NO_PHASE)
        self.running = None
        n = self.accelerator.reset(now)
        self.publish_status('reset')
        return f'crossbar re-programmed to the checkpoint weights ({n} devices)'

    def save(self) -> tuple[bool, str]:
        """Save the device state to ``control.state_file``; return (success, message)."""
        path = self.cfg.control.state_file
        if not path:
            return False, 'no control.state_file set: state kept in memory only'
        try:
            self.accelerator.save(path)
        except OSError as exc:
            return False, f'saving the device state to {path} failed: {exc}'
        return True, f'device state saved to {path}'

    def close(self) -> None:
        """Save the device state when a state file is set (at shutdown); errors are logged."""
        if self.cfg.control.state_file:
            ok, msg = self.save()
            if not ok:
                self._log.error(msg)

    def status(self, event: str, **extra: Any) -> AcceleratorStatus:
        """The status report now, for ``event`` (``extra``: fields of this report only)."""
        state = ('streaming' if self.streamer.busy else
                 'computing' if self.running is not None else 'idle')
        return dataclasses.replace(
            self._report, state=state, event=event,
            **self.accelerator.statistics(self._now()), queued=len(self.queue),
            queued_crc32=','.join(self.queue.crcs), rejected_messages=sum(self.rejected.values()),
            **extra)

    def publish_status(self, event: str, **extra: Any) -> None:
        """Send the status report for ``event`` (e.g. ``periodic``)."""
        self.out.publish_status(self.status(event, **extra))
