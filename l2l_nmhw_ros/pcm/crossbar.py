"""Stateful PCM crossbar emulator of one weight matrix (:class:`Crossbar`).

Every weight w_ji (n_post × n_pre, weight units) is a differential pair of N = ``n_devices``
devices per polarity: ``w = w_max · (mean_d G+_d(t) − mean_d G−_d(t)) / g_max``. The target
conductance of the active polarity is ``g_max · |w| / w_max``, the other polarity is RESET (0 µS).
Each device keeps its own programmed conductance ``g_prog`` [µS], drift exponent ``nu``,
programming time ``t_prog`` [s] (emulator clock) and program counter. The matrix is laid out on
``tile_size × tile_size`` tiles (256 × 256): the state is stored padded to whole tiles, padding
devices are never programmed (0 µS). An MVM over several tiles is the digital sum of the tiles'
partial outputs, which is the same as one MVM of the whole padded matrix (the read noise of the
partial sums is independent and Gaussian, so it adds in variance exactly as the fast path does).

The device physics (programming noise, deployment jitter, drift, read noise, device counting)
is ``Crossbar.device``, the preset's :class:`~l2l_nmhw_ros.pcm.device_model.DeviceModel` (the
same object type :class:`~l2l_nmhw_ros.pcm.model.PCMModel` uses); the crossbar keeps the device
state and the clock. Time modes (``cfg.preset``):

``physical``
    drift ``g(t) = g_prog · ((t − t_prog + t0) / t0)^(−ν)`` per device on the emulator clock
    (aihwkit convention: the factor is 1 right after programming, t0 = 20 s); 1/f read noise per
    device ``σ = g(t) · Q_s(ĝ_prog) · sqrt(ln((t − t_prog + t0 + t_read) / (2 t_read)))``
    (aihwkit); each device has its own programming noise and ν. ``t < t_prog`` (a clock that
    went backwards) is read as ``t = t_prog``.
``paper_code``
    the paper code's conventions on the device level: fixed drift ratio t/t0 = ``drift_t_ratio``
    (32) whatever the clock, read noise ``σ = g · Q_s(g in µS) · sqrt(ln((32 + t_read)/t_read))``
    per device, and programming noise, deployment jitter and ν drawn **once per weight** and shared
    by its N devices (the code draws them per weight value). Two differences to
    :class:`PCMModel`, which follows the code on the weight value: the crossbar clips every target
    to ±w_max before programming (a device cannot hold more than g_max), so the code's quirk (a
    target |w| > w_max loses its excess again: the batched model deploys w = 2 as ≈ 0 and 1.1 as
    ≈ 0.83, the crossbar both as ≈ 0.84) is not reproduced here; and drift acts on the programmed
    (noisy or jittered) conductance, not on the target (a second-order difference,
    noise × (1 − 32^−ν)).
``ideal``
    ideal devices: no noise, no drift; reads give exactly the stored targets clip(w, ±w_max)
    (``PCMModel``'s ideal preset does not clip; within ±w_max the two agree exactly).

Optional global drift compensation (``drift_compensation``): outputs are rescaled by
α(t) = Σ g_prog / Σ g(t) over all devices, i.e. a reference read of the whole array right after
programming divided by the same read now (aihwkit's GlobalDriftCompensation reads an all-ones
input; here the reference is exact and noise-free).

References:
    Nandakumar et al., ICECS 2019; IBM aihwkit ``PCMLikeNoiseModel``, ``GlobalDriftCompensation``;
    Ortner et al., Nat. Commun. 16 (2025) and its code ``module/pcm.py``; Joshi et al.,
    Nat. Commun. 11 (2020) (differential pairs, 2 devices per weight).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from l2l_nmhw_ros.config import PCMConfig, from_dict, to_dict
from l2l_nmhw_ros.errors import CheckpointError, ConfigError, ShapeError
from l2l_nmhw_ros.fileio import atomic_write
from l2l_nmhw_ros.pcm._checks import broadcast_batch, check_tensor, check_time
from l2l_nmhw_ros.pcm.device_model import device_model
from l2l_nmhw_ros.pcm.model import matmul_rows, quantize_delta

__all__ = ['FORMAT_VERSION', 'NU_SIGMAS', 'PROGRAM_COUNT_MAX', 'STATE_CONFIG_FIELDS', 'T_PROG_MAX',
           'Crossbar', 'check_state', 'nu_upper_bound', 'state_config_hash']

#: Version of the state-file layout written by :meth:`Crossbar.save`.
FORMAT_VERSION = 1
#: Config fields that define what the stored device state means; a state file only loads under
#: a config that agrees on all of them. The others (read noise, compensation, rounding, ...) act on
#: reads and future updates only and may change between runs.
STATE_CONFIG_FIELDS = ('preset', 'g_max', 'w_max', 'n_devices', 'tile_size', 'prog_noise',
                       'prog_noise_coeffs', 'prog_noise_g_max_ref', 'drift', 't0',
                       'drift_t_ratio', 'nu_mean_coeffs', 'nu_mean_bounds', 'nu_std_coeffs',
                       'nu_std_bounds')
_POS, _NEG = 0, 1
#: every device of the padded (2, N, P, Q) state (a slice for :meth:`Crossbar._g_in`)
_ALL = (slice(None),) * 4


def state_config_hash(cfg: PCMConfig) -> str:
    """Return the SHA-256 (16 hex chars) of the :data:`STATE_CONFIG_FIELDS` of ``cfg``."""
    d = to_dict(cfg)
    blob = json.dumps({k: d[k] for k in STATE_CONFIG_FIELDS}, sort_keys=True,
                      separators=(',', ':')).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _make_generator(generator_or_seed: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator_or_seed, torch.Generator):
        return generator_or_seed
    if generator_or_seed is None:
        return torch.Generator().manual_seed(0)
    if isinstance(generator_or_seed, bool) or not isinstance(generator_or_seed, int):
        raise ValueError('generator_or_seed: expected a torch.Generator, an int seed or None, got '
                         f'{type(generator_or_seed).__name__}')
    return torch.Generator().manual_seed(generator_or_seed)


class Crossbar:
    """PCM crossbar holding one weight matrix (n_post, n_pre) with per-device state.

    Args:
        cfg: the ``pcm`` configuration.
        n_post: rows of the weight matrix (outputs).
        n_pre: columns of the weight matrix (inputs).
        generator_or_seed: the crossbar's own CPU random generator, or an int seed
            (``None``: seed 0). Used whenever a method gets no generator.
        dtype: dtype of conductances and reads (float32 default; times are always float64).

    Raises:
        ValueError: bad sizes or generator.
    """

    def __init__(self, cfg: PCMConfig, n_post: int, n_pre: int,
                 generator_or_seed: torch.Generator | int | None = None, *,
                 dtype: torch.dtype = torch.float32) -> None:
        self.device = device_model(cfg)
        for name, v in (('n_post', n_post), ('n_pre', n_pre)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'{name}: expected a positive int, got {v!r}')
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f'dtype: expected torch.float32 or torch.float64, got {dtype}')
        self.cfg = cfg
        self.n_post, self.n_pre = n_post, n_pre
        self.dtype = dtype
        self.generator = _make_generator(generator_or_seed)
        t = cfg.tile_size
        self.tiles = (math.ceil(n_post / t), math.ceil(n_pre / t))
        shape = (2, cfg.n_devices, self.tiles[0] * t, self.tiles[1] * t)
        self._g_prog = torch.zeros(shape, dtype=dtype)
        self._nu = torch.zeros(shape, dtype=dtype)
        self._t_prog = torch.zeros(shape, dtype=torch.float64)
        self._counts = torch.zeros(shape, dtype=torch.int64)
        self._w_target = torch.zeros(shape[2:], dtype=dtype)
        self._version = 0
        self._cache: tuple[tuple[int, float | None], torch.Tensor, torch.Tensor] | None = None

    # ---- accessors ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """(n_post, n_pre) of the stored weight matrix."""
        return (self.n_post, self.n_pre)

    @property
    def exact_reads(self) -> bool:
        """True when :meth:`mvm` is the exact product of :meth:`effective_weights` (``ideal``
        preset or ``read_noise`` off)."""
        return self.device.exact_reads

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :self.n_post, :self.n_pre]

    @property
    def g_plus(self) -> torch.Tensor:
        """Programmed conductances of the G+ devices [µS], (n_devices, n_post, n_pre) (copy)."""
        return self._crop(self._g_prog[_POS]).clone()

    @property
    def g_minus(self) -> torch.Tensor:
        """Programmed conductances of the G− devices [µS], (n_devices, n_post, n_pre) (copy)."""
        return self._crop(self._g_prog[_NEG]).clone()

    @property
    def nu(self) -> torch.Tensor:
        """Drift exponents [1], (2 polarities (+, −), n_devices, n_post, n_pre) (copy)."""
        return self._crop(self._nu).clone()

    @property
    def t_prog(self) -> torch.Tensor:
        """Programming times [s] on the emulator clock, float64, (2, n_devices, n_post, n_pre)."""
        return self._crop(self._t_prog).clone()

    @property
    def program_counts(self) -> torch.Tensor:
        """How often each device was programmed (SET or RESET), int64,
        (2 polarities (+, −), n_devices, n_post, n_pre) (copy)."""
        return self._crop(self._counts).clone()

    @property
    def w_target(self) -> torch.Tensor:
        """Last target weights written (the controller's digital copy) [1], (n_post, n_pre)."""
        return self._crop(self._w_target).clone()

    # ---- device state over time (the physics is self.device's) ------------------------------
    def _g_in(self, box: tuple[slice, ...], t: float
              ) -> tuple[torch.Tensor | float, torch.Tensor]:
        """(time since programming [s], noise-free conductance [µS] at ``t``) of the devices in
        ``box`` (a (2, N, rows, cols) slice of the padded state, :data:`_ALL` for every device).
        The time is per device when the device model has a clock, else 0.0 (ignored by the
        clock-free presets)."""
        t_since = (torch.clamp(t - self._t_prog[box], min=0.0) if self.device.clocked
                   else 0.0)
        return t_since, self._g_prog[box] * self.device.drift_factor(self._nu[box], t_since)

    def _scale(self, alpha: float = 1.0) -> float:
        """Weight units per µS of the summed devices of one polarity: α·w_max/(g_max N)."""
        return alpha * self.cfg.w_max / self.cfg.g_max / self.cfg.n_devices

    def _weights_of(self, g: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """Weights [1] of padded device conductances [µS]: α·w_max·(ΣG+ − ΣG−)/(N g_max)."""
        return (g[_POS].sum(0) - g[_NEG].sum(0)) * self._scale(alpha)

    def conductances(self, t: float) -> torch.Tensor:
        """Return the noise-free conductance of every device at time ``t`` [µS].

        Args:
            t: emulator time [s].

        Returns:
            g(t) = g_prog · drift factor, shape (2 (+, −), n_devices, n_post, n_pre).

        Raises:
            ValueError: ``t`` not a finite number.
        """
        t = check_time('t', t)
        return self._crop(self._g_in(_ALL, t)[1])

    def read_conductances(self, t: float, generator: torch.Generator | None = None
                          ) -> torch.Tensor:
        """Return one noisy read of every device at ``t`` [µS]: g(t) + σ_read · N(0, 1), not
        clipped (a measurement; see :meth:`mvm`).

        Args:
            t: emulator time [s].
            generator: random generator (``None``: the crossbar's own).

        Returns:
            Conductances [µS], shape (2 (+, −), n_devices, n_post, n_pre).
        """
        t = check_time('t', t)
        gen = generator if generator is not None else self.generator
        t_since, g_t = self._g_in(_ALL, t)
        sd = self.device.read_noise_sd(g_t, t_since, g_prog=self._g_prog)
        xi = torch.randn(g_t.shape, generator=gen, dtype=self.dtype)
        return self._crop(g_t + sd * xi)

    def _alpha(self, g_t: torch.Tensor) -> float:
        if not (self.cfg.drift_compensation and self.device.drift_on):
            return 1.0
        now = float(g_t.sum())
        return float(self._g_prog.sum()) / now if now > 0 else 1.0

    def _read_state(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (w_eff, read-noise variance), (n_post, n_pre), cached per (version, t)."""
        key = (self._version, t if self.device.clocked else None)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        if self.device.ideal:  # the devices hold the targets exactly: no float round trip
            w = self._crop(self._w_target).contiguous()
            self._cache = (key, w, torch.zeros_like(w))
            return self._cache[1], self._cache[2]
        # the used devices only: padding devices hold 0 µS and add nothing to a read
        box = (slice(None), slice(None), slice(0, self.n_post), slice(0, self.n_pre))
        t_since, g_t = self._g_in(box, t)
        alpha = self._alpha(g_t)
        w = self._weights_of(g_t, alpha).contiguous()
        sd_dev = self.device.read_noise_sd(g_t, t_since, g_prog=self._g_prog[box])
        var = ((sd_dev * sd_dev).sum(dim=(0, 1)) * self._scale(alpha) ** 2).contiguous()
        self._cache = (key, w, var)
        return w, var


    def drift_compensation_factor(self, t: float) -> float:
        """Return α(t) = Σ g_prog / Σ g(t) applied to the outputs (1 when compensation is off)."""
        t = check_time('t', t)
        return self._alpha(self._g_in(_ALL, t)[1])

    def effective_weights(self, t: float) -> torch.Tensor:
        """Return the weights a noise-free read at ``t`` gives (drift and compensation included).

        Args:
            t: emulator time [s].

        Returns:
            w_eff [1], shape (n_post, n_pre), dtype of the crossbar (a new tensor).

        Raises:
            ValueError: ``t`` not a finite number.
        """
        t = check_time('t', t)
        return self._read_state(t)[0].clone()

    def read_noise_sd(self, t: float) -> torch.Tensor:
        """Return the read-noise SD of every weight at ``t`` [1], (n_post, n_pre):
        sqrt(Σ_devices σ_d²) / N · w_max / g_max (times α with drift compensation)."""
        t = check_time('t', t)
        return torch.sqrt(self._read_state(t)[1])

    def mvm(self, x: torch.Tensor, t: float, generator: torch.Generator | None = None, *,
            per_device: bool = False) -> torch.Tensor:
        """Return y = x @ w_eff(t)ᵀ + read noise (one fresh 1/f sample per device and read).

        Fast path: Gaussian output noise with SD sqrt(Σ_i σ_ji² x_i²) (same distribution as the
        per-device path, see :meth:`PCMModel.mvm`). ``per_device=True`` draws noise on every
        device of every read (each batch element is one read) and averages the devices.

        Args:
            x: input [1], shape (..., n_pre), the crossbar's dtype.
            t: emulator time [s].
            generator: random generator (``None``: the crossbar's own).
            per_device: use the slow per-device reference path.

        Returns:
            y [1], shape (..., n_post). Exactly x @ w_effᵀ with read noise off.

        Raises:
            ValueError: ``x`` not floating point or not finite, ``t`` not finite.
            ShapeError: ``x.shape[-1] != n_pre``.
        """
        check_tensor('x', x, min_dim=1)
        t = check_time('t', t)
        if x.shape[-1] != self.n_pre:
            raise ShapeError(f'x: expected (..., {self.n_pre}), got {tuple(x.shape)}')
        gen = generator if generator is not None else self.generator
        w, var_w = self._read_state(t)
        x = x.to(self.dtype)
        y = x @ w.T
        if self.device.exact_reads:
            return y
        if per_device:
            return y + self._per_device_noise(x, t, gen)
        var = (x * x) @ var_w.T  # sums of non-negative terms: var >= 0
        xi = torch.randn(var.shape, generator=gen, dtype=var.dtype)
        return torch.addcmul(y, var.sqrt_(), xi)

    def _per_device_noise(self, x: torch.Tensor, t: float,
                          gen: torch.Generator) -> torch.Tensor:
        t_since, g_t = self._g_in(_ALL, t)
        alpha = self._alpha(g_t)
        sd_dev = self._crop(self.device.read_noise_sd(g_t, t_since, g_prog=self._g_prog))
        batch = x.shape[:-1]
        xi = torch.randn(batch + sd_dev.shape, generator=gen, dtype=self.dtype)
        noise_g = sd_dev * xi  # (..., 2, N, n_post, n_pre)
        dw = (noise_g[..., _POS, :, :, :].sum(-3) - noise_g[..., _NEG, :, :, :].sum(-3)) * (
            self._scale(alpha))
        broadcast_batch('x', batch, 'noise', dw.shape[:-2])
        return matmul_rows(x, dw)

    # ---- programming --------------------------------------------------------------------------
    def _program(self, sel: torch.Tensor, w_new: torch.Tensor, t: float, *,
                 deploy: bool) -> int:
        """Program the weights selected by ``sel`` (padded (P, Q) bool) to targets ``w_new``
        (padded, clipped) with the device model. Returns the number of devices written."""
        dev, shape = self.device, self._g_prog.shape
        jitter = dev.deployment_jitter(w_new, self.generator) if deploy else None
        if jitter is not None:
            w_new = torch.clamp(w_new + jitter, -self.cfg.w_max, self.cfg.w_max)
        # noise and ν are drawn for every device (the seeded sequence does not depend on which
        # weights are written), then only the box of rows and columns holding a selected weight
        # is touched (a readout update: a few rows)
        g, nu = dev.program_devices(w_new.abs() / self.cfg.w_max, shape, self.generator,
                                    deploy=deploy)
        self._version += 1
        box = self._box(sel)
        if box is None:
            return 0
        rc = box[2:]
        set_mask, reset_mask = dev.write_masks(self._w_target[rc], w_new[rc], sel[rc])
        bshape = shape[:2] + set_mask.shape[-2:]
        prog = set_mask.unsqueeze(1).expand(bshape)  # devices SET to a new target
        write = (set_mask | reset_mask).unsqueeze(1).expand(bshape)  # ... or RESET to 0 µS
        # in place: the state tensors are never handed out (accessors return copies)
        self._g_prog[box] = torch.where(prog, g[box], torch.where(write, 0.0, self._g_prog[box]))
        self._nu[box] = torch.where(prog, nu[box], torch.where(write, 0.0, self._nu[box]))
        self._t_prog[box] = torch.where(write, t, self._t_prog[box])
        self._counts[box] += write.long()
        self._w_target[rc] = torch.where(sel[rc], w_new[rc], self._w_target[rc])
        return int(write.sum())

    @staticmethod
    def _box(sel: torch.Tensor) -> tuple[slice, ...] | None:
        """The (2, N, rows, cols) slice of the smallest box holding every True of ``sel``
        (P, Q); None when there is none."""
        rows = torch.nonzero(sel.any(dim=1))
        if rows.numel() == 0:
            return None
        cols = torch.nonzero(sel.any(dim=0))
        return (slice(None), slice(None), slice(int(rows[0]), int(rows[-1]) + 1),
                slice(int(cols[0]), int(cols[-1]) + 1))

    def _pad(self, w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self._w_target.shape, dtype=self.dtype)
        out[:self.n_post, :self.n_pre] = w.to(self.dtype)
        return out

    def _check_matrix(self, name: str, w: torch.Tensor) -> None:
        check_tensor(name, w, min_dim=2)
        if tuple(w.shape) != self.shape:
            raise ShapeError(f'{name}: expected shape {self.shape}, got {tuple(w.shape)}')

    def program(self, w: torch.Tensor, t: float) -> int:
        """Program every weight to ``clip(w, ±w_max)`` at time ``t`` (initial deployment).

        ``paper_code``: jitter U(−a, a) per weight instead of programming noise (as the code's
        ``init_weights``; not on exact zeros); ``physical``: programming noise per device.
        Weights that are exactly 0 (padding of a packed matrix, the w_rec diagonal) leave their
        devices RESET at 0 µS.

        Args:
            w: weights [1], shape (n_post, n_pre).
            t: emulator time [s]; becomes ``t_prog`` of every written device.

        Returns:
            Number of devices written (SET to a non-zero target, or RESET from a non-zero one).

        Raises:
            ValueError: ``w`` not floating point or not finite, ``t`` not finite.
            ShapeError: ``w`` not (n_post, n_pre).
        """
        self._check_matrix('w', w)
        t = check_time('t', t)
        with torch.no_grad():
            w_new = torch.clamp(self._pad(w.detach()), -self.cfg.w_max, self.cfg.w_max)
            sel = torch.zeros_like(w_new, dtype=torch.bool)
            sel[:self.n_post, :self.n_pre] = True
            return self._program(sel, w_new, t, deploy=True)

    def reprogram(self, w: torch.Tensor, mask: torch.Tensor, t: float) -> int:
        """Program only the weights selected by ``mask`` to ``clip(w, ±w_max)`` at time ``t``.

        Used to restore meta-learned weights after a task (or any partial write): the selected
        weights' devices are written as by :meth:`update` (programming noise, new ν,
        ``t_prog = t``; the other polarity RESET on a sign change); all others are untouched.

        Args:
            w: target weights [1], shape (n_post, n_pre) (only masked entries are used).
            mask: bool, shape (n_post, n_pre): the weights to write.
            t: emulator time [s].

        Returns:
            Number of devices written.

        Raises:
            ValueError: ``w`` not floating point / not finite, ``mask`` not bool, ``t`` not finite.
            ShapeError: ``w`` or ``mask`` not (n_post, n_pre).
        """
        self._check_matrix('w', w)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f'mask: expected a bool tensor, got {getattr(mask, "dtype", mask)}')
        if tuple(mask.shape) != self.shape:
            raise ShapeError(f'mask: expected shape {self.shape}, got {tuple(mask.shape)}')
        t = check_time('t', t)
        if not bool(mask.any()):
            return 0
        with torch.no_grad():
            w_new = torch.clamp(self._pad(w.detach()), -self.cfg.w_max, self.cfg.w_max)
            sel = torch.zeros_like(w_new, dtype=torch.bool)
            sel[:self.n_post, :self.n_pre] = mask
            return self._program(sel, w_new, t, deploy=False)

    def update(self, delta_w: torch.Tensor, t: float, generator: torch.Generator | None = None
               ) -> int:
        """Apply one on-chip update at time ``t``; return the number of devices programmed.

        ΔW is rounded to ``delta_w_step`` (deterministic or stochastic per
        ``stochastic_rounding``), then written by :meth:`add`.

        Args:
            delta_w: update [1], shape (n_post, n_pre).
            t: emulator time [s].
            generator: random generator for stochastic rounding (``None``: the crossbar's own).

        Returns:
            Number of devices written (N per changed weight, 2N for a sign flip).

        Raises:
            ValueError: ``delta_w`` not floating point or not finite, ``t`` not finite.
            ShapeError: ``delta_w`` not (n_post, n_pre).
        """
        self._check_matrix('delta_w', delta_w)
        cfg = self.cfg
        with torch.no_grad():
            dq = quantize_delta(delta_w.detach(), cfg.delta_w_step,
                                stochastic=cfg.stochastic_rounding,
                                generator=generator if generator is not None else self.generator)
        return self.add(dq, t)

    def add(self, dq: torch.Tensor, t: float) -> int:
        """Write an update that is already on the grid; return the devices programmed.

        For every weight with dq ≠ 0 the new target is clip(w_read(t) + dq, ±w_max), where
        w_read is the noise-free read without drift compensation (program-and-verify starts from
        what the device holds now). Only those weights' devices are written: the active polarity
        SET afresh (new programming noise, new ν, t_prog = t), the other polarity RESET when the
        sign flips or the weight becomes 0. No rounding here (:meth:`update` rounds first).

        Args:
            dq: update on the ``delta_w_step`` grid [1], shape (n_post, n_pre).
            t: emulator time [s]; becomes ``t_prog`` of the written devices.

        Returns:
            Number of devices written, counted by the device model (N per changed weight, 2N
            for a sign flip).

        Raises:
            ValueError: ``dq`` not floating point or not finite, or ``t`` not finite;
            ShapeError: ``dq`` not (n_post, n_pre).
        """
        self._check_matrix('dq', dq)
        t = check_time('t', t)
        cfg = self.cfg
        with torch.no_grad():
            dq = self._pad(dq.detach())
            sel = dq != 0
            if not bool(sel.any()):
                return 0
            w_read = self._w_target.clone()  # the devices hold the targets exactly (ideal)
            box = self._box(sel)
            if not self.device.ideal and box is not None:
                # what the written weights' devices hold now (only those are used)
                w_read[box[2:]] = self._weights_of(self._g_in(box, t)[1])
            w_new = torch.clamp(w_read + dq, -cfg.w_max, cfg.w_max)
            return self._program(sel, w_new, t, deploy=False)

    # ---- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return copies of the whole state (padded tensors, generator state)."""
        return {'g_prog': self._g_prog.clone(), 'nu': self._nu.clone(),
                't_prog': self._t_prog.clone(), 'program_counts': self._counts.clone(),
                'w_target': self._w_target.clone(),
                'generator_state': self.generator.get_state().clone()}

    def save(self, path: str | Path) -> None:
        """Write the whole device state to ``path`` atomically (safetensors + JSON metadata).

        The file holds g_prog, nu, t_prog, program counts, the target copy, the generator state
        and metadata: format version, :func:`state_config_hash`, the pcm config, shape, dtype.
        It is written to a temporary file in the same folder, flushed to disk and renamed, so a
        crash leaves either the old or the new file.
        """
        from safetensors.torch import save_file

        path = Path(path)
        meta = {'format': 'l2l_nmhw_ros.pcm.crossbar', 'format_version': str(FORMAT_VERSION),
                'state_config_hash': state_config_hash(self.cfg),
                'pcm_config': json.dumps(to_dict(self.cfg), sort_keys=True),
                'n_post': str(self.n_post), 'n_pre': str(self.n_pre),
                'dtype': str(self.dtype).removeprefix('torch.')}
        atomic_write(path, lambda tmp: save_file(self.state_dict(), tmp, metadata=meta))

    @classmethod
    def load(cls, path: str | Path, cfg: PCMConfig, *, n_post: int | None = None,
             n_pre: int | None = None, generator: torch.Generator | None = None) -> Crossbar:
        """Restore a crossbar saved by :meth:`save`; drift continues on the same clock.

        The file is parsed without pickle (safetensors: a JSON header and raw little-endian
        arrays) and every array is checked before it is used (:func:`check_state`): names, shapes
        and dtypes as this config and shape make them, finite values, and the physical ranges
        (conductances in [0, g_max] µS, ν in [0, :func:`nu_upper_bound`], |t_prog| ≤
        :data:`T_PROG_MAX` s, program counts in [0, :data:`PROGRAM_COUNT_MAX`], targets within
        ±w_max, never-programmed devices at 0). Integrity of the bytes (bit rot, a truncated
        copy) is the caller's checksum's business; this catches what a checksum cannot: a state
        written wrongly, or edited and re-hashed.

        Args:
            path: state file.
            cfg: the current ``pcm`` config; must agree with the file on
                :data:`STATE_CONFIG_FIELDS`.
            n_post, n_pre: expected shape (checked when given).
            generator: generator to use from now on (``None``: a new one restored to the saved
                generator state, so the noise sequence continues as if never stopped).

        Raises:
            FileNotFoundError: no such file.
            CheckpointError: not a readable crossbar state file, another format version, a
                config that disagrees (the differing fields are named), another shape, or an
                array that fails a check (its name and the violated bound are named).
        """
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'crossbar state file not found: {path}')
        try:
            with safe_open(str(path), framework='pt') as fh:
                meta = fh.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f'{path}: not a readable crossbar state file ({exc})') from exc
        if meta.get('format') != 'l2l_nmhw_ros.pcm.crossbar':
            raise CheckpointError(f'{path}: not a crossbar state file')
        if meta.get('format_version') != str(FORMAT_VERSION):
            raise CheckpointError(f'{path}: format version {meta.get("format_version")}, this '
                                  f'version reads {FORMAT_VERSION}')
        if meta.get('state_config_hash') != state_config_hash(cfg):
            try:
                saved = to_dict(from_dict({'pcm': json.loads(meta.get('pcm_config', '{}'))}).pcm)
            except (ConfigError, ValueError, TypeError, AttributeError):
                saved = {}
            now = to_dict(cfg)
            diff = [f'{k}: file {saved.get(k)!r} vs now {now[k]!r}' for k in STATE_CONFIG_FIELDS
                    if saved.get(k) != now[k]]
            raise CheckpointError(f'{path}: saved under another pcm config ('
                                  + ('; '.join(diff) or 'hash mismatch') + ')')
        fp, fq = _meta_size(path, meta, 'n_post'), _meta_size(path, meta, 'n_pre')
        for name, want, got in (('n_post', n_post, fp), ('n_pre', n_pre, fq)):
            if want is not None and want != got:
                raise CheckpointError(f'{path}: crossbar of shape ({fp}, {fq}), expected '
                                      f'{name} = {want}')
        dtypes = {'float32': torch.float32, 'float64': torch.float64}
        if meta.get('dtype') not in dtypes:
            raise CheckpointError(f'{path}: dtype {meta.get("dtype")!r}, expected one of '
                                  f'{sorted(dtypes)}')
        dtype = dtypes[meta['dtype']]
        try:
            check_state(tensors, cfg, (fp, fq), dtype)
        except CheckpointError as exc:
            raise CheckpointError(f'{path}: {exc}') from exc
        xb = cls(cfg, fp, fq, generator, dtype=dtype)
        xb._g_prog, xb._nu = tensors['g_prog'], tensors['nu']
        xb._t_prog, xb._counts = tensors['t_prog'], tensors['program_counts']
        xb._w_target = tensors['w_target']
        if generator is None:
            xb.generator.set_state(tensors['generator_state'])
        xb._version += 1
        return xb


#: Largest |t_prog| [s] a state file may hold: ~3170 years on the emulator clock (ROS time counts
#: from 1970, about 1.7e9 s today). A larger value is a corrupt file, not a clock.
T_PROG_MAX = 1e11
#: Largest program count of one device a state file may hold (PCM endurance is 1e6 to 1e9
#: SET/RESET cycles; 1e12 is beyond any device).
PROGRAM_COUNT_MAX = 10**12
#: ν is sampled as |N(μ_ν, σ_ν²)| with μ_ν, σ_ν clipped to ``nu_mean_bounds``,
#: ``nu_std_bounds``; a value above the largest μ_ν plus this many largest σ_ν (probability
#: below 1e-23 per device) is refused.
NU_SIGMAS = 10.0
#: Relative slack on the g_max bound (float rounding of g_max · |w| / w_max).
_G_MAX_SLACK = 1e-6


def nu_upper_bound(cfg: PCMConfig) -> float:
    """Largest drift exponent [1] a saved state may hold: 0 without drift (``drift`` off or the
    ``ideal`` preset), else ``nu_mean_bounds[1] + NU_SIGMAS · nu_std_bounds[1]``."""
    if not device_model(cfg).drift_on:
        return 0.0
    return float(cfg.nu_mean_bounds[1] + NU_SIGMAS * cfg.nu_std_bounds[1])


def _meta_size(path: Path, meta: dict[str, str], key: str) -> int:
    """Return the positive int size ``meta[key]`` of a state file, or raise CheckpointError."""
    value = meta.get(key)
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise CheckpointError(f'{path}: metadata {key} is {value!r}, expected a positive int')
    return int(value)


def check_state(tensors: dict[str, torch.Tensor], cfg: PCMConfig, shape: tuple[int, int],
                dtype: torch.dtype) -> None:
    """Check the arrays of a crossbar state file before they are used.

    Expected (P, Q = shape padded to whole ``tile_size`` tiles, N = ``n_devices``):

    ==================  ==========================  =================================
    array               shape, dtype                values
    ==================  ==========================  =================================
    ``g_prog`` [µS]     (2, N, P, Q), ``dtype``     0 ≤ g ≤ g_max (1 + 1e-6)
    ``nu`` [1]          (2, N, P, Q), ``dtype``     0 ≤ ν ≤ :func:`nu_upper_bound`
    ``t_prog`` [s]      (2, N, P, Q), float64       |t_prog| ≤ :data:`T_PROG_MAX`
    ``program_counts``  (2, N, P, Q), int64         0 ≤ n ≤ :data:`PROGRAM_COUNT_MAX`
    ``w_target`` [1]    (P, Q), ``dtype``           |w| ≤ w_max; 0 outside (n_post, n_pre)
    ``generator_state`` a CPU generator's, uint8    (any bytes)
    ==================  ==========================  =================================

    All floating-point values finite; a device never programmed (count 0, padding included)
    holds 0 µS, ν = 0 and t_prog = 0, as a fresh crossbar does.

    Args:
        tensors: the arrays read from the file, by name.
        cfg: the ``pcm`` configuration the state is loaded under.
        shape: (n_post, n_pre) of the weight matrix.
        dtype: conductance dtype recorded in the file (float32 or float64).

    Raises:
        CheckpointError: the first check that fails, naming the array and the bound.
    """
    t = cfg.tile_size
    pq = (math.ceil(shape[0] / t) * t, math.ceil(shape[1] / t) * t)
    dev = (2, cfg.n_devices) + pq
    gen_state = torch.Generator().get_state()
    want = {'g_prog': (dev, dtype), 'nu': (dev, dtype), 't_prog': (dev, torch.float64),
            'program_counts': (dev, torch.int64), 'w_target': (pq, dtype),
            'generator_state': (tuple(gen_state.shape), gen_state.dtype)}
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise CheckpointError(f'unexpected arrays {extra}')
    for key, (shp, dt) in want.items():
        got = tensors.get(key)
        if got is None:
            raise CheckpointError(f'array {key!r} missing')
        if tuple(got.shape) != shp or got.dtype != dt:
            raise CheckpointError(f'array {key!r} is {tuple(got.shape)} {got.dtype}, expected '
                                  f'{shp} {dt}')
    for key in ('g_prog', 'nu', 't_prog', 'w_target'):
        bad = int((~torch.isfinite(tensors[key])).sum())
        if bad:
            raise CheckpointError(f'array {key!r} holds {bad} non-finite values (NaN or inf)')
    bounds = (('g_prog', 0.0, cfg.g_max * (1.0 + _G_MAX_SLACK), 'µS'),
              ('nu', 0.0, nu_upper_bound(cfg), ''),
              ('t_prog', -T_PROG_MAX, T_PROG_MAX, 's'),
              ('program_counts', 0, PROGRAM_COUNT_MAX, ''),
              ('w_target', -cfg.w_max, cfg.w_max, ''))
    for key, lo, hi, unit in bounds:
        x = tensors[key]
        x_min, x_max = x.min().item(), x.max().item()
        if x_min < lo or x_max > hi:
            u = f' {unit}' if unit else ''
            raise CheckpointError(f'array {key!r} spans [{x_min:.6g}, {x_max:.6g}]{u}, outside '
                                  f'the physical range [{lo:.6g}, {hi:.6g}]{u}')
    never = tensors['program_counts'] == 0
    for key in ('g_prog', 'nu', 't_prog'):
        n = int((never & (tensors[key] != 0)).sum())
        if n:
            raise CheckpointError(f'array {key!r}: {n} devices never programmed (count 0) hold '
                                  'a non-zero value')
    outside = tensors['w_target'].clone()
    outside[:shape[0], :shape[1]] = 0
    if bool((outside != 0).any()):
        raise CheckpointError("array 'w_target': non-zero targets in the tile padding")
