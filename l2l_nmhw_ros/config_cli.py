"""``l2l-nmhw config``: print the effective configuration, with units, or as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json

from l2l_nmhw_ros import config as C


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--config', nargs='*', default=[], metavar='YAML',
                        help='parameter files, in order (default: config/l2l_nmhw.yaml)')
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def _rows(cfg, prefix=''):
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            yield from _rows(v, f'{prefix}{f.name}.')
        else:
            yield f'{prefix}{f.name}', v, f.metadata.get('unit', '')


def run(args: argparse.Namespace) -> int:
    """Load and print the configuration; returns 0."""
    cfg = C.load(*args.config)
    if args.json:
        print(json.dumps({'config': C.to_dict(cfg), 'config_hash': C.config_hash(cfg)}, indent=2))
        return 0
    for key, value, unit in _rows(cfg):
        print(f'{key:32s} {value!s:40s} {unit}')
    print(f'config_hash {C.config_hash(cfg)}')
    return 0
