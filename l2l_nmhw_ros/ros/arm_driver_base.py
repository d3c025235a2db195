"""What the two arm drivers (``arm_sim``, ``ed_scorbot_driver``) share: the ROS interface.

Interface (all names relative, remappable):

- subscribes ``<arm_controller>/commands`` (std_msgs/Float64MultiArray): joint positions [rad] in
  the order of the ``arm.joints`` parameter, as ros2_control's forward command controller.
  ``arm_controller`` is a node parameter (default ``forward_position_controller``).
- publishes ``joint_states`` (sensor_msgs/JointState, URDF joint names), ``robot_description``
  (std_msgs/String, transient local), ``~/end_effector`` (geometry_msgs/PointStamped, frame
  ``base_link``: forward kinematics of the *measured* positions) and ``diagnostics``
  (diagnostic_msgs/DiagnosticArray, 1 Hz).
- services ``~/estop`` and ``~/reset`` (std_srvs/Trigger): latch / release the e-stop.

Every command goes through :class:`l2l_nmhw_ros.arm.safety.SafetyFilter`; rejected commands are
logged (throttled) and the arm holds. Parameters: the ``arm`` section of the configuration
(:class:`l2l_nmhw_ros.config.ArmConfig`). At run time ``arm.cmd_timeout``, ``arm.max_velocity`` and
``arm.max_acceleration`` take effect at once; other ``arm.*`` changes are validated and stored but
take effect at the next start (a warning says so).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from l2l_nmhw_ros.arm.kinematics import default_urdf_path, forward_kinematics, load_joint_limits
from l2l_nmhw_ros.arm.safety import SafetyFilter
from l2l_nmhw_ros.config import ArmConfig
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.params import declare_config, guard_updates

#: Default name of the forward command controller (ros2_control's convention).
DEFAULT_ARM_CONTROLLER = 'forward_position_controller'
#: Frame of ``~/end_effector`` (the URDF root = the forward-kinematics frame).
BASE_FRAME = 'base_link'
#: Period [s] of the diagnostics.
DIAGNOSTICS_PERIOD = 1.0
#: Minimum interval [s] between two logs of rejected commands.
LOG_THROTTLE = 1.0

_LIVE = ('cmd_timeout', 'max_velocity', 'max_acceleration')
#: Diagnostic levels as ints (the message field is a byte).
OK, WARN, ERROR = 0, 1, 2


class ArmDriverNode(Node):
    """Base class: parameters, safety filter, command subscription, services, publishers.

    Subclasses implement :meth:`control_step` (called by a steady-clock timer at
    ``arm.publish_rate``) and :meth:`now_s` (the time base of the safety filter).
    """

    hardware_id = 'ed_scorbot'

    #: attributes holding a resource with ``close()`` (PyBullet client, UDP sockets), closed
    #: by :meth:`destroy_node` before the node goes
    closeables: tuple[str, ...] = ()

    def destroy_node(self) -> None:
        """Close the subclass's resources (:attr:`closeables`), then destroy the node."""
        for name in self.closeables:
            res = getattr(self, name, None)
            if res is not None:
                res.close()
        super().destroy_node()

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.cfg: ArmConfig = declare_config(self, ArmConfig, 'arm')
        guard_updates(self, ArmConfig, 'arm', self._on_config)
        self.arm_controller = str(self.declare_parameter(
            'arm_controller', DEFAULT_ARM_CONTROLLER).value)
        self.urdf_path = Path(self.cfg.urdf) if self.cfg.urdf else default_urdf_path()
        self.limits = load_joint_limits(self.urdf_path)
        # raises ValueError on joints not in the URDF: run_node exits non-zero with the message
        self.filter = SafetyFilter(self.limits, self.cfg.joints, cmd_timeout=self.cfg.cmd_timeout,
                                   max_velocity=self.cfg.max_velocity,
                                   max_acceleration=self.cfg.max_acceleration)
        self.n_commands = 0

        self.pub_joint_states = self.create_publisher(JointState, 'joint_states', qos.STATE)
        self.pub_description = self.create_publisher(String, 'robot_description', qos.LATCHED)
        self.pub_end_effector = self.create_publisher(PointStamped, '~/end_effector', qos.STATE)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, 'diagnostics', qos.STATE)
        self.pub_description.publish(String(data=self.urdf_path.read_text(encoding='utf-8')))
        self.sub_commands = self.create_subscription(
            Float64MultiArray, f'{self.arm_controller}/commands', self._on_command, qos.COMMANDS)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._t_diag = -np.inf

    def start_timer(self) -> None:
        """Start the control timer (steady clock, period 1 / arm.publish_rate)."""
        self.timer = self.create_timer(1.0 / self.cfg.publish_rate, self._on_timer,
                                       clock=self._steady)

    def steady_s(self) -> float:
        """Seconds on the steady (monotonic) clock."""
        return self._steady.now().nanoseconds * 1e-9

    # ---- to implement ---------------------------------------------------------------------
    def now_s(self) -> float:
        """Time [s] of the safety filter (simulated time in arm_sim, steady time on the robot)."""
        raise NotImplementedError

    def control_step(self) -> None:
        """Run one control period: update the filter, drive the arm, publish."""
        raise NotImplementedError

    def diagnostic_values(self) -> tuple[int, str, dict[str, str]]:
        """Return (level OK/WARN/ERROR, message, extra key/values) of the driver's status."""
        return OK, 'ok', {}

    # ---- callbacks --------------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        self.n_commands += 1
        if not self.filter.command(list(msg.data), self.now_s()):
            self.get_logger().warning(
                f'command rejected, holding the measured position: {self.filter.last_rejection}',
                throttle_duration_sec=LOG_THROTTLE)

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        self.filter.estop()
        self.get_logger().warning('e-stop latched: holding the measured position until ~/reset')
        response.success = True
        response.message = 'e-stop latched; call ~/reset to release'
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        was = self.filter.estopped
        self.filter.reset()
        self.get_logger().info('reset: e-stop released; holding until the next command')
        response.success = True
        response.message = ('e-stop released' if was else 'not e-stopped') + \
            '; the arm holds until the next command'
        return response

    def _on_config(self, cfg: ArmConfig) -> None:
        f = self.filter
        f.cmd_timeout = cfg.cmd_timeout
        f.v_max = np.minimum(self.limits.velocity, cfg.max_velocity)
        f.a_max = cfg.max_acceleration
        changed = [k.name for k in dataclasses.fields(cfg)
                   if getattr(cfg, k.name) != getattr(self.cfg, k.name) and k.name not in _LIVE]
        if changed:
            self.get_logger().warning(f'arm.{changed} take effect at the next start')
        self.cfg = dataclasses.replace(self.cfg, **{k: getattr(cfg, k) for k in _LIVE})

    def _on_timer(self) -> None:
        self.control_step()
        t = self.steady_s()
        if t - self._t_diag >= DIAGNOSTICS_PERIOD:
            self._t_diag = t
            self.publish_diagnostics()

    # ---- publishing helpers -----------------------------------------------------------------
    def publish_joint_states(self, stamp: Any, q: np.ndarray, dq: np.ndarray | None = None,
                             effort: np.ndarray | None = None) -> None:
        """Publish measured positions [rad] (URDF order) and the end-effector point."""
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(self.limits.names)
        msg.position = [float(x) for x in q]
        if dq is not None:
            msg.velocity = [float(x) for x in dq]
        if effort is not None:
            msg.effort = [float(x) for x in effort]
        self.pub_joint_states.publish(msg)
        p = forward_kinematics(np.asarray(q, dtype=np.float64))
        pt = PointStamped()
        pt.header.stamp = stamp
        pt.header.frame_id = BASE_FRAME
        pt.point.x, pt.point.y, pt.point.z = (float(v) for v in p)
        self.pub_end_effector.publish(pt)

    def publish_diagnostics(self) -> None:
        """Publish the safety filter's and the driver's status."""
        level, message, extra = self.diagnostic_values()
        f = self.filter
        if f.estopped:
            level, message = max(level, WARN), 'e-stop latched; ' + message
        values = {'mode': f.mode.value, 'estop': str(f.estopped),
                  'commands_received': str(self.n_commands),
                  'commands_rejected': str(f.n_rejected),
                  'last_rejection': f.last_rejection or '',
                  'command_topic': self.sub_commands.topic_name, **extra}
        status = DiagnosticStatus(level=bytes([level]),
                                  name=f'{self.get_name()}: arm',
                                  message=message, hardware_id=self.hardware_id,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(arr)
