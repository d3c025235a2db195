"""The controller's side of one reach episode (ROS-free core of ``snn_controller``).

One new reach target = one task = one episode:

1. **Reachability**: the trainee drives two joints (base, shoulder; elbow and wrist held at 0,
   paper code), so its workspace is a surface. :func:`~l2l_nmhw_ros.arm.kinematics.
   inverse_kinematics` finds the joint goal inside the URDF limits ∩ the task's safe ranges; a
   target farther than ``control.reach_tolerance`` from that surface is rejected with the distance.
2. **Demonstration**: the ``reach`` task for that goal, as the task family builds it
   (:func:`l2l_nmhw_ros.l2l.tasks.minimum_jerk`): q^t = q_home + (q_goal - q_home) s(t) over
   ``task.n_steps`` steps, omega^t = (q^t - q^{t-1}) / omega_scale, xyz^t = FK(q^t).
3. **Learning signal**: the LSG (software, float) on [clock, binary-coded xyz] -> L
   (time, n_signals).
4. **Evaluation** of an execution from measured joint positions: the measured path resampled at
   the playback times of the network steps, FK, then the mean end-effector distance to the
   demonstration (path error), the distance of the end-effector to the target at the end of the
   execution window (final error), and the joint RMS error on the learned joints.

Joint vectors are in command order (``arm.joints``); FK order (base_joint, shoulder, elbow,
pitch) is mapped by name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.arm.kinematics import (JOINT_NAMES, JointLimits, forward_kinematics,
                                         inverse_kinematics, jacobian, load_joint_limits,
                                         safe_limits)
from l2l_nmhw_ros.config import FK_JOINTS, L2LConfig, PCMConfig, from_dict, to_dict
from l2l_nmhw_ros.errors import CheckpointError, ConfigError, L2LError, ShapeError
from l2l_nmhw_ros.l2l import checkpoint
from l2l_nmhw_ros.l2l.checkpoint import target_code as checkpoint_target_code
from l2l_nmhw_ros.l2l.inner import compose_signal, lsg_inputs, n_learning_signals
from l2l_nmhw_ros.l2l.tasks import minimum_jerk
from l2l_nmhw_ros.share import find_share
from l2l_nmhw_ros.snn.lsg import run_lsg

__all__ = ['LEARNING_PCM_KEYS', 'NETWORK_PCM_KEYS', 'NETWORK_SECTIONS', 'ArmLimits',
           'Demonstration', 'Evaluation', 'LoadedCheckpoint', 'ReachPlanner',
           'UnreachableTarget', 'evaluate', 'load_checkpoint',
           'network_config', 'pcm_differences', 'planner_limits', 'random_reachable_targets',
           'resolve_checkpoint']

#: config sections that belong to the meta-learned network: taken from the checkpoint
NETWORK_SECTIONS = ('trainee', 'lsg', 'eprop', 'task')

#: pcm keys that belong to the network's layout on the crossbar (meta-trained with it): taken
#: from the checkpoint too; a checkpoint whose config lacks one was trained with its default
NETWORK_PCM_KEYS = ('readout_replicas',)

#: the joints the trainee's two readouts drive, in readout order (paper code: joints 0 and 1)


class UnreachableTarget(L2LError):
    """The target is farther than the tolerance from the trainee's workspace.

    Attributes:
        distance: from the target to the nearest reachable point [m].
        nearest: that point [m], (3,), or None when not known.
    """

    def __init__(self, target: np.ndarray, distance: float, tolerance: float,
                 nearest: np.ndarray | None = None) -> None:
        text = (f'target {np.round(target, 3).tolist()} m is {distance:.3f} m from the workspace '
                f'of the learned joints (tolerance {tolerance} m)')
        if nearest is not None:
            text += f'; nearest reachable point {np.round(nearest, 3).tolist()} m'
        super().__init__(text)
        self.distance = distance
        self.nearest = None if nearest is None else np.asarray(nearest, dtype=np.float64)


def resolve_checkpoint(path: str | Path = '') -> Path:
    """Return the checkpoint folder: ``path``, or the shipped ``checkpoints/default`` when empty.

    The default is looked up in the package share (ament index), then in the source tree.

    Raises:
        CheckpointError: the folder does not exist.
    """
    if str(path):
        p = Path(path).expanduser()
        if not p.is_dir():
            raise CheckpointError(f'checkpoint folder not found: {p}')
        return p
    try:
        return find_share('checkpoints/default', directory=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f'the shipped checkpoint checkpoints/default: {exc}') from exc


#: pcm keys that shape what the meta-learned weights expect of the update and the devices: a
#: deployment that differs from the checkpoint's training config in one of them works, but its
#: errors are not the model card's (e.g. rounding to nearest raises the shipped checkpoint's PCM
#: xyz error after the update by ~20 %).
LEARNING_PCM_KEYS = ('preset', 'drift', 'stochastic_rounding', 'delta_w_step', 'w_max')


def pcm_differences(cfg: L2LConfig, metadata: Mapping[str, Any]) -> list[str]:
    """Return ``pcm.key: ours -> checkpoint`` for the :data:`LEARNING_PCM_KEYS` that differ.

    The pcm section is the deployment's (hardware), not taken from the checkpoint
    (:func:`network_config`); ``pcm_accelerator`` logs these differences as a warning. Empty
    when the metadata has no config.
    """
    ck = metadata.get('config') if isinstance(metadata, Mapping) else None
    ck_pcm = ck.get('pcm') if isinstance(ck, Mapping) else None
    if not isinstance(ck_pcm, Mapping):
        return []
    ours = to_dict(cfg)['pcm']
    return [f'pcm.{k}: {ours[k]!r} -> {ck_pcm[k]!r}' for k in LEARNING_PCM_KEYS
            if k in ck_pcm and ck_pcm[k] != ours[k]]


def network_config(cfg: L2LConfig, metadata: Mapping[str, Any]) -> tuple[L2LConfig, list[str]]:
    """Return ``cfg`` with the network sections (:data:`NETWORK_SECTIONS`) of the checkpoint.

    Meta-learned weights only work with the neuron, LSG, e-prop and task values they were trained
    with (sizes included: a checkpoint may use a smaller LSG), so those come from the checkpoint's
    ``metadata['config']``, and so does the readout's layout on the crossbar
    (:data:`NETWORK_PCM_KEYS`: ``pcm.readout_replicas``, 1 when the checkpoint does not record
    it); the rest of the hardware (pcm), arm and control sections stay the caller's.

    Returns:
        (config, differences as ``section.key: ours -> checkpoint``); unchanged when the
        metadata has no config.

    Raises:
        CheckpointError: the checkpoint's config is invalid for this code, or has an lsg
            section without a valid ``target_code``.
    """
    ck = metadata.get('config') if isinstance(metadata, Mapping) else None
    if not isinstance(ck, Mapping):
        return cfg, []
    if 'lsg' in ck:
        checkpoint_target_code(dict(metadata))  # the LSG's code is never a silent default
    ours = to_dict(cfg)
    merged = dict(ours)
    diffs = []
    for sec in NETWORK_SECTIONS:
        if sec not in ck:
            continue
        merged[sec] = {**ours[sec], **{k: v for k, v in ck[sec].items() if k in ours[sec]}}
        if sec == 'task' and 'learned_joints' not in ck[sec]:
            # recorded since task.learned_joints exists; before, the readouts were the first
            # n_out FK joints (the checkpoint's weights say how many), never our default
            n_out = ck.get('trainee', {}).get('n_out', len(ours['task']['learned_joints']))
            merged[sec]['learned_joints'] = list(FK_JOINTS[:n_out])
        for k, v in merged[sec].items():
            a = ours[sec][k]
            same = (math.isclose(a, v, rel_tol=1e-12) if isinstance(a, float) and
                    isinstance(v, float) else a == v)
            if not same:
                diffs.append(f'{sec}.{k}: {a!r} -> {v!r}')
    ck_pcm = ck.get('pcm')
    if isinstance(ck_pcm, Mapping):
        merged['pcm'] = dict(ours['pcm'])
        for k in NETWORK_PCM_KEYS:
            v = ck_pcm.get(k, getattr(PCMConfig(), k))
            if v != ours['pcm'][k]:
                diffs.append(f'pcm.{k}: {ours["pcm"][k]!r} -> {v!r}')
            merged['pcm'][k] = v
    try:
        return from_dict(merged), diffs
    except ConfigError as exc:
        raise CheckpointError(f'checkpoint config not usable: {exc}') from exc


@dataclasses.dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint as a node deploys it.

    Attributes:
        path: the checkpoint folder.
        cfg: the caller's configuration with the checkpoint's network sections
            (:func:`network_config`).
        weights: the checkpoint's arrays (``trainee.*``, ``lsg.*``).
        metadata: its metadata (``config``, ...).
        network_differences: ``section.key: ours -> checkpoint`` for the network values the
            checkpoint replaced.
        pcm_differences: :func:`pcm_differences` (the deployment's pcm section is kept).
    """

    path: Path
    cfg: L2LConfig
    weights: Mapping[str, Any]
    metadata: Mapping[str, Any]
    network_differences: list[str]
    pcm_differences: list[str]


def load_checkpoint(cfg: L2LConfig, logger: Any = None) -> LoadedCheckpoint:
    """Load the checkpoint of ``cfg.control.checkpoint`` (empty: the shipped one) for deployment.

    With a `logger`, the network values the checkpoint sets are logged (info).

    Raises:
        CheckpointError: folder missing, unreadable, or its config unusable with this code.
    """
    path = resolve_checkpoint(cfg.control.checkpoint)
    weights, meta = checkpoint.load(path)
    merged, diffs = network_config(cfg, meta)
    if logger is not None and diffs:
        logger.info('network sections from the checkpoint: ' + '; '.join(diffs))
    return LoadedCheckpoint(path=path, cfg=merged, weights=weights, metadata=meta,
                            network_differences=diffs,
                            pcm_differences=pcm_differences(merged, meta))


def joint_index(joints: Sequence[str],
                learned: Sequence[str]) -> tuple[list[int], list[int]]:
    """Return (FK order -> command index, learned joints -> command index).

    Args:
        joints: the commanded joints (``arm.joints``).
        learned: the joints the trainee drives (``task.learned_joints``, from the checkpoint).

    Raises:
        ConfigError: a needed joint is missing from ``joints``.
    """
    missing = [n for n in JOINT_NAMES if n not in joints]
    if missing:
        raise ConfigError(f'arm.joints: {list(joints)} lacks {missing}')
    return [list(joints).index(n) for n in JOINT_NAMES], [list(joints).index(n)
                                                          for n in learned]


@dataclasses.dataclass(frozen=True)
class ArmLimits:
    """Joint limits in ``arm.joints`` order, for the checks at the graph's inputs and outputs.

    Attributes:
        joints: the joint names (``arm.joints``).
        lower, upper: the URDF limits [rad], (n_joints,): a measured position more than
            ``margin`` outside them is an impossible reading.
        safe_lower, safe_upper: the URDF limits narrowed to the paper code's safe ranges
            (:func:`~l2l_nmhw_ros.arm.kinematics.safe_limits`) [rad]: every command stays inside.
        margin: tolerance of a measurement beyond the URDF limits [rad].
    """

    joints: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    safe_lower: np.ndarray
    safe_upper: np.ndarray
    margin: float

    @classmethod
    def from_config(cls, cfg: L2LConfig) -> ArmLimits:
        """The limits of ``cfg.arm.urdf`` (empty: the package's URDF) for ``cfg.arm.joints``
        with margin ``cfg.control.joint_state_margin``.

        Raises:
            ConfigError: a joint of ``arm.joints`` is not in the URDF.
        """
        urdf = load_joint_limits(cfg.arm.urdf or None)
        safe = safe_limits(urdf)
        try:
            idx = [urdf.index(n) for n in cfg.arm.joints]
        except ValueError as exc:
            raise ConfigError(f'arm.joints: {exc}') from None
        return cls(tuple(cfg.arm.joints), urdf.lower[idx], urdf.upper[idx], safe.lower[idx],
                   safe.upper[idx], float(cfg.control.joint_state_margin))

    def check_measurement(self, q: np.ndarray) -> np.ndarray:
        """Return ``q`` [rad] (n_joints,) as float64 when it is a possible reading.

        Raises:
            ValueError: wrong length, not finite, or outside the URDF limits by more than
                ``margin`` (naming the joint and the value).
        """
        q = np.asarray(q, dtype=np.float64)
        if q.shape != self.lower.shape:
            raise ValueError(f'joint positions: expected {self.lower.shape[0]} values, got '
                             f'shape {q.shape}')
        if not np.isfinite(q).all():
            raise ValueError(f'joint positions not finite: {q.tolist()}')
        bad = (q < self.lower - self.margin) | (q > self.upper + self.margin)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(f'joint {self.joints[j]} at {q[j]:.4g} rad is outside its limits '
                             f'[{self.lower[j]:.4g}, {self.upper[j]:.4g}] rad by more than '
                             f'{self.margin} rad: impossible reading, ignored')
        return q

    def clamp_command(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        """Return (``q`` clamped to the safe range, number of values that were outside)."""
        q = np.asarray(q, dtype=np.float64)
        out = np.clip(q, self.safe_lower, self.safe_upper)
        return out, int(np.count_nonzero(out != q))


@dataclasses.dataclass(frozen=True)
class Demonstration:
    """A reach demonstration (the task the trainee must adapt to).

    Attributes:
        target: requested end-effector position [m], (3,).
        q_goal: joint goal [rad], (n_joints,) in command order.
        ik_distance: distance of the target from the workspace [m].
        q: joint path [rad], (time, n_joints), command order; q[-1] = q_goal.
        omega: target readout (time, n_out) [integrator units].
        xyz: end-effector path [m], (time, 3).
    """

    target: np.ndarray
    q_goal: np.ndarray
    ik_distance: float
    q: np.ndarray
    omega: np.ndarray
    xyz: np.ndarray


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Errors of one execution.

    Attributes:
        path_error: mean end-effector distance to the demonstration over the trajectory [m].
        final_error: end-effector distance to the target at the end of the window [m].
        max_error: largest end-effector distance to the demonstration [m].
        joint_rmse: RMS joint error on the learned joints [rad].
        xyz: executed end-effector path at the network steps [m], (time, 3).
        q: executed joint path at the network steps [rad], (time, n_joints).
        q_final: last measured joint position in the window [rad], (n_joints,).
        moved: largest joint excursion in the window [rad].
        n_samples: joint-state samples in the window.
    """

    path_error: float
    final_error: float
    max_error: float
    joint_rmse: float
    xyz: np.ndarray
    q: np.ndarray
    q_final: np.ndarray
    moved: float
    n_samples: int


def planner_limits(cfg: L2LConfig, urdf: str | Path | None = None) -> JointLimits:
    """Where a demonstration may go: the URDF limits ∩ the paper's safe ranges ∩, for the
    learned joints, the task family's ranges (``task.joint_lo/hi``), in URDF order."""
    limits = safe_limits(load_joint_limits(urdf))
    lo, hi = limits.lower.copy(), limits.upper.copy()
    for j, name in enumerate(cfg.task.learned_joints):
        i = limits.index(name)
        lo[i] = max(lo[i], cfg.task.joint_lo[j])
        hi[i] = min(hi[i], cfg.task.joint_hi[j])
    return dataclasses.replace(limits, lower=lo, upper=hi)


def random_reachable_targets(cfg: L2LConfig, n: int, rng: np.random.Generator, *,
                             min_travel: float, urdf: str | Path | None = None) -> np.ndarray:
    """Draw ``n`` targets [m], (n, 3), uniformly from the set the learned joints can reach.

    The learned joints (``task.learned_joints``, the first k FK joints) are drawn uniformly in
    :func:`planner_limits`, the others stay at ``control.home``; a draw is kept with probability
    v(q) / v_max, v(q) = sqrt(det(J_k^T J_k)) the volume element of FK in the learned joints
    (J_k: the (3, k) columns of :func:`~l2l_nmhw_ros.arm.kinematics.jacobian`), so the end
    points are uniform in the reachable volume (k = 3) or surface (k = 2) instead of crowding
    where the arm is folded; and only when FK(q) is at least ``min_travel`` [m] from the home
    position. v_max is the largest v of 4096 uniform draws (the acceptance is clipped at 1).

    Raises:
        ValueError: ``n`` < 1, or no target found (``min_travel`` too large).
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    fk_idx, _ = joint_index(cfg.arm.joints, cfg.task.learned_joints)
    lim = planner_limits(cfg, urdf)
    k = len(cfg.task.learned_joints)
    cols = [JOINT_NAMES.index(j) for j in cfg.task.learned_joints]
    lo = np.array([lim.lower[lim.index(j)] for j in cfg.task.learned_joints])
    hi = np.array([lim.upper[lim.index(j)] for j in cfg.task.learned_joints])
    q_home = np.asarray(cfg.control.home, dtype=np.float64)[fk_idx]  # FK order
    p_home = forward_kinematics(q_home)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.tile(q_home, (m, 1))
        q[:, cols] = rng.uniform(lo, hi, size=(m, k))
        jk = jacobian(q)[:, :, cols]
        return q, np.sqrt(np.abs(np.linalg.det(np.swapaxes(jk, 1, 2) @ jk)))

    v_max = float(draw(4096)[1].max())
    out: list[np.ndarray] = []
    for _ in range(200):
        q, v = draw(max(64, 4 * n))
        p = forward_kinematics(q)
        keep = (rng.uniform(size=v.shape) * v_max < v) & (
            np.linalg.norm(p - p_home, axis=-1) >= min_travel)
        out.extend(p[keep])
        if len(out) >= n:
            return np.array(out[:n])
    raise ValueError(f'no reachable target at least {min_travel} m from home found')


class ReachPlanner:
    """Reachability, demonstrations and learning signals for reach targets.

    Args:
        cfg: whole configuration (task, lsg, trainee, arm, control sections used).
        lsg_weights: LSG weights ``w_in``, ``w_rec``, ``w_out`` (or ``lsg.*`` keys).
        urdf: URDF for the joint limits (default: the package's).
    """

    def __init__(self, cfg: L2LConfig, lsg_weights: Mapping[str, Any],
                 urdf: str | Path | None = None) -> None:
        self.cfg = cfg
        self.fk_idx, self.learned_idx = joint_index(cfg.arm.joints, cfg.task.learned_joints)
        if len(self.learned_idx) != cfg.trainee.n_out:
            raise ConfigError(f'trainee.n_out = {cfg.trainee.n_out} readouts, but '
                              f'{len(cfg.task.learned_joints)} task.learned_joints')
        self.lsg = {}
        for k in ('w_in', 'w_rec', 'w_out'):
            w = lsg_weights.get(f'lsg.{k}', lsg_weights.get(k))
            if w is None:
                raise CheckpointError(f'checkpoint: lsg.{k} missing')
            self.lsg[k] = torch.as_tensor(np.asarray(w, dtype=np.float32))
        if self.lsg['w_out'].shape[0] != n_learning_signals(cfg):
            raise ShapeError(f'lsg.w_out: expected ({n_learning_signals(cfg)}, n_lsg) '
                             f'(eprop.update_w_out={cfg.eprop.update_w_out}), got '
                             f'{tuple(self.lsg["w_out"].shape)}')
        self.limits = planner_limits(cfg, urdf)
        self.home = np.asarray(cfg.control.home, dtype=np.float64)
        if self.home.shape != (len(cfg.arm.joints),):
            raise ConfigError(f'control.home: expected {len(cfg.arm.joints)} values (arm.joints),'
                              f' got {self.home.shape[0]}')

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Forward kinematics of joint vectors in command order, (..., n_joints) -> (..., 3)."""
        return forward_kinematics(np.asarray(q, dtype=np.float64)[..., self.fk_idx])

    def plan(self, target: Any) -> Demonstration:
        """Build the demonstration that reaches ``target`` [m] from the home pose.

        Raises:
            ValueError: target not 3 finite numbers.
            UnreachableTarget: target too far from the workspace.
        """
        p = np.asarray(target, dtype=np.float64)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise ValueError(f'target: expected 3 finite coordinates [m], got {p.tolist()}')
        q0_fk = self.home[self.fk_idx]
        act = [JOINT_NAMES.index(n) for n in self.cfg.task.learned_joints]
        ik = inverse_kinematics(p, q0_fk, limits=self.limits, active_joints=act,
                                tol=self.cfg.control.reach_tolerance)
        if not ik.reachable:
            raise UnreachableTarget(p, ik.distance, self.cfg.control.reach_tolerance, ik.p)
        q_goal = self.home.copy()
        q_goal[self.fk_idx] = ik.q
        tc = self.cfg.task
        s = minimum_jerk(tc.n_steps)
        q = self.home[None, :] + s[:, None] * (q_goal - self.home)[None, :]
        q_prev = np.concatenate([self.home[None, :], q[:-1]], axis=0)
        omega = (q - q_prev)[:, self.learned_idx] / tc.omega_scale
        return Demonstration(target=p, q_goal=q_goal, ik_distance=float(ik.distance), q=q,
                             omega=omega, xyz=self.fk(q))

    def learning_signal(self, demo: Demonstration) -> np.ndarray:
        """Run the LSG on the demonstration; return L (time, n_signals) float32 (n_rec, plus
        n_out with ``eprop.update_w_out``; with ``eprop.readout_signal = error`` those n_out
        carry the demonstration's readout target y* = ``demo.omega``, from which the
        accelerator forms e-prop's output error: :func:`~l2l_nmhw_ros.l2l.inner.compose_signal`).
        """
        xyz = torch.as_tensor(demo.xyz, dtype=torch.float32)[:, None, :]
        omega = torch.as_tensor(demo.omega, dtype=torch.float32)
        with torch.no_grad():
            sig = run_lsg(self.lsg, lsg_inputs(self.cfg, xyz), self.cfg.lsg, dt=self.cfg.task.dt)
            sig = compose_signal(self.cfg, sig[:, 0, :], omega)
        return sig.numpy().astype(np.float32)


def evaluate(planner: ReachPlanner, demo: Demonstration, t: np.ndarray, q: np.ndarray,
             t_start: float, time_scale: float, t_end: float) -> Evaluation:
    """Evaluate an execution from measured joint states.

    Args:
        planner: for FK and the joint order.
        demo: the demonstration.
        t: sample times [s] (same clock as ``t_start``), (k,), increasing.
        q: measured joint positions [rad], (k, n_joints), command order.
        t_start: time the execution started (its first command).
        time_scale: playback scale of the execution (robot s per network s).
        t_end: end of the evaluation window (after the hold) [s].

    Raises:
        ValueError: fewer than 2 samples in [t_start, t_end].
    """
    t = np.asarray(t, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    win = (t >= t_start) & (t <= t_end)
    if int(win.sum()) < 2:
        raise ValueError(f'evaluate: {int(win.sum())} joint-state samples in the execution '
                         f'window [{t_start:.3f}, {t_end:.3f}] s; need at least 2')
    tw, qw = t[win], q[win]
    n_steps = demo.q.shape[0]
    grid = t_start + (np.arange(n_steps) + 1) * planner.cfg.task.dt * time_scale
    q_exec = np.stack([np.interp(grid, tw, qw[:, j]) for j in range(qw.shape[1])], axis=-1)
    xyz = planner.fk(q_exec)
    dist = np.linalg.norm(xyz - demo.xyz, axis=-1)
    q_final = qw[-1]
    final = float(np.linalg.norm(planner.fk(q_final) - demo.target))
    li = planner.learned_idx
    rmse = float(np.sqrt(np.mean((q_exec[:, li] - demo.q[:, li]) ** 2)))
    moved = float(np.max(np.abs(qw - qw[0]))) if len(qw) else 0.0
    return Evaluation(path_error=float(dist.mean()), final_error=final,
                      max_error=float(dist.max()), joint_rmse=rmse, xyz=xyz, q=q_exec,
                      q_final=q_final, moved=moved, n_samples=int(win.sum()))
