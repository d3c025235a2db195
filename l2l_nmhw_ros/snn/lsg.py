"""The learning-signal generator (LSG): a software ALIF/LIF network that turns the task (clock +
binary-coded target coordinates) into one learning signal per trainee neuron and step.

Paper code ``model/l2l_trainee_lsg.py`` (natural e-prop, Scherr et al. 2020): 800 neurons, 30 %
ALIF (beta = 1.6, tau_a = 600 ms; the LIF neurons come first, the ALIF neurons last), v_th = 1.3,
tau_m = tau_out = 20 ms, n_ref = 5; 53 inputs (5 clock + 3 x 16 bits); 250 leaky readouts
L^t = kappa L^{t-1} + W_out z^t (no bias). The LSG is not on the crossbar (float, no noise).
"""

from __future__ import annotations

import math

import torch

from l2l_nmhw_ros.config import LSGConfig, TaskConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.fused import LoopParams, fused_recurrent
from l2l_nmhw_ros.snn.neurons import (PAPER, SpikeMode, alif_step, decay_factor, initial_state,
                                      leaky_integrate)
from l2l_nmhw_ros.snn.trainee import no_autapse_mask

__all__ = ['LSGResult', 'alif_beta', 'init_lsg_weights', 'learning_signal_bound', 'lsg_n_in',
           'run_lsg', 'run_lsg_full']

DT = TaskConfig().dt


def lsg_n_in(cfg: LSGConfig, n_clock: int) -> int:
    """Return the LSG input size: clock neurons + 3 coordinates x ``bits_per_coord``."""
    return n_clock + 3 * cfg.bits_per_coord


def alif_beta(cfg: LSGConfig, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return beta per neuron (n_rec,): 0 for the LIF neurons, ``cfg.beta`` for the last
    round(alif_fraction * n_rec) neurons (ALIF)."""
    n_alif = int(round(cfg.alif_fraction * cfg.n_rec))
    beta = torch.zeros(cfg.n_rec, dtype=dtype)
    if n_alif:
        beta[cfg.n_rec - n_alif:] = cfg.beta
    return beta


def init_lsg_weights(cfg: LSGConfig, n_in: int, n_out: int, generator: torch.Generator, *,
                     dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Return the paper code's initial LSG weights.

    W_in ~ N(0, 1)/sqrt(n_in), W_rec ~ N(0, 1)/sqrt(n_rec) (zero diagonal), W_out Glorot-uniform
    times ``cfg.w_out_init_gain``. Keys ``w_in`` (n_rec, n_in), ``w_rec``,
    ``w_out`` (n_out, n_rec).
    """
    n = cfg.n_rec
    w_in = torch.randn(n, n_in, generator=generator, dtype=dtype) / math.sqrt(n_in)
    w_rec = torch.randn(n, n, generator=generator, dtype=dtype) / math.sqrt(n)
    w_rec = w_rec * no_autapse_mask(n, dtype=dtype)
    limit = math.sqrt(6.0 / (n + n_out)) * cfg.w_out_init_gain
    w_out = (torch.rand(n_out, n, generator=generator, dtype=dtype) * 2 - 1) * limit
    return {'w_in': w_in, 'w_rec': w_rec, 'w_out': w_out}


class LSGResult(tuple):
    """(learning_signal (time, batch, n_out), z (time, batch, n_rec)) of one LSG run."""

    __slots__ = ()

    @property
    def learning_signal(self) -> torch.Tensor:  # noqa: D102
        return self[0]

    @property
    def z(self) -> torch.Tensor:  # noqa: D102
        return self[1]


def run_lsg_full(weights: dict[str, torch.Tensor], inputs: torch.Tensor, cfg: LSGConfig, *,
                 dt: float = DT, mode: SpikeMode = PAPER, fused: bool = True) -> LSGResult:
    """Run the LSG and return its learning signals and spikes (see :func:`run_lsg`).

    ``fused`` (default) runs the recurrent loop of the PAPER mode as one autograd node
    (:func:`~l2l_nmhw_ros.snn.fused.fused_recurrent`, same equations and gradients); False, or
    another spike mode, runs the step-by-step autograd loop (the reference it is tested
    against).
    """
    if inputs.ndim != 3:
        raise ShapeError(f'inputs: expected (time, batch, n_in), got {tuple(inputs.shape)}')
    w_in, w_rec, w_out = weights['w_in'], weights['w_rec'], weights['w_out']
    n = w_rec.shape[0]
    if tuple(w_in.shape) != (n, inputs.shape[-1]):
        raise ShapeError(f'lsg w_in: expected ({n}, {inputs.shape[-1]}), got {tuple(w_in.shape)}')
    if w_out.ndim != 2 or w_out.shape[1] != n:
        raise ShapeError(f'lsg w_out: expected (n_out, {n}), got {tuple(w_out.shape)}')
    n_steps, batch, _ = inputs.shape
    alpha = decay_factor(cfg.tau_m, dt)
    kappa = decay_factor(cfg.tau_out, dt)
    rho = decay_factor(cfg.tau_a, dt)
    beta = alif_beta(cfg, dtype=inputs.dtype).to(inputs.device)
    if beta.shape[0] != n:
        raise ShapeError(f'lsg w_rec: {n} neurons but cfg.n_rec = {cfg.n_rec}')
    w_rec_t = (w_rec * no_autapse_mask(n, dtype=w_rec.dtype, device=w_rec.device)).t()
    # (time, batch, n): input currents in one product, split once into views: indexing i_in[t]
    # inside the loop makes the backward pass allocate and zero a full-size gradient per step
    # (~40 % of a paper-preset meta-iteration in a profile); unbind gives the same values.
    if fused and mode is PAPER:
        i_ext = inputs @ w_in.t()
        prm = LoopParams(alpha, cfg.v_th, cfg.n_ref, cfg.dampening_factor, beta=beta, rho=rho)
        z = fused_recurrent(i_ext, w_rec_t.t(), prm, want_v=False)[0]
        return LSGResult((leaky_integrate(z @ w_out.t(), kappa), z))
    i_in = (inputs @ w_in.t()).unbind(0)
    state = initial_state(batch, n, dtype=inputs.dtype, device=inputs.device)
    zs = []
    for t in range(n_steps):
        current = i_in[t] + state.z @ w_rec_t
        state, _ = alif_step(state, current, alpha=alpha, v_th=cfg.v_th, n_ref=cfg.n_ref,
                             gamma=cfg.dampening_factor, beta=beta, rho=rho, mode=mode)
        zs.append(state.z)
    z = torch.stack(zs)
    signal = leaky_integrate(z @ w_out.t(), kappa)
    return LSGResult((signal, z))


def learning_signal_bound(w_out: torch.Tensor, cfg: LSGConfig, *,
                          dt: float = DT) -> torch.Tensor:
    """The largest |learning signal| the LSG can emit, per trainee neuron; shape (n_out,).

    L_j^t = sum_s kappa^(t-s) sum_i w_out[j, i] z_i^s (:func:`run_lsg_full`) with spikes
    z in {0, 1} and, by the refractory counter (:mod:`l2l_nmhw_ros.snn.neurons`), at most one
    spike per neuron in any p = max(1, n_ref) consecutive steps. Hence

        |L_j^t| <= sum_i |w_out[j, i]| * sum_k kappa^(k p) = sum_i |w_out[j, i]| / (1 - kappa^p),

    reached when every neuron of one sign fires at the highest rate in phase. Any larger signal
    cannot come from this LSG: the accelerator refuses it (defence against hostile or corrupted
    messages; see :meth:`l2l_nmhw_ros.reach.accelerator.Accelerator.check_learning_signal`).

    Args:
        w_out: the LSG's readout weights (n_out, n_rec).
        cfg: the LSG section (``tau_out``, ``n_ref``).
        dt: time step [s].

    Raises:
        ShapeError: ``w_out`` is not a matrix.
    """
    if w_out.ndim != 2:
        raise ShapeError(f'lsg w_out: expected (n_out, n_rec), got {tuple(w_out.shape)}')
    kappa = decay_factor(cfg.tau_out, dt)
    period = max(1, int(cfg.n_ref))
    return w_out.abs().sum(dim=1) / (1.0 - kappa ** period)


def run_lsg(weights: dict[str, torch.Tensor], inputs: torch.Tensor, cfg: LSGConfig, *,
            dt: float = DT) -> torch.Tensor:
    """Return the learning signals of the LSG.

    Args:
        weights: ``w_in`` (n_rec, n_in), ``w_rec`` (n_rec, n_rec), ``w_out`` (n_out, n_rec).
        inputs: spikes (time, batch, n_in) = [clock, encode_target(xyz)].
        cfg: LSG configuration.
        dt: time step [s].

    Returns:
        learning_signal (time, batch, n_out), n_out = trainee neurons.

    Raises:
        ShapeError: on inconsistent shapes.
    """
    return run_lsg_full(weights, inputs, cfg, dt=dt).learning_signal
