"""``snn_controller``: reach targets in, learning signals out, executions evaluated.

Subscribes ``reach_target`` (geometry_msgs/PointStamped, frame ``control.frame_id`` or empty;
rviz's Publish Point tool sends here with config/l2l_nmhw.rviz; QoS
:data:`~l2l_nmhw_ros.ros.qos.TARGETS`, reliable,
keep-last 100: a burst of targets fits), ``joint_states`` and ``pcm_accelerator/status``;
publishes ``pcm_accelerator/learning_signal`` (Float32MultiArray, dims ``time`` × ``neuron``),
``~/result`` (DiagnosticArray, one per target; QoS ``TARGETS``), ``~/markers`` (MarkerArray:
``target``, ``demonstration``, ``executed_baseline``, ``executed``) and ``~/demonstration``
(JointTrajectory in ``arm.joints`` order, time_from_start in network time: step k at
(k + 1) · dt).

One episode at a time (:class:`~l2l_nmhw_ros.reach.reach_controller.ReachController`): IK,
demonstration, LSG, learning signal, re-sent every ``control.signal_retry`` s (DDS may drop a
sample right after discovery) until a status with its ``learning_signal_crc32`` at the start of
an accelerator episode (phase ``computed`` or ``home``) names that ``episode``, or lists it in
``queued_crc32`` (:mod:`~l2l_nmhw_ros.reach.handshake`). That episode's statuses give the windows
(``phase_start``, ``phase_duration``, ``phase_hold``, ``time_scale``) of the ``baseline`` and
``adapted`` executions; ``phase = done`` ends it: the joint states of each window are evaluated
(FK → errors vs demonstration and target). Targets arriving meanwhile (or before the first joint
states) wait in a queue of ``control.queue_size``; no answer for ``control.episode_timeout`` s
(wall clock): ERROR result. Every target is answered: one the controller refuses (wrong frame,
not finite, closer than ``control.min_travel`` to the end effector at ``control.home``, or the
oldest of a full queue when a new one arrives) gets a ``rejected`` result at once, and is also
logged (throttled) and counted. Bad ``joint_states`` (unknown joints, not finite, outside the
URDF limits by more than ``control.joint_state_margin``) and statuses are logged (throttled),
counted and ignored.

``~/result`` (keys: the fields of :class:`~l2l_nmhw_ros.reach.reports.EpisodeResult`,
documented in docs/ros.md): ``status`` ok | unreachable (with the nearest reachable point) |
timeout | no_joint_states | incomplete (no adapted execution, e.g. ``~/reset``) | failed (the
accelerator ended the episode early: its ``fault``) | rejected (refused by the controller:
``episode`` 0, the coordinates as received; or its learning signal refused by the accelerator);
the DiagnosticStatus message says why.

Parameters: the ``ReachController.CONFIG_KEYS`` (``arm.joints``, ``arm.urdf``, ``control.*``);
``trainee.*``, ``lsg.*``, ``task.*`` read-only (the checkpoint's). Only
``ReachController.LIVE_KEYS`` change at run time; other changes are refused with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.reach.episode import Demonstration, Evaluation
from l2l_nmhw_ros.reach.reach_controller import ReachController
from l2l_nmhw_ros.reach.reports import AcceleratorStatus, EpisodeResult
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import (THROTTLE_S, diag_values, episode_markers,
                                      guarded, joint_positions, joint_trajectory, reject,
                                      report_array, stamp_to_sec, to_multiarray)
from l2l_nmhw_ros.ros.params import declare_config, declare_effective, guard_live_updates
from l2l_nmhw_ros.ros.pcm_accelerator_node import LABELS, LEARNING_SIGNAL, STATUS
from l2l_nmhw_ros.ros.runtime import run_node

class SnnControllerNode(Node):
    """The controller node (see the module docstring): converts, calls the core, publishes."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('snn_controller', context=context, **kwargs)
        keys = ReachController.CONFIG_KEYS
        cfg = C.L2LConfig(arm=declare_config(self, C.ArmConfig, 'arm', keys['arm']),
                          control=declare_config(self, C.ControlConfig, 'control',
                                                 keys['control']))
        self.pub_signal = self.create_publisher(Float32MultiArray, LEARNING_SIGNAL, qos.COMMANDS)
        self.pub_result = self.create_publisher(DiagnosticArray, '~/result', qos.TARGETS)
        self.pub_markers = self.create_publisher(MarkerArray, '~/markers', qos.LATCHED)
        self.pub_demo = self.create_publisher(JointTrajectory, '~/demonstration', qos.LATCHED)
        self.core = ReachController.from_checkpoint(cfg, self, clock=time.monotonic,
                                                    logger=self.get_logger())
        for section in ReachController.NETWORK_SECTIONS:
            declare_effective(self, getattr(self.core.cfg, section), section)
        guard_live_updates(self, ReachController.LIVE_KEYS, lambda: self.core.cfg,
                           self.core.configure)
        self.frame = self.core.cfg.control.frame_id
        sub = self.create_subscription(PointStamped, 'reach_target', self._on_target,
                                       qos.TARGETS)
        log, counter = self.get_logger(), self.core.rejected
        self.create_subscription(JointState, 'joint_states',
                                 guarded(log, counter, 'joint_states', self._on_joint_states),
                                 qos.STATE)
        self.create_subscription(DiagnosticArray, STATUS,
                                 guarded(log, counter, 'status', self._on_status), qos.COMMANDS)
        self.create_timer(0.5, guarded(log, counter, 'watchdog', self.core.poll),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'targets in frame {self.frame!r} on {sub.topic_name}')

    def _on_joint_states(self, msg: JointState) -> None:  # ValueError: guarded, rejected
        q = joint_positions(msg, self.core.joints)
        t = stamp_to_sec(msg.header.stamp) or self.get_clock().now().nanoseconds * 1e-9
        self.core.on_joint_state(t, q)

    def _on_target(self, msg: PointStamped) -> None:
        p = [msg.point.x, msg.point.y, msg.point.z]
        try:
            self.core.add_target(p, msg.header.frame_id)
        except ValueError as exc:  # the core has published the rejected result
            reject(self.get_logger(), self.core.rejected, 'reach_target', str(exc))
        except Exception as exc:  # noqa: BLE001 - the requester waits for an answer
            # as convert.guarded does (counted under 'internal', logged), plus the answer
            self.core.rejected['internal'] += 1
            reason = f'internal error: {type(exc).__name__}: {exc}'
            self.get_logger().error(f'reach_target {p}: {reason} (answered rejected; the node '
                                    'goes on)', throttle_duration_sec=THROTTLE_S)
            self.core.reject_target(p, reason)

    def _on_status(self, msg: DiagnosticArray) -> None:  # ValueError: guarded, rejected
        for st in msg.status:
            self.core.on_status(AcceleratorStatus.from_values(diag_values(st)))

    def signal_subscribers(self) -> int:
        """Readers of the learning-signal topic."""
        return self.pub_signal.get_subscription_count()

    def publish_signal(self, signal: np.ndarray) -> None:
        """The learning signal, dims ``time`` × ``neuron``."""
        self.pub_signal.publish(to_multiarray(signal, LABELS))

    def publish_demonstration(self, demo: Demonstration) -> None:
        """The demonstration as a JointTrajectory (network time)."""
        self.pub_demo.publish(joint_trajectory(self.core.joints, demo.q, self.core.cfg.task.dt,
                                               self.frame))

    def publish_markers(self, demo: Demonstration, executed: Mapping[str, Evaluation]) -> None:
        """Target, demonstration and the executed paths."""
        self.pub_markers.publish(episode_markers(self.frame, demo.target, demo.xyz, {
            name: ev.xyz for name, ev in executed.items()}))

    def publish_result(self, result: EpisodeResult) -> None:
        """One episode result as a DiagnosticArray."""
        self.pub_result.publish(report_array(self.get_clock().now().to_msg(), result))


def main(args: list[str] | None = None) -> int:
    """Console entry point ``snn_controller``."""
    # the LSG: many tiny products; more intra-op threads only contend with the other nodes
    torch.set_num_threads(1)
    return run_node(SnnControllerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
