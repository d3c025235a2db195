"""pcm_accelerator + snn_controller in-process with a FAKE arm driver that only speaks the topics.

The driver follows every command exactly (so the executed path is the commanded one), publishes
its joint states in its own name order with an extra joint, and knows nothing of our code. A
random-initialised checkpoint stands in for the meta-learned one: these tests check the plumbing
and the evaluation arithmetic, not learning (that is the e2e test's job).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ._graph_helpers import new_context, spin_until  # noqa: E402
from l2l_nmhw_ros.arm.kinematics import forward_kinematics  # noqa: E402
from l2l_nmhw_ros.ros.convert import diag_status, diag_values  # noqa: E402
from l2l_nmhw_ros.ros.pcm_accelerator_node import PcmAcceleratorNode  # noqa: E402
from l2l_nmhw_ros.ros.snn_controller_node import SnnControllerNode  # noqa: E402

DRIVER_ORDER = ['pitch', 'gripper_joint', 'shoulder', 'base_joint', 'elbow']
JOINTS = ['base_joint', 'shoulder', 'elbow', 'pitch']


class FakeDriver:
    """Tracks commands perfectly; joint_states at 50 Hz in its own joint order."""

    def __init__(self, ctx) -> None:
        self.node = rclpy.create_node('fake_driver', context=ctx)
        self.q = dict.fromkeys(DRIVER_ORDER, 0.0)
        self.commands: list[list[float]] = []
        self.node.create_subscription(Float64MultiArray, 'forward_position_controller/commands',
                                      self._cmd, 10)
        self.pub = self.node.create_publisher(JointState, 'joint_states', 10)
        self.node.create_timer(0.02, self._publish)

    def _cmd(self, msg: Float64MultiArray) -> None:
        self.commands.append(list(msg.data))
        for name, v in zip(JOINTS, msg.data, strict=True):
            self.q[name] = v

    def _publish(self) -> None:
        msg = JointState(name=DRIVER_ORDER, position=[self.q[n] for n in DRIVER_ORDER])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)


class Graph:
    def __init__(self, ckpt: Path, tmp: Path, **control) -> None:
        self.ctx = new_context()
        params = [Parameter('control.checkpoint', value=str(ckpt)),
                  Parameter('control.settle_time', value=0.1),
                  Parameter('control.command_rate', value=50.0),
                  Parameter('control.state_file', value=str(tmp / 'pcm_state.safetensors'))]
        params += [Parameter(f'control.{k}', value=v) for k, v in control.items()]
        self.acc = PcmAcceleratorNode(context=self.ctx, parameter_overrides=params)
        self.ctl = SnnControllerNode(context=self.ctx, parameter_overrides=params)
        self.driver = FakeDriver(self.ctx)
        self.client = rclpy.create_node('test_client', context=self.ctx)
        self.results: list[dict[str, str]] = []
        self.status: list[dict[str, str]] = []
        self.signals: list[Float32MultiArray] = []
        self.client.create_subscription(
            DiagnosticArray, 'snn_controller/result',
            lambda m: self.results.extend(diag_values(s) for s in m.status), 10)
        self.client.create_subscription(
            DiagnosticArray, 'pcm_accelerator/status',
            lambda m: self.status.extend(diag_values(s) for s in m.status), 100)
        self.client.create_subscription(Float32MultiArray, 'pcm_accelerator/learning_signal',
                                        self.signals.append, 10)
        self.pub_target = self.client.create_publisher(PointStamped, 'reach_target', 10)
        self.pub_signal = self.client.create_publisher(Float32MultiArray,
                                                       'pcm_accelerator/learning_signal', 10)
        self.pub_js = self.client.create_publisher(JointState, 'joint_states', 10)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        for n in (self.acc, self.ctl, self.driver.node, self.client):
            self.ex.add_node(n)
        self.outcomes = []
        adapt = self.acc.core.accelerator.adapt

        def spy(*a, **k):
            out = adapt(*a, **k)
            self.outcomes.append(out)
            return out
        self.acc.core.accelerator.adapt = spy
        spin_until(self.ex, lambda: self.pub_target.get_subscription_count() > 0 and
                   self.driver.pub.get_subscription_count() >= 2, 10.0, 'graph matched')

    def target(self, p, frame: str = 'base_link') -> None:
        msg = PointStamped()
        msg.header.frame_id = frame
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in p)
        self.pub_target.publish(msg)

    def idle(self) -> bool:
        return self.acc.core.running is None and self.ctl.core.current is None

    def close(self) -> None:
        self.ex.shutdown()
        for n in (self.acc, self.ctl, self.driver.node, self.client):
            n.destroy_node()
        self.ctx.try_shutdown()


@pytest.fixture(scope='module')
def graph(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    g = Graph(random_checkpoint, tmp_path_factory.mktemp('state'))
    yield g
    g.close()


def _fk(q) -> np.ndarray:
    return forward_kinematics(np.asarray(q, dtype=np.float64))


def test_one_episode_end_to_end_with_a_fake_driver(graph: Graph) -> None:
    target = _fk([0.6, -0.4, 0.0, 0.0])
    graph.target(target)
    spin_until(graph.ex, lambda: len(graph.results) == 1, 60.0, 'episode result')
    r = graph.results[0]
    assert r['status'] == 'ok', r
    # the learning signal on the wire: labelled dims time x neuron, 249 x 250
    sig = graph.signals[0]
    assert [(d.label, d.size, d.stride) for d in sig.layout.dim] == [
        ('time', 249, 249 * 250), ('neuron', 250, 250)]
    # the phases of the episode, in order, all with the signal's CRC
    crc = r['learning_signal_crc32']
    starts = [s['phase'] for s in graph.status
              if s.get('learning_signal_crc32') == crc and s['event'] == 'start']
    assert starts == ['home', 'baseline', 'return_baseline', 'adapted', 'return_adapted']
    assert graph.status[-1]['phase'] == 'done'
    # the driver tracks exactly: the final position is the integrated adapted readout
    out = graph.outcomes[0]
    q_end = np.zeros(4)
    q_end[:2] = 0.01 * out.omega_adapted.sum(axis=0)
    assert float(r['error_final_adapted']) == pytest.approx(
        float(np.linalg.norm(_fk(q_end) - target)), abs=1e-6)
    q_base = np.zeros(4)
    q_base[:2] = 0.01 * out.omega_baseline.sum(axis=0)
    assert float(r['error_final_baseline']) == pytest.approx(
        float(np.linalg.norm(_fk(q_base) - target)), abs=1e-6)
    assert int(r['signal_sends']) >= 1 and r['accelerator_episode'] == '1'  # 2: DDS lost one
    assert int(r['devices_programmed']) == out.devices_programmed > 0
    assert int(r['devices_restored']) == out.devices_programmed
    assert float(r['arm_moved_rad']) > 0.0
    assert len(graph.driver.commands) > 20
    assert float(r['adaptation_latency_ms']) > 0.0
    # commands hold the 2 unlearned joints at home
    assert np.array(graph.driver.commands)[:, 2:].max() == 0.0


def test_bad_messages_are_logged_and_ignored(graph: Graph) -> None:
    before_acc = dict(graph.acc.core.rejected)
    before_ctl = dict(graph.ctl.core.rejected)
    n_results = len(graph.results)
    sig = Float32MultiArray(data=[0.0] * (249 * 250))
    sig.layout.dim = [MultiArrayDimension(label='neuron', size=250, stride=249 * 250),
                      MultiArrayDimension(label='time', size=249, stride=249)]
    graph.pub_signal.publish(sig)  # wrong labels
    sig2 = Float32MultiArray(data=[0.0] * 10)
    sig2.layout.dim = [MultiArrayDimension(label='time', size=2, stride=10),
                       MultiArrayDimension(label='neuron', size=5, stride=5)]
    graph.pub_signal.publish(sig2)  # wrong dims
    sig3 = Float32MultiArray(data=[float('nan')] + [0.0] * (249 * 250 - 1))
    sig3.layout.dim = [MultiArrayDimension(label='time', size=249, stride=249 * 250),
                       MultiArrayDimension(label='neuron', size=250, stride=250)]
    graph.pub_signal.publish(sig3)  # NaN
    graph.pub_js.publish(JointState(name=['j1', 'j2'], position=[0.0, 0.0]))  # unknown joints
    graph.pub_js.publish(JointState(name=JOINTS, position=[0.0, float('nan'), 0.0, 0.0]))
    graph.target([float('nan'), 0.0, 0.5])
    graph.target([0.5, 0.0, 0.5], frame='camera_link')

    def counted() -> bool:
        return (graph.acc.core.rejected.get('learning_signal', 0) -
                before_acc.get('learning_signal', 0) == 3 and
                graph.ctl.core.rejected.get('reach_target', 0) -
                before_ctl.get('reach_target', 0) == 2 and
                graph.ctl.core.rejected.get('joint_states', 0) -
                before_ctl.get('joint_states', 0) >= 2 and
                graph.acc.core.rejected.get('joint_states', 0) -
                before_acc.get('joint_states', 0) >= 2)
    spin_until(graph.ex, counted, 10.0, 'bad messages counted')
    assert graph.acc.core.running is None  # no episode was started by the bad signals
    # the two bad targets are answered at once (rejected, with the reason); nothing else
    spin_until(graph.ex, lambda: len(graph.results) >= n_results + 2, 2.0, 'rejected results')
    assert [r['status'] for r in graph.results[n_results:]] == ['rejected', 'rejected']
    n_results += 2
    # ... and the graph still serves: an unreachable target is answered at once
    graph.target([3.0, 0.0, 0.0])
    spin_until(graph.ex, lambda: len(graph.results) == n_results + 1, 10.0, 'unreachable')
    assert graph.results[-1]['status'] == 'unreachable'
    assert float(graph.results[-1]['ik_distance']) > 1.0


def test_targets_during_an_episode_are_queued_in_order(graph: Graph) -> None:
    n = len(graph.results)
    targets = [_fk([-0.5, 0.3, 0.0, 0.0]), _fk([0.3, 0.5, 0.0, 0.0])]
    for p in targets:
        graph.target(p)
    spin_until(graph.ex, lambda: len(graph.results) == n + 2, 90.0, 'two results')
    got = [[float(r[f'target_{a}']) for a in 'xyz'] for r in graph.results[n:]]
    np.testing.assert_allclose(got, np.array(targets), atol=1e-9)
    assert [r['status'] for r in graph.results[n:]] == ['ok', 'ok']


def test_the_same_target_twice_is_two_episodes(graph: Graph) -> None:
    # same target -> same learning signal (same CRC). While the second episode runs, stale
    # statuses of the first (same CRC, its episode number, phases 'adapted' and 'done') arrive at
    # 50 Hz: they must neither acknowledge nor end the second episode.
    n, n_out = len(graph.results), len(graph.outcomes)
    p = _fk([0.2, 0.2, 0.0, 0.0])
    graph.target(p)
    spin_until(graph.ex, lambda: len(graph.results) == n + 1, 60.0, 'first result')
    a = graph.results[n]
    stale = [diag_status('pcm_accelerator', DiagnosticStatus.OK, 'stale', {
        'learning_signal_crc32': a['learning_signal_crc32'],
        'episode': a['accelerator_episode'], 'phase': phase, 'event': 'periodic'})
        for phase in ('adapted', 'done')]
    pub = graph.client.create_publisher(DiagnosticArray, 'pcm_accelerator/status', 10)
    timer = graph.client.create_timer(0.02, lambda: pub.publish(DiagnosticArray(status=stale)))
    try:
        graph.target(p)
        spin_until(graph.ex, lambda: len(graph.results) == n + 2, 60.0, 'second result')
    finally:
        graph.client.destroy_timer(timer)
        graph.client.destroy_publisher(pub)
    b = graph.results[n + 1]
    assert a['status'] == b['status'] == 'ok', b
    assert a['learning_signal_crc32'] == b['learning_signal_crc32']
    assert int(b['accelerator_episode']) == int(a['accelerator_episode']) + 1
    assert 'error_final_baseline' in b and 'error_final_adapted' in b
    assert len(graph.outcomes) == n_out + 2


def test_a_signal_queued_by_the_busy_accelerator_is_not_sent_again(graph: Graph) -> None:
    # the accelerator runs an episode nobody follows (~5 s, longer than signal_retry = 2 s)
    # when the controller's signal arrives: queued, listed in queued_crc32, not re-sent
    n = len(graph.results)
    spin_until(graph.ex, graph.idle, 30.0, 'idle graph')
    rng = np.random.default_rng(7)
    other = Float32MultiArray(data=rng.normal(0.0, 1.0, 249 * 250).astype(np.float32).tolist())
    other.layout.dim = [MultiArrayDimension(label='time', size=249, stride=249 * 250),
                        MultiArrayDimension(label='neuron', size=250, stride=250)]
    graph.pub_signal.publish(other)
    spin_until(graph.ex, lambda: graph.acc.core.running is not None, 10.0, 'busy accelerator')
    graph.target(_fk([-0.3, 0.4, 0.0, 0.0]))
    spin_until(graph.ex, lambda: len(graph.results) == n + 1, 60.0, 'result')
    r = graph.results[n]
    assert r['status'] == 'ok', r
    assert r['signal_sends'] == '1'
    assert any(s['event'] == 'queued' and r['learning_signal_crc32'] in s['queued_crc32']
               for s in graph.status)


def test_reset_during_an_episode_ends_it_at_once(graph: Graph) -> None:
    n = len(graph.results)
    spin_until(graph.ex, graph.idle, 30.0, 'idle graph')
    graph.target(_fk([0.5, -0.2, 0.0, 0.0]))
    spin_until(graph.ex, lambda: graph.ctl.core.current is not None and
               graph.ctl.core.current.handshake.acknowledged, 30.0, 'acknowledged episode')
    reset = graph.client.create_client(Trigger, 'pcm_accelerator/reset')
    spin_until(graph.ex, reset.service_is_ready, 10.0, 'reset service')
    fut = reset.call_async(Trigger.Request())
    spin_until(graph.ex, lambda: fut.done() and len(graph.results) == n + 1, 10.0,
               'result after the reset')
    assert graph.results[n]['status'] == 'incomplete', graph.results[n]


def test_a_repeated_learning_signal_runs_once(graph: Graph) -> None:
    # two identical signals back to back (what a re-send looks like): one episode
    n_out = len(graph.outcomes)
    spin_until(graph.ex, graph.idle, 30.0, 'idle graph')
    sig = graph.signals[-1]
    graph.pub_signal.publish(sig)
    graph.pub_signal.publish(sig)
    spin_until(graph.ex, lambda: len(graph.outcomes) > n_out and graph.acc.core.running is None,
               60.0, 'episode done')
    assert len(graph.outcomes) == n_out + 1
    assert graph.acc.core.running is None and not len(graph.acc.core.queue)


def test_a_lost_learning_signal_is_sent_again(random_checkpoint: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the accelerator loses the first learning signal (as DDS may right after discovery): the
    # controller re-sends it after control.signal_retry and the episode completes once
    received = []
    on_signal = PcmAcceleratorNode._on_signal

    def lossy(self, msg):
        received.append(msg)
        if len(received) > 1:
            on_signal(self, msg)
    monkeypatch.setattr(PcmAcceleratorNode, '_on_signal', lossy)
    g = Graph(random_checkpoint, tmp_path, signal_retry=0.5)
    try:
        g.target(_fk([0.4, 0.1, 0.0, 0.0]))
        spin_until(g.ex, lambda: len(g.results) == 1, 60.0, 'episode result')
        r = g.results[0]
        assert r['status'] == 'ok', r
        assert r['signal_sends'] == '2'
        assert len(received) == 2 and list(received[0].data) == list(received[1].data)
        assert len(g.outcomes) == 1
    finally:
        g.close()


def test_state_file_and_services(graph: Graph, random_checkpoint: Path) -> None:
    cli = graph.client.create_client(Trigger, 'pcm_accelerator/save_state')
    spin_until(graph.ex, cli.service_is_ready, 10.0, 'save_state service')
    fut = cli.call_async(Trigger.Request())
    spin_until(graph.ex, fut.done, 10.0, 'save_state answer')
    assert fut.result().success, fut.result().message
    path = Path(graph.acc.core.cfg.control.state_file)
    assert path.is_file()
    saved = graph.acc.core.accelerator.crossbar.g_plus
    reset = graph.client.create_client(Trigger, 'pcm_accelerator/reset')
    spin_until(graph.ex, reset.service_is_ready, 10.0, 'reset service')
    fut = reset.call_async(Trigger.Request())
    spin_until(graph.ex, fut.done, 10.0, 'reset answer')
    assert fut.result().success
    assert 'devices' in fut.result().message
    assert not torch.equal(graph.acc.core.accelerator.crossbar.g_plus, saved)  # deployed afresh
    # a restarted accelerator continues from the saved devices
    ctx = new_context()
    try:
        again = PcmAcceleratorNode(context=ctx, parameter_overrides=[
            Parameter('control.checkpoint', value=str(random_checkpoint)),
            Parameter('control.state_file', value=str(path))])
        assert again.core.accelerator.loaded_from_state
        torch.testing.assert_close(again.core.accelerator.crossbar.g_plus, saved, rtol=0, atol=0)
        again.destroy_node()
    finally:
        ctx.try_shutdown()
