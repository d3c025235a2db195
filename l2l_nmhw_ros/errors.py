"""Exception hierarchy of the package (ROS-free)."""

from __future__ import annotations


class L2LError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(L2LError, ValueError):
    """A configuration value is unknown, of the wrong type or out of bounds."""


class ShapeError(L2LError, ValueError):
    """An array argument has the wrong shape; the message names argument, expected, actual."""


class CheckpointError(L2LError, ValueError):
    """A checkpoint file is malformed, of another format version or of an incompatible config."""


class RejectedInput(L2LError, ValueError):
    """A well-formed input whose content is refused (out of the physically possible range, an
    update too large to be safe); nothing was changed."""
