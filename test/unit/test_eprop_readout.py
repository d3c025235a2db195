"""The optional readout update of the inner loop (``eprop.update_w_out``): the e-prop readout rule
Delta W_out = -eta_out sum_t L_out^t z_hat^t driven by n_out extra LSG signals or (with
``eprop.readout_signal = error``) by the output error against the demonstration, on every
substrate (functional batch, crossbar, accelerator), in the planner and in meta-training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import RejectedInput, ShapeError
from l2l_nmhw_ros.l2l.inner import (FloatBackend, compose_signal, n_learning_signals,
                                    readout_error, update_and_test)
from l2l_nmhw_ros.l2l.substrate import CrossbarSubstrate, FunctionalSubstrate
from l2l_nmhw_ros.pcm import Crossbar, PCMModel, pack_trainee
from l2l_nmhw_ros.pcm.layout import unpack_trainee
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.reach.accelerator import Accelerator, demonstration_bound
from l2l_nmhw_ros.reach.episode import ReachPlanner
from l2l_nmhw_ros.snn.eprop import delta_w_out
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in
from l2l_nmhw_ros.snn.trainee import TrialResult, init_trainee_weights, run_trial

N_REC = 40


def _cfg(preset: str = 'ideal', **pcm: object) -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': preset, 'stochastic_rounding': False, **pcm},
                        'trainee': {'n_rec': N_REC},
                        'eprop': {'update_w_out': True, 'eta_out': 2e-3}})


def _weights(cfg: C.L2LConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    w = init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(seed))
    w['w_in'] = (w['w_in'] * 3.0).clamp(-0.55, 0.55)  # spikes in a small net, inside +-w_max
    w['w_rec'] = w['w_rec'].clamp(-0.55, 0.55) * (1 - torch.eye(N_REC))
    w['w_out'] = w['w_out'] * 20.0  # ~0.1: room for whole 1/16 steps without the +-1 clip
    return w


def _spiking_trial(cfg: C.L2LConfig) -> tuple[dict[str, torch.Tensor], TrialResult, float]:
    """(float64 weights, a 2-task trial on a sparse input that spikes, the readout's kappa)."""
    w = {k: v.double() for k, v in _weights(cfg).items()}
    x = torch.zeros(cfg.task.n_steps, 2, cfg.trainee.n_in, dtype=torch.float64)
    x[::7] = 1.0
    trial = run_trial(w['w_in'], w['w_rec'], w['w_out'], x, cfg.trainee)
    assert float(trial.z.sum()) > 50
    return w, trial, math.exp(-cfg.task.dt / cfg.trainee.tau_out)


def _signal(cfg: C.L2LConfig, sd_rec: float = 200.0, sd_out: float = 5.0,
            seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = cfg.task.n_steps
    rec = rng.normal(0.0, sd_rec, (t, cfg.trainee.n_rec))
    out = rng.normal(0.0, sd_out, (t, cfg.trainee.n_out))
    return torch.as_tensor(np.concatenate([rec, out], axis=1), dtype=torch.float32)[:, None, :]


def assert_same_readout_loop(a, b, sub: CrossbarSubstrate, dq_out: torch.Tensor) -> None:
    """The crossbar's inner loop `b` (on `sub`) did what the batched loop `a` did: the same
    readout update, rounded to `dq_out`, the same weights after it, the same test trial and the
    same devices written."""
    torch.testing.assert_close(b.dw_out.float(), a.dw_out.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sub.dq_out, dq_out.to(sub.dq_out.dtype), rtol=0, atol=0)
    torch.testing.assert_close(b.w_out.float(), a.w_out.float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(b.test.z, a.test.z, rtol=0, atol=0)
    torch.testing.assert_close(b.test.y.float(), a.test.y.float(), rtol=0, atol=2e-5)
    assert torch.equal(b.n_programmed, a.n_programmed)


def test_config_counts_one_signal_per_neuron_and_readout() -> None:
    assert n_learning_signals(C.L2LConfig()) == 250  # the paper: one per trainee neuron
    assert n_learning_signals(_cfg()) == N_REC + 2


def test_delta_w_out_hand_computed() -> None:
    # one readout, two neurons; kappa = 0.5, eta_out = 1:
    # z_hat(neuron 0) = [1, 0.5, 1.25], z_hat(neuron 1) = [0, 1, 0.5]; L = [1, -2, 4]
    # dW[0, 0] = -(1*1 - 2*0.5 + 4*1.25) = -5; dW[0, 1] = -(0 - 2*1 + 4*0.5) = 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)[:, None, :]
    trial = TrialResult(z, z, z, z, z, z)
    sig = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64).reshape(3, 1, 1)
    dw = delta_w_out(trial, sig, 1.0, 0.5)
    torch.testing.assert_close(dw, torch.tensor([[[-5.0, 0.0]]], dtype=torch.float64))
    with pytest.raises(ShapeError, match='signal_out'):
        delta_w_out(trial, sig[:2], 1.0, 0.5)


def test_delta_w_out_is_minus_eta_times_the_readout_gradient() -> None:
    # with the spikes fixed, y^t = kappa y^(t-1) + W_out z^t, so d(sum_t L^t . y^t)/dW_out
    # = sum_t L^t z_hat^t exactly: the readout rule is the gradient of that linear loss
    cfg = _cfg()
    w, trial, kappa = _spiking_trial(cfg)
    sig = torch.randn(cfg.task.n_steps, 2, 2, generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64)
    dw = delta_w_out(trial, sig, 0.25, kappa)
    for b in range(2):  # per task: the gradient of that task's loss
        w_b = w['w_out'].clone().requires_grad_(True)
        yb = torch.zeros(2, dtype=torch.float64)
        lb = torch.zeros((), dtype=torch.float64)
        for t in range(cfg.task.n_steps):
            yb = kappa * yb + w_b @ trial.z[t, b]
            lb = lb + (sig[t, b] * yb).sum()
        (gb,) = torch.autograd.grad(lb, w_b)
        torch.testing.assert_close(dw[b], -0.25 * gb, rtol=1e-12, atol=1e-12)


def test_update_and_test_checks_the_signal_count() -> None:
    cfg = _cfg()
    sub = FunctionalSubstrate(FloatBackend(), _weights(cfg), 1)
    with pytest.raises(ShapeError, match=r'\(time, batch, 42\)'):
        update_and_test(sub, _signal(cfg)[..., :N_REC], cfg)


@pytest.mark.parametrize('preset', ['ideal', 'paper_code'])
def test_readout_update_crossbar_equals_the_batched_path(preset: str) -> None:
    # the same loop on the node's crossbar and on the batched model: the readout rows change
    # by the rounded e-prop readout update on both, and the test trials agree
    quiet = {'drift': False, 'read_noise': False, 'prog_noise': False, 'deploy_jitter': 0.0}
    cfg = _cfg(preset, **quiet)
    w = _weights(cfg)
    sig = _signal(cfg)
    a = update_and_test(FunctionalSubstrate(PCMModel(cfg.pcm), w, 1,
                                            torch.Generator().manual_seed(0)), sig, cfg)
    assert a.dw_out is not None
    dq_out = quantize_delta(a.dw_out[0], cfg.pcm.delta_w_step, stochastic=False)
    assert int((dq_out != 0).sum()) > 20  # the readout really moves
    torch.testing.assert_close(a.w_out[0], w['w_out'] + dq_out, rtol=0, atol=1e-6)
    xb = Crossbar(cfg.pcm, N_REC + 2, 5 + N_REC, 0)
    xb.program(pack_trainee(w['w_in'], w['w_rec'], w['w_out']), 0.0)
    sub = CrossbarSubstrate(xb, 1.0, 5, cfg.eprop, fast=False)
    b = update_and_test(sub, sig, cfg)
    assert_same_readout_loop(a, b, sub, dq_out)
    # without the readout signals' effect (L_out = 0) the readout stays as deployed
    sig0 = sig.clone()
    sig0[..., N_REC:] = 0.0
    c = update_and_test(FunctionalSubstrate(FloatBackend(), w, 1), sig0, cfg)
    torch.testing.assert_close(c.w_out[0], w['w_out'], rtol=0, atol=0)


def test_accelerator_learns_and_restores_the_readout() -> None:
    cfg = _cfg('ideal')
    w = {k: v.numpy() for k, v in _weights(cfg).items()}
    lsg_w_out = np.zeros((N_REC + 2, cfg.lsg.n_rec), np.float32)
    lsg_w_out[:] = 1.0  # the bound check: this LSG can emit up to ~200/(1-kappa^5) per signal
    acc = Accelerator(cfg, {**{f'trainee.{k}': v for k, v in w.items()},
                            'lsg.w_out': lsg_w_out}, 0.0, seed=3)
    before = acc.crossbar.w_target
    sig = _signal(cfg)[:, 0, :].numpy()
    with pytest.raises(ShapeError, match=r'\(249, 42\)'):
        acc.adapt(sig[:, :N_REC], 1.0)
    out = acc.adapt(sig, 1.0)
    _, _, w_out = unpack_trainee(acc.crossbar.w_target, cfg.trainee.n_in)
    assert out.dq_out is not None and int((out.dq_out != 0).sum()) > 20
    np.testing.assert_allclose(w_out.numpy(), w['w_out'] + out.dq_out.numpy(), atol=1e-6)
    assert not np.allclose(out.omega_adapted, out.omega_baseline)
    assert acc.restore(out, 2.0) == out.devices_programmed
    torch.testing.assert_close(acc.crossbar.w_target, before, atol=1e-6, rtol=0)


def test_meta_training_reaches_the_readout_signals() -> None:
    # the LSG gets n_rec + n_out readouts, and the outer gradient reaches the readout signals'
    # LSG weights (they shape the trainee's readout update, so the loss depends on them)
    from l2l_nmhw_ros.l2l.meta import MetaTrainer

    cfg = C.from_dict({'trainee': {'n_rec': N_REC}, 'lsg': {'n_rec': 30},
                       'eprop': {'update_w_out': True},
                       'meta': {'batch_size': 2, 'pcm_in_loop': False}})
    tr = MetaTrainer(cfg)
    assert tuple(tr.params['lsg.w_out'].shape) == (N_REC + 2, 30)
    tr.step()
    g = tr.params['lsg.w_out'].grad
    assert g is not None and float(g[N_REC:].abs().sum()) > 0.0


def test_init_from_a_checkpoint_without_readout_learning_keeps_its_motion(tmp_path) -> None:
    # train --init-from carries a paper-style checkpoint into a readout-learning configuration
    # with another omega_scale: zero readout signals and a rescaled readout, so the adapted joint
    # paths are the same as the source's (float, no quantisation)
    from l2l_nmhw_ros.l2l.inner import adapt
    from l2l_nmhw_ros.l2l.meta import MetaTrainer
    from l2l_nmhw_ros.l2l.tasks import integrate_omega, sample_mixed

    base = {'trainee': {'n_rec': N_REC}, 'lsg': {'n_rec': 30},
            'meta': {'batch_size': 2, 'pcm_in_loop': False}}
    src = MetaTrainer(C.from_dict(base))
    with torch.no_grad():
        src.params['trainee.w_in'].mul_(3.0)  # spikes in the small network
    src.save(str(tmp_path / 'src'))
    cfg = C.from_dict({**base, 'eprop': {'update_w_out': True},
                       'task': {'omega_scale': 0.001}})
    dst = MetaTrainer(cfg)
    dst.init_from(str(tmp_path / 'src'))
    assert dst.iteration == 0
    torch.testing.assert_close(dst.params['lsg.w_out'][N_REC:], torch.zeros(2, 30))
    torch.testing.assert_close(dst.params['trainee.w_out'], src.params['trainee.w_out'] * 10)
    tasks = sample_mixed(['reach'], src.cfg.task, 3, np.random.default_rng(0))
    with torch.no_grad():
        a = adapt(src.trainee_weights(), src.lsg_weights(), tasks, src.cfg)
        b = adapt(dst.trainee_weights(), dst.lsg_weights(), tasks, cfg)
    assert int(a.n_programmed.sum()) > 0 and float(a.test.z.sum()) > 100
    qa = integrate_omega(a.test.y, tasks.q0.unsqueeze(0), src.cfg.task.omega_scale)
    qb = integrate_omega(b.test.y, tasks.q0.unsqueeze(0), cfg.task.omega_scale)
    torch.testing.assert_close(qb, qa, rtol=1e-4, atol=1e-5)
    assert float(qa.abs().max()) > 1e-3
    # from a readout-learning checkpoint to another omega scale: the readout-signal rows scale
    # with the readout, so the readout UPDATE moves the arm as before
    with torch.no_grad():
        dst.params['lsg.w_out'][N_REC:] = 0.02 * torch.randn(
            2, 30, generator=torch.Generator().manual_seed(5))
    dst.save(str(tmp_path / 'dst'))
    cfg2 = C.from_dict({**base, 'eprop': {'update_w_out': True},
                        'task': {'omega_scale': 0.0005}})
    dst2 = MetaTrainer(cfg2)
    dst2.init_from(str(tmp_path / 'dst'))
    with torch.no_grad():
        c = adapt(dst.trainee_weights(), dst.lsg_weights(), tasks, cfg)
        d = adapt(dst2.trainee_weights(), dst2.lsg_weights(), tasks, cfg2)
    assert float(c.dw_out.abs().max()) > 1e-3  # the readout update is not negligible
    qc = integrate_omega(c.test.y, tasks.q0.unsqueeze(0), cfg.task.omega_scale)
    qd = integrate_omega(d.test.y, tasks.q0.unsqueeze(0), cfg2.task.omega_scale)
    torch.testing.assert_close(qd, qc, rtol=1e-4, atol=1e-5)
    assert float((qc - qb).abs().max()) > 1e-3  # and it differs from no readout update
    # a tensor that cannot be carried over is refused
    with pytest.raises(Exception, match='lsg.w_in'):
        MetaTrainer(C.from_dict({**base, 'lsg': {'n_rec': 31}})).init_from(str(tmp_path / 'src'))


def test_init_from_carries_adam_over(tmp_path) -> None:
    # the source's Adam moments come along, transformed like the weights: the readout's
    # gradient scales with 1 / (weight scale), so its moments by r and r^2 (r = new/old scale)
    from l2l_nmhw_ros.l2l.meta import MetaTrainer

    base = {'trainee': {'n_rec': N_REC}, 'lsg': {'n_rec': 30},
            'meta': {'batch_size': 2, 'pcm_in_loop': False}}
    src = MetaTrainer(C.from_dict(base))
    with torch.no_grad():
        src.params['trainee.w_in'].mul_(3.0)
    src.step()
    src.save(str(tmp_path / 'src'))
    st = src.optimizer.state_dict()['state']
    dst = MetaTrainer(C.from_dict({**base, 'eprop': {'update_w_out': True},
                                   'task': {'omega_scale': 0.001}}))
    dst.init_from(str(tmp_path / 'src'))
    got = dst.optimizer.state_dict()['state']
    torch.testing.assert_close(got[0]['exp_avg_sq'], st[0]['exp_avg_sq'])  # trainee.w_in
    torch.testing.assert_close(got[2]['exp_avg'], st[2]['exp_avg'] * 0.1)  # trainee.w_out
    torch.testing.assert_close(got[2]['exp_avg_sq'], st[2]['exp_avg_sq'] * 0.01)
    torch.testing.assert_close(got[5]['exp_avg'][:N_REC], st[5]['exp_avg'])  # lsg.w_out
    torch.testing.assert_close(got[5]['exp_avg'][N_REC:], torch.zeros(2, 30))
    assert float(got[5]['step']) == 1.0
    dst.step()  # and training goes on from there
    assert dst.iteration == 1


def test_clip_trainee_keeps_the_meta_parameters_programmable() -> None:
    # meta.clip_trainee: after a step every trainee weight is within +-pcm.w_max (the LSG, which
    # stays in software, is not clipped); off (the paper), the weights may leave the range
    from l2l_nmhw_ros.l2l.meta import MetaTrainer

    base = {'trainee': {'n_rec': N_REC}, 'lsg': {'n_rec': 30},
            'meta': {'batch_size': 2, 'pcm_in_loop': False}}
    for clip in (False, True):
        tr = MetaTrainer(C.from_dict({**base, 'meta': {**base['meta'], 'clip_trainee': clip}}))
        with torch.no_grad():
            tr.params['trainee.w_in'].mul_(6.0)  # ~40 % of W_in beyond +-1
            tr.params['lsg.w_in'].mul_(6.0)
        tr.step()
        beyond = float(tr.params['trainee.w_in'].abs().max())
        assert (beyond <= 1.0) if clip else (beyond > 1.5)
        assert float(tr.params['lsg.w_in'].abs().max()) > 1.5  # the LSG is never clipped


# ---- eprop.readout_signal = error: the readout learns from e-prop's output error against the ONE
# demonstration, L_out = y - y* (Bellec et al. 2020); the signal's last n_out channels carry y*
# from the planner to the chip.

def _cfg_error(readout_signal: str = 'error', eta_out: float = 1e-4, **extra: object
         ) -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': 'ideal', 'stochastic_rounding': False},
                        'trainee': {'n_rec': N_REC},
                        'eprop': {'update_w_out': True, 'eta_out': eta_out,
                                  'update_w_in': False, 'update_w_rec': False,
                                  'readout_signal': readout_signal}, **extra})


def _target(cfg: C.L2LConfig, batch: int = 1) -> torch.Tensor:
    """A smooth y* (time, batch, n_out): a bump per readout, like a reach's velocity."""
    t = torch.linspace(0.0, 1.0, cfg.task.n_steps)[:, None, None]
    amp = torch.tensor([3.0, -2.0])[None, None, :] * torch.arange(1, batch + 1)[None, :, None]
    return amp * torch.sin(math.pi * t) ** 2


def test_config_refuses_an_unknown_readout_signal() -> None:
    assert C.L2LConfig().eprop.readout_signal == 'lsg'  # the default stays the LSG's
    with pytest.raises(C.ConfigError, match='readout_signal'):
        C.from_dict({'eprop': {'readout_signal': 'oracle'}})


def test_compose_signal_puts_the_demonstration_in_the_readout_channels() -> None:
    cfg = _cfg_error()
    lsg = torch.arange(5 * (N_REC + 2), dtype=torch.float32).reshape(5, N_REC + 2)
    y_star = torch.tensor([[1.0, -1.0]] * 5)
    sig = compose_signal(cfg, lsg, y_star)
    torch.testing.assert_close(sig[:, :N_REC], lsg[:, :N_REC], rtol=0, atol=0)
    torch.testing.assert_close(sig[:, N_REC:], y_star, rtol=0, atol=0)
    # the LSG's readout channels stay where the readout learns from them (or not at all)
    assert compose_signal(_cfg_error('lsg'), lsg, y_star) is lsg
    with pytest.raises(ShapeError, match='compose_signal'):
        compose_signal(cfg, lsg, y_star[:4])
    with pytest.raises(ShapeError, match='compose_signal'):
        compose_signal(cfg, lsg[:, :N_REC], y_star)


def test_error_update_is_the_gradient_step_on_the_squared_error() -> None:
    # spikes fixed: y^t = kappa y^(t-1) + W_out z^t, so -eta_out sum_t (y - y*) z_hat
    # = -eta_out d/dW_out (1/2 sum_t |y^t - y*^t|^2), per task
    cfg = _cfg_error(eta_out=0.25)
    w, trial, kappa = _spiking_trial(cfg)
    y_star = _target(cfg, 2).double()
    dw = delta_w_out(trial, readout_error(cfg, trial, y_star), 0.25, kappa)
    for b in range(2):
        w_b = w['w_out'].clone().requires_grad_(True)
        yb = torch.zeros(2, dtype=torch.float64)
        loss = torch.zeros((), dtype=torch.float64)
        for t in range(cfg.task.n_steps):
            yb = kappa * yb + w_b @ trial.z[t, b]
            loss = loss + 0.5 * ((yb - y_star[t, b]) ** 2).sum()
        torch.testing.assert_close(yb.detach(), trial.y[-1, b], rtol=1e-10, atol=1e-10)
        (g,) = torch.autograd.grad(loss, w_b)
        torch.testing.assert_close(dw[b], -0.25 * g, rtol=1e-10, atol=1e-12)
    # the LSG setting passes its signal through unchanged
    torch.testing.assert_close(readout_error(_cfg_error('lsg'), trial, y_star), y_star)


def test_each_update_recomputes_the_error_and_approaches_the_demonstration() -> None:
    # float weights, only the readout learns: the spikes stay those of the first trial, so each
    # update is a gradient step on the same quadratic and the error falls update by update
    cfg = _cfg_error(eta_out=2e-5)
    w = _weights(cfg)
    y_star = _target(cfg)
    sig = torch.cat([torch.zeros(cfg.task.n_steps, 1, N_REC), y_star], dim=-1)
    errs = []
    for n in (0, 1, 2, 3):
        res = update_and_test(FunctionalSubstrate(FloatBackend(), w, 1), sig, cfg, n_updates=n)
        errs.append(float(((res.test.y - y_star) ** 2).mean()))
    assert errs[0] > 1.0
    assert errs[1] < 0.8 * errs[0] and errs[2] < errs[1] and errs[3] < errs[2], errs
    # two updates = two steps by hand (the second from the first one's new error)
    res = update_and_test(FunctionalSubstrate(FloatBackend(), w, 1), sig, cfg, n_updates=2)
    kappa = math.exp(-cfg.task.dt / cfg.trainee.tau_out)
    w_out = w['w_out'].clone()
    for _ in range(2):
        y = torch.einsum('kj,tbj->tbk', w_out, _z_hat(res.learn.z, kappa))
        w_out = w_out - 2e-5 * torch.einsum('tbk,tbj->kj', y - y_star, _z_hat(res.learn.z, kappa))
    torch.testing.assert_close(res.w_out[0], w_out, rtol=1e-4, atol=1e-6)


def _z_hat(z: torch.Tensor, kappa: float) -> torch.Tensor:
    out, acc = torch.zeros_like(z), torch.zeros_like(z[0])
    for t in range(z.shape[0]):
        acc = kappa * acc + z[t]
        out[t] = acc
    return out


def _lsg(cfg: C.L2LConfig) -> dict[str, np.ndarray]:
    g = torch.Generator().manual_seed(4)
    w = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), N_REC + 2, g)
    return {f'lsg.{k}': v.numpy() for k, v in w.items()}


def test_accelerator_learns_from_the_demonstration_and_bounds_it() -> None:
    cfg = _cfg_error(eta_out=2e-5)
    w = {f'trainee.{k}': v.numpy() for k, v in _weights(cfg).items()}
    acc = Accelerator(cfg, {**w, **_lsg(cfg)}, 0.0, seed=3)
    y_star = 10.0 * _target(cfg)[:, 0, :].numpy()  # updates of whole 1/16 steps
    sig = np.concatenate([np.zeros((cfg.task.n_steps, N_REC), np.float32), y_star], axis=1)
    out = acc.adapt(sig, 1.0)
    before = float(((out.omega_baseline - y_star) ** 2).mean())
    after = float(((out.omega_adapted - y_star) ** 2).mean())
    assert out.dq_out is not None and int((out.dq_out != 0).sum()) > 5
    assert after < 0.8 * before, (before, after)
    # a y* no demonstration inside the safe joint ranges can ask for is refused
    bound = demonstration_bound(cfg)
    assert bound.shape == (2,)
    assert float(bound[0]) == pytest.approx(
        (cfg.task.joint_hi[0] - cfg.task.joint_lo[0]) / cfg.task.omega_scale)
    bad = sig.copy()
    bad[10, N_REC + 1] = 1.01 * float(bound[1])
    with pytest.raises(RejectedInput, match='readout target y\\* of readout 1'):
        acc.adapt(bad, 2.0)


def test_planner_sends_the_demonstration_as_the_readout_channels() -> None:
    cfg = C.from_dict({'trainee': {'n_rec': N_REC, 'n_out': 3},
                       'task': {'learned_joints': ['base_joint', 'shoulder', 'elbow'],
                                'joint_lo': [-2.0, -1.0, -1.0], 'joint_hi': [2.0, 1.0, 1.0]},
                       'eprop': {'update_w_out': True, 'readout_signal': 'error'}})
    g = torch.Generator().manual_seed(4)
    lsg = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), N_REC + 3, g)
    planner = ReachPlanner(cfg, {k: v.numpy() for k, v in lsg.items()})
    q = planner.home.copy()
    q[list(planner.learned_idx)] += [0.3, 0.2, 0.1]
    demo = planner.plan(planner.fk(q))
    sig = planner.learning_signal(demo)
    assert sig.shape == (cfg.task.n_steps, N_REC + 3)
    np.testing.assert_allclose(sig[:, N_REC:], demo.omega, rtol=1e-6, atol=1e-6)
    assert np.abs(demo.omega).max() > 0.1  # it moves (0.3 rad in 249 steps of 0.01 rad)
