"""QoS profiles used by the nodes (one place)."""

from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

#: Commands and learning signals: reliable, keep the last few.
COMMANDS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)
#: reach_target and the controller's ~/result: reliable, keep-last 100 (publisher AND
#: subscriber), so that a burst of targets (and the answers to it) is not overwritten inside DDS
#: before the executor takes it; the controller's own queue (control.queue_size) then answers
#: every target it cannot keep with a rejected result.
TARGETS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST)
#: joint_states and other streams: reliable (rviz and bags expect it), depth 50.
STATE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                   history=HistoryPolicy.KEEP_LAST)
#: robot_description: latched (transient local), as robot_state_publisher does.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
#: best-effort sensor data.
SENSOR = qos_profile_sensor_data
