"""``l2l-nmhw reach X Y Z``: send reach targets to a running graph and print each episode's result.

The pip-only stand-in for ``ros2 topic pub reach_target geometry_msgs/PointStamped ...``: start the
graph first (``l2l-nmhw launch l2l_nmhw_ros reach.launch.yaml``, same ``ROS_DOMAIN_ID``), then::

    l2l-nmhw reach 0.44 -0.06 1.13            # one target [m] in base_link
    l2l-nmhw reach 0.44 -0.06 1.13 0.64 0.64 0.20 --json
    l2l-nmhw reach --random 3 --seed 7        # three targets the arm can reach

Targets are sent one after another; each waits for its ``snn_controller/result`` (matched by the
target's coordinates, NaN included: :func:`~l2l_nmhw_ros.ros.tools.demo_client.match_result`;
``--timeout`` s, wall clock), which is printed as soon as it arrives (with ``--json`` all at the
end). A target the controller refuses (wrong frame, NaN, too close to home, dropped from its full
queue) is answered at once with ``status: rejected`` and the reason, an unreachable one with
``status: unreachable`` and the nearest reachable point (printed with the command that asks
for it); nothing is refused here (the controller is the judge). ``--random N`` draws N targets
uniformly from the set the checkpoint's learned joints reach, at least its minimum travel from
home (:func:`~l2l_nmhw_ros.reach.episode.random_reachable_targets`; ``--checkpoint``: the graph's
checkpoint, default the shipped one). Exit code 0 when every target reported ``status: ok``, 1
otherwise (rejected, unreachable, failed or no result).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('xyz', nargs='*', type=float,
                        help='target coordinates [m], x y z (several targets: x y z x y z ...)')
    parser.add_argument('--random', type=int, default=0, metavar='N',
                        help='also send N random targets the arm can reach')
    parser.add_argument('--seed', type=int, default=None, help='seed of --random')
    parser.add_argument('--checkpoint', default='',
                        help="the graph's checkpoint, for --random (default: the shipped one)")
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
    if not args.xyz and args.random < 1:
        raise ValueError('give target coordinates x y z, or --random N')
    from l2l_nmhw_ros.ros.tools.launcher import dds_environment, use_in_this_process

    use_in_this_process(dds_environment(os.environ))  # loopback DDS as the graph's nodes
    import rclpy

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.ros.tools.demo_client import DemoClient

    targets = np.asarray(args.xyz, dtype=float).reshape(-1, 3)
    cfg = C.load()
    if args.random > 0:
        targets = np.concatenate([targets, random_targets(cfg, args.random, args.seed,
                                                          args.checkpoint)])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = DemoClient(ctx, None, list(cfg.arm.joints), args.use_sim_time)
    results: list[dict] = []
    try:
        if not client.spin_until(lambda: client.pub_target.get_subscription_count() > 0, 20.0):
            raise TimeoutError('no snn_controller subscribes to reach_target within 20 s: is the '
                               'graph running on this ROS_DOMAIN_ID?')
        for p in targets:
            n0 = len(client.results)
            client.send_target(p, args.frame)
            # the result of THIS target (not another client's, nor a late one of an earlier target)
            if client.spin_until(lambda p=p, n0=n0: client.result_for(p, n0) is not None,
                                 args.timeout):
                results.append({'target': p.tolist(), **client.result_for(p, n0)})
            else:
                results.append({'target': p.tolist(), 'status': 'no result within timeout'})
            if not args.json:
                print(describe(results[-1]), flush=True)
    finally:
        client.close()
        ctx.try_shutdown()
    if args.json:
        print(json.dumps(results, indent=2))
    return exit_code(results)


def random_targets(cfg: object, n: int, seed: int | None, checkpoint: str) -> np.ndarray:
    """``n`` targets [m], (n, 3), the checkpoint's learned joints reach (see the module doc)."""
    from l2l_nmhw_ros.l2l import checkpoint as ckpt_io
    from l2l_nmhw_ros.reach.episode import (network_config, random_reachable_targets,
                                            resolve_checkpoint)

    net, _ = network_config(cfg, ckpt_io.load(resolve_checkpoint(checkpoint))[1])
    return random_reachable_targets(net, n, np.random.default_rng(seed),
                                    min_travel=max(net.task.reach_min_distance,
                                                   net.control.min_travel))


def describe(result: dict) -> str:
    """One line for a target's result: ``target [x, y, z] m: status=..., ..., message=...``;
    for an unreachable target also the command that asks for the nearest reachable point."""
    keys = ('status', 'error_final_baseline', 'error_final_adapted', 'devices_programmed',
            'adaptation_latency_ms', 'message')
    shown = ', '.join(f'{k}={result[k]}' for k in keys if k in result)
    text = f"target {np.round(result['target'], 3).tolist()} m: {shown}"
    near = [result.get(f'nearest_{c}') for c in 'xyz']
    if result.get('status') == 'unreachable' and all(v is not None for v in near):
        xyz = ' '.join(f'{float(v):.3f}' for v in near)
        text += f'\n  nearest reachable point: l2l-nmhw reach {xyz}'
    return text


def exit_code(results: list[dict]) -> int:
    """0 when every target's status is ``ok``, else 1 (rejected, unreachable, no result, ...)."""
    return 0 if all(r.get('status') == 'ok' for r in results) else 1
