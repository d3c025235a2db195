"""PCMModel: the differentiable functional PCM model (deploy / quantize / reprogram / mvm)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from scipy import stats

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.pcm import PCMModel
from l2l_nmhw_ros.pcm import device

STEP = 1.0 / 16.0


def _model(**kw: object) -> PCMModel:
    # deterministic rounding unless a test asks otherwise: the hand cases assume it
    return PCMModel(dataclasses.replace(PCMConfig(), **{'stochastic_rounding': False, **kw}))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- device formulas on hand-computed cases ---------------------------------------------------
def test_sigma_prog_matches_polynomial_and_rescales_with_g_max() -> None:
    cfg = PCMConfig()
    g_hat = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    # c0 + c1 g + c2 g^2 with c = 0.26348, 1.9650, -1.1731
    expected = [0.26348, 0.26348 + 0.19650 - 0.011731, 0.26348 + 0.9825 - 0.293275,
                0.26348 + 1.9650 - 1.1731]
    assert device.sigma_prog(g_hat, cfg).tolist() == pytest.approx(expected, rel=1e-12)
    cfg50 = dataclasses.replace(cfg, g_max=50.0)
    # aihwkit: sigma / g_max is the same function of g_hat for every g_max
    assert (device.sigma_prog(g_hat, cfg50) / 50.0).tolist() == pytest.approx(
        (device.sigma_prog(g_hat, cfg) / 25.0).tolist(), rel=1e-12)


def test_nu_statistics_formulas_and_zero_guard() -> None:
    cfg = PCMConfig()
    g_hat = torch.tensor([0.0, 0.01, 0.2, 0.5], dtype=torch.float64)
    mu = [min(max(-0.0155 * math.log(max(g, 1e-7)) + 0.0244, 0.049), 0.1) for g in g_hat.tolist()]
    sd = [min(max(-0.0125 * math.log(max(g, 1e-7)) - 0.0059, 0.008), 0.045)
          for g in g_hat.tolist()]
    assert device.nu_mean(g_hat, cfg).tolist() == pytest.approx(mu, rel=1e-12)
    assert device.nu_std(g_hat, cfg).tolist() == pytest.approx(sd, rel=1e-12)
    # 0.01: mu = 0.0958 (inside the bounds), sd = 0.0517 -> capped at 0.045
    assert device.nu_mean(g_hat, cfg)[1].item() == pytest.approx(0.0958, abs=1e-4)
    assert device.nu_std(g_hat, cfg)[1].item() == 0.045
    assert torch.isfinite(device.sample_nu(torch.zeros(10), cfg, _gen())).all()


def test_paper_code_read_noise_sd_hand_values() -> None:
    # paper-notes §3: about 0.027 uS at 1 uS and 0.083 uS at 25 uS (2 devices averaged, t = 32 s)
    m = _model()
    w = torch.tensor([[1.0, 1.0 / 25.0, 0.0, -1.0]], dtype=torch.float64)
    sd = m.read_noise_sd(w)[0] * 25.0  # in uS
    log_term = math.sqrt(math.log((32.0 + 250e-9) / 250e-9))
    g25 = 25.0 * min(0.0088 / 25.0 ** 0.65, 0.2) * log_term / math.sqrt(2.0)
    g1 = 1.0 * 0.0088 * log_term / math.sqrt(2.0)
    assert sd.tolist() == pytest.approx([g25, g1, 0.0, g25], rel=1e-12)
    assert g25 == pytest.approx(0.0829, abs=5e-4)
    assert g1 == pytest.approx(0.0269, abs=5e-4)


def test_physical_read_noise_sd_uses_aihwkit_form() -> None:
    m = _model(preset='physical', t_inference=100.0)
    w = torch.tensor([[0.5]], dtype=torch.float64)
    t = 100.0 + 20.0
    expected = 12.5 * min(0.0088 / 0.5 ** 0.65, 0.2) * math.sqrt(
        math.log((t + 250e-9) / (2 * 250e-9))) / math.sqrt(2.0) / 25.0
    assert m.read_noise_sd(w).item() == pytest.approx(expected, rel=1e-12)


# ---- ideal preset ------------------------------------------------------------------------------
def test_ideal_is_exactly_the_float_model() -> None:
    m = _model(preset='ideal')
    g = _gen(1)
    w = torch.randn(3, 7, 5, generator=g) * 1.5
    x = torch.rand(3, 5, generator=g)
    w_eff = m.deploy(w)
    assert torch.equal(w_eff, w)
    y = m.mvm(x, w_eff)
    assert torch.equal(y, torch.matmul(w, x.unsqueeze(-1)).squeeze(-1))
    w2 = torch.randn(7, 5, generator=g)
    assert torch.equal(m.mvm(x, w2), x @ w2.T)
    dw = torch.full((3, 7, 5), 0.1)
    w_new, n = m.reprogram(w_eff, dw)
    assert torch.equal(w_new, w + 0.125)  # 0.1 rounds to 2/16
    assert n.shape == (3,)


def test_read_noise_off_flag_gives_exact_mvm_in_paper_code() -> None:
    m = _model(read_noise=False)
    w = torch.rand(4, 6, generator=_gen(2)) - 0.5
    x = torch.rand(2, 6, generator=_gen(3))
    assert torch.equal(m.mvm(x, w), x @ w.T)


# ---- quantisation -----------------------------------------------------------------------------
def test_quantize_deterministic_hand_cases() -> None:
    m = _model()
    dw = torch.tensor([0.03, 0.032, -0.1, 0.5, 1.5 * STEP, 0.5 * STEP, -2.5 * STEP])
    # round half to even as tf.math.round: 1.5 -> 2, 0.5 -> 0, -2.5 -> -2
    expected = [0.0, STEP, -2 * STEP, 0.5, 2 * STEP, 0.0, -2 * STEP]
    assert m.quantize(dw).tolist() == expected
    assert torch.equal(_model(delta_w_step=0.0).quantize(dw), dw)


def test_quantize_stochastic_is_unbiased_on_the_grid() -> None:
    m = _model(stochastic_rounding=True)
    n = 20000
    dw = torch.full((n,), -1.3 * STEP, dtype=torch.float64)
    q = m.quantize(dw, _gen(4)) / STEP
    assert set(q.unique().tolist()) <= {-1.0, -2.0}
    # P(-2) = 0.3; SD of the proportion sqrt(0.3*0.7/n) = 0.0032; tolerance 5 SD
    assert (q == -2.0).double().mean().item() == pytest.approx(0.3, abs=5 * 0.0032)


# ---- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize('preset', ['paper_code', 'physical', 'ideal'])
def test_gradients_are_straight_through(preset: str) -> None:
    m = _model(preset=preset)
    g = _gen(5)
    w = (torch.rand(2, 4, 3, generator=g) * 2.4 - 1.2).requires_grad_()
    w_eff = m.deploy(w, g)
    (gw,) = torch.autograd.grad(w_eff.sum(), w)
    assert torch.equal(gw, torch.ones_like(w))
    dw = (torch.rand(2, 4, 3, generator=g) * 0.2 - 0.1).requires_grad_()
    w_eff2 = w_eff.detach().requires_grad_()
    w_new, _ = m.reprogram(w_eff2, dw, g)
    g_eff, g_dw = torch.autograd.grad(w_new.sum(), (w_eff2, dw))
    assert torch.equal(g_eff, torch.ones_like(w_eff2))
    assert torch.equal(g_dw, torch.ones_like(dw))
    x = torch.rand(2, 3, generator=g).requires_grad_()
    w_r = w_new.detach().requires_grad_()
    y = m.mvm(x, w_r, g)
    up = torch.rand(y.shape, generator=g)
    gx, gwr = torch.autograd.grad((y * up).sum(), (x, w_r))
    gx_ref, gw_ref = torch.autograd.grad((m_exact := (torch.matmul(
        w_r, x.unsqueeze(-1)).squeeze(-1)) * up).sum(), (x, w_r))
    assert m_exact.shape == y.shape
    assert torch.allclose(gx, gx_ref)
    assert torch.allclose(gwr, gw_ref)


# ---- deploy and reprogram semantics -----------------------------------------------------------
def test_paper_code_deploy_hand_cases_and_quirk() -> None:
    m = _model(drift=False)
    w = torch.tensor([[0.5, -1.7, 0.0]])
    w_eff = m.deploy(w, _gen(6))
    # no drift: clip(clip(w) + U(-0.01, 0.01) + (clip(w) - w)); for |w| > 1 the excess is
    # subtracted again (paper code quirk): clip(1 + u + 1 - 1.7) for w = -1.7 -> -(0.3 + u)
    assert abs(w_eff[0, 0].item() - 0.5) <= 0.01
    assert abs(w_eff[0, 1].item() + 0.3) <= 0.01 + 1e-7
    assert abs(w_eff[0, 2].item()) <= 0.01
    m2 = _model(deploy_jitter=0.0)
    w_big = torch.full((1000, 1), 2.0)
    # drift factor 32^-nu >= 32^-0.1 > 0.5, so clip(2 f) = 1 and w_eff = clip(1 + 1 - 2) = 0
    assert torch.equal(m2.deploy(w_big, _gen(7)), torch.zeros_like(w_big))


def test_paper_code_deploy_drift_recovers_nu_statistics() -> None:
    m = _model(deploy_jitter=0.0)
    n = 40000
    w = torch.full((n, 1), 0.02, dtype=torch.float64)
    w_eff = m.deploy(w, _gen(8))
    nu = -torch.log(w_eff / 0.02) / math.log(32.0)
    mu = min(max(-0.0155 * math.log(0.02) + 0.0244, 0.049), 0.1)  # 0.0850
    sd = min(max(-0.0125 * math.log(0.02) - 0.0059, 0.008), 0.045)  # 0.0430
    # nu = |N(mu, sd)|; P(N < 0) = Phi(-1.98) = 2.4 %, so use the folded-normal moments
    a = mu / sd
    fmean = sd * math.sqrt(2 / math.pi) * math.exp(-a * a / 2) + mu * (1 - 2 * stats.norm.cdf(-a))
    fsd = math.sqrt(mu * mu + sd * sd - fmean * fmean)
    # SE of the mean = fsd / sqrt(n); of the SD ~ fsd / sqrt(2 n); tolerance 5 SE
    assert nu.mean().item() == pytest.approx(fmean, abs=5 * fsd / math.sqrt(n))
    assert nu.std().item() == pytest.approx(fsd, abs=5 * fsd / math.sqrt(2 * n))


@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_reprogram_changes_only_masked_entries_and_stays_in_range(preset: str) -> None:
    m = _model(preset=preset)
    g = _gen(9)
    w_eff = m.deploy(torch.rand(4, 30, 20, generator=g) * 2.2 - 1.1, g)
    dw = torch.randn(4, 30, 20, generator=g) * 0.08
    w_new, n = m.reprogram(w_eff, dw, g)
    mask = m.quantize(dw) != 0
    assert mask.any()
    assert (~mask).any()
    assert torch.equal(w_new[~mask], w_eff[~mask])
    assert (w_new[mask] != w_eff[mask]).float().mean().item() > 0.99
    assert w_new.abs().max().item() <= 1.0
    assert w_eff.abs().max().item() <= 1.0
    assert n.dtype == torch.int64
    assert n.shape == (4,)
    assert (n >= 2 * mask.sum(dim=(-2, -1))).all()


def test_n_programmed_counts_devices_hand_case() -> None:
    w_eff = torch.tensor([[0.5, 0.5, -STEP, 0.0, 0.3, STEP]])
    dw = torch.tensor([[STEP, 0.0, 2 * STEP, STEP, -5 * STEP, -STEP]])
    # same sign: N; unchanged: 0; sign flip: 2N; 0 -> w: N; flip: 2N; w -> 0 (RESET): N
    for preset in ('ideal', 'paper_code', 'physical'):
        _, n = _model(preset=preset).reprogram(w_eff, dw, _gen(10))
        assert n.item() == 7 * 2, preset


def test_paper_code_programming_noise_sd() -> None:
    m = _model(drift=False)
    n = 20000
    w_eff = torch.full((n, 1), 0.5 - STEP, dtype=torch.float64)
    w_new, _ = m.reprogram(w_eff, torch.full((n, 1), STEP, dtype=torch.float64), _gen(11))
    sd = (0.26348 + 0.9825 - 0.293275) / 25.0  # sigma_prog(0.5) in weight units, one per weight
    # relative SE of a sample SD = 1 / sqrt(2 n) = 0.5 %; tolerance 5 SE
    assert (w_new - 0.5).std().item() == pytest.approx(sd, rel=5 / math.sqrt(2 * n))
    assert (w_new - 0.5).mean().item() == pytest.approx(0.0, abs=5 * sd / math.sqrt(n))


def test_physical_programming_noise_averages_n_devices() -> None:
    m = _model(preset='physical', drift=False)
    n = 20000
    w, _ = m.reprogram(torch.full((n, 1), 0.5 - STEP, dtype=torch.float64),
                       torch.full((n, 1), STEP, dtype=torch.float64), _gen(12))
    sd = (0.26348 + 0.9825 - 0.293275) / 25.0 / math.sqrt(2.0)
    assert (w - 0.5).std().item() == pytest.approx(sd, rel=5 / math.sqrt(2 * n))


# ---- mvm read noise: fast path == per-device path in distribution ------------------------------
@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_mvm_fast_path_matches_per_device_noise(preset: str) -> None:
    m = _model(preset=preset)
    g = _gen(13)
    n_pre, n_post, reps = 64, 8, 3000
    w = torch.rand(n_post, n_pre, generator=g, dtype=torch.float64) * 2 - 1
    x = (torch.rand(n_pre, generator=g, dtype=torch.float64) < 0.5).double()
    xs = x.expand(reps, n_pre)
    exact = x @ w.T
    fast = (m.mvm(xs, w, g) - exact) .reshape(-1)
    slow = (m.mvm(xs, w, g, per_device=True) - exact).reshape(-1)
    sd = torch.sqrt((m.read_noise_sd(w) ** 2 * x * x).sum(-1)).expand(reps, n_post).reshape(-1)
    zf, zs = (fast / sd).numpy(), (slow / sd).numpy()
    # both standard normal: variance within 5 SE (SE = sqrt(2 / N), N = 24000) and same law (KS)
    n = zf.size
    assert zf.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert zs.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert stats.ks_2samp(zf, zs).pvalue > 1e-3
    assert stats.kstest(zf, 'norm').pvalue > 1e-3


def test_mvm_broadcasts_batched_weights_and_time() -> None:
    m = _model(read_noise=False)
    g = _gen(14)
    w = torch.rand(3, 4, 5, generator=g)
    x = torch.rand(7, 3, 5, generator=g)
    y = m.mvm(x, w)
    assert y.shape == (7, 3, 4)
    assert torch.allclose(y[2, 1], w[1] @ x[2, 1])


def test_float64_is_kept() -> None:
    m = _model()
    w = torch.rand(3, 4, dtype=torch.float64)
    w_eff = m.deploy(w, _gen(15))
    assert w_eff.dtype == torch.float64
    assert m.mvm(torch.rand(2, 4, dtype=torch.float64), w_eff, _gen(16)).dtype == torch.float64


# ---- validation -------------------------------------------------------------------------------
def test_bad_inputs_raise_value_errors_naming_the_argument() -> None:
    m = _model()
    w = torch.zeros(3, 4)
    with pytest.raises(ValueError, match='^w:'):
        m.deploy(torch.tensor([[float('nan')]]))
    with pytest.raises(ShapeError, match='^w:'):
        m.deploy(torch.zeros(4))
    with pytest.raises(ValueError, match='^delta_w:'):
        m.quantize(torch.tensor([float('inf')]))
    with pytest.raises(ShapeError, match='^delta_w:'):
        m.reprogram(w, torch.zeros(4, 3))
    with pytest.raises(ShapeError, match='w_eff'):
        m.reprogram(torch.zeros(2, 3, 4), torch.zeros(5, 3, 4))
    with pytest.raises(ShapeError, match='^x:'):
        m.mvm(torch.zeros(2, 5), w)
    with pytest.raises(ValueError, match='^x:'):
        m.mvm(torch.tensor([[0.0, float('nan'), 0.0, 0.0]]), w)
    with pytest.raises(ValueError, match='^w_eff:'):
        m.mvm(torch.ones(1, 4), torch.full((3, 4), float('inf')))
    with pytest.raises(ValueError, match='^x:'):
        m.mvm(torch.ones(1, 4, dtype=torch.int64), w)
