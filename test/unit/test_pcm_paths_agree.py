"""The batched model (PCMModel) and the crossbar (Crossbar) are one device model, held together.

Both paths take their physics from the preset's ``DeviceModel``; these seeded tests program the
same targets on both and compare what comes out, per preset: deployed weights (mean, SD), the
programming noise of a re-programmed weight, the drift factor, the read noise of an MVM and the
devices counted for one update. Where the laws are the same, two independent samples are compared
with a tolerance of K = 4.5 standard errors of the difference (SE of a mean s/sqrt(n), of an SD
s/sqrt(2(n − 1))); n = 16384 weights per level, so a 5 % change of an SD on one path (≈ 6 SE)
fails. The documented differences (docs/pcm.md, ``pcm/device_model.py``) are pinned by value:
targets beyond ±w_max, where paper_code drift acts, and where physical evaluates Q_s.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import ConfigError
from l2l_nmhw_ros.pcm import Crossbar, PCMModel
from l2l_nmhw_ros.pcm.characterize import folded_normal_mgf
from l2l_nmhw_ros.pcm.device_model import PRESETS, PhysicalDevice, device_model

K = 4.5
ROWS, COLS = 64, 256  # 16384 weights per level
LEVELS = (0.5, -0.25, 0.875)
QUIET = {'drift': False, 'prog_noise': False, 'read_noise': False, 'deploy_jitter': 0.0}
T_INF = PCMConfig().t_inference  # 620 s: the batched model's read time after programming


def _cfg(preset: str, **kw: object) -> PCMConfig:
    return dataclasses.replace(PCMConfig(), preset=preset, stochastic_rounding=False, **kw)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _targets(levels: tuple[float, ...] = LEVELS) -> torch.Tensor:
    """(len(levels) * ROWS, COLS) float64, level i on rows i*ROWS .. (i+1)*ROWS - 1."""
    return torch.tensor(levels, dtype=torch.float64).repeat_interleave(ROWS)[:, None].expand(
        -1, COLS).contiguous()


def _per_level(w: torch.Tensor, i: int) -> torch.Tensor:
    return w[i * ROWS:(i + 1) * ROWS].reshape(-1)


def _crossbar(cfg: PCMConfig, seed: int, levels: tuple[float, ...] = LEVELS) -> Crossbar:
    return Crossbar(cfg, len(levels) * ROWS, COLS, seed, dtype=torch.float64)


def _assert_same_law(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Means and SDs of two independent samples agree within K SE of their difference."""
    na, nb = a.numel(), b.numel()
    sa, sb = a.std().item(), b.std().item()
    se_mean = math.sqrt(sa * sa / na + sb * sb / nb)
    se_sd = math.sqrt(sa * sa / (2 * (na - 1)) + sb * sb / (2 * (nb - 1)))
    assert abs(a.mean().item() - b.mean().item()) <= K * se_mean, (what, 'mean')
    assert abs(sa - sb) <= K * se_sd, (what, 'SD', sa, sb)


# ---- one device model behind both paths -------------------------------------------------------
@pytest.mark.parametrize('preset', ['paper_code', 'physical', 'ideal'])
def test_both_paths_use_the_presets_device_model(preset: str) -> None:
    for read_noise in (True, False):
        cfg = _cfg(preset, read_noise=read_noise)
        m, xb = PCMModel(cfg), Crossbar(cfg, 3, 4, 0)
        assert type(m.device) is type(xb.device) is PRESETS[preset]
        assert m.device.name == m.preset == preset
        assert m.exact_reads == xb.exact_reads == (preset == 'ideal' or not read_noise)
    bad = PCMConfig()
    object.__setattr__(bad, 'preset', 'analog')  # bypass the config's own validation
    with pytest.raises(ConfigError, match='analog'):
        device_model(bad)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_one_time_law_for_a_float_and_a_per_device_time(dtype: torch.dtype) -> None:
    # the batched model passes one float time, the crossbar per-device float64 ages
    dev = PhysicalDevice(PCMConfig())
    nu = torch.rand(1000, generator=_gen(1), dtype=dtype) * 0.1
    g = torch.rand(1000, generator=_gen(2), dtype=dtype) * 25.0
    ages = torch.full((1000,), T_INF, dtype=torch.float64)
    rtol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(dev.drift_factor(nu, ages), dev.drift_factor(nu, T_INF),
                               rtol=rtol, atol=0.0)
    torch.testing.assert_close(dev.read_noise_sd(g, ages), dev.read_noise_sd(g, T_INF),
                               rtol=rtol, atol=0.0)
    assert dev.t_ratio(T_INF) == 32.0  # (620 + 20) / 20, the paper code's fixed ratio


# ---- deployment -------------------------------------------------------------------------------
@pytest.mark.parametrize(('preset', 'kw'), [
    ('physical', {}),  # programming noise and nu per device, read at t_inference
    ('paper_code', {'drift': False}),  # jitter U(-0.01, 0.01) per weight
    ('paper_code', {'deploy_jitter': 0.0}),  # one nu per weight, t/t0 = 32
], ids=['physical', 'paper_code-jitter', 'paper_code-drift'])
def test_deployed_weight_mean_and_sd_agree(preset: str, kw: dict[str, object]) -> None:
    cfg = _cfg(preset, **kw)
    w = _targets()
    batched = PCMModel(cfg).deploy(w, _gen(3))
    xb = _crossbar(cfg, 4)
    xb.program(w, 0.0)
    crossbar = xb.effective_weights(T_INF)
    for i, level in enumerate(LEVELS):
        a, b = _per_level(batched, i), _per_level(crossbar, i)
        _assert_same_law(a, b, (preset, level))
        assert a.std().item() > 1e-3  # the noise is there
    if preset == 'paper_code' and not cfg.drift:  # anchor: SD of U(-a, a) = a / sqrt(3)
        err = batched - w
        assert err.std().item() == pytest.approx(0.01 / math.sqrt(3),
                                                 rel=K / math.sqrt(2 * err.numel()))


def test_paper_code_default_deployment_agrees_in_the_mean() -> None:
    # jitter and drift together: the crossbar drifts the jittered conductance, the batched model
    # adds the jitter after drifting the target. Same mean; the variances differ by the
    # documented term a²/3 (1 - E[f²]) (about 1e-5, below this sample's resolution).
    cfg = _cfg('paper_code')
    w = _targets()
    batched = PCMModel(cfg).deploy(w, _gen(5))
    xb = _crossbar(cfg, 6)
    xb.program(w, 0.0)
    crossbar = xb.effective_weights(0.0)
    f = 32.0 ** -xb.nu[:, 0].sum(0)  # nu of the active polarity (0 on the RESET one)
    for i, level in enumerate(LEVELS):
        a, b = _per_level(batched, i), _per_level(crossbar, i)
        term = 0.01 ** 2 / 3 * (1.0 - (_per_level(f, i) ** 2).mean().item())
        n = a.numel()
        se_var = math.sqrt(2 / (n - 1)) * (a.var().item() + b.var().item())
        assert abs(a.mean().item() - b.mean().item()) <= K * math.sqrt(
            (a.var().item() + b.var().item()) / n), level
        assert a.var().item() - b.var().item() == pytest.approx(term, abs=K * se_var), level


def test_ideal_paths_agree_exactly_within_w_max_and_differ_beyond() -> None:
    cfg = _cfg('ideal')
    w = torch.rand(40, 30, generator=_gen(7), dtype=torch.float64) * 1.6 - 0.8
    w[::3, ::4] = 0.0
    m, xb = PCMModel(cfg), Crossbar(cfg, 40, 30, 0, dtype=torch.float64)
    w_eff = m.deploy(w)
    xb.program(w, 0.0)
    assert torch.equal(xb.effective_weights(1e4), w_eff)
    x = torch.rand(5, 30, generator=_gen(8), dtype=torch.float64)
    assert torch.equal(xb.mvm(x, 1e4), m.mvm(x, w_eff))
    dq = torch.round(torch.randn(40, 30, generator=_gen(9), dtype=torch.float64) * 3) / 16
    w_new, n = m.reprogram(w_eff, dq)
    assert xb.add(dq, 10.0) == int(n)
    inside = w_new.abs() <= 1.0
    assert inside.float().mean() > 0.5 and (~inside).any()
    assert torch.equal(xb.w_target[inside], w_new[inside])
    # beyond w_max: the crossbar's devices hold at most g_max, the batched model does not clip
    assert torch.equal(xb.w_target[~inside], torch.sign(w_new[~inside]))


def test_targets_beyond_w_max_are_the_only_noise_free_difference() -> None:
    w = torch.tensor([[-2.0, -1.1, -1.0, -0.5, 0.0, 0.3, 1.0, 1.1, 2.0]], dtype=torch.float64)
    clipped = torch.clamp(w, -1.0, 1.0)
    batched = {'paper_code': torch.clamp(2 * clipped - w, -1.0, 1.0),  # the code's quirk
               'physical': clipped, 'ideal': w}
    for preset, expected in batched.items():
        cfg = _cfg(preset, **QUIET)
        xb = Crossbar(cfg, 1, 9, 0, dtype=torch.float64)
        xb.program(w, 0.0)
        torch.testing.assert_close(xb.effective_weights(100.0), clipped, rtol=0, atol=1e-12)
        torch.testing.assert_close(PCMModel(cfg).deploy(w), expected, rtol=0, atol=1e-12)
    assert batched['paper_code'][0].tolist() == pytest.approx(
        [0.0, -0.9, -1.0, -0.5, 0.0, 0.3, 1.0, 0.9, 0.0])


# ---- re-programming ---------------------------------------------------------------------------
@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_reprogrammed_weight_noise_and_device_count_agree(preset: str) -> None:
    # a write from the empty array: every weight re-programmed with programming noise
    cfg = _cfg(preset, drift=False, delta_w_step=0.0)
    w = _targets()
    batched, n_b = PCMModel(cfg).reprogram(torch.zeros_like(w), w, _gen(10))
    xb = _crossbar(cfg, 11)
    n_x = xb.update(w, 0.0)
    crossbar = xb.effective_weights(0.0)
    assert n_x == int(n_b) == w.numel() * cfg.n_devices
    per_weight = 1.0 if preset == 'paper_code' else math.sqrt(cfg.n_devices)  # shared draws
    for i, level in enumerate(LEVELS):
        a, b = _per_level(batched, i), _per_level(crossbar, i)
        _assert_same_law(a, b, (preset, level))
        g_hat = abs(level)
        sd = (0.26348 + 1.9650 * g_hat - 1.1731 * g_hat ** 2) / 25.0 / per_weight
        assert a.std().item() == pytest.approx(sd, rel=K / math.sqrt(2 * (a.numel() - 1)))


def test_paper_code_drift_acts_on_the_target_in_the_batched_model() -> None:
    # batched: w f + s xi (the code drifts the target); crossbar: (w + s xi) f (the device's
    # programmed conductance drifts). Var difference s² (1 - E[f²]), about 25 % of the variance.
    cfg = _cfg('paper_code', delta_w_step=0.0)
    w = _targets((0.5,))
    batched, _ = PCMModel(cfg).reprogram(torch.zeros_like(w), w, _gen(12))
    xb = _crossbar(cfg, 13, (0.5,))
    xb.update(w, 0.0)
    crossbar = xb.effective_weights(0.0).reshape(-1)
    batched = batched.reshape(-1)
    s = (0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25) / 25.0
    f = (32.0 ** -xb.nu[0, 0]).reshape(-1)
    term = s * s * (1.0 - (f * f).mean().item())
    n = batched.numel()
    se = math.sqrt(2 / (n - 1)) * (batched.var().item() + crossbar.var().item())
    assert term > 10 * se
    assert batched.var().item() - crossbar.var().item() == pytest.approx(term, abs=K * se)
    assert batched.mean().item() == pytest.approx(crossbar.mean().item(), abs=K * math.sqrt(
        (batched.var().item() + crossbar.var().item()) / n))


@pytest.mark.parametrize('preset', ['paper_code', 'physical', 'ideal'])
def test_devices_counted_for_the_same_update_agree(preset: str) -> None:
    cfg = _cfg(preset)
    g = _gen(14)
    w = torch.rand(50, 60, generator=g, dtype=torch.float64) * 1.5 + 0.25
    w = w * torch.sign(torch.rand(50, 60, generator=g) - 0.5)
    w[::5, ::7] = 0.0  # unused devices
    xb = Crossbar(cfg, 50, 60, 15, dtype=torch.float64)
    xb.program(w, 0.0)
    w_read = xb.effective_weights(100.0)
    dq = torch.round(torch.randn(50, 60, generator=g, dtype=torch.float64) * 8) / 16
    dq[:, :10] = 0.0  # not written
    _, n_b = PCMModel(cfg).reprogram(w_read, dq, _gen(16))
    # independent count: N per written weight with a non-zero new target, + N for a RESET
    new = torch.clamp(w_read + dq, -1, 1)
    sel = dq != 0
    old_s, new_s = torch.sign(xb.w_target), torch.sign(new)
    expected = 2 * int((sel & (new_s != 0)).sum() + (sel & (old_s != 0) & (old_s != new_s)).sum())
    assert (sel & (old_s != new_s) & (old_s != 0)).sum() > 100  # sign flips and RESETs occur
    assert xb.add(dq, 100.0) == int(n_b) == expected


# ---- drift ------------------------------------------------------------------------------------
@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_drift_factor_mean_agrees(preset: str) -> None:
    cfg = _cfg(preset, prog_noise=False)  # drift only: w_eff / w is the mean factor of a weight
    w = _targets()
    batched = PCMModel(cfg).deploy(w, _gen(17)) / w
    xb = _crossbar(cfg, 18)
    xb.program(w, 0.0)
    crossbar = xb.effective_weights(T_INF) / w
    for i, level in enumerate(LEVELS):
        a, b = _per_level(batched, i), _per_level(crossbar, i)
        _assert_same_law(a, b, (preset, level))
        mu = min(max(-0.0155 * math.log(abs(level)) + 0.0244, 0.049), 0.1)
        sd = min(max(-0.0125 * math.log(abs(level)) - 0.0059, 0.008), 0.045)
        expected = folded_normal_mgf(mu, sd, math.log(32.0))  # E[32^-nu], nu = |N(mu, sd²)|
        assert a.mean().item() == pytest.approx(expected, abs=K * a.std().item()
                                                / math.sqrt(a.numel())), level


# ---- read noise -------------------------------------------------------------------------------
@pytest.mark.parametrize(('preset', 'kw'), [
    ('paper_code', {}), ('physical', {'drift': False})], ids=['paper_code', 'physical'])
def test_mvm_read_noise_sd_agrees(preset: str, kw: dict[str, object]) -> None:
    cfg = _cfg(preset, **kw)
    n_post, n_pre, reps = 8, 256, 2000
    w = torch.rand(n_post, n_pre, generator=_gen(19), dtype=torch.float64) * 2 - 1
    xb = Crossbar(cfg, n_post, n_pre, 20, dtype=torch.float64)
    xb.program(w, 0.0)
    m = PCMModel(cfg)
    w_eff = xb.effective_weights(T_INF)  # both paths read the same weights
    sd_b, sd_x = m.read_noise_sd(w_eff), xb.read_noise_sd(T_INF)
    if preset == 'paper_code':  # per weight equal: a weight's devices are identical
        torch.testing.assert_close(sd_b, sd_x, rtol=1e-9, atol=0.0)
    else:  # RMS over two devices with their own programming noise vs the value at their mean
        far = w_eff.abs() > 0.1  # (near 0 one device may be clipped to 0 µS: up to 1 - 1/√2)
        torch.testing.assert_close(sd_b[far], sd_x[far], rtol=0.02, atol=0.0)
        assert (sd_b / sd_x)[far].mean().item() == pytest.approx(1.0, abs=2e-3)
    x = (torch.rand(n_pre, generator=_gen(21), dtype=torch.float64) < 0.5).double()
    xs = x.expand(reps, n_pre)
    exact = x @ w_eff.T
    scale = torch.sqrt((sd_x ** 2 * x * x).sum(-1))  # the crossbar's predicted output SD
    z_b = ((m.mvm(xs, w_eff, _gen(22)) - exact) / scale).reshape(-1)
    z_x = ((xb.mvm(xs, T_INF) - exact) / scale).reshape(-1)
    _assert_same_law(z_b, z_x, preset)
    n = z_x.numel()
    assert z_x.std().item() == pytest.approx(1.0, abs=K / math.sqrt(2 * (n - 1)))


def test_physical_batched_read_noise_evaluates_q_s_at_the_read_conductance() -> None:
    # with drift, the crossbar (aihwkit) takes Q_s at each device's programmed conductance, the
    # batched model at the read one |w_eff| g_max / w_max: per weight the ratio of the SDs is
    # mean(f)^0.35 / sqrt(mean(f²)) over its devices (Q_s ~ g^-0.65), about 1.1 at t/t0 = 32
    cfg = _cfg('physical', prog_noise=False)
    w = _targets((0.5,))
    xb = _crossbar(cfg, 23, (0.5,))
    xb.program(w, 0.0)
    w_eff = xb.effective_weights(T_INF)
    ratio = PCMModel(cfg).read_noise_sd(w_eff) / xb.read_noise_sd(T_INF)
    f = 32.0 ** -xb.nu[0]  # (N, rows, cols)
    expected = f.mean(0) ** 0.35 / torch.sqrt((f * f).mean(0))
    torch.testing.assert_close(ratio, expected, rtol=1e-9, atol=0.0)
    assert ratio.mean().item() > 1.05 and ratio.mean().item() < 1.2
    # without drift the two agree exactly (no programming noise: identical devices)
    cfg0 = _cfg('physical', prog_noise=False, drift=False)
    xb0 = _crossbar(cfg0, 24, (0.5,))
    xb0.program(w, 0.0)
    torch.testing.assert_close(PCMModel(cfg0).read_noise_sd(xb0.effective_weights(T_INF)),
                               xb0.read_noise_sd(T_INF), rtol=1e-12, atol=0.0)
