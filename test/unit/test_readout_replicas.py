"""Readout replicas (``pcm.readout_replicas``): every readout weight on R copies, each programmed,
drifting and rounded on its own, the readout the average of the copies' outputs — in the packed
layout, on the functional model (training, evaluation) and on the crossbar (the accelerator)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import ConfigError, ShapeError
from l2l_nmhw_ros.l2l.inner import update_and_test
from l2l_nmhw_ros.l2l.substrate import CrossbarSubstrate, FunctionalSubstrate
from l2l_nmhw_ros.pcm import Crossbar, PCMModel, pack_trainee, trainee_mask, unpack_trainee
from l2l_nmhw_ros.pcm.layout import average_replicas
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.reach.accelerator import Accelerator
from test_eprop_readout import N_REC, _signal, _weights, assert_same_readout_loop

QUIET = {'drift': False, 'read_noise': False, 'prog_noise': False, 'deploy_jitter': 0.0}


def _cfg(preset: str = 'ideal', replicas: int = 4, **pcm: object) -> C.L2LConfig:
    return C.from_dict({'pcm': {'preset': preset, 'stochastic_rounding': False,
                                'readout_replicas': replicas, **pcm},
                        'trainee': {'n_rec': N_REC},
                        'eprop': {'update_w_out': True, 'eta_out': 2e-3}})


def test_layout_stores_the_readout_rows_replicas_times() -> None:
    w_in = torch.arange(6.0).reshape(3, 2)
    w_rec = torch.full((3, 3), 0.5)
    w_out = torch.tensor([[1.0, 2.0, 3.0]])
    w = pack_trainee(w_in, w_rec, w_out, replicas=3)
    assert w.shape == (3 + 3, 2 + 3)
    for r in range(3):  # rows 3, 4, 5 = [0 0 | 1 2 3]
        torch.testing.assert_close(w[3 + r], torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0]))
    w[4, 2:] = torch.tensor([4.0, 5.0, 6.0])  # the copies may differ after their own updates
    a, b, c = unpack_trainee(w, n_in=2, replicas=3)
    torch.testing.assert_close(c, torch.tensor([[2.0, 3.0, 4.0]]))  # their average
    assert torch.equal(a, w_in) and torch.equal(b, w_rec)
    np_w = pack_trainee(w_in.numpy(), w_rec.numpy(), w_out.numpy(), replicas=2)
    assert np_w.shape == (5, 5)
    assert trainee_mask(2, 3, 1, replicas=3).shape == (6, 5)
    assert int(trainee_mask(2, 3, 1, replicas=3)[3:, :2].sum()) == 0
    with pytest.raises(ShapeError, match='replica'):
        unpack_trainee(w, n_in=2, replicas=2)  # 3 readout rows are not 2 copies
    with pytest.raises(ShapeError, match='not 2 replicas'):
        average_replicas(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match='replicas'):
        pack_trainee(w_in, w_rec, w_out, replicas=0)


def test_config_bounds_the_replica_count() -> None:
    assert C.L2LConfig().pcm.readout_replicas == 1  # the paper code: one copy
    with pytest.raises(ConfigError, match='readout_replicas'):
        C.from_dict({'pcm': {'readout_replicas': 0}})
    with pytest.raises(ConfigError, match='readout_replicas'):
        C.from_dict({'pcm': {'readout_replicas': 17}})


def test_replicas_average_the_stochastic_rounding() -> None:
    # each copy is rounded on its own: for a Delta W a fraction f of the 1/16 grid away from its
    # lower grid point, one copy's rounding error has variance step^2 f (1 - f); the average of
    # R copies has that / R (ideal devices: the update is exactly the rounded Delta W)
    cfg = _cfg('ideal', replicas=4, stochastic_rounding=True)
    step = cfg.pcm.delta_w_step
    w = {'w_in': torch.zeros(N_REC, 5), 'w_rec': torch.zeros(N_REC, N_REC),
         'w_out': torch.zeros(2, N_REC)}
    dw = torch.full((1, 2, N_REC), 0.3 * step)  # f = 0.3: per copy var = 0.21 step^2
    var = {}
    for r in (1, 4):
        errs = []
        for seed in range(200):
            sub = FunctionalSubstrate(PCMModel(dataclasses.replace(cfg.pcm)), w, 1,
                                      torch.Generator().manual_seed(seed), readout_replicas=r)
            sub.update(None, None, dw)
            errs.append(sub.w_out - dw)
        e = torch.cat(errs)
        assert abs(float(e.mean())) < 0.01 * step  # unbiased
        var[r] = float(e.var()) / step ** 2
    # 16000 samples each: the relative SE of a variance is ~1 %
    assert var[1] == pytest.approx(0.21, rel=0.05)
    assert var[4] == pytest.approx(0.21 / 4, rel=0.05)


def test_replicas_average_the_read_noise() -> None:
    # the readout is read from every copy with noise of its own: its variance shrinks by R
    cfg = _cfg('paper_code', replicas=4, prog_noise=False, drift=False, deploy_jitter=0.0)
    w = _weights(cfg)
    w['w_out'] = torch.full((2, N_REC), 0.5)
    z = torch.ones(2000, 1, N_REC)
    var = {}
    for r in (1, 4):
        sub = FunctionalSubstrate(PCMModel(cfg.pcm), w, 1, torch.Generator().manual_seed(r),
                                  readout_replicas=r)
        y = sub._readout_mvm(sub._mvm_with(sub.generator))(z, sub.w_out)
        torch.testing.assert_close(y.mean(0), torch.full((1, 2), 0.5 * N_REC), rtol=2e-3,
                                   atol=0)
        var[r] = float(y.var(0).mean())
    sd = float(PCMModel(cfg.pcm).read_noise_sd(torch.tensor([[0.5]])))
    assert var[1] == pytest.approx(N_REC * sd ** 2, rel=0.1)  # 4000 samples: SE ~2 %
    assert var[4] == pytest.approx(N_REC * sd ** 2 / 4, rel=0.1)


@pytest.mark.parametrize('preset', ['ideal', 'paper_code'])
def test_crossbar_with_replicas_equals_the_batched_path(preset: str) -> None:
    # the same loop on the node's crossbar (262-row layout) and on the batched model, noise off,
    # deterministic rounding: every copy gets the same rounded update, both agree exactly, and
    # both equal the one-copy loop
    cfg = _cfg(preset, replicas=4, **QUIET)
    w = _weights(cfg)
    sig = _signal(cfg)
    a = update_and_test(FunctionalSubstrate(PCMModel(cfg.pcm), w, 1,
                                            torch.Generator().manual_seed(0),
                                            readout_replicas=4), sig, cfg)
    one = update_and_test(FunctionalSubstrate(PCMModel(cfg.pcm), w, 1,
                                              torch.Generator().manual_seed(0)), sig, cfg)
    dq_out = quantize_delta(a.dw_out[0], cfg.pcm.delta_w_step, stochastic=False)
    assert int((dq_out != 0).sum()) > 20
    torch.testing.assert_close(a.w_out, one.w_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.test.y, one.test.y, rtol=0, atol=1e-5)
    # 3 more copies of the readout's devices (N per changed weight, N more on a sign change)
    w0 = PCMModel(cfg.pcm).deploy(w['w_out'])
    per_copy = int(PCMModel(cfg.pcm).device.devices_written(w0, w0 + dq_out, dq_out != 0))
    assert per_copy >= int((dq_out != 0).sum()) * cfg.pcm.n_devices
    assert int(a.n_programmed) - int(one.n_programmed) == 3 * per_copy
    xb = Crossbar(cfg.pcm, N_REC + 4 * 2, 5 + N_REC, 0)
    xb.program(pack_trainee(w['w_in'], w['w_rec'], w['w_out'], replicas=4), 0.0)
    for fast in (False, True):
        sub = CrossbarSubstrate(xb, 1.0, 5, cfg.eprop, fast=fast, readout_replicas=4)
        b = update_and_test(sub, sig, cfg)
        assert_same_readout_loop(a, b, sub, dq_out)
        xb.program(pack_trainee(w['w_in'], w['w_rec'], w['w_out'], replicas=4), 2.0)
    with pytest.raises(ShapeError, match='copies'):
        CrossbarSubstrate(xb, 1.0, 5, cfg.eprop, fast=False, readout_replicas=3)


def test_accelerator_lays_out_programs_and_restores_the_copies() -> None:
    cfg = _cfg('ideal', replicas=4, stochastic_rounding=True)
    w = {k: v.numpy() for k, v in _weights(cfg).items()}
    lsg_w_out = np.ones((N_REC + 2, cfg.lsg.n_rec), np.float32)
    acc = Accelerator(cfg, {**{f'trainee.{k}': v for k, v in w.items()},
                            'lsg.w_out': lsg_w_out}, 0.0, seed=3)
    assert acc.crossbar.shape == (N_REC + 8, 5 + N_REC)
    before = acc.crossbar.w_target
    out = acc.adapt(_signal(cfg)[:, 0, :].numpy(), 1.0)
    rows = acc.crossbar.w_target[N_REC:, 5:] - before[N_REC:, 5:]  # (4 copies x 2, n_rec)
    copies = rows.reshape(4, 2, N_REC)
    # every copy moved by its own rounding of the same Delta W: not all equal, same mean
    assert not torch.equal(copies[0], copies[1])
    torch.testing.assert_close(copies.mean(0), out.dq_out.to(copies.dtype), rtol=0, atol=1e-6)
    assert int(out.changed[N_REC:].sum()) > 4 * 20
    assert acc.restore(out, 2.0) == out.devices_programmed
    torch.testing.assert_close(acc.crossbar.w_target, before, atol=1e-6, rtol=0)


def test_the_checkpoint_sets_the_readout_layout() -> None:
    # meta-trained with its readout on R copies, a network is deployed with R copies whatever
    # the deployment's pcm section says; a checkpoint from before the key had one copy
    from l2l_nmhw_ros.reach.episode import network_config

    meta = {'config': C.to_dict(_cfg(replicas=2))}
    cfg, diffs = network_config(_cfg(replicas=4), meta)
    assert cfg.pcm.readout_replicas == 2
    assert 'pcm.readout_replicas: 4 -> 2' in diffs
    del meta['config']['pcm']['readout_replicas']
    cfg, diffs = network_config(_cfg(replicas=4), meta)
    assert cfg.pcm.readout_replicas == 1 and 'pcm.readout_replicas: 4 -> 1' in diffs
    cfg, diffs = network_config(_cfg(replicas=1), meta)
    assert cfg.pcm.readout_replicas == 1 and not any(d.startswith('pcm.') for d in diffs)
