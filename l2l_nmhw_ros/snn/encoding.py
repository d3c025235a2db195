"""Input encodings of the trainee and the LSG (paper code ``datasets/utils/clock_signal.py``,
``datasets/trajectories.py::get_data``)."""

from __future__ import annotations

import torch

from l2l_nmhw_ros.config import TARGET_CODES
from l2l_nmhw_ros.errors import ShapeError

__all__ = ['TARGET_CODES', 'WORKSPACE_HI', 'WORKSPACE_LO', 'clock_input', 'encode_target',
           'target_code_ints']


def clock_input(cfg, batch: int, *, n_in: int = 5, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Return the clock spike trains, the trainee's only input.

    Neuron n fires at t = n * clock_window + k * clock_interval for every k with
    k * clock_interval < clock_window and t < n_steps (paper: windows of 50 ms, one spike per
    10 ms, so 5 spikes per neuron and 25 per trial). The same clock drives every task.

    Args:
        cfg: :class:`~l2l_nmhw_ros.config.TaskConfig` (n_steps, clock_window, clock_interval).
        batch: number of trials.
        n_in: clock neurons (``trainee.n_in``).

    Returns:
        Spikes (n_steps, batch, n_in), values 0/1.

    Raises:
        ValueError: if `batch` or `n_in` is below 1.
    """
    if batch < 1 or n_in < 1:
        raise ValueError(f'batch and n_in must be >= 1, got batch={batch}, n_in={n_in}')
    x = torch.zeros(cfg.n_steps, n_in, dtype=dtype, device=device)
    for n in range(n_in):
        for k in range(0, cfg.clock_window, cfg.clock_interval):
            t = n * cfg.clock_window + k
            if t < cfg.n_steps:
                x[t, n] = 1.0
    return x.unsqueeze(1).expand(cfg.n_steps, batch, n_in).contiguous()


# `workspace` code: every coordinate in [WORKSPACE_LO, WORKSPACE_HI) [m]
WORKSPACE_LO = -2.0
WORKSPACE_HI = 2.0


def target_code_ints(xyz: torch.Tensor, bits: int, code: str) -> torch.Tensor:
    """Return the integer code of every target coordinate (see :func:`encode_target`).

    Args:
        xyz: targets [m], any shape.
        bits: bits per coordinate, 1..31.
        code: one of :data:`TARGET_CODES`.

    Returns:
        int64 tensor of the shape of `xyz`, each value in 0 .. 2^bits - 1.

    Raises:
        ValueError: unknown `code`, `bits` outside 1..31, or (``workspace``) a coordinate outside
            [-2, 2) m or not finite.
    """
    if not 1 <= bits <= 31:
        raise ValueError(f'bits must be in 1..31, got {bits}')
    c = xyz.detach()
    if code == 'paper':
        # authors' formula in float32: (c + 1) * 2^(bits-1), truncated toward zero to int64,
        # then only bits 0 .. bits-1 kept (two's complement): the code wraps modulo 2^bits
        scaled = (c.to(torch.float32) + 1.0) * float(2 ** (bits - 1))
        return scaled.to(torch.int64) & (2 ** bits - 1)
    if code == 'clamped':
        cc = torch.floor((c.double() + 1.0) * 2.0 ** (bits - 1)).long()
        return cc.clamp(0, 2 ** bits - 1)
    if code == 'workspace':
        cd = c.double()
        bad = ~torch.isfinite(cd) | (cd < WORKSPACE_LO) | (cd >= WORKSPACE_HI)
        if bool(bad.any()):
            raise ValueError(f'target code workspace covers [{WORKSPACE_LO}, {WORKSPACE_HI}) m; '
                             f'got a coordinate {float(cd[bad].flatten()[0])!r} (no ED-Scorbot '
                             'pose reaches it)')
        scale = 2.0 ** bits / (WORKSPACE_HI - WORKSPACE_LO)
        return torch.floor((cd - WORKSPACE_LO) * scale).long()
    raise ValueError(f'target code: expected one of {list(TARGET_CODES)}, got {code!r}')


def encode_target(xyz: torch.Tensor, bits: int, *, code: str) -> torch.Tensor:
    """Binary-code Cartesian targets into spikes for the LSG (paper code ``get_data``).

    Each coordinate c [m] becomes an integer (:func:`target_code_ints`) written bit 0 (least
    significant) to bit bits - 1; each bit drives one input neuron at every step (1 = spike). The
    code is part of what an LSG was meta-trained on, so every checkpoint records it
    (``lsg.target_code``):

    - ``paper``: the authors' code, bit-exact: ``int64(float32(c + 1) * 2^(bits-1))`` (float32
      product, truncation toward zero), bits 0 .. bits-1 kept, so the code WRAPS modulo 2^bits:
      for 16 bits, resolution 2^-15 m = 30.5 µm on [-1, 1) m, and z = 1.1 m is coded like
      z = -0.9 m. The published weights were meta-trained on it.
    - ``clamped``: floor((c + 1) 2^(bits-1)) in float64, clipped to [0, 2^bits - 1]: the same
      code on [-1, 1) m, but every c >= 1 m is all ones (blind above 1 m). What the shipped
      checkpoint ``checkpoints/paper_two_joints`` (iteration 2010) was trained on; kept for it.
    - ``workspace``: floor((c + 2) 2^bits / 4) in float64 on [-2, 2) m, resolution
      4 m / 2^bits (61 µm for 16 bits), no wrap and no saturation; it covers the whole
      ED-Scorbot workspace (|x|, |y| <= 0.921 m, z in [-0.512, 1.229] m at any joint angles)
      with margin; a coordinate outside [-2, 2) m raises. The code for new checkpoints.

    Args:
        xyz: targets [m], shape (time, batch, 3).
        bits: neurons per coordinate (paper: 16).
        code: one of :data:`TARGET_CODES` (no default: it must come from the checkpoint or the
            configuration).

    Returns:
        Spikes (time, batch, 3 * bits), coordinate-major (x bits, then y, then z), dtype of xyz.

    Raises:
        ShapeError: if `xyz` is not (time, batch, 3).
        ValueError: see :func:`target_code_ints`.
    """
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ShapeError(f'xyz: expected (time, batch, 3), got {tuple(xyz.shape)}')
    ints = target_code_ints(xyz, bits, code)
    shifts = torch.arange(bits, device=xyz.device)
    out = (ints.unsqueeze(-1) >> shifts) & 1  # (time, batch, 3, bits)
    return out.reshape(*xyz.shape[:2], 3 * bits).to(xyz.dtype)
