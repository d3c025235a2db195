"""Helpers of the ros-layer tests (the one place): spin an executor until a predicate holds
(never sleep-poll), a fresh rclpy context, a random checkpoint. Fixtures: ``conftest.py``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def spin_until(executor: Any, predicate: Callable[[], Any], timeout: float,
               what: str = 'condition', *, abort: Callable[[], bool] | None = None) -> None:
    """Spin ``executor`` until ``predicate()`` is true (:func:`runtime.spin_until`).

    Raises:
        AssertionError: naming ``what``, when ``timeout`` s of wall time pass first or
            ``abort()`` turns true (e.g. a child process exited).
    """
    from l2l_nmhw_ros.ros.runtime import spin_until as spin

    if not spin(executor, predicate, timeout, abort=abort):
        raise AssertionError(f'{what}: not reached within {timeout} s (or aborted)')


def new_context() -> Any:
    """A fresh, initialised rclpy context (shut it down with ``try_shutdown()``)."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    return ctx


def random_checkpoint(folder: Path, network: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> Path:
    """Save a random-initialised checkpoint (trainee + LSG) in ``folder``/random and return it.

    ``network`` overrides config values (e.g. ``{'lsg': {'n_rec': 40}}``) recorded in its
    metadata. The network is lively (input weights x2) and its learning signals change weights
    (LSG readout x3): these checkpoints test plumbing, not learning.
    """
    import torch

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.l2l import checkpoint
    from l2l_nmhw_ros.l2l.inner import n_learning_signals
    from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in
    from l2l_nmhw_ros.snn.trainee import init_trainee_weights

    cfg = C.load(overrides={k: dict(v) for k, v in (network or {}).items()})
    g = torch.Generator().manual_seed(0)
    tr = init_trainee_weights(cfg.trainee, g)
    tr['w_in'] = tr['w_in'] * 2.0  # a lively random network
    ls = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), n_learning_signals(cfg),
                          g)
    ls['w_out'] = ls['w_out'] * 3.0  # learning signals that change a few thousand weights
    w = {f'trainee.{k}': v.numpy() for k, v in tr.items()}
    w |= {f'lsg.{k}': v.numpy() for k, v in ls.items()}
    return checkpoint.save(folder / 'random', w,
                           {'config': C.to_dict(cfg), 'note': 'random init (test)'})


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as fh:
            return fh.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def write_executable(folder: Path, name: str, text: str) -> Path:
    """Write an executable script ``folder/name`` (the folder is created) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(text, encoding='utf-8')
    exe.chmod(0o755)
    return folder
