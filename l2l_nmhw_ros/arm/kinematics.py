"""ED-Scorbot kinematics: forward kinematics (the paper code's), joint limits, inverse kinematics.

Source: Ortner et al. 2025, official code ``online_learning_robot/module/scorbot.py``
(``direct_kinematics``), rewritten in closed form. Lengths in metres. With the paper code's sign
convention theta1 = -q1, theta2 = -q2, theta3 = -q3, theta4 = q4:

    r = a1 + a2 cos th2 + a3 cos(th2 + th3) + a4 cos(th2 + th3 + th4)
    x = r cos th1 - (d2 + d3) sin th1
    y = r sin th1 + (d2 + d3) cos th1
    z = d1 - a2 sin th2 - a3 sin(th2 + th3) - a4 sin(th2 + th3 + th4)

At q = 0: (x, y, z) = (0.920, -0.033, 0.3585) m. The same function works on numpy arrays and on
torch tensors (differentiable; used inside the meta-training loss).

``urdf/ed_scorbot.urdf`` is built so that its ``end_effector_link`` origin is exactly this point
(tested against PyBullet to 1e-6 m). Joint limits are read from that URDF
(:func:`load_joint_limits`), the paper code's safe ranges are :data:`SAFE_RANGES`, and
:func:`inverse_kinematics` solves FK(q) = p_target numerically inside the limits (with the
closed-form :func:`jacobian`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from l2l_nmhw_ros.config import FK_JOINTS
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.share import find_share

# Link lengths [m] of the paper code's Scorbot class.
D1 = 0.3585
A1 = 0.050
A2 = 0.300
A3 = 0.350
A4 = 0.220
D2 = -0.098
D3 = 0.065

N_JOINTS = 4


def _lib(q: Any) -> Any:
    # a torch tensor implies torch is imported already: do not import it here (seconds, and
    # the ROS drivers never need it)
    torch = sys.modules.get('torch')
    if torch is not None and isinstance(q, torch.Tensor):
        return torch
    return np


def forward_kinematics(q: Any) -> Any:
    """Return the end-effector position of the ED-Scorbot.

    Args:
        q: joint positions [rad], shape (..., k) with k in 1..4 (base, shoulder, elbow, wrist
            pitch); missing trailing joints are 0. numpy array or torch tensor.

    Returns:
        End-effector position [m] in the base frame, shape (..., 3), same library and dtype as `q`.

    Raises:
        ShapeError: if the last axis of `q` is not in 1..4.
    """
    lib = _lib(q)
    if lib is np:
        q = np.asarray(q, dtype=np.float64)
    k = q.shape[-1] if q.ndim else 0
    if not 1 <= k <= N_JOINTS:
        raise ShapeError(f'q: expected shape (..., 1..4), got {tuple(q.shape)}')
    zeros = q[..., 0] * 0
    qs = [q[..., i] if i < k else zeros for i in range(N_JOINTS)]
    th1, th2, th3, th4 = -qs[0], -qs[1], -qs[2], qs[3]
    s23 = th2 + th3
    s234 = s23 + th4
    r = A1 + A2 * lib.cos(th2) + A3 * lib.cos(s23) + A4 * lib.cos(s234)
    x = r * lib.cos(th1) - (D2 + D3) * lib.sin(th1)
    y = r * lib.sin(th1) + (D2 + D3) * lib.cos(th1)
    z = D1 - A2 * lib.sin(th2) - A3 * lib.sin(s23) - A4 * lib.sin(s234)
    return lib.stack([x, y, z], -1) if lib is not np else np.stack([x, y, z], axis=-1)


def jacobian(q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return d FK / d q of :func:`forward_kinematics` in closed form (numpy).

    With h = a2 sin th2 + a3 sin th23 + a4 sin th234 and e = d2 + d3:
    dx/dth1 = -y, dy/dth1 = x, d r/d th_k = -(sum of the a sin terms from joint k on),
    d z/d th_k = -(sum of the a cos terms from joint k on), dx/dth_k = c1 dr/dth_k,
    dy/dth_k = s1 dr/dth_k (k = 2..4); then dth/dq = diag(-1, -1, -1, 1).

    Args:
        q: joint positions [rad], shape (..., 4).

    Returns:
        Jacobian [m/rad], shape (..., 3, 4).

    Raises:
        ShapeError: if the last axis of ``q`` is not 4.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim == 0 or q.shape[-1] != N_JOINTS:
        raise ShapeError(f'q: expected shape (..., {N_JOINTS}), got {q.shape}')
    th1, th2, th3, th4 = -q[..., 0], -q[..., 1], -q[..., 2], q[..., 3]
    s23, s234 = th2 + th3, th2 + th3 + th4
    sin_terms = [A2 * np.sin(th2), A3 * np.sin(s23), A4 * np.sin(s234)]
    cos_terms = [A2 * np.cos(th2), A3 * np.cos(s23), A4 * np.cos(s234)]
    r = A1 + sum(cos_terms)
    c1, s1 = np.cos(th1), np.sin(th1)
    e = D2 + D3
    jac = np.zeros((*q.shape[:-1], 3, N_JOINTS))
    jac[..., 0, 0] = -(r * s1 + e * c1)
    jac[..., 1, 0] = r * c1 - e * s1
    for k in range(1, N_JOINTS):
        dr = -sum(sin_terms[k - 1:])
        jac[..., 0, k] = c1 * dr
        jac[..., 1, k] = s1 * dr
        jac[..., 2, k] = -sum(cos_terms[k - 1:])
    return jac * np.array([-1.0, -1.0, -1.0, 1.0])


# ---- joint limits ----------------------------------------------------------------------------

#: Joint names of the ED-Scorbot in URDF (and ``joint_states``) order; as the real robot's URDF.
JOINT_NAMES = FK_JOINTS  # base to wrist pitch, the order of forward_kinematics' q

#: Paper code's safe ranges [rad] (``scorbot.py``, ``save_space``): base +-130 deg, shoulder
#: +-70 deg; the code holds elbow and pitch at 0 and gives them no range (None = URDF limit).
SAFE_RANGES: dict[str, tuple[float, float] | None] = {
    'base_joint': (-math.radians(130.0), math.radians(130.0)),
    'shoulder': (-math.radians(70.0), math.radians(70.0)),
    'elbow': None,
    'pitch': None,
}

URDF_NAME = 'ed_scorbot.urdf'


def default_urdf_path() -> Path:
    """Return the path of the package's ``urdf/ed_scorbot.urdf``.

    Looks in the ament index share directory first (installed package), then in the source tree.

    Raises:
        FileNotFoundError: if neither exists.
    """
    return find_share(f'urdf/{URDF_NAME}')


@dataclasses.dataclass(frozen=True)
class JointLimits:
    """Limits of the movable joints, in URDF order.

    Attributes:
        names: joint names, length n.
        lower: lower position limits [rad], shape (n,).
        upper: upper position limits [rad], shape (n,).
        velocity: velocity limits [rad/s], shape (n,).
        effort: effort limits [N m], shape (n,).
    """

    names: tuple[str, ...]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    velocity: npt.NDArray[np.float64]
    effort: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.names)
        for field in ('lower', 'upper', 'velocity', 'effort'):
            arr = np.asarray(getattr(self, field), dtype=np.float64)
            if arr.shape != (n,):
                raise ShapeError(f'{field}: expected shape ({n},), got {arr.shape}')
            arr.setflags(write=False)
            object.__setattr__(self, field, arr)
        if np.any(self.lower > self.upper):
            bad = [m for m, a, b in zip(self.names, self.lower, self.upper, strict=True)
                   if a > b]
            raise ValueError(f'lower > upper for joints {bad}')
        if np.any(self.velocity <= 0) or np.any(self.effort <= 0):
            raise ValueError('velocity and effort limits must be positive')

    def index(self, name: str) -> int:
        """Return the index of joint ``name``; ValueError naming it when unknown."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f'unknown joint {name!r}; known: {list(self.names)}') from None

    def clip(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``q`` [rad], shape (..., n), clamped to [lower, upper]."""
        return np.clip(np.asarray(q, dtype=np.float64), self.lower, self.upper)

    def within(self, q: npt.ArrayLike, tol: float = 0.0) -> bool:
        """Return True when every entry of ``q`` [rad] lies in [lower - tol, upper + tol]."""
        q = np.asarray(q, dtype=np.float64)
        return bool(np.all(q >= self.lower - tol) and np.all(q <= self.upper + tol))


def load_joint_limits(path: str | Path | None = None) -> JointLimits:
    """Read the limits of the revolute/prismatic joints of a URDF, in file order.

    Args:
        path: URDF file; default :func:`default_urdf_path`.

    Returns:
        The joints' :class:`JointLimits`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a movable joint has no complete ``<limit>`` element.
    """
    path = Path(path) if path is not None else default_urdf_path()
    root = ET.parse(path).getroot()
    names, rows = [], []
    for j in root.iter('joint'):
        if j.get('type') not in ('revolute', 'prismatic'):
            continue
        lim = j.find('limit')
        keys = ('lower', 'upper', 'velocity', 'effort')
        if lim is None or any(lim.get(k) is None for k in keys):
            raise ValueError(f'{path}: joint {j.get("name")!r} needs <limit {" ".join(keys)}>')
        names.append(str(j.get('name')))
        rows.append([float(str(lim.get(k))) for k in keys])
    a = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return JointLimits(tuple(names), a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def safe_limits(limits: JointLimits | None = None) -> JointLimits:
    """Return ``limits`` narrowed to the paper code's :data:`SAFE_RANGES` (intersection).

    The paper's base range (+-130 deg) is wider than the URDF's (+-125 deg), so the URDF wins
    there; the shoulder becomes +-70 deg.
    """
    limits = limits if limits is not None else load_joint_limits()
    lo, hi = limits.lower.copy(), limits.upper.copy()
    for i, name in enumerate(limits.names):
        rng = SAFE_RANGES.get(name)
        if rng is not None:
            lo[i], hi[i] = max(lo[i], rng[0]), min(hi[i], rng[1])
    return dataclasses.replace(limits, lower=lo, upper=hi)


# ---- inverse kinematics ----------------------------------------------------------------------

#: Default reach tolerance [m]: a target is reachable when the solution's FK is this close.
IK_TOLERANCE = 1e-4
#: Function evaluations per solver run: full runs, and the short scouting runs from the grid.
IK_MAX_NFEV = 300
IK_SCOUT_NFEV = 15


@dataclasses.dataclass(frozen=True)
class IKResult:
    """Outcome of :func:`inverse_kinematics`.

    Attributes:
        reachable: True when ``distance <= tol``.
        q: joint positions [rad], shape (4,): the solution, or the configuration whose end effector
            is closest to the target when unreachable. Always within the limits used.
        distance: distance [m] from the target to FK(q), i.e. to the (bounded) workspace when the
            target is unreachable; about 0 when reachable.
        p: FK(q) [m], shape (3,).
    """

    reachable: bool
    q: npt.NDArray[np.float64]
    distance: float
    p: npt.NDArray[np.float64]


def _starts(lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64],
            n_per_joint: int) -> list[npt.NDArray[np.float64]]:
    # a fixed grid of interior starting points (deterministic; no RNG needed)
    fr = (np.arange(n_per_joint) + 0.5) / n_per_joint
    grids = np.meshgrid(*[lo[i] + fr * (hi[i] - lo[i]) for i in range(len(lo))], indexing='ij')
    return list(np.stack([g.ravel() for g in grids], axis=-1))


def inverse_kinematics(p_target: npt.ArrayLike, q0: npt.ArrayLike | None = None, *,
                       limits: JointLimits | None = None,
                       active_joints: Sequence[int] = (0, 1, 2, 3),
                       tol: float = IK_TOLERANCE, n_starts_per_joint: int = 3) -> IKResult:
    """Solve FK(q) = p_target for q inside the joint limits (bounded least squares).

    Minimises |FK(q) - p_target|^2 over the active joints with ``scipy.optimize.least_squares``
    (trust-region reflective, bounds = the limits), first from ``q0``, then from a fixed grid of
    ``n_starts_per_joint`` values per active joint, and stops at the first start that reaches
    ``tol``. Inactive joints keep their ``q0`` value. The best residual over all starts is the
    distance to the bounded workspace (a global minimum in practice; the grid is deterministic).

    Args:
        p_target: target end-effector position [m] in ``base_link``, shape (3,).
        q0: initial / fixed joint positions [rad], shape (4,); default zeros (home). Clamped to
            the limits.
        limits: joint limits (default: the URDF's; pass :func:`safe_limits` for the paper's safe
            ranges).
        active_joints: indices of the joints the solver may move (the paper's network moves
            base and shoulder only: ``(0, 1)``; its workspace is then a surface).
        tol: reach tolerance [m].
        n_starts_per_joint: grid size per active joint for the restarts (3 -> 3^k starts).

    Returns:
        :class:`IKResult` (reachable flag, q, distance to the workspace, FK(q)).

    Raises:
        ShapeError: ``p_target`` is not shape (3,) or ``q0`` not shape (4,).
        ValueError: non-finite input, empty or out-of-range ``active_joints``, ``tol`` <= 0.
    """
    p = np.asarray(p_target, dtype=np.float64)
    if p.shape != (3,):
        raise ShapeError(f'p_target: expected shape (3,), got {p.shape}')
    if not np.all(np.isfinite(p)):
        raise ValueError(f'p_target: must be finite, got {p}')
    limits = limits if limits is not None else load_joint_limits()
    if len(limits.names) != N_JOINTS:
        raise ShapeError(f'limits: expected {N_JOINTS} joints, got {len(limits.names)}')
    q_init = np.zeros(N_JOINTS) if q0 is None else np.asarray(q0, dtype=np.float64)
    if q_init.shape != (N_JOINTS,):
        raise ShapeError(f'q0: expected shape ({N_JOINTS},), got {q_init.shape}')
    if not np.all(np.isfinite(q_init)):
        raise ValueError(f'q0: must be finite, got {q_init}')
    act = sorted(set(int(i) for i in active_joints))
    if not act or act[0] < 0 or act[-1] >= N_JOINTS:
        raise ValueError(f'active_joints: expected indices in 0..{N_JOINTS - 1}, got '
                         f'{list(active_joints)}')
    if not tol > 0:
        raise ValueError(f'tol: must be > 0 m, got {tol}')
    q_base = limits.clip(q_init)
    lo, hi = limits.lower[act], limits.upper[act]

    def full(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        q = q_base.copy()
        q[act] = x
        return q

    def residual(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return forward_kinematics(full(x)) - p

    def jac(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return jacobian(full(x))[:, act]

    def solve(x0: npt.NDArray[np.float64], max_nfev: int) -> tuple[Any, float]:
        # strictly inside the box (least_squares requires it)
        x0 = np.clip(x0, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        sol = least_squares(residual, x0, jac=jac, bounds=(lo, hi), method='trf', xtol=1e-12,
                            ftol=1e-12, gtol=1e-12, max_nfev=max_nfev)
        return np.clip(sol.x, lo, hi), float(np.linalg.norm(sol.fun))

    # 1) from q0 to convergence; 2) short runs from the grid; 3) polish the best one
    best_x, best_d = solve(q_base[act], IK_MAX_NFEV)
    if best_d > tol:
        for x0 in _starts(lo, hi, n_starts_per_joint):
            x, d = solve(x0, IK_SCOUT_NFEV)
            if d < best_d:
                best_x, best_d = x, d
            if best_d <= tol:
                break
        best_x, best_d = solve(best_x, IK_MAX_NFEV)
    q = full(best_x)
    pq = forward_kinematics(q)
    d = float(np.linalg.norm(pq - p))
    return IKResult(reachable=d <= tol, q=q, distance=d, p=pq)
