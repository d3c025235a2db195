"""PyBullet simulation of the ED-Scorbot: own client, DIRECT mode, fixed step, position control.

One :class:`PyBulletArm` = one PyBullet physics client (``bullet_client.BulletClient``), so two
arms in one process never see each other. Time is the simulator's own: ``t = n_steps * dt``;
nothing here reads the wall clock, and :meth:`PyBulletArm.step` runs as fast as the CPU allows (no
real-time stepping). Joint motors use PyBullet's POSITION_CONTROL with the URDF's velocity limit
as ``maxVelocity`` and its effort limit as ``force``, under gravity.

References: Coumans & Bai, PyBullet (pybullet.org), ``setJointMotorControl2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from l2l_nmhw_ros.arm.kinematics import JointLimits, default_urdf_path
from l2l_nmhw_ros.config import ArmConfig
from l2l_nmhw_ros.errors import ShapeError

_DEFAULTS = ArmConfig()
#: Link whose origin is the end-effector point (the paper's FK point).
END_EFFECTOR_LINK = 'end_effector_link'
#: PyBullet POSITION_CONTROL gains: fraction of the position error (and of the velocity error)
#: the motor constraint removes per step. 0.3 settles in about 10 steps without overshoot.
POSITION_GAIN = 0.3
VELOCITY_GAIN = 1.0


class PyBulletArm:
    """The ED-Scorbot in its own PyBullet client.

    Args:
        urdf_path: URDF to load (default: the package's ``urdf/ed_scorbot.urdf``).
        dt: fixed time step [s] (default ``arm.sim_dt``).
        gravity: gravitational acceleration [m/s^2] along -z (default ``arm.gravity``; 0 = off).
        gui: open the PyBullet GUI instead of DIRECT mode (needs a display).
        q0: initial joint positions [rad], shape (n,), default zeros.

    Raises:
        ValueError: ``dt`` <= 0 or the URDF has no ``end_effector_link``.
        ShapeError: ``q0`` has the wrong shape.

    Note:
        Joint order everywhere is the URDF order of the movable joints (``joint_names``).
        Call :meth:`close` (or use ``with``) to disconnect the client.
    """

    def __init__(self, urdf_path: str | Path | None = None, *, dt: float = _DEFAULTS.sim_dt,
                 gravity: float = _DEFAULTS.gravity, gui: bool = False,
                 q0: npt.ArrayLike | None = None) -> None:
        import pybullet
        from pybullet_utils import bullet_client

        if not dt > 0:
            raise ValueError(f'dt: must be > 0 s, got {dt}')
        self._pb = pybullet
        self.dt = float(dt)
        self.urdf_path = Path(urdf_path) if urdf_path is not None else default_urdf_path()
        self._client: Any = bullet_client.BulletClient(
            connection_mode=pybullet.GUI if gui else pybullet.DIRECT)
        c = self._client
        c.setTimeStep(self.dt)
        c.setRealTimeSimulation(0)
        c.setGravity(0.0, 0.0, -float(gravity))
        self._body = c.loadURDF(str(self.urdf_path), basePosition=[0.0, 0.0, 0.0],
                                useFixedBase=True,
                                flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        names, idx, lo, hi, vel, eff = [], [], [], [], [], []
        self._ee = -1
        for j in range(c.getNumJoints(self._body)):
            info = c.getJointInfo(self._body, j)
            if info[12].decode() == END_EFFECTOR_LINK:
                self._ee = j
            if info[2] in (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC):
                names.append(info[1].decode())
                idx.append(j)
                lo.append(info[8])
                hi.append(info[9])
                eff.append(info[10])
                vel.append(info[11])
        if self._ee < 0:
            self.close()
            raise ValueError(f'{self.urdf_path}: no link named {END_EFFECTOR_LINK!r}')
        self._idx = idx
        self.limits = JointLimits(tuple(names), np.array(lo), np.array(hi), np.array(vel),
                                  np.array(eff))
        self.n_steps = 0
        self.n_speed_clamps = 0
        self._target = np.zeros(len(idx))
        self.reset(np.zeros(len(idx)) if q0 is None else q0)

    # ---- properties ----------------------------------------------------------------------
    @property
    def joint_names(self) -> tuple[str, ...]:
        """Movable joint names in URDF order."""
        return self.limits.names

    @property
    def t(self) -> float:
        """Simulated time [s] since the last :meth:`reset` (= n_steps * dt)."""
        return self.n_steps * self.dt

    @property
    def target(self) -> npt.NDArray[np.float64]:
        """Current motor position targets [rad], shape (n,)."""
        return self._target.copy()

    def _vector(self, q: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self._idx),):
            raise ShapeError(f'{name}: expected shape ({len(self._idx)},), got {q.shape}')
        if not np.all(np.isfinite(q)):
            raise ValueError(f'{name}: must be finite, got {q}')
        return q

    # ---- control -------------------------------------------------------------------------
    def reset(self, q: npt.ArrayLike) -> None:
        """Teleport the joints to ``q`` [rad] (clamped to the limits) at rest; time restarts at 0.

        Raises:
            ShapeError / ValueError: wrong shape or non-finite ``q``.
        """
        q = self.limits.clip(self._vector(q, 'q'))
        for j, qi in zip(self._idx, q, strict=True):
            self._client.resetJointState(self._body, j, float(qi), 0.0)
        self.n_steps = 0
        self.set_position_targets(q)

    def set_position_targets(self, q: npt.ArrayLike) -> None:
        """Set the motors' position targets [rad], shape (n,), clamped to the URDF limits.

        The motors move toward them at most at the URDF velocity limit with at most the URDF
        effort (PyBullet POSITION_CONTROL).

        Raises:
            ShapeError / ValueError: wrong shape or non-finite ``q``.
        """
        q = self.limits.clip(self._vector(q, 'q'))
        self._target = q
        c = self._client
        for k, j in enumerate(self._idx):
            c.setJointMotorControl2(self._body, j, self._pb.POSITION_CONTROL,
                                    targetPosition=float(q[k]), targetVelocity=0.0,
                                    positionGain=POSITION_GAIN, velocityGain=VELOCITY_GAIN,
                                    force=float(self.limits.effort[k]),
                                    maxVelocity=float(self.limits.velocity[k]))

    def step(self, n: int = 1) -> None:
        """Advance the simulation by ``n`` fixed steps (n * dt seconds of simulated time).

        Note:
            Rated-speed guard: after each step, a joint that moved faster than its URDF velocity
            limit (possible when a 30 N m motor saturates under gravity and the reaction torques
            of other joints) is put back to ``q_prev + v_lim * dt`` with its speed capped. This
            models the ED-Scorbot's high-ratio gear trains, which the load cannot backdrive
            faster than the motor's rated speed. ``n_speed_clamps`` counts the interventions.
        """
        if n < 0:
            raise ValueError(f'n: must be >= 0, got {n}')
        c, body, idx = self._client, self._body, self._idx
        vlim = self.limits.velocity
        q_prev = self.joint_positions()
        for _ in range(int(n)):
            c.stepSimulation()
            states = c.getJointStates(body, idx)
            q = np.array([s[0] for s in states])
            dq = np.array([s[1] for s in states])
            step = q - q_prev
            over = (np.abs(step) > vlim * self.dt) | (np.abs(dq) > vlim)
            if np.any(over):
                q = np.where(over, q_prev + np.clip(step, -vlim * self.dt, vlim * self.dt), q)
                dq = np.clip(dq, -vlim, vlim)
                for k in np.nonzero(over)[0]:
                    c.resetJointState(body, idx[k], float(q[k]), float(dq[k]))
                self.n_speed_clamps += int(np.count_nonzero(over))
            q_prev = q
        self.n_steps += int(n)

    # ---- state ---------------------------------------------------------------------------
    def joint_state(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                   npt.NDArray[np.float64]]:
        """Return measured (q [rad], dq [rad/s], motor effort [N m]), each shape (n,)."""
        states = self._client.getJointStates(self._body, self._idx)
        q = np.array([s[0] for s in states])
        dq = np.array([s[1] for s in states])
        eff = np.array([s[3] for s in states])
        return q, dq, eff

    def joint_positions(self) -> npt.NDArray[np.float64]:
        """Return measured joint positions [rad], shape (n,)."""
        return self.joint_state()[0]

    def end_effector_position(self) -> npt.NDArray[np.float64]:
        """Return the position [m] of ``end_effector_link`` in base_link (= world), shape (3,)."""
        s = self._client.getLinkState(self._body, self._ee, computeForwardKinematics=True)
        return np.array(s[4], dtype=np.float64)

    def link_position(self, q: Sequence[float], link: str = END_EFFECTOR_LINK
                      ) -> npt.NDArray[np.float64]:
        """Teleport to ``q`` [rad] and return the URDF frame origin [m] of ``link``.

        Kinematic only (no stepping); used to compare the URDF with the analytic FK. Leaves the
        arm at ``q`` at rest with the motor targets unchanged.
        """
        q = self._vector(q, 'q')
        for j, qi in zip(self._idx, q, strict=True):
            self._client.resetJointState(self._body, j, float(qi), 0.0)
        c = self._client
        for j in range(c.getNumJoints(self._body)):
            if c.getJointInfo(self._body, j)[12].decode() == link:
                return np.array(c.getLinkState(self._body, j, computeForwardKinematics=True)[4])
        raise ValueError(f'unknown link {link!r}')

    # ---- life cycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self._client is not None:
            try:
                self._client.disconnect()
            except self._pb.error:  # already disconnected
                pass
            self._client = None

    def __enter__(self) -> PyBulletArm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net only
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
