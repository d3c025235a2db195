"""Episode recording to MCAP bags readable by ``ros2 bag`` (rosbag2 MCAP storage) and Foxglove.

rosbag2 is not on PyPI, so the recorder writes the bag itself with ``mcap``, the way rosbag2's
MCAP storage plugin does: profile ``ros2``, one schema per message type with encoding ``ros2msg``
(the ``.msg`` text followed by every dependency as ``=====`` / ``MSG: pkg/Type`` blocks), channels
with message encoding ``cdr`` and the ``offered_qos_profiles`` metadata key, and messages as the
serialized CDR bytes received from DDS (``raw=True`` subscriptions: nothing is re-encoded, so what
is in the bag is bit for bit what was on the wire). ``mcap_ros2.reader`` (and Foxglove) decode it
with the stored schemas.

:class:`McapBag` needs no rclpy; :class:`BagRecorder` subscribes with a node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import Writer

from l2l_nmhw_ros.ros.tools.launch_file import find_package_share

_PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
               'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}
_SEPARATOR = '=' * 80

#: QoS advertised for every recorded channel (rosbag2's YAML layout): reliable, volatile.
QOS_YAML = ('- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n'
            '  deadline:\n    sec: 9223372036\n    nsec: 854775807\n'
            '  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n'
            '  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n'
            '  avoid_ros_namespace_conventions: false\n')


def _split_type(type_name: str) -> tuple[str, str]:
    parts = type_name.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f'type_name: expected pkg/msg/Type, got {type_name!r}')


def _dependencies(pkg: str, text: str) -> list[str]:
    deps = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        words = line.split()
        ftype = words[0]
        if len(words) > 1 and '=' in words[1]:
            continue  # a constant: always of a primitive type
        base = re.sub(r'\[.*\]$', '', ftype)
        base = re.sub(r'<=\d+$', '', base)
        if base in _PRIMITIVES:
            continue
        deps.append(base if '/' in base else f'{pkg}/{base}')
    return deps


def message_definition(type_name: str,
                       share: Callable[[str], Path] = find_package_share) -> str:
    """Return the ``ros2msg`` schema text of ``type_name`` with all its dependencies.

    Args:
        type_name: ``pkg/msg/Type`` (or ``pkg/Type``).
        share: package share resolver (the ``.msg`` files are in ``<share>/msg/``).

    Raises:
        ValueError: malformed type name.
        FileNotFoundError: a ``.msg`` file is missing.
    """
    pkg, name = _split_type(type_name)
    main = (share(pkg) / 'msg' / f'{name}.msg').read_text(encoding='utf-8')
    blocks = [main.rstrip('\n')]
    seen = {f'{pkg}/{name}'}
    stack = list(reversed(_dependencies(pkg, main)))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        dpkg, dname = _split_type(dep)
        text = (share(dpkg) / 'msg' / f'{dname}.msg').read_text(encoding='utf-8')
        blocks.append(f'{_SEPARATOR}\nMSG: {dpkg}/{dname}\n{text.rstrip()}')
        stack.extend(reversed(_dependencies(dpkg, text)))
    return '\n'.join(blocks) + '\n'


class McapBag:
    """Write serialized ROS 2 (CDR) messages to an MCAP file in rosbag2's layout.

    Args:
        path: output ``.mcap`` file (parent folders are created).
        share: package share resolver for the message definitions.
    """

    def __init__(self, path: str | Path,
                 share: Callable[[str], Path] = find_package_share) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, 'wb')  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._fh)
        self._writer.start(profile='ros2', library='l2l_nmhw_ros')
        self._share = share
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(self, topic: str, type_name: str, qos_yaml: str = QOS_YAML) -> None:
        """Register a topic of ``type_name`` (``pkg/msg/Type``); idempotent."""
        if topic in self._channels:
            return
        if type_name not in self._schemas:
            text = message_definition(type_name, self._share)
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name, encoding=SchemaEncoding.ROS2, data=text.encode())
        self._channels[topic] = self._writer.register_channel(
            topic=topic, message_encoding=MessageEncoding.CDR,
            schema_id=self._schemas[type_name], metadata={'offered_qos_profiles': qos_yaml})
        self._seq[topic] = 0
        self.counts[topic] = 0

    def write(self, topic: str, data: bytes, log_time_ns: int,
              publish_time_ns: int | None = None) -> None:
        """Append one serialized message of a registered topic.

        Raises:
            KeyError: the topic was not registered.
            ValueError: the bag is closed.
        """
        if self.closed:
            raise ValueError('write: the bag is closed')
        self._seq[topic] += 1
        self._writer.add_message(channel_id=self._channels[topic], log_time=int(log_time_ns),
                                 publish_time=int(log_time_ns if publish_time_ns is None
                                                  else publish_time_ns),
                                 data=bytes(data), sequence=self._seq[topic])
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the summary and close the file (idempotent)."""
        if not self.closed:
            self._writer.finish()
            self._fh.close()
            self.closed = True


def type_name_of(msg_type: Any) -> str:
    """``pkg/msg/Type`` of an rclpy message class."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


class BagRecorder:
    """Record topics of a running graph into an :class:`McapBag` (raw CDR, node clock as time).

    Args:
        node: an rclpy node whose executor is spun by the caller.
        path: output ``.mcap`` file.
        topics: topic name (relative names resolve in the node's namespace) → message class.
        qos: subscription QoS (reliable subscribers match reliable and best-effort publishers
            only if the publisher is reliable; default: reliable, depth 100).
    """

    def __init__(self, node: Any, path: str | Path, topics: Mapping[str, Any],
                 qos: Any = None) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.bag = McapBag(path)
        qos = qos or QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = []
        for topic, msg_type in topics.items():
            sub = node.create_subscription(msg_type, topic, self._callback_for(topic), qos,
                                           raw=True)
            self.bag.add_topic(sub.topic_name, type_name_of(msg_type))
            self._subs.append((topic, sub))
        self._names = {t: s.topic_name for t, s in self._subs}

    def _callback_for(self, topic: str) -> Callable[[bytes], None]:
        def cb(data: bytes) -> None:
            if not self.bag.closed:
                self.bag.write(self._names[topic], data, self.node.get_clock().now().nanoseconds)
        return cb

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per (resolved) topic."""
        return dict(self.bag.counts)

    def close(self) -> None:
        """Stop recording and finish the file."""
        for _, sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        self.bag.close()
