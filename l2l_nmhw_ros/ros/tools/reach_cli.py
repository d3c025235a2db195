"""``l2l-nmhw reach X Y Z``: send reach targets to a running graph and print each episode's result.

The pip-only stand-in for ``ros2 topic pub reach_target geometry_msgs/PointStamped ...``: start the
graph first (``l2l-nmhw launch l2l_nmhw_ros reach.launch.yaml``, same ``ROS_DOMAIN_ID``), then::

    l2l-nmhw reach 0.44 -0.06 1.13            # one target [m] in base_link
    l2l-nmhw reach 0.44 -0.06 1.13 0.64 0.64 0.20 --json

Targets are sent one after another; each waits for ``snn_controller/result`` (``--timeout`` s,
wall clock). Exit code 0 when every episode reported ``status: ok``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('xyz', nargs='+', type=float,
                        help='target coordinates [m], x y z (several targets: x y z x y z ...)')
    parser.add_argument('--frame', default='base_link', help='frame_id of the targets (base_link)')
    parser.add_argument('--timeout', type=float, default=150.0,
                        help="wall-clock seconds to wait for each result (150; the controller's "
                        'own control.episode_timeout is 120)')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='stamp targets with /clock time (when the arm owns time)')
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def run(args: argparse.Namespace) -> int:
    """Send the targets, wait for and print their results; returns the exit code."""
    if len(args.xyz) % 3:
        raise ValueError(f'xyz: expected a multiple of 3 values, got {len(args.xyz)}')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.ros.tools.demo_client import DemoClient

    targets = np.asarray(args.xyz, dtype=float).reshape(-1, 3)
    cfg = C.load()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = DemoClient(ctx, None, list(cfg.arm.joints), args.use_sim_time)
    results = []
    try:
        if not client.spin_until(lambda: client.pub_target.get_subscription_count() > 0, 20.0):
            raise TimeoutError('no snn_controller subscribes to reach_target within 20 s: is the '
                               'graph running on this ROS_DOMAIN_ID?')
        for p in targets:
            n0 = len(client.results)
            client.send_target(p, args.frame)
            # the result of THIS target (not another client's, nor a late one of an earlier target)
            if not client.spin_until(lambda p=p, n0=n0: client.result_for(p, n0) is not None,
                                     args.timeout):
                results.append({'target': p.tolist(), 'status': 'no result within timeout'})
                continue
            results.append({'target': p.tolist(), **client.result_for(p, n0)})
    finally:
        client.close()
        ctx.try_shutdown()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            keys = ('status', 'error_final_baseline', 'error_final_adapted', 'devices_programmed',
                    'adaptation_latency_ms', 'message')
            shown = ', '.join(f'{k}={r[k]}' for k in keys if k in r)
            print(f"target {np.round(r['target'], 3).tolist()} m: {shown}")
    return 0 if all(r.get('status') == 'ok' for r in results) else 1
