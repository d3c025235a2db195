"""The shipped rviz configurations against the graph that actually runs.

rviz2 is not on PyPI, so the check reads the ``.rviz`` files and asks the live graph (the real
``arm_sim``, ``snn_controller`` and ``pcm_accelerator`` nodes in-process, random checkpoint):
every topic a display subscribes is published, with the message type the display reads and a
QoS its subscription matches (reliability and durability: a volatile publisher would leave a
Transient Local display empty); the "Publish Point" tool sends ``PointStamped`` to the topic
the controller listens on under the launch file's defaults (so the README's
``ros2 launch l2l_nmhw_ros reach.launch.yaml rviz:=true`` works as written), with a QoS the
controller's subscription accepts; the fixed frame is the URDF's root and the controller's
target frame; the marker namespaces are the controller's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

rclpy = pytest.importorskip('rclpy')

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy,  # noqa: E402
                       QoSProfile, ReliabilityPolicy)

from l2l_nmhw_ros.viewer.robot_model import RobotModel  # noqa: E402

from ._graph_helpers import new_context, spin_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: rviz display / tool class -> the message type it reads or sends
MESSAGE_OF = {'rviz_default_plugins/RobotModel': 'std_msgs/msg/String',
              'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
              'rviz_default_plugins/PointStamped': 'geometry_msgs/msg/PointStamped',
              'rviz_default_plugins/PublishPoint': 'geometry_msgs/msg/PointStamped'}


def _qos(props: dict[str, Any]) -> QoSProfile:
    """The QoS of an rviz topic property (rviz's defaults where a field is absent: reliable,
    volatile, keep last 5; liveliness automatic, what the system default is in Fast DDS)."""
    rel = {'Reliable': ReliabilityPolicy.RELIABLE, 'Best Effort': ReliabilityPolicy.BEST_EFFORT}
    dur = {'Volatile': DurabilityPolicy.VOLATILE,
           'Transient Local': DurabilityPolicy.TRANSIENT_LOCAL}
    return QoSProfile(depth=int(props.get('Depth', 5)), history=HistoryPolicy.KEEP_LAST,
                      reliability=rel[props.get('Reliability Policy', 'Reliable')],
                      durability=dur[props.get('Durability Policy', 'Volatile')],
                      liveliness=LivelinessPolicy.AUTOMATIC)


def compatible(pub: QoSProfile, sub: QoSProfile) -> str:
    """'' when a publisher with QoS ``pub`` reaches a subscription with ``sub`` (reliability and
    durability, the policies these topics set: a reliable subscription needs a reliable
    publisher, a transient-local one a transient-local publisher), else the reason."""
    if sub.reliability == ReliabilityPolicy.RELIABLE and \
            pub.reliability != ReliabilityPolicy.RELIABLE:
        return f'subscription reliable, publisher {pub.reliability.name}'
    if sub.durability == DurabilityPolicy.TRANSIENT_LOCAL and \
            pub.durability != DurabilityPolicy.TRANSIENT_LOCAL:
        return f'subscription transient local, publisher {pub.durability.name}'
    return ''


def rviz_topics(path: Path) -> list[dict[str, Any]]:
    """Every topic of the file's displays and tools: class, topic, QoS, direction."""
    cfg = yaml.safe_load(path.read_text(encoding='utf-8'))
    vm = cfg['Visualization Manager']
    out = []
    for d in vm['Displays']:
        for key in ('Topic', 'Description Topic'):
            if key in d and d.get('Enabled', True):
                out.append({'class': d['Class'], 'topic': d[key]['Value'], 'qos': _qos(d[key]),
                            'dir': 'sub', 'display': d})
    for t in vm.get('Tools', []):
        if t['Class'] == 'rviz_default_plugins/PublishPoint':
            props = t.get('Topic', {'Value': '/clicked_point'})
            out.append({'class': t['Class'], 'topic': props['Value'], 'qos': _qos(props),
                        'dir': 'pub', 'display': t})
    return out


@pytest.fixture(scope='module')
def live_graph(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    from l2l_nmhw_ros.ros.arm_sim_node import ArmSimNode
    from l2l_nmhw_ros.ros.pcm_accelerator_node import PcmAcceleratorNode
    from l2l_nmhw_ros.ros.snn_controller_node import SnnControllerNode

    ctx = new_context()
    state = tmp_path_factory.mktemp('rviz') / 'pcm_state.safetensors'
    params = [Parameter('control.checkpoint', value=str(random_checkpoint)),
              Parameter('control.state_file', value=str(state))]
    nodes = [ArmSimNode(context=ctx), PcmAcceleratorNode(context=ctx, parameter_overrides=params),
             SnnControllerNode(context=ctx, parameter_overrides=params)]
    probe = rclpy.create_node('rviz_probe', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    for n in (*nodes, probe):
        ex.add_node(n)
    spin_until(ex, lambda: {'arm_sim', 'pcm_accelerator', 'snn_controller'}
               <= set(probe.get_node_names()), 20.0, 'nodes on the graph')
    yield probe, nodes
    ex.shutdown()
    for n in (*nodes, probe):
        n.destroy_node()
    ctx.try_shutdown()


@pytest.mark.parametrize('name', ['l2l_nmhw.rviz', 'view_arm.rviz'])
def test_every_display_topic_is_published_with_its_type_and_a_matching_qos(
        live_graph, name: str) -> None:
    probe, _ = live_graph
    topics = [t for t in rviz_topics(ROOT / 'config' / name) if t['dir'] == 'sub']
    assert {t['class'] for t in topics} >= {'rviz_default_plugins/RobotModel'}
    for t in topics:
        pubs = probe.get_publishers_info_by_topic(t['topic'])
        assert pubs, f"{name}: nothing publishes {t['topic']} ({t['class']})"
        want = MESSAGE_OF[t['class']]
        ok = [p for p in pubs if p.topic_type == want]
        assert ok, f"{name}: {t['topic']} is {[p.topic_type for p in pubs]}, display reads {want}"
        for p in ok:
            why = compatible(p.qos_profile, t['qos'])
            assert not why, f"{name}: {t['topic']} from {p.node_name}: {why}"


def test_publish_point_reaches_the_controller_as_the_readme_launches_it(live_graph) -> None:
    """rviz:=true with every other argument at its default (the README's command line)."""
    from l2l_nmhw_ros.ros.tools.launch_file import load_launch_file

    probe, _ = live_graph
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    line = next(ln for ln in readme.splitlines() if ln.startswith('ros2 launch l2l_nmhw_ros'))
    args = dict(re.findall(r'(\w+):=(\S+)', line.split('#')[0]))
    assert args == {'rviz': 'true'}, line
    desc = load_launch_file(ROOT / 'launch' / 'reach.launch.yaml', args)
    labels = [n.label for n in desc.nodes]
    assert {'rviz2', 'robot_state_publisher', 'snn_controller'} <= set(labels)
    ctl = next(n for n in desc.nodes if n.label == 'snn_controller')
    remap = dict(ctl.remaps)
    target_topic = '/' + remap.get('reach_target', 'reach_target').lstrip('/')
    tool = next(t for t in rviz_topics(ROOT / 'config' / 'l2l_nmhw.rviz') if t['dir'] == 'pub')
    assert tool['topic'] == target_topic, (tool['topic'], target_topic)
    subs = [s for s in probe.get_subscriptions_info_by_topic(target_topic)
            if s.node_name == 'snn_controller']
    assert subs, f'snn_controller does not subscribe {target_topic}'
    assert subs[0].topic_type == MESSAGE_OF[tool['class']]
    assert not compatible(tool['qos'], subs[0].qos_profile)


def test_fixed_frame_and_marker_namespaces(live_graph) -> None:
    from l2l_nmhw_ros.ros.convert import MARKER_COLORS

    _, nodes = live_graph
    ctl = nodes[2]
    urdf = (ROOT / 'urdf' / 'ed_scorbot.urdf').read_text(encoding='utf-8')
    root = RobotModel(urdf).root
    for name in ('l2l_nmhw.rviz', 'view_arm.rviz'):
        cfg = yaml.safe_load((ROOT / 'config' / name).read_text(encoding='utf-8'))
        assert cfg['Visualization Manager']['Global Options']['Fixed Frame'] == root
    assert ctl.get_parameter('control.frame_id').value in ('', root)
    cfg = yaml.safe_load((ROOT / 'config' / 'l2l_nmhw.rviz').read_text(encoding='utf-8'))
    markers = next(d for d in cfg['Visualization Manager']['Displays']
                   if d['Class'] == 'rviz_default_plugins/MarkerArray')
    assert set(markers['Namespaces']) == set(MARKER_COLORS)


def test_compatibility_check_refuses_what_rviz_would_not_receive() -> None:
    latched = _qos({'Durability Policy': 'Transient Local'})
    volatile_pub = QoSProfile(depth=1, durability=DurabilityPolicy.VOLATILE)
    assert 'transient local' in compatible(volatile_pub, latched)
    best_effort_pub = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    assert 'reliable' in compatible(best_effort_pub, _qos({}))
    assert compatible(latched, latched) == ''
