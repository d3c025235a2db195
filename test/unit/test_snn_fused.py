"""The fused recurrent loop (snn/fused.py) against the step-by-step autograd reference.

Same spikes, potentials, traces and gradients (float64), for the trainee (LIF, shared and
per-task weights, with and without e-prop truncation, with the PCM read noise) and the LSG
(ALIF), and the meta-gradient of a whole inner loop on the PCM model (issue: within 1e-6
relative; measured ~1e-15).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l.inner import adapt
from l2l_nmhw_ros.l2l.meta import make_backend, outer_loss
from l2l_nmhw_ros.l2l.substrate import FunctionalSubstrate
from l2l_nmhw_ros.l2l.tasks import make_tasks
from l2l_nmhw_ros.pcm import PCMModel
from l2l_nmhw_ros.snn import fused
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in, run_lsg_full
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial, run_trial_fused

F64 = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _trainee(batch: int, per_task: bool, n_rec: int = 40):
    cfg = C.TraineeConfig(n_rec=n_rec)
    w = init_trainee_weights(cfg, torch.Generator().manual_seed(1), dtype=F64)
    w['w_in'] = w['w_in'] * 3  # make the small network spike
    gen = torch.Generator().manual_seed(5)
    out = {}
    for k, v in w.items():
        v = v.unsqueeze(0).repeat(batch, 1, 1) if per_task else v.clone()
        if per_task:  # every task its own weights, as after an update
            v = v + 0.02 * torch.randn(v.shape, generator=gen, dtype=F64)
        out[k] = v.requires_grad_()
    return cfg, out


def _trial_loss(r) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(r.z.shape, generator=gen, dtype=F64) for _ in range(3))
    # every differentiable output: readout, spikes, traces, potentials
    return (r.y ** 2).sum() + (r.z * a).sum() + (r.z_bar * b).sum() + 0.01 * (r.v * c).sum()


@pytest.mark.parametrize('per_task', [False, True])
@pytest.mark.parametrize('truncate', [False, True])
def test_trainee_trial_and_gradients_equal_reference(per_task: bool, truncate: bool) -> None:
    batch = 3
    cfg, w = _trainee(batch, per_task)
    x = clock_input(C.TaskConfig(), batch, n_in=cfg.n_in, dtype=F64)
    results = []
    for fn in (run_trial, run_trial_fused):
        ws = {k: v.detach().clone().requires_grad_() for k, v in w.items()}
        r = fn(ws['w_in'], ws['w_rec'], ws['w_out'], x, cfg, eprop_truncation=truncate)
        _trial_loss(r).backward()
        results.append((r, {k: v.grad for k, v in ws.items()}))
    (ref, g_ref), (new, g_new) = results
    assert float(ref.z.detach().sum()) > 500  # the network spikes: the test compares real dynamics
    assert torch.equal(new.z, ref.z)
    torch.testing.assert_close(new.psi, ref.psi, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.v, ref.v, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.z_bar, ref.z_bar, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.y, ref.y, rtol=0, atol=1e-12)
    for k in ('w_in', 'w_rec', 'w_out'):
        assert float(g_ref[k].norm()) > 0, k
        assert _rel(g_new[k], g_ref[k]) < 1e-10, k


def test_truncation_changes_the_recurrent_gradient() -> None:
    # the truncated and the full BPTT differ (the flag is honoured, not ignored)
    cfg, w = _trainee(2, False)
    x = clock_input(C.TaskConfig(), 2, n_in=cfg.n_in, dtype=F64)
    grads = []
    for truncate in (False, True):
        ws = {k: v.detach().clone().requires_grad_() for k, v in w.items()}
        r = run_trial_fused(ws['w_in'], ws['w_rec'], ws['w_out'], x, cfg,
                            eprop_truncation=truncate)
        _trial_loss(r).backward()
        grads.append(ws['w_rec'].grad)
    assert _rel(grads[1], grads[0]) > 1e-3


def test_lsg_alif_spikes_and_gradients_equal_reference() -> None:
    cfg = C.LSGConfig(n_rec=60)
    n_in = lsg_n_in(cfg, 5)
    w = init_lsg_weights(cfg, n_in, 30, torch.Generator().manual_seed(1), dtype=F64)
    gen = torch.Generator().manual_seed(2)
    inputs = (torch.rand(249, 3, n_in, generator=gen, dtype=F64) < 0.3).to(F64)
    sig = torch.randn(249, 3, 30, generator=gen, dtype=F64)
    results = []
    for use_fused in (False, True):
        ws = {k: v.clone().requires_grad_() for k, v in w.items()}
        r = run_lsg_full(ws, inputs, cfg, fused=use_fused)
        loss = (r.learning_signal * sig).sum() + ((r.z.mean(dim=(0, 1)) - 0.01) ** 2).sum()
        loss.backward()
        results.append((r, {k: v.grad for k, v in ws.items()}))
    (ref, g_ref), (new, g_new) = results
    assert float(ref.z.detach().sum()) > 1000
    assert torch.equal(new.z, ref.z)
    torch.testing.assert_close(new.learning_signal, ref.learning_signal, rtol=0, atol=1e-12)
    for k in ('w_in', 'w_rec', 'w_out'):
        assert _rel(g_new[k], g_ref[k]) < 1e-10, k


def test_alif_adaptation_gradient_is_included() -> None:
    # beta = 0 (no adaptation) gives another gradient than beta = 1.6 on the same spikes' loss:
    # the threshold path of the reverse loop is live
    cfg = C.LSGConfig(n_rec=40)
    n_in = lsg_n_in(cfg, 5)
    w = init_lsg_weights(cfg, n_in, 10, torch.Generator().manual_seed(4), dtype=F64)
    inputs = (torch.rand(100, 2, n_in, generator=torch.Generator().manual_seed(6),
                         dtype=F64) < 0.3).to(F64)
    grads = []
    for beta in (1.6, 0.0):
        c = C.LSGConfig(n_rec=40, beta=beta)
        ws = {k: v.clone().requires_grad_() for k, v in w.items()}
        ref = run_lsg_full(ws, inputs, c, fused=False).learning_signal.sum()
        g_ref = torch.autograd.grad(ref, ws['w_in'])[0]
        new = run_lsg_full(ws, inputs, c, fused=True).learning_signal.sum()
        g_new = torch.autograd.grad(new, ws['w_in'])[0]
        assert _rel(g_new, g_ref) < 1e-10
        grads.append(g_new)
    assert _rel(grads[0], grads[1]) > 1e-3


def test_read_noise_same_seeded_sample_as_pcm_model() -> None:
    # the fused loop draws the crossbar's read noise per step in PCMModel.mvm's order: a seeded
    # trial on the PCM model is the same trial (float64)
    cfg, w = _trainee(3, False)
    pcm = PCMModel(C.PCMConfig())
    assert not pcm.exact_reads
    x = clock_input(C.TaskConfig(), 3, n_in=cfg.n_in, dtype=F64)
    trials = []
    for use_fused in (False, True):
        sub = FunctionalSubstrate(pcm, {k: v.detach() for k, v in w.items()}, 3,
                                  torch.Generator().manual_seed(9), fused=use_fused)
        trials.append(sub.trial(x, cfg, dt=0.001))
    ref, new = trials
    assert torch.equal(new.z, ref.z)
    torch.testing.assert_close(new.y, ref.y, rtol=0, atol=1e-12)
    # and the noise is there: without it the spikes differ
    exact = run_trial_fused(w['w_in'].detach(), w['w_rec'].detach(), w['w_out'].detach(), x, cfg)
    assert not torch.equal(exact.z, ref.z)


def _tiny_cfg() -> C.L2LConfig:
    return C.L2LConfig(
        trainee=C.TraineeConfig(n_rec=12),
        lsg=C.LSGConfig(n_rec=16, bits_per_coord=4),
        task=C.TaskConfig(n_steps=60, clock_window=12, clock_interval=3, smoothing_window=10),
        eprop=C.EpropConfig(eta=0.05),
        meta=C.MetaConfig(batch_size=4, families=('reach', 'brownian')))


def test_meta_gradient_of_the_inner_loop_on_pcm_equals_reference() -> None:
    # the whole inner loop (learning trial, LSG, e-prop update, quantiser and PCM noise
    # straight-through, test trial, outer loss): fused vs step-by-step, every meta-parameter
    cfg = _tiny_cfg()
    gen = torch.Generator().manual_seed(3)
    tw = init_trainee_weights(cfg.trainee, gen, dtype=F64)
    tw['w_in'], tw['w_out'] = tw['w_in'] * 3, tw['w_out'] * 20
    lw = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), cfg.trainee.n_rec, gen,
                          dtype=F64)
    lw['w_in'], lw['w_out'] = lw['w_in'] * 3, lw['w_out'] * 30
    tasks = make_tasks('reach', cfg.task, 4, np.random.default_rng(1), dtype=F64)
    backend = make_backend(cfg, pcm=True, quantize=True)
    out = []
    for use_fused in (False, True):
        tr = {k: v.clone().requires_grad_() for k, v in tw.items()}
        ls = {k: v.clone().requires_grad_() for k, v in lw.items()}
        res = adapt(tr, ls, tasks, cfg, backend=backend, generator=torch.Generator()
                    .manual_seed(7), fused=use_fused)
        loss = outer_loss(res, tasks, cfg)[0]
        grads = torch.autograd.grad(loss, [*tr.values(), *ls.values()])
        out.append((res, float(loss.detach()), grads))
    (r_ref, l_ref, g_ref), (r_new, l_new, g_new) = out
    assert float(r_ref.test.z.detach().sum()) > 50 and int(r_ref.n_programmed.sum()) > 0
    assert torch.equal(r_new.test.z, r_ref.test.z)
    assert l_new == pytest.approx(l_ref, rel=1e-12)
    for name, a, b in zip(['t.w_in', 't.w_rec', 't.w_out', 'l.w_in', 'l.w_rec', 'l.w_out'],
                          g_new, g_ref, strict=True):
        assert float(b.norm()) > 0, name
        assert _rel(a, b) < 1e-6, name


@pytest.mark.parametrize('per_task', [False, True])
@pytest.mark.parametrize('density', [0.02, 0.6])
def test_sparse_rows_equals_dense_product(per_task: bool, density: float) -> None:
    # below the density limit the gather, above it the dense product: both equal p @ w_t
    gen = torch.Generator().manual_seed(0)
    p = (torch.rand(5, 300, generator=gen, dtype=F64) < density).to(F64)
    p[0, 3] = 2.5  # not only spikes: values are used, not just positions
    w_t = torch.randn((5, 300, 40) if per_task else (300, 40), generator=gen, dtype=F64)
    dense = (p.unsqueeze(1) @ w_t).squeeze(1) if per_task else p @ w_t
    torch.testing.assert_close(fused.sparse_rows(p, w_t), dense, rtol=0, atol=1e-12)
    assert float(dense.abs().sum()) > 0


def test_bad_shapes_and_noise_arguments_are_refused() -> None:
    prm = fused.LoopParams(0.95, 0.6, 5, 0.3)
    i_ext = torch.zeros(10, 2, 4)
    with pytest.raises(Exception, match='w_rec'):
        fused.fused_recurrent(i_ext, torch.zeros(3, 3), prm)
    with pytest.raises(ValueError, match='both'):
        fused.fused_recurrent(i_ext, torch.zeros(4, 4), prm, var_ext=torch.zeros(10, 2, 4))
    cfg, w = _trainee(2, False)
    x = clock_input(C.TaskConfig(), 2, n_in=cfg.n_in, dtype=F64)
    bad = w['w_rec'].detach().clone()
    bad[0, 1] = float('nan')
    with pytest.raises(ValueError, match='w_rec'):
        run_trial_fused(w['w_in'], bad, w['w_out'], x, cfg)
