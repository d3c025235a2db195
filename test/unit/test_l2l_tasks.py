"""Task families: the paper's Brownian generator, reach paths, reference trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.arm.kinematics import forward_kinematics
from l2l_nmhw_ros.config import TaskConfig
from l2l_nmhw_ros.l2l import tasks as T


def test_brownian_statistics_match_paper_code() -> None:
    # paper-notes §2.2: omega SD ~ 0.70 (2000 samples). Our estimate from 400 tasks x 2 joints
    # is an average over 800 nearly independent smooth paths; its relative standard error is
    # about 1/sqrt(2 * 800 / (n_steps / window)) ~ 4 %, so +-12 % is a 3-sigma band.
    cfg = TaskConfig()
    tb = T.brownian(cfg, 400, np.random.default_rng(0))
    assert tb.omega.shape == (249, 400, 2)
    assert tb.xyz.shape == (249, 400, 3)
    assert float(tb.omega.std()) == pytest.approx(0.70, rel=0.12)
    assert float(tb.omega.abs().max()) <= float(np.float32(math.pi))  # clipped to pi (float32)
    lo, hi = torch.tensor(cfg.joint_lo), torch.tensor(cfg.joint_hi)
    assert bool(((tb.q >= lo - 1e-6) & (tb.q <= hi + 1e-6)).all())
    # angles are the clipped integral of omega, xyz their FK
    q = torch.clamp(cfg.omega_scale * torch.cumsum(tb.omega.double(), 0), lo, hi)
    assert torch.allclose(q.float(), tb.q, atol=1e-5)
    assert torch.allclose(forward_kinematics(tb.q.double()).float(), tb.xyz, atol=1e-5)


def test_brownian_is_seeded() -> None:
    a = T.brownian(TaskConfig(), 3, np.random.default_rng(5))
    b = T.brownian(TaskConfig(), 3, np.random.default_rng(5))
    c = T.brownian(TaskConfig(), 3, np.random.default_rng(6))
    assert torch.equal(a.omega, b.omega)
    assert not torch.equal(a.omega, c.omega)


def test_brownian_walk_and_smoothing_follow_the_paper_code() -> None:
    # the walk's first sample is the first increment (tf.scan), and the smoothing is a
    # cross-correlation (tf.nn.convolution does not flip the kernel): checked against
    # np.correlate on a hand-made asymmetric walk, and the generator's first sample against
    # the same random stream
    cfg = TaskConfig(n_steps=10, smoothing_window=4)
    walk = np.arange(1.0, 11.0)[None, :, None] ** 2
    w = T.hann_periodic(4)  # [0, .25, .5, .25]: its reversal is shifted by one sample
    padded = np.concatenate([np.zeros(3), walk[0, :, 0], walk[0, -3:, 0][::-1]])
    expect = np.correlate(padded, w, mode='valid')[2:12]
    assert T.smooth_hann(walk, 4)[0, :, 0] == pytest.approx(expect)
    assert expect[0] == pytest.approx(0.25 * 1 + 0.5 * 4 + 0.25 * 9)  # padded[2:6] . w
    assert not np.allclose(np.convolve(padded, w, mode='valid')[2:12], expect)
    tb = T.brownian(cfg, 2, np.random.default_rng(3))
    incr = np.random.default_rng(3).normal(0.0, 0.65 * 0.1, size=(2, 10, 2))
    omega = np.clip(T.smooth_hann(np.cumsum(incr, axis=1), 4), -math.pi, math.pi)
    assert tb.omega.numpy() == pytest.approx(np.swapaxes(omega, 0, 1).astype(np.float32))


def test_brownian_tasks_are_distributed_like_the_authors(shared_data) -> None:
    # the authors' generator (golden batch, 90 tasks, seed 1) against ours (900 tasks): SD of
    # omega over the first 20 steps, over the whole trial, and the share of tasks that reach
    # z >= 1 m. The golden SDs are estimates from 180 paths (relative SE ~ 10 %), the share
    # from 90 tasks (golden 23/90 = 0.26, binomial SE 0.046): bands of ~3 SE
    path = shared_data / 'rlimc_golden' / 'robot_seed1_software.npz'
    if not path.is_file():
        pytest.skip(f'golden traces not found at {path}')
    with np.load(path) as g:
        g_omega, g_xyz = g['omega_target'], g['xyz_target']
    tb = T.brownian(TaskConfig(), 900, np.random.default_rng(11))
    ours = tb.omega.numpy().swapaxes(0, 1)
    assert ours[:, :20].std() == pytest.approx(g_omega[:, :20].std(), rel=0.3)
    assert ours.std() == pytest.approx(g_omega.std(), rel=0.3)
    share = float((tb.xyz[..., 2].max(dim=0).values >= 1.0).double().mean())
    assert share == pytest.approx(float((g_xyz[..., 2].max(axis=1) >= 1.0).mean()), abs=0.14)


def test_hann_window_is_periodic_and_normalised() -> None:
    w = T.hann_periodic(4)  # periodic Hann of length 4: 0, 0.5, 1, 0.5 -> / 2
    assert w.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.25])


def test_reach_min_jerk_paths_end_at_goal_with_enough_travel() -> None:
    cfg = TaskConfig(reach_min_distance=0.3)
    tb = T.reach(cfg, 50, np.random.default_rng(1))
    goal = tb.q[-1]
    home = forward_kinematics(torch.zeros(2, dtype=torch.float64))
    travel = (forward_kinematics(goal.double()) - home).norm(dim=-1)
    assert float(travel.min()) >= 0.3
    # integrating omega from home reproduces the path; the path starts and ends at rest
    q_int = cfg.omega_scale * torch.cumsum(tb.omega.double(), 0)
    assert torch.allclose(q_int.float(), tb.q, atol=1e-5)
    assert float(tb.omega[0].abs().max()) < 1e-3
    assert float(tb.omega[-1].abs().max()) < 1e-3
    # minimum jerk: halfway through, s = 0.5 (symmetric profile), peak velocity 1.875 / T
    s = T.minimum_jerk(249)
    assert s[-1] == pytest.approx(1.0)
    assert s[123] == pytest.approx(0.5, abs=0.01)
    assert np.diff(s).max() == pytest.approx(1.875 / 249, rel=0.01)


def test_reference_family(shared_data) -> None:
    cfg = TaskConfig()
    trajs = T.load_reference(cfg, shared_data / 'ed_scorbot' / 'trajectories')
    assert len(trajs) >= 2
    assert all(q.shape == (249, 2) for _, q in trajs)
    tb = T.reference(cfg, 4, np.random.default_rng(0),
                     data_dir=shared_data / 'ed_scorbot' / 'trajectories')
    q_int = tb.q0 + cfg.omega_scale * torch.cumsum(tb.omega.double(), 0)
    assert torch.allclose(q_int.float(), tb.q, atol=1e-5)
    assert set(tb.family) == {'reference'}


def test_reference_family_absent_raises_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='joints_degrees.json'):
        T.reference(TaskConfig(), 2, np.random.default_rng(0), data_dir=tmp_path)


def test_mixed_batch_and_bad_family() -> None:
    tb = T.sample_mixed(('reach', 'brownian'), TaskConfig(), 5, np.random.default_rng(0))
    assert tb.family == ('reach',) * 3 + ('brownian',) * 2
    with pytest.raises(ValueError, match='family'):
        T.make_tasks('nope', TaskConfig(), 2, np.random.default_rng(0))


def test_three_learned_joints_tasks_and_validation() -> None:
    # task.learned_joints = the first k FK joints: reach goals in the 3 ranges, FK of 3 joints
    from l2l_nmhw_ros.config import ConfigError

    cfg = TaskConfig(learned_joints=('base_joint', 'shoulder', 'elbow'),
                     joint_lo=(-2.0, -1.2, -1.5), joint_hi=(2.0, 1.2, 1.5),
                     reach_min_distance=0.1)
    tb = T.reach(cfg, 64, np.random.default_rng(2))
    assert tb.q.shape == (249, 64, 3) and tb.omega.shape == (249, 64, 3)
    goal = tb.q[-1].double()
    assert bool((goal.abs() <= torch.tensor([2.0, 1.2, 1.5], dtype=torch.float64)).all())
    assert float(goal[:, 2].abs().max()) > 0.5  # the elbow moves
    np.testing.assert_allclose(tb.xyz[-1].numpy(), forward_kinematics(goal.numpy()), atol=1e-5)
    travel = (tb.xyz[-1] - torch.as_tensor(forward_kinematics(np.zeros(3)), dtype=torch.float32))
    assert float(travel.norm(dim=-1).min()) >= 0.1 - 1e-6
    b = T.brownian(cfg, 4, np.random.default_rng(2))
    assert b.omega.shape == (249, 4, 3) and b.q0.shape == (4, 3)
    with pytest.raises(ConfigError, match='first k'):
        TaskConfig(learned_joints=('base_joint', 'elbow'))
    with pytest.raises(ConfigError, match='one bound per learned joint'):
        TaskConfig(learned_joints=('base_joint', 'shoulder', 'elbow'))
