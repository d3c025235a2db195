"""Task families: what one "task" (one target trajectory of the learned joints) is.

All generators are seeded through a ``numpy.random.Generator`` and return a :class:`TaskBatch` of
torch tensors, sequences time-major (time, batch, n). The trainee's readout is the joint angular
velocity omega (units of the paper code's integrator); joint angles follow
q^t = q0 + omega_scale * sum_{s<=t} omega^s (paper code: q0 = 0, omega_scale = 0.01), and the
Cartesian target is the forward kinematics of q
(:func:`l2l_nmhw_ros.arm.kinematics.forward_kinematics` of the ``task.learned_joints``, the first
k of base, shoulder, elbow, pitch; the others at 0. Paper: k = 2, base and shoulder).

Families:
- ``brownian``: the paper code's smoothed Brownian joint velocities
  (``datasets/trajectories.py::BrownianTrajectoriesScorbot``).
- ``reach``: a minimum-jerk joint path from the home pose q = 0 to a joint configuration drawn
  uniformly in the safe ranges, whose end-effector travel is at least ``reach_min_distance``.
- ``reference``: the real ED-Scorbot's recorded square and lemniscate trajectories (joints 1-2),
  resampled to ``n_steps`` (needs ``../shared/data/ed_scorbot``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import fftconvolve

from l2l_nmhw_ros.arm.kinematics import forward_kinematics
from l2l_nmhw_ros.config import TaskConfig

__all__ = ['FAMILIES', 'TaskBatch', 'brownian', 'default_reference_dir', 'make_tasks', 'reach',
           'integrate_omega', 'reference', 'sample_mixed', 'smooth_hann']

FAMILIES = ('reach', 'brownian', 'reference')
# Safety cap on rejection-sampling rounds of `reach` (each round draws the whole batch again).
_REACH_MAX_ROUNDS = 1000


@dataclass(frozen=True)
class TaskBatch:
    """A batch of target trajectories (k = number of learned joints).

    Attributes:
        omega: target joint angular velocities (time, batch, k) [integrator units].
        q: target joint angles (time, batch, k) [rad].
        xyz: target end-effector positions (time, batch, 3) [m].
        q0: start angles (batch, k) [rad] (0 = home, except for ``reference``).
        family: family name per task (tuple of length batch).
    """

    omega: torch.Tensor
    q: torch.Tensor
    xyz: torch.Tensor
    q0: torch.Tensor
    family: tuple[str, ...]

    @property
    def batch(self) -> int:
        """Number of tasks."""
        return int(self.omega.shape[1])

    def subset(self, start: int, stop: int) -> TaskBatch:
        """Return tasks start .. stop - 1 as a new batch."""
        return TaskBatch(self.omega[:, start:stop], self.q[:, start:stop],
                         self.xyz[:, start:stop], self.q0[start:stop], self.family[start:stop])


def _pack(omega: np.ndarray, q: np.ndarray, q0: np.ndarray, family: str,
          dtype: torch.dtype) -> TaskBatch:
    # omega, q: (batch, time, k) float64 -> time-major tensors
    xyz = forward_kinematics(q)
    def tm(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(np.swapaxes(a, 0, 1)), dtype=dtype)
    return TaskBatch(tm(omega), tm(q), tm(xyz), torch.as_tensor(q0, dtype=dtype),
                     (family,) * omega.shape[0])


def _limits(cfg: TaskConfig) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(cfg.joint_lo), np.asarray(cfg.joint_hi)


def n_learned(cfg: TaskConfig) -> int:
    """Number of learned joints (``task.learned_joints``; paper: 2, base and shoulder)."""
    return len(cfg.learned_joints)


def integrate_omega(omega: Any, q0: Any, omega_scale: float, *, axis: int = 0) -> Any:
    """The paper code's integrator: q^t = q0 + omega_scale sum_{s<=t} omega^s.

    Args:
        omega: joint angular velocities [integrator units], numpy array or torch tensor, time
            along `axis`.
        q0: start angles [rad], broadcastable against one time step of `omega` (0 for home).
        omega_scale: rad per step per unit (``task.omega_scale``, paper: 0.01).
        axis: the time axis.

    Returns:
        q [rad], same shape and library as `omega` (differentiable for tensors).
    """
    if isinstance(omega, torch.Tensor):
        return q0 + omega_scale * torch.cumsum(omega, dim=axis)
    return np.asarray(q0) + omega_scale * np.cumsum(omega, axis=axis)


def hann_periodic(n: int) -> np.ndarray:
    """Return the normalised periodic Hann window of length `n` (TF ``hann_window`` default)."""
    k = np.arange(n)
    w = 0.5 - 0.5 * np.cos(2.0 * math.pi * k / n)
    return w / w.sum()


def smooth_hann(walk: np.ndarray, n_win: int) -> np.ndarray:
    """Smooth random walks as the paper code does (``tf.nn.convolution`` with a Hann window).

    Per sequence: front pad with ``n_win - 1`` zeros, back pad with the last ``n_win - 1`` samples
    reversed, cross-correlate ('valid'; ``tf.nn.convolution`` does not flip the kernel) with the
    normalised periodic Hann window (:func:`hann_periodic`), keep samples
    ``n_win // 2 .. n_win // 2 + n_steps - 1``.

    Args:
        walk: (batch, n_steps, n) sequences.
        n_win: window length (paper: 120), at most n_steps + 1.

    Returns:
        (batch, n_steps, n) smoothed sequences (float64).
    """
    batch, n_steps, n = walk.shape
    pad = n_win - 1
    padded = np.concatenate([np.zeros((batch, pad, n)), walk,
                             walk[:, -pad:, :][:, ::-1, :] if pad else walk[:, :0]], axis=1)
    kernel = hann_periodic(n_win)[::-1]  # convolving with the reversed window = correlation
    smooth = fftconvolve(padded, kernel[None, :, None], mode='valid', axes=1)
    start = n_win // 2
    return smooth[:, start:start + n_steps, :]


def brownian(cfg: TaskConfig, batch: int, rng: np.random.Generator, *,
             dtype: torch.dtype = torch.float32) -> TaskBatch:
    """Return `batch` tasks of the paper code's smoothed-Brownian family.

    Per task and joint, as ``datasets/trajectories.py::BrownianTrajectoriesScorbot``: a random
    walk of ``n_steps`` samples whose first sample is the first increment (``tf.scan``),
    increments N(0, (delta sqrt(dt_b))^2); smoothed by :func:`smooth_hann` (cross-correlation
    with a periodic Hann window of length N, as ``tf.nn.convolution``); omega clipped to
    [-pi, pi]; angles q = omega_scale cumsum(omega) clipped to the safe ranges (omega is not
    corrected for that clip, as in the paper code); xyz = FK(q) (float64, then `dtype`; the
    paper code's kinematics are float32, which matters only to the last bit of a ``paper``
    target code).
    The random numbers come from numpy (the authors' from TensorFlow), so the tasks are of the
    same distribution, not the same draws.

    Raises:
        ValueError: if `batch` < 1 or the window is longer than n_steps + 1.
    """
    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    n_steps, n_win = cfg.n_steps, cfg.smoothing_window
    if n_win - 1 > n_steps:
        raise ValueError(f'task.smoothing_window = {n_win} needs n_steps >= {n_win - 1}')
    sd = cfg.brownian_delta * math.sqrt(cfg.brownian_dt)
    k = n_learned(cfg)
    walk = np.cumsum(rng.normal(0.0, sd, size=(batch, n_steps, k)), axis=1)
    omega = np.clip(smooth_hann(walk, n_win), -math.pi, math.pi)
    lo, hi = _limits(cfg)
    q = np.clip(integrate_omega(omega, 0.0, cfg.omega_scale, axis=1), lo, hi)
    return _pack(omega, q, np.zeros((batch, k)), 'brownian', dtype)


def minimum_jerk(n_steps: int) -> np.ndarray:
    """Return the minimum-jerk profile s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 at
    tau = (t + 1) / n_steps, t = 0 .. n_steps - 1 (so s = 1 at the last step), shape (n_steps,)."""
    tau = np.arange(1, n_steps + 1) / n_steps
    return tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)


def reach(cfg: TaskConfig, batch: int, rng: np.random.Generator, *,
          dtype: torch.dtype = torch.float32) -> TaskBatch:
    """Return `batch` reach tasks: minimum-jerk joint paths from home (q = 0) to a goal.

    Goals are uniform in the safe ranges (``joint_lo`` .. ``joint_hi``), redrawn until the
    end-effector travel |FK(q_goal) - FK(0)| >= ``reach_min_distance``. q^t = q_goal s(t)
    (:func:`minimum_jerk`); omega^t = (q^t - q^{t-1}) / omega_scale with q^{-1} = 0, so the
    integrator reproduces q exactly.

    Raises:
        ValueError: if `batch` < 1 or ``omega_scale`` is 0.
        RuntimeError: if no goal far enough is found (reach_min_distance too large).
    """
    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    if cfg.omega_scale <= 0:
        raise ValueError('task.omega_scale must be > 0 for reach tasks')
    lo, hi = _limits(cfg)
    k = n_learned(cfg)
    home = forward_kinematics(np.zeros(k))
    goals = np.empty((batch, k))
    todo = np.arange(batch)
    for _ in range(_REACH_MAX_ROUNDS):
        cand = rng.uniform(lo, hi, size=(todo.size, k))
        ok = np.linalg.norm(forward_kinematics(cand) - home, axis=-1) >= cfg.reach_min_distance
        goals[todo[ok]] = cand[ok]
        todo = todo[~ok]
        if todo.size == 0:
            break
    else:
        raise RuntimeError(f'reach: no goal with travel >= {cfg.reach_min_distance} m found')
    s = minimum_jerk(cfg.n_steps)
    q = goals[:, None, :] * s[None, :, None]
    q_prev = np.concatenate([np.zeros((batch, 1, k)), q[:, :-1]], axis=1)
    omega = (q - q_prev) / cfg.omega_scale
    return _pack(omega, q, np.zeros((batch, k)), 'reach', dtype)


def default_reference_dir() -> Path:
    """Return ``<repo>/../shared/data/ed_scorbot/trajectories`` (the project's reference data)."""
    return Path(__file__).resolve().parents[2].parent / 'shared' / 'data' / 'ed_scorbot' / \
        'trajectories'


def load_reference(cfg: TaskConfig, data_dir: str | Path | None = None) -> list[tuple[str,
                                                                                       np.ndarray]]:
    """Return [(name, q (n_steps, k) rad)] of the recorded ED-Scorbot trajectories, resampled.

    Reads ``<data_dir>/*/joints_degrees.json`` (lists of 7 joint angles in degrees per point;
    the first k = len(``learned_joints``) used), converts to rad and resamples linearly over the
    point index to n_steps.

    Raises:
        FileNotFoundError: if the folder or its trajectories are absent.
    """
    k = n_learned(cfg)
    root = Path(data_dir) if data_dir is not None else default_reference_dir()
    files = sorted(root.glob('*/joints_degrees.json')) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f'reference task family: no */joints_degrees.json under {root} (the ED-Scorbot '
            'reference trajectories live in ../shared/data/ed_scorbot/trajectories; pass '
            'data_dir or use the reach/brownian families)')
    out = []
    for f in files:
        pts = np.asarray(json.loads(f.read_text(encoding='utf-8')), dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] < k or len(pts) < 2:
            raise ValueError(f'{f}: expected a list of joint-angle lists, got shape {pts.shape}')
        q = np.deg2rad(pts[:, :k])
        src = np.linspace(0.0, len(q) - 1.0, cfg.n_steps)
        idx = np.arange(len(q))
        out.append((f.parent.name, np.stack([np.interp(src, idx, q[:, j])
                                             for j in range(k)], axis=-1)))
    return out


def reference(cfg: TaskConfig, batch: int, rng: np.random.Generator, *,
              dtype: torch.dtype = torch.float32,
              data_dir: str | Path | None = None) -> TaskBatch:
    """Return `batch` tasks drawn (uniformly, with replacement) from the recorded trajectories.

    q0 = the trajectory's first point; omega^0 = 0 and omega^t = (q^t - q^{t-1}) / omega_scale.

    Raises:
        FileNotFoundError: if the reference data are absent (see :func:`load_reference`).
    """
    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    trajs = load_reference(cfg, data_dir)
    pick = rng.integers(0, len(trajs), size=batch)
    q = np.stack([trajs[i][1] for i in pick])  # (batch, time, k)
    omega = np.concatenate([np.zeros((batch, 1, q.shape[-1])), np.diff(q, axis=1)],
                           axis=1) / cfg.omega_scale
    return _pack(omega, q, q[:, 0, :], 'reference', dtype)


_GENERATORS = {'reach': reach, 'brownian': brownian, 'reference': reference}


def make_tasks(family: str, cfg: TaskConfig, batch: int, rng: np.random.Generator, *,
               dtype: torch.dtype = torch.float32) -> TaskBatch:
    """Return `batch` tasks of `family` (one of :data:`FAMILIES`).

    Raises:
        ValueError: unknown family.
    """
    if family not in _GENERATORS:
        raise ValueError(f'family: expected one of {list(FAMILIES)}, got {family!r}')
    return _GENERATORS[family](cfg, batch, rng, dtype=dtype)


def sample_mixed(families: tuple[str, ...] | list[str], cfg: TaskConfig, batch: int,
                 rng: np.random.Generator, *, dtype: torch.dtype = torch.float32) -> TaskBatch:
    """Return `batch` tasks split as evenly as possible over `families` (concatenated in order)."""
    if not families:
        raise ValueError('families: at least one family')
    sizes = [batch // len(families) + (i < batch % len(families)) for i in range(len(families))]
    parts = [make_tasks(f, cfg, n, rng, dtype=dtype) for f, n in zip(families, sizes, strict=True)
             if n]
    if len(parts) == 1:
        return parts[0]
    return TaskBatch(torch.cat([p.omega for p in parts], 1), torch.cat([p.q for p in parts], 1),
                     torch.cat([p.xyz for p in parts], 1), torch.cat([p.q0 for p in parts], 0),
                     sum((p.family for p in parts), ()))
