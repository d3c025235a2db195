"""ED-Scorbot forward kinematics (analytic, as in the paper's code), for numpy arrays and torch tensors.

Source: Ortner et al. 2025, official code ``online_learning_robot/module/scorbot.py``
(``direct_kinematics``), rewritten in closed form. Lengths in metres. With the paper code's sign
convention theta1 = -q1, theta2 = -q2, theta3 = -q3, theta4 = q4:

    r = a1 + a2 cos th2 + a3 cos(th2 + th3) + a4 cos(th2 + th3 + th4)
    x = r cos th1 - (d2 + d3) sin th1
    y = r sin th1 + (d2 + d3) cos th1
    z = d1 - a2 sin th2 - a3 sin(th2 + th3) - a4 sin(th2 + th3 + th4)

At q = 0: (x, y, z) = (0.920, -0.033, 0.3585) m. The same function works on numpy arrays and on
torch tensors (differentiable; used inside the meta-training loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l2l_nmhw_ros.errors import ShapeError

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
    try:
        import torch

        if isinstance(q, torch.Tensor):
            return torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
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
