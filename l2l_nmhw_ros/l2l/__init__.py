"""Learning-to-learn (ROS-free): task families, inner loop, meta-training, checkpoints."""
