"""The compiled batch-1 trial (snn.fast_trial) and the accelerator's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.reach.accelerator import Accelerator
from l2l_nmhw_ros.snn import fast_trial
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.neurons import decay_factor
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial

pytestmark = pytest.mark.skipif(not fast_trial.available(), reason='numba is not installed')

N_REC = 40


def _run(w, var, x, xi, **kw):
    kw = {'alpha': 0.5, 'v_th': 1.0, 'n_ref': 2, 'gamma': 0.3} | kw
    return fast_trial.lif_recurrent(np.array(w), np.array(var), np.array(x), np.array(xi), **kw)


def test_one_neuron_by_hand() -> None:
    # 1 input (weight 1.5, read-noise variance 0.04), 1 neuron (no autapse); alpha 0.5, v_th 1,
    # n_ref 2, gamma 0.3; input spikes at steps 0 and 2; noise sample -1 at step 0 only.
    z, v, psi, zbar = _run([[1.5, 0.0]], [[0.04, 0.0]], [[1.0], [0.0], [1.0]],
                           [[-1.0], [0.0], [0.0]])
    # t0: I = 1.5 + sqrt(0.04) * -1 = 1.3; v = 1.3; u = 0.3 > 0 -> spike; psi = 0.3 * 0.7;
    #     r = 0 + 2 - 1 = 1
    # t1: I = 0 (the neuron's own spike has no synapse); v = 0.65 - 1 (reset) = -0.35;
    #     refractory (r = 1 > 0.1): no spike, psi 0; r = 0; z̄ = 0.5 * 0 + 1 = 1
    # t2: I = 1.5; v = -0.175 + 1.5 = 1.325; u = 0.325 -> spike; psi = 0.3 * 0.675; z̄ = 0.5
    np.testing.assert_allclose(v[:, 0], [1.3, -0.35, 1.325], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(z[:, 0], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(psi[:, 0], [0.21, 0.0, 0.2025], rtol=0, atol=1e-12)
    np.testing.assert_allclose(zbar[:, 0], [0.0, 1.0, 0.5], rtol=0, atol=1e-12)


def test_read_noise_is_the_root_of_the_summed_variance_of_the_active_inputs() -> None:
    # 2 inputs (values 1 and 2), 2 neurons: I_j = Σ_i w_ji p_i + sqrt(Σ_i σ²_ji p_i²) ξ_j
    w = [[0.1, 0.2, 0.0, 0.0], [0.3, -0.1, 0.0, 0.0]]
    var = [[0.01, 0.04, 0.5, 0.5], [0.09, 0.0, 0.5, 0.5]]  # recurrent ones unused: no spikes yet
    _, v, _, _ = _run(w, var, [[1.0, 2.0]], [[0.5, -2.0]], v_th=10.0)
    expect = [0.1 + 0.4 + np.sqrt(0.01 + 0.16) * 0.5, 0.3 - 0.2 + np.sqrt(0.09) * -2.0]
    np.testing.assert_allclose(v[0], expect, rtol=0, atol=1e-12)


def test_equals_the_torch_loop_without_noise() -> None:
    cfg = C.from_dict({'trainee': {'n_rec': N_REC}})
    tc = cfg.trainee
    w = init_trainee_weights(tc, torch.Generator().manual_seed(0))
    w = {k: v.double() for k, v in w.items()}
    w['w_in'] = w['w_in'] * 3.0
    x = clock_input(cfg.task, 1, n_in=tc.n_in, dtype=torch.float64)
    ref = run_trial(w['w_in'], w['w_rec'], w['w_out'], x, tc)
    w_rec = w['w_rec'] * (1 - torch.eye(N_REC, dtype=torch.float64))
    wm = torch.cat([w['w_in'], w_rec], dim=1).numpy()
    z, v, psi, zbar = fast_trial.lif_recurrent(
        wm, np.zeros_like(wm), x[:, 0].numpy(), np.zeros((x.shape[0], N_REC)),
        alpha=decay_factor(tc.tau_m, cfg.task.dt), v_th=tc.v_th, n_ref=tc.n_ref,
        gamma=tc.dampening_factor)
    assert ref.z.sum() > 100
    np.testing.assert_array_equal(z, ref.z[:, 0].numpy())
    for got, want in ((v, ref.v), (psi, ref.psi), (zbar, ref.z_bar)):
        np.testing.assert_allclose(got, want[:, 0].numpy(), rtol=0, atol=1e-12)


def test_shapes_are_checked() -> None:
    with pytest.raises(ShapeError, match='var_w'):
        _run([[1.0, 0.0]], [[1.0]], [[1.0]], [[0.0]])
    with pytest.raises(ShapeError, match='x: expected'):
        _run([[1.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]], [[0.0]])
    with pytest.raises(ShapeError, match='xi: expected'):
        _run([[1.0, 0.0]], [[0.0, 0.0]], [[1.0]], [[0.0, 0.0]])


def _accelerators(read_noise: bool) -> tuple[Accelerator, Accelerator]:
    cfg = C.from_dict({'pcm': {'preset': 'paper_code', 'read_noise': read_noise},
                       'trainee': {'n_rec': N_REC}})
    w = init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(0))
    w['w_in'] = w['w_in'] * 3.0
    w = {k: v.numpy() for k, v in w.items()}
    # same seed: the same devices (programming noise, drift exponents)
    return (Accelerator(cfg, w, 0.0, seed=4, fast=True),
            Accelerator(cfg, w, 0.0, seed=4, fast=False))


def test_accelerator_fast_trial_equals_its_torch_trial_without_read_noise() -> None:
    fast, slow = _accelerators(read_noise=False)
    a, b = fast.run_trial(3600.0), slow.run_trial(3600.0)
    assert b.z.sum() > 100
    torch.testing.assert_close(a.z, b.z, rtol=0, atol=0)
    for name in ('v', 'psi', 'z_bar', 'y', 'x_bar'):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=2e-5,
                                   msg=name)


@pytest.mark.parametrize('fast', [True, False], ids=['compiled', 'torch'])
def test_accelerator_trial_read_noise_is_the_crossbar_model(fast: bool) -> None:
    # Recover the noise of one noisy trial from what it returns: the synaptic current
    # I^t = v^t - alpha v^{t-1} + v_th z^{t-1} minus W [x^t; z^{t-1}], and the readout input
    # y_in^t = y^t - kappa y^{t-1} minus W_out z^t, each divided by the SD the crossbar model
    # gives, sqrt(sum_i sigma_i^2 p_i^2), must be standard normal (~6,800 and ~300 samples).
    acc = _accelerators(read_noise=True)[0 if fast else 1]
    cfg, t = acc.cfg, 3600.0
    tc, dt, n, n_in = cfg.trainee, cfg.task.dt, N_REC, cfg.trainee.n_in
    w = acc.crossbar.effective_weights(t).double().numpy()
    var = acc.crossbar.read_noise_sd(t).double().numpy() ** 2
    r = acc.run_trial(t)
    z, v, y = (a[:, 0].double().numpy() for a in (r.z, r.v, r.y))
    x = acc.x[:, 0].double().numpy()
    alpha, kappa = decay_factor(tc.tau_m, dt), decay_factor(tc.tau_out, dt)
    z_prev = np.vstack([np.zeros((1, n)), z[:-1]])
    v_prev = np.vstack([np.zeros((1, n)), v[:-1]])
    pre = np.hstack([x, z_prev])
    current = v - alpha * v_prev + tc.v_th * z_prev
    sd = np.sqrt((pre * pre) @ var[:n].T)
    res = (current - pre @ w[:n].T)[sd > 0] / sd[sd > 0]
    y_in = y - kappa * np.vstack([np.zeros((1, y.shape[1])), y[:-1]])
    sd_out = np.sqrt((z * z) @ var[n:, n_in:].T)
    res_out = (y_in - z @ w[n:, n_in:].T)[sd_out > 0] / sd_out[sd_out > 0]
    assert res.size > 5000 and res_out.size > 200
    # SD tolerance: 6 standard errors (1/sqrt(2N)); a variance off by 2x moves the SD by 41 %
    for e, name in ((res, 'synaptic'), (res_out, 'readout')):
        assert abs(e.mean()) < 4 / np.sqrt(e.size), (name, e.mean())
        assert abs(e.std() - 1.0) < 6 / np.sqrt(2 * e.size), (name, e.std(), e.size)


def test_fast_without_numba_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_trial, 'numba', None)
    cfg = C.from_dict({'pcm': {'preset': 'ideal'}, 'trainee': {'n_rec': N_REC}})
    w = {k: v.numpy() for k, v in
         init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(0)).items()}
    with pytest.raises(RuntimeError, match='numba'):
        Accelerator(cfg, w, 0.0, seed=1, fast=True)
    assert not Accelerator(cfg, w, 0.0, seed=1).fast  # default: falls back to the torch loop
