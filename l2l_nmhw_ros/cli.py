"""The ``l2l-nmhw`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``
and is registered in :data:`COMMANDS` (module imported only when that subcommand runs, so
``l2l-nmhw pcm ...`` never loads rclpy).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from l2l_nmhw_ros.errors import L2LError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('l2l_nmhw_ros.ros.tools.demo', 'run the main job on the embedded defaults'),
    'config': ('l2l_nmhw_ros.config_cli', 'print the effective configuration (after overrides)'),
    'launch': ('l2l_nmhw_ros.ros.tools.launcher',
               'run a ROS 2 YAML launch file without a ROS 2 distro'),
    'reach': ('l2l_nmhw_ros.ros.tools.reach_cli', 'send reach targets to a running graph'),
    'pcm': ('l2l_nmhw_ros.pcm.cli', 'PCM emulator tools: characterize the device model'),
    'train': ('l2l_nmhw_ros.l2l.train_cli', 'meta-train the trainee and the LSG (L2L outer loop)'),
    'eval': ('l2l_nmhw_ros.l2l.evaluate', 'evaluate a checkpoint on unseen tasks (software, PCM)'),
    'import-checkpoint': ('l2l_nmhw_ros.reference.published_cli', 'import the published pickles'),
    'fidelity': ('l2l_nmhw_ros.reference.fidelity_cli',
                 'published checkpoint: SW vs PCM, brownian'),
    'fewshot': ('l2l_nmhw_ros.fewshot.cli', 'few-shot Omniglot CNN on PCM: MAML train, eval'),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog='l2l-nmhw',
        description='Learning-to-learn on emulated PCM in-memory computing for robot arms.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``l2l-nmhw``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    if not getattr(args, '_module', None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (L2LError, ValueError, FileNotFoundError, TimeoutError) as exc:
        # bad input (config key, checkpoint, shape): one clear line, no traceback; -v shows it
        if args.verbose:
            raise
        print(f'l2l-nmhw {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
