"""``l2l-nmhw fidelity``: the published robot checkpoint, evaluated by our implementation.

Imports the authors' published pickle in memory (restricted unpickler; or reads an already
imported checkpoint folder), runs the one-update inner loop on ``brownian`` tasks in software and
on the emulated PCM (:mod:`l2l_nmhw_ros.reference.fidelity`) and prints a table of the losses
before and after the update with standard errors, the paired effects and the devices programmed
per task (``--json``: everything, machine-readable). See ``docs/fidelity.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELS = {'before': 'before update (SW)', 'software': 'after, software',
          'software_4bit': 'after, software 4-bit', 'before_pcm': 'before update (PCM)',
          'pcm': 'after, PCM'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    from l2l_nmhw_ros.reference.fidelity import CHUNK, FIDELITY_SEED

    src = parser.add_mutually_exclusive_group()
    src.add_argument('--published', default=None, metavar='PICKLE',
                     help='published robot pickle (default: '
                          '../shared/data/rlimc_checkpoints/robot_pretrained_weights.pickle)')
    src.add_argument('--checkpoint', default=None, metavar='FOLDER',
                     help='an imported checkpoint folder (l2l-nmhw import-checkpoint)')
    parser.add_argument('--tasks', type=int, default=2700,
                        help='number of brownian tasks (default 2700 = the official test, 30 '
                        'batches of 90; ~8 min on one core)')
    parser.add_argument('--seed', type=int, default=FIDELITY_SEED, help='task and noise seed')
    parser.add_argument('--chunk', type=int, default=CHUNK, help='tasks per batch')
    parser.add_argument('--target-rel-se', type=float, default=0.05,
                        help='target relative standard error of every mean loss (default 0.05)')
    parser.add_argument('--config', nargs='*', default=[], metavar='YAML',
                        help='parameter files applied after the default file and the paper preset')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--device', default='cpu', metavar='DEVICE',
                        help='cpu (default), cuda, cuda:N or auto')
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def load_weights(args: argparse.Namespace, cfg) -> tuple[dict, dict]:
    """Return (weights, source description) from --checkpoint or --published.

    Raises:
        FileNotFoundError: the published pickle is not there.
        CheckpointError: the checkpoint's LSG target code is not the configuration's.
    """
    from l2l_nmhw_ros.l2l import checkpoint
    from l2l_nmhw_ros.reference import fidelity, published

    if args.checkpoint:
        weights, meta = checkpoint.load(args.checkpoint)
        checkpoint.check_target_code(meta, cfg.lsg.target_code, str(args.checkpoint))
        return weights, {'checkpoint': str(args.checkpoint), **meta.get('source', {})}
    path = Path(args.published) if args.published else fidelity.default_published_path()
    if not path.is_file():
        raise FileNotFoundError(f'published checkpoint not found: {path} (pass --published or '
                                '--checkpoint)')
    ckpt = published.read_published(path)
    return published.convert_robot(ckpt, cfg), {'file': str(path), 'sha256': ckpt.sha256}


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (or JSON); returns 0, or 1 when the SE target is missed."""
    import torch

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.l2l.distributed import resolve_device
    from l2l_nmhw_ros.reference.fidelity import fidelity_report

    torch.set_num_threads(max(1, args.threads))
    device = resolve_device(args.device)
    from l2l_nmhw_ros.l2l.train_cli import preset_path

    # the published checkpoint runs as the paper's robot code runs it (preset `paper`:
    # deterministic rounding of Delta W), then the user's --config files
    cfg = C.load(C.default_config_path(), preset_path('paper'), *args.config)
    weights, source = load_weights(args, cfg)
    report = fidelity_report(weights, cfg, args.tasks, seed=args.seed, chunk=args.chunk,
                             target_rel_se=args.target_rel_se, device=device)
    report['source'] = source
    report['config_hash'] = C.config_hash(cfg)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0 if report['se_target_met'] else 1
    print(f"published robot checkpoint {source.get('file', source.get('checkpoint'))}")
    print(f"  {report['n_tasks']} brownian tasks, seed {report['seed']}, batches of "
          f"{report['chunk']}, PCM preset {report['pcm_preset']}, "
          f"config {report['config_hash']}")
    print("loss = 0.5 MSE(omega) + 0.5 MSE(xyz) per task (no regulariser); mean ± SE")
    print(f"{'':22s} {'loss':>17s} {'rel SE':>7s} {'n req':>6s} {'omega MSE':>10s} "
          f"{'xyz MSE [m2]':>13s} {'dist [m]':>9s} {'rate Hz':>8s} {'weights':>8s} "
          f"{'devices':>8s}")
    for row, st in report['rows'].items():
        loss = st['loss']
        print(f"{LABELS[row]:22s} {loss['mean']:8.4f} ± {loss['se']:6.4f} "
              f"{100 * loss['rel_se']:6.1f}% {loss['n_required']:6d} "
              f"{st['omega_mse']['mean']:10.4f} {st['xyz_mse']['mean']:13.5f} "
              f"{st['distance']['mean']:9.4f} {st['rate_hz']['mean']:8.2f} "
              f"{st['n_weights_changed']['mean']:8.0f} {st['n_programmed']['mean']:8.0f}")
    print('paired effects on the loss (same tasks): ratio of means, mean difference ± SE')
    for name, e in report['effects'].items():
        print(f"  {name:28s} {e['ratio']:7.3f}   {e['diff_mean']:+.4f} ± {e['diff_se']:.4f}  "
              f"(a > b in {100 * e['frac_tasks_a_greater']:.0f} % of tasks)")
    print(f"eligible for the update: {report['eligible_weights']} weights = "
          f"{report['eligible_devices']} devices ({report['n_devices_per_polarity']} per "
          f'polarity)')
    ok = report['se_target_met']
    print(f"relative SE of every mean loss <= {100 * args.target_rel_se:.0f} %: "
          f"{'yes' if ok else 'NO (increase --tasks to the largest n req)'}")
    return 0 if ok else 1
