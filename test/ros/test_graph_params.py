"""The graph nodes' parameters: only what they use, network sections read-only with the
checkpoint's values, run-time changes they cannot apply refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from ._graph_helpers import random_checkpoint  # noqa: E402
from l2l_nmhw_ros import config as C  # noqa: E402
from l2l_nmhw_ros.reach.onchip import OnChipLearner  # noqa: E402
from l2l_nmhw_ros.reach.reach_controller import ReachController  # noqa: E402
from l2l_nmhw_ros.ros.pcm_accelerator_node import PcmAcceleratorNode  # noqa: E402
from l2l_nmhw_ros.ros.snn_controller_node import SnnControllerNode  # noqa: E402

#: the checkpoint's network differs from the defaults (and from the parameter file below)
NETWORK = {'trainee': {'v_th': 0.55}, 'lsg': {'n_rec': 40}, 'eprop': {'eta': 2e-4},
           'pcm': {'readout_replicas': 2}}


@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp('ckpt_params'), NETWORK)


def _overrides(ckpt: Path) -> list[Parameter]:
    # what a parameter file would give: network values that the checkpoint must override
    return [Parameter('control.checkpoint', value=str(ckpt)),
            Parameter('trainee.v_th', value=0.9), Parameter('lsg.n_rec', value=800),
            Parameter('eprop.eta', value=1e-4), Parameter('pcm.readout_replicas', value=3)]


@pytest.fixture(scope='module')
def nodes(small_checkpoint: Path):
    from ._graph_helpers import new_context

    ctx = new_context()
    acc = PcmAcceleratorNode(context=ctx, parameter_overrides=_overrides(small_checkpoint))
    ctl = SnnControllerNode(context=ctx, parameter_overrides=_overrides(small_checkpoint))
    yield acc, ctl
    acc.destroy_node()
    ctl.destroy_node()
    ctx.try_shutdown()


def _names(node) -> set[str]:
    return set(node.get_parameters_by_prefix(''))


def test_declared_parameters_are_the_ones_used(nodes) -> None:
    acc, ctl = nodes
    ros_own = {'use_sim_time', 'start_type_description_service'}
    network = {f'{s}.{f}' for s in ('trainee', 'eprop', 'task')
               for f in C.to_dict(C.L2LConfig())[s]}
    used = {f'{s}.{k}' for s, keys in OnChipLearner.CONFIG_KEYS.items() for k in keys}
    pcm = {f'pcm.{k}' for k in C.to_dict(C.L2LConfig())['pcm']}
    assert _names(acc) - ros_own == used | pcm | network | {'seed', 'arm_controller'}
    assert not acc.has_parameter('arm.fpga_port') and not acc.has_parameter('lsg.n_rec')
    network = {f'{s}.{f}' for s in ('trainee', 'lsg', 'task')
               for f in C.to_dict(C.L2LConfig())[s]}
    used = {f'{s}.{k}' for s, keys in ReachController.CONFIG_KEYS.items() for k in keys}
    assert _names(ctl) - ros_own == used | network
    assert not ctl.has_parameter('pcm.g_max') and not ctl.has_parameter('seed')


def test_network_parameters_report_the_checkpoint_values_read_only(nodes) -> None:
    acc, ctl = nodes
    for node in (acc, ctl):
        assert node.get_parameter('trainee.v_th').value == 0.55  # not the file's 0.9
        assert node.describe_parameter('trainee.v_th').read_only
        assert 'checkpoint' in node.describe_parameter('trainee.v_th').description
        assert node.core.cfg.trainee.v_th == 0.55
        res = node.set_parameters([Parameter('trainee.v_th', value=0.7)])[0]
        assert not res.successful and 'read-only' in res.reason
        assert node.get_parameter('trainee.v_th').value == 0.55
    assert ctl.get_parameter('lsg.n_rec').value == 40 == ctl.core.cfg.lsg.n_rec
    assert acc.get_parameter('eprop.eta').value == 2e-4 == acc.core.cfg.eprop.eta
    assert acc.get_parameter('task.learned_joints').value == ['base_joint', 'shoulder']
    # the readout's copies on the crossbar are the checkpoint's too (2, not the file's 3)
    assert acc.get_parameter('pcm.readout_replicas').value == 2
    assert acc.describe_parameter('pcm.readout_replicas').read_only
    assert acc.core.accelerator.crossbar.shape == (250 + 2 * 2, 5 + 250)


@pytest.mark.parametrize(('which', 'name', 'value'), [
    ('acc', 'control.command_rate', 20.0), ('acc', 'pcm.g_max', 20.0), ('acc', 'seed', 7),
    ('acc', 'arm.joints', ['a', 'b']), ('acc', 'control.checkpoint', '/elsewhere'),
    ('ctl', 'control.frame_id', 'camera_link'), ('ctl', 'control.home', [0.1, 0.0, 0.0, 0.0])])
def test_a_change_the_node_cannot_apply_is_refused_with_the_reason(nodes, which, name,
                                                                    value) -> None:
    node = nodes[0] if which == 'acc' else nodes[1]
    before = node.get_parameter(name).value
    res = node.set_parameters([Parameter(name, value=value)])[0]
    assert not res.successful
    assert name in res.reason and 'start-up only' in res.reason
    assert node.get_parameter(name).value == before


def test_a_live_change_is_applied_and_an_invalid_one_refused(nodes) -> None:
    acc, ctl = nodes
    assert all(r.successful for r in acc.set_parameters([
        Parameter('control.settle_time', value=0.25), Parameter('control.queue_size', value=2),
        Parameter('arm.max_velocity', value=0.5)]))
    cc = acc.core.cfg.control
    assert (cc.settle_time, cc.queue_size, acc.core.cfg.arm.max_velocity) == (0.25, 2, 0.5)
    assert acc.core.queue.size == 2
    bad = acc.set_parameters([Parameter('control.velocity_fraction', value=1.5)])[0]
    assert not bad.successful  # above the bound: refused (descriptor range or the core)
    assert acc.core.cfg.control.velocity_fraction == 0.9
    res = ctl.set_parameters([Parameter('control.signal_retry', value=0.5),
                              Parameter('control.reach_tolerance', value=0.05)])
    assert all(r.successful for r in res)
    assert ctl.core.cfg.control.signal_retry == 0.5
    assert ctl.core.planner.cfg.control.reach_tolerance == 0.05
    # rclpy's own parameters are not the node's to refuse
    assert ctl.set_parameters([Parameter('use_sim_time', value=False)])[0].successful
