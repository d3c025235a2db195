"""Seeded statistical checks of the emulated devices against the published formulas.

The formulas are written out again here by hand (not imported), so a slip in
``pcm/device.py`` fails these tests. Tolerances: a sample mean has SE = SD / sqrt(n), a sample SD
has relative SE = 1 / sqrt(2 (n − 1)) (normal data); each check allows 4.5 SE, so one check fails
by chance with probability 7e-6 and the whole file (about 40 checks) with < 0.03 %. A model error
of 5 % in an SD (n = 8192: SE 0.8 %) shows as about 6 SE and fails.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from scipy import stats

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.pcm import Crossbar
from l2l_nmhw_ros.pcm.characterize import characterize

K = 4.5  # tolerance in standard errors
ROWS = 16  # rows per level: 16 x 256 weights x 2 devices = 8192 devices per level
T_READ = 250e-9


def sigma_prog(g_hat: float) -> float:  # µS, Nandakumar 2019 / aihwkit at g_max = 25 µS
    return max(0.26348 + 1.9650 * g_hat - 1.1731 * g_hat ** 2, 0.0)


def nu_mu_sd(g_hat: float) -> tuple[float, float]:
    mu = min(max(-0.0155 * math.log(g_hat) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(g_hat) - 0.0059, 0.008), 0.045)
    return mu, sd


def folded(mu: float, sd: float) -> tuple[float, float]:
    """Mean and SD of |N(mu, sd^2)| by numerical integration (independent of the package)."""
    x = torch.linspace(-1.0, 1.0, 400001, dtype=torch.float64)
    p = torch.exp(-0.5 * ((x - mu) / sd) ** 2)
    p = p / p.sum()
    m = float((x.abs() * p).sum())
    return m, math.sqrt(float((x * x * p).sum()) - m * m)


def _programmed(preset: str, levels: tuple[float, ...], seed: int) -> Crossbar:
    cfg = dataclasses.replace(PCMConfig(), preset=preset, delta_w_step=0.0)
    xb = Crossbar(cfg, ROWS * len(levels), 256, seed, dtype=torch.float64)
    w = torch.tensor(levels, dtype=torch.float64).repeat_interleave(ROWS)
    xb.update(w.unsqueeze(1).expand(-1, 256).contiguous(), 0.0)  # programming noise on all
    return xb


def _level(x: torch.Tensor, i: int) -> torch.Tensor:
    """Devices of level i from a (n_devices, rows, 256) tensor, flattened."""
    return x[:, i * ROWS:(i + 1) * ROWS].reshape(-1)


LEVELS = (0.0625, 0.25, 0.5, 0.75)


@pytest.fixture
def physical() -> Crossbar:
    return _programmed('physical', LEVELS, 1)


def test_programming_noise_sd_matches_polynomial(physical: Crossbar) -> None:
    for i, g_hat in enumerate(LEVELS):
        err = _level(physical.g_plus, i) - 25.0 * g_hat
        n = err.numel()
        sd = sigma_prog(g_hat)  # >= 4 SD from the clip bounds at these levels
        assert err.std().item() == pytest.approx(sd, rel=K / math.sqrt(2 * (n - 1))), g_hat
        assert err.mean().item() == pytest.approx(0.0, abs=K * sd / math.sqrt(n)), g_hat


def test_drift_exponent_mean_and_sd(physical: Crossbar) -> None:
    for i, g_hat in enumerate(LEVELS):
        nu = _level(physical.nu[0], i)
        n = nu.numel()
        m, s = folded(*nu_mu_sd(g_hat))
        assert nu.mean().item() == pytest.approx(m, abs=K * s / math.sqrt(n)), g_hat
        assert nu.std().item() == pytest.approx(s, rel=K / math.sqrt(2 * (n - 1))), g_hat
    # at g_hat = 1/16 neither clip binds: mu = 0.0674, sd = 0.0288 (the folded law matters)
    assert nu_mu_sd(0.0625) == pytest.approx((0.06737, 0.02876), abs=1e-4)


def test_drift_power_law_of_the_mean(physical: Crossbar) -> None:
    for t in (10.0, 3600.0, 86400.0):
        ratio = (t + 20.0) / 20.0
        g_t = physical.conductances(t)[0]
        for i, g_hat in enumerate(LEVELS):
            fac = _level(g_t, i) / _level(physical.g_plus, i)
            # E[ratio^-nu] for nu = |N(mu, sd)| by integration
            mu, sd = nu_mu_sd(g_hat)
            x = torch.linspace(-1.0, 1.0, 400001, dtype=torch.float64)
            p = torch.exp(-0.5 * ((x - mu) / sd) ** 2)
            expected = float((ratio ** (-x.abs()) * p).sum() / p.sum())
            n = fac.numel()
            assert fac.mean().item() == pytest.approx(
                expected, abs=K * fac.std().item() / math.sqrt(n)), (t, g_hat)
            # and per device exactly log-linear in log time (the power law)
            slope = torch.log(fac) / math.log(ratio)
            assert torch.allclose(-slope, _level(physical.nu[0], i), atol=1e-12)


def test_physical_read_noise_sd_follows_log_time(physical: Crossbar) -> None:
    for t in (1.0, 3600.0, 86400.0):
        true = physical.conductances(t)[0]
        noisy = physical.read_conductances(t)[0]
        g_hat_prog = physical.g_plus / 25.0
        q_s = torch.clamp(0.0088 / torch.clamp(g_hat_prog ** 0.65, min=1e-3), max=0.2)
        sd = true * q_s * math.sqrt(math.log((t + 20.0 + T_READ) / (2 * T_READ)))
        for i, g_hat in enumerate(LEVELS):
            z = _level((noisy - true) / sd, i)
            n = z.numel()
            assert z.std().item() == pytest.approx(1.0, abs=K / math.sqrt(2 * (n - 1))), (t, g_hat)
            assert z.mean().item() == pytest.approx(0.0, abs=K / math.sqrt(n)), t
            assert stats.kstest(z.numpy(), 'norm').pvalue > 1e-4


def test_paper_code_read_noise_and_shared_programming() -> None:
    xb = _programmed('paper_code', (0.25, 0.75), 2)
    true = xb.conductances(5.0)[0]
    noisy = xb.read_conductances(5.0)[0]
    sd = true * torch.clamp(0.0088 / true ** 0.65, max=0.2) * math.sqrt(
        math.log((32.0 + T_READ) / T_READ))
    z = ((noisy - true) / sd).reshape(-1)
    n = z.numel()
    assert z.std().item() == pytest.approx(1.0, abs=K / math.sqrt(2 * (n - 1)))
    # the paper code draws programming noise and nu once per weight: its N devices agree
    assert torch.equal(xb.g_plus[0], xb.g_plus[1])
    assert torch.equal(xb.nu[0, 0], xb.nu[0, 1])
    err = xb.g_plus[0, :ROWS].reshape(-1) - 25.0 * 0.25
    assert err.std().item() == pytest.approx(sigma_prog(0.25),
                                             rel=K / math.sqrt(2 * (err.numel() - 1)))


def test_characterize_agrees_with_model_and_detects_a_wrong_one() -> None:
    cfg = dataclasses.replace(PCMConfig(), preset='physical')
    res = characterize(cfg, levels=(0.125, 0.5, 1.0), times=(1.0, 3600.0, 86400.0),
                       rows_per_level=8, seed=3)
    zs = [abs(r[k]['z']) for r in res['levels'] for k in ('prog_sd', 'nu_mean', 'nu_sd')]
    zs += [abs(c['z']) for r in res['levels'] for k in ('read_sd', 'drift_mean') for c in r[k]]
    assert len(zs) == 27
    assert max(zs) < K
    # at g_max the programming noise is censored by the clip: the model accounts for it
    top = res['levels'][2]['prog_sd']
    assert top['model'] < 0.7 * sigma_prog(1.0)
    # power: a device whose programming noise is 5 % larger is caught (|z| > K)
    wrong = dataclasses.replace(cfg, prog_noise_coeffs=tuple(1.05 * c for c in
                                                              cfg.prog_noise_coeffs))
    res_w = characterize(wrong, levels=(0.5,), times=(1.0,), rows_per_level=16, seed=4)
    meas = res_w['levels'][0]['prog_sd']
    assert abs(meas['measured'] - sigma_prog(0.5)) / meas['se'] > K
