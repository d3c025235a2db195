"""The one ``main()`` helper of every node.

Works on the oldest supported distro (no ``with rclpy.init()``): own context, one
SingleThreadedExecutor spin, clean handling of Ctrl-C / SIGTERM / external shutdown, node destroyed
and the context shut down exactly once. A node that fails at start-up (invalid configuration) logs
the core's message and exits non-zero.

Shutdown is watched (a node stuck at shutdown was seen once in ~40 demo runs; cause not found):
faulthandler writes every thread's Python stack to stderr (the node's log) when SIGTERM arrives
(the launcher's escalation, 5 s after SIGINT; rclpy's handler runs next) and when the process is
still alive :data:`CLEANUP_DUMP_AFTER_S` s after the clean-up began.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from l2l_nmhw_ros.errors import L2LError

#: seconds after the start of the clean-up before the thread stacks are dumped (below the
#: launcher's SIGTERM timeout)
CLEANUP_DUMP_AFTER_S = 4.0


def run_node(factory: Callable[..., Any], args: Sequence[str] | None = None) -> int:
    """Create the node with ``factory(context=ctx)``, spin it until shutdown, clean up.

    Args:
        factory: node class (or callable) accepting a ``context`` keyword.
        args: command-line arguments for ROS (``--ros-args ...``); default ``sys.argv``.

    Returns:
        Process exit code: 0 on a clean shutdown, 1 when the node could not be created.
    """
    ctx = rclpy.Context()
    # rclpy installs its (C-level) SIGINT/SIGTERM handlers only for the default context unless
    # asked: with them, a signal shuts the context down and wakes the executor's wait at once. A
    # Python-level handler would only run when the wait returns, which never happens when every
    # timer runs on simulated time and /clock has stopped (the arm simulation exits first).
    rclpy.init(args=list(args) if args is not None else sys.argv, context=ctx,
               signal_handler_options=SignalHandlerOptions.ALL)
    # the launcher escalates a node that does not stop on SIGINT to SIGTERM: dump every thread's
    # stack to stderr (the node's log) first, then run rclpy's handler
    faulthandler.register(signal.SIGTERM, file=sys.stderr, all_threads=True, chain=True)
    node = None
    try:
        try:
            node = factory(context=ctx)
        except (L2LError, ValueError, FileNotFoundError) as exc:
            print(f'[FATAL] could not start node: {exc}', file=sys.stderr)
            return 1
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        executor.spin()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        # Ctrl-C / SIGINT, wherever it lands (building the node, the executor, spinning): rclpy's
        # handler also passes it on to Python's, so it may surface as KeyboardInterrupt
        return 0
    except Exception:
        # A signal shut the context down while a callback was publishing (e.g. /clock at 4x
        # real time): rclpy raises RCLError 'publisher's context is invalid'. That is the
        # shutdown we asked for, not a crash. Anything raised on a live context propagates.
        if ctx.ok():
            raise
        return 0
    finally:
        # not cancelled: the process is about to exit, and a hang may also come after this
        # function (interpreter finalisation)
        faulthandler.dump_traceback_later(CLEANUP_DUMP_AFTER_S, exit=False, file=sys.stderr)
        if node is not None:
            node.destroy_node()
        ctx.try_shutdown()


def spin_until(executor: Any, pred: Callable[[], Any], timeout: float, *,
               slice_s: float = 0.05, abort: Callable[[], bool] | None = None) -> bool:
    """Spin ``executor`` in ``slice_s`` s slices until ``pred()`` is true; the one wait loop of
    the tools, tests and benchmarks over a graph.

    Returns:
        True when ``pred()`` held, False when ``timeout`` s of wall time passed first or
        ``abort()`` turned true (e.g. a child process exited).
    """
    deadline = time.monotonic() + timeout
    while not pred():
        if (abort is not None and abort()) or time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=slice_s)
    return True
