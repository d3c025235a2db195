"""``l2l-nmhw import-checkpoint``: convert the authors' published pickles into our format.

Reads ``robot_pretrained_weights.pickle`` or ``omniglot_pretrained_weights.pickle`` (the official
repository's ``pretrained-weights.pickle`` files) with the restricted unpickler of
:mod:`l2l_nmhw_ros.reference.published` (no TensorFlow, nothing executed), transposes to the
project's (n_post, n_pre) convention and writes a checkpoint folder (``weights.safetensors`` +
``metadata.json`` with the source file's SHA-256, repository and licence).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('path', help='the published .pickle file (robot or Omniglot)')
    parser.add_argument('-o', '--out', default=None,
                        help='checkpoint folder to write (default: runs/imported/<file stem>)')
    parser.add_argument('--config', nargs='*', default=[], metavar='YAML',
                        help='parameter files applied after the default file and the paper preset '
                             '(sizes to check, config recorded in the metadata)')
    parser.add_argument('--json', action='store_true', help='print the metadata as JSON')


def run(args: argparse.Namespace) -> int:
    """Import the checkpoint; returns 0, or 1 when the file is refused."""
    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.errors import CheckpointError, ShapeError
    from l2l_nmhw_ros.reference import published

    from l2l_nmhw_ros.l2l.train_cli import preset_path

    # the robot weights were trained by the paper's code: its preset (target code `paper`)
    cfg = C.load(C.default_config_path(), preset_path('paper'), *args.config)
    src = Path(args.path)
    out = Path(args.out) if args.out else Path('runs') / 'imported' / src.stem
    try:
        folder, meta = published.import_checkpoint(src, out, cfg)
    except (CheckpointError, ShapeError) as exc:
        print(f'import-checkpoint: refused: {exc}')
        return 1
    if args.json:
        print(json.dumps({'folder': str(folder), **meta}, indent=2, sort_keys=True))
        return 0
    source = meta['source']
    print(f"{meta['model']} checkpoint written to {folder}")
    print(f"  source  {source['file']}  sha256 {source['sha256']}")
    print(f"          {source['repository']} ({source['license']}), "
          f"{'known published file' if source['known_file'] else 'UNKNOWN file (hash differs)'}")
    print(f"  {'key':18s} {'shape':>16s} {'mean':>9s} {'SD':>8s} {'min':>8s} {'max':>8s} "
          f"{'|w|>1':>7s}")
    for key, st in meta['statistics'].items():
        shape = 'x'.join(str(n) for n in meta['shapes'][key])
        print(f"  {key:18s} {shape:>16s} {st['mean']:9.4f} {st['std']:8.4f} {st['min']:8.3f} "
              f"{st['max']:8.3f} {100 * st['frac_abs_gt_1']:6.2f}%")
    return 0
