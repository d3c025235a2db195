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
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.distributed import resolve_device
from l2l_nmhw_ros.l2l.inner import adapt
from l2l_nmhw_ros.l2l.meta import make_backend, task_errors, tasks_to, weights_from_numpy
from l2l_nmhw_ros.l2l.tasks import FAMILIES, make_tasks

__all__ = ['METRICS', 'ROWS', 'RUNS', 'add_arguments', 'default_checkpoint', 'evaluate',
           'paired_ratio_ci', 'per_task_metrics', 'run']

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


#: (backend, row of its learning trial, row of its test trial): one adapt() run feeds two rows
RUNS = (('software', 'before', 'software'), ('software_4bit', None, 'software_4bit'),
        ('pcm', 'before_pcm', 'pcm'))
#: per-task metrics of :func:`per_task_metrics`
METRICS = ('loss', 'omega_mse', 'xyz_mse', 'distance', 'final_distance', 'n_programmed',
           'n_weights_changed', 'rate_hz')
#: per-task metrics of the test rows with ``repeat=True``: the end-point distance [m] between two
#: runs of the same adapted network, and half their mean squared path difference [m²] (the
#: path's trial-to-trial variance per coordinate)
REPEAT_METRICS = ('repeat_final_distance', 'repeat_xyz_var')
#: torch seed offset of the repeat trials' read-noise generators (seed + this + backend offset)
_REPEAT_SEED_OFFSET = 1000
NOISE_STREAMS = ('per_backend', 'shared')


def paired_ratio_ci(a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95,
                    n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap interval of mean(a) / mean(b) - 1 over tasks (percentile method,
    :func:`scipy.stats.bootstrap` with ``paired=True``): how well a number of tasks resolves the
    gap of row ``a`` (e.g. PCM xyz MSE) to row ``b`` (software) on the same tasks.

    Args:
        a, b: per-task values, shape (n_tasks,), n_tasks >= 2, b's mean > 0.
        confidence: level of the interval.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        (low, high).

    Raises:
        ValueError: shapes differ, fewer than 2 tasks, or mean(b) <= 0.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f'a, b: expected two (n_tasks,) arrays with n_tasks >= 2, got '
                         f'{a.shape} and {b.shape}')
    if not b.mean() > 0:
        raise ValueError(f'b: expected a positive mean, got {b.mean()}')
    res = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) / y.mean(axis=axis) - 1,
                          paired=True, vectorized=True, confidence_level=confidence,
                          n_resamples=n_resamples, method='percentile',
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _changed_weights(dw: torch.Tensor, step: float) -> torch.Tensor:
    """Entries per task whose ΔW is applied: ΔW rounded to nearest ≠ 0 (ΔW ≠ 0 without a grid)."""
    changed = torch.round(dw / step) != 0 if step > 0 else dw != 0
    return changed.sum(dim=(-2, -1))


@torch.no_grad()
def per_task_metrics(weights: dict[str, np.ndarray], cfg: C.L2LConfig, family: str,
                     n_tasks: int, *, seed: int, chunk: int, rows: tuple[str, ...] = ROWS,
                     noise: str = 'per_backend', n_updates: int | None = None,
                     device: torch.device | str = 'cpu', repeat: bool = False
                     ) -> tuple[dict[str, dict[str, np.ndarray]], torch.Tensor]:
    """The evaluation harness: the inner loop on `n_tasks` unseen tasks under each row.

    Every row sees the same tasks (from ``numpy.random.default_rng(seed)``, in batches of
    `chunk`), so rows are paired. The rows' backends (:data:`RUNS`): ``software`` float, no
    rounding; ``software_4bit`` ΔW on the ``pcm.delta_w_step`` grid; ``pcm`` the PCM model of
    ``cfg.pcm``. Device noise: ``noise='per_backend'`` gives each backend its own torch stream
    (seed + 0, 1, 2; a row's numbers then do not depend on which other rows run; ``l2l-nmhw
    eval``), ``'shared'`` one stream for all runs in row order (``l2l-nmhw fidelity``).

    Args:
        weights: checkpoint arrays (``trainee.*``, ``lsg.*``, (n_post, n_pre)).
        cfg: configuration (the checkpoint's own, normally).
        family: task family.
        n_tasks: number of tasks.
        seed: seed of the task and noise streams.
        chunk: tasks per batch (the results depend on it through the random streams).
        rows: subset of :data:`ROWS`.
        noise: one of :data:`NOISE_STREAMS`.
        n_updates: on-chip updates per task (default ``cfg.eprop.n_updates``; paper: 1).
        device: where the networks run (``cpu`` or a CUDA device; the noise streams of a CUDA
            generator differ from the CPU ones, so numbers agree in distribution only).
        repeat: run every test trial twice on the same adapted weights (the second with its
            own read-noise stream, so no other number changes) and add :data:`REPEAT_METRICS`
            to the test rows (exactly 0 where reads are exact: software).

    Returns:
        (``{row: {metric: array (n_tasks,)}}`` for the :data:`METRICS`, target xyz
        (time, n_tasks, 3) [m]). Metrics: official test loss ``loss`` =
        ``meta.loss_omega_weight`` MSE(omega) + ``meta.loss_xyz_weight`` MSE(xyz) (no
        regulariser), omega MSE, xyz MSE [m²], mean end-effector distance [m], final distance
        (last point to the target's last point) [m], devices (PCM) or
        weights (software) programmed, weights whose rounded ΔW ≠ 0, firing rate [Hz].

    Raises:
        ValueError: unknown family, row or noise policy; `n_tasks` or `chunk` below 1.
        FileNotFoundError: family ``reference`` without its data.
    """
    if family not in FAMILIES:
        raise ValueError(f'family: expected one of {list(FAMILIES)}, got {family!r}')
    if n_tasks < 1 or chunk < 1:
        raise ValueError(f'n_tasks and chunk must be >= 1, got {n_tasks}, {chunk}')
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise ValueError(f'rows: unknown {bad}, expected some of {list(ROWS)}')
    if noise not in NOISE_STREAMS:
        raise ValueError(f'noise: expected one of {list(NOISE_STREAMS)}, got {noise!r}')
    device = torch.device(device)
    trainee, lsg = weights_from_numpy(weights)
    trainee = {k: v.to(device) for k, v in trainee.items()}
    lsg = {k: v.to(device) for k, v in lsg.items()}
    step = cfg.pcm.delta_w_step
    runs = [r for r in RUNS if r[1] in rows or r[2] in rows]
    backends = {'software': (make_backend(cfg, pcm=False, quantize=False), 0.0),
                'software_4bit': (make_backend(cfg, pcm=False, quantize=True), step)}
    if any(name == 'pcm' for name, _, _ in runs):
        backends['pcm'] = (make_backend(cfg, pcm=True, quantize=True), step)
    rng = np.random.default_rng(seed)
    def generator(s: int) -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed(s)
        return g

    shared = generator(seed)
    gens = {name: shared if noise == 'shared' else generator(seed + off)
            for name, off in _BACKEND_SEED_OFFSET.items()}
    repeat_gens = {name: generator(seed + _REPEAT_SEED_OFFSET + off)
                   for name, off in _BACKEND_SEED_OFFSET.items()} if repeat else {}
    test_rows = {r[2] for r in RUNS}
    out: dict[str, dict[str, list[float]]] = {
        r: {m: [] for m in METRICS + (REPEAT_METRICS if repeat and r in test_rows else ())}
        for r in rows}
    w_om, w_xyz, dt = cfg.meta.loss_omega_weight, cfg.meta.loss_xyz_weight, cfg.task.dt
    targets: list[torch.Tensor] = []

    def add(row: str, trial: Any, tasks: Any, n_prog: torch.Tensor,
            n_changed: torch.Tensor) -> torch.Tensor:
        """Append the row's per-task metrics; returns the trial's xyz path."""
        err = task_errors(trial.y, tasks, cfg.task.omega_scale)
        d = out[row]
        d['loss'] += (w_om * err['omega_mse'] + w_xyz * err['xyz_mse']).tolist()
        for k in ('omega_mse', 'xyz_mse', 'distance', 'final_distance'):
            d[k] += err[k].tolist()
        d['n_programmed'] += n_prog.tolist()
        d['n_weights_changed'] += n_changed.tolist()
        d['rate_hz'] += (trial.z.mean(dim=(0, 2)) / dt).tolist()
        return err['xyz']

    done = 0
    while done < n_tasks:
        b = min(chunk, n_tasks - done)
        tasks = make_tasks(family, cfg.task, b, rng)
        targets.append(tasks.xyz)
        tasks = tasks_to(tasks, device)
        zeros = torch.zeros(b, dtype=torch.int64, device=device)
        for name, row_learn, row_test in runs:
            backend, grid = backends[name]
            res = adapt(trainee, lsg, tasks, cfg, backend=backend, generator=gens[name],
                        n_updates=n_updates, repeat_generator=repeat_gens.get(name))
            if row_learn in rows:
                add(row_learn, res.learn, tasks, zeros, zeros)
            if row_test in rows:
                changed = zeros.clone()
                if cfg.eprop.update_w_in:
                    changed = changed + _changed_weights(res.dw_in, grid)
                if cfg.eprop.update_w_rec:
                    changed = changed + _changed_weights(res.dw_rec, grid)
                xyz_a = add(row_test, res.test, tasks, res.n_programmed, changed)
                if res.repeat is not None:
                    xyz_b = task_errors(res.repeat.y, tasks, cfg.task.omega_scale)['xyz']
                    d = out[row_test]
                    d['repeat_final_distance'] += (xyz_a[-1] - xyz_b[-1]).norm(dim=-1).tolist()
                    d['repeat_xyz_var'] += (0.5 * ((xyz_a - xyz_b) ** 2).mean(dim=(0, 2))).tolist()
        done += b
    metrics = {r: {m: np.asarray(v, dtype=np.float64) for m, v in d.items()}
               for r, d in out.items()}
    return metrics, torch.cat(targets, dim=1)


def evaluate(weights: dict[str, np.ndarray], cfg: C.L2LConfig, family: str, n_tasks: int, *,
             seed: int = EVAL_SEED, chunk: int = 50, rows: tuple[str, ...] = ROWS,
             pcm_cfg: C.PCMConfig | None = None, n_updates: int | None = None,
             device: torch.device | str = 'cpu', repeat: bool = False
             ) -> dict[str, dict[str, float]]:
    """Return {row: {omega_mse, xyz_mse, distance, n_programmed, final_distance,
    final_distance_median, final_distance_p90}} over `n_tasks` tasks (means unless named).

    ``final_distance``: end-effector distance of the last point to the target's last point [m],
    where a reach ends (mean, median and 90th percentile over tasks).

    The harness :func:`per_task_metrics` with one noise stream per backend, plus the
    ``mean_path_baseline`` row (module docstring).

    Args:
        weights: checkpoint arrays (:data:`l2l_nmhw_ros.l2l.checkpoint.WEIGHT_KEYS`).
        cfg: configuration (the checkpoint's own, normally).
        family: task family.
        n_tasks: number of unseen tasks.
        seed: seed of the task and noise generators.
        chunk: tasks per batch (memory).
        rows: which of :data:`ROWS` to compute.
        pcm_cfg: PCM configuration for the PCM rows (default ``cfg.pcm``).
        n_updates: on-chip updates per task (default ``cfg.eprop.n_updates``).
        device: where the networks run (see :func:`per_task_metrics`).
        repeat: add to the test rows ``repeat_final_distance_median`` [m] and ``repeat_xyz_var``
            [m²] (mean), see :func:`per_task_metrics`.

    Raises:
        ValueError: unknown family or row, n_tasks < 1.
        FileNotFoundError: family ``reference`` without its data.
    """
    if pcm_cfg is not None:
        cfg = dataclasses.replace(cfg, pcm=pcm_cfg)
    metrics, xyz = per_task_metrics(weights, cfg, family, n_tasks, seed=seed, chunk=chunk,
                                    rows=rows, n_updates=n_updates, device=device,
                                    repeat=repeat)
    keys = ('omega_mse', 'xyz_mse', 'distance', 'n_programmed', 'final_distance')
    out = {r: {k: float(np.mean(metrics[r][k])) for k in keys} for r in rows}
    for r in rows:
        out[r]['final_distance_median'] = float(np.median(metrics[r]['final_distance']))
        out[r]['final_distance_p90'] = float(np.percentile(metrics[r]['final_distance'], 90))
        if 'repeat_xyz_var' in metrics[r]:
            out[r]['repeat_final_distance_median'] = float(
                np.median(metrics[r]['repeat_final_distance']))
            out[r]['repeat_xyz_var'] = float(np.mean(metrics[r]['repeat_xyz_var']))
    if 'pcm' in rows and 'software' in rows and n_tasks >= 2:
        lo, hi = paired_ratio_ci(metrics['pcm']['xyz_mse'], metrics['software']['xyz_mse'])
        out['pcm']['xyz_vs_software_lo95'], out['pcm']['xyz_vs_software_hi95'] = lo, hi
    # reference level: the best task-independent output, i.e. the mean target path of these tasks
    base = ((xyz - xyz.mean(dim=1, keepdim=True)) ** 2).mean(dim=(0, 2))
    dist = (xyz - xyz.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=0)
    end = (xyz[-1] - xyz[-1].mean(dim=0, keepdim=True)).norm(dim=-1).numpy()
    out['mean_path_baseline'] = {'omega_mse': float('nan'), 'xyz_mse': float(base.mean()),
                                 'distance': float(dist.mean()), 'n_programmed': 0.0,
                                 'final_distance': float(end.mean()),
                                 'final_distance_median': float(np.median(end)),
                                 'final_distance_p90': float(np.percentile(end, 90))}
    return out


def summary(result: dict[str, dict[str, float]]) -> dict[str, float]:
    """Return the headline ratios: xyz MSE before / after one update in software (``before`` /
    ``software``) and on PCM (``before_pcm`` / ``pcm``; ``before`` / ``pcm`` when there is no
    ``before_pcm`` row), and the PCM vs software gap after the update (``pcm / software - 1``)
    with its paired bootstrap 95 % interval over the tasks (``_lo95`` / ``_hi95``, when
    :func:`evaluate` computed it: :func:`paired_ratio_ci`)."""
    out: dict[str, float] = {}
    if 'before' in result and 'software' in result:
        sw = result['software']['xyz_mse']
        out['xyz_improvement_software'] = result['before']['xyz_mse'] / sw
    before_pcm = result.get('before_pcm', result.get('before'))
    if before_pcm is not None and 'pcm' in result:
        out['xyz_improvement_pcm'] = before_pcm['xyz_mse'] / result['pcm']['xyz_mse']
    if 'software' in result and 'pcm' in result:
        out['pcm_vs_software_rel'] = result['pcm']['xyz_mse'] / result['software']['xyz_mse'] - 1
        if 'xyz_vs_software_lo95' in result['pcm']:
            out['pcm_vs_software_rel_lo95'] = result['pcm']['xyz_vs_software_lo95']
            out['pcm_vs_software_rel_hi95'] = result['pcm']['xyz_vs_software_hi95']
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint folder (default: the shipped checkpoints/default)')
    parser.add_argument('--tasks', type=int, default=200, help='number of unseen tasks')
    parser.add_argument('--family', nargs='+', default=['reach'], choices=FAMILIES,
                        help='task families (each evaluated separately)')
    parser.add_argument('--seed', type=int, default=EVAL_SEED, help='task/noise seed')
    parser.add_argument('--updates', type=int, nargs='+', default=None, metavar='N',
                        help='on-chip updates per task; several numbers give the few-updates '
                        'curve (default: the checkpoint\'s eprop.n_updates)')
    parser.add_argument('--pcm-config', nargs='+', default=[], metavar='YAML',
                        help='ROS parameter files whose pcm: section replaces the checkpoint\'s '
                        'PCM model in the PCM rows (device-noise ablations, e.g. '
                        'read_noise: false); other sections are refused: the network is the '
                        'checkpoint\'s')
    parser.add_argument('--repeat', action='store_true',
                        help='run each adapted network\'s test trial twice (fresh read noise) '
                        'and report how far the two runs end apart: the trial-to-trial '
                        'variability no update can remove (0 in software)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--device', default='cpu', metavar='DEVICE',
                        help='cpu (default), cuda, cuda:N or auto')
    parser.add_argument('--json', action='store_true', help='machine-readable output')


LABELS = {'before': 'before update', 'software': 'after, software',
          'software_4bit': 'after, software 4-bit', 'before_pcm': 'before, PCM',
          'pcm': 'after, PCM', 'mean_path_baseline': 'mean-path baseline'}


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (or JSON); returns 0.

    With one number of updates (the default) the JSON holds ``families.<family>.rows`` and
    ``summary``; with ``--updates N1 N2 ...`` also ``families.<family>.updates.<N>`` (rows and
    summary per number of updates; the top-level rows are those of the first N). With
    ``--pcm-config`` the PCM rows (and the 4-bit row's grid, ``pcm.delta_w_step``) run the
    checkpoint's PCM model with the files' ``pcm:`` values on top (:func:`config.overlay`);
    ``pcm_overrides`` in the JSON lists the values that changed. ``--repeat`` adds
    ``repeat_final_distance_median`` and ``repeat_xyz_var`` to the test rows
    (:func:`per_task_metrics`).

    Raises:
        ConfigError: a ``--pcm-config`` file sets a section other than ``pcm`` or a bad value.
        FileNotFoundError: the checkpoint or a ``--pcm-config`` file does not exist.
    """
    torch.set_num_threads(max(1, args.threads))
    device = resolve_device(args.device)
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    weights, meta = ckpt.load(path)
    cfg = config_from_metadata(meta)
    pcm_cfg = None
    report: dict[str, Any] = {'checkpoint': str(path), 'config_hash': meta.get('config_hash'),
                              'tasks': args.tasks, 'seed': args.seed, 'families': {}}
    if args.pcm_config:
        pcm_cfg = C.overlay(cfg, *args.pcm_config, sections=('pcm',)).pcm
        ours = C.to_dict(cfg.pcm)
        report['pcm_overrides'] = {k: v for k, v in C.to_dict(pcm_cfg).items() if v != ours[k]}
    updates = list(args.updates) if args.updates else [cfg.eprop.n_updates]
    for fam in args.family:
        per = {}
        for n in updates:
            res = evaluate(weights, cfg, fam, args.tasks, seed=args.seed, n_updates=n,
                           device=device, pcm_cfg=pcm_cfg, repeat=args.repeat)
            per[n] = {'rows': res, 'summary': summary(res)}
        report['families'][fam] = dict(per[updates[0]])
        if len(updates) > 1:
            report['families'][fam]['updates'] = {str(n): v for n, v in per.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f'checkpoint {path} (config {meta.get("config_hash")}), {args.tasks} unseen tasks, '
          f'seed {args.seed}, {updates[0]} on-chip update(s)')
    if 'pcm_overrides' in report:
        print(f'PCM model overridden by {" ".join(args.pcm_config)}: '
              f'{report["pcm_overrides"] or "(no value changed)"}')
    for fam, body in report['families'].items():
        print(f'\nfamily {fam}')
        print(f'{"":22s} {"omega MSE":>10s} {"xyz MSE [m^2]":>14s} {"distance [m]":>13s} '
              f'{"final [m] median / p90":>23s} {"devices programmed":>19s}')
        for row, vals in body['rows'].items():
            final = f'{vals["final_distance_median"]:.3f} / {vals["final_distance_p90"]:.3f}'
            print(f'{LABELS[row]:22s} {vals["omega_mse"]:10.4f} {vals["xyz_mse"]:14.5f} '
                  f'{vals["distance"]:13.4f} {final:>23s} {vals["n_programmed"]:19.1f}')
        for k, v in body['summary'].items():
            print(f'  {k}: {v:.3f}')
        for row, vals in body['rows'].items():
            if 'repeat_xyz_var' in vals:
                print(f'  {LABELS[row]}, run twice: end points '
                      f'{vals["repeat_final_distance_median"]:.4f} m apart (median), path '
                      f'variance {vals["repeat_xyz_var"]:.5f} m^2')
        if 'updates' in body:
            print(f'  few updates: {"updates":>7s} {"xyz MSE sw":>11s} {"xyz MSE PCM":>12s} '
                  f'{"final median sw":>16s} {"final median PCM":>17s}')
            for n, b in body['updates'].items():
                r = b['rows']
                print(f'  {"":12s} {n:>7s} {r["software"]["xyz_mse"]:11.5f} '
                      f'{r["pcm"]["xyz_mse"]:12.5f} {r["software"]["final_distance_median"]:16.3f}'
                      f' {r["pcm"]["final_distance_median"]:17.3f}')
    return 0
