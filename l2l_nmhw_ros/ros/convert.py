"""Message conversions of the graph (numpy <-> standard ROS 2 messages), with validation.

Tensor payloads travel as ``std_msgs/Float32MultiArray`` whose ``layout.dim`` labels name the axes
(row-major, ``stride`` of dim i = product of the sizes from i on, ``data_offset`` 0), e.g. the
learning signal: dims ``time`` (249) × ``neuron`` (250). Everything that arrives from the network
is checked here; a bad message raises :class:`BadMessage` with the reason, which the nodes log
(throttled) before ignoring the message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Float32MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from l2l_nmhw_ros.reach.reports import AcceleratorStatus, EpisodeResult, signal_crc

__all__ = ['BadMessage', 'diag_array', 'diag_status', 'diag_values', 'from_multiarray',
           'episode_markers', 'joint_positions', 'joint_trajectory', 'line_marker', 'reject',
           'report_array',
           'signal_crc',
           'sphere_marker', 'stamp_to_sec', 'to_multiarray']


#: seconds between two logs of the same kind of rejected message
THROTTLE_S = 5.0


class BadMessage(ValueError):
    """An incoming message is malformed; the text says why."""


def reject(logger: Any, counter: MutableMapping[str, int], what: str, reason: str) -> None:
    """Count a bad ``what`` message in ``counter`` and log it (throttled); the node goes on."""
    counter[what] = counter.get(what, 0) + 1
    logger.warning(f'ignored {what}: {reason}', throttle_duration_sec=THROTTLE_S)


def guarded(logger: Any, counter: MutableMapping[str, int], what: str,
            fn: Callable[..., Any]) -> Callable[..., None]:
    """Wrap a subscription or timer callback so that no exception leaves it.

    A ValueError (bad content: :class:`BadMessage`, ShapeError, out-of-range values) is a
    rejected ``what`` message (:func:`reject`); any other exception is counted under
    ``internal`` and logged as an error with its type (throttled). Either way the node goes on:
    one message must never bring a node, and with it the graph, down.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any) -> None:
        try:
            fn(*args)
        except ValueError as exc:
            reject(logger, counter, what, str(exc))
        except Exception as exc:  # noqa: BLE001 - the last line of defence of a callback
            counter['internal'] = counter.get('internal', 0) + 1
            logger.error(f'{what}: unexpected {type(exc).__name__}: {exc} (ignored; the node '
                         'goes on)', throttle_duration_sec=THROTTLE_S)
    return wrapper


def to_multiarray(a: np.ndarray, labels: Sequence[str]) -> Float32MultiArray:
    """Pack an array into a Float32MultiArray with labelled dims (row-major).

    Raises:
        ValueError: ``labels`` does not name every axis.
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    if len(labels) != a.ndim:
        raise ValueError(f'labels: {len(labels)} for an array of {a.ndim} axes')
    msg = Float32MultiArray()
    dims = []
    for i, (label, size) in enumerate(zip(labels, a.shape, strict=True)):
        stride = int(np.prod(a.shape[i:]))
        dims.append(MultiArrayDimension(label=label, size=int(size), stride=stride))
    msg.layout.dim = dims
    msg.layout.data_offset = 0
    msg.data = a.ravel().tolist()
    return msg


def from_multiarray(msg: Float32MultiArray, labels: Sequence[str],
                    shape: Sequence[int] | None = None, *, finite: bool = True) -> np.ndarray:
    """Unpack a labelled Float32MultiArray into a float32 array.

    Args:
        finite: also refuse non-finite values (False: the caller's core checks the content and
            answers the sender, as the accelerator does for learning signals).

    Raises:
        BadMessage: wrong labels, sizes, strides, offset, data length, or (``finite``)
            non-finite values.
    """
    dims = list(msg.layout.dim)
    got = [d.label for d in dims]
    if got != list(labels):
        raise BadMessage(f'layout.dim labels {got}, expected {list(labels)}')
    sizes = [int(d.size) for d in dims]
    if shape is not None and sizes != list(shape):
        raise BadMessage(f'dims {dict(zip(got, sizes, strict=True))}, expected '
                         f'{dict(zip(labels, shape, strict=True))}')
    if msg.layout.data_offset != 0:
        raise BadMessage(f'layout.data_offset {msg.layout.data_offset}, expected 0')
    for i, d in enumerate(dims):
        want = int(np.prod(sizes[i:]))
        if int(d.stride) != want:
            raise BadMessage(f'dim {d.label!r}: stride {d.stride}, expected {want} (row-major)')
    data = np.asarray(msg.data, dtype=np.float32)
    if data.size != int(np.prod(sizes)):
        raise BadMessage(f'data has {data.size} values, dims need {int(np.prod(sizes))}')
    if finite and not np.isfinite(data).all():
        raise BadMessage(f'data has {int((~np.isfinite(data)).sum())} non-finite values')
    return data.reshape(sizes)


def joint_positions(msg: JointState, joints: Sequence[str]) -> np.ndarray:
    """Return the positions of ``joints`` (in that order) from a JointState.

    Extra joints in the message are ignored; missing ones make it bad.

    Raises:
        BadMessage: names missing or repeated, position count differs from names, non-finite.
    """
    names = list(msg.name)
    pos = np.asarray(msg.position, dtype=np.float64)
    if len(names) != len(pos):
        raise BadMessage(f'{len(names)} names but {len(pos)} positions')
    if len(set(names)) != len(names):
        raise BadMessage(f'repeated joint names {names}')
    missing = [j for j in joints if j not in names]
    if missing:
        raise BadMessage(f'joint names {names} lack {missing} (unknown joints?)')
    q = pos[[names.index(j) for j in joints]]
    if not np.isfinite(q).all():
        raise BadMessage(f'non-finite positions {q.tolist()}')
    return q


def stamp_to_sec(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, float):
        return repr(round(v, 9))
    return str(v)


def diag_status(name: str, level: int, message: str, values: Mapping[str, Any],
                hardware_id: str = '') -> DiagnosticStatus:
    """A DiagnosticStatus with ``values`` as key/value strings (floats with 9 decimals)."""
    return DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level,
                            name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def diag_values(status: DiagnosticStatus) -> dict[str, str]:
    """The key/value pairs of a DiagnosticStatus as a dict."""
    return {kv.key: kv.value for kv in status.values}


def diag_array(stamp: Any, *statuses: DiagnosticStatus) -> DiagnosticArray:
    """A DiagnosticArray with header stamp ``stamp``."""
    arr = DiagnosticArray(status=list(statuses))
    arr.header.stamp = stamp
    return arr


def report_array(stamp: Any, report: AcceleratorStatus | EpisodeResult) -> DiagnosticArray:
    """The one conversion of a core report to the wire: a DiagnosticArray with one status named
    ``report.DIAG_NAME`` whose key/values are ``report.values()`` (the report's key list)."""
    return diag_array(stamp, diag_status(report.DIAG_NAME, int(report.level), report.message,
                                         report.values(), report.hardware_id))


def joint_trajectory(joints: Sequence[str], q: np.ndarray, dt: float,
                     frame_id: str = '') -> JointTrajectory:
    """JointTrajectory with one point per row of ``q``, at (k + 1) * dt."""
    msg = JointTrajectory(joint_names=list(joints))
    msg.header.frame_id = frame_id
    pts = []
    for k, row in enumerate(np.asarray(q, dtype=np.float64)):
        ns = int(round((k + 1) * dt * 1e9))
        pts.append(JointTrajectoryPoint(positions=row.tolist(),
                                        time_from_start=Duration(sec=ns // 10**9,
                                                                 nanosec=ns % 10**9)))
    msg.points = pts
    return msg


def _marker(frame_id: str, ns: str, mid: int, mtype: int, rgba: Sequence[float],
            scale: float) -> Marker:
    m = Marker(ns=ns, id=mid, type=mtype, action=Marker.ADD)
    m.header.frame_id = frame_id
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = scale
    m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    return m


def sphere_marker(frame_id: str, ns: str, mid: int, p: Sequence[float],
                  rgba: Sequence[float], diameter: float = 0.03) -> Marker:
    """A sphere at ``p`` [m]."""
    m = _marker(frame_id, ns, mid, Marker.SPHERE, rgba, diameter)
    m.pose.position = Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
    return m


def line_marker(frame_id: str, ns: str, mid: int, xyz: np.ndarray, rgba: Sequence[float],
                width: float = 0.006) -> Marker:
    """A line strip through the points ``xyz`` (k, 3) [m]."""
    m = _marker(frame_id, ns, mid, Marker.LINE_STRIP, rgba, width)
    m.points = [Point(x=float(a), y=float(b), z=float(c)) for a, b, c in np.asarray(xyz)]
    return m


#: marker namespaces of an episode and their colours (rgba)
MARKER_COLORS = {'target': (1.0, 0.2, 0.2, 1.0), 'demonstration': (0.2, 0.4, 1.0, 1.0),
                 'executed_baseline': (0.6, 0.6, 0.6, 1.0), 'executed': (0.1, 0.8, 0.2, 1.0)}
#: execution name -> marker namespace of its executed path
EXECUTED_NS = {'baseline': 'executed_baseline', 'adapted': 'executed'}


def episode_markers(frame_id: str, target: Sequence[float], demonstration: np.ndarray,
                    executed: Mapping[str, np.ndarray]) -> MarkerArray:
    """Markers of one episode: ``target`` [m] (sphere), the demonstration's end-effector path
    (time, 3) [m] and the executed paths (execution ``baseline``/``adapted`` -> (time, 3) [m])."""
    c = MARKER_COLORS
    ms = [sphere_marker(frame_id, 'target', 0, target, c['target']),
          line_marker(frame_id, 'demonstration', 0, demonstration, c['demonstration'])]
    for name, ns in EXECUTED_NS.items():
        if name in executed:
            ms.append(line_marker(frame_id, ns, 0, executed[name], c[ns]))
    return MarkerArray(markers=ms)
