"""The controller's hand-over of one learning signal to the accelerator (ROS-free state machine).

The learning signal travels on a reliable, volatile topic; right after discovery DDS may still
drop a sample, so the controller re-sends it until the accelerator acknowledges it, then follows
that accelerator episode's status reports until ``phase = done``. Each accelerator status carries
the CRC-32 of the signal it runs (``learning_signal_crc32``) and its episode number; the signal
is the request's only identity (standard messages only, no request id)::

    DELIVERING ──status with its CRC at the START of an episode (phase computed | home)──▶ RUNNING
      │    ▲                                                                                │
      │    └── no longer in queued_crc32 (dropped, reset): re-sends resume                  │
      ▼                                                                                      ▼
    QUEUED (listed in queued_crc32: the busy accelerator holds it, no re-sends) ──start──▶ RUNNING
                                                                       phase done of ITS episode
    any state but DONE ──episode timeout (wall clock)──▶ TIMED_OUT                     ──▶ DONE
    DELIVERING | QUEUED ──event rejected with its CRC──▶ REJECTED (nothing was programmed)
    any state but DONE ──status with another boot_id (the accelerator restarted)──▶ DELIVERING,
                         re-sent at once

While DELIVERING, :meth:`SignalHandshake.poll` asks for the first send once the accelerator
subscribes, then for a re-send every ``retry_s``. A status of another phase or of ``done`` with
the same CRC never acknowledges: it belongs to an earlier episode with the same signal (same
target again, or one the controller abandoned), and joining it midway would miss its execution
windows. Once RUNNING, only statuses of that accelerator episode count: the start events of the
``baseline`` and ``adapted`` phases give their execution windows, ``done`` ends it.

Times are seconds of the caller's monotonic clock (passed in; nothing here reads a clock).
"""

from __future__ import annotations

import dataclasses
import enum

from l2l_nmhw_ros.reach.reports import AcceleratorStatus

__all__ = ['ACK_PHASES', 'EXECUTIONS', 'HandshakeAction', 'HandshakeState', 'HandshakeUpdate',
           'SignalHandshake', 'Window']

#: accelerator phases that acknowledge a learning signal: the start of its episode
ACK_PHASES = ('computed', 'home')
#: the executed phases the controller evaluates
EXECUTIONS = ('baseline', 'adapted')


class HandshakeState(enum.Enum):
    """Where the hand-over of one learning signal stands."""

    DELIVERING = 'delivering'  # not acknowledged: (re-)sent every retry_s
    QUEUED = 'queued'          # listed in the accelerator's queued_crc32: no re-sends
    RUNNING = 'running'        # its accelerator episode started: following it
    DONE = 'done'              # that episode reached phase done
    TIMED_OUT = 'timed_out'    # no done within the episode timeout
    REJECTED = 'rejected'      # the accelerator refused the signal (reject_reason)


_FINAL = (HandshakeState.DONE, HandshakeState.TIMED_OUT, HandshakeState.REJECTED)


class HandshakeAction(enum.Enum):
    """What :meth:`SignalHandshake.poll` asks the caller to do now."""

    NONE = 'none'
    WAIT = 'wait'        # nobody subscribes to the signal yet (returned once; log it)
    SEND = 'send'        # publish the signal (the first time)
    RESEND = 'resend'    # publish it again: not acknowledged within retry_s
    TIMEOUT = 'timeout'  # the episode timed out: abandon it


class HandshakeUpdate(enum.Enum):
    """What one accelerator status changed (:meth:`SignalHandshake.on_status`)."""

    IGNORED = 'ignored'            # another signal or episode, or a stale status
    QUEUED = 'queued'              # the accelerator queued the signal (no re-sends)
    ACKNOWLEDGED = 'acknowledged'  # its episode started: accelerator_episode is known
    PROGRESS = 'progress'          # a status of the followed episode
    WINDOW = 'window'              # an execution started: windows[phase] is known
    DONE = 'done'                  # the followed episode ended
    REJECTED = 'rejected'          # the accelerator refused the signal (reject_reason)
    RESTARTED = 'restarted'        # the accelerator restarted: re-send now (poll says so)


@dataclasses.dataclass(frozen=True)
class Window:
    """One execution as played by the accelerator (ROS time of its clock).

    Attributes:
        start: time of the execution's first command [s].
        duration: motion time [s].
        hold: hold after the motion [s].
        time_scale: playback scale (robot s per network s).
    """

    start: float
    duration: float
    hold: float
    time_scale: float

    @property
    def end(self) -> float:
        """End of the evaluation window (after the hold) [s]."""
        return self.start + self.duration + self.hold


class SignalHandshake:
    """Deliver one learning signal to the accelerator and follow the episode it starts.

    Args:
        crc: the signal's ``learning_signal_crc32``.
        now: monotonic time of the episode start [s].
        retry_s: re-send period while unacknowledged [s] (> 0).
        timeout_s: episode timeout from ``now`` [s] (> 0).

    Raises:
        ValueError: ``retry_s`` or ``timeout_s`` not > 0.
    """

    def __init__(self, crc: str, now: float, *, retry_s: float, timeout_s: float) -> None:
        if not (retry_s > 0 and timeout_s > 0):
            raise ValueError(f'retry_s and timeout_s must be > 0 [s], got {retry_s}, {timeout_s}')
        self.crc = crc
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.deadline = now + timeout_s
        self.state = HandshakeState.DELIVERING
        self.sends = 0
        self.sent_at = 0.0
        self.accelerator_episode: int | None = None
        self.windows: dict[str, Window] = {}
        self.last_status: AcceleratorStatus | None = None
        self.last_seen: AcceleratorStatus | None = None  # the last status of any episode
        self.boot_id: str | None = None
        self.reject_reason = ''
        self.restarts = 0
        self._waited = False

    @property
    def acknowledged(self) -> bool:
        """True once an accelerator episode with this signal started."""
        return self.accelerator_episode is not None

    def poll(self, now: float, subscribers: int) -> HandshakeAction:
        """Advance the clock to ``now`` [s]; return what to do (the caller does it).

        Args:
            now: monotonic time [s].
            subscribers: readers of the learning-signal topic now (a send waits for one).
        """
        if self.state in _FINAL:
            return HandshakeAction.NONE
        if now > self.deadline:
            self.state = HandshakeState.TIMED_OUT
            return HandshakeAction.TIMEOUT
        if self.state is not HandshakeState.DELIVERING:
            return HandshakeAction.NONE
        if subscribers <= 0:
            first_wait = not self._waited
            self._waited = True
            return HandshakeAction.WAIT if first_wait and self.sends == 0 else HandshakeAction.NONE
        if self.sends and now - self.sent_at < self.retry_s:
            return HandshakeAction.NONE
        self.sends += 1
        self.sent_at = now
        return HandshakeAction.SEND if self.sends == 1 else HandshakeAction.RESEND

    def on_status(self, status: AcceleratorStatus) -> HandshakeUpdate:
        """Take one accelerator status into account; return what it changed.

        Raises:
            ValueError: the start of an execution of the followed episode without its timing
                (``phase_start``, ``phase_duration``, ``phase_hold``, ``time_scale``).
        """
        if self.state in _FINAL:
            return HandshakeUpdate.IGNORED
        self.last_seen = status
        if status.boot_id is not None and status.boot_id != self.boot_id:
            restarted = self.boot_id is not None
            self.boot_id = status.boot_id
            if restarted:  # the episode (or the queued signal) died with the old process
                self.state = HandshakeState.DELIVERING
                self.accelerator_episode, self.last_status = None, None
                self.windows.clear()
                self.sent_at = -float('inf')  # the next poll re-sends at once
                self.restarts += 1
                return HandshakeUpdate.RESTARTED
        update = HandshakeUpdate.IGNORED
        waiting = self.state in (HandshakeState.DELIVERING, HandshakeState.QUEUED)
        if waiting and status.event == 'rejected' and status.rejected_crc32 == self.crc:
            self.state = HandshakeState.REJECTED
            self.reject_reason = status.rejected_reason or 'no reason given'
            return HandshakeUpdate.REJECTED
        if waiting and status.queued_crc32 is not None:
            queued = self.crc in status.queued_crc32.split(',')
            if queued and self.state is HandshakeState.DELIVERING:
                self.state, update = HandshakeState.QUEUED, HandshakeUpdate.QUEUED
            elif not queued and self.state is HandshakeState.QUEUED:
                self.state = HandshakeState.DELIVERING  # dropped from the queue: re-send
        if status.learning_signal_crc32 != self.crc:
            return update
        if waiting:
            if status.phase not in ACK_PHASES:
                return update  # a later phase of an earlier episode with the same signal
            self.state = HandshakeState.RUNNING
            self.accelerator_episode = status.episode
            self.last_status = status
            return HandshakeUpdate.ACKNOWLEDGED
        if status.episode != self.accelerator_episode:
            return HandshakeUpdate.IGNORED
        self.last_status = status
        if status.phase in EXECUTIONS and status.event == 'start':
            timing = (status.phase_start, status.phase_duration, status.phase_hold,
                      status.time_scale)
            if any(v is None for v in timing):
                raise ValueError(f'status: phase {status.phase} starts without its timing '
                                 '(phase_start, phase_duration, phase_hold, time_scale)')
            self.windows[status.phase] = Window(*timing)  # type: ignore[arg-type]
            return HandshakeUpdate.WINDOW
        if status.phase == 'done':  # its 'end' event, or (if that was lost) the next periodic
            self.state = HandshakeState.DONE
            return HandshakeUpdate.DONE
        return HandshakeUpdate.PROGRESS

    def timeout_reason(self) -> str:
        """Why the episode timed out (for the result message)."""
        if self.accelerator_episode is None:
            text = (f'learning signal sent {self.sends} times, never acknowledged: is it '
                    'running? same checkpoint?')
        else:
            text = f'accelerator episode {self.accelerator_episode} did not reach phase done'
        if self.last_seen is not None and self.last_seen.clock_stalled_s:
            text += (f'; the accelerator reports its ROS clock stood still for '
                     f'{self.last_seen.clock_stalled_s:.1f} s (simulation paused or no /clock?)')
        return text
