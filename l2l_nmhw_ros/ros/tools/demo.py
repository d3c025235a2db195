"""``l2l-nmhw demo``: the meta-learned network adapts to new reach targets on the simulated arm.

What it does (the main job of the package, ``make demo``):

1. starts the ROS 2 graph of ``launch/reach.launch.yaml`` through the package's launcher
   (separate processes: ``pcm_accelerator``, ``snn_controller``, ``arm_sim``; loopback-only DDS,
   a private domain unless ``ROS_DOMAIN_ID`` is set) with the shipped checkpoint
   (``checkpoints/default``) and the PyBullet arm, which owns the time (/clock) and runs
   ``--real-time-factor`` times faster than real time (default 4: every node follows simulated
   time, so the run takes a quarter of the robot time without changing what happens);
2. sends ``--targets`` (default 5) new reach targets drawn with ``--seed`` from the ``reach`` task
   family (joint goals uniform in the safe ranges ∩ the URDF limits, end-effector travel at least
   ``task.reach_min_distance``), one episode each;
3. prints per target: the target [m], the end-effector error at the end of the execution with the
   meta-learned initial weights (no update) and after the one on-chip update [m], the devices
   programmed by the update, the adaptation latency (learning signal in → adapted command stream
   ready, ms); then a summary;
4. writes ``demo_output/``: ``episodes.mcap`` (commands, joint_states, learning signals, status,
   results, demonstrations, markers; readable by ``ros2 bag`` and Foxglove), PNG plots
   (``paths.png`` target vs executed path, ``joints.png`` joint trajectories,
   ``learning_signal.png`` raster of the learning signals, ``conductance.png`` histogram of the
   device conductances), ``pcm_state.safetensors`` (device state), ``summary.json``, ``logs/``.

Exit status 0 when every node came up, every target got an evaluated episode and the graph shut
down cleanly; 1 otherwise (with the reason). ``--json`` prints the summary as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from l2l_nmhw_ros import config as C

DEFAULT_OUTPUT = 'demo_output'
ARM_NODE = 'arm_sim'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument('--targets', type=int, default=5, help='number of reach targets (5)')
    parser.add_argument('--seed', type=int, default=1, help='seed of the targets (1)')
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='output folder (demo_output)')
    parser.add_argument('--checkpoint', default='',
                        help='checkpoint folder (default: the shipped checkpoints/default)')
    parser.add_argument('--real-time-factor', type=float, default=4.0,
                        help='simulated seconds per wall-clock second of the arm simulation (4)')
    parser.add_argument('--timeout', type=float, default=150.0,
                        help='wall-clock seconds the demo waits for the result of one target '
                        "(150; the controller's own control.episode_timeout is 120)")
    parser.add_argument('--no-plots', action='store_true', help='skip the PNG plots')
    parser.add_argument('--viewer', action='store_true',
                        help='also start the live 3D web view (web_viewer, viser) and print its '
                        'URL (make demo VIEW=1)')
    parser.add_argument('--viewer-port', type=int, default=8080,
                        help='TCP port of the web view on 127.0.0.1 (8080; the next free one '
                        'if taken)')
    parser.add_argument('--hold', type=float, default=0.0,
                        help='wall-clock seconds the graph stays up after the last target, e.g. '
                        'to click targets in the web view (0; inf = until Ctrl-C)')
    parser.add_argument('--verbose', action='store_true', help="echo the nodes' output")
    parser.add_argument('--json', action='store_true', help='machine-readable output')


def draw_targets(cfg: C.L2LConfig, n: int, seed: int) -> np.ndarray:
    """Return ``n`` seeded reach targets [m], (n, 3), drawn uniformly from the set the
    checkpoint's learned joints can reach (inside the task's safe ranges and the URDF limits),
    at least ``task.reach_min_distance`` from the home position
    (:func:`~l2l_nmhw_ros.reach.episode.random_reachable_targets`)."""
    from l2l_nmhw_ros.reach.episode import random_reachable_targets

    return random_reachable_targets(cfg, n, np.random.default_rng(seed),
                                    min_travel=cfg.task.reach_min_distance)


class _Out:
    """Prints for humans unless --json."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str = '') -> None:
        if not self.quiet:
            print(text, flush=True)


def _f(r: dict[str, str], key: str) -> float:
    try:
        return float(r[key])
    except (KeyError, ValueError):
        return math.nan


def run_demo(n_targets: int = 5, seed: int = 1, output: str | Path = DEFAULT_OUTPUT,
             checkpoint: str = '', real_time_factor: float = 4.0, timeout: float = 150.0,
             plots: bool = True, verbose: bool = False, say: Any = print, viewer: bool = False,
             viewer_port: int = 8080, hold: float = 0.0) -> dict[str, Any]:
    """Run the demo; return the summary dict (also written to ``<output>/summary.json``).

    With ``viewer`` the graph includes ``web_viewer`` (http://127.0.0.1:``viewer_port``); with
    ``hold`` > 0 the graph stays up that many wall-clock seconds after the last target (Ctrl-C
    ends the wait), e.g. to send targets from the view.

    Raises:
        RuntimeError: the graph did not come up, or a node died.
    """
    import rclpy

    from l2l_nmhw_ros.l2l import checkpoint as ckpt_io
    from l2l_nmhw_ros.reach.episode import network_config, resolve_checkpoint
    from l2l_nmhw_ros.ros.tools.demo_client import DemoClient
    from l2l_nmhw_ros.ros.tools.launch_file import find_package_share, load_launch_file
    from l2l_nmhw_ros.ros.tools.launcher import (DDS_VARIABLES, Launcher, ros_environment,
                                                 use_in_this_process)

    t_start = time.monotonic()
    out = Path(output)
    for name in ('episodes.mcap', 'pcm_state.safetensors', 'pcm_state.safetensors.json',
                 'summary.json'):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / 'logs', ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = resolve_checkpoint(checkpoint)
    # targets for the checkpoint's network: its learned joints, ranges and minimum travel
    cfg, _ = network_config(C.load(), ckpt_io.load(ckpt)[1])
    targets = draw_targets(cfg, n_targets, seed)

    env = ros_environment(spawn=True)
    # the demo's own node joins the same graph, on loopback as the nodes
    use_in_this_process(env, (*DDS_VARIABLES, 'ROS_DOMAIN_ID', 'ROS_LOG_DIR', 'AMENT_PREFIX_PATH',
                              'RMW_IMPLEMENTATION'))
    launch_file = find_package_share('l2l_nmhw_ros') / 'launch' / 'reach.launch.yaml'
    state_file = (out / 'pcm_state.safetensors').resolve()
    desc = load_launch_file(launch_file, {
        'arm': 'sim', 'use_sim_time': 'true', 'real_time_factor': str(real_time_factor),
        'checkpoint': str(ckpt), 'pcm_state_file': str(state_file),
        'viewer': 'true' if viewer else 'false', 'viewer_port': str(viewer_port)})
    say(f'l2l-nmhw demo: {n_targets} reach targets (seed {seed}), checkpoint {ckpt}')
    say(f"graph: {', '.join(n.label for n in desc.nodes)} (separate processes); ROS_DOMAIN_ID="
        f"{env['ROS_DOMAIN_ID']}, loopback only; arm simulation at {real_time_factor:g}x real "
        'time (it owns /clock)')
    launcher = Launcher(desc, log_dir=out / 'logs', echo=verbose, env=env,
                        stream=sys.stdout if verbose else open(os.devnull, 'w'))  # noqa: SIM115
    launcher.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = None
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    counts: dict[str, int] = {}
    try:
        client = DemoClient(ctx, out / 'episodes.mcap', list(cfg.arm.joints), use_sim_time=True,
                            arm_controller=desc.values['arm_controller'])

        def alive() -> str | None:
            # a node that exited and will not be respawned (respawn: the launch goes on)
            dead = [p.spec.label for p in launcher.procs if p.popen.poll() is not None
                    and not p.spec.respawn]
            if dead:
                logs = {p.spec.label: p.log_path for p in launcher.procs}
                tail = '\n'.join((logs[dead[0]].read_text(errors='replace').splitlines()
                                  or [''])[-15:])
                return f'node {dead[0]} exited (log {logs[dead[0]]}):\n{tail}'
            return None

        t0 = time.monotonic()
        if not client.spin_until(lambda: client.graph_ready(ARM_NODE), 90.0, alive):
            raise RuntimeError('the graph did not come up within 90 s (logs in '
                               f'{out / "logs"})')
        up_s = time.monotonic() - t0
        say(f'every node is up ({up_s:.1f} s): '
            f"{', '.join(sorted(set(client.node.get_node_names()) - {'l2l_demo'}))}")
        if viewer:
            say(f'live 3D view: {_viewer_url(launcher, viewer_port)} (this machine only)')
        say('')
        say(f"{'#':>2}  {'target x, y, z [m]':>22}  {'error no update [m]':>19}  "
            f"{'after 1 update [m]':>18}  {'devices':>7}  {'latency [ms]':>12}")
        for i, p in enumerate(targets):
            n0 = len(client.results)
            client.send_target(p, cfg.control.frame_id)
            # the result of THIS target (a late one for an earlier target is not it)
            if not client.spin_until(lambda p=p, n0=n0: client.result_for(p, n0) is not None,
                                     timeout, alive):
                problems.append(f'target {i + 1}: no result within {timeout} s')
                say(f'{i + 1:>2}  no result within {timeout} s')
                continue
            r = client.result_for(p, n0)
            row = {'target': [round(float(v), 4) for v in p], 'status': r.get('status', '?'),
                   'error_no_update_m': _f(r, 'error_final_baseline'),
                   'error_after_update_m': _f(r, 'error_final_adapted'),
                   'path_error_no_update_m': _f(r, 'error_path_baseline'),
                   'path_error_after_update_m': _f(r, 'error_path_adapted'),
                   'devices_programmed': int(_f(r, 'devices_programmed'))
                   if 'devices_programmed' in r else None,
                   'devices_restored': int(_f(r, 'devices_restored'))
                   if 'devices_restored' in r else None,
                   'adaptation_latency_ms': _f(r, 'adaptation_latency_ms'),
                   'lsg_ms': _f(r, 'lsg_ms'), 'arm_moved_rad': _f(r, 'arm_moved_rad'),
                   'time_scale': _f(r, 'time_scale_adapted'),
                   'crc': r.get('learning_signal_crc32', ''),
                   'signal_sends': int(_f(r, 'signal_sends')) if 'signal_sends' in r else None}
            rows.append(row)
            if row['status'] != 'ok':
                problems.append(f"target {i + 1}: {row['status']} ({r.get('message', '')})")
            xyz = ', '.join(f'{v:+.3f}' for v in p)
            say(f"{i + 1:>2}  {xyz:>22}  {row['error_no_update_m']:>19.3f}  "
                f"{row['error_after_update_m']:>18.3f}  {row['devices_programmed'] or 0:>7d}  "
                f"{row['adaptation_latency_ms']:>12.0f}")
        if hold > 0:
            say(f"the graph stays up {'until Ctrl-C' if math.isinf(hold) else f'{hold:g} s'}"
                + (' (send targets from the web view)' if viewer else ''))
            try:
                client.spin_until(lambda: False, hold, alive)
            except KeyboardInterrupt:
                say('')
        ok, msg = client.save_state()
        if not ok:
            problems.append(f'save_state: {msg}')
    finally:
        if client is not None:
            js_t, js_q = client.joint_states()
            status, signals, demos = client.status, client.signals, client.demos
            counts = client.close()
        ctx.try_shutdown()
        code = launcher.shutdown()
    if code != 0:
        problems.append('unclean shutdown: ' + ', '.join(f'{k}={v}' for k, v in
                                                         launcher.returncodes.items()))
        for p in launcher.procs:  # the end of a stuck node's log (its stack dump, if any)
            if p.escalated or p.popen.returncode != 0:
                lines = p.log_path.read_text(errors='replace').splitlines()[-40:]
                problems.append(f'{p.spec.label} log ({p.log_path}), last lines:\n' +
                                '\n'.join(lines))
    summary = _summary(rows, n_targets, problems)
    summary.update({'seed': seed, 'checkpoint': str(ckpt), 'real_time_factor': real_time_factor,
                    'graph_up_s': round(up_s, 2), 'wall_s': None, 'exit_codes':
                    dict(launcher.returncodes), 'bag': str(out / 'episodes.mcap'),
                    'bag_messages': counts, 'rows': rows, 'problems': problems})
    if plots:
        try:
            summary['plots'] = _plots(out, cfg, rows, status, signals, demos, js_t, js_q,
                                      state_file)
        except Exception as exc:  # noqa: BLE001 - plots never hide the results
            problems.append(f'plots: {exc}')
    summary['wall_s'] = round(time.monotonic() - t_start, 1)
    summary['ok'] = not problems
    summary = _clean(summary)
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    return summary


def _viewer_url(launcher: Any, port: int, wait_s: float = 10.0) -> str:
    """The web view's URL as its node logged it (the port may be the next free one)."""
    import re

    proc = next((p for p in launcher.procs if p.spec.label == 'web_viewer'), None)
    deadline = time.monotonic() + wait_s
    while proc is not None and time.monotonic() < deadline:
        text = proc.log_path.read_text(errors='replace') if proc.log_path.is_file() else ''
        m = re.search(r'web view at (http://\S+)', text)
        if m:
            return m.group(1)
        time.sleep(0.2)
    return f'http://127.0.0.1:{port}'


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf become None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _summary(rows: list[dict[str, Any]], n: int, problems: list[str]) -> dict[str, Any]:
    ok = [r for r in rows if r['status'] == 'ok']
    base = np.array([r['error_no_update_m'] for r in ok])
    adapt = np.array([r['error_after_update_m'] for r in ok])
    better = int(np.sum(adapt < base)) if ok else 0
    lat = np.array([r['adaptation_latency_ms'] for r in ok])
    dev = np.array([r['devices_programmed'] for r in ok], dtype=float)

    def med(a: np.ndarray) -> float | None:
        return round(float(np.median(a)), 4) if a.size else None

    def mean(a: np.ndarray) -> float | None:
        return round(float(np.mean(a)), 4) if a.size else None

    return {'targets': n, 'episodes_ok': len(ok), 'improved': better,
            'median_error_no_update_m': med(base), 'median_error_after_update_m': med(adapt),
            'mean_error_no_update_m': mean(base), 'mean_error_after_update_m': mean(adapt),
            'median_adaptation_latency_ms': med(lat), 'mean_devices_programmed': mean(dev)}


def _windows(status: list[dict[str, str]], crc: str) -> dict[str, tuple[float, float, float]]:
    out = {}
    for s in status:
        if s.get('learning_signal_crc32') == crc and s.get('event') == 'start' and \
                s.get('phase') in ('baseline', 'adapted'):
            start, dur, hold = (float(s[k]) for k in ('phase_start', 'phase_duration',
                                                      'phase_hold'))
            out[s['phase']] = (start, start + dur + hold, float(s['time_scale']))
    return out


#: line style of each curve of an episode (the legend's second half)
_STYLES = (('demonstration', ':', 1.2), ('executed before the update', '--', 1.1),
           ('executed after one on-chip update', '-', 1.7))


def _style_handles(star: bool = True) -> list[Any]:
    """Legend entries of the line styles and (``star``) the target marker, in black (the
    colour says which target)."""
    from matplotlib.lines import Line2D

    return [*([Line2D([], [], color='k', marker='*', ms=12, ls='none', label='target')]
              if star else []),
            *[Line2D([], [], color='k', ls=ls, lw=lw, label=lab) for lab, ls, lw in _STYLES]]


def make_figures(cfg: C.L2LConfig, rows: list[dict[str, Any]], status: list, signals: list,
                 demos: list, js_t: np.ndarray, js_q: np.ndarray,
                 state_file: Path | None = None) -> dict[str, Any]:
    """Return the demo's figures (matplotlib, not saved), by file name.

    ``paths.png``: end-effector paths (top and side views), ``joints.png``: the learned joints
    over network time, ``learning_signal.png``: the learning signal of each episode,
    ``conductance.png`` (when ``state_file`` exists): G+ and G− after the demo. One colour per
    target in every figure (the legend names each target); line style = what is drawn.

    Args:
        cfg: the checkpoint's configuration (task, arm, pcm, trainee sections).
        rows: one dict per target (``target`` [m], ``crc``).
        status: the accelerator's status messages as key -> value dicts.
        signals: learning signals (249, 250), one per episode.
        demos: demonstrations, joint positions (249, n_joints) [rad] in ``arm.joints`` order.
        js_t, js_q: joint states: stamps [s] (n,) and positions (n, n_joints) [rad].
        state_file: the crossbar's state file (safetensors) or None.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from l2l_nmhw_ros.arm.kinematics import forward_kinematics

    figs: dict[str, Any] = {}
    dt = cfg.task.dt
    n = len(rows)
    colors = plt.cm.tab10(np.arange(max(n, 1)) % 10)
    styles = {'baseline': _STYLES[1], 'adapted': _STYLES[2]}
    target_handles = []
    for i, r in enumerate(rows):
        xyz = ', '.join(f'{v:+.2f}' for v in r['target'])
        target_handles.append(Line2D([], [], color=colors[i], lw=3,
                                     label=f'target {i + 1}: ({xyz}) m'))
    # 1) target vs executed end-effector path (top and side views)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4), layout='constrained')
    learned = list(cfg.task.learned_joints)  # only the learned joints move: one panel each
    held = [j for j in cfg.arm.joints if j not in learned]
    cols = [list(cfg.arm.joints).index(name) for name in learned]
    fig_j, axes_j = plt.subplots(len(cols), 1, figsize=(11, 2.8 + 2.4 * len(cols)),
                                 sharex=True, squeeze=False, layout='constrained')
    axes_j = axes_j[:, 0]
    for i, r in enumerate(rows):
        c = colors[i]
        tgt = np.array(r['target'])
        demo = demos[i] if i < len(demos) else None
        win = _windows(status, r['crc'])
        for ax, (a, b) in zip(axes, ((0, 1), (0, 2)), strict=True):
            ax.plot(tgt[a], tgt[b], marker='*', ms=14, color=c, ls='none')
            if demo is not None:
                d = forward_kinematics(demo)
                ax.plot(d[:, a], d[:, b], color=c, ls=_STYLES[0][1], lw=_STYLES[0][2])
            for phase, (_, ls, lw) in styles.items():
                if phase in win and len(js_t):
                    t0, t1, _ = win[phase]
                    m = (js_t >= t0) & (js_t <= t1)
                    x = forward_kinematics(js_q[m])
                    ax.plot(x[:, a], x[:, b], color=c, ls=ls, lw=lw)
        for phase, (_, ls, lw) in styles.items():
            if phase in win and len(js_t):
                t0, t1, scale = win[phase]
                m = (js_t >= t0) & (js_t <= t1)
                t_net = (js_t[m] - t0) / scale * 1e3  # robot time -> network time [ms]
                for j, col in enumerate(cols):
                    axes_j[j].plot(t_net, js_q[m, col], color=c, ls=ls, lw=lw)
        if demo is not None:
            for j, col in enumerate(cols):
                axes_j[j].plot(np.arange(1, len(demo) + 1) * dt * 1e3, demo[:, col], color=c,
                               ls=_STYLES[0][1], lw=_STYLES[0][2])
    for ax, (lab, ylab) in zip(axes, (('top view (x-y)', 'y [m]'),
                                      ('side view (x-z)', 'z [m]')), strict=True):
        ax.set_title(lab)
        ax.set_xlabel('x [m]')
        ax.set_ylabel(ylab)
        ax.set_aspect('equal', adjustable='datalim')
        ax.grid(alpha=0.3)
    frame = cfg.control.frame_id or 'base_link'
    fig.suptitle(f'End-effector paths of {n} reach episodes (frame {frame}; one colour per '
                 'target)')
    fig.legend(handles=target_handles + _style_handles(), loc='outside lower center', ncol=3,
               fontsize=8)
    figs['paths.png'] = fig
    for j, name in enumerate(learned):
        axes_j[j].set_ylabel(f'{name} [rad]')
        axes_j[j].grid(alpha=0.3)
    axes_j[-1].set_xlabel('network time [ms] (1 step = 1 ms; executions mapped back from robot '
                          'time by their time scale, then held for control.settle_time)')
    fig_j.suptitle('Joint trajectories of the learned joints only ('
                   + ', '.join(learned) + ')'
                   + (f'; {", ".join(held)} held at home' if held else ''))
    fig_j.legend(handles=target_handles + _style_handles(star=False), loc='outside lower center',
                 ncol=3, fontsize=8)
    figs['joints.png'] = fig_j
    # 2) learning signals: one panel per episode (time x neuron), shared axes and colour scale
    if signals:
        k = len(signals)
        fig, axes = plt.subplots(1, k, figsize=(2.9 * k + 2.2, 4.6), squeeze=False,
                                 sharey=True, layout='constrained')
        vmax = float(np.percentile(np.abs(np.concatenate([s.ravel() for s in signals])), 99))
        for i, s in enumerate(signals):
            t_ms = s.shape[0] * dt * 1e3
            im = axes[0, i].imshow(s.T, aspect='auto', cmap='RdBu_r', vmin=-vmax, vmax=vmax,
                                   origin='lower', interpolation='nearest',
                                   extent=(0.0, t_ms, -0.5, s.shape[1] - 0.5))
            axes[0, i].set_title(f'episode {i + 1}', fontsize=10,
                                 color=colors[i] if i < n else 'k')
            axes[0, i].set_xlabel('network time [ms]')
            axes[0, i].set_xticks([0, 100, 200])
        axes[0, 0].set_ylabel('trainee neuron [index]')
        fig.colorbar(im, ax=axes[0, :].tolist(), label='learning signal L [1] '
                     f'(colour scale clipped at ±{vmax:.1f})', shrink=0.9)
        fig.suptitle('Learning signals from the LSG, one per episode (red: L > 0, blue: L < 0)')
        figs['learning_signal.png'] = fig
    # 3) conductances of the crossbar at the end
    if state_file is not None and state_file.is_file():
        from l2l_nmhw_ros.pcm.crossbar import Crossbar

        n_in, n_rec, n_out = cfg.trainee.n_in, cfg.trainee.n_rec, cfg.trainee.n_out
        n_post = n_rec + cfg.pcm.readout_replicas * n_out  # the readout rows' copies
        xb = Crossbar.load(state_file, cfg.pcm, n_post=n_post, n_pre=n_in + n_rec)
        t_now = float(xb.t_prog.max())
        g = xb.conductances(t_now)
        fig, ax = plt.subplots(figsize=(7, 4.5), layout='constrained')
        bins = np.linspace(0.0, cfg.pcm.g_max, 51)
        for pol, name in ((0, 'G+'), (1, 'G-')):
            v = g[pol].ravel().numpy()
            ax.hist(v[v > 0], bins=bins, alpha=0.6, label=f'{name} (SET devices: '
                    f'{int((v > 0).sum())})')
        ax.set_yscale('log')
        ax.set_xlabel('conductance g(t) [µS]')
        ax.set_ylabel('devices [count]')
        ax.set_title('PCM crossbar after the demo (RESET devices at 0 µS not shown)')
        ax.legend()
        figs['conductance.png'] = fig
    return figs


def _plots(out: Path, cfg: C.L2LConfig, rows: list[dict[str, Any]], status: list, signals: list,
           demos: list, js_t: np.ndarray, js_q: np.ndarray, state_file: Path) -> list[str]:
    import matplotlib.pyplot as plt

    files = []
    for name, fig in make_figures(cfg, rows, status, signals, demos, js_t, js_q,
                                  state_file).items():
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(str(out / name))
    return files


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    say = _Out(args.json)
    try:
        s = run_demo(args.targets, args.seed, args.output, args.checkpoint,
                     args.real_time_factor, args.timeout, not args.no_plots, args.verbose, say,
                     viewer=args.viewer, viewer_port=args.viewer_port, hold=args.hold)
    except (RuntimeError, FileNotFoundError, C.ConfigError) as exc:
        print(f'demo failed: {exc}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(s, indent=2))
        return 0 if s['ok'] else 1
    say('')
    if s['episodes_ok']:
        def m(v: Any, fmt: str = '.3f') -> str:
            return 'n/a' if v is None else format(v, fmt)

        say(f"summary: error decreased after the one update for {s['improved']} of "
            f"{s['episodes_ok']} targets; median end-effector error "
            f"{m(s['median_error_no_update_m'])} m without update -> "
            f"{m(s['median_error_after_update_m'])} m after one update; mean "
            f"{m(s['mean_error_no_update_m'])} -> {m(s['mean_error_after_update_m'])} m")
        say(f"         devices programmed per update: {m(s['mean_devices_programmed'], '.0f')} "
            f"(mean); median adaptation latency {m(s['median_adaptation_latency_ms'], '.0f')} ms")
    say(f"output: {args.output}/ (episodes.mcap: {sum(s['bag_messages'].values())} messages; "
        f"{', '.join(Path(p).name for p in s.get('plots', []))}); wall time {s['wall_s']} s")
    for p in s['problems']:
        say(f'PROBLEM: {p}')
    return 0 if s['ok'] else 1
