"""Spiking networks (ROS-free): LIF/ALIF dynamics, trainee, learning-signal generator, e-prop."""
