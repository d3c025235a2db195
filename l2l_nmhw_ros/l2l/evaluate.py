"""Evaluation of a meta-trained checkpoint on unseen tasks, and the ``l2l-nmhw eval`` command.

For each task batch (seeded, independent of the training stream) the inner loop runs with the same
tasks and weights under several backends:

- ``before``: the meta-learned initial trainee, no update (float weights);
- ``software``: one natural e-prop update with float weights and an unquantised Delta W;
- ``software_4bit``: the same with Delta W rounded to the 1/16 grid (no device noise);
- ``pcm``: deployment, update (quantised, re-programmed with programming noise and drift) and
  read noise of the emulated PCM crossbar (:class:`l2l_nmhw_ros.pcm.PCMModel`, ``cfg.pcm``);
- ``before_pcm``: the deployed trainee on PCM before the update;
- ``mean_path_baseline``: not a network: the xyz error of the mean target path of the evaluated
  tasks (the best output that ignores the task), to read the errors against.

Errors per task: omega MSE, xyz MSE [m²] (over time and x, y, z), mean end-effector distance [m];
devices programmed (PCM: as counted by ``PCMModel.reprogram``; software rows: weights changed).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.inner import adapt
from l2l_nmhw_ros.l2l.meta import make_backend, task_errors, weights_from_numpy
from l2l_nmhw_ros.l2l.tasks import FAMILIES, make_tasks

__all__ = ['ROWS', 'add_arguments', 'default_checkpoint', 'evaluate', 'run']

log = logging.getLogger(__name__)

ROWS = ('before', 'software', 'software_4bit', 'before_pcm', 'pcm')
# Evaluation tasks come from this seed offset (training uses cfg.seed + 1, validation + 1000003).
EVAL_SEED = 20250
# noise generator of each backend: torch seed = seed + offset
_BACKEND_SEED_OFFSET = {'software': 0, 'software_4bit': 1, 'pcm': 2}


def default_checkpoint() -> Path:
    """Return the shipped checkpoint folder ``checkpoints/default`` (source tree or share)."""
    return C.default_config_path().parent.parent / 'checkpoints' / 'default'


def config_from_metadata(meta: dict[str, Any]) -> C.L2LConfig:
    """Return the configuration stored in a checkpoint's metadata."""
    return C.from_dict(meta['config'])


@torch.no_grad()
def evaluate(weights: dict[str, np.ndarray], cfg: C.L2LConfig, family: str, n_tasks: int, *,
             seed: int = EVAL_SEED, chunk: int = 50, rows: tuple[str, ...] = ROWS,
             pcm_cfg: C.PCMConfig | None = None) -> dict[str, dict[str, float]]:
    """Return {row: {omega_mse, xyz_mse, distance, n_programmed}} means over `n_tasks` tasks.

    Args:
        weights: checkpoint arrays (:data:`l2l_nmhw_ros.l2l.checkpoint.WEIGHT_KEYS`).
        cfg: configuration (the checkpoint's own, normally).
        family: task family.
        n_tasks: number of unseen tasks.
        seed: seed of the task and noise generators.
        chunk: tasks per batch (memory).
        rows: which of :data:`ROWS` to compute.
        pcm_cfg: PCM configuration for the PCM rows (default ``cfg.pcm``).

    Raises:
        ValueError: unknown family or row, n_tasks < 1.
        FileNotFoundError: family ``reference`` without its data.
    """
    if family not in FAMILIES:
        raise ValueError(f'family: expected one of {list(FAMILIES)}, got {family!r}')
    if n_tasks < 1:
        raise ValueError(f'n_tasks must be >= 1, got {n_tasks}')
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise ValueError(f'rows: unknown {bad}, expected some of {list(ROWS)}')
    if pcm_cfg is not None:
        cfg = C.L2LConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                             'pcm': pcm_cfg})
    trainee, lsg = weights_from_numpy(weights)
    backends = {'software': make_backend(cfg, pcm=False, quantize=False),
                'software_4bit': make_backend(cfg, pcm=False, quantize=True)}
    if 'pcm' in rows or 'before_pcm' in rows:
        backends['pcm'] = make_backend(cfg, pcm=True, quantize=True)
    rng = np.random.default_rng(seed)
    # one noise stream per backend, so that a row's numbers do not depend on which other rows
    # are computed (the tasks come from `rng`, shared: every row sees the same tasks)
    gens = {name: torch.Generator().manual_seed(seed + off)
            for name, off in _BACKEND_SEED_OFFSET.items()}
    acc: dict[str, dict[str, list[float]]] = {r: {} for r in rows}
    targets: list[torch.Tensor] = []

    def add(row: str, y: torch.Tensor, tasks: Any, n_prog: torch.Tensor | None) -> None:
        err = task_errors(y, tasks, cfg.task.omega_scale)
        d = acc[row]
        for k in ('omega_mse', 'xyz_mse', 'distance'):
            d.setdefault(k, []).extend(err[k].tolist())
        d.setdefault('n_programmed', []).extend(
            n_prog.tolist() if n_prog is not None else [0] * tasks.batch)

    done = 0
    while done < n_tasks:
        b = min(chunk, n_tasks - done)
        tasks = make_tasks(family, cfg.task, b, rng)
        targets.append(tasks.xyz)
        if 'before' in rows or 'software' in rows:
            res = adapt(trainee, lsg, tasks, cfg, backend=backends['software'],
                        generator=gens['software'])
            if 'before' in rows:
                add('before', res.learn.y, tasks, None)
            if 'software' in rows:
                add('software', res.test.y, tasks, res.n_programmed)
        if 'software_4bit' in rows:
            res = adapt(trainee, lsg, tasks, cfg, backend=backends['software_4bit'],
                        generator=gens['software_4bit'])
            add('software_4bit', res.test.y, tasks, res.n_programmed)
        if 'pcm' in rows or 'before_pcm' in rows:
            res = adapt(trainee, lsg, tasks, cfg, backend=backends['pcm'], generator=gens['pcm'])
            if 'before_pcm' in rows:
                add('before_pcm', res.learn.y, tasks, None)
            if 'pcm' in rows:
                add('pcm', res.test.y, tasks, res.n_programmed)
        done += b
    out = {r: {k: float(np.mean(v)) for k, v in acc[r].items()} for r in rows}
    # reference level: the best task-independent output, i.e. the mean target path of these tasks
    xyz = torch.cat(targets, dim=1)
    base = ((xyz - xyz.mean(dim=1, keepdim=True)) ** 2).mean(dim=(0, 2))
    dist = (xyz - xyz.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=0)
    out['mean_path_baseline'] = {'omega_mse': float('nan'), 'xyz_mse': float(base.mean()),
                                 'distance': float(dist.mean()), 'n_programmed': 0.0}
    return out


def summary(result: dict[str, dict[str, float]]) -> dict[str, float]:
    """Return the headline ratios: xyz MSE before / after one update in software (``before`` /
    ``software``) and on PCM (``before_pcm`` / ``pcm``; ``before`` / ``pcm`` when there is no
    ``before_pcm`` row), and the PCM vs software gap after the update (``pcm / software - 1``)."""
    out: dict[str, float] = {}
    if 'before' in result and 'software' in result:
        sw = result['software']['xyz_mse']
        out['xyz_improvement_software'] = result['before']['xyz_mse'] / sw
    before_pcm = result.get('before_pcm', result.get('before'))
    if before_pcm is not None and 'pcm' in result:
        out['xyz_improvement_pcm'] = before_pcm['xyz_mse'] / result['pcm']['xyz_mse']
    if 'software' in result and 'pcm' in result:
        out['pcm_vs_software_rel'] = result['pcm']['xyz_mse'] / result['software']['xyz_mse'] - 1
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint folder (default: the shipped checkpoints/default)')
    parser.add_argument('--tasks', type=int, default=200, help='number of unseen tasks')
    parser.add_argument('--family', nargs='+', default=['reach'], choices=FAMILIES,
                        help='task families (each evaluated separately)')
    parser.add_argument('--seed', type=int, default=EVAL_SEED, help='task/noise seed')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (or JSON); returns 0."""
    torch.set_num_threads(max(1, args.threads))
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    weights, meta = ckpt.load(path)
    cfg = config_from_metadata(meta)
    report: dict[str, Any] = {'checkpoint': str(path), 'config_hash': meta.get('config_hash'),
                              'tasks': args.tasks, 'seed': args.seed, 'families': {}}
    for fam in args.family:
        res = evaluate(weights, cfg, fam, args.tasks, seed=args.seed)
        report['families'][fam] = {'rows': res, 'summary': summary(res)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f'checkpoint {path} (config {meta.get("config_hash")}), {args.tasks} unseen tasks, '
          f'seed {args.seed}')
    for fam, body in report['families'].items():
        print(f'\nfamily {fam}')
        print(f'{"":22s} {"omega MSE":>10s} {"xyz MSE [m^2]":>14s} {"distance [m]":>13s} '
              f'{"devices programmed":>19s}')
        labels = {'before': 'before update', 'software': 'after, software',
                  'software_4bit': 'after, software 4-bit', 'before_pcm': 'before, PCM',
                  'pcm': 'after, PCM', 'mean_path_baseline': 'mean-path baseline'}
        for row, vals in body['rows'].items():
            print(f'{labels[row]:22s} {vals["omega_mse"]:10.4f} {vals["xyz_mse"]:14.5f} '
                  f'{vals["distance"]:13.4f} {vals["n_programmed"]:19.1f}')
        for k, v in body['summary'].items():
            print(f'  {k}: {v:.3f}')
    return 0
