"""Benchmark: seconds per meta-training iteration (forward + backward + Adam) per preset.

``run(quick)`` returns rows with keys name, median_s, spread_s, n, notes (the bench runner's
format). Quick mode times the ``small`` preset only (3 iterations after one warm-up); the full
mode adds the ``paper`` preset (LSG 800, batch 90, PCM in the loop; 2 iterations).
Threads: torch's current setting (the runner decides; we report it in the notes).
"""

from __future__ import annotations

import statistics
import time

import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l.meta import MetaTrainer


def _preset(name: str) -> C.L2LConfig:
    base = C.default_config_path()
    return C.load(base, base.parent / 'presets' / f'{name}.yaml')


def _time(cfg: C.L2LConfig, n: int) -> list[float]:
    trainer = MetaTrainer(cfg)
    trainer.step()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        trainer.step()
        out.append(time.perf_counter() - t0)
    return out


def run(quick: bool) -> list[dict]:
    """Return one row per preset: median seconds per meta-training iteration."""
    rows = []
    presets = [('small', 3)] + ([] if quick else [('paper', 2)])
    for name, n in presets:
        cfg = _preset(name)
        times = _time(cfg, n)
        m = cfg.meta
        rows.append({'name': f'meta_iteration_{name}', 'median_s': statistics.median(times),
                     'spread_s': max(times) - min(times), 'n': n,
                     'notes': f'batch {m.batch_size}, LSG {cfg.lsg.n_rec}, pcm_in_loop '
                              f'{m.pcm_in_loop}, quantize {m.quantize_in_loop}, '
                              f'torch threads {torch.get_num_threads()}'})
    return rows


if __name__ == '__main__':
    import json
    import sys

    print(json.dumps(run('--quick' in sys.argv), indent=2))
