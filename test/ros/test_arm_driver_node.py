"""ed_scorbot_driver in-process against a fake FPGA on 127.0.0.1 (ephemeral ports only)."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from ._graph_helpers import new_context, spin_until  # noqa: E402

from l2l_nmhw_ros.arm import scorbot_udp as U  # noqa: E402
from l2l_nmhw_ros.ros import qos  # noqa: E402
from l2l_nmhw_ros.ros.ed_scorbot_driver_node import EDScorbotDriverNode  # noqa: E402

DEADLINE = 20.0  # [s] wall clock


class FakeFPGA:
    """UDP socket on 127.0.0.1 that records reference datagrams and can send encoder counts."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []

    def drain(self):
        while True:
            try:
                self.datagrams.append(self.sock.recv(64))
            except BlockingIOError:
                return

    def send_counts(self, q, address):
        self.sock.sendto(U.encode_feedback(U.radians_to_counts(q)), address)

    def close(self):
        self.sock.close()


class Harness:
    def __init__(self, fpga: FakeFPGA, feedback: bool, **params):
        self.ctx = new_context()
        params = {'arm.fpga_host': '127.0.0.1', 'arm.fpga_port': fpga.port,
                  'arm.feedback_host': '127.0.0.1',
                  'arm.feedback_port': free_port() if feedback else 0, **params}
        self.node = EDScorbotDriverNode(context=self.ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node('probe', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.probe)
        self.js: list[JointState] = []
        self.ref: list[JointState] = []
        self.diag: list[DiagnosticArray] = []
        self.probe.create_subscription(JointState, 'joint_states', self.js.append, qos.STATE)
        self.probe.create_subscription(JointState, 'ed_scorbot_driver/reference', self.ref.append,
                                       qos.STATE)
        self.probe.create_subscription(DiagnosticArray, 'diagnostics', self.diag.append,
                                       qos.STATE)
        self.cmd = self.probe.create_publisher(Float64MultiArray,
                                               'forward_position_controller/commands',
                                               qos.COMMANDS)

    def send(self, values):
        self.cmd.publish(Float64MultiArray(data=[float(v) for v in values]))

    def close(self):
        self.ex.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        self.ctx.try_shutdown()


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def fpga():
    f = FakeFPGA()
    yield f
    f.close()


def last_level(h: Harness) -> int:
    return h.diag[-1].status[0].level[0] if h.diag else -1


def test_closed_loop_datagrams_decode_to_the_dsr_of_the_command(fpga):
    h = Harness(fpga, feedback=True)
    try:
        fb = h.node.udp.feedback_address
        q_arm = np.radians([5.0, -10.0, 15.0, -20.0])
        # before any feedback nothing is sent and nothing is published as measured
        spin_until(h.ex, lambda: h.diag, DEADLINE, 'diagnostics')
        fpga.drain()
        assert fpga.datagrams == []
        assert h.js == []
        assert 'waiting for encoder feedback' in h.diag[-1].status[0].message
        goal = q_arm + np.radians([2.0, 1.0, -1.0, 0.5])

        def settled():
            # the fake arm follows the references perfectly (measured = last reference)
            fpga.drain()
            q = U.dsr_to_radians(U.decode_reference(fpga.datagrams[-1])) \
                if fpga.datagrams else q_arm
            fpga.send_counts(q, fb)
            h.send(goal)
            return bool(fpga.datagrams) and np.allclose(
                U.decode_reference(fpga.datagrams[-1]), U.radians_to_dsr(goal), rtol=1e-6)
        spin_until(h.ex, settled, DEADLINE, 'references at the goal')
        # measured = decoded encoder counts (quantised to one count), never the command itself;
        # the fake arm answers one tick late, so wait for the encoders to report the goal
        one_count = np.radians(1.0 / np.array(U.COUNTS_PER_DEGREE))
        spin_until(h.ex, lambda: settled() and np.all(np.abs(np.array(h.js[-1].position) - goal)
                                                      <= one_count), DEADLINE,
                   'encoders at the goal')
        assert [j.name for j in h.js[-1:]] == [['base_joint', 'shoulder', 'elbow', 'pitch']]
        # joint_states = what the encoders said: an integer count on every joint
        counts = 32768 - np.degrees(h.js[-1].position) * np.array(U.COUNTS_PER_DEGREE)
        np.testing.assert_allclose(counts, np.rint(counts), atol=1e-6)
        assert h.js[-1].velocity.tolist() == []
        # each step of the references respects the velocity limit (1 rad/s) at 50 Hz
        q_sent = np.array([U.dsr_to_radians(U.decode_reference(d)) for d in fpga.datagrams])
        period = 1.0 / h.node.cfg.publish_rate
        # a tick may be late on a loaded machine: the filter uses the elapsed time, so bound the
        # step by the largest plausible gap (5 periods) rather than one period
        assert np.abs(np.diff(q_sent, axis=0)).max() <= 5 * period + 1e-6
        spin_until(h.ex, lambda: settled() and last_level(h) == 0, DEADLINE, 'diagnostics OK')
    finally:
        h.close()


def test_bad_commands_never_reach_the_fpga(fpga):
    h = Harness(fpga, feedback=True)
    try:
        fb = h.node.udp.feedback_address
        q_arm = np.radians([1.0, 2.0, 3.0, 4.0])

        def feed():
            fpga.send_counts(q_arm, fb)
            fpga.drain()
            return len(fpga.datagrams) > 5
        spin_until(h.ex, feed, DEADLINE, 'references')
        for bad in ([math.nan, 0.0, 0.0, 0.0], [0.0, 0.0], [math.inf] * 4, [0.0] * 7):
            h.send(bad)
        spin_until(h.ex, lambda: h.node.filter.n_rejected == 4, DEADLINE, 'four rejections')
        n = len(fpga.datagrams)
        spin_until(h.ex, lambda: feed() and len(fpga.datagrams) > n + 10, DEADLINE,
                   'more references')
        sent = np.array([U.decode_reference(d) for d in fpga.datagrams])
        assert np.all(np.isfinite(sent))
        # the arm holds its measured position (float32 DSR, one encoder count)
        meas = U.counts_to_radians(U.radians_to_counts(q_arm))
        np.testing.assert_allclose(U.dsr_to_radians(sent[-1]), meas, atol=1e-6)
    finally:
        h.close()


def test_stale_feedback_stops_joint_states_and_holds(fpga):
    h = Harness(fpga, feedback=True, **{'arm.feedback_timeout': 0.2})
    try:
        fb = h.node.udp.feedback_address
        q_arm = np.radians([1.0, 2.0, 3.0, 4.0])
        fpga.send_counts(q_arm, fb)
        spin_until(h.ex, lambda: h.js, DEADLINE, 'joint_states from feedback')
        n_js = len(h.js)
        h.send(q_arm + 0.5)  # then the encoders go silent
        spin_until(h.ex, lambda: last_level(h) == 2, DEADLINE, 'diagnostics ERROR (stale)')
        assert 'stale' in h.diag[-1].status[0].message
        assert len(h.js) == n_js  # nothing published as measured without feedback
        fpga.drain()
        last = fpga.datagrams[-1]
        n = len(fpga.datagrams)
        spin_until(h.ex, lambda: (fpga.drain() or True) and len(fpga.datagrams) > n + 5,
                   DEADLINE, 'refs')
        assert fpga.datagrams[-1] == last  # holding the last reference
    finally:
        h.close()


def test_open_loop_sends_references_but_never_publishes_joint_states(fpga):
    h = Harness(fpga, feedback=False)
    try:
        goal = [0.05, 0.0, 0.0, 0.0]

        def refs():
            h.send(goal)
            fpga.drain()
            return len(fpga.datagrams) > 20 and h.diag
        spin_until(h.ex, refs, DEADLINE, 'references')
        assert h.js == []  # commanded positions are never presented as measured
        assert h.ref  # they go to ~/reference instead
        assert last_level(h) == 1
        assert 'open loop' in h.diag[-1].status[0].message
        # starts from the homed pose (DSR 0) and ramps toward the goal
        first = U.decode_reference(fpga.datagrams[0])
        assert np.abs(first).max() < 1.0
    finally:
        h.close()
