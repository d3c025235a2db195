"""Adaptation latency: learning signal in -> first command out, in the accelerator and over DDS.

The accelerator is :class:`l2l_nmhw_ros.reach.accelerator.Accelerator` (the ROS-free core of the
``pcm_accelerator`` node): the trainee on ONE emulated (252, 255) PCM crossbar. One episode from
a learning signal L (249 × 250): learning trial on the crossbar, e-prop ΔW = −η Σ_t L ψ ē,
rounded to the 1/16 grid, only the changed devices re-programmed, adapted test trial -> the
readout the command stream is made of. The baseline trial (an extra trial before the update, for
the comparison only) is off here, as the node excludes it from its own latency too.

Network and signals: the shipped meta-learned checkpoint (``checkpoints/default``; its network
sections, default ``pcm`` section: ``paper_code`` preset), deployed by the crossbar itself; the
learning signals: the checkpoint's LSG on the demonstrations of seeded reach targets (what the
``snn_controller`` sends; computed before the timing). Without the checkpoint: the paper code's
initial trainee (seed 0) and seeded Gaussian signals, SD ``SIGNAL_SD`` (said in the notes).

Rows (group ``adaptation``; torch with ``THREADS`` thread, best for batch 1 here):

- ``adaptation.core``: ``Accelerator.adapt(L, t, baseline=False)``, signal check to adapted
  readout; notes: the stages (learning trial, update, test trial), devices re-programmed.
  ``Accelerator.restore`` undoes each update between runs (not timed).
- ``adaptation.core.<stage>``: median of each stage over the same runs.
- ``adaptation.dds``: the ``pcm_accelerator`` node in a second process (``python -m
  l2l_nmhw_ros.ros.pcm_accelerator_node``, loopback FastDDS); this process publishes the learning
  signal (Float32MultiArray, 249 KB) and times until the first command arrives on
  ``forward_position_controller/commands``. That first command is the first set-point of the
  episode's stream, which the node only emits after the adapted trial: it includes the whole
  adaptation, DDS both ways, and the wait for the node's command timer (``control.command_rate``,
  50 Hz by default: 0 to 20 ms). Node settings: ``run_baseline`` false, ``settle_time`` 0,
  ``time_scale`` 1 (short episodes; no arm is attached). The node's own figure
  (``adaptation_latency_ms`` in ``pcm_accelerator/status``) is in the notes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.ros.runtime import spin_until
from bench.common import row, skipped, stop_child, summarize, torch_threads
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.snn.trainee import init_trainee_weights

GROUP = 'adaptation'
THREADS = 1
SIGNAL_SD = 50.0
T_EMULATOR = 3600.0  # emulator time of the episodes [s] (1 h after programming)

GOALS = [
    ('adaptation inside the accelerator ≤ 20 ms (learning signal in → adapted readout)',
     'adaptation.core', 0.020, ''),
]
RATIOS = [
    ('over DDS between processes / inside the accelerator', 'adaptation.dds', 'adaptation.core'),
]


def _signal(cfg: C.L2LConfig, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, SIGNAL_SD, (cfg.task.n_steps, cfg.trainee.n_rec)).astype(np.float32)


def setup(n_signals: int) -> tuple[C.L2LConfig, dict[str, Any], list[np.ndarray], str,
                                   Path | None]:
    """Return (config, weights, learning signals (time, n_rec), description, checkpoint path).

    The shipped checkpoint and its LSG's signals for ``n_signals`` seeded reach targets, or,
    without a checkpoint, the initial trainee and seeded Gaussian signals.
    """
    cfg = C.load(C.default_config_path())
    try:
        from l2l_nmhw_ros.ros.tools.demo import draw_targets
        from l2l_nmhw_ros.l2l import checkpoint
        from l2l_nmhw_ros.reach.episode import ReachPlanner, network_config, resolve_checkpoint

        path = resolve_checkpoint('')
        weights, meta = checkpoint.load(path)
    except Exception as exc:  # noqa: BLE001 - no checkpoint: time the same work on random ones
        w = init_trainee_weights(cfg.trainee, torch.Generator().manual_seed(0))
        return (cfg, {k: v.numpy() for k, v in w.items()},
                [_signal(cfg, i) for i in range(n_signals)],
                f'initial trainee, Gaussian signals SD {SIGNAL_SD:g} (no checkpoint: {exc})', None)
    cfg, _ = network_config(cfg, meta)
    planner = ReachPlanner(cfg, weights)
    with torch_threads(THREADS):
        sigs = [planner.learning_signal(planner.plan(t))
                for t in draw_targets(cfg, n_signals, 0)]
    return cfg, weights, sigs, f'{path.name} checkpoint, its LSG on seeded reach targets', path


def core_rows(quick: bool) -> list[dict]:
    """Time ``Accelerator.adapt`` (no baseline trial) on fresh learning signals."""
    from l2l_nmhw_ros.reach.accelerator import Accelerator

    runs, warmup = (5, 1) if quick else (20, 2)
    cfg, weights, signals, source, _ = setup(warmup + runs)
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    devices, changed, rates = [], [], []
    with torch_threads(THREADS):
        acc = Accelerator(cfg, weights, 0.0, seed=1, clock=time.perf_counter)
        for i, sig in enumerate(signals):
            t0 = time.perf_counter()
            out = acc.adapt(sig, T_EMULATOR, baseline=False)
            dt = time.perf_counter() - t0
            acc.restore(out, T_EMULATOR)
            if i < warmup:
                continue
            times.append(dt)
            for k, v in out.timings.items():
                stages.setdefault(k, []).append(v)
            devices.append(out.devices_programmed)
            changed.append(out.weights_changed)
            rates.append(out.rate_hz)
    med, spread, n = summarize(times)
    stage_med = {k: summarize(v)[0] for k, v in stages.items() if k != 'baseline_trial'}
    notes = (', '.join(f'{k} {1e3 * v:.1f} ms' for k, v in stage_med.items())
             + f'; {int(np.median(changed))} weights / {int(np.median(devices))} devices '
             f're-programmed (median); trainee {np.mean(rates):.0f} Hz; torch threads {THREADS}; '
             f'pcm preset {cfg.pcm.preset}; {source}')
    rows = [row(GROUP, 'adaptation.core', med, spread, n, notes,
                devices_programmed=int(np.median(devices)))]
    for k, v in stages.items():
        if k == 'baseline_trial':
            continue
        m, s, c = summarize(v)
        rows.append(row(GROUP, f'adaptation.core.{k}', m, s, c, 'stage of adaptation.core'))
    return rows


NODE = 'l2l_nmhw_ros.ros.pcm_accelerator_node'


def _checkpoint(cfg: C.L2LConfig, folder: Path) -> Path:
    from l2l_nmhw_ros.l2l import checkpoint
    from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in

    g = torch.Generator().manual_seed(0)
    tr = init_trainee_weights(cfg.trainee, g)
    ls = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), cfg.trainee.n_rec, g)
    w = {f'trainee.{k}': v.numpy() for k, v in tr.items()}
    w |= {f'lsg.{k}': v.numpy() for k, v in ls.items()}
    return checkpoint.save(folder / 'random', w,
                           {'config': C.to_dict(cfg), 'note': 'random init (benchmark)'})


def _episode(status: dict[str, str]) -> int:
    try:
        return int(float(status.get('episode', '-1')))
    except ValueError:
        return -1


def _is_done(status: dict[str, str], episode: int) -> bool:
    return status.get('phase') == 'done' and _episode(status) == episode


def dds_rows(quick: bool) -> list[dict]:
    """Time learning signal published here -> first command received from the node process."""
    try:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Float32MultiArray, Float64MultiArray

        from l2l_nmhw_ros.ros import qos
        from l2l_nmhw_ros.ros.convert import diag_values, to_multiarray
    except ImportError as exc:
        return [skipped(GROUP, 'adaptation.dds', f'rclpy or the graph nodes unavailable: {exc}')]
    runs, warmup = (3, 1) if quick else (15, 2)
    cfg, _, signals, source, ckpt = setup(warmup + runs)
    tmp = Path(tempfile.mkdtemp(prefix='bench_adapt_'))
    ckpt = ckpt or _checkpoint(cfg, tmp)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_LOG_DIR=str(tmp / 'roslog'), OMP_NUM_THREADS=str(THREADS))
    env.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID')})
    os.environ.setdefault('ROS_LOG_DIR', env['ROS_LOG_DIR'])
    params = {'control.checkpoint': str(ckpt), 'control.run_baseline': 'false',
              'control.settle_time': '0.0', 'control.time_scale': '1.0'}
    cmd = [sys.executable, '-m', NODE, '--ros-args']
    for k, v in params.items():
        cmd += ['-p', f'{k}:={v}']
    log = open(tmp / 'node.log', 'w')  # noqa: SIM115 - closed in finally
    child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    rows: list[dict] = []
    try:
        node = rclpy.create_node('bench_adaptation', context=ctx)
        first_cmd: list[float] = []
        status: list[dict[str, str]] = []
        node.create_subscription(Float64MultiArray, 'forward_position_controller/commands',
                                 lambda m: first_cmd.append(time.perf_counter()), qos.COMMANDS)
        node.create_subscription(DiagnosticArray, 'pcm_accelerator/status',
                                 lambda m: status.extend(diag_values(s) for s in m.status), 100)
        pub = node.create_publisher(Float32MultiArray, 'pcm_accelerator/learning_signal',
                                    qos.COMMANDS)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)

        def wait_for(pred, timeout: float) -> bool:
            return spin_until(ex, pred, timeout, slice_s=0.005,
                              abort=lambda: child.poll() is not None)

        if not wait_for(lambda: pub.get_subscription_count() > 0 and bool(status), 60.0):
            return [skipped(GROUP, 'adaptation.dds', 'pcm_accelerator node did not come up in '
                            f'60 s (exit code {child.poll()}; log {tmp / "node.log"})')]
        times: list[float] = []
        node_ms: list[float] = []
        for i, sig in enumerate(signals):
            msg = to_multiarray(sig, ('time', 'neuron'))
            first_cmd.clear()
            status.clear()
            t0 = time.perf_counter()
            pub.publish(msg)
            if not wait_for(lambda: bool(first_cmd), 30.0):
                return [skipped(GROUP, 'adaptation.dds', f'no command within 30 s (episode {i})')]
            dt = first_cmd[0] - t0
            # this episode (number i + 1 of the fresh node) has ended: its stream is over, so the
            # next signal is not queued and the next first command is the next episode's
            ok = wait_for(lambda i=i: any(_is_done(s, i + 1) for s in status), 60.0)
            if not ok:
                return [skipped(GROUP, 'adaptation.dds', f'episode {i} did not end in 60 s')]
            if i < warmup:
                continue
            times.append(dt)
            lat = [float(s['adaptation_latency_ms']) for s in status
                   if s.get('event') == 'computed' and _episode(s) == i + 1]
            node_ms += lat[:1]
        med, spread, n = summarize(times)
        node_med = f'{np.median(node_ms):.1f} ms' if node_ms else 'n/a'
        rows.append(row(GROUP, 'adaptation.dds', med, spread, n,
                        f'node in a 2nd process, loopback FastDDS; the node itself reports '
                        f'{node_med} (median adaptation_latency_ms); command timer 50 Hz; '
                        f'OMP_NUM_THREADS={THREADS} in the node; {source}'))
        node.destroy_node()
    finally:
        ctx.try_shutdown()
        stop_child(child, 15)
        log.close()
    return rows


def run(quick: bool = False) -> list[dict]:
    """Return the accelerator-core and DDS adaptation-latency rows."""
    try:
        import l2l_nmhw_ros.reach.accelerator  # noqa: F401
    except ImportError as exc:
        return [skipped(GROUP, name, f'accelerator core not available ({exc})')
                for name in ('adaptation.core', 'adaptation.dds')]
    return core_rows(quick) + dds_rows(quick)


if __name__ == '__main__':
    for r in run(quick=True):
        print(f"{r['name']:36s} {r['median_s'] or float('nan'):.3e} s  {r['notes']}")
