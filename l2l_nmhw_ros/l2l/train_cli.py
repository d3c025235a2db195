"""``l2l-nmhw train``: meta-train the trainee's initial weights and the LSG (the L2L outer loop).

Writes a checkpoint folder (``--out``) every ``meta.checkpoint_every`` iterations and at the end,
with the resumable training state; ``--resume`` continues from it (same configuration required).
Progress: a tqdm bar with the loss, the xyz error before/after the update and the firing rates;
``--log`` appends one JSON line per iteration and per validation.

Work is never lost, and never overwritten by accident:

- **Ctrl-C** (SIGINT) or **SIGTERM** stops at once, without a traceback: the iteration in
  progress is discarded (the trainer goes back to the end of the last completed one), that state
  is saved to ``--out`` by the same save as the periodic checkpoints (so it resumes exactly),
  one line on stderr gives the command that continues it (``l2l-nmhw train ... --out X
  --resume``) and the exit code is 130. A signal that arrives while a checkpoint is being written
  takes effect once the save is complete, so no half-written checkpoint is left; a save cut
  short otherwise (power loss, SIGKILL) is refused on load, since metadata.json is written last
  and records the SHA-256 of the other files (:mod:`l2l_nmhw_ros.l2l.checkpoint`).
- **Overwrite**: an ``--out`` that already holds a checkpoint (metadata.json) is refused with exit
  code 2 unless ``--resume`` (continue it) or ``--force`` (start afresh and overwrite it at the
  first save) is given.
- **Resume**: ``--resume`` needs a checkpoint in ``--out`` (else exit code 2 before anything
  starts; the ``--log`` file is not touched) and cannot be combined with ``--init-from``.

Scale-out: ``--device cpu|cuda|auto`` puts every tensor of the run on that device (checkpoints
are written from CPU copies and load anywhere); under ``torchrun`` the run is data-parallel
over the processes (:mod:`l2l_nmhw_ros.l2l.distributed`: the global batch split over ranks,
gradients all-reduced, rank 0 logs, validates and saves; resuming with another world size
continues the same task stream). Recipes with commands and timings: docs/learning.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    parser.add_argument('--force', action='store_true',
                        help='start afresh even if --out holds a checkpoint (it is overwritten '
                             'at the first save)')
    parser.add_argument('--allow-config-change', action='store_true',
                        help='with --resume: accept a checkpoint whose config hash differs '
                             '(e.g. after new config fields were added)')
    parser.add_argument('--init-from', default=None, metavar='CKPT',
                        help='start from the weights of another checkpoint (fresh optimizer; '
                             'the config may differ, e.g. to fine-tune with PCM in the loop)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads per process (default 1)')
    parser.add_argument('--device', default='cpu', metavar='DEVICE',
                        help='cpu (default), cuda, cuda:N or auto (CUDA when available); under '
                             'torchrun, cuda means the GPU of LOCAL_RANK')
    parser.add_argument('--log', '--metrics-log', dest='log', default=None, metavar='JSONL',
                        help='append metrics here (--metrics-log under torchrun, whose own '
                             'parser takes --log for an ambiguous abbreviation of its --log-dir)')
    parser.add_argument('--keep-best', default=None, metavar='DIR',
                        help='after every validation with the lowest validation loss of this run '
                             'so far, also save the checkpoint (with its training state) to DIR: '
                             'meta-training with PCM in the loop is noisy, the last state is not '
                             'always the best')
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


#: Exit code after Ctrl-C / SIGTERM (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130


def check_out_folder(args: argparse.Namespace) -> None:
    """Refuse argument combinations that would lose or mix work, before anything starts.

    Raises:
        ValueError: ``--resume`` with ``--init-from``; ``--resume`` and ``--out`` holds no
            checkpoint; ``--out`` holds a checkpoint and neither ``--resume`` nor ``--force``.
    """
    from l2l_nmhw_ros.l2l.checkpoint import METADATA_FILE

    out = Path(args.out)
    has_checkpoint = (out / METADATA_FILE).is_file()
    if args.resume and args.init_from:
        raise ValueError('--resume continues the checkpoint in --out with its own weights; it '
                         'cannot be combined with --init-from')
    if args.resume and not has_checkpoint:
        raise ValueError(f'--resume: {out} holds no checkpoint ({METADATA_FILE} missing); '
                         'nothing to continue (drop --resume to start a new run there)')
    if has_checkpoint and not (args.resume or getattr(args, 'force', False)):
        raise ValueError(f'{out} already holds a checkpoint; add --resume to continue it, or '
                         '--force to start afresh and overwrite it')


def resume_command(args: argparse.Namespace) -> str:
    """Return the shell command that continues this run from its checkpoint in ``--out``
    (the same configuration, iterations, threads, log and progress options; ``--resume``
    instead of ``--init-from`` / ``--force``)."""
    cmd = ['l2l-nmhw', 'train']
    if args.preset:
        cmd += ['--preset', args.preset]
    if args.config:
        cmd += ['--config', *args.config]
    cmd += ['--out', args.out]
    if args.iterations is not None:
        cmd += ['--iterations', str(args.iterations)]
    if args.threads != 1:
        cmd += ['--threads', str(args.threads)]
    if getattr(args, 'device', 'cpu') != 'cpu':
        cmd += ['--device', args.device]
    if args.log:
        cmd += ['--log', args.log]
    if args.no_progress:
        cmd.append('--no-progress')
    if args.allow_config_change:
        cmd.append('--allow-config-change')
    return shlex.join(cmd + ['--resume'])


class _Interrupts:
    """SIGINT and SIGTERM raise KeyboardInterrupt once; after that (``stopping``: the run is
    saving and exiting) and inside :meth:`deferred` (a checkpoint being written) they are held,
    so a second Ctrl-C cannot cut the final save short. Installed only in the main thread
    (elsewhere Python delivers no signals); the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.stopping = False
        self._deferring = False
        self._pending: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deferring or self.stopping:
            self._pending = signum
            return
        self.stopping = True
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals during the block; afterwards raise KeyboardInterrupt for one that came
        meanwhile, unless the run is already ``stopping``."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            pending, self._pending = self._pending, None
        if pending is not None and not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt(signal.Signals(pending).name)


class _Boundary:
    """The trainer's state at the end of its last completed iteration (taken before each
    step), so an interrupt in the middle of a step can be undone before saving."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.take()

    def take(self) -> None:
        """Record the trainer's state now (it is at an iteration boundary)."""
        tr = self.trainer
        self.iteration = tr.iteration
        self.history_len = len(tr.history)
        self.params = {k: v.detach().clone() for k, v in tr.params.items()}
        self.optimizer = copy.deepcopy(tr.optimizer.state_dict())
        self.noise = tr.noise_gen.get_state()
        self.tasks = copy.deepcopy(tr.task_rng.bit_generator.state)

    def restore_if_mid_step(self) -> bool:
        """Put the trainer back to the recorded state when a step was cut short (the iteration
        counter, a step's last change, has not moved, but the weights or the random streams
        have); return True when something was undone."""
        import torch

        tr = self.trainer
        if tr.iteration != self.iteration:
            return False
        same = (all(torch.equal(tr.params[k].detach(), v) for k, v in self.params.items())
                and torch.equal(tr.noise_gen.get_state(), self.noise)
                and tr.task_rng.bit_generator.state == self.tasks)
        with torch.no_grad():
            for k, v in self.params.items():
                tr.params[k].copy_(v)
        tr.optimizer.load_state_dict(self.optimizer)
        tr.noise_gen.set_state(self.noise)
        tr.task_rng.bit_generator.state = self.tasks
        del tr.history[self.history_len:]
        return not same


def run(args: argparse.Namespace) -> int:
    """Meta-train; returns 0 on success, :data:`EXIT_INTERRUPTED` after Ctrl-C / SIGTERM (with
    a resumable checkpoint saved).

    Raises:
        ValueError: see :func:`check_out_folder` (raised before anything starts).
        L2LError: bad configuration or checkpoint.
    """
    check_out_folder(args)
    with _Interrupts() as interrupts:
        try:
            return _train(args, interrupts)
        except KeyboardInterrupt:  # before the trainer exists: nothing to save
            print('l2l-nmhw train: interrupted before training started; nothing saved',
                  file=sys.stderr)
            return EXIT_INTERRUPTED


def _train(args: argparse.Namespace, interrupts: _Interrupts) -> int:
    import torch

    from l2l_nmhw_ros.l2l import distributed as D
    from l2l_nmhw_ros.l2l.meta import MetaTrainer

    torch.set_num_threads(max(1, args.threads))
    cfg = load_config(args)
    total = args.iterations if args.iterations is not None else cfg.meta.iterations
    device = D.resolve_device(getattr(args, 'device', 'cpu'))
    world = D.init_from_env(device)
    try:
        return _train_on(args, interrupts, cfg, total, MetaTrainer(cfg, device=device,
                                                                   world=world))
    finally:
        D.shutdown(world)


def _train_on(args: argparse.Namespace, interrupts: _Interrupts, cfg: C.L2LConfig, total: int,
              trainer: Any) -> int:
    import torch
    from tqdm import tqdm

    world = trainer.world
    main = world.is_main
    if world.distributed and main:
        log.info('data-parallel: %d ranks, %s, global batch %d', world.size,
                 torch.distributed.get_backend(), cfg.meta.batch_size)
    out = Path(args.out)
    if args.resume:
        trainer.load(str(out), strict_config=not args.allow_config_change)
        log.info('resumed from %s at iteration %d', out, trainer.iteration)
    elif args.init_from:
        trainer.init_from(args.init_from)
        log.info('initialised from %s', args.init_from)
    world.broadcast_(list(trainer.params.values()))  # identical already; make it certain
    rev = git_revision()
    t_start = time.monotonic()
    start_iter = trainer.iteration
    last_val: dict[str, float] = {}
    boundary = _Boundary(trainer)
    with contextlib.ExitStack() as stack:
        logf = (stack.enter_context(open(args.log, 'a', encoding='utf-8'))
                if args.log and main else None)
        bar = stack.enter_context(tqdm(total=total, initial=trainer.iteration,
                                       disable=args.no_progress or not main,
                                       dynamic_ncols=True, desc='meta-train'))

        def on_step(p: dict[str, float]) -> None:
            boundary.take()  # first: the step is complete, the trainer is at a boundary
            p['wall_s'] = time.monotonic() - t_start
            if logf:
                logf.write(json.dumps(p) + '\n')
                logf.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{p['loss']:.4f}", xyz=f"{p['xyz_mse']:.4f}",
                            xyz0=f"{p['xyz_mse_before']:.4f}", hz=f"{p['rate_trainee_hz']:.0f}",
                            lsg_hz=f"{p['rate_lsg_hz']:.0f}", prog=f"{p['n_programmed']:.0f}")

        best = [float('inf')]

        def on_validate(v: dict[str, float]) -> None:
            last_val.clear()
            last_val.update(v)
            if args.keep_best and v['val_loss'] < best[0]:
                best[0] = v['val_loss']
                save(args.keep_best)
            v = dict(v, iteration=trainer.iteration, wall_s=time.monotonic() - t_start)
            if logf:
                logf.write(json.dumps(v) + '\n')
                logf.flush()
            bar.write(f"[val {trainer.iteration}] xyz before {v['val_xyz_mse_before']:.4f} "
                      f"after {v['val_xyz_mse']:.4f} omega {v['val_omega_mse_before']:.4f} -> "
                      f"{v['val_omega_mse']:.4f}")

        def save(where: str | Path = out) -> None:
            elapsed = time.monotonic() - t_start
            n = trainer.iteration - start_iter
            with interrupts.deferred():  # never a half-written checkpoint
                trainer.save(str(where), extra={
                    'git_revision': rev, 'metrics': dict(last_val),
                    'train': {'seconds_this_run': elapsed,
                              's_per_iteration': elapsed / n if n else None,
                              'torch_threads': torch.get_num_threads(),
                              'device': str(trainer.device), 'world_size': world.size}})

        try:
            trainer.train(total, on_step=on_step, on_validate=on_validate, on_checkpoint=save)
            if trainer.iteration == start_iter:
                save()
        except KeyboardInterrupt:
            interrupts.stopping = True  # from here on signals wait: the final save completes
            bar.close()
            undone = boundary.restore_if_mid_step()
            save()
            if not main:
                return EXIT_INTERRUPTED
            print(f'l2l-nmhw train: interrupted; checkpoint of iteration {trainer.iteration} '
                  f'saved in {out}' + (' (the iteration in progress was discarded)' if undone
                                       else '') + f'; resume with: {resume_command(args)}',
                  file=sys.stderr)
            return EXIT_INTERRUPTED
    return 0
