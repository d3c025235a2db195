"""PCM in-memory-computing emulator (ROS-free): device statistics, crossbar, updates, state."""
