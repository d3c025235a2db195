"""The accelerator core: trials on the crossbar, on-chip e-prop update, restore, state file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.reach.accelerator import Accelerator
from l2l_nmhw_ros.pcm.layout import unpack_trainee
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.eprop import delta_w
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial

N_REC = 40


def _cfg(preset: str = 'ideal') -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': preset, 'stochastic_rounding': False},
                        'trainee': {'n_rec': N_REC}})


def _weights(cfg: C.L2LConfig, seed: int = 0) -> dict[str, np.ndarray]:
    w = init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(seed))
    w['w_in'] = w['w_in'] * 3.0  # enough input drive for spikes in a small network
    return {k: v.numpy() for k, v in w.items()}


def _signal(cfg: C.L2LConfig, sd: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, sd, (cfg.task.n_steps, cfg.trainee.n_rec)).astype(np.float32)


def test_ideal_crossbar_update_is_the_quantised_eprop_update() -> None:
    cfg = _cfg('ideal')
    w = _weights(cfg)
    acc = Accelerator(cfg, w, 0.0, seed=3)
    sig = _signal(cfg, 200.0)
    out = acc.adapt(sig, 1.0, baseline=True)
    # the same trial in float (an ideal crossbar reads the exact weights, clipped to ±w_max)
    x = clock_input(cfg.task, 1, n_in=cfg.trainee.n_in)
    w = {k: np.clip(v, -1.0, 1.0) for k, v in w.items()}
    ref = run_trial(torch.as_tensor(w['w_in']), torch.as_tensor(w['w_rec']),
                    torch.as_tensor(w['w_out']), x, cfg.trainee)
    np.testing.assert_allclose(out.omega_baseline, ref.y[:, 0].double().numpy(), atol=1e-5)
    dw_in, dw_rec = delta_w(ref, torch.as_tensor(sig)[:, None, :], cfg.eprop.eta)
    dq_in = quantize_delta(dw_in[0], cfg.pcm.delta_w_step, stochastic=False)
    dq_rec = quantize_delta(dw_rec[0], cfg.pcm.delta_w_step, stochastic=False)
    assert int((dq_in != 0).sum() + (dq_rec != 0).sum()) == out.weights_changed > 10
    w_in, w_rec, w_out = unpack_trainee(acc.crossbar.w_target, cfg.trainee.n_in)
    expect_in = np.clip(w['w_in'] + dq_in.numpy(), -1, 1)
    assert np.abs(w['w_in']).max() == 1.0  # some input weights sit at the bound
    np.testing.assert_allclose(w_in.numpy(), expect_in, atol=1e-6)
    expect_rec = np.clip(w['w_rec'] * (1 - np.eye(N_REC)) + dq_rec.numpy(), -1, 1)
    np.testing.assert_allclose(w_rec.numpy(), expect_rec, atol=1e-6)
    np.testing.assert_allclose(w_out.numpy(), w['w_out'], atol=1e-7)
    # N = 2 devices per polarity: at least 2 writes per changed weight
    assert out.devices_programmed >= cfg.pcm.n_devices * out.weights_changed
    assert not np.allclose(out.omega_adapted, out.omega_baseline)


def test_zero_signal_changes_nothing() -> None:
    cfg = _cfg('ideal')
    acc = Accelerator(cfg, _weights(cfg), 0.0, seed=3)
    out = acc.adapt(np.zeros((cfg.task.n_steps, N_REC), np.float32), 1.0)
    assert (out.devices_programmed, out.weights_changed) == (0, 0)
    np.testing.assert_array_equal(out.omega_adapted, out.omega_baseline)
    assert acc.restore(out, 2.0) == 0


def test_restore_returns_to_the_meta_learned_weights() -> None:
    cfg = _cfg('ideal')
    acc = Accelerator(cfg, _weights(cfg), 0.0, seed=3)
    before = acc.crossbar.w_target
    out = acc.adapt(_signal(cfg, 200.0), 1.0, baseline=False)
    assert out.omega_baseline is None
    changed = acc.crossbar.w_target
    # some updates were cut by the ±1 clip (weights already at the bound did not move): the
    # opposite update would not restore those; programming back to the old targets does
    assert 0 < int((changed != before).sum()) < out.weights_changed
    n = acc.restore(out, 2.0)
    assert n == out.devices_programmed  # the same weights, back over the same polarities
    torch.testing.assert_close(acc.crossbar.w_target, before, atol=1e-6, rtol=0)
    assert acc.devices_programmed_total == acc.statistics(3.0)['devices_programmed_total']


def test_learning_signal_is_checked() -> None:
    cfg = _cfg('ideal')
    acc = Accelerator(cfg, _weights(cfg), 0.0, seed=3)
    with pytest.raises(ShapeError, match='learning_signal'):
        acc.adapt(np.zeros((10, N_REC), np.float32), 1.0)
    bad = np.zeros((cfg.task.n_steps, N_REC), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        acc.adapt(bad, 1.0)


def test_state_file_survives_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg('paper_code')
    w = _weights(cfg)
    acc = Accelerator(cfg, w, 0.0, seed=5)
    acc.adapt(_signal(cfg, 200.0), 1.0, baseline=False)  # no restore: the state is adapted
    state = tmp_path / 'pcm_state.safetensors'
    acc.save(state)
    again = Accelerator(cfg, w, 10.0, seed=99, state_file=state)
    assert again.loaded_from_state
    torch.testing.assert_close(again.crossbar.effective_weights(11.0),
                               acc.crossbar.effective_weights(11.0))
    assert again.devices_programmed_total == acc.devices_programmed_total
    other = _weights(cfg, seed=7)
    with caplog.at_level(logging.WARNING):
        fresh = Accelerator(cfg, other, 10.0, seed=5, state_file=state)
    assert not fresh.loaded_from_state
    assert 'other trainee weights' in caplog.text


@pytest.mark.parametrize('preset', ['ideal', 'paper_code'])
def test_one_inner_loop_crossbar_substrate_equals_the_batched_path(preset: str) -> None:
    # the node's crossbar and the batched model of meta-training/evaluation run the SAME loop
    # (inner.update_and_test); with device noise and drift off they must agree: identical spikes
    # of the learning and the test trial, the same Delta W and weights after the update. The
    # weights stay inside +-w_max: at the bound the two still differ (the batched paper_code
    # model keeps the authors' clipping quirk, a target beyond w_max loses its excess again, and
    # its ideal preset does not clip; the crossbar clips), which the one-device-model redesign
    # (issue 13) is to settle.
    from l2l_nmhw_ros.l2l.inner import update_and_test
    from l2l_nmhw_ros.l2l.substrate import CrossbarSubstrate, FunctionalSubstrate
    from l2l_nmhw_ros.pcm import Crossbar, PCMModel, pack_trainee

    quiet = {'drift': False, 'read_noise': False, 'prog_noise': False, 'deploy_jitter': 0.0}
    cfg = C.from_dict({'pcm': {'preset': preset, 'stochastic_rounding': False, **quiet},
                       'trainee': {'n_rec': N_REC}})
    w = {k: torch.as_tensor(np.clip(v, -0.55, 0.55)) for k, v in _weights(cfg).items()}
    w['w_rec'] = w['w_rec'] * (1 - torch.eye(N_REC))
    sig = torch.as_tensor(_signal(cfg, 200.0))[:, None, :]
    batched = FunctionalSubstrate(PCMModel(cfg.pcm), w, 1, torch.Generator().manual_seed(0))
    a = update_and_test(batched, sig, cfg)
    assert float(a.w_in.abs().max()) < 1.0 and float(a.w_rec.abs().max()) < 1.0
    assert int(a.n_programmed) > 1000
    for fast in (False, True):
        xb = Crossbar(cfg.pcm, N_REC + 2, 5 + N_REC, 0)
        xb.program(pack_trainee(w['w_in'], w['w_rec'], w['w_out']), 0.0)
        b = update_and_test(CrossbarSubstrate(xb, 1.0, 5, cfg.eprop, fast=fast), sig, cfg)
        assert int(a.learn.z.sum()) > 300
        torch.testing.assert_close(b.learn.z, a.learn.z, rtol=0, atol=0)
        torch.testing.assert_close(b.dw_in.float(), a.dw_in.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.dw_rec.float(), a.dw_rec.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.test.z, a.test.z, rtol=0, atol=0)
        assert not torch.equal(a.test.z, a.learn.z)  # the update changed the trial
        for wa, wb in zip(a[7:10], b[7:10], strict=True):  # w_in, w_rec, w_out
            torch.testing.assert_close(wb.float(), wa.float(), rtol=0, atol=1e-6)
        torch.testing.assert_close(b.test.y.float(), a.test.y.float(), rtol=0, atol=2e-5)
        assert torch.equal(b.n_programmed, a.n_programmed)  # devices: both count N per weight
