"""Architecture: only the ROS adapters (``l2l_nmhw_ros/ros/``) touch ROS.

Every other module of the package (the core pcm, snn, l2l, arm, and the root modules config,
cli, errors, fileio, share, ...) must not import rclpy, a message package or the ros subpackage,
not even inside a function, and the core imports with rclpy blocked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = ('pcm', 'snn', 'l2l', 'arm', 'reach', 'reference', 'viewer', 'fewshot')
PKG = Path(__file__).resolve().parents[2] / 'l2l_nmhw_ros'


def _core_files() -> list[Path]:
    """Every module of the package outside ros/ (root modules included)."""
    return sorted(p for p in PKG.rglob('*.py') if 'ros' not in p.relative_to(PKG).parts[:-1])


def test_every_module_is_covered() -> None:
    files = {str(p.relative_to(PKG)) for p in _core_files()}
    assert {'cli.py', 'config.py', 'errors.py', 'fileio.py', 'share.py',
            'l2l/inner.py', 'pcm/crossbar.py'} <= files
    assert not any(f.startswith('ros/') for f in files)


@pytest.mark.parametrize('path', _core_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_never_names_rclpy(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split('.')[0])
            if node.module.startswith('l2l_nmhw_ros.ros'):
                imported.add('l2l_nmhw_ros.ros')
    ros_only = {'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'launch', 'launch_ros',
                'diagnostic_msgs', 'std_srvs', 'visualization_msgs', 'rcl_interfaces',
                'builtin_interfaces', 'l2l_nmhw_ros.ros'}
    assert not imported & ros_only, f'{path.name} imports {sorted(imported & ros_only)}'


def test_core_imports_with_rclpy_blocked() -> None:
    code = (
        'import sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        "        if name.split('.')[0] in ('rclpy', 'std_msgs', 'sensor_msgs'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        'sys.meta_path.insert(0, Block())\n'
        'import importlib, pkgutil\n'
        'import l2l_nmhw_ros.config, l2l_nmhw_ros.errors\n'
        f'for sub in {CORE!r}:\n'
        "    pkg = importlib.import_module('l2l_nmhw_ros.' + sub)\n"
        '    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):\n'
        '        importlib.import_module(m.name)\n'
        "assert 'rclpy' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('ok')


def _imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nodes_do_not_depend_on_the_tools() -> None:
    """The graph's nodes and their adapters (``ros/*.py``) never import the tools over the graph
    (``ros/tools/``: launcher, bag writer, demo, reach client); the tools may use the nodes."""
    adapters = sorted((PKG / 'ros').glob('*.py'))
    assert {'pcm_accelerator_node.py', 'snn_controller_node.py'} <= {p.name for p in adapters}
    tools = {p.stem for p in (PKG / 'ros' / 'tools').glob('*.py')} - {'__init__'}
    assert {'launcher', 'bag', 'demo', 'reach_cli'} <= tools
    for path in adapters:
        bad = {m for m in _imports_of(path) if m.startswith('l2l_nmhw_ros.ros.tools')}
        assert not bad, f'{path.name} imports {sorted(bad)}'
