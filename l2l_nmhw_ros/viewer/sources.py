"""What the web view reads besides messages: the reachable surface of a checkpoint's learned
joints and the device programming times of the accelerator's state file (ROS-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ['StateFileWatcher', 'read_t_prog', 'surface_of_checkpoint']


def surface_of_checkpoint(checkpoint: str | Path = '', n: int = 96
                          ) -> npt.NDArray[np.float64]:
    """Return points [m], (n^k, 3), of the workspace of the checkpoint's learned joints: an
    n-per-joint grid over :func:`~l2l_nmhw_ros.reach.episode.planner_limits` (URDF ∩ safe
    ranges ∩ the task's ranges), the other joints at ``control.home`` (where the controller
    finds a target reachable).

    Args:
        checkpoint: checkpoint folder; empty = the shipped one.
        n: grid points per learned joint.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint cannot be read.
    """
    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.arm.kinematics import JOINT_NAMES, forward_kinematics
    from l2l_nmhw_ros.l2l import checkpoint as ckpt_io
    from l2l_nmhw_ros.reach.episode import network_config, planner_limits, resolve_checkpoint
    from l2l_nmhw_ros.viewer.scene import reachable_surface

    cfg, _ = network_config(C.load(), ckpt_io.load(resolve_checkpoint(str(checkpoint)))[1])
    lim = planner_limits(cfg)
    learned = list(cfg.task.learned_joints)
    home = dict(zip(cfg.arm.joints, cfg.control.home, strict=True))
    return reachable_surface(forward_kinematics, [home.get(j, 0.0) for j in JOINT_NAMES],
                             [JOINT_NAMES.index(j) for j in learned],
                             [lim.lower[lim.index(j)] for j in learned],
                             [lim.upper[lim.index(j)] for j in learned], n=n)


def read_t_prog(path: str | Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Return the programming times [s] and program counts, each (2, n_devices, n_post,
    n_pre), of a crossbar state file (:meth:`~l2l_nmhw_ros.pcm.crossbar.Crossbar.save`), read
    without pickle and cropped to the ``n_post`` × ``n_pre`` its metadata records (what
    ``Crossbar.t_prog`` and ``Crossbar.program_counts`` return).

    Raises:
        OSError, safetensors.SafetensorError: unreadable file.
        KeyError, SafetensorError: no ``t_prog`` or ``program_counts`` array.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework='numpy') as fh:
        meta = fh.metadata() or {}
        t, counts = fh.get_tensor('t_prog'), fh.get_tensor('program_counts')
    n_post, n_pre = int(meta.get('n_post', t.shape[-2])), int(meta.get('n_pre', t.shape[-1]))
    return (np.asarray(t[..., :n_post, :n_pre], dtype=np.float64),
            np.asarray(counts[..., :n_post, :n_pre], dtype=np.int64))


class StateFileWatcher:
    """Which weights the accelerator's device writes of the last episode touched, from its
    state file (saved after each episode).

    :meth:`poll` re-reads the file when its modification time or size changed and compares the
    devices' programming times with the previous version
    (:func:`~l2l_nmhw_ros.viewer.scene.programmed_mask`). The version found by the first poll
    is the state before the first episode this watcher sees (nothing to report).

    Args:
        path: the state file (``control.state_file`` of ``pcm_accelerator``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._key: tuple[int, int] | None = None
        self._t_prog: npt.NDArray[np.float64] | None = None
        self._polled = False

    def poll(self) -> tuple[npt.NDArray[np.bool_], str] | None:
        """Return (the written weights (n_post, n_pre), a note with the devices written since
        the deployment) when a new version of the file holds new writes, else None."""
        from l2l_nmhw_ros.viewer.scene import programmed_mask

        first, self._polled = not self._polled, True
        if not self.path.is_file():
            return None
        st = self.path.stat()
        key = (st.st_mtime_ns, st.st_size)
        if key == self._key:
            return None
        self._key = key
        t_prog, counts = read_t_prog(self.path)
        previous = self._t_prog if self._t_prog is not None and \
            self._t_prog.shape == t_prog.shape else None
        self._t_prog = t_prog
        if first:
            return None
        mask = programmed_mask(t_prog, previous, counts)
        if not mask.any():  # saved again without a write (e.g. ~/save_state)
            return None
        note = ''
        sidecar = self.path.with_name(self.path.name + '.json')
        try:
            total = json.loads(sidecar.read_text(encoding='utf-8'))['devices_programmed_total']
            note = f'(devices written since deployment: {int(total)})'
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return mask, note
