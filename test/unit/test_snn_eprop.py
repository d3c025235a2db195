"""Natural e-prop: Delta W = -eta sum_t L psi e_bar equals autograd's gradient of
E = sum_t sum_j L_j^t z_j^t (L constant) with the recurrent spike input and the reset stopped."""

from __future__ import annotations

import pytest
import torch

from l2l_nmhw_ros.config import TraineeConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.eprop import delta_w
from l2l_nmhw_ros.snn.trainee import run_trial


def _tiny(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n_in, n, n_out, t, b = 4, 7, 2, 60, 3
    cfg = TraineeConfig(n_in=n_in, n_rec=n, n_out=n_out)
    w_in = (torch.randn(n, n_in, generator=gen, dtype=torch.float64) * 0.3).requires_grad_()
    w_rec = (torch.randn(n, n, generator=gen, dtype=torch.float64) * 0.2).requires_grad_()
    w_out = torch.randn(n_out, n, generator=gen, dtype=torch.float64) * 0.1
    x = (torch.rand(t, b, n_in, generator=gen) < 0.3).double()
    signal = torch.randn(t, b, n, generator=gen, dtype=torch.float64)
    return cfg, w_in, w_rec, w_out, x, signal


def test_eprop_delta_w_equals_autograd_of_truncated_loss() -> None:
    cfg, w_in, w_rec, w_out, x, signal = _tiny()
    eta = 1e-4
    trial = run_trial(w_in, w_rec, w_out, x, cfg, eprop_truncation=True)
    # the check is meaningful only if neurons spike and psi is non-zero in places
    assert trial.z.sum() > 20
    assert (trial.psi > 0).sum() > 50
    energy = (signal * trial.z).sum()
    g_in, g_rec = torch.autograd.grad(energy, [w_in, w_rec])
    dw_in, dw_rec = delta_w(trial, signal, eta)
    # w_in / w_rec are shared by the batch: autograd sums over it
    got_in, got_rec = dw_in.sum(0), dw_rec.sum(0)
    rel_in = (got_in + eta * g_in).detach().norm() / (eta * g_in).norm()
    rel_rec = (got_rec + eta * g_rec).detach().norm() / (eta * g_rec).norm()
    assert float(rel_in) < 1e-5
    assert float(rel_rec) < 1e-5
    assert torch.all(torch.diagonal(dw_rec, dim1=-2, dim2=-1) == 0)


def test_eprop_without_truncation_differs_from_bptt() -> None:
    # guards the test above: full BPTT (recurrent path kept) must give another gradient, else the
    # truncation flag would be a no-op and the test could not fail
    cfg, w_in, w_rec, w_out, x, signal = _tiny()
    trial = run_trial(w_in, w_rec, w_out, x, cfg)
    g_in, _ = torch.autograd.grad((signal * trial.z).sum(), [w_in, w_rec])
    dw_in, _ = delta_w(trial, signal, 1.0)
    rel = (dw_in.sum(0) + g_in).norm() / g_in.norm()
    assert float(rel) > 1e-3


def test_eprop_hand_computed_single_neuron() -> None:
    # one neuron, one input, L = 1, eta = 1: dW = -sum_t psi^t x_bar^t
    cfg = TraineeConfig(n_in=1, n_rec=1, n_out=1, v_th=1.0, dampening_factor=0.3)
    w_in = torch.tensor([[0.5]], dtype=torch.float64)
    w_rec = torch.zeros(1, 1, dtype=torch.float64)
    w_out = torch.ones(1, 1, dtype=torch.float64)
    x = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64).reshape(3, 1, 1)
    trial = run_trial(w_in, w_rec, w_out, x, cfg)
    alpha = torch.exp(torch.tensor(-0.001 / 0.020, dtype=torch.float64))
    v = [0.5, 0.5 * alpha, 0.5 * alpha ** 2 + 0.5]
    xb = [1.0, alpha, alpha ** 2 + 1.0]
    psi = [0.3 * max(0.0, 1 - abs(float(vv) - 1.0)) for vv in v]
    assert torch.allclose(trial.v[:, 0, 0], torch.tensor([float(vv) for vv in v],
                                                         dtype=torch.float64))
    dw_in, _ = delta_w(trial, torch.ones(3, 1, 1, dtype=torch.float64), 1.0)
    expect = -sum(p * float(b) for p, b in zip(psi, xb, strict=True))
    assert float(dw_in[0, 0, 0]) == pytest.approx(expect, rel=1e-12)


def test_eprop_rejects_wrong_signal_shape() -> None:
    cfg, w_in, w_rec, w_out, x, signal = _tiny()
    trial = run_trial(w_in, w_rec, w_out, x, cfg)
    with pytest.raises(ShapeError, match='learning_signal'):
        delta_w(trial, signal[:, :, :3], 1e-4)
