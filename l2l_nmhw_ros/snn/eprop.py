"""Natural e-prop weight update of the trainee.

Paper code ``model/l2l_trainee_lsg.py::inner_loop``:

    Delta W_in[j, i]  = -eta sum_t L_j^t psi_j^t x_bar_i^t
    Delta W_rec[j, i] = -eta sum_t L_j^t psi_j^t z_bar_i^t      (i != j)

with the learning signals L from the LSG (Scherr et al. 2020, natural e-prop; Bellec et al. 2020,
e-prop). This equals -eta times autograd's gradient of E = sum_t sum_j L_j^t z_j^t with L held
constant and the recurrent spike input and the reset stopped (``run_trial(...,
eprop_truncation=True)``) — tested in ``test/unit/test_snn_eprop.py``.

Optionally (``eprop.update_w_out``, not in the paper) the readout learns too, with e-prop's
readout rule (Bellec et al. 2020: Delta W_out[k, j] = -eta sum_t (y_k - y*_k) z_hat_j^t):

    Delta W_out[k, j] = -eta_out sum_t L_out_k^t z_hat_j^t
    z_hat_j^t = kappa z_hat_j^(t-1) + z_j^t      (the spikes filtered like the leaky readout)

with kappa = exp(-dt / tau_out), and L_out either n_out further learning signals of the LSG
(``eprop.readout_signal = lsg``) or the output error y - y* against the demonstration itself
(``error``, formed by :func:`l2l_nmhw_ros.l2l.inner.readout_error`); tested in
``test/unit/test_eprop_readout.py``.
"""

from __future__ import annotations

import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.neurons import leaky_integrate
from l2l_nmhw_ros.snn.trainee import TrialResult, no_autapse_mask

__all__ = ['delta_w', 'delta_w_out']


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


def delta_w_out(trial: TrialResult, signal_out: torch.Tensor, eta_out: float,
                kappa: float) -> torch.Tensor:
    """Return the readout update Delta W_out = -eta_out sum_t L_out^t z_hat^t of one trial.

    Args:
        trial: the learning trial (``z`` used), sequences (time, batch, n_rec).
        signal_out: L_out (time, batch, n_out), one learning signal per readout and step (the
            LSG's last n_out outputs; e-prop: the output error y - y*).
        eta_out: readout learning rate (``eprop.eta_out``).
        kappa: the readout's decay per step, exp(-dt / tau_out) (paper: e^(-1/20)).

    Returns:
        dw_out (batch, n_out, n_rec), differentiable w.r.t. L_out and the spikes.

    Raises:
        ShapeError: `signal_out` is not (time, batch, n_out) for the trial's time and batch.
    """
    t, b, _ = trial.z.shape
    if signal_out.ndim != 3 or tuple(signal_out.shape[:2]) != (t, b):
        raise ShapeError(f'signal_out: expected ({t}, {b}, n_out), got {tuple(signal_out.shape)}')
    z_hat = leaky_integrate(trial.z, kappa)
    return -eta_out * torch.einsum('tbk,tbj->bkj', signal_out, z_hat)
