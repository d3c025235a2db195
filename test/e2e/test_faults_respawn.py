"""Fault injection, processes (slow): kill -9 of each node of the running graph during an episode.

The package's launcher runs reach.launch.yaml (simulated arm at 4x, shipped checkpoint, a device
state file) with its default ``respawn: true``. For each node in turn a target is sent, the node
is killed with SIGKILL while the accelerator streams that episode, and then: the launcher has
respawned it (new pid), the next target completes with status ``ok``, no other node died, and a
respawned accelerator continues from the saved device state (its device count is the one saved at
the end of the last complete episode, not a fresh programming).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow
rclpy = pytest.importorskip('rclpy')

from l2l_nmhw_ros import config as C  # noqa: E402
from l2l_nmhw_ros.reach.episode import resolve_checkpoint  # noqa: E402
from l2l_nmhw_ros.ros.tools.demo import draw_targets  # noqa: E402

EPISODE_S = 120.0


@pytest.fixture(scope='module')
def graph(tmp_path_factory: pytest.TempPathFactory):
    from l2l_nmhw_ros.ros.tools.demo_client import DemoClient
    from l2l_nmhw_ros.ros.tools.launch_file import find_package_share, load_launch_file
    from l2l_nmhw_ros.ros.tools.launcher import Launcher, ros_environment

    out = tmp_path_factory.mktemp('respawn')
    env = ros_environment(spawn=True)
    for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if k in env:
            os.environ[k] = env[k]
    desc = load_launch_file(find_package_share('l2l_nmhw_ros') / 'launch' / 'reach.launch.yaml', {
        'arm': 'sim', 'use_sim_time': 'true', 'real_time_factor': '4.0',
        'checkpoint': str(resolve_checkpoint('')),
        'pcm_state_file': str(out / 'pcm_state.safetensors')})
    launcher = Launcher(desc, log_dir=out / 'logs', echo=False, env=env,
                        stream=open(os.devnull, 'w'))  # noqa: SIM115
    launcher.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = DemoClient(ctx, None, list(C.L2LConfig().arm.joints), use_sim_time=True)
    try:
        assert client.spin_until(lambda: client.graph_ready('arm_sim'), 90.0), 'graph not up'
        yield launcher, client
    finally:
        client.close()
        ctx.try_shutdown()
        launcher.shutdown()


def _proc(launcher, label: str):
    return next(p for p in launcher.procs if p.spec.label == label)


def _reach(client, p: np.ndarray) -> dict[str, str]:
    n0 = len(client.results)
    client.send_target(p, 'base_link')
    assert client.spin_until(lambda: client.result_for(p, n0) is not None, EPISODE_S), \
        f'no result for {p}'
    return client.result_for(p, n0)


def _last_total(client) -> float:
    ends = [s for s in client.status if s.get('event') == 'end' and s.get('phase') == 'done']
    return float(ends[-1]['devices_programmed_total'])


@pytest.mark.parametrize('victim', ['pcm_accelerator', 'snn_controller', 'arm_sim'])
def test_kill_9_during_an_episode_respawns_and_the_next_target_completes(graph, victim) -> None:
    launcher, client = graph
    cfg = C.L2LConfig()
    targets = draw_targets(cfg, 6, 11 + len(victim))
    assert _reach(client, targets[0])['status'] == 'ok'  # a complete episode first
    saved_total = _last_total(client)
    proc = _proc(launcher, victim)
    pid = proc.popen.pid
    others = {p.spec.label: p.popen.pid for p in launcher.procs if p.spec.label != victim}
    n_status = len(client.status)
    client.send_target(targets[1], 'base_link')
    assert client.spin_until(lambda: any(s.get('state') == 'streaming'
                                         for s in client.status[n_status:]), EPISODE_S)
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    assert client.spin_until(lambda: proc.popen.pid != pid and proc.popen.poll() is None, 30.0)
    # up again: the respawned process logged its start, and DDS had a moment to match it (a
    # target published before the new controller's subscription matched is lost: the topic is
    # volatile, and the dead subscription counts as matched until its lease ends)
    log = proc.log_path

    def started() -> bool:
        text = log.read_text(errors='replace')
        return text.count('[launch] respawned') >= 1 and (
            victim == 'arm_sim' or text.split('[launch] respawned')[-1].count('checkpoint ') >= 1)
    assert client.spin_until(started, 60.0)
    assert client.spin_until(lambda: client.graph_ready('arm_sim'), 60.0)
    client.spin_until(lambda: False, 3.0)
    respawn_s = time.monotonic() - t_kill
    # the others never died
    assert {p.spec.label: p.popen.pid for p in launcher.procs
            if p.spec.label != victim} == others
    if victim == 'pcm_accelerator':  # restored from the saved state, not programmed afresh
        old_boot = client.status[n_status]['boot_id']

        def new_boot() -> dict | None:
            return next((s for s in client.status[n_status:]
                         if s.get('boot_id') not in (None, old_boot)), None)
        assert client.spin_until(lambda: new_boot() is not None, 30.0)
        assert float(new_boot()['devices_programmed_total']) == saved_total
    r = _reach(client, targets[2])  # the next target completes
    assert r['status'] == 'ok', r
    assert respawn_s < 60.0
    assert launcher.procs and all(p.popen.poll() is None for p in launcher.procs)


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '--run-slow', '-v']))
