"""``l2l-nmhw demo``: the main job on the embedded defaults.

Until the whole graph lands, it checks what exists: the configuration loads and validates, and the
pip-installed ROS 2 stack passes one message between two nodes over loopback-only DDS.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from l2l_nmhw_ros import config as C


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def _dds_roundtrip() -> float:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        a = rclpy.create_node('demo_talker', context=ctx)
        b = rclpy.create_node('demo_listener', context=ctx)
        got: list[float] = []
        b.create_subscription(String, 'demo_ping', lambda m: got.append(time.perf_counter()), 10)
        pub = a.create_publisher(String, 'demo_ping', 10)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(a)
        ex.add_node(b)
        t0 = time.perf_counter()
        deadline = t0 + 10.0
        while not got and time.perf_counter() < deadline:
            pub.publish(String(data='ping'))
            ex.spin_once(timeout_sec=0.05)
        if not got:
            raise RuntimeError('no DDS message came back over loopback within 10 s')
        return got[0] - t0
    finally:
        rclpy.shutdown(context=ctx)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    cfg = C.load()
    latency = _dds_roundtrip()
    result = {
        'config_hash': C.config_hash(cfg),
        'trainee': [cfg.trainee.n_in, cfg.trainee.n_rec, cfg.trainee.n_out],
        'lsg_neurons': cfg.lsg.n_rec,
        'pcm_g_max_uS': cfg.pcm.g_max,
        'dds_discovery_range': os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE'),
        'ros_domain_id': os.environ.get('ROS_DOMAIN_ID'),
        'dds_first_message_s': round(latency, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f'{k:24s} {v}')
    return 0
