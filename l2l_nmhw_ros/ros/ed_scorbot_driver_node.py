"""``ed_scorbot_driver``: the real ED-Scorbot over UDP, behind the arm drivers' ROS interface.

Interface: :mod:`l2l_nmhw_ros.ros.arm_driver_base` (the same topics and services as
``arm_sim``), plus ``~/reference`` (sensor_msgs/JointState): the joint positions [rad] actually
sent to the FPGA, for inspection. They are never published on ``joint_states``.

Out: every tick (``arm.publish_rate``) the safety filter's target, in URDF joint order (= FPGA
joints 1..4), goes to ``arm.fpga_host:arm.fpga_port`` as one datagram of four little-endian
float32 in DSR units (degrees x per-joint factor; :mod:`l2l_nmhw_ros.arm.scorbot_udp`).

In: encoder counts on UDP ``arm.feedback_host:arm.feedback_port`` (4 or 6 little-endian int32,
see :mod:`l2l_nmhw_ros.arm.scorbot_udp`), decoded to radians. ``joint_states`` and
``~/end_effector`` carry **only measured positions**, stamped when the datagram was read;
velocity and effort are left empty (the encoders give neither).

- Feedback configured, none received yet: nothing is sent, nothing is published on
  ``joint_states``; diagnostics WARN.
- Feedback older than ``arm.feedback_timeout``: the filter holds the last reference (the measured
  position is unknown), ``joint_states`` stops, diagnostics ERROR; fresh feedback resumes.
- ``arm.feedback_port = 0`` (no feedback): open loop. The arm is assumed homed (q = 0, DSR 0) at
  start; references are sent, ``joint_states`` is never published, diagnostics WARN.

The software e-stop (``~/estop``) holds the measured position; it is not a safety-rated stop:
keep the hardware e-stop of the ED-Scorbot in reach.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import JointState

from l2l_nmhw_ros.arm.scorbot_udp import N_JOINTS, ScorbotUDP
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.arm_driver_base import ERROR, OK, WARN, ArmDriverNode
from l2l_nmhw_ros.ros.runtime import run_node


class EDScorbotDriverNode(ArmDriverNode):
    """Real-arm driver: safety filter -> UDP references; UDP encoder counts -> joint_states."""

    closeables = ('udp',)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('ed_scorbot_driver', **kwargs)
        if len(self.limits.names) != N_JOINTS:
            raise ValueError(f'{self.urdf_path}: the FPGA takes {N_JOINTS} joints, the URDF has '
                             f'{list(self.limits.names)}')
        fb_port = self.cfg.feedback_port or None
        self.udp = ScorbotUDP(self.cfg.fpga_host, self.cfg.fpga_port, feedback_port=fb_port,
                              feedback_host=self.cfg.feedback_host)
        self.pub_reference = self.create_publisher(JointState, '~/reference', qos.STATE)
        self.q_measured: np.ndarray | None = None
        self.t_measured = -np.inf
        self.feedback = fb_port is not None
        if not self.feedback:
            self.filter.update(np.zeros(N_JOINTS), self.now_s())  # assumed homed
        self.start_timer()
        where = (f'{self.udp.feedback_address[0]}:{self.udp.feedback_address[1]}'
                 if self.feedback else 'none (open loop; joint_states not published)')
        self.get_logger().info(
            f'ED-Scorbot references to {self.cfg.fpga_host}:{self.cfg.fpga_port}, encoder '
            f'feedback: {where}; commands on {self.sub_commands.topic_name}')

    def now_s(self) -> float:
        return self.steady_s()

    def feedback_age(self) -> float:
        """Seconds since the last encoder datagram (inf before the first)."""
        return self.now_s() - self.t_measured

    def control_step(self) -> None:
        q = self.udp.poll()
        now = self.now_s()
        if q is not None:
            self.q_measured, self.t_measured = q, now
            self.publish_joint_states(self.get_clock().now().to_msg(), q)
        if self.feedback:
            if self.q_measured is None:
                return  # no measurement yet: send nothing
            age = now - self.t_measured
            if age > self.cfg.feedback_timeout:
                self.filter.hold(f'encoder feedback stale ({age:.2f} s)')
                target = self.filter.update(None, now)
            else:
                target = self.filter.update(self.q_measured, now)
        else:
            target = self.filter.update(None, now)
        self.udp.send(target)
        ref = JointState(name=list(self.limits.names), position=[float(x) for x in target])
        ref.header.stamp = self.get_clock().now().to_msg()
        self.pub_reference.publish(ref)

    def diagnostic_values(self) -> tuple[int, str, dict[str, str]]:
        extra = {'datagrams_sent': str(self.udp.n_sent),
                 'feedback_received': str(self.udp.n_received),
                 'feedback_malformed': str(self.udp.n_bad_feedback),
                 'fpga': f'{self.cfg.fpga_host}:{self.cfg.fpga_port}'}
        if not self.feedback:
            return WARN, 'open loop: no encoder feedback (arm.feedback_port = 0)', extra
        if self.q_measured is None:
            return WARN, 'waiting for encoder feedback; nothing sent', extra
        age = self.feedback_age()
        extra['feedback_age_s'] = f'{age:.3f}'
        if age > self.cfg.feedback_timeout:
            return ERROR, f'encoder feedback stale ({age:.2f} s): holding', extra
        return OK, f'closed loop, {self.filter.mode.value}', extra


def main(args: list[str] | None = None) -> int:
    """Console entry point ``ed_scorbot_driver``."""
    return run_node(EDScorbotDriverNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
