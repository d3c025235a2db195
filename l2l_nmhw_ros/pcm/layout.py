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

Readout replicas (``pcm.readout_replicas`` = R > 1): every readout row is stored R times, rows
n_rec + r·n_out + j (r = 0..R−1, readout j), a (n_rec + R·n_out, n_in + n_rec) matrix (R = 4:
262 rows, the last 6 on a second row of tiles). Each copy is programmed, drifts and has its update
rounded on its own; the readout is the digital average of the R copies' outputs, so the
independent programming noise, drift and rounding of one readout weight shrink by √R (a
multi-memristive synapse, Boybat et al., Nat. Commun. 9, 2514 (2018)). The paper code has R = 1.

Works for torch tensors and numpy arrays, with batch dims in front.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.config import TraineeConfig
from l2l_nmhw_ros.errors import ShapeError

__all__ = ['average_replicas', 'check_replicas', 'pack_trainee', 'trainee_mask', 'unpack_trainee']


def _shape(name: str, w: Any) -> tuple[int, ...]:
    if not isinstance(w, (torch.Tensor, np.ndarray)):
        raise ValueError(f'{name}: expected a torch.Tensor or numpy array, got {type(w).__name__}')
    if w.ndim < 2:
        raise ShapeError(f'{name}: expected (..., n_post, n_pre), got shape {tuple(w.shape)}')
    return tuple(w.shape)


def pack_trainee(w_in: Any, w_rec: Any, w_out: Any, replicas: int = 1) -> Any:
    """Pack (w_in, w_rec, w_out) into one (n_rec + replicas·n_out, n_in + n_rec) matrix.

    Args:
        w_in: input weights [1], shape (..., n_rec, n_in).
        w_rec: recurrent weights [1], shape (..., n_rec, n_rec).
        w_out: readout weights [1], shape (..., n_out, n_rec).
        replicas: copies of the readout rows (``pcm.readout_replicas``, module docstring).

    Returns:
        The packed matrix, same type, dtype and batch dims: rows 0..n_rec−1 = [w_in | w_rec],
        rows n_rec + r·n_out .. n_rec + (r+1)·n_out − 1 = [0 | w_out] for every replica r.

    Raises:
        ValueError: not tensors/arrays, or a mix of both; replicas < 1.
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
    check_replicas(replicas)
    n_in, n_out = s_in[-1], s_out[-2]
    if isinstance(w_rec, torch.Tensor):
        zeros = torch.zeros(s_out[:-2] + (n_out, n_in), dtype=w_rec.dtype, device=w_rec.device)
        top = torch.cat([w_in, w_rec], dim=-1)
        bottom = torch.cat([zeros, w_out], dim=-1)
        return torch.cat([top] + [bottom] * replicas, dim=-2)
    zeros_np = np.zeros(s_out[:-2] + (n_out, n_in), dtype=w_rec.dtype)
    top_np = np.concatenate([w_in, w_rec], axis=-1)
    bottom_np = np.concatenate([zeros_np, w_out], axis=-1)
    return np.concatenate([top_np] + [bottom_np] * replicas, axis=-2)


def check_replicas(replicas: int) -> None:
    """Raise ValueError unless `replicas` (copies of the readout rows) is an int >= 1."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f'replicas: expected an int >= 1, got {replicas!r}')


def average_replicas(rows: Any, replicas: int) -> Any:
    """Average the replica blocks of readout rows: (..., replicas·n_out, k) -> (..., n_out, k).

    The digital periphery's average of the R copies of every readout (module docstring); for
    R = 1 `rows` itself.

    Raises:
        ValueError: replicas < 1.
        ShapeError: the row count is not a multiple of `replicas`.
    """
    check_replicas(replicas)
    if replicas == 1:
        return rows
    *batch, n_rows, k = rows.shape
    if n_rows % replicas:
        raise ShapeError(f'readout rows: {n_rows} rows are not {replicas} replicas of equal size')
    return rows.reshape(*batch, replicas, n_rows // replicas, k).mean(-3)


def unpack_trainee(w: Any, n_in: int | None = None, replicas: int = 1
                   ) -> tuple[Any, Any, Any]:
    """Split a packed matrix back into (w_in, w_rec, w_out) (views where possible).

    Args:
        w: packed matrix [1], shape (..., n_rec + replicas·n_out, n_in + n_rec).
        n_in: input count (default: ``TraineeConfig.n_in``, 5); n_rec and n_out follow.
        replicas: copies of the readout rows; w_out is their average (a new array when > 1).

    Returns:
        (w_in (..., n_rec, n_in), w_rec (..., n_rec, n_rec), w_out (..., n_out, n_rec)).

    Raises:
        ValueError: replicas < 1.
        ShapeError: the shape does not fit ``n_in`` and ``replicas``.
    """
    shape = _shape('w', w)
    check_replicas(replicas)
    if n_in is None:
        n_in = TraineeConfig().n_in
    n_post, n_pre = shape[-2:]
    n_rec = n_pre - n_in
    n_rows = n_post - n_rec
    if n_rec < 1 or n_rows < 0 or n_rows % replicas:
        raise ShapeError(f'w: shape {shape} does not fit n_in = {n_in}, {replicas} readout '
                         'replica(s) (expected (..., n_rec + replicas·n_out, n_in + n_rec))')
    return (w[..., :n_rec, :n_in], w[..., :n_rec, n_in:],
            average_replicas(w[..., n_rec:, n_in:], replicas))


def trainee_mask(n_in: int, n_rec: int, n_out: int, replicas: int = 1) -> torch.Tensor:
    """Return the bool (n_rec + replicas·n_out, n_in + n_rec) mask of the devices the trainee
    uses (False on the zero block and on the w_rec diagonal, whose self-connections are masked)."""
    check_replicas(replicas)
    mask = torch.ones(n_rec + replicas * n_out, n_in + n_rec, dtype=torch.bool)
    mask[n_rec:, :n_in] = False
    idx = torch.arange(n_rec)
    mask[idx, n_in + idx] = False
    return mask
