"""ED-Scorbot arm (ROS-free): kinematics, limits, PyBullet simulation, safety, UDP client."""
