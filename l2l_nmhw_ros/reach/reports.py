"""The two reports of the reach graph as typed records (ROS-free): what goes over the wire.

:class:`AcceleratorStatus` is one ``pcm_accelerator/status`` message, :class:`EpisodeResult` one
``snn_controller/result``. Each dataclass IS its key list: the field names are the keys of the
DiagnosticStatus, in that order (:data:`STATUS_KEYS`, :data:`RESULT_KEYS`); a field that is None
is not sent (e.g. the errors of an execution that did not run). ``ros/convert.py`` turns a report
into a DiagnosticStatus in one place (:meth:`values`: floats with 9 decimals, ints, strings);
:meth:`AcceleratorStatus.from_values` parses the strings a subscriber receives back.

Units: times [s] (ROS time for ``phase_start``), durations of computations [ms], conductance [µS],
distances [m], joint errors [rad], rates [Hz]. Semantics of every key: ``docs/ros.md`` and the
node modules (:mod:`l2l_nmhw_ros.ros.pcm_accelerator_node`, :mod:`~l2l_nmhw_ros.ros.
snn_controller_node`).
"""

from __future__ import annotations

import dataclasses
import enum
import typing
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = ['RESULT_KEYS', 'STATUS_KEYS', 'AcceleratorStatus', 'EpisodeResult', 'Level',
           'signal_crc']


class Level(enum.IntEnum):
    """Diagnostic levels (the values of diagnostic_msgs/DiagnosticStatus)."""

    OK = 0
    WARN = 1
    ERROR = 2


def signal_crc(signal: np.ndarray) -> str:
    """CRC-32 of a learning signal's float32 bytes as 8 hex digits.

    The identity of an episode shared by ``snn_controller`` and ``pcm_accelerator``
    (``learning_signal_crc32``): the signal (time, n_signals) is converted to C-ordered float32
    first.
    """
    return f'{zlib.crc32(np.ascontiguousarray(signal, dtype=np.float32).tobytes()):08x}'


def _wire_types(cls: type) -> dict[str, type]:
    """Field name -> scalar type (int, float or str) of a report dataclass's wire fields."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is ClassVar:
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        out[name] = args[0]
    return out


class _Report:
    """Mixin: ordered key/value view of a report dataclass (None fields left out)."""

    WIRE: ClassVar[tuple[str, ...]] = ()

    def values(self) -> dict[str, Any]:
        """The keys and values to send, in key-list order; None fields are not sent."""
        return {k: v for k in self.WIRE if (v := getattr(self, k)) is not None}


@dataclasses.dataclass(frozen=True)
class AcceleratorStatus(_Report):
    """One ``pcm_accelerator/status`` report (DiagnosticStatus ``pcm_accelerator``).

    Every field is one key; None = not sent (the episode fields before the first episode) or, in
    a parsed message, not received. ``event``: start | end (of a phase), computed, queued, reset,
    periodic, rejected (a learning signal refused: ``rejected_crc32``, ``rejected_reason``; nothing
    programmed). ``state``: idle | computing | streaming. ``boot_id`` changes when the node
    restarts (the controller then re-sends at once).
    """

    DIAG_NAME: ClassVar[str] = 'pcm_accelerator'
    HARDWARE_ID: ClassVar[str] = 'pcm_crossbar'

    state: str | None = None
    event: str | None = None
    # this run of the accelerator (random at start: a new value = the node restarted)
    boot_id: str | None = None
    # the phase being played (the last phase event): name, start [s ROS time], duration and
    # hold [s], playback time scale
    phase: str | None = None
    phase_start: float | None = None
    phase_duration: float | None = None
    phase_hold: float | None = None
    time_scale: float | None = None
    # the last episode computed
    episode: int | None = None
    learning_signal_crc32: str | None = None
    devices_programmed: int | None = None
    weights_changed: int | None = None
    devices_restored: int | None = None
    adaptation_latency_ms: float | None = None
    baseline_trial_ms: float | None = None
    learning_trial_ms: float | None = None
    update_ms: float | None = None
    test_trial_ms: float | None = None
    trainee_rate_hz: float | None = None
    time_scale_baseline: float | None = None
    time_scale_adapted: float | None = None
    # device statistics (:meth:`l2l_nmhw_ros.reach.accelerator.Accelerator.statistics`)
    mean_conductance_uS: float | None = None
    device_age_s: float | None = None
    drift_compensation_factor: float | None = None
    devices_programmed_total: float | None = None
    devices_set_fraction: float | None = None
    # the learning-signal queue and the bad messages ignored so far
    queued: int | None = None
    queued_crc32: str | None = None
    rejected_messages: int | None = None
    # a learning signal refused (event ``rejected``): its CRC and why; nothing was programmed
    rejected_crc32: str | None = None
    rejected_reason: str | None = None
    # why the last episode ended early (stale joint_states, ...); empty when it ran to the end
    fault: str | None = None
    # defence in depth: commands clamped to the joint limits in the last episode
    commands_clamped: int | None = None
    # wall-clock seconds the ROS clock has stood still during the running episode (0 = moving)
    clock_stalled_s: float | None = None

    @property
    def level(self) -> Level:
        """WARN while the ROS clock stands still in an episode or after an episode that ended
        early (``fault``); else OK (errors are the controller's results)."""
        return Level.WARN if (self.clock_stalled_s or self.fault) else Level.OK

    @property
    def message(self) -> str:
        """Human-readable summary, e.g. ``streaming; episode 3``, plus the warning if any."""
        text = f'{self.state}; episode {self.episode or 0}'
        if self.clock_stalled_s:
            text += (f'; ROS clock has not advanced for {self.clock_stalled_s:.1f} s (paused '
                     'simulation or no /clock?)')
        if self.fault:
            text += f'; last episode ended early: {self.fault}'
        return text

    @property
    def hardware_id(self) -> str:
        """The DiagnosticStatus hardware_id."""
        return self.HARDWARE_ID

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> AcceleratorStatus:
        """Parse the key/value strings of a received status (unknown keys are ignored).

        Raises:
            ValueError: a known key's value does not parse as its type (int, float).
        """
        kwargs: dict[str, Any] = {}
        for key, typ in _STATUS_TYPES.items():
            if key in values:
                try:
                    kwargs[key] = typ(values[key])
                except ValueError as exc:
                    raise ValueError(f'status key {key!r}: {values[key]!r} is not '
                                     f'{typ.__name__}') from exc
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class EpisodeResult(_Report):
    """One ``snn_controller/result`` report (DiagnosticStatus ``snn_controller/episode``).

    ``status``: ok | unreachable | timeout | no_joint_states | incomplete | rejected; the level is
    ERROR unless ok. ``message`` is the DiagnosticStatus message (not a key). Per execution
    (baseline: the meta-learned weights, adapted: after the one update): final, mean-path and
    largest end-effector errors [m], joint RMS error [rad], or the reason it could not be
    evaluated.

    ``rejected`` (``message`` gives the reason): a target the controller refused before any
    episode (wrong frame or shape, non-finite, closer than ``control.min_travel`` to the end
    effector at home, or dropped from the full queue) is answered at once with ``episode`` 0
    (episodes count from 1) and ``target_x/y/z`` as received (NaN when not 3 numbers; a
    non-finite value goes over the wire as ``nan``/``inf``, which ``float()`` reads back); an
    episode whose learning signal the accelerator refused keeps its number. Match a result to
    its target by ``target_x/y/z``, not by ``episode``.
    """

    DIAG_NAME: ClassVar[str] = 'snn_controller/episode'

    episode: int
    target_x: float
    target_y: float
    target_z: float
    status: str
    ik_distance: float | None = None
    # unreachable: the nearest point the learned joints reach [m]
    nearest_x: float | None = None
    nearest_y: float | None = None
    nearest_z: float | None = None
    lsg_ms: float | None = None
    signal_sends: int | None = None
    accelerator_episode: int | None = None
    # copied from the accelerator's status of the episode
    devices_programmed: int | None = None
    devices_restored: int | None = None
    weights_changed: int | None = None
    adaptation_latency_ms: float | None = None
    time_scale_baseline: float | None = None
    time_scale_adapted: float | None = None
    learning_signal_crc32: str | None = None
    trainee_rate_hz: float | None = None
    # the evaluation of each execution from the measured joint states
    error_final_baseline: float | None = None
    error_path_baseline: float | None = None
    error_max_baseline: float | None = None
    joint_rmse_baseline: float | None = None
    evaluation_error_baseline: str | None = None
    error_final_adapted: float | None = None
    error_path_adapted: float | None = None
    error_max_adapted: float | None = None
    joint_rmse_adapted: float | None = None
    evaluation_error_adapted: str | None = None
    arm_moved_rad: float | None = None
    message: str = dataclasses.field(default='', metadata={'wire': False})

    #: the keys copied from the accelerator's status of the episode
    FROM_STATUS: ClassVar[tuple[str, ...]] = (
        'devices_programmed', 'devices_restored', 'weights_changed', 'adaptation_latency_ms',
        'time_scale_baseline', 'time_scale_adapted', 'learning_signal_crc32', 'trainee_rate_hz')

    @property
    def level(self) -> Level:
        """OK for ``status == 'ok'``, else ERROR."""
        return Level.OK if self.status == 'ok' else Level.ERROR

    @property
    def hardware_id(self) -> str:
        """The DiagnosticStatus hardware_id: ``episode <n>``."""
        return f'episode {self.episode}'


#: the keys of ``pcm_accelerator/status``, in order
STATUS_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AcceleratorStatus))
#: the keys of ``snn_controller/result``, in order
RESULT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EpisodeResult)
                                     if f.metadata.get('wire', True))
AcceleratorStatus.WIRE = STATUS_KEYS
EpisodeResult.WIRE = RESULT_KEYS
_STATUS_TYPES = _wire_types(AcceleratorStatus)
