"""Arm benchmarks: PyBullet stepping, safety-filter updates, inverse kinematics."""

from __future__ import annotations

import numpy as np

from bench.common import measure, row
from l2l_nmhw_ros.arm import kinematics as K
from l2l_nmhw_ros.arm.safety import SafetyFilter

GROUP = 'arm'


def run(quick: bool) -> list[dict]:
    """Return benchmark rows (bench.common.row format)."""
    from l2l_nmhw_ros.arm.sim import PyBulletArm

    repeat = 3 if quick else 10
    rows = []
    with PyBulletArm() as arm:
        arm.set_position_targets([0.5, -0.5, 0.5, 0.2])
        med, spread, n = measure(lambda: arm.step(250), repeat=repeat)
        rows.append(row(GROUP, 'PyBulletArm.step x250 (1 s simulated)', med, spread, n,
                        f'real-time factor {250 * arm.dt / med:.0f} (incl. rated-speed guard)'))
    lim = K.load_joint_limits()
    f = SafetyFilter(lim, lim.names, cmd_timeout=1e9, max_acceleration=5.0)
    q0 = np.zeros(4)
    f.update(q0, 0.0)
    f.command([1.0, 1.0, 1.0, 1.0], 0.0)
    clock = [0.0]

    def updates() -> None:
        for _ in range(1000):
            clock[0] += 0.004
            f.update(q0, clock[0])
    med, spread, n = measure(updates, repeat=repeat)
    rows.append(row(GROUP, 'SafetyFilter.update x1000', med, spread, n))
    rng = np.random.default_rng(0)
    targets = iter(K.forward_kinematics(rng.uniform(lim.lower * 0.9, lim.upper * 0.9,
                                                    (repeat + 1, 4))))
    med, spread, n = measure(lambda: K.inverse_kinematics(next(targets)), repeat=repeat)
    rows.append(row(GROUP, 'inverse_kinematics, reachable target, 4 joints', med, spread, n))
    far = np.array([2.0, 0.5, 0.3])  # 1.1 m outside the workspace: the whole restart grid
    med, spread, n = measure(lambda: K.inverse_kinematics(far), repeat=repeat)
    rows.append(row(GROUP, 'inverse_kinematics, unreachable target, 4 joints', med, spread, n,
                    '81 restarts'))
    return rows
