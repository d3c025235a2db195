"""The real graph end to end: `l2l-nmhw demo --json`, shipped checkpoint, simulated arm.

Separate processes (the package's launcher starts pcm_accelerator, snn_controller and arm_sim),
DDS on loopback in this session's own domain (test/conftest.py), seeded targets. Asserts: every
node came up, the arm moved, after ONE on-chip update the end-effector error decreased for at
least 80 % of the targets, the median final error is below MEDIAN_FINAL_ERROR_BOUND, the graph
shut down cleanly (every node exit status 0), and the bag holds every recorded topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l2l_nmhw_ros.reach.episode import resolve_checkpoint

N_TARGETS = 5
SEED = 1
#: median end-effector distance to the target after the one update [m]. Measured with the shipped
#: checkpoint (three learned joints, 25 clock neurons, the readout learning from the
#: demonstration's error on 8 crossbar copies, omega_scale 0.0005, iteration 4750) on these
#: seeded targets (drawn uniformly from the reachable volume): 0.023 m (0.950 m without the
#: update; 5 of 5 improved; 20 targets of the same seed: 0.018 m). The readouts are deterministic
#: (seeded crossbar, same commands every run); only the arm simulation's wall-clock ticks vary
#: the measured end point (by millimetres in repeated runs), so the bound leaves ~0.06 m for the
#: arm; without the update it is ~0.9 m. (Earlier defaults: 0.038 m, bound 0.10 m; 0.079 m,
#: bound 0.15 m; 0.121 m, bound 0.25 m; the two-joint checkpoint: 0.323 m, 0.45 m.)
MEDIAN_FINAL_ERROR_BOUND = 0.08
#: share of targets whose error must decrease after the update (the issue's 80 %)
IMPROVED_SHARE = 0.8


@pytest.fixture(scope='module')
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, int]:
    try:
        ckpt = resolve_checkpoint('')
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f'shipped checkpoint missing: {exc}')
    out = tmp_path_factory.mktemp('demo')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'l2l_nmhw_ros.cli', 'demo', '--json', '--targets', str(N_TARGETS),
         '--seed', str(SEED), '--output', str(out), '--checkpoint', str(ckpt)],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout), out, proc.returncode


def test_every_node_came_up_and_shut_down_cleanly(demo) -> None:
    s, out, rc = demo
    assert s['problems'] == [], s['problems']
    assert rc == 0
    assert s['exit_codes'] == {'pcm_accelerator': 0, 'snn_controller': 0, 'arm_sim': 0}
    assert s['graph_up_s'] > 0
    assert s['episodes_ok'] == N_TARGETS


def test_the_arm_moved(demo) -> None:
    s, _, _ = demo
    for r in s['rows']:
        assert r['arm_moved_rad'] > 0.05, r
        assert r['devices_programmed'] > 0, r
        assert r['devices_restored'] > 0, r


def test_one_update_reduces_the_error(demo) -> None:
    s, _, _ = demo
    rows = s['rows']
    improved = sum(r['error_after_update_m'] < r['error_no_update_m'] for r in rows)
    assert improved >= IMPROVED_SHARE * len(rows), rows
    assert s['median_error_after_update_m'] < MEDIAN_FINAL_ERROR_BOUND, rows


def test_outputs_bag_and_plots(demo) -> None:
    from mcap.reader import make_reader

    s, out, _ = demo
    for name in ('paths.png', 'joints.png', 'learning_signal.png', 'conductance.png',
                 'summary.json', 'pcm_state.safetensors'):
        assert (out / name).is_file(), name
    with open(out / 'episodes.mcap', 'rb') as fh:
        summary = make_reader(fh).get_summary()
    counts = {summary.channels[cid].topic: n
              for cid, n in summary.statistics.channel_message_counts.items()}
    assert counts['/snn_controller/result'] == N_TARGETS
    # one per episode, plus the controller's re-sends of a signal DDS lost (signal_sends > 1)
    assert counts['/pcm_accelerator/learning_signal'] == sum(r['signal_sends'] for r in s['rows'])
    assert all(r['signal_sends'] >= 1 for r in s['rows'])
    assert counts['/joint_states'] > 100
    assert counts['/forward_position_controller/commands'] > 100
    assert s['bag_messages'] == counts


def test_the_arm_never_left_its_limits(demo) -> None:
    """Every command the accelerator streamed lies in the safe joint range and every measured
    joint state within the URDF limits (PyBullet's joint limit is soft: 1e-3 rad)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.reach.episode import ArmLimits

    _, out, _ = demo
    lim = ArmLimits.from_config(C.L2LConfig())
    n_cmd = n_js = 0
    with open(out / 'episodes.mcap', 'rb') as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for _, channel, _, msg in reader.iter_decoded_messages(
                topics=['/forward_position_controller/commands', '/joint_states']):
            if channel.topic == '/joint_states':
                q = np.array([msg.position[list(msg.name).index(j)] for j in lim.joints])
                lo, hi, tol = lim.lower, lim.upper, 1e-3
                n_js += 1
            else:
                q, lo, hi, tol = np.asarray(msg.data), lim.safe_lower, lim.safe_upper, 1e-12
                n_cmd += 1
            assert (q >= lo - tol).all() and (q <= hi + tol).all(), (channel.topic, q)
    assert n_cmd > 100 and n_js > 100
