"""Fault injection, ``snn_controller`` over DDS: bad targets are answered ``rejected`` at once.

The real node (random checkpoint, no arm: valid targets wait for joint states) and the demo's
client (:class:`~l2l_nmhw_ros.ros.tools.demo_client.DemoClient`, the publisher that
``l2l-nmhw reach`` and ``l2l-nmhw demo`` use, QoS ``TARGETS``) in one executor. Results are matched
to their targets as the tools do (``result_for``: by coordinates, NaN included).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from ._graph_helpers import new_context, spin_until  # noqa: E402
from l2l_nmhw_ros.ros.snn_controller_node import SnnControllerNode  # noqa: E402
from l2l_nmhw_ros.ros.tools.demo_client import DemoClient  # noqa: E402

JOINTS = ['base_joint', 'shoulder', 'elbow', 'pitch']


@pytest.fixture
def pair(random_checkpoint: Path):
    """(controller node, demo client) matched both ways, spinning in the client's executor."""
    ctx = new_context()
    ctl = SnnControllerNode(context=ctx, parameter_overrides=[
        Parameter('control.checkpoint', value=str(random_checkpoint))])
    client = DemoClient(ctx, None, JOINTS, use_sim_time=False)
    client.executor.add_node(ctl)
    try:
        spin_until(client.executor, lambda: client.pub_target.get_subscription_count() > 0 and
                   ctl.pub_result.get_subscription_count() > 0, 10.0, 'both topics matched')
        yield ctl, client
    finally:
        client.close()
        ctl.destroy_node()
        ctx.try_shutdown()


def test_nan_and_wrong_frame_targets_get_rejected_results_within_2_s(pair) -> None:
    ctl, client = pair
    nan_target, other_frame = np.array([math.nan, 0.0, 0.5]), np.array([0.5, 0.0, 0.5])
    n0 = len(client.results)
    t0 = time.monotonic()
    client.send_target(nan_target, 'base_link')
    client.send_target(other_frame, 'camera_link')
    spin_until(client.executor, lambda: client.result_for(nan_target, n0) is not None and
               client.result_for(other_frame, n0) is not None, 2.0, 'two rejected results')
    assert time.monotonic() - t0 < 2.0
    a, b = client.result_for(nan_target, n0), client.result_for(other_frame, n0)
    assert (a['status'], a['episode'], a['target_x']) == ('rejected', '0', 'nan')
    assert math.isnan(float(a['target_x'])) and float(a['target_z']) == 0.5
    assert 'non-finite' in a['message']
    assert b['status'] == 'rejected' and "'camera_link'" in b['message']
    assert ctl.core.rejected['reach_target'] == 2 and ctl.core.current is None


def test_an_error_inside_the_controller_is_answered_and_the_node_spins_on(pair) -> None:
    ctl, client = pair

    def broken(p, frame_id=''):
        raise RuntimeError('boom')
    ctl.core.add_target = broken
    p = np.array([0.5, 0.1, 0.5])
    client.send_target(p, 'base_link')
    spin_until(client.executor, lambda: client.result_for(p) is not None, 5.0, 'result')
    r = client.result_for(p)
    assert (r['status'], r['message']) == ('rejected', 'internal error: RuntimeError: boom')
    assert ctl.core.rejected['internal'] == 1
    # the node still takes messages: an impossible joint state is refused and counted
    msg = JointState(name=JOINTS, position=[100.0, 0.0, 0.0, 0.0])
    pub = client.node.create_publisher(JointState, 'joint_states', 10)
    spin_until(client.executor, lambda: pub.get_subscription_count() > 1, 5.0, 'joint_states')
    pub.publish(msg)
    spin_until(client.executor, lambda: ctl.core.rejected['joint_states'] == 1, 5.0, 'refused')
    assert len(ctl.core.js_t) == 0


def test_a_burst_of_50_targets_is_not_lost_in_dds(pair) -> None:
    # no joint states: every valid target waits; the queue (control.queue_size) keeps the newest,
    # every older one is answered rejected: each of the 50 gets a place or an answer
    ctl, client = pair
    size = ctl.core.cfg.control.queue_size
    assert size < 50
    targets = [np.array([0.5, 0.01 * i, 0.8]) for i in range(50)]
    n0 = len(client.results)
    for p in targets:
        client.send_target(p, 'base_link')
    spin_until(client.executor, lambda: len(client.results) - n0 == 50 - size and
               len(ctl.core.targets) == size, 10.0, 'every target answered or queued')
    for p in targets[:50 - size]:
        r = client.result_for(p, n0)
        assert r is not None and r['status'] == 'rejected', p
        assert r['message'].startswith(f'queue full ({size} waiting')
    np.testing.assert_array_equal(np.array(ctl.core.targets), np.array(targets[50 - size:]))
