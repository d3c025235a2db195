"""Data-parallel meta-training (torch.distributed, gloo on CPU, 127.0.0.1 only) and --device.

- one step with world size 2 gives the parameters of world size 1 on the same global batch
  (float64, within 1e-10), also with a batch that does not split evenly;
- ``torchrun --nproc-per-node 2 -m l2l_nmhw_ros.cli train``: an interrupted-and-resumed run ends
  bit-identical to an uninterrupted one, resuming with another world size continues the same
  task stream, and the result agrees with a single process (float32);
- ``--device``: cpu / auto here; cuda without CUDA is refused with a clear error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from l2l_nmhw_ros import cli
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l import distributed as D
from l2l_nmhw_ros.l2l.meta import PARAM_NAMES, MetaTrainer

# 6 trainee and 8 LSG neurons, 30 steps; deterministic inner loop (float, round to nearest)
TINY = '''/**:
  ros__parameters:
    trainee: {n_rec: 6, n_ref: 5}
    lsg: {n_rec: 8, bits_per_coord: 4, n_ref: 5}
    task: {n_steps: 30, clock_window: 6, clock_interval: 2, smoothing_window: 10}
    eprop: {eta: 0.05}
    pcm: {stochastic_rounding: false}
    meta: {batch_size: 5, families: [reach, brownian], checkpoint_every: 2, pcm_in_loop: false,
           validate_every: 1000}
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _loopback_env(port: int) -> dict[str, str]:
    return {'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), 'GLOO_SOCKET_IFNAME': 'lo',
            'OMP_NUM_THREADS': '1'}


def _tiny_cfg(tmp: Path) -> C.L2LConfig:
    path = tmp / 'tiny.yaml'
    path.write_text(TINY)
    return C.load(C.default_config_path(), path)


def _worker(rank: int, size: int, port: int, cfg_dir: str, out_dir: str) -> None:
    os.environ.update(_loopback_env(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', rank=rank, world_size=size)
    try:
        trainer = MetaTrainer(_tiny_cfg(Path(cfg_dir)), dtype=torch.float64,
                              world=D.World(rank, size))
        parts = trainer.step()
        np.savez(Path(out_dir) / f'rank{rank}.npz', loss=parts['loss'],
                 **{k: v.detach().numpy() for k, v in trainer.params.items()})
    finally:
        D.shutdown(D.World(rank, size))  # leaves together: gloo aborted a rank that left alone


def test_world_size_two_equals_one_on_the_same_global_batch(tmp_path: Path) -> None:
    cfg = _tiny_cfg(tmp_path)
    single = MetaTrainer(cfg, dtype=torch.float64)
    start = {k: v.detach().clone() for k, v in single.params.items()}
    p1 = single.step()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(tmp_path)), nprocs=2, join=True)
    ranks = [dict(np.load(tmp_path / f'rank{r}.npz')) for r in range(2)]  # no pickle
    for k in PARAM_NAMES:
        ref = single.params[k].detach()
        assert float((ref - start[k]).abs().max()) > 1e-6, k  # the step changed it
        for r in ranks:
            torch.testing.assert_close(torch.from_numpy(r[k]), ref, rtol=0, atol=1e-10)
    for r in ranks:  # the logged loss is the global batch's
        assert float(r['loss']) == pytest.approx(p1['loss'], rel=1e-10)


def test_shard_splits_the_global_batch_contiguously() -> None:
    assert [D.World(r, 2).shard(5) for r in range(2)] == [(0, 3), (3, 5)]
    assert [D.World(r, 3).shard(9) for r in range(3)] == [(0, 3), (3, 6), (6, 9)]
    assert D.SINGLE.shard(4) == (0, 4)
    with pytest.raises(ValueError, match='at least one task'):
        D.World(2, 4).shard(3)


def test_noise_streams_differ_per_rank_and_iteration_and_repeat() -> None:
    seeds = {D.noise_seed(42, it, r) for it in range(20) for r in range(4)}
    assert len(seeds) == 80
    assert D.noise_seed(42, 3, 1) == D.noise_seed(42, 3, 1)
    assert all(0 <= s < 2 ** 63 for s in seeds)


def test_device_option() -> None:
    assert D.resolve_device('cpu') == torch.device('cpu')
    assert D.resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(ValueError, match='expected cpu, cuda'):
        D.resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            D.resolve_device('cuda')


def test_cuda_refused_by_the_cli_with_one_line(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    (tmp_path / 'tiny.yaml').write_text(TINY)
    rc = cli.main(['train', '--config', str(tmp_path / 'tiny.yaml'), '--out',
                   str(tmp_path / 'o'), '--device', 'cuda', '--no-progress'])
    assert rc == 2
    assert 'CUDA is not available' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def _torchrun(tmp: Path, nproc: int, out: Path, *args: str) -> None:
    env = dict(os.environ, **_loopback_env(_free_port()))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc-per-node',
           str(nproc), '--rdzv-backend', 'c10d', '--rdzv-endpoint',
           f'127.0.0.1:{_free_port()}', '-m', 'l2l_nmhw_ros.cli', 'train', '--config',
           str(tmp / 'tiny.yaml'), '--out', str(out), '--no-progress', *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_torchrun_resume_is_bit_identical_and_matches_one_process(tmp_path: Path) -> None:
    (tmp_path / 'tiny.yaml').write_text(TINY)
    whole, parts, mixed, single = (tmp_path / n for n in ('whole', 'parts', 'mixed', 'single'))
    _torchrun(tmp_path, 2, whole, '--iterations', '4')
    _torchrun(tmp_path, 2, parts, '--iterations', '2')
    _torchrun(tmp_path, 2, parts, '--iterations', '4', '--resume')
    w_whole, meta = ckpt.load(whole)
    w_parts, _ = ckpt.load(parts)
    assert meta['iteration'] == 4 and meta['train']['world_size'] == 2
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(w_parts[k], w_whole[k])
    # resume the 2-process run with ONE process: same tasks, same global batch -> the result
    # of one process all along (float32: reduction order differs, so within 1e-5)
    _torchrun(tmp_path, 2, mixed, '--iterations', '2')
    w_two, _ = ckpt.load(mixed)
    assert all(float(np.abs(w_two[k] - w_whole[k]).max()) > 1e-6 for k in PARAM_NAMES)
    assert cli.main(['train', '--config', str(tmp_path / 'tiny.yaml'), '--out', str(mixed),
                     '--no-progress', '--iterations', '4', '--resume']) == 0
    assert cli.main(['train', '--config', str(tmp_path / 'tiny.yaml'), '--out', str(single),
                     '--no-progress', '--iterations', '4']) == 0
    w_mixed, _ = ckpt.load(mixed)
    w_single, _ = ckpt.load(single)
    for k in PARAM_NAMES:
        np.testing.assert_allclose(w_whole[k], w_single[k], rtol=0, atol=1e-5)
        np.testing.assert_allclose(w_mixed[k], w_single[k], rtol=0, atol=1e-5)
