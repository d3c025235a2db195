"""Input encodings of the trainee and the LSG (paper code ``datasets/utils/clock_signal.py``,
``datasets/trajectories.py::get_data``)."""

from __future__ import annotations

import torch

from l2l_nmhw_ros.errors import ShapeError

__all__ = ['clock_input', 'encode_target']


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


def encode_target(xyz: torch.Tensor, bits: int) -> torch.Tensor:
    """Binary-code Cartesian targets into spikes, as the paper's code feeds the LSG.

    For each coordinate c [m] the integer floor((c + 1) * 2^(bits - 1)) (clipped to
    [0, 2^bits - 1], i.e. c in [-1, 1) m) is written bit 0 (least significant) to bit
    bits - 1; each bit drives one input neuron at every step (1 = spike).

    Args:
        xyz: targets [m], shape (time, batch, 3).
        bits: neurons per coordinate (paper: 16).

    Returns:
        Spikes (time, batch, 3 * bits), coordinate-major (x bits, then y, then z), dtype of xyz.

    Raises:
        ShapeError: if `xyz` is not (time, batch, 3).
        ValueError: if `bits` is not in 1..31.
    """
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ShapeError(f'xyz: expected (time, batch, 3), got {tuple(xyz.shape)}')
    if not 1 <= bits <= 31:
        raise ValueError(f'bits must be in 1..31, got {bits}')
    code = torch.floor((xyz.detach().double() + 1.0) * 2.0 ** (bits - 1)).long()
    code = code.clamp(0, 2 ** bits - 1)
    shifts = torch.arange(bits, device=xyz.device)
    out = (code.unsqueeze(-1) >> shifts) & 1  # (time, batch, 3, bits)
    return out.reshape(*xyz.shape[:2], 3 * bits).to(xyz.dtype)
