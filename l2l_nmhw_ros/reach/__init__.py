"""Graph cores of the reach demo (ROS-free): on-chip learner and accelerator, reach planning
and episodes, playback, the controller handshake, status/result reports. The ROS nodes in
:mod:`l2l_nmhw_ros.ros` are thin adapters over these classes."""
