"""Placement of the trainee's three weight matrices in one crossbar matrix.

The accelerator packs the whole trainee in ONE (n_rec + n_out, n_in + n_rec) = (252, 255) matrix,
which fits a single 256 × 256 tile:

.. code-block:: text

                 n_in (5)   n_rec (250)
    n_rec (250) [ w_in    |   w_rec   ]     rows = postsynaptic neurons
    n_out (2)   [ 0       |   w_out   ]     rows = readouts

The zero block holds unused devices (RESET, 0 µS). One MVM with the packed matrix and the input
[x_t | z_{t−1}] gives the recurrent input current of every neuron; the readout rows need
[· | z_t] (the spikes of the same step), so the trainee runner reads them with a second MVM or
with ``w_out`` from :func:`unpack_trainee` (paper code: y_t = κ y_{t−1} + W_out z_t).

Works for torch tensors and numpy arrays, with batch dims in front.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.config import TraineeConfig
from l2l_nmhw_ros.errors import ShapeError

__all__ = ['pack_trainee', 'trainee_mask', 'unpack_trainee']


def _shape(name: str, w: Any) -> tuple[int, ...]:
    if not isinstance(w, (torch.Tensor, np.ndarray)):
        raise ValueError(f'{name}: expected a torch.Tensor or numpy array, got {type(w).__name__}')
    if w.ndim < 2:
        raise ShapeError(f'{name}: expected (..., n_post, n_pre), got shape {tuple(w.shape)}')
    return tuple(w.shape)


def pack_trainee(w_in: Any, w_rec: Any, w_out: Any) -> Any:
    """Pack (w_in, w_rec, w_out) into one (n_rec + n_out, n_in + n_rec) matrix.

    Args:
        w_in: input weights [1], shape (..., n_rec, n_in).
        w_rec: recurrent weights [1], shape (..., n_rec, n_rec).
        w_out: readout weights [1], shape (..., n_out, n_rec).

    Returns:
        The packed matrix, same type, dtype and batch dims: rows 0..n_rec−1 = [w_in | w_rec],
        rows n_rec.. = [0 | w_out].

    Raises:
        ValueError: not tensors/arrays, or a mix of both.
        ShapeError: inconsistent shapes (the message names the argument).
    """
    s_in, s_rec, s_out = _shape('w_in', w_in), _shape('w_rec', w_rec), _shape('w_out', w_out)
    if len({type(w_in), type(w_rec), type(w_out)}) != 1:
        raise ValueError('w_in, w_rec, w_out: all torch tensors or all numpy arrays')
    n_rec = s_rec[-1]
    if s_rec[-2] != n_rec:
        raise ShapeError(f'w_rec: expected (..., n_rec, n_rec), got {s_rec}')
    if s_in[-2] != n_rec:
        raise ShapeError(f'w_in: expected (..., {n_rec}, n_in), got {s_in}')
    if s_out[-1] != n_rec:
        raise ShapeError(f'w_out: expected (..., n_out, {n_rec}), got {s_out}')
    if not (s_in[:-2] == s_rec[:-2] == s_out[:-2]):
        raise ShapeError(f'w_in, w_rec, w_out: batch dims differ ({s_in[:-2]}, {s_rec[:-2]}, '
                         f'{s_out[:-2]})')
    n_in, n_out = s_in[-1], s_out[-2]
    if isinstance(w_rec, torch.Tensor):
        zeros = torch.zeros(s_out[:-2] + (n_out, n_in), dtype=w_rec.dtype, device=w_rec.device)
        top = torch.cat([w_in, w_rec], dim=-1)
        return torch.cat([top, torch.cat([zeros, w_out], dim=-1)], dim=-2)
    zeros_np = np.zeros(s_out[:-2] + (n_out, n_in), dtype=w_rec.dtype)
    top_np = np.concatenate([w_in, w_rec], axis=-1)
    return np.concatenate([top_np, np.concatenate([zeros_np, w_out], axis=-1)], axis=-2)


def unpack_trainee(w: Any, n_in: int | None = None) -> tuple[Any, Any, Any]:
    """Split a packed matrix back into (w_in, w_rec, w_out) (views where possible).

    Args:
        w: packed matrix [1], shape (..., n_rec + n_out, n_in + n_rec).
        n_in: input count (default: ``TraineeConfig.n_in``, 5); n_rec and n_out follow.

    Returns:
        (w_in (..., n_rec, n_in), w_rec (..., n_rec, n_rec), w_out (..., n_out, n_rec)).

    Raises:
        ShapeError: the shape does not fit ``n_in``.
    """
    shape = _shape('w', w)
    if n_in is None:
        n_in = TraineeConfig().n_in
    n_post, n_pre = shape[-2:]
    n_rec = n_pre - n_in
    n_out = n_post - n_rec
    if n_rec < 1 or n_out < 0:
        raise ShapeError(f'w: shape {shape} does not fit n_in = {n_in} (expected '
                         '(..., n_rec + n_out, n_in + n_rec))')
    return w[..., :n_rec, :n_in], w[..., :n_rec, n_in:], w[..., n_rec:, n_in:]


def trainee_mask(n_in: int, n_rec: int, n_out: int) -> torch.Tensor:
    """Return the bool (n_rec + n_out, n_in + n_rec) mask of the devices the trainee uses
    (False on the zero block and on the w_rec diagonal, whose self-connections are masked)."""
    mask = torch.ones(n_rec + n_out, n_in + n_rec, dtype=torch.bool)
    mask[n_rec:, :n_in] = False
    idx = torch.arange(n_rec)
    mask[idx, n_in + idx] = False
    return mask
