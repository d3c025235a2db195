"""``arm_sim``: the ED-Scorbot simulated in PyBullet, behind the arm drivers' ROS interface.

Interface: :mod:`l2l_nmhw_ros.ros.arm_driver_base` (commands in, ``joint_states``,
``robot_description``, ``~/end_effector``, ``diagnostics``, ``~/estop``, ``~/reset``), plus
``/clock`` (rosgraph_msgs/Clock) when ``arm.publish_clock`` is true.

Time: a steady-clock timer at ``arm.publish_rate`` advances the simulation by
``round(arm.real_time_factor / (arm.publish_rate * arm.sim_dt))`` fixed steps per tick (the safety
filter runs at every physics step, inside that one callback), then publishes. The simulation's
own time is the safety filter's clock (``cmd_timeout`` is in simulated seconds). With
``arm.publish_clock`` the node owns the time: it publishes the simulated time on ``/clock`` and
stamps its messages with it; run every other node with ``use_sim_time:=true`` (this one keeps
``use_sim_time`` false: its timer is the source). Otherwise stamps come from the node's clock.
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock as ClockMsg

from l2l_nmhw_ros.arm.sim import PyBulletArm
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.arm_driver_base import OK, WARN, ArmDriverNode
from l2l_nmhw_ros.ros.runtime import run_node


def _stamp(t: float) -> Time:
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class ArmSimNode(ArmDriverNode):
    """PyBullet ED-Scorbot node (one :class:`PyBulletArm`, DIRECT mode unless ``gui``)."""

    closeables = ('arm',)

    hardware_id = 'ed_scorbot_pybullet'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('arm_sim', **kwargs)
        gui = bool(self.declare_parameter('gui', False).value)
        self.arm = PyBulletArm(self.urdf_path, dt=self.cfg.sim_dt, gravity=self.cfg.gravity,
                               gui=gui)
        if self.arm.joint_names != self.limits.names:  # same file: cannot differ
            raise ValueError(f'PyBullet joints {self.arm.joint_names} != URDF {self.limits.names}')
        period = 1.0 / self.cfg.publish_rate
        self.steps_per_tick = max(1, round(self.cfg.real_time_factor * period / self.cfg.sim_dt))
        self.pub_clock = (self.create_publisher(ClockMsg, '/clock', qos.STATE)
                          if self.cfg.publish_clock else None)
        self.filter.update(self.arm.joint_positions(), self.arm.t)
        self._publish()
        self.start_timer()
        self.get_logger().info(
            f'PyBullet ED-Scorbot: {self.steps_per_tick} steps of {self.cfg.sim_dt} s per '
            f'{period:.4g} s tick (real-time factor '
            f'{self.steps_per_tick * self.cfg.sim_dt / period:.3g}); commands on '
            f'{self.sub_commands.topic_name}; /clock: {self.cfg.publish_clock}')

    def now_s(self) -> float:
        return self.arm.t

    def control_step(self) -> None:
        arm, f = self.arm, self.filter
        for _ in range(self.steps_per_tick):
            arm.set_position_targets(f.update(arm.joint_positions(), arm.t))
            arm.step()
        self._publish()

    def _publish(self) -> None:
        if self.pub_clock is not None:
            stamp = _stamp(self.arm.t)
            self.pub_clock.publish(ClockMsg(clock=stamp))
        else:
            stamp = self.get_clock().now().to_msg()
        q, dq, effort = self.arm.joint_state()
        self.publish_joint_states(stamp, q, dq, effort)

    def diagnostic_values(self) -> tuple[int, str, dict[str, str]]:
        level = OK if self.filter.mode.value in ('tracking', 'idle') else WARN
        return level, f'simulated arm, {self.filter.mode.value}', {
            'sim_time': f'{self.arm.t:.3f}', 'speed_clamps': str(self.arm.n_speed_clamps)}


def main(args: list[str] | None = None) -> int:
    """Console entry point ``arm_sim``."""
    return run_node(ArmSimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
