"""Lint as a test (the ament habit): ruff with the repository's configuration finds nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def test_ruff_is_clean(repo_root):
    if shutil.which('ruff') is None and subprocess.run(
            [sys.executable, '-m', 'ruff', '--version'], capture_output=True).returncode != 0:
        pytest.skip('ruff is not installed')
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'concise',
                          'l2l_nmhw_ros', 'test', 'bench', 'tools', 'setup.py'],
                         cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
