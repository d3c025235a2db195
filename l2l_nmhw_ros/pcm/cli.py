"""``l2l-nmhw pcm ...``: PCM emulator tools (``characterize``)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from l2l_nmhw_ros import config as C


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pcm`` subcommands."""
    sub = parser.add_subparsers(dest='pcm_command', metavar='PCM_COMMAND')
    p = sub.add_parser('characterize', help='device characterisation: measured vs model '
                       'statistics of a large emulated array, read from 1 s to 1 day',
                       description='Program a sweep of target conductances on a large emulated '
                       'PCM array, read it from 1 s to 1 day, print measured vs model '
                       'statistics and write PNG plots.')
    p.add_argument('--config', nargs='*', default=[], metavar='YAML',
                   help='parameter files, in order (default: config/l2l_nmhw.yaml)')
    p.add_argument('--preset', choices=('physical', 'paper_code', 'ideal', 'config'),
                   default='physical', help='time/noise preset to characterise (default: '
                   'physical, the one with a clock; config = as in the parameter files)')
    p.add_argument('--rows-per-level', type=int, default=32,
                   help='crossbar rows per target level, 256 weights each (default 32)')
    p.add_argument('--times', type=float, nargs='+', default=None, metavar='S',
                   help='read times after programming in s (default 1 s ... 1 day)')
    p.add_argument('--seed', type=int, default=None, help='seed (default: config seed)')
    p.add_argument('--json', action='store_true', help='print JSON instead of tables')
    p.add_argument('--plots', default='pcm_characterization', metavar='DIR',
                   help="folder for the PNG plots (default pcm_characterization; '' = none)")


def run(args: argparse.Namespace) -> int:
    """Run the selected ``pcm`` subcommand; returns the exit code."""
    if getattr(args, 'pcm_command', None) != 'characterize':
        print('usage: l2l-nmhw pcm characterize [--json] [--plots DIR] ...')
        return 2
    from l2l_nmhw_ros.pcm.characterize import DEFAULT_TIMES, characterize, format_table
    from l2l_nmhw_ros.pcm.characterize import write_plots

    cfg = C.load(*args.config)
    pcm = cfg.pcm if args.preset == 'config' else dataclasses.replace(cfg.pcm,
                                                                       preset=args.preset)
    times = tuple(sorted(args.times)) if args.times else DEFAULT_TIMES
    seed = cfg.seed if args.seed is None else args.seed
    result = characterize(pcm, times=times, rows_per_level=args.rows_per_level, seed=seed)
    plots = [str(p) for p in write_plots(result, pcm, args.plots)] if args.plots else []
    result['plots'] = plots
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result))
        if plots:
            print('plots: ' + ', '.join(plots))
    return 0
