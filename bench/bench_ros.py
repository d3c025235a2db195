"""ROS transport between two processes over loopback DDS (FastDDS, pip-only Kilted wheels).

- Round trip: the parent publishes a Float64MultiArray (4 joints, like a command) on ``ping``, an
  echo node in a child process republishes it on ``pong``; p50/p99 of the round-trip time.
- Command stream: the parent publishes commands at a fixed rate for a fixed time; the child counts
  them. The sustained rate is the highest tested rate at which none was lost (reliable QoS,
  depth 100).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from l2l_nmhw_ros.ros.runtime import spin_until
from bench.common import row, skipped, stop_child

ECHO = r'''
import sys, rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, Int64
ctx = rclpy.Context(); rclpy.init(context=ctx)
n = rclpy.create_node('bench_echo', context=ctx)
q = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
pong = n.create_publisher(Float64MultiArray, 'pong', q)
count = n.create_publisher(Int64, 'count', q)
state = {'n': 0}
def on_ping(m):
    pong.publish(m)
def on_stream(m):
    state['n'] += 1
def on_report(m):
    count.publish(Int64(data=state['n'])); state['n'] = 0
n.create_subscription(Float64MultiArray, 'ping', on_ping, q)
n.create_subscription(Float64MultiArray, 'stream', on_stream, q)
n.create_subscription(Int64, 'report', on_report, q)
ex = SingleThreadedExecutor(context=ctx); ex.add_node(n)
print('ready', flush=True)
try:
    ex.spin()
except BaseException:
    pass
'''


def run(quick: bool = False) -> list[dict]:
    """Return round-trip and stream-rate rows."""
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64MultiArray, Int64
    except ImportError as exc:
        return [skipped('ros transport', 'round trip', f'rclpy unavailable: {exc}')]
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_LOG_DIR=tempfile.mkdtemp(prefix='bench_roslog_'))
    env.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOG_DIR',
                                           'ROS_DOMAIN_ID')})
    child = subprocess.Popen([sys.executable, '-c', ECHO], env=env, stdout=subprocess.PIPE,
                             text=True)
    rows: list[dict] = []
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        child.stdout.readline()
        node = rclpy.create_node('bench_driver', context=ctx)
        q = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        ping = node.create_publisher(Float64MultiArray, 'ping', q)
        stream = node.create_publisher(Float64MultiArray, 'stream', q)
        report = node.create_publisher(Int64, 'report', q)
        got: list[float] = []
        counts: list[int] = []
        node.create_subscription(Float64MultiArray, 'pong',
                                 lambda m: got.append(time.perf_counter()), q)
        node.create_subscription(Int64, 'count', lambda m: counts.append(m.data), q)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        msg = Float64MultiArray(data=[0.1, 0.2, 0.3, 0.4])
        # discovery: ping until the first echo
        if not spin_until(ex, lambda: (ping.publish(msg) or bool(got)), 20.0):
            return [skipped('ros transport', 'round trip', 'no echo within 20 s')]
        spin_until(ex, lambda: False, 0.5)
        rtts = []
        n_rtt = 200 if quick else 1000
        for _ in range(n_rtt):
            got.clear()
            t0 = time.perf_counter()
            ping.publish(msg)
            if spin_until(ex, lambda: bool(got), 1.0):
                rtts.append(got[0] - t0)
        rtts_a = np.array(rtts)
        rows.append(row('ros transport', 'round trip p50 (2 processes, loopback)',
                        float(np.median(rtts_a)),
                        float(np.subtract(*np.percentile(rtts_a, [75, 25])) / 2),
                        len(rtts), f'p99 {np.percentile(rtts_a, 99) * 1e3:.3f} ms; '
                        f'lost {n_rtt - len(rtts)}', p99_s=float(np.percentile(rtts_a, 99))))
        duration = 1.0 if quick else 3.0
        best = 0.0
        for rate in (100.0, 500.0, 1000.0, 2000.0, 5000.0):
            n_msgs = int(rate * duration)
            period = 1.0 / rate
            t_start = time.perf_counter()
            for i in range(n_msgs):
                target = t_start + i * period
                while time.perf_counter() < target:
                    ex.spin_once(timeout_sec=0)
                stream.publish(msg)
            spin_until(ex, lambda: False, 0.5)
            counts.clear()
            report.publish(Int64(data=1))
            spin_until(ex, lambda: bool(counts), 5.0)
            received = counts[0] if counts else 0
            achieved = n_msgs / (time.perf_counter() - t_start - 0.5)
            rows.append(row('ros transport', f'command stream at {rate:.0f} Hz', period,
                            0.0, n_msgs, f'received {received}/{n_msgs}; '
                            f'achieved send rate {achieved:.0f} Hz'))
            if received == n_msgs:
                best = rate
            else:
                break
        rows.append(row('ros transport', 'sustained command rate without loss',
                        1.0 / best if best else None,
                        0.0, 1, f'{best:.0f} Hz (highest tested rate with no message lost)',
                        rate_hz=best))
        node.destroy_node()
    finally:
        ctx.try_shutdown()
        stop_child(child, 10)
    return rows
