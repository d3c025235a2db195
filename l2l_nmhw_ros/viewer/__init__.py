"""The live 3D web view of the reach graph (ROS-free): the URDF's link poses from joint
positions (:mod:`.robot_model`) and the scene served by viser (:mod:`.scene`).

The ROS adapter is :mod:`l2l_nmhw_ros.ros.web_viewer_node`.
"""
