"""``web_viewer``: the reach graph live in a browser (viser), for installs without rviz.

Serves http://127.0.0.1:<port> (parameters ``host``, default 127.0.0.1 = this machine only, and
``port``, default 8080; the next free port when it is taken; the URL is logged) and draws, as
:class:`~l2l_nmhw_ros.viewer.scene.ViewerScene`:

- the arm from ``robot_description`` (std_msgs/String, latched) and ``joint_states``;
- the episode from ``snn_controller/markers`` (MarkerArray, latched: ``target``,
  ``demonstration``, ``executed_baseline``, ``executed``);
- the learning signal ``pcm_accelerator/learning_signal`` (time × neuron) as a heat map;
- the crossbar's weights whose devices were written in the last episode, from the
  accelerator's device-state file (parameter ``pcm_state_file``, launch argument of the same
  name; the accelerator saves it after each episode): the devices whose programming time
  changed since the previous version of the file. Empty: no device image.

Publishes ``reach_target`` (PointStamped in ``frame_id``, default ``base_link``; QoS as the
controller's) when the user sends a target: the "Send target" button, or a click on the
reachable surface (the checkpoint's learned joints inside their ranges, parameter
``checkpoint``, empty = the shipped one) after "Pick a target by clicking".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, String
from visualization_msgs.msg import Marker, MarkerArray

from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import THROTTLE_S, from_multiarray, guarded
from l2l_nmhw_ros.ros.pcm_accelerator_node import LABELS, LEARNING_SIGNAL
from l2l_nmhw_ros.ros.runtime import run_node
from l2l_nmhw_ros.viewer.scene import PATH_LABELS, ViewerScene
from l2l_nmhw_ros.viewer.sources import StateFileWatcher, surface_of_checkpoint

MARKERS = 'snn_controller/markers'


class WebViewerNode(Node):
    """The viewer node (see the module docstring): converts messages, hands them to the
    scene."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('web_viewer', context=context, **kwargs)
        host = str(self.declare_parameter('host', '127.0.0.1').value)
        port = int(self.declare_parameter('port', 8080).value)
        self.frame = str(self.declare_parameter('frame_id', 'base_link').value)
        checkpoint = str(self.declare_parameter('checkpoint', '').value)
        state_file = str(self.declare_parameter('pcm_state_file', '').value)
        if not 0 <= port <= 65535:
            raise ValueError(f'port: expected 0..65535, got {port}')
        log = self.get_logger()
        self.rejected: dict[str, int] = {}
        try:
            surface = surface_of_checkpoint(checkpoint)
        except (OSError, ValueError) as exc:  # the view works without picking by click
            log.warning(f'no reachable surface for click targets ({exc}); use "Send target"')
            surface = None
        self.pub_target = self.create_publisher(PointStamped, 'reach_target', qos.TARGETS)
        self.scene = ViewerScene(host, port, surface=surface, on_target=self._send_target,
                                 frame=self.frame)
        self.watcher = StateFileWatcher(state_file) if state_file else None
        g = guarded
        self.create_subscription(String, 'robot_description',
                                 g(log, self.rejected, 'robot_description', self._on_robot),
                                 qos.LATCHED)
        self.create_subscription(JointState, 'joint_states',
                                 g(log, self.rejected, 'joint_states', self._on_joints),
                                 qos.STATE)
        self.create_subscription(MarkerArray, MARKERS,
                                 g(log, self.rejected, 'markers', self._on_markers), qos.LATCHED)
        self.create_subscription(Float32MultiArray, LEARNING_SIGNAL,
                                 g(log, self.rejected, 'learning_signal', self._on_signal),
                                 qos.COMMANDS)
        if self.watcher is not None:
            self._poll_state()  # the state before the first episode seen here
            self.create_timer(1.0, g(log, self.rejected, 'pcm_state_file', self._poll_state),
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        bound = 'this machine only' if host in ('127.0.0.1', 'localhost', '::1') else \
            'REACHABLE FROM THE NETWORK'
        log.info(f'web view at http://{host}:{self.scene.port} ({bound}); targets go to '
                 f'{self.pub_target.topic_name} in frame {self.frame}')

    def _on_robot(self, msg: String) -> None:
        self.scene.set_robot(msg.data)

    def _on_joints(self, msg: JointState) -> None:
        if len(msg.name) != len(msg.position):
            raise ValueError(f'{len(msg.name)} names, {len(msg.position)} positions')
        if not np.all(np.isfinite(msg.position)):
            raise ValueError('non-finite joint position')
        self.scene.set_joint_positions(list(msg.name), list(msg.position))

    def _on_markers(self, msg: MarkerArray) -> None:
        target, paths = None, {}
        for m in msg.markers:
            if m.action != Marker.ADD:
                continue
            if m.ns == 'target':
                target = (m.pose.position.x, m.pose.position.y, m.pose.position.z)
            elif m.ns in PATH_LABELS:
                paths[m.ns] = np.array([(p.x, p.y, p.z) for p in m.points], dtype=np.float64)
        self.scene.set_episode(target, paths)

    def _on_signal(self, msg: Float32MultiArray) -> None:
        self.scene.set_learning_signal(from_multiarray(msg, LABELS))

    def _poll_state(self) -> None:
        found = self.watcher.poll() if self.watcher is not None else None
        if found is not None:
            self.scene.set_devices(*found)

    def _send_target(self, p: np.ndarray) -> None:
        msg = PointStamped()
        msg.header.frame_id = self.frame
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in p)
        self.pub_target.publish(msg)
        self.get_logger().info(f'target sent: ({p[0]:+.3f}, {p[1]:+.3f}, {p[2]:+.3f}) m',
                               throttle_duration_sec=THROTTLE_S / 10)

    def destroy_node(self) -> None:
        """Stop the web server, then the node."""
        self.scene.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``web_viewer``."""
    return run_node(WebViewerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
