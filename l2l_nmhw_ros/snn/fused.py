"""Fused recurrent trial: the LIF/ALIF loop as ONE autograd node with a hand-written BPTT.

:func:`~l2l_nmhw_ros.snn.trainee.run_trial` and :func:`~l2l_nmhw_ros.snn.lsg.run_lsg_full` build
the recurrent loop from ~20 small torch operations per step, each an autograd node: at the paper
preset (batch 90, trainee 250, LSG 800, 249 steps) most of a meta-training iteration went to
dense batched MVMs whose input is a spike vector (~3 % ones) and to per-step allocations. This
module computes the SAME equations (:mod:`l2l_nmhw_ros.snn.neurons`, PAPER spike mode: reset and
psi stopped, the spike's derivative the pseudo-derivative) with

- a forward pass without autograd whose recurrent MVM reads only the weight columns of the
  neurons that spiked (a gather and an index_add instead of a dense product; dense when more than
  :data:`SPARSE_MAX_DENSITY` of the inputs are non-zero), and the read noise of the crossbar model
  drawn per step in the same order as :meth:`l2l_nmhw_ros.pcm.PCMModel.mvm` (so a seeded trial sees
  the same noise sample);
- a backward pass that runs BPTT in one reverse loop (for step t, with G the total gradients)::

      G_zbar^t = g_zbar^t + alpha G_zbar^{t+1}
      G_z^t    = g_z^t + G_zbar^{t+1} + G_I^{t+1} W_rec  [+ G_b^{t+1}]      (z^t feeds step t+1)
      G_v^t    = g_v^t + psi^t G_z^t + alpha G_v^{t+1}
      G_thr^t  = -psi^t G_z^t - z^{t-1} G_v^t                               (ALIF only)
      G_b^t    = beta G_thr^t + rho G_b^{t+1}                               (ALIF only)
      G_I^t    = G_v^t

  and the weight gradient sum_t G_I^tᵀ z^{t-1} as ONE product after the loop. With e-prop's
  truncation the G_I W_rec term is dropped (as ``eprop_truncation`` in ``run_trial``).

The plain autograd loop stays the reference: ``test/unit/test_snn_fused.py`` checks the trials
(spike for spike) and the meta-gradient of a whole inner loop (float64, within 1e-6 relative)
against it, and ``make bench`` times both (``trial.fused`` vs ``trial.reference``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.neurons import REFRACTORY_EPS

__all__ = ['SPARSE_MAX_DENSITY', 'LoopParams', 'fused_recurrent', 'sparse_rows']

#: above this share of non-zero inputs the forward MVM is dense (a gather no longer pays):
#: per-task weights (a memory-bound batched product) and one shared matrix (an efficient GEMM;
#: measured on CPU at the paper preset's sizes)
SPARSE_MAX_DENSITY = 0.25
SPARSE_MAX_DENSITY_SHARED = 0.04


class LoopParams(NamedTuple):
    """Constants of one recurrent population (see :mod:`l2l_nmhw_ros.snn.neurons`).

    Fields: alpha membrane decay, v_th threshold, n_ref refractory steps, gamma dampening factor,
    beta adaptation per neuron (n,) or None (LIF), rho adaptation decay, truncate (e-prop's stop
    of the recurrent spike input's gradient).
    """

    alpha: float
    v_th: float
    n_ref: int
    gamma: float
    beta: torch.Tensor | None = None
    rho: float = 0.0
    truncate: bool = False


def sparse_rows(p: torch.Tensor, w_t: torch.Tensor,
                nz: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Return p @ w_t (batch, n_post) reading only the rows of `w_t` where `p` is non-zero.

    Args:
        p: inputs (batch, n_pre), typically spikes.
        w_t: TRANSPOSED weights (n_pre, n_post), or per batch entry (batch, n_pre, n_post).
        nz: ``p.nonzero(as_tuple=True)`` when the caller has it already.

    Returns:
        (batch, n_post), equal to the dense product up to the summation order.
    """
    b_idx, i_idx = p.nonzero(as_tuple=True) if nz is None else nz
    shared = w_t.dim() == 2
    if b_idx.numel() > (SPARSE_MAX_DENSITY_SHARED if shared else SPARSE_MAX_DENSITY) * p.numel():
        if shared:
            return p @ w_t
        return torch.bmm(p.unsqueeze(1), w_t).squeeze(1)
    n_pre, n_post = w_t.shape[-2:]
    if shared:
        rows = w_t.index_select(0, i_idx)
    else:
        rows = w_t.reshape(-1, n_post).index_select(0, b_idx * n_pre + i_idx)
    out = p.new_zeros(p.shape[0], n_post)
    if rows.shape[0]:
        out.index_add_(0, b_idx, rows * p[b_idx, i_idx].unsqueeze(1))
    return out


def _vec_mat(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """g @ w for g (batch, n_post) and w (n_post, n_pre) or (batch, n_post, n_pre)."""
    if w.dim() == 2:
        return g @ w
    return torch.bmm(g.unsqueeze(1), w).squeeze(1)


class _FusedLoop(torch.autograd.Function):
    """Forward: the loop without autograd; backward: the reverse loop (module docstring)."""

    @staticmethod
    def forward(ctx, i_ext: torch.Tensor, w_rec: torch.Tensor, prm: LoopParams,
                noise: tuple[torch.Tensor, torch.Tensor, Any] | None,
                want_zbar: bool, want_v: bool):  # noqa: D102
        n_steps, batch, n = i_ext.shape
        a, v_th, gamma = prm.alpha, prm.v_th, prm.gamma
        w_t = w_rec.transpose(-1, -2).contiguous()
        var_t = None
        if noise is not None:
            var_ext, var_rec, gen = noise
            var_t = var_rec.transpose(-1, -2).contiguous()
        zeros = i_ext.new_zeros(batch, n)
        v, z, r, b = zeros, zeros, zeros, zeros
        zbar = zeros
        zs = i_ext.new_empty(n_steps, batch, n)
        vs = i_ext.new_empty(n_steps, batch, n) if want_v else None
        psis = i_ext.new_empty(n_steps, batch, n)
        zbars = i_ext.new_empty(n_steps, batch, n) if want_zbar else None
        alif = prm.beta is not None
        # unused outputs (psi; v, z_bar where not needed) get no zero-filled gradient buffers
        ctx.set_materialize_grads(False)
        for t in range(n_steps):
            nz = z.nonzero(as_tuple=True)
            current = i_ext[t] + sparse_rows(z, w_t, nz)
            if var_t is not None:
                var = var_ext[t] + sparse_rows(z * z, var_t, nz)
                xi = torch.randn(var.shape, generator=gen, dtype=var.dtype, device=var.device)
                current = torch.addcmul(current, var.sqrt_(), xi)
            if want_zbar:
                zbar = a * zbar + z
                zbars[t] = zbar
            if alif:
                b = prm.rho * b + z
                thr = v_th + prm.beta * b
                v = a * v + current - thr * z
                u = (v - thr) / v_th
            else:
                v = a * v + current - v_th * z
                u = (v - v_th) / v_th
            free = (r <= REFRACTORY_EPS).to(v.dtype)
            z = (u > 0).to(v.dtype) * free
            psis[t] = (gamma / v_th) * torch.clamp(1.0 - u.abs(), min=0.0) * free
            r = torch.clamp(r + prm.n_ref * z - 1.0, 0.0, float(prm.n_ref))
            zs[t] = z
            if want_v:
                vs[t] = v
        ctx.prm = prm
        ctx.shared = w_rec.dim() == 2
        ctx.save_for_backward(w_rec, zs, psis)
        ctx.mark_non_differentiable(psis)
        ctx.want_v, ctx.want_zbar = want_v, want_zbar
        out = (zs, vs, psis) if want_v else (zs, psis)
        return out + (zbars,) if want_zbar else out

    @staticmethod
    def backward(ctx, g_z, *grads):  # noqa: D102
        # None for an output that got no gradient (set_materialize_grads(False))
        grads = list(grads)
        g_v = grads.pop(0) if ctx.want_v else None
        grads.pop(0)  # psi: no gradient
        g_zbar = grads.pop(0) if ctx.want_zbar else None
        w_rec, zs, psis = ctx.saved_tensors
        prm = ctx.prm
        n_steps, batch, n = zs.shape
        a = prm.alpha
        alif = prm.beta is not None
        zeros = zs.new_zeros(batch, n)
        g_i = zs.new_empty(n_steps, batch, n)
        gi_next, gv_next, gzb_next, gb_next = zeros, zeros, zeros, zeros
        for t in range(n_steps - 1, -1, -1):
            gz = zeros if g_z is None else g_z[t]
            if t < n_steps - 1:
                gz = gz + gzb_next
                if not prm.truncate:
                    gz = gz + _vec_mat(gi_next, w_rec)
                if alif:
                    gz = gz + gb_next
            pg = psis[t] * gz
            gv = pg + a * gv_next
            if g_v is not None:
                gv = gv + g_v[t]
            if alif:
                z_prev = zs[t - 1] if t else zeros
                g_thr = -pg - z_prev * gv
                gb_next = prm.beta * g_thr + prm.rho * gb_next
            if g_zbar is not None:
                gzb_next = g_zbar[t] + a * gzb_next
            g_i[t] = gv
            gi_next, gv_next = gv, gv
        # sum_t G_I^tᵀ z^{t-1} (z^{-1} = 0: step 0 adds nothing), one product
        g_w = None
        if ctx.needs_input_grad[1]:
            if ctx.shared:
                g_w = g_i[1:].reshape(-1, n).transpose(0, 1) @ zs[:-1].reshape(-1, n)
            else:
                g_w = torch.bmm(g_i[1:].permute(1, 2, 0), zs[:-1].transpose(0, 1))
        return g_i, g_w, None, None, None, None


def fused_recurrent(i_ext: torch.Tensor, w_rec: torch.Tensor, prm: LoopParams, *,
                    var_ext: torch.Tensor | None = None, var_rec: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, want_zbar: bool = False,
                    want_v: bool = True) -> tuple[torch.Tensor, ...]:
    """Run a recurrent LIF/ALIF population for all steps (the module docstring's equations).

    Args:
        i_ext: external input current (time, batch, n) [membrane units] (e.g. W_in x^t);
            differentiable.
        w_rec: recurrent weights (n, n) shared or (batch, n, n) per batch entry, the
            diagonal already masked by the caller; differentiable. An expanded view (stride 0
            over the batch) is read as the one matrix it is.
        prm: :class:`LoopParams`.
        var_ext, var_rec: read noise (PCM): the variance of the external current (time, batch,
            n) and of every recurrent weight (shape of `w_rec`) [1]; both or neither. Per step
            the current gets sqrt(var_ext^t + (z^{t-1})² var_recᵀ) ξ^t, ξ standard normals
            drawn from `generator` (batch, n) per step; no gradient through the noise
            (straight-through, as ``PCMModel.mvm``).
        generator: torch generator of the read noise.
        want_zbar: also return the presynaptic traces z̄^t = alpha z̄^{t-1} + z^{t-1}.
        want_v: return the membrane potentials (False saves their buffer).

    Returns:
        (z, v, psi[, z_bar]), or (z, psi[, z_bar]) without `want_v`, each (time, batch, n);
        psi carries no gradient.

    Raises:
        ShapeError: inconsistent shapes.
    """
    if i_ext.dim() != 3:
        raise ShapeError(f'i_ext: expected (time, batch, n), got {tuple(i_ext.shape)}')
    n_steps, batch, n = i_ext.shape
    if w_rec.dim() == 3 and w_rec.stride(0) == 0:
        w_rec = w_rec[0]
    if tuple(w_rec.shape[-2:]) != (n, n) or w_rec.dim() not in (2, 3) or (
            w_rec.dim() == 3 and w_rec.shape[0] != batch):
        raise ShapeError(f'w_rec: expected ({n}, {n}) or ({batch}, {n}, {n}), got '
                         f'{tuple(w_rec.shape)}')
    if (var_ext is None) != (var_rec is None):
        raise ValueError('var_ext and var_rec: give both (read noise) or neither')
    noise = None
    if var_ext is not None:
        if var_rec.dim() == 3 and var_rec.stride(0) == 0:
            var_rec = var_rec[0]
        noise = (var_ext.detach(), var_rec.detach(), generator)
    if prm.beta is not None:
        prm = prm._replace(beta=prm.beta.to(dtype=i_ext.dtype, device=i_ext.device))
    return _FusedLoop.apply(i_ext, w_rec, prm, noise, want_zbar, want_v)
