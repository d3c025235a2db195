"""Test-session set-up shared by every layer.

- Every session gets its own ROS_DOMAIN_ID, loopback-only DDS discovery and a temporary
  ROS_LOG_DIR, set before anything can import rclpy (so no DDS traffic leaves the machine).
- Layers whose dependency is missing are skipped with a printed reason, never silently passed:
  ``ros``/``e2e`` need rclpy, ``reference`` needs brian2 or ../shared/data (per test).
- ``slow`` tests run only with ``--run-slow`` (``make test-all``).
- Files ``test_faults_*.py`` (any layer) form the fault-injection suite, marker ``faults``:
  ``pytest -m faults --collect-only -q`` lists every bad input and fault it injects.
"""

from __future__ import annotations

import importlib.util
import os
import random
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / 'shared' / 'data'

# ---- DDS isolation: must happen at import time, before any test module imports rclpy ----------
# Every DDS socket on 127.0.0.1: the package's Fast DDS profile with the discovery range it needs
# (SYSTEM_DEFAULT; LOCALHOST with a profile of the user's own or L2L_NMHW_DDS=network), exactly as
# the launcher gives its children (l2l_nmhw_ros/ros/tools/launcher.py: dds_environment).
os.environ.pop('ROS_LOCALHOST_ONLY', None)
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
from l2l_nmhw_ros.ros.tools.launcher import PROFILE_VARIABLES, dds_environment  # noqa: E402

_dds = dds_environment(os.environ, profile=REPO / 'config' / 'dds' / 'fastdds_loopback.xml',
                       spawn=True)
for _var in PROFILE_VARIABLES:  # L2L_NMHW_DDS=network drops the package's profile
    if _var not in _dds:
        os.environ.pop(_var, None)
os.environ.update(_dds)
if 'L2L_TEST_DOMAIN_FIXED' not in os.environ:
    # a private domain per session (101..200; the Makefile's own choice is replaced too, so two
    # concurrent sessions rarely share one)
    os.environ['ROS_DOMAIN_ID'] = str(101 + random.SystemRandom().randrange(100))
    os.environ['L2L_TEST_DOMAIN_FIXED'] = '1'
os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='l2l_nmhw_test_roslog_')
os.environ.setdefault('AMENT_PREFIX_PATH', os.environ.get('VIRTUAL_ENV', ''))


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption('--run-slow', action='store_true', default=False,
                     help='also run tests marked slow')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    have_rclpy = _have('rclpy')
    have_brian2 = _have('brian2')
    have_cuda = _cuda_available()
    run_slow = config.getoption('--run-slow')
    for item in items:
        path = Path(str(item.fspath))
        layer = path.parent.name
        if layer in ('unit', 'reference', 'ros', 'e2e') and layer not in item.keywords:
            item.add_marker(getattr(pytest.mark, layer))
        if path.name.startswith('test_faults_') and 'faults' not in item.keywords:
            item.add_marker(pytest.mark.faults)
        if ('ros' in item.keywords or 'e2e' in item.keywords) and not have_rclpy:
            item.add_marker(pytest.mark.skip(reason='layer ros/e2e: rclpy is not installed'))
        if 'brian2' in item.nodeid and not have_brian2:
            item.add_marker(pytest.mark.skip(reason='brian2 is not installed'))
        if 'gpu' in item.keywords and not have_cuda:
            item.add_marker(pytest.mark.skip(reason='gpu: no CUDA device on this machine'))
        if 'slow' in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason='slow: run with --run-slow (make test-all)'))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"DDS: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
        f"ROS_LOG_DIR={os.environ['ROS_LOG_DIR']}",
        f"layers: rclpy={'yes' if _have('rclpy') else 'MISSING (ros/e2e skipped)'} "
        f"brian2={'yes' if _have('brian2') else 'MISSING'} "
        f"shared data={'yes' if SHARED_DATA.is_dir() else 'MISSING (data tests skipped)'}",
    ]


@pytest.fixture
def shared_data() -> Path:
    """Return ../shared/data, or skip the test with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'reference data not found at {SHARED_DATA} (a fresh clone has no ../shared)')
    return SHARED_DATA


@pytest.fixture
def repo_root() -> Path:
    """Return the repository root."""
    return REPO
