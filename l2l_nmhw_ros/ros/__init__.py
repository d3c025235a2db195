"""ROS 2 adapters: the only subpackage that imports rclpy (nodes, conversions, QoS, launcher)."""
