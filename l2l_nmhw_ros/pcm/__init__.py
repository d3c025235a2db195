"""PCM in-memory-computing emulator (ROS-free): device statistics, crossbar, updates, state.

- :class:`PCMModel` — differentiable functional model (deploy, quantize, reprogram, mvm) for
  meta-training and trials.
- :class:`Crossbar` — stateful emulator of one weight matrix: per-device conductances, drift
  exponents, programming times and counters on 256 × 256 tiles, clocked reads and updates,
  atomic save/load.
- :class:`DeviceModel` (:func:`device_model`) — one device model per preset, the physics both
  of them use (programming noise, jitter, drift, read noise, device counting).
- :mod:`l2l_nmhw_ros.pcm.device` — the device statistics (programming noise, drift, read noise).
- :mod:`l2l_nmhw_ros.pcm.layout` — the trainee's packed (252, 255) matrix (the readout rows on
  ``pcm.readout_replicas`` copies when > 1).
"""

from __future__ import annotations

from l2l_nmhw_ros.pcm.crossbar import FORMAT_VERSION, Crossbar, state_config_hash
from l2l_nmhw_ros.pcm.device_model import DeviceModel, device_model
from l2l_nmhw_ros.pcm.layout import pack_trainee, trainee_mask, unpack_trainee
from l2l_nmhw_ros.pcm.model import PCMModel, quantize_delta

__all__ = ['FORMAT_VERSION', 'Crossbar', 'DeviceModel', 'PCMModel', 'device_model',
           'pack_trainee', 'quantize_delta', 'state_config_hash', 'trainee_mask',
           'unpack_trainee']
