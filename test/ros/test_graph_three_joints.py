"""The graph with three learned joints (preset reach3's network: base, shoulder, elbow): one
episode over DDS with the fake driver, the commands move exactly the learned joints, and a target
off the two-joint surface is reachable."""

from __future__ import annotations


import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from ._graph_helpers import random_checkpoint, spin_until  # noqa: E402
from .test_graph_nodes import Graph, _fk  # noqa: E402

REACH3 = {'trainee': {'n_out': 3}, 'task': {
    'learned_joints': ['base_joint', 'shoulder', 'elbow'],
    'joint_lo': [-2.18, -1.22, -1.57], 'joint_hi': [2.18, 1.22, 1.57]}}


@pytest.fixture(scope='module')
def graph3(tmp_path_factory: pytest.TempPathFactory):
    ckpt = random_checkpoint(tmp_path_factory.mktemp('ckpt3'), REACH3)
    g = Graph(ckpt, tmp_path_factory.mktemp('state3'))
    yield g
    g.close()


def test_three_learned_joints_one_episode(graph3: Graph) -> None:
    assert graph3.acc.core.cfg.task.learned_joints == ('base_joint', 'shoulder', 'elbow')
    target = _fk([0.5, -0.3, 0.6, 0.0])  # needs the elbow: off the base+shoulder surface
    graph3.target(target)
    spin_until(graph3.ex, lambda: len(graph3.results) == 1, 60.0, 'episode result')
    r = graph3.results[0]
    assert r['status'] == 'ok', r
    assert float(r['ik_distance']) < 1e-3  # reachable with three joints
    q = np.array(graph3.driver.commands)
    assert np.abs(q[:, 2]).max() > 0.0  # the elbow moves
    assert q[:, 3].max() == 0.0 == q[:, 3].min()  # the unlearned wrist stays at home
    # the final error is the FK error of the integrated three readouts (the driver tracks exactly)
    out = graph3.outcomes[0]
    q_end = np.zeros(4)
    q_end[:3] = graph3.acc.core.cfg.task.omega_scale * out.omega_adapted.sum(axis=0)
    assert float(r['error_final_adapted']) == pytest.approx(
        float(np.linalg.norm(_fk(q_end) - target)), abs=1e-6)
