"""The graph with three learned joints (preset reach3's network: base, shoulder, elbow): one
episode over DDS with the fake driver, the commands move exactly the learned joints, and a target
off the two-joint surface is reachable; the same with an inner loop that also learns the readout
(preset reach3_readout: 253 learning signals per step over DDS, readout rows written on-chip)."""

from __future__ import annotations


import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from ._graph_helpers import random_checkpoint, spin_until  # noqa: E402
from .test_graph_nodes import Graph, _fk  # noqa: E402

REACH3 = {'trainee': {'n_out': 3}, 'task': {
    'learned_joints': ['base_joint', 'shoulder', 'elbow'],
    'joint_lo': [-2.18, -1.22, -1.57], 'joint_hi': [2.18, 1.22, 1.57]}}


READOUT = {**REACH3, 'eprop': {'update_w_out': True}, 'task': {**REACH3['task'],
                                                               'omega_scale': 0.001}}


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


def test_three_learned_joints_with_readout_learning(tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
    from l2l_nmhw_ros.l2l import checkpoint

    folder = tmp_path_factory.mktemp('ckpt3r')
    w, meta = checkpoint.load(random_checkpoint(folder, READOUT))
    w['lsg.w_out'][250:] *= 0.002 # readout updates of a fraction of a radian (random net)
    ckpt = checkpoint.save(folder / 'readout', w, {k: meta[k] for k in ('config', 'note')})
    g = Graph(ckpt, tmp_path_factory.mktemp('state3r'))
    try:
        cfg = g.acc.core.cfg
        assert cfg.eprop.update_w_out and g.acc.core.accelerator.n_signals == 253
        target = _fk([0.5, -0.3, 0.6, 0.0])
        g.target(target)
        spin_until(g.ex, lambda: len(g.results) == 1, 60.0, 'episode result')
        r = g.results[0]
        assert r['status'] == 'ok', r
        out = g.outcomes[0]
        assert out.dq_out is not None and int((out.dq_out != 0).sum()) > 0  # readout written
        q_end = np.zeros(4)
        q_end[:3] = cfg.task.omega_scale * out.omega_adapted.sum(axis=0)
        assert np.all(np.abs(q_end[:3]) < cfg.task.joint_hi)  # inside the limits: no clipping
        assert float(r['error_final_adapted']) == pytest.approx(
            float(np.linalg.norm(_fk(q_end) - target)), abs=1e-6)
    finally:
        g.close()
