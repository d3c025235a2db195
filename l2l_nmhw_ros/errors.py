"""Exception hierarchy of the package (ROS-free)."""

from __future__ import annotations


class L2LError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(L2LError, ValueError):
    """A configuration value is unknown, of the wrong type or out of bounds."""


class ShapeError(L2LError, ValueError):
    """An array argument has the wrong shape; the message names argument, expected, actual."""


class SimulationError(L2LError, RuntimeError):
    """A simulation reached an invalid state (NaN in the network state, lost physics client)."""


class CheckpointError(L2LError, ValueError):
    """A checkpoint file is malformed, of another format version or of an incompatible config."""
