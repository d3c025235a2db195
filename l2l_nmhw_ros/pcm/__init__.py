"""PCM in-memory-computing emulator (ROS-free): device statistics, crossbar, updates, state.

- :class:`PCMModel` — differentiable functional model (deploy, quantize, reprogram, mvm) for
  meta-training and trials.
- :mod:`l2l_nmhw_ros.pcm.device` — the device statistics (programming noise, drift, read noise).
"""

from __future__ import annotations

from l2l_nmhw_ros.pcm.model import PCMModel, quantize_delta

__all__ = ['PCMModel', 'quantize_delta']
