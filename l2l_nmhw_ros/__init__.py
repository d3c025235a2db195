"""l2l_nmhw_ros: learning-to-learn on emulated PCM in-memory computing for robot arms."""

__version__ = '0.1.0'
