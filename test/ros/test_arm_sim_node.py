"""arm_sim in-process: interface, commands via the safety filter, bad messages, e-stop, clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ._graph_helpers import new_context, spin_until  # noqa: E402

from l2l_nmhw_ros.arm.kinematics import default_urdf_path, forward_kinematics  # noqa: E402
from l2l_nmhw_ros.ros import qos  # noqa: E402
from l2l_nmhw_ros.ros.arm_sim_node import ArmSimNode  # noqa: E402

DEADLINE = 20.0  # [s] wall clock; generous for a loaded 2-core machine


class Harness:
    """The node under test plus a probe node in one context and executor."""

    def __init__(self, **params):
        self.ctx = new_context()
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = ArmSimNode(context=self.ctx, parameter_overrides=overrides)
        self.probe = rclpy.create_node('probe', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.probe)
        self.js: list[JointState] = []
        self.ee: list[PointStamped] = []
        self.diag: list[DiagnosticArray] = []
        self.probe.create_subscription(JointState, 'joint_states', self.js.append, qos.STATE)
        self.probe.create_subscription(PointStamped, 'arm_sim/end_effector', self.ee.append,
                                       qos.STATE)
        self.probe.create_subscription(DiagnosticArray, 'diagnostics', self.diag.append,
                                       qos.STATE)
        topic = f"{params.get('arm_controller', 'forward_position_controller')}/commands"
        self.cmd = self.probe.create_publisher(Float64MultiArray, topic, qos.COMMANDS)

    def send(self, values):
        self.cmd.publish(Float64MultiArray(data=[float(v) for v in values]))

    def q(self) -> np.ndarray:
        return np.array(self.js[-1].position)

    def call(self, name: str) -> Trigger.Response:
        cli = self.probe.create_client(Trigger, name)
        spin_until(self.ex, lambda: cli.service_is_ready(), DEADLINE, f'service {name}')
        fut = cli.call_async(Trigger.Request())
        spin_until(self.ex, fut.done, DEADLINE, f'response of {name}')
        return fut.result()

    def close(self):
        self.ex.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        self.ctx.try_shutdown()


@pytest.fixture
def sim():
    h = Harness(**{'arm.real_time_factor': 5.0})
    yield h
    h.close()


def drive_to(h: Harness, goal, tol: float = 2e-3):
    """Stream the goal (as a controller would) until joint_states reach it."""
    def arrived():
        h.send(goal)
        return bool(h.js) and np.abs(h.q() - goal).max() < tol
    spin_until(h.ex, arrived, DEADLINE, f'arm at {goal}')


def test_interface_names_description_and_end_effector(sim):
    got: list[String] = []
    # transient local: a late subscriber still gets the URDF
    sim.probe.create_subscription(String, 'robot_description', got.append, qos.LATCHED)
    spin_until(sim.ex, lambda: got and sim.js and sim.ee, DEADLINE,
               'robot_description, joint_states, ee')
    assert got[0].data == default_urdf_path().read_text(encoding='utf-8')
    assert list(sim.js[-1].name) == ['base_joint', 'shoulder', 'elbow', 'pitch']
    assert sim.node.get_parameter('arm.joints').value == list(sim.js[-1].name)
    assert len(sim.js[-1].velocity) == len(sim.js[-1].effort) == 4
    assert sim.ee[-1].header.frame_id == 'base_link'
    assert sim.node.sub_commands.topic_name == '/forward_position_controller/commands'


def test_commands_move_the_arm_and_end_effector_is_fk_of_joint_states(sim):
    goal = np.array([0.3, -0.2, 0.25, 0.1])
    drive_to(sim, goal)
    # pair joint_states and end-effector messages of the same tick by their stamp
    def pairs():
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in sim.js}
        return [(by_stamp[k], e) for e in sim.ee
                if (k := (e.header.stamp.sec, e.header.stamp.nanosec)) in by_stamp]
    spin_until(sim.ex, lambda: len(pairs()) > 5, DEADLINE, 'paired messages')
    for js, ee in pairs()[-5:]:
        np.testing.assert_allclose([ee.point.x, ee.point.y, ee.point.z],
                                   forward_kinematics(np.array(js.position)), atol=1e-12)


@pytest.mark.parametrize('bad', [[math.nan, 0.0, 0.0, 0.0], [0.1, 0.2], [0.0] * 5,
                                 [math.inf, 0.0, 0.0, 0.0]], ids=['nan', 'short', 'long', 'inf'])
def test_bad_commands_are_logged_and_ignored_while_the_node_keeps_serving(sim, bad):
    drive_to(sim, [0.2, 0.0, 0.0, 0.0])
    sim.send(bad)
    spin_until(sim.ex, lambda: sim.node.filter.n_rejected >= 1, DEADLINE, 'rejection')
    q_hold = sim.q()
    n = len(sim.js)
    spin_until(sim.ex, lambda: len(sim.js) > n + 20, DEADLINE, 'joint_states keep coming')
    np.testing.assert_allclose(sim.q(), q_hold, atol=2e-3)  # held where measured
    assert sim.node.filter.mode.value == 'hold_rejected'
    spin_until(sim.ex, lambda: any(kv.key == 'commands_rejected' and kv.value != '0'
                                   for d in sim.diag for kv in d.status[0].values), DEADLINE,
               'diagnostics count the rejection')
    drive_to(sim, [-0.2, 0.0, 0.0, 0.0])  # still serving good commands


def test_watchdog_holds_after_commands_stop(sim):
    drive_to(sim, [0.0, 0.0, 0.0, 0.0])
    sim.send([2.0, 0.0, 0.0, 0.0])  # one command only: far goal, then silence
    f = sim.node.filter
    spin_until(sim.ex, lambda: f.mode.value == 'hold_watchdog', DEADLINE, 'watchdog')
    # fired within cmd_timeout (+ one physics step) of simulated time after the command arrived
    assert f.t_command + f.cmd_timeout < f.t_hold <= f.t_command + f.cmd_timeout + 0.004 + 1e-9
    q_hold = sim.q()
    n = len(sim.js)
    spin_until(sim.ex, lambda: len(sim.js) > n + 20, DEADLINE, 'more joint_states')
    assert sim.q()[0] < 1.0  # never went on to the stale goal
    np.testing.assert_allclose(sim.q(), q_hold, atol=0.05)  # stopped near the held position
    drive_to(sim, [0.1, 0.0, 0.0, 0.0])  # commands resume motion


def test_estop_latches_until_reset(sim):
    drive_to(sim, [0.1, 0.0, 0.0, 0.0])
    assert sim.call('arm_sim/estop').success
    sim.send([0.6, 0.0, 0.0, 0.0])
    n = len(sim.js)
    spin_until(sim.ex, lambda: len(sim.js) > n + 20, DEADLINE, 'joint_states during e-stop')
    assert sim.q()[0] < 0.15  # did not move to the new command
    assert sim.node.filter.estopped
    assert sim.call('arm_sim/reset').success
    drive_to(sim, [0.6, 0.0, 0.0, 0.0])


def test_publishes_clock_and_stamps_with_sim_time_when_it_owns_time():
    h = Harness(**{'arm.publish_clock': True, 'arm.real_time_factor': 2.0,
                   'arm_controller': 'my_ctrl'})
    try:
        clocks: list[Clock] = []
        h.probe.create_subscription(Clock, '/clock', clocks.append, qos.STATE)
        spin_until(h.ex, lambda: len(clocks) > 3 and h.js, DEADLINE, '/clock')
        t = clocks[-1].clock.sec + clocks[-1].clock.nanosec * 1e-9
        assert t > 0
        assert t == pytest.approx(h.node.arm.t, abs=0.2)
        assert h.node.sub_commands.topic_name == '/my_ctrl/commands'
        drive_to(h, [0.1, 0.0, 0.0, 0.0])
        stamp = h.js[-1].header.stamp
        assert stamp.sec + stamp.nanosec * 1e-9 < 60.0  # simulated seconds, not the epoch
    finally:
        h.close()


def test_unknown_joint_in_parameters_fails_at_start(ros_context):
    with pytest.raises(ValueError, match='unknown joint'):
        ArmSimNode(context=ros_context, parameter_overrides=[
            Parameter('arm.joints', value=['base_joint', 'wrist_roll'])])


def _start(*ros_args):
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, '-m', 'l2l_nmhw_ros.ros.arm_sim_node', '--ros-args', *ros_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'})


def test_main_exits_nonzero_on_bad_configuration():
    p = _start('-p', 'arm.joints:=[base_joint,wrist_roll]')
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 1
    assert 'unknown joint' in out


def test_main_shuts_down_cleanly_on_sigint():
    import signal

    p = _start('-p', 'arm.real_time_factor:=2.0')
    ctx = new_context()
    probe = rclpy.create_node('probe_main', context=ctx)
    got: list[JointState] = []
    probe.create_subscription(JointState, 'joint_states', got.append, qos.STATE)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    try:
        spin_until(ex, lambda: bool(got), 60.0, 'joint_states of the node',
                   abort=lambda: p.poll() is not None)
        p.send_signal(signal.SIGINT)  # now it is spinning
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        ex.shutdown()
        probe.destroy_node()
        ctx.try_shutdown()
    assert p.returncode == 0, out


def test_runtime_parameter_changes_reach_the_filter_or_are_rejected(sim):
    ok = sim.node.set_parameters([Parameter('arm.cmd_timeout', value=0.25),
                                  Parameter('arm.max_velocity', value=0.5)])
    assert all(r.successful for r in ok)
    assert sim.node.filter.cmd_timeout == 0.25
    np.testing.assert_array_equal(sim.node.filter.v_max, [0.5] * 4)
    bad = sim.node.set_parameters([Parameter('arm.cmd_timeout', value=-1.0)])[0]
    assert not bad.successful
    assert sim.node.filter.cmd_timeout == 0.25
