"""Fidelity evaluation: the authors' published robot checkpoint run by OUR implementation.

The published meta-trained weights (imported with :mod:`l2l_nmhw_ros.reference.published`) are
adapted by our inner loop (:func:`l2l_nmhw_ros.l2l.inner.adapt`: trainee, LSG, natural e-prop, one
update) on the paper's ``brownian`` task family, under the rows of ``l2l-nmhw eval``
(:mod:`l2l_nmhw_ros.l2l.evaluate`), all on the SAME tasks (paired):

- ``before``: the meta-learned initial trainee, float weights, no update (learning trial);
- ``software``: one update, float weights, unquantised ΔW;
- ``software_4bit``: one update with ΔW rounded to the 1/16 grid, no device noise;
- ``before_pcm``: the trainee deployed on the emulated PCM (``cfg.pcm``, preset ``paper_code``:
  clipping, jitter, drift at t/t0 = 32, read noise on every MVM), before the update;
- ``pcm``: one update on the emulated PCM (quantised ΔW re-programmed with programming noise and
  fresh drift on the changed devices only).

Metrics per task (those of ``l2l-nmhw eval``, :func:`l2l_nmhw_ros.l2l.meta.task_errors`): omega
MSE, xyz MSE [m²], mean end-effector distance [m], devices programmed; plus the paper code's
printed test loss ``loss = 0.5 MSE(omega) + 0.5 MSE(xyz)`` without the rate regulariser
(paper-notes §7; the weights are ``meta.loss_omega_weight`` / ``meta.loss_xyz_weight``), the
weights changed by the update (entries with quantised ΔW ≠ 0) and the trainee's firing rate.
The official ``main.py --checkpoint`` prints that loss for the PCM model (``--noise_trainee``
defaults to True), i.e. our ``pcm`` row, averaged over 30 batches of 90 tasks.

Statistics: mean over n tasks, SD, standard error SE = SD / sqrt(n), relative SE = SE / mean and
the n that a relative SE of ``target_rel_se`` (5 %) needs, n = ceil((SD / (target * mean))^2).
Paired effects (same tasks): one-update improvement = mean(before) / mean(after) and the mean
per-task difference with its SE; PCM vs software gap = mean(pcm) / mean(software) and the paired
difference. Tasks come in chunks of :data:`CHUNK` (the paper's batch of 90) from one seeded
``numpy.random.Generator``; the device noise from one seeded ``torch.Generator``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.l2l.evaluate import METRICS, ROWS
from l2l_nmhw_ros.l2l.evaluate import per_task_metrics as harness

__all__ = ['CHUNK', 'FIDELITY_SEED', 'METRICS', 'ROWS', 'default_published_path',
           'fidelity_report', 'per_task_metrics', 'required_n', 'summarize']

CHUNK = 90  # tasks per batch: the paper code's evaluation batch
FIDELITY_SEED = 2025
PUBLISHED_ROBOT = Path('rlimc_checkpoints') / 'robot_pretrained_weights.pickle'


def default_published_path() -> Path:
    """Return ``../shared/data/rlimc_checkpoints/robot_pretrained_weights.pickle`` beside the repo
    (may not exist: a fresh clone has no ``../shared``)."""
    return Path(__file__).resolve().parents[3] / 'shared' / 'data' / PUBLISHED_ROBOT


def required_n(sd: float, mean: float, target_rel_se: float = 0.05) -> int:
    """Return the number of tasks for which SE = sd / sqrt(n) is at most `target_rel_se` * mean.

    Raises:
        ValueError: `target_rel_se` not positive or `mean` zero.
    """
    if target_rel_se <= 0:
        raise ValueError(f'target_rel_se must be positive, got {target_rel_se}')
    if mean == 0:
        raise ValueError('mean is 0: a relative standard error is undefined')
    return max(1, math.ceil((sd / (target_rel_se * abs(mean))) ** 2))


def per_task_metrics(weights: dict[str, np.ndarray], cfg: L2LConfig, n_tasks: int, *,
                     family: str = 'brownian', seed: int = FIDELITY_SEED, chunk: int = CHUNK,
                     rows: tuple[str, ...] = ROWS, device: str = 'cpu'
                     ) -> dict[str, dict[str, np.ndarray]]:
    """Run the inner loop on `n_tasks` tasks under each row; return per-task metrics.

    The package's evaluation harness (:func:`l2l_nmhw_ros.l2l.evaluate.per_task_metrics`) with
    one noise stream shared by the rows (``noise='shared'``), as this evaluation was defined.

    Args:
        weights: checkpoint arrays (``trainee.*``, ``lsg.*``, (n_post, n_pre)).
        cfg: configuration (PCM preset in ``cfg.pcm``; the paper's is ``paper_code``).
        n_tasks: number of tasks (the same tasks for every row).
        family: task family (the paper's: ``brownian``).
        seed: seed of the task stream and of the device noise.
        chunk: tasks per batch (the result depends on it through the random streams).
        rows: subset of :data:`ROWS`.
        device: where the networks run (``cpu`` or CUDA; see the harness).

    Returns:
        ``{row: {metric: array (n_tasks,)}}`` for the :data:`METRICS`.

    Raises:
        ValueError: `n_tasks` or `chunk` below 1, an unknown row, or ``pcm.stochastic_rounding``
            (this evaluation reproduces the paper's robot code, which rounds Delta W to nearest;
            its ``n_weights_changed`` counts that rounding).
    """
    if cfg.pcm.stochastic_rounding:
        raise ValueError('pcm.stochastic_rounding: the fidelity evaluation reproduces the '
                         "paper's robot code, which rounds Delta W to nearest; use preset paper "
                         '(config/presets/paper.yaml) or set it false')
    metrics, _ = harness(weights, cfg, family, n_tasks, seed=seed, chunk=chunk, rows=rows,
                         noise='shared', device=device)
    return metrics


def _stats(x: np.ndarray, target_rel_se: float) -> dict[str, float]:
    n = x.size
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    se = sd / math.sqrt(n)
    rel = se / abs(mean) if mean else float('nan')
    need = required_n(sd, mean, target_rel_se) if mean else 0
    return {'mean': mean, 'sd': sd, 'se': se, 'rel_se': rel, 'n': n, 'n_required': need}


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Ratio of means a/b and the paired difference a - b (mean, SE)."""
    d = a - b
    n = d.size
    se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    return {'ratio': float(a.mean() / b.mean()), 'diff_mean': float(d.mean()), 'diff_se': se,
            'frac_tasks_a_greater': float((d > 0).mean())}


def summarize(metrics: dict[str, dict[str, np.ndarray]],
              target_rel_se: float = 0.05) -> dict[str, Any]:
    """Return the statistics of :func:`per_task_metrics` output (see module docstring).

    Keys: ``rows`` {row: {metric: {mean, sd, se, rel_se, n, n_required}}}, ``effects``
    {name: {ratio, diff_mean, diff_se, frac_tasks_a_greater}} for the one-update improvement
    (``improvement_software``/``_4bit``/``_pcm`` = before / after, loss) and the
    PCM-vs-software gaps (``pcm_vs_software``, ``pcm_vs_software_4bit``, ``before_pcm_vs_before``),
    and ``se_target_met`` (every row's loss has rel. SE <= target).
    """
    rows = {r: {m: _stats(v, target_rel_se) for m, v in d.items()} for r, d in metrics.items()}
    effects: dict[str, dict[str, float]] = {}
    pairs = {'improvement_software': ('before', 'software'),
             'improvement_software_4bit': ('before', 'software_4bit'),
             'improvement_pcm': ('before_pcm', 'pcm'),
             'pcm_vs_software': ('pcm', 'software'),
             'pcm_vs_software_4bit': ('pcm', 'software_4bit'),
             'before_pcm_vs_before': ('before_pcm', 'before')}
    for name, (a, b) in pairs.items():
        if a in metrics and b in metrics:
            effects[name] = _paired(metrics[a]['loss'], metrics[b]['loss'])
    met = all(s['loss']['rel_se'] <= target_rel_se for s in rows.values())
    return {'rows': rows, 'effects': effects, 'se_target_met': met,
            'target_rel_se': target_rel_se}


def fidelity_report(weights: dict[str, np.ndarray], cfg: L2LConfig, n_tasks: int, *,
                    seed: int = FIDELITY_SEED, chunk: int = CHUNK,
                    target_rel_se: float = 0.05, device: str = 'cpu') -> dict[str, Any]:
    """Return :func:`summarize` of :func:`per_task_metrics` on the ``brownian`` family, plus the
    run parameters (n_tasks, seed, chunk, family, PCM preset, device counts)."""
    metrics = per_task_metrics(weights, cfg, n_tasks, seed=seed, chunk=chunk, device=device)
    report = summarize(metrics, target_rel_se)
    t = cfg.trainee
    n_weights = t.n_rec * ((t.n_in if cfg.eprop.update_w_in else 0)
                           + (t.n_rec if cfg.eprop.update_w_rec else 0))
    report.update({'family': 'brownian', 'n_tasks': n_tasks, 'seed': seed, 'chunk': chunk,
                   'pcm_preset': cfg.pcm.preset, 'n_devices_per_polarity': cfg.pcm.n_devices,
                   'eligible_weights': n_weights,
                   'eligible_devices': n_weights * 2 * cfg.pcm.n_devices})
    return report
