"""The trainee: a recurrent network of LIF neurons driven by the clock, with leaky readouts.

Paper: Ortner et al. 2025 (robot task), official code ``model/l2l_trainee_lsg.py``; sizes 5 -> 250
-> 2, v_th = 0.6, tau_m = tau_out = 20 ms, n_ref = 5, gamma = 0.3 (``trainee`` config section).

Per step (see :mod:`l2l_nmhw_ros.snn.neurons`): I^t = [W_in | W_rec] [x^t ; z^{t-1}] (ONE MVM on
the crossbar, which holds [W_in | W_rec] in one array), LIF update, then the leaky readout
y^t = kappa y^{t-1} + W_out z^t (no bias). Eligibility traces for natural e-prop:
x_bar^t = alpha x_bar^{t-1} + x^t and z_bar^t = alpha z_bar^{t-1} + z^{t-1}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from l2l_nmhw_ros.config import TaskConfig, TraineeConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.pcm.model import matmul_rows
from l2l_nmhw_ros.snn.fused import LoopParams, fused_recurrent
from l2l_nmhw_ros.snn.neurons import (PAPER, SpikeMode, alif_step, decay_factor, initial_state,
                                      leaky_integrate)

__all__ = ['TrialResult', 'default_mvm', 'init_trainee_weights', 'no_autapse_mask', 'run_trial',
           'run_trial_fused']

DT = TaskConfig().dt  # network time step [s]; the one value lives in TaskConfig

MVM = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrialResult(NamedTuple):
    """Everything one trial records, sequences (time, batch, n).

    Fields: z spikes (n_rec), v membrane potentials (n_rec), psi pseudo-derivatives (n_rec),
    y readouts (n_out), x_bar input traces (n_in), z_bar recurrent traces (n_rec).
    """

    z: torch.Tensor
    v: torch.Tensor
    psi: torch.Tensor
    y: torch.Tensor
    x_bar: torch.Tensor
    z_bar: torch.Tensor


def default_mvm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Return the float MVM y = x @ wᵀ; x (..., n_pre), w ([...,] n_post, n_pre).

    A batch of weights that is an expanded view of one matrix (stride 0) uses one GEMM.
    """
    if w.ndim == 3 and w.stride(0) == 0:
        w = w[0]
    return matmul_rows(x, w)


class _WeightGradCollector:
    """Per-trial store of the MVM inputs and output gradients of every step (see _WeightGrad)."""

    def __init__(self) -> None:
        self.x: list[torch.Tensor] = []
        self.g: dict[int, torch.Tensor] = {}


class _WeightGrad(torch.autograd.Function):
    """Zero-valued term that gives the recurrent MVM's weight its gradient in ONE product.

    The step MVMs run with detached weights (gradient to the inputs only); each step adds this
    zero term, whose backward records the output gradient g^t. Step 0's backward runs last (every
    later step depends on it), and there the weight gradient sum_t g^t x^tᵀ is formed as one
    einsum instead of T batched outer products (the autograd default, ~10x slower on CPU).
    """

    @staticmethod
    def forward(ctx, x, w, store, t):  # noqa: D102
        ctx.store, ctx.t = store, t
        ctx.w_shape, ctx.w_stride0 = w.shape, (w.stride(0) if w.ndim == 3 else None)
        store.x.append(x)
        return x.new_zeros(*x.shape[:-1], w.shape[-2])

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        store = ctx.store
        store.g[ctx.t] = g
        if ctx.t != 0:
            return None, None, None, None
        n = len(store.x)
        zeros = torch.zeros_like(g)
        gs = torch.stack([store.g.get(t, zeros) for t in range(n)])
        xs = torch.stack(store.x)
        store.x, store.g = [], {}
        if len(ctx.w_shape) == 2:
            grad_w = torch.einsum('tbi,tbj->ij', gs, xs)
        else:
            grad_w = torch.einsum('tbi,tbj->bij', gs, xs)
        return None, grad_w, None, None


def no_autapse_mask(n: int, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Return the (n, n) mask 1 - I that removes self-connections from W_rec."""
    return 1.0 - torch.eye(n, dtype=dtype, device=device)


def init_trainee_weights(cfg: TraineeConfig, generator: torch.Generator, *,
                         dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Return the paper code's initial trainee weights (before meta-training).

    W_in ~ N(0, 1)/sqrt(n_in), W_rec ~ N(0, 1)/sqrt(n_rec) with zero diagonal,
    W_out ~ N(0, 1)/sqrt(n_rec) * (1 - kappa) (the readout has no (1 - kappa) factor itself).
    Keys ``w_in`` (n_rec, n_in), ``w_rec`` (n_rec, n_rec), ``w_out`` (n_out, n_rec).
    """
    kappa = decay_factor(cfg.tau_out, DT)
    n_in, n, n_out = cfg.n_in, cfg.n_rec, cfg.n_out
    w_in = torch.randn(n, n_in, generator=generator, dtype=dtype) / n_in ** 0.5
    w_rec = torch.randn(n, n, generator=generator, dtype=dtype) / n ** 0.5
    w_rec = w_rec * no_autapse_mask(n, dtype=dtype)
    w_out = torch.randn(n_out, n, generator=generator, dtype=dtype) / n ** 0.5 * (1 - kappa)
    return {'w_in': w_in, 'w_rec': w_rec, 'w_out': w_out}


def _check(name: str, w: torch.Tensor, shape: tuple[int, int]) -> None:
    if w.ndim < 2 or tuple(w.shape[-2:]) != shape:
        raise ShapeError(f'{name}: expected (..., {shape[0]}, {shape[1]}), got {tuple(w.shape)}')


def run_trial(w_in: torch.Tensor, w_rec: torch.Tensor, w_out: torch.Tensor, x: torch.Tensor,
              cfg: TraineeConfig, mvm: MVM | None = None, *, dt: float = DT,
              eprop_truncation: bool = False, mode: SpikeMode = PAPER) -> TrialResult:
    """Run one trainee trial on input spikes `x`.

    Args:
        w_in: input weights (n_rec, n_in), or per trial (batch, n_rec, n_in).
        w_rec: recurrent weights (n_rec, n_rec) or (batch, n_rec, n_rec); the diagonal is
            ignored (no autapses).
        w_out: readout weights (n_out, n_rec) or (batch, n_out, n_rec).
        x: input spikes (time, batch, n_in).
        cfg: trainee configuration (v_th, tau_m, tau_out, n_ref, dampening_factor).
        mvm: ``mvm(x, w) -> x @ wᵀ`` used for the synaptic input [W_in | W_rec] [x; z] and the
            readout W_out z; default the exact float product. Pass ``PCMModel.mvm`` (read noise)
            for the crossbar.
        dt: time step [s].
        eprop_truncation: stop the gradient of the recurrent spike input (e-prop's truncation;
            with it, autograd's gradient of sum_t L z equals the e-prop sum, see
            :func:`l2l_nmhw_ros.snn.eprop.delta_w`).
        mode: spike mode (:data:`~l2l_nmhw_ros.snn.neurons.PAPER`; smooth ones for tests).

    Returns:
        :class:`TrialResult` (all sequences time-major).

    Raises:
        ShapeError: on inconsistent shapes.

    Note:
        Gradients flow through everything (BPTT) with the pseudo-derivative as dz/dv; the
        reset term and the refractory counter are detached.
    """
    if x.ndim != 3:
        raise ShapeError(f'x: expected (time, batch, n_in), got {tuple(x.shape)}')
    n_steps, batch, n_in = x.shape
    n = w_rec.shape[-1]
    _check('w_in', w_in, (n, n_in))
    _check('w_rec', w_rec, (n, n))
    if w_out.ndim < 2 or w_out.shape[-1] != n:
        raise ShapeError(f'w_out: expected (..., n_out, {n}), got {tuple(w_out.shape)}')
    mvm = mvm or default_mvm
    alpha = decay_factor(cfg.tau_m, dt)
    kappa = decay_factor(cfg.tau_out, dt)
    mask = no_autapse_mask(n, dtype=w_rec.dtype, device=w_rec.device)
    w = torch.cat([w_in, w_rec * mask], dim=-1)
    state = initial_state(batch, n, dtype=x.dtype, device=x.device)
    z_bar = torch.zeros(batch, n, dtype=x.dtype, device=x.device)
    zs, vs, psis, zbars = [], [], [], []
    collect = torch.is_grad_enabled() and w.requires_grad
    store = _WeightGradCollector()
    w_mvm = w.detach() if collect else w
    for t in range(n_steps):
        z_in = state.z.detach() if eprop_truncation else state.z
        pre = torch.cat([x[t], z_in], dim=-1)
        current = mvm(pre, w_mvm)
        if collect:
            current = current + _WeightGrad.apply(pre.detach(), w, store, t)
        z_bar = alpha * z_bar + state.z
        state, psi = alif_step(state, current, alpha=alpha, v_th=cfg.v_th, n_ref=cfg.n_ref,
                               gamma=cfg.dampening_factor, mode=mode)
        zs.append(state.z)
        vs.append(state.v)
        psis.append(psi)
        zbars.append(z_bar)
    z = torch.stack(zs)
    y_in = mvm(z, w_out)
    y = leaky_integrate(y_in, kappa)
    x_bar = leaky_integrate(x, alpha)
    return TrialResult(z, torch.stack(vs), torch.stack(psis), y, x_bar, torch.stack(zbars))


def _shared(w: torch.Tensor) -> torch.Tensor:
    """The one matrix behind an expanded per-task view (stride 0 over the batch), else `w`."""
    return w[0] if w.ndim == 3 and w.stride(0) == 0 else w


def run_trial_fused(w_in: torch.Tensor, w_rec: torch.Tensor, w_out: torch.Tensor,
                    x: torch.Tensor, cfg: TraineeConfig, mvm: MVM | None = None, *,
                    read_var: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    generator: torch.Generator | None = None, dt: float = DT,
                    eprop_truncation: bool = False) -> TrialResult:
    """:func:`run_trial` in the PAPER spike mode through the fused loop (:mod:`~l2l_nmhw_ros.snn.
    fused`): the same equations and gradients, ~one autograd node instead of ~20 per step.

    Args:
        w_in, w_rec, w_out, x, cfg, dt, eprop_truncation: as :func:`run_trial`.
        mvm: the readout's MVM ``mvm(z, w_out)`` (default the float product; ``PCMModel.mvm``
            for the crossbar's read noise).
        read_var: ``read_var(w) -> σ²`` of every weight [1] (same shape) when the synaptic
            input is read with noise (the crossbar model's
            :meth:`~l2l_nmhw_ros.pcm.PCMModel.read_noise_sd` squared); None: exact reads. The
            noise of [W_in | W_rec] [x; z] is drawn once per step from `generator` in the
            order of ``PCMModel.mvm``, so a seeded trial equals :func:`run_trial`'s.
        generator: torch generator of the read noise.

    Returns:
        :class:`TrialResult`.

    Raises:
        ShapeError: on inconsistent shapes.
        ValueError: NaN or inf in the weights.
    """
    if x.ndim != 3:
        raise ShapeError(f'x: expected (time, batch, n_in), got {tuple(x.shape)}')
    n_in = x.shape[-1]
    n = w_rec.shape[-1]
    _check('w_in', w_in, (n, n_in))
    _check('w_rec', w_rec, (n, n))
    if w_out.ndim < 2 or w_out.shape[-1] != n:
        raise ShapeError(f'w_out: expected (..., n_out, {n}), got {tuple(w_out.shape)}')
    for name, w in (('w_in', w_in), ('w_rec', w_rec)):
        if not bool(torch.isfinite(w.detach()).all()):
            raise ValueError(f'{name}: NaN or inf in the weights')
    mvm = mvm or default_mvm
    alpha = decay_factor(cfg.tau_m, dt)
    kappa = decay_factor(cfg.tau_out, dt)
    w_in, w_rec = _shared(w_in), _shared(w_rec)
    w_rec = w_rec * no_autapse_mask(n, dtype=w_rec.dtype, device=w_rec.device)
    if w_in.ndim == 2:
        i_ext = x @ w_in.transpose(0, 1)
    else:
        i_ext = torch.einsum('tbi,bji->tbj', x, w_in)
    var_ext = var_rec = None
    if read_var is not None:
        with torch.no_grad():
            var_in = read_var(w_in.detach())
            var_rec = read_var(w_rec.detach())
            xx = x * x
            var_ext = (xx @ var_in.transpose(0, 1) if var_in.ndim == 2
                       else torch.einsum('tbi,bji->tbj', xx, var_in))
    prm = LoopParams(alpha, cfg.v_th, cfg.n_ref, cfg.dampening_factor,
                     truncate=eprop_truncation)
    z, v, psi, z_bar = fused_recurrent(i_ext, w_rec, prm, var_ext=var_ext, var_rec=var_rec,
                                       generator=generator, want_zbar=True)
    y = leaky_integrate(mvm(z, w_out), kappa)
    return TrialResult(z, v, psi, y, leaky_integrate(x, alpha), z_bar)
