"""Fault injection against the running nodes over DDS (in-process, fake arm driver): hostile
learning signals, impossible joint states, an exception inside a callback, a dead arm driver in
the middle of an episode. Each: no node goes down, the arm's commands stay inside the safe joint
range, the requester hears back within 2 s of the refusal."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray, MultiArrayDimension  # noqa: E402

from ._graph_helpers import spin_until  # noqa: E402
from .test_graph_nodes import JOINTS, Graph, _fk  # noqa: E402
from l2l_nmhw_ros.reach.reports import signal_crc  # noqa: E402

T, N = 249, 250


@pytest.fixture(scope='module')
def graph(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    g = Graph(random_checkpoint, tmp_path_factory.mktemp('state'), joint_state_timeout=0.5)
    yield g
    g.close()


def _signal_msg(sig: np.ndarray) -> Float32MultiArray:
    msg = Float32MultiArray(data=np.asarray(sig, np.float32).ravel().tolist())
    msg.layout.dim = [MultiArrayDimension(label='time', size=T, stride=T * N),
                      MultiArrayDimension(label='neuron', size=N, stride=N)]
    return msg


HOSTILE = {
    'huge_1e30': lambda: np.full((T, N), 1e30, np.float32),
    'float32_max_one_value': lambda: np.where(np.arange(T * N).reshape(T, N) == 77,
                                              np.finfo(np.float32).max, 0.0),
    'large_1e4_everywhere': lambda: np.full((T, N), 1e4, np.float32),
    'inf_one_value': lambda: np.where(np.arange(T * N).reshape(T, N) == 5, np.inf, 0.0),
}


@pytest.mark.parametrize('make', HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_learning_signal_is_refused_over_dds(graph: Graph, make) -> None:
    sig = make().astype(np.float32)
    crc = signal_crc(sig)
    total = graph.acc.core.accelerator.devices_programmed_total
    t0 = time.monotonic()
    graph.pub_signal.publish(_signal_msg(sig))
    spin_until(graph.ex, lambda: any(s.get('rejected_crc32') == crc for s in graph.status),
               2.0, 'status rejected within 2 s')
    assert time.monotonic() - t0 < 2.0
    st = next(s for s in graph.status if s.get('rejected_crc32') == crc)
    assert st['event'] == 'rejected' and st['rejected_reason']
    assert graph.acc.core.running is None
    assert graph.acc.core.accelerator.devices_programmed_total == total  # nothing programmed


@pytest.mark.parametrize('q', [[100.0, 0, 0, 0], [0, -50.0, 0, 0], [0, 0, 1e9, 0]],
                         ids=['100_rad', 'minus_50_rad', '1e9_rad'])
def test_an_impossible_joint_state_is_rejected_by_both_nodes(graph: Graph, q) -> None:
    before = (graph.acc.core.rejected.get('joint_states', 0),
              graph.ctl.core.rejected.get('joint_states', 0))
    graph.pub_js.publish(JointState(name=JOINTS, position=[float(v) for v in q]))
    spin_until(graph.ex, lambda: graph.acc.core.rejected.get('joint_states', 0) > before[0]
               and graph.ctl.core.rejected.get('joint_states', 0) > before[1], 2.0,
               'joint state rejected')
    assert np.abs(graph.acc.core._current_pose()).max() < 3.0  # never the start pose


def test_an_exception_inside_a_callback_does_not_take_the_node_down(graph: Graph,
                                                                    monkeypatch) -> None:
    def boom(*_a, **_k):
        raise RuntimeError('injected fault')

    monkeypatch.setattr(graph.acc.core, 'on_learning_signal', boom)
    n = graph.acc.core.rejected.get('internal', 0)
    graph.pub_signal.publish(_signal_msg(np.zeros((T, N), np.float32)))
    spin_until(graph.ex, lambda: graph.acc.core.rejected.get('internal', 0) == n + 1, 2.0,
               'internal error counted')
    monkeypatch.undo()
    # the node still serves: a periodic status arrives afterwards
    k = len(graph.status)
    spin_until(graph.ex, lambda: len(graph.status) > k, 3.0, 'status after the fault')


def test_a_dead_arm_driver_mid_episode_fails_the_episode_and_stops_the_stream(
        graph: Graph) -> None:
    n_results = len(graph.results)
    graph.target(_fk([0.5, -0.3, 0.0, 0.0]))
    spin_until(graph.ex, lambda: graph.acc.core.streamer.busy and len(graph.driver.commands)
               > 10, 30.0, 'streaming')
    graph.ex.remove_node(graph.driver.node)  # the driver dies: no joint_states, no tracking
    spin_until(graph.ex, lambda: len(graph.results) > n_results, 10.0, 'episode result')
    r = graph.results[-1]
    assert r['status'] == 'failed'
    crc = r['learning_signal_crc32']
    ends = [s for s in graph.status if s.get('learning_signal_crc32') == crc
            and s.get('phase') == 'done']
    assert ends and 'no joint_states' in ends[-1]['fault']
    assert not graph.acc.core.streamer.busy
    limits = graph.acc.core.limits
    q = np.array(graph.driver.commands)
    assert (q >= limits.safe_lower - 1e-9).all() and (q <= limits.safe_upper + 1e-9).all()
    graph.ex.add_node(graph.driver.node)  # the driver is back: the graph serves again
