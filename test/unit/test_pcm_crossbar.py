"""Crossbar: per-device state, tiles, time modes, updates, save/load."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import CheckpointError, ShapeError
from l2l_nmhw_ros.pcm import Crossbar

STEP = 1.0 / 16.0


def _cfg(**kw: object) -> PCMConfig:
    # deterministic rounding unless a test asks otherwise: the hand cases assume it
    return dataclasses.replace(PCMConfig(), **{'stochastic_rounding': False, **kw})


def _w(n_post: int, n_pre: int, seed: int, lo: float = -1.2, hi: float = 1.2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n_post, n_pre, generator=g) * (hi - lo) + lo


def test_ideal_crossbar_gives_exactly_the_float_mvm() -> None:
    xb = Crossbar(_cfg(preset='ideal'), 20, 30, 0)
    w = _w(20, 30, 1)
    xb.program(w, 0.0)
    wc = torch.clamp(w, -1.0, 1.0)
    assert torch.equal(xb.effective_weights(1e5), wc)
    x = torch.rand(7, 30, generator=torch.Generator().manual_seed(2))
    assert torch.equal(xb.mvm(x, 1e5), x @ wc.T)
    assert xb.update(torch.full((20, 30), 0.1), 5.0) > 0
    assert torch.equal(xb.effective_weights(6.0), torch.clamp(wc + 0.125, -1.0, 1.0))


def test_tiles_padding_and_shapes() -> None:
    xb = Crossbar(_cfg(), 300, 600, 0)
    assert xb.tiles == (2, 3)
    assert xb._g_prog.shape == (2, 2, 512, 768)
    xb.program(_w(300, 600, 3), 0.0)
    assert xb._g_prog[..., 300:, :].abs().sum() == 0
    assert xb._g_prog[..., :, 600:].abs().sum() == 0
    assert xb.g_plus.shape == (2, 300, 600)
    assert xb.mvm(torch.ones(4, 600), 1.0).shape == (4, 300)
    assert Crossbar(_cfg(), 252, 255, 0).tiles == (1, 1)  # the packed trainee fits one tile


@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_conductances_stay_in_range_through_updates(preset: str) -> None:
    xb = Crossbar(_cfg(preset=preset), 40, 50, 4)
    xb.program(_w(40, 50, 5, -1.5, 1.5), 0.0)
    g = torch.Generator().manual_seed(6)
    for k in range(5):
        xb.update(torch.randn(40, 50, generator=g) * 0.5, 10.0 * (k + 1))
        for gg in (xb.g_plus, xb.g_minus, xb.conductances(100.0 * (k + 1))):
            assert gg.min().item() >= 0.0
            assert gg.max().item() <= 25.0
    # one polarity per weight: never both sides non-zero
    assert ((xb.g_plus.sum(0) > 0) & (xb.g_minus.sum(0) > 0)).sum() == 0


@pytest.mark.parametrize('preset', ['paper_code', 'physical', 'ideal'])
def test_update_touches_only_masked_devices(preset: str) -> None:
    xb = Crossbar(_cfg(preset=preset), 30, 40, 7)
    xb.program(_w(30, 40, 8), 0.0)
    before = xb.state_dict()
    dw = torch.randn(30, 40, generator=torch.Generator().manual_seed(9)) * 0.06
    mask = torch.round(dw / STEP) != 0
    n = xb.update(dw, 50.0)
    after = xb.state_dict()
    changed = torch.zeros(2, 2, 30, 40, dtype=torch.bool)
    for key in ('g_prog', 'nu', 't_prog', 'program_counts'):
        changed |= (after[key] != before[key])[..., :30, :40]
    written = (after['program_counts'] - before['program_counts'])[..., :30, :40]
    assert not changed[..., ~mask].any()  # unmasked weights: every device untouched
    assert changed.any(dim=(0, 1))[mask].float().mean() > 0.99
    assert n == int(written.sum())
    assert (after['t_prog'][..., :30, :40][written > 0] == 50.0).all()
    assert set(written.unique().tolist()) <= {0, 1}


def test_update_counts_devices_hand_case() -> None:
    xb = Crossbar(_cfg(preset='ideal'), 1, 6, 0)
    assert xb.program(torch.tensor([[0.5, 0.5, -STEP, 0.0, 0.3, STEP]]), 0.0) == 5 * 2
    # same sign: N; unchanged: 0; sign flip: 2N; 0 -> w: N; flip: 2N; w -> 0 (RESET): N
    n = xb.update(torch.tensor([[STEP, 0.0, 2 * STEP, STEP, -5 * STEP, -STEP]]), 1.0)
    assert n == 7 * 2
    counts = xb.program_counts
    assert counts[:, :, 0, 2].tolist() == [[1, 1], [2, 2]]  # G+ set once, G- set + reset
    assert counts[:, :, 0, 1].tolist() == [[1, 1], [0, 0]]


def test_physical_drift_follows_the_stored_nu_per_device() -> None:
    xb = Crossbar(_cfg(preset='physical'), 16, 16, 10, dtype=torch.float64)
    w = _w(16, 16, 11, 0.1, 1.0)
    xb.program(w, 0.0)
    xb.update(torch.where(torch.arange(16) < 8, STEP, 0.0).expand(16, 16).contiguous(), 1000.0)
    t = 7200.0
    g_t = xb.conductances(t)
    expected = xb.g_plus * ((t - xb.t_prog[0] + 20.0) / 20.0) ** (-xb.nu[0])
    assert torch.allclose(g_t[0], expected, rtol=1e-12, atol=0.0)
    # a weight written an hour ago drifted more than one written later
    assert torch.allclose(xb.conductances(0.0)[0, :, :, 8:], xb.g_plus[:, :, 8:])
    ratio_old = (g_t[0, :, :, 8:] / xb.g_plus[:, :, 8:]).mean()
    ratio_new = (g_t[0, :, :, :8] / xb.g_plus[:, :, :8]).mean()
    assert ratio_old < ratio_new < 1.0


def test_paper_code_time_mode_is_clock_free() -> None:
    xb = Crossbar(_cfg(), 10, 10, 12)
    xb.program(_w(10, 10, 13, 0.2, 1.0), 0.0)
    assert torch.equal(xb.effective_weights(1.0), xb.effective_weights(1e6))
    ratio = xb.conductances(5.0)[0] / xb.g_plus
    assert torch.allclose(ratio, 32.0 ** (-xb.nu[0]))
    # paper code: one nu and one programming draw per weight, shared by its devices
    assert torch.equal(xb.nu[0, 0], xb.nu[0, 1])


def test_drift_compensation_removes_mean_drift() -> None:
    w = _w(64, 64, 14, 0.2, 1.0)
    plain = Crossbar(_cfg(preset='physical'), 64, 64, 15)
    comp = Crossbar(_cfg(preset='physical', drift_compensation=True), 64, 64, 15)
    plain.program(w, 0.0)
    comp.program(w, 0.0)
    day = 86400.0
    r_plain = (plain.effective_weights(day).sum() / w.sum()).item()
    r_comp = (comp.effective_weights(day).sum() / w.sum()).item()
    # mean nu ~ 0.05 to 0.07: (86420 / 20)^-0.06 ~ 0.6; compensation brings the sum back to
    # the sum of the programmed conductances (programming noise only: |mean error| < 1 %)
    assert r_plain < 0.75
    assert r_comp == pytest.approx(1.0, abs=0.01)
    assert comp.drift_compensation_factor(day) > 1.3
    assert plain.drift_compensation_factor(day) == 1.0


@pytest.mark.parametrize('preset', ['paper_code', 'physical'])
def test_crossbar_fast_read_noise_matches_per_device(preset: str) -> None:
    xb = Crossbar(_cfg(preset=preset), 8, 64, 16, dtype=torch.float64)
    xb.program(_w(8, 64, 17), 0.0)
    xb.update(torch.full((8, 64), STEP), 3000.0)  # mixed device ages
    t = 4000.0
    x = (torch.rand(64, generator=torch.Generator().manual_seed(18)) < 0.5).double()
    xs = x.expand(3000, 64)
    exact = x @ xb.effective_weights(t).T
    sd = torch.sqrt((xb.read_noise_sd(t) ** 2 * x * x).sum(-1))
    zf = ((xb.mvm(xs, t) - exact) / sd).reshape(-1).numpy()
    zs = ((xb.mvm(xs, t, per_device=True) - exact) / sd).reshape(-1).numpy()
    n = zf.size  # 24000: variance SE sqrt(2 / n) = 0.009, tolerance 5 SE
    assert zf.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert zs.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert stats.ks_2samp(zf, zs).pvalue > 1e-3


def test_save_load_roundtrip_is_identical_and_continues(tmp_path: Path) -> None:
    cfg = _cfg(preset='physical')
    xb = Crossbar(cfg, 30, 20, 19)
    xb.program(_w(30, 20, 20), 100.0)
    xb.update(torch.randn(30, 20, generator=torch.Generator().manual_seed(21)) * 0.1, 200.0)
    path = tmp_path / 'state' / 'xb.safetensors'
    xb.save(path)
    assert [p.name for p in path.parent.iterdir()] == ['xb.safetensors']  # no temp file left
    yb = Crossbar.load(path, cfg, n_post=30, n_pre=20)
    for key, value in xb.state_dict().items():
        assert torch.equal(yb.state_dict()[key], value), key
    # the restarted emulator continues the same drift timeline and the same noise sequence
    assert torch.equal(yb.effective_weights(3600.0), xb.effective_weights(3600.0))
    assert not torch.equal(xb.effective_weights(3600.0), xb.effective_weights(300.0))
    x = torch.ones(3, 20)
    assert torch.equal(yb.mvm(x, 5000.0), xb.mvm(x, 5000.0))
    assert xb.update(torch.full((30, 20), STEP), 6000.0) == yb.update(
        torch.full((30, 20), STEP), 6000.0)
    assert torch.equal(yb.g_plus, xb.g_plus)


def test_load_rejects_other_config_shape_and_garbage(tmp_path: Path) -> None:
    cfg = _cfg(preset='physical')
    xb = Crossbar(cfg, 5, 6, 0)
    xb.program(_w(5, 6, 22), 0.0)
    path = tmp_path / 'xb.safetensors'
    xb.save(path)
    with pytest.raises(CheckpointError, match='g_max: file 25.0 vs now 20.0'):
        Crossbar.load(path, dataclasses.replace(cfg, g_max=20.0))
    with pytest.raises(CheckpointError, match='preset'):
        Crossbar.load(path, _cfg())
    with pytest.raises(CheckpointError, match=r'shape \(5, 6\), expected n_post = 7'):
        Crossbar.load(path, cfg, n_post=7)
    # read-side options may change between runs
    assert Crossbar.load(path, dataclasses.replace(cfg, read_noise=False)).shape == (5, 6)
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a state file')
    with pytest.raises(CheckpointError):
        Crossbar.load(bad, cfg)
    with pytest.raises(FileNotFoundError):
        Crossbar.load(tmp_path / 'missing.safetensors', cfg)


def test_bad_inputs_raise_naming_the_argument() -> None:
    xb = Crossbar(_cfg(), 3, 4, 0)
    with pytest.raises(ValueError, match='^w:'):
        xb.program(torch.full((3, 4), float('nan')), 0.0)
    with pytest.raises(ShapeError, match='^w:'):
        xb.program(torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match='^t:'):
        xb.program(torch.zeros(3, 4), float('inf'))
    with pytest.raises(ShapeError, match='^delta_w:'):
        xb.update(torch.zeros(3, 5), 0.0)
    with pytest.raises(ValueError, match='^delta_w:'):
        xb.update(torch.full((3, 4), float('inf')), 0.0)
    with pytest.raises(ShapeError, match='^x:'):
        xb.mvm(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match='^x:'):
        xb.mvm(torch.full((2, 4), float('nan')), 0.0)
    with pytest.raises(ValueError, match='^t:'):
        xb.effective_weights(float('nan'))
    with pytest.raises(ValueError, match='^n_post:'):
        Crossbar(_cfg(), 0, 4)


def test_reprogram_writes_only_masked_weights():
    xb = Crossbar(PCMConfig(preset='physical'), 4, 3, 7)
    w0 = torch.full((4, 3), 0.5)
    xb.program(w0, 0.0)
    g_before = xb.g_plus.clone()
    mask = torch.zeros(4, 3, dtype=torch.bool)
    mask[1, 2] = True
    target = torch.full((4, 3), -0.25)
    n = xb.reprogram(target, mask, 5.0)
    assert n == 2 * xb.cfg.n_devices  # G+ RESET and G- SET on the sign change
    assert float(xb.w_target[1, 2]) == -0.25
    assert torch.equal(xb.w_target[~mask], w0[~mask])
    unchanged = ~mask.expand_as(g_before[0])
    assert torch.equal(xb.g_plus[:, unchanged], g_before[:, unchanged])
    assert float(xb.t_prog[..., 1, 2].min()) == 5.0
    assert xb.reprogram(target, torch.zeros(4, 3, dtype=torch.bool), 6.0) == 0
