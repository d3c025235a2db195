"""The ROS-free core (pcm, snn, l2l, arm, config) imports without rclpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = ('pcm', 'snn', 'l2l', 'arm')
PKG = Path(__file__).resolve().parents[2] / 'l2l_nmhw_ros'


def _core_files() -> list[Path]:
    files = [PKG / 'config.py', PKG / 'errors.py']
    for sub in CORE:
        files.extend(sorted((PKG / sub).rglob('*.py')))
    return files


@pytest.mark.parametrize('path', _core_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_never_names_rclpy(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split('.')[0])
    ros_only = {'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'launch', 'launch_ros'}
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
