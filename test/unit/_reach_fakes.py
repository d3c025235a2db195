"""Fakes of the controller-core tests (no rclpy): a planner whose FK is the first three joint
angles, outputs that record, a settable clock, and the set-up helpers."""

from __future__ import annotations

import numpy as np

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.reach.episode import Demonstration, UnreachableTarget
from l2l_nmhw_ros.reach.reach_controller import ReachController
from l2l_nmhw_ros.reach.reports import AcceleratorStatus

T = 249
DT = 0.001
SCALE = 4.0  # playback time scale of the fake accelerator's executions


class FakePlanner:
    """FK = the first three joint angles (so errors are easy to compute by hand); targets with
    |x| > 1 are unreachable."""

    def __init__(self, cfg: C.L2LConfig) -> None:
        self.cfg = cfg
        self.learned_idx = [0, 1]

    def fk(self, q):
        return np.asarray(q, dtype=np.float64)[..., :3]

    def plan(self, p) -> Demonstration:
        p = np.asarray(p, dtype=np.float64)
        if abs(p[0]) > 1.0:
            raise UnreachableTarget(p, abs(p[0]) - 1.0, self.cfg.control.reach_tolerance)
        goal = np.append(p, 0.0)
        q = np.linspace(0.0, 1.0, T)[:, None] * goal[None, :]
        return Demonstration(target=p, q_goal=goal, ik_distance=0.0, q=q,
                             omega=np.zeros((T, 2)), xyz=self.fk(q))

    def learning_signal(self, demo: Demonstration) -> np.ndarray:
        return np.tile(demo.target.astype(np.float32), (T, 1))


class Outputs:
    def __init__(self) -> None:
        self.subscribers = 1
        self.signals: list[np.ndarray] = []
        self.demos: list[Demonstration] = []
        self.markers: list[dict] = []
        self.results = []

    def signal_subscribers(self) -> int:
        return self.subscribers

    def publish_signal(self, signal):
        self.signals.append(signal)

    def publish_demonstration(self, demo):
        self.demos.append(demo)

    def publish_markers(self, demo, executed):
        self.markers.append(dict(executed))

    def publish_result(self, result):
        self.results.append(result)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def controller(**control):
    cfg = C.from_dict({'control': {'queue_size': 2, 'signal_retry': 2.0,
                                   'episode_timeout': 60.0, **control}})
    out, clock = Outputs(), Clock()
    return ReachController(cfg, FakePlanner(cfg), out, clock=clock), out, clock


def status(crc: str, phase: str, event: str = 'start', episode: int = 5, **kw):
    return AcceleratorStatus(learning_signal_crc32=crc, episode=episode, phase=phase,
                             event=event, **kw)


def execute(ctl: ReachController, demo: Demonstration, t0: float, error: float) -> None:
    """The arm follows the demonstration at SCALE from t0, ending ``error`` m off in x."""
    q = demo.q.copy()
    q[:, 0] += np.linspace(0.0, error, T)
    for k in range(T):
        ctl.on_joint_state(t0 + (k + 1) * DT * SCALE, q[k])
