"""run_node: clean exits on SIGINT wherever it lands; a stuck node leaves its thread stacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy')

SCRIPT = r'''
import sys, time
from rclpy.node import Node
from l2l_nmhw_ros.ros import runtime

MODE = sys.argv[1]

class Node_(Node):
    def __init__(self, context=None):
        super().__init__('runtime_test', context=context)
        self.ticks = 0
        self.create_timer(0.05, self._tick)
        if MODE == 'init':
            print('READY', flush=True)  # before spinning: the signal may land anywhere
            time.sleep(0.2)

    def _tick(self):
        self.ticks += 1
        if self.ticks == 1 and MODE != 'init':
            print('READY', flush=True)  # spinning
        if MODE == 'stuck_callback' and self.ticks == 2:
            time.sleep(2.0)  # a callback that hangs

    def destroy_node(self):
        if MODE == 'slow_cleanup':
            time.sleep(1.5)  # a clean-up that hangs (longer than the dump delay)
        super().destroy_node()

runtime.CLEANUP_DUMP_AFTER_S = 0.3
sys.exit(runtime.run_node(Node_, []))
'''


def _run(mode: str, sig: int, delay: float = 0.0) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30.0
        while proc.stdout.readline().strip() != 'READY':
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30.0)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def test_a_hanging_cleanup_dumps_the_thread_stacks() -> None:
    rc, err = _run('slow_cleanup', signal.SIGINT)
    assert rc == 0, err
    assert 'Timeout (0:00:00.300000)!' in err, err
    assert 'in destroy_node' in err, err  # the stack names where it hung


def test_sigterm_to_a_stuck_node_dumps_the_thread_stacks_first() -> None:
    rc, err = _run('stuck_callback', signal.SIGTERM, delay=0.3)
    assert 'in _tick' in err, err  # the callback it was stuck in
    assert 'Traceback' not in err, err
    assert rc == 0, err


@pytest.mark.parametrize('delay', [0.0, 0.05, 0.1, 0.15])
def test_sigint_while_the_node_is_being_built_is_a_clean_exit(delay: float) -> None:
    rc, err = _run('init', signal.SIGINT, delay=delay)
    assert rc == 0, err
    assert 'Traceback' not in err, err
