"""Tools over the graph, apart from the nodes: the launcher and launch-file reader, the bag
writer, the demo and its client, and ``l2l-nmhw reach``. They use rclpy (this is the ROS layer)
but are not nodes of the graph."""
