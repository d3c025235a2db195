"""Argument checks shared by the PCM modules (ValueError / ShapeError naming the argument)."""

from __future__ import annotations

import math

import torch

from l2l_nmhw_ros.errors import ShapeError


def check_tensor(name: str, x: object, *, min_dim: int = 0, finite: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor with at least ``min_dim`` dims (and finite).

    Raises:
        ValueError: not a floating-point torch tensor, or non-finite values (``finite``).
        ShapeError: fewer than ``min_dim`` dimensions.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f'{name}: expected a torch.Tensor, got {type(x).__name__}')
    if not x.is_floating_point():
        raise ValueError(f'{name}: expected a floating-point tensor, got dtype {x.dtype}')
    if x.dim() < min_dim:
        raise ShapeError(f'{name}: expected at least {min_dim} dimensions, got shape '
                         f'{tuple(x.shape)}')
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f'{name}: contains NaN or inf')
    return x


def check_time(name: str, t: object) -> float:
    """Return ``t`` [s] as a finite float.

    Raises:
        ValueError: not a real number or not finite.
    """
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise ValueError(f'{name}: expected a scalar time [s], got shape {tuple(t.shape)}')
        t = t.item()
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ValueError(f'{name}: expected a time in s (float), got {type(t).__name__}')
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(f'{name}: must be finite, got {t!r} [s]')
    return t


def broadcast_batch(name_a: str, a: torch.Size, name_b: str, b: torch.Size) -> torch.Size:
    """Return the broadcast of two batch shapes or raise ShapeError naming both arguments."""
    try:
        return torch.broadcast_shapes(a, b)
    except RuntimeError as exc:
        raise ShapeError(f'{name_a} batch shape {tuple(a)} and {name_b} batch shape {tuple(b)} '
                         'do not broadcast') from exc
