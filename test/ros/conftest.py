"""Shared rclpy fixtures of the ros layer (the session set-up, DDS isolation included, is in
test/conftest.py; helpers in _graph_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._graph_helpers import new_context, random_checkpoint as _random_checkpoint


@pytest.fixture
def ros_context() -> Iterator[Any]:
    """An initialised rclpy context, shut down after the test."""
    pytest.importorskip('rclpy')
    ctx = new_context()
    yield ctx
    ctx.try_shutdown()


@pytest.fixture
def ros_node(ros_context: Any) -> Iterator[Any]:
    """A plain node ``probe`` in :func:`ros_context`, destroyed after the test."""
    import rclpy

    node = rclpy.create_node('probe', context=ros_context)
    yield node
    node.destroy_node()


@pytest.fixture(scope='session')
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised checkpoint of the default network (plumbing tests, not learning)."""
    return _random_checkpoint(tmp_path_factory.mktemp('ckpt'))
