"""MCAP episode bags: schemas in rosbag2's ros2msg layout, raw CDR, read back with mcap_ros2."""

from __future__ import annotations

from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from ._graph_helpers import spin_until  # noqa: E402
from l2l_nmhw_ros.ros.tools.bag import (BagRecorder, McapBag, message_definition,  # noqa: E402
                                  type_name_of)



def read_ros2_messages(path: str) -> list:
    """Decoded messages of a bag, as Foxglove reads them (schema + CDR)."""
    with open(path, 'rb') as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        return [m for m in reader.iter_decoded_messages()]


TYPES = [JointState, Float32MultiArray, Float64MultiArray, DiagnosticArray, JointTrajectory,
         MarkerArray, PointStamped]


def test_definition_of_joint_state_lists_its_dependencies_once() -> None:
    text = message_definition('sensor_msgs/msg/JointState')
    assert text.startswith('# This is a message that holds data')
    assert text.count('MSG: ') == 2  # std_msgs/Header -> builtin_interfaces/Time
    assert '\nMSG: std_msgs/Header\n' in text
    assert '\nMSG: builtin_interfaces/Time\n' in text
    assert text.count('MSG: builtin_interfaces/Time') == 1
    assert 'float64[] position' in text


def test_every_recorded_type_round_trips_through_its_schema(tmp_path: Path) -> None:
    layout_dims = [MultiArrayDimension(label='time', size=2, stride=6),
                   MultiArrayDimension(label='neuron', size=3, stride=3)]
    msgs = {
        'joint_states': JointState(name=['base_joint', 'shoulder'], position=[0.1, -0.2]),
        'learning_signal': Float32MultiArray(data=[0.5, 1.5, -2.0, 0.0, 1.0, 2.0]),
        'commands': Float64MultiArray(data=[0.25, 0.5, 0.0, 0.0]),
        'result': DiagnosticArray(status=[DiagnosticStatus(
            level=DiagnosticStatus.OK, name='episode', values=[KeyValue(key='k', value='v')])]),
        'demonstration': JointTrajectory(joint_names=['a'], points=[
            JointTrajectoryPoint(positions=[1.0])]),
        'markers': MarkerArray(markers=[Marker(ns='target', id=3)]),
        'target': PointStamped(),
    }
    msgs['learning_signal'].layout.dim = layout_dims
    msgs['target'].point.x = 0.7
    msgs['joint_states'].header.stamp.sec = 12
    bag = McapBag(tmp_path / 'b.mcap')
    for i, (topic, msg) in enumerate(msgs.items()):
        bag.add_topic('/' + topic, type_name_of(type(msg)))
        bag.write('/' + topic, serialize_message(msg), log_time_ns=1000 + i)
    bag.close()
    got = {c.topic: (s, c, m, r) for s, c, m, r in read_ros2_messages(str(tmp_path / 'b.mcap'))}
    assert set(got) == {'/' + t for t in msgs}
    assert got['/joint_states'][0].name == 'sensor_msgs/msg/JointState'
    assert got['/joint_states'][0].encoding == 'ros2msg'
    assert got['/joint_states'][1].message_encoding == 'cdr'
    assert 'offered_qos_profiles' in got['/joint_states'][1].metadata
    assert list(got['/joint_states'][3].position) == [0.1, -0.2]
    assert got['/joint_states'][3].header.stamp.sec == 12
    ls = got['/learning_signal'][3]
    assert [d.label for d in ls.layout.dim] == ['time', 'neuron']
    assert list(ls.data) == [0.5, 1.5, -2.0, 0.0, 1.0, 2.0]
    assert got['/result'][3].status[0].values[0].value == 'v'
    assert got['/markers'][3].markers[0].id == 3
    assert got['/target'][3].point.x == 0.7
    assert got['/commands'][2].log_time == 1002
    with open(tmp_path / 'b.mcap', 'rb') as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        assert reader.get_summary().statistics.message_count == len(msgs)


def test_recorder_writes_what_was_published(tmp_path: Path, ros_context) -> None:
    talker = rclpy.create_node('bag_talker', context=ros_context)
    rec_node = rclpy.create_node('bag_recorder', context=ros_context)
    rec = BagRecorder(rec_node, tmp_path / 'live.mcap', {'joint_states': JointState,
                                                         'arm_controller/commands':
                                                         Float64MultiArray})
    pub_js = talker.create_publisher(JointState, 'joint_states', 10)
    pub_cmd = talker.create_publisher(Float64MultiArray, 'arm_controller/commands', 10)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(talker)
    ex.add_node(rec_node)
    spin_until(ex, lambda: pub_js.get_subscription_count() and
               pub_cmd.get_subscription_count(), 10.0, 'recorder matched')
    for k in range(3):
        pub_js.publish(JointState(name=['base_joint'], position=[float(k)]))
    pub_cmd.publish(Float64MultiArray(data=[1.0, 2.0, 3.0, 4.0]))
    spin_until(ex, lambda: rec.counts.get('/joint_states', 0) == 3 and
               rec.counts.get('/arm_controller/commands', 0) == 1, 10.0, 'recorded')
    rec.close()
    got = [(c.topic, r) for _, c, _, r in read_ros2_messages(str(tmp_path / 'live.mcap'))]
    assert [list(m.position) for t, m in got if t == '/joint_states'] == [[0.0], [1.0], [2.0]]
    assert [list(m.data) for t, m in got if t == '/arm_controller/commands'] == [
        [1.0, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize('msg_type', TYPES, ids=lambda t: t.__name__)
def test_schema_text_parses_for_foxglove_and_mcap_ros2(msg_type: type) -> None:
    from mcap_ros2._dynamic import generate_dynamic

    name = type_name_of(msg_type)
    decoders = generate_dynamic(name, message_definition(name))
    assert name in decoders or name.replace('/msg/', '/') in decoders
