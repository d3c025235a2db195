"""``eprop.readout_signal = error``: the readout learns from e-prop's output error against the ONE
demonstration, L_out = y - y* (Bellec et al. 2020), instead of the LSG's readout signals; the
signal's last n_out channels carry y* from the planner to the chip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import RejectedInput, ShapeError
from l2l_nmhw_ros.l2l.inner import (FloatBackend, compose_signal, readout_error,
                                    update_and_test)
from l2l_nmhw_ros.l2l.substrate import FunctionalSubstrate
from l2l_nmhw_ros.reach.accelerator import Accelerator, demonstration_bound
from l2l_nmhw_ros.reach.episode import ReachPlanner
from l2l_nmhw_ros.snn.eprop import delta_w_out
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial

N_REC = 40


def _cfg(readout_signal: str = 'error', eta_out: float = 1e-4, **extra: object
         ) -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': 'ideal', 'stochastic_rounding': False},
                        'trainee': {'n_rec': N_REC},
                        'eprop': {'update_w_out': True, 'eta_out': eta_out,
                                  'update_w_in': False, 'update_w_rec': False,
                                  'readout_signal': readout_signal}, **extra})


def _weights(cfg: C.L2LConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    w = init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(seed))
    w['w_in'] = (w['w_in'] * 3.0).clamp(-0.55, 0.55)  # a small net that spikes
    w['w_rec'] = w['w_rec'].clamp(-0.55, 0.55) * (1 - torch.eye(N_REC))
    w['w_out'] = w['w_out'] * 20.0
    return w


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
    cfg = _cfg()
    lsg = torch.arange(5 * (N_REC + 2), dtype=torch.float32).reshape(5, N_REC + 2)
    y_star = torch.tensor([[1.0, -1.0]] * 5)
    sig = compose_signal(cfg, lsg, y_star)
    torch.testing.assert_close(sig[:, :N_REC], lsg[:, :N_REC], rtol=0, atol=0)
    torch.testing.assert_close(sig[:, N_REC:], y_star, rtol=0, atol=0)
    # the LSG's readout channels stay where the readout learns from them (or not at all)
    assert compose_signal(_cfg('lsg'), lsg, y_star) is lsg
    with pytest.raises(ShapeError, match='compose_signal'):
        compose_signal(cfg, lsg, y_star[:4])
    with pytest.raises(ShapeError, match='compose_signal'):
        compose_signal(cfg, lsg[:, :N_REC], y_star)


def test_error_update_is_the_gradient_step_on_the_squared_error() -> None:
    # spikes fixed: y^t = kappa y^(t-1) + W_out z^t, so -eta_out sum_t (y - y*) z_hat
    # = -eta_out d/dW_out (1/2 sum_t |y^t - y*^t|^2), per task
    cfg = _cfg(eta_out=0.25)
    w = {k: v.double() for k, v in _weights(cfg).items()}
    x = torch.zeros(cfg.task.n_steps, 2, cfg.trainee.n_in, dtype=torch.float64)
    x[::7] = 1.0
    trial = run_trial(w['w_in'], w['w_rec'], w['w_out'], x, cfg.trainee)
    assert float(trial.z.sum()) > 50
    kappa = math.exp(-cfg.task.dt / cfg.trainee.tau_out)
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
    torch.testing.assert_close(readout_error(_cfg('lsg'), trial, y_star), y_star)


def test_each_update_recomputes_the_error_and_approaches_the_demonstration() -> None:
    # float weights, only the readout learns: the spikes stay those of the first trial, so each
    # update is a gradient step on the same quadratic and the error falls update by update
    cfg = _cfg(eta_out=2e-5)
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
    cfg = _cfg(eta_out=2e-5)
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
