"""Graph benchmarks: one reach episode's compute, without DDS (the cores of the two nodes).

Rows: the controller's planning (IK + demonstration) and LSG, the accelerator's on-chip episode
(learning trial + quantised update + adapted test trial = the adaptation latency without
messaging; and with the baseline trial), and the restore of the changed devices. Shipped
checkpoint, default configuration (paper_code PCM preset), one torch thread as in the nodes.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.common import measure, row, skipped
from l2l_nmhw_ros import config as C

GROUP = 'graph'


def run(quick: bool) -> list[dict]:
    """Return benchmark rows (bench.common.row format)."""
    from l2l_nmhw_ros.ros.tools.demo import draw_targets
    from l2l_nmhw_ros.l2l import checkpoint
    from l2l_nmhw_ros.reach.accelerator import Accelerator
    from l2l_nmhw_ros.reach.episode import ReachPlanner, network_config, resolve_checkpoint

    try:
        weights, meta = checkpoint.load(resolve_checkpoint(''))
    except Exception as exc:  # noqa: BLE001
        return [skipped(GROUP, 'episode', f'no shipped checkpoint ({exc})')]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        repeat = 3 if quick else 10
        cfg, _ = network_config(C.load(), meta)
        planner = ReachPlanner(cfg, weights)
        targets = draw_targets(cfg, repeat + 1, 0)
        it = iter(targets)
        med, spread, n = measure(lambda: planner.plan(next(it)), repeat=repeat)
        rows = [row(GROUP, 'ReachPlanner.plan (IK + demonstration)', med, spread, n)]
        demo = planner.plan(targets[0])
        med, spread, n = measure(lambda: planner.learning_signal(demo), repeat=repeat)
        rows.append(row(GROUP, f'LSG ({cfg.lsg.n_rec} neurons, 249 steps)', med, spread, n))
        sig = planner.learning_signal(demo)
        acc = Accelerator(cfg, weights, 0.0, seed=0)
        t = [1.0]
        outs = []

        def episode(baseline: bool) -> None:
            t[0] += 1.0
            outs.append(acc.adapt(sig, t[0], baseline=baseline))
            acc.restore(outs[-1], t[0])
        med, spread, n = measure(lambda: episode(False), repeat=repeat)
        dev = int(np.median([o.devices_programmed for o in outs]))
        rows.append(row(GROUP, 'accelerator episode: learning trial + update + test trial '
                        '(+ restore)', med, spread, n,
                        f'crossbar {cfg.pcm.preset}; {dev} devices programmed per update'))
        med, spread, n = measure(lambda: episode(True), repeat=repeat)
        rows.append(row(GROUP, 'accelerator episode with the baseline trial (+ restore)', med,
                        spread, n))
        out = acc.adapt(sig, 100.0, baseline=False)
        med, spread, n = measure(lambda: acc.restore(out, 101.0), repeat=repeat)
        rows.append(row(GROUP, 'Accelerator.restore (program the changed weights back)', med,
                        spread, n, f'{out.devices_programmed} devices'))
        return rows
    finally:
        torch.set_num_threads(threads)
