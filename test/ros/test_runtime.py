"""run_node: a node whose clean-up hangs leaves its thread stacks in its log."""

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

class SlowToDie(Node):
    def __init__(self, context=None):
        super().__init__('slow_to_die', context=context)
        self.create_timer(0.05, lambda: None)
        print('READY', flush=True)

    def destroy_node(self):
        time.sleep(1.5)  # a clean-up that hangs (longer than the dump delay)
        super().destroy_node()

runtime.CLEANUP_DUMP_AFTER_S = 0.3
sys.exit(runtime.run_node(SlowToDie, []))
'''


def test_a_hanging_cleanup_dumps_the_thread_stacks() -> None:
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30.0
        while proc.stdout.readline().strip() != 'READY':
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30.0)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert 'Timeout (0:00:00.300000)!' in err, err
    assert 'in destroy_node' in err, err  # the stack names where it hung
