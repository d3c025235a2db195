"""``l2l-nmhw train``: meta-train the trainee's initial weights and the LSG (the L2L outer loop).

Writes a checkpoint folder (``--out``) every ``meta.checkpoint_every`` iterations and at the end,
with the resumable training state; ``--resume`` continues from it (same configuration required).
Progress: a tqdm bar with the loss, the xyz error before/after the update and the firing rates;
``--log`` appends one JSON line per iteration and per validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import time
from pathlib import Path

from l2l_nmhw_ros import config as C

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--config', nargs='*', default=[], metavar='YAML',
                        help='parameter files applied after the default file, in order')
    parser.add_argument('--preset', default=None,
                        help='preset name (config/presets/<name>.yaml), applied before --config')
    parser.add_argument('--out', required=True, help='checkpoint folder to write')
    parser.add_argument('--iterations', type=int, default=None,
                        help='total iterations (default meta.iterations)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the checkpoint in --out (config must match)')
    parser.add_argument('--allow-config-change', action='store_true',
                        help='with --resume: accept a checkpoint whose config hash differs '
                             '(e.g. after new config fields were added)')
    parser.add_argument('--init-from', default=None, metavar='CKPT',
                        help='start from the weights of another checkpoint (fresh optimizer; '
                             'the config may differ, e.g. to fine-tune with PCM in the loop)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--log', default=None, metavar='JSONL', help='append metrics here')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def git_revision() -> str:
    """Return the git revision of the source tree ('+dirty' when modified), or 'unknown'."""
    try:
        rev = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ('+dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def preset_path(name: str) -> Path:
    """Return ``config/presets/<name>.yaml`` next to the default configuration.

    Raises:
        FileNotFoundError: if there is no such preset.
    """
    p = C.default_config_path().parent / 'presets' / f'{name}.yaml'
    if not p.is_file():
        raise FileNotFoundError(f'preset {name!r} not found: {p}')
    return p


def load_config(args: argparse.Namespace) -> C.L2LConfig:
    """Return the configuration: default file, then the preset, then --config files."""
    files = [C.default_config_path()]
    if getattr(args, 'preset', None):
        files.append(preset_path(args.preset))
    files += [Path(p) for p in args.config]
    return C.load(*files)


def run(args: argparse.Namespace) -> int:
    """Meta-train; returns 0 on success."""
    import torch
    from tqdm import tqdm

    from l2l_nmhw_ros.l2l.meta import MetaTrainer

    torch.set_num_threads(max(1, args.threads))
    cfg = load_config(args)
    total = args.iterations if args.iterations is not None else cfg.meta.iterations
    trainer = MetaTrainer(cfg)
    out = Path(args.out)
    if args.resume and (out / 'metadata.json').is_file():
        trainer.load(str(out), strict_config=not args.allow_config_change)
        log.info('resumed from %s at iteration %d', out, trainer.iteration)
    elif args.init_from:
        trainer.load(args.init_from, strict_config=False, same_target_code=False)
        trainer.iteration = 0
        trainer.optimizer = torch.optim.Adam(list(trainer.params.values()), lr=cfg.meta.lr)
        log.info('initialised from %s', args.init_from)
    logf = open(args.log, 'a', encoding='utf-8') if args.log else None  # noqa: SIM115
    rev = git_revision()
    t_start = time.monotonic()
    start_iter = trainer.iteration
    last_val: dict[str, float] = {}
    bar = tqdm(total=total, initial=trainer.iteration, disable=args.no_progress,
               dynamic_ncols=True, desc='meta-train')

    def on_step(p: dict[str, float]) -> None:
        p['wall_s'] = time.monotonic() - t_start
        if logf:
            logf.write(json.dumps(p) + '\n')
            logf.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{p['loss']:.4f}", xyz=f"{p['xyz_mse']:.4f}",
                        xyz0=f"{p['xyz_mse_before']:.4f}", hz=f"{p['rate_trainee_hz']:.0f}",
                        lsg_hz=f"{p['rate_lsg_hz']:.0f}", prog=f"{p['n_programmed']:.0f}")

    def on_validate(v: dict[str, float]) -> None:
        last_val.clear()
        last_val.update(v)
        v = dict(v, iteration=trainer.iteration, wall_s=time.monotonic() - t_start)
        if logf:
            logf.write(json.dumps(v) + '\n')
            logf.flush()
        bar.write(f"[val {trainer.iteration}] xyz before {v['val_xyz_mse_before']:.4f} "
                  f"after {v['val_xyz_mse']:.4f} omega {v['val_omega_mse_before']:.4f} -> "
                  f"{v['val_omega_mse']:.4f}")

    def on_checkpoint() -> None:
        elapsed = time.monotonic() - t_start
        n = trainer.iteration - start_iter
        trainer.save(str(out), extra={
            'git_revision': rev, 'metrics': dict(last_val),
            'train': {'seconds_this_run': elapsed,
                      's_per_iteration': elapsed / n if n else None,
                      'torch_threads': torch.get_num_threads()}})

    trainer.train(total, on_step=on_step, on_validate=on_validate, on_checkpoint=on_checkpoint)
    bar.close()
    if trainer.iteration == start_iter:
        on_checkpoint()
    if logf:
        logf.close()
    return 0
