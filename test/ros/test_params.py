"""Config dataclasses declared as ROS parameters agree with the YAML and reject bad values."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from l2l_nmhw_ros import config as C  # noqa: E402
from l2l_nmhw_ros.ros.params import declare_config, guard_updates  # noqa: E402


@pytest.fixture
def node(ros_node):
    return ros_node


def test_declared_values_equal_dataclass_defaults(node):
    for prefix, cls in (('pcm', C.PCMConfig), ('arm', C.ArmConfig), ('trainee', C.TraineeConfig)):
        cfg = declare_config(node, cls, prefix)
        assert cfg == cls()
        for key, value in C.to_dict(cfg).items():
            got = node.get_parameter(f'{prefix}.{key}').value
            assert (list(got) if isinstance(got, list | tuple) else got) == value, key


def test_descriptor_carries_unit_and_range(node):
    declare_config(node, C.PCMConfig, 'pcm')
    d = node.describe_parameter('pcm.g_max')
    assert '[µS]' in d.description
    assert d.floating_point_range[0].from_value == pytest.approx(1e-3)
    assert node.describe_parameter('pcm.n_devices').read_only


def test_invalid_runtime_change_is_rejected_with_the_core_message(node):
    declare_config(node, C.ArmConfig, 'arm')
    seen = []
    guard_updates(node, C.ArmConfig, 'arm', seen.append)
    ok = node.set_parameters([Parameter('arm.cmd_timeout', value=0.25)])[0]
    assert ok.successful and seen[-1].cmd_timeout == 0.25
    bad = node.set_parameters([Parameter('arm.fpga_port', value=70000)])[0]
    assert not bad.successful
    assert node.get_parameter('arm.fpga_port').value == 25000
