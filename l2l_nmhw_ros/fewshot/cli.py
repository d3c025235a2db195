"""``l2l-nmhw fewshot train|eval``: meta-train the few-shot CNN, evaluate float / 1/16 / PCM.

Examples::

    l2l-nmhw fewshot train --data ../shared/data/omniglot/images_background_small1.zip \\
        --out checkpoints/fewshot_small --iterations 3000 --batch 16
    l2l-nmhw fewshot eval --checkpoint checkpoints/fewshot_small --ways 5 --shots 5 \\
        --episodes 1000 --data ../shared/data/omniglot/images_background_small2.zip \\
        --exclude-alphabets Greek Latin --seed 0
    l2l-nmhw fewshot eval \\
        --checkpoint ../shared/data/rlimc_checkpoints/omniglot_pretrained_weights.pickle \\
        --ways 5 --shots 1 --episodes 1000 --data ../shared/data/omniglot/one_shot_all_runs.zip

``--data`` given a ``one_shot_all_runs`` zip/folder draws ``ways``-way 1-shot episodes from the
runs' characters (support = a run's training drawings, query = its test drawings).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from l2l_nmhw_ros import config as C

__all__ = ['add_arguments', 'run']

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fewshot`` subcommands."""
    from l2l_nmhw_ros.fewshot.model import BN_PROTOCOLS
    from l2l_nmhw_ros.fewshot.pcm import VARIANTS

    sub = parser.add_subparsers(dest='fewshot_command', metavar='FEWSHOT_COMMAND')
    t = sub.add_parser('train', help='MAML meta-training of the CNN (resumable)',
                       description='Meta-train the Omniglot CNN with MAML (readout-only inner '
                       'loop) and write a checkpoint folder; rerun the same command to resume.')
    t.add_argument('--data', nargs='+', required=True, metavar='PATH',
                   help='Omniglot zip(s) or folder(s) of <alphabet>/<character>/*.png')
    t.add_argument('--alphabets', nargs='*', default=None, help='use only these alphabets')
    t.add_argument('--exclude-alphabets', nargs='*', default=None, help='drop these alphabets')
    t.add_argument('--out', required=True, help='checkpoint folder (resumed when it exists)')
    t.add_argument('--iterations', type=int, default=1000, help='outer iterations (default 1000;'
                   ' paper code 30000)')
    t.add_argument('--batch', type=int, default=8, help='tasks per iteration (default 8)')
    t.add_argument('--ways', type=int, default=5)
    t.add_argument('--shots', type=int, default=5)
    t.add_argument('--queries', type=int, default=5, help='query drawings per class')
    t.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate (default 1e-3)')
    t.add_argument('--channels', type=int, default=56, help='conv channels (default 56)')
    t.add_argument('--grid', action='store_true',
                   help='inner updates on the 1/16 grid during meta-training')
    t.add_argument('--checkpoint-every', type=int, default=100)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--no-resume', action='store_true', help='start afresh even if --out exists')
    t.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')

    e = sub.add_parser('eval', help='accuracy of float / 1/16 grid / PCM on few-shot episodes',
                       description='Evaluate a checkpoint (folder or the published .pickle) on '
                       'seeded few-shot episodes: accuracy with a 95 % Student-t interval over '
                       'episodes for each variant, devices programmed per task.')
    e.add_argument('--checkpoint', required=True,
                   help='checkpoint folder, or the published omniglot .pickle')
    e.add_argument('--data', nargs='+', required=True, metavar='PATH',
                   help='Omniglot zip(s)/folder(s), or one_shot_all_runs.zip for 1-shot runs')
    e.add_argument('--alphabets', nargs='*', default=None)
    e.add_argument('--exclude-alphabets', nargs='*', default=None)
    e.add_argument('--ways', type=int, default=5)
    e.add_argument('--shots', type=int, default=None,
                   help='support drawings per class (default 5; the one-shot runs: 1)')
    e.add_argument('--queries', type=int, default=5, help='query drawings per class')
    e.add_argument('--episodes', type=int, default=100)
    e.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    e.add_argument('--bn', choices=tuple(BN_PROTOCOLS), default='batch',
                   help='BatchNorm protocol (default batch = the paper code)')
    e.add_argument('--config', nargs='*', default=[], metavar='YAML',
                   help='parameter files for the pcm section (default: config/l2l_nmhw.yaml)')
    e.add_argument('--seed', type=int, default=0, help='episodes and device-noise seed')
    e.add_argument('--json', default=None, metavar='FILE', help='also write the results here')
    e.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    e.add_argument('--no-progress', action='store_true')


def _is_one_shot(paths: list[str]) -> bool:
    p = Path(paths[0])
    return len(paths) == 1 and ('one_shot' in p.name or (p.is_dir() and any(p.glob(
        'run*/class_labels.txt'))))


def run(args: argparse.Namespace) -> int:
    """Run the selected ``fewshot`` subcommand; returns the exit code."""
    cmd = getattr(args, 'fewshot_command', None)
    if cmd not in ('train', 'eval'):
        print('usage: l2l-nmhw fewshot {train,eval} ...')
        return 2
    torch.set_num_threads(max(1, args.threads))
    return _train(args) if cmd == 'train' else _eval(args)


def _train(args: argparse.Namespace) -> int:
    from l2l_nmhw_ros.fewshot.data import load_characters
    from l2l_nmhw_ros.fewshot.train import TrainSettings, meta_train

    chars = load_characters(args.data, alphabets=args.alphabets, exclude=args.exclude_alphabets)
    s = TrainSettings(iterations=args.iterations, batch=args.batch, ways=args.ways,
                      shots=args.shots, queries=args.queries, lr=args.lr, channels=args.channels,
                      grid=args.grid, seed=args.seed, checkpoint_every=args.checkpoint_every)
    extra = {'data': {'sources': [Path(d).name for d in args.data],
                      'alphabets': list(chars.alphabets), 'characters': len(chars),
                      'augmentation': 'rotation by k*90 deg per class (k uniform 0..3)'}}
    print(f'meta-training on {len(chars)} characters of {", ".join(chars.alphabets)}')
    t0 = time.monotonic()
    out = meta_train(chars, args.out, s, pcm=C.load().pcm, resume=not args.no_resume,
                     extra_metadata=extra)
    print(f'checkpoint: {out} ({time.monotonic() - t0:.0f} s this run)')
    return 0


def _eval(args: argparse.Namespace) -> int:
    from l2l_nmhw_ros.fewshot import data as D
    from l2l_nmhw_ros.fewshot.pcm import accuracy_interval, evaluate
    from l2l_nmhw_ros.fewshot.train import load_weights

    weights, meta = load_weights(args.checkpoint)
    pcm = C.load(*args.config).pcm
    one_shot = _is_one_shot(args.data)
    if one_shot and args.shots not in (None, 1):
        raise ValueError(f'--shots {args.shots}: the one-shot runs have one drawing per class')
    if one_shot:
        runs = D.load_one_shot_runs(args.data[0])
        desc = f'one-shot runs ({len(runs)} runs of Lake et al., evaluation-set alphabets)'
        shots = 1

        def episode(i: int) -> D.Episode:
            return D.sample_one_shot_episode(runs, args.ways, np.random.default_rng([args.seed,
                                                                                     i]))
    else:
        chars = D.load_characters(args.data, alphabets=args.alphabets,
                                  exclude=args.exclude_alphabets)
        desc = f'{len(chars)} characters of {", ".join(chars.alphabets)}'
        shots = 5 if args.shots is None else args.shots

        def episode(i: int) -> D.Episode:
            return D.sample_episode(chars, args.ways, shots, args.queries,
                                    np.random.default_rng([args.seed, i]))
    seen = (meta.get('data') or {}).get('alphabets')
    published = meta.get('data') is None and 'source' in meta
    t0 = time.monotonic()
    res = evaluate(weights, episode, args.episodes, pcm, variants=args.variants, seed=args.seed,
                   bn_protocol=args.bn, progress=not args.no_progress)
    wall = time.monotonic() - t0
    print(f'checkpoint: {args.checkpoint}')
    print(f'episodes: {args.episodes} x {args.ways}-way {shots}-shot from {desc}; seed '
          f'{args.seed}; BatchNorm protocol {args.bn}; pcm preset {pcm.preset}')
    if seen is not None:
        overlap = sorted(set(seen) & set([] if one_shot else chars.alphabets))
        where = ' (the one-shot runs use images_evaluation alphabets)' if one_shot else ''
        print(f'checkpoint trained on alphabets: {", ".join(seen)}; overlap with these '
              f'episodes: {", ".join(overlap) if overlap else "none"}{where}')
    if published:
        print('published weights: meta-trained by the authors on tensorflow-datasets omniglot '
              "'train' = images_background (30 alphabets, all of images_background_small1/2 "
              'included); the one-shot runs are drawn from images_evaluation (unseen)')
    print('interval: 95 % Student-t over per-episode accuracies')
    print(f'{"variant":<8} {"accuracy [%]":>12} {"95 % interval":>17} {"devices/task":>13} '
          f'{"query loss":>10}')
    out = {}
    for v, r in res.items():
        s = r.summary()
        out[v] = s
        dev = f'{s["devices_mean"]:.0f}' if v == 'pcm' else f'({s["devices_mean"]:.0f})'
        print(f'{v:<8} {s["accuracy_pct"]:>12.2f} [{s["ci_low_pct"]:6.2f}, '
              f'{s["ci_high_pct"]:6.2f}] {dev:>13} {s["query_loss"]:>10.3f}')
    print('devices/task: PCM devices re-programmed by the 4 readout updates (N = 2 per changed '
          'weight); in brackets for float/grid: the same count for their updates')
    for a, b in (('pcm', 'float'), ('grid', 'float'), ('pcm', 'grid')):
        if a in res and b in res:  # paired over the same episodes
            m, lo, hi = accuracy_interval(res[a].accuracy - res[b].accuracy,
                                           bounds=(-1.0, 1.0))
            out[f'{a}_minus_{b}'] = {'points': 100 * m, 'ci_low': 100 * lo, 'ci_high': 100 * hi}
            print(f'{a.upper() if a == "pcm" else a} - {b}: {100 * m:+.2f} points '
                  f'[{100 * lo:+.2f}, {100 * hi:+.2f}] (paired over episodes, 95 % t)')
    print(f'wall time {wall:.0f} s')
    if args.json:
        Path(args.json).write_text(json.dumps({
            'checkpoint': str(args.checkpoint), 'episodes': args.episodes, 'ways': args.ways,
            'shots': shots, 'queries': 1 if one_shot else args.queries, 'seed': args.seed,
            'data': desc, 'bn_protocol': args.bn, 'pcm_preset': pcm.preset,
            'interval': '95% Student-t over episodes', 'results': out}, indent=1) + '\n')
    return 0
