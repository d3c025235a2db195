"""LIF and ALIF neuron dynamics in discrete time (dt = 1 step), as in the paper's code.

Equations (Ortner et al. 2025, official code ``functional/lif.py``, ``module/rsnn_cell.py``,
``module/lsnn_cell.py``; Bellec et al. 2020 for ALIF), for neuron j at step t:

    b_j^t = rho b_j^{t-1} + z_j^{t-1}                       (ALIF adaptation; LIF: beta_j = 0)
    A_j^t = v_th + beta_j b_j^t                             (effective threshold)
    v_j^t = alpha v_j^{t-1} + I_j^t - A_j^t z_j^{t-1}       (reset by subtraction)
    z_j^t = H((v_j^t - A_j^t) / v_th) * [r_j^{t-1} <= 0.1]  (no spike while refractory)
    r_j^t = clip(r_j^{t-1} + n_ref z_j^t - 1, 0, n_ref)     (refractory counter)
    psi_j^t = gamma / v_th * max(0, 1 - |(v_j^t - A_j^t) / v_th|) * [not refractory]

with alpha = exp(-dt / tau_m), rho = exp(-dt / tau_a), gamma = ``dampening_factor`` (0.3).

Gradients: the spike's derivative d z / d v is the pseudo-derivative psi (straight surrogate,
:class:`SpikeFunction`); the refractory mask and counter carry no gradient; the reset term uses a
detached z (stop-gradient, as the e-prop reference code does); psi is a constant for the
meta-gradient (stop-gradient: the meta-gradient reaches Delta W through the learning signals,
the traces x_bar / z_bar and, via the spikes, the test trial; a run that let it through psi's
piecewise-linear kinks destabilised meta-training, see docs/learning.md); the adaptation b
keeps its gradient (BPTT through the ALIF threshold).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

# Refractory test of the paper code: a neuron is refractory while its counter exceeds this.
REFRACTORY_EPS = 0.1


def decay_factor(tau: float, dt: float) -> float:
    """Return exp(-dt / tau) (alpha, kappa or rho) for `tau` [s] and the step `dt` [s]."""
    if tau <= 0 or dt <= 0:
        raise ValueError(f'tau and dt must be positive, got tau={tau}, dt={dt}')
    return math.exp(-dt / tau)


class SpikeFunction(torch.autograd.Function):
    """Heaviside step of the scaled membrane potential with a triangular surrogate derivative.

    Forward: z = H(v_scaled), v_scaled = (v - A) / v_th. Backward: dz/dv_scaled =
    gamma * max(0, 1 - |v_scaled|), so that dz/dv = psi (the chain rule adds 1 / v_th).
    """

    @staticmethod
    def forward(ctx, v_scaled: torch.Tensor, gamma: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(v_scaled)
        ctx.gamma = gamma
        return (v_scaled > 0).to(v_scaled.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        (v_scaled,) = ctx.saved_tensors
        return grad * ctx.gamma * torch.clamp(1.0 - v_scaled.abs(), min=0.0), None


spike_function = SpikeFunction.apply


class NeuronState(NamedTuple):
    """Per-step state of a LIF/ALIF population, each (batch, n).

    Fields: v membrane potential, z spikes of the last step, r refractory counter [steps],
    b threshold adaptation (zeros for LIF).
    """

    v: torch.Tensor
    z: torch.Tensor
    r: torch.Tensor
    b: torch.Tensor


def initial_state(batch: int, n: int, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> NeuronState:
    """Return the all-zero state (rest) of `n` neurons for `batch` trials."""
    zeros = torch.zeros(batch, n, dtype=dtype, device=device)
    return NeuronState(zeros, zeros, zeros, zeros)


class SpikeMode(NamedTuple):
    """How spikes are made: ``spike_fn(v_scaled, gamma)`` and whether the reset is detached.

    :data:`PAPER` (Heaviside with the pseudo-derivative, reset detached) is the model. ``smooth``
    modes exist for gradient checks only: a sigmoid spike and an attached reset make the whole
    forward pass differentiable, so autograd can be compared with finite differences.
    """

    spike_fn: Callable[[torch.Tensor, float], torch.Tensor]
    detach_reset: bool
    detach_psi: bool


PAPER = SpikeMode(lambda v, g: spike_function(v, g), True, True)


def smooth_mode(width: float = 0.2) -> SpikeMode:
    """Return a test-only :class:`SpikeMode`: z = sigmoid(v_scaled / width), reset and psi
    attached (the whole forward pass is then differentiable)."""
    return SpikeMode(lambda v, g: torch.sigmoid(v / width), False, False)


def alif_step(state: NeuronState, current: torch.Tensor, *, alpha: float, v_th: float,
              n_ref: int, gamma: float, beta: torch.Tensor | float = 0.0,
              rho: float = 0.0, mode: SpikeMode = PAPER) -> tuple[NeuronState, torch.Tensor]:
    """Advance a LIF (beta = 0) or ALIF population by one step.

    Args:
        state: previous :class:`NeuronState`, tensors (batch, n).
        current: synaptic input I^t = W_in x^t + W_rec z^{t-1} [membrane units], (batch, n).
        alpha: membrane decay exp(-dt / tau_m).
        v_th: base threshold.
        n_ref: refractory period [steps].
        gamma: dampening factor of the pseudo-derivative.
        beta: adaptation strength, scalar or (n,) (0 for LIF neurons).
        rho: adaptation decay exp(-dt / tau_a).
        mode: spike function and reset gradient (:data:`PAPER`; smooth modes for tests).

    Returns:
        (new state, psi) with psi the pseudo-derivative (batch, n) of this step.
    """
    z_prev = state.z.detach() if mode.detach_reset else state.z
    if isinstance(beta, torch.Tensor) or beta != 0.0:
        b = rho * state.b + state.z
        thr = v_th + beta * b
    else:
        b = state.b
        thr = v_th
    v = alpha * state.v + current - thr * z_prev
    v_scaled = (v - thr) / v_th
    not_ref = (state.r <= REFRACTORY_EPS).to(v.dtype)
    z = mode.spike_fn(v_scaled, gamma) * not_ref
    vs_psi = v_scaled.detach() if mode.detach_psi else v_scaled
    psi = (gamma / v_th) * torch.clamp(1.0 - vs_psi.abs(), min=0.0) * not_ref
    r = torch.clamp(state.r + n_ref * z.detach() - 1.0, 0.0, float(n_ref))
    return NeuronState(v, z, r, b), psi


def leaky_integrate(u: torch.Tensor, decay: float) -> torch.Tensor:
    """Return y^t = decay y^{t-1} + u^t along the first (time) axis, y^{-1} = 0.

    The package's one leaky integrator (readouts, learning signals, eligibility traces of the
    input), computed as one product with the (T, T) lower-triangular kernel decay^(t - s):
    differentiable and ~10x faster on CPU than a step loop.

    Args:
        u: input (time, ...).
        decay: per-step factor, e.g. exp(-dt / tau).

    Returns:
        y, shape and dtype of `u`.
    """
    kernel = _leaky_kernel(u.shape[0], float(decay), u.dtype, u.device)
    return torch.tensordot(kernel, u, dims=([1], [0]))


@functools.lru_cache(maxsize=32)
def _leaky_kernel(n_steps: int, decay: float, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    # decay^(t - s) for s <= t, else 0; built once per (length, decay, dtype, device): the
    # accelerator's batch-1 trials spent ~0.25 ms per call in the power alone. Never written to.
    t = torch.arange(n_steps, dtype=dtype, device=device)
    diff = t[:, None] - t[None, :]
    return torch.where(diff >= 0, decay ** diff.clamp(min=0), torch.zeros_like(diff))
