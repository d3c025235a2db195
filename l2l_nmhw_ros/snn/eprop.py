"""Natural e-prop weight update of the trainee.

Paper code ``model/l2l_trainee_lsg.py::inner_loop``:

    Delta W_in[j, i]  = -eta sum_t L_j^t psi_j^t x_bar_i^t
    Delta W_rec[j, i] = -eta sum_t L_j^t psi_j^t z_bar_i^t      (i != j)

with the learning signals L from the LSG (Scherr et al. 2020, natural e-prop; Bellec et al. 2020,
e-prop). This equals -eta times autograd's gradient of E = sum_t sum_j L_j^t z_j^t with L held
constant and the recurrent spike input and the reset stopped (``run_trial(...,
eprop_truncation=True)``) — tested in ``test/unit/test_snn_eprop.py``.
"""

from __future__ import annotations

import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.trainee import TrialResult, no_autapse_mask

__all__ = ['delta_w']


def delta_w(trial: TrialResult, learning_signal: torch.Tensor,
            eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the natural e-prop updates (Delta W_in, Delta W_rec) of one learning trial.

    Args:
        trial: the learning trial (psi, x_bar, z_bar used), sequences (time, batch, n).
        learning_signal: L (time, batch, n_rec), one signal per trainee neuron and step.
        eta: inner learning rate (paper: 1e-4).

    Returns:
        dw_in (batch, n_rec, n_in) and dw_rec (batch, n_rec, n_rec) with a zero diagonal.
        Differentiable w.r.t. L and the trial (the meta-gradient flows through it).

    Raises:
        ShapeError: if `learning_signal` does not match ``trial.psi``.
    """
    if learning_signal.shape != trial.psi.shape:
        raise ShapeError(f'learning_signal: expected {tuple(trial.psi.shape)}, '
                         f'got {tuple(learning_signal.shape)}')
    lpsi = learning_signal * trial.psi
    dw_in = -eta * torch.einsum('tbj,tbi->bji', lpsi, trial.x_bar)
    dw_rec = -eta * torch.einsum('tbj,tbi->bji', lpsi, trial.z_bar)
    n = dw_rec.shape[-1]
    dw_rec = dw_rec * no_autapse_mask(n, dtype=dw_rec.dtype, device=dw_rec.device)
    return dw_in, dw_rec
