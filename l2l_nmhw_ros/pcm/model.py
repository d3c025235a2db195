"""Differentiable functional PCM model for meta-training and trials (:class:`PCMModel`).

The model works on *effective weights* ``w_eff`` in weight units (what the crossbar would read,
without read noise) and has no clock: time enters through the preset.

Weight ↔ conductance mapping: a weight w ∈ [−w_max, w_max] is stored on a differential pair,
``g = g_max · |w| / w_max`` on the N = ``n_devices`` devices of the G+ side (w > 0) or of the G−
side (w < 0); the other side is RESET (0 µS); a read averages the N devices of each side:
``w = w_max · (mean(G+) − mean(G−)) / g_max``. Devices whose target is 0 µS are RESET and carry no
noise (as in the paper code, which adds noise only to the active polarity).

Presets (``cfg.preset``): the device physics of each is the preset's
:class:`~l2l_nmhw_ros.pcm.device_model.DeviceModel` (``PCMModel.device``), the same object type
:class:`~l2l_nmhw_ros.pcm.crossbar.Crossbar` uses; this class adds the batched, clock-free and
differentiable interface.

``paper_code``
    Reproduces ``online_learning_robot/module/pcm.py::PCMNoise`` of Ortner et al. 2025:
    programming noise and drift are drawn **once per weight** (the code's noise acts on the weight
    value g = g_max·w, as if N = 1), drift uses the fixed ratio t/t0 = ``drift_t_ratio`` (32) and
    is applied to the *target* weight (not to the noisy programmed value), deployment adds a jitter
    U(−a, a) instead of programming noise, and read noise uses Q_s(g) with g in µS,
    ln((t + t_read)/t_read) at t = ``read_noise_t`` (32) and a factor 1/sqrt(N) (N = 2 devices
    averaged). The code's noise terms are differences to the *unclipped* target, so a target
    |w| > w_max loses its excess again: without noise and drift w_eff = clip(2·clip(w) − w)
    (1.1 → 0.9, 2 → 0); with drift, w = 1.1 gives about 0.83 and w = 2 about 0, where the
    crossbar (which clips the target first) gives about 0.84 for both. Quirk kept on purpose: the
    published checkpoint has 10.8 % of |W_in| > 1 and was meta-trained with it (docs/pcm.md).
``physical``
    aihwkit's PCMLikeNoiseModel per device: each of the N devices of the active polarity gets its
    own programming noise and drift exponent ν; drift and read noise are evaluated at
    ``t_inference`` seconds after programming, i.e. t/t0 = (t_inference + t0)/t0; Q_s(ĝ) with
    ĝ = g/g_max; ln((t + t_read)/(2 t_read)); the average of N devices divides every independent
    noise SD by sqrt(N). No jitter, no quirk (targets are clipped first). Q_s is evaluated at the
    read conductance |w_eff|·g_max/w_max (no per-device g_prog here; the crossbar uses g_prog as
    aihwkit does, ≈ 1.1× less read noise at t/t0 = 32).
``ideal``
    Ideal devices, as the paper code's noise-free ``PCM`` class: deploy is the identity (no
    clipping, unlike the crossbar), reprogram is w + quantize(ΔW), reads are exact. ΔW
    quantisation still applies (``delta_w_step``).

Gradients: device noise is sampled under ``no_grad`` and enters straight-through, as do clipping
and quantisation; each method states its gradient. (The paper code lets the drift factor through
the gradient, d w_eff/d w = (t/t0)^−ν; this model follows the project contract, d w_eff/d w = 1.)

References:
    Ortner et al., Nat. Commun. 16 (2025), code ``module/pcm.py``, ``functional/quantize.py``;
    Nandakumar et al., ICECS 2019; IBM aihwkit ``PCMLikeNoiseModel``.
"""

from __future__ import annotations

import math
import weakref

import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.pcm._checks import broadcast_batch, check_tensor
from l2l_nmhw_ros.pcm.device_model import device_model

__all__ = ['PCMModel', 'quantize_delta']


def quantize_delta(delta_w: torch.Tensor, step: float, *, stochastic: bool,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Round ΔW to the grid ``step`` (no gradient; see :meth:`PCMModel.quantize`).

    Deterministic: ``round(ΔW / step) · step`` (round half to even, as ``tf.math.round`` in the
    paper code). Stochastic: truncate toward zero to the grid, then add ``sign(ΔW) · step`` with
    probability equal to the remaining fraction (paper code ``quantize_stochastic``; unbiased).
    ``step == 0`` returns ΔW unchanged.
    """
    with torch.no_grad():
        if step == 0.0:
            return delta_w.clone()
        r = delta_w / step
        if not stochastic:
            return torch.round(r) * step
        r_trunc = torch.trunc(r)
        frac = (r - r_trunc).abs()
        u = torch.rand(r.shape, generator=generator, dtype=r.dtype, device=r.device)
        return (r_trunc + torch.sign(r) * (u < frac).to(r.dtype)) * step


def _straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Return ``value`` in the forward pass with the gradient of ``x`` (d out / d x = 1)."""
    return x + (value - x).detach()


def matmul_rows(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Return y = x @ wᵀ for x (..., n_pre), w (..., n_post, n_pre); batch dims broadcast."""
    if w.dim() == 2:
        return x @ w.transpose(0, 1)
    if x.dim() == 3 and w.dim() == 3 and x.shape[1] == w.shape[0] and w.shape[0] > 1:
        # a whole trial (time, batch, n_pre) on per-task matrices: one batched GEMM over the
        # tasks instead of a broadcast that copies every matrix once per step
        return torch.bmm(x.transpose(0, 1), w.transpose(1, 2)).transpose(0, 1)
    # row-vector form: about 2x faster than matmul(w, x[..., None]) for (90, 252, 255) on CPU
    return torch.matmul(x.unsqueeze(-2), w.transpose(-1, -2)).squeeze(-2)


class PCMModel:
    """Functional PCM model: deploy, quantise, reprogram and read weights (see module docstring).

    Weights have shape (..., n_post, n_pre) in weight units; leading batch dims are allowed and
    broadcast. float32 by default; float64 works (noise is drawn in the input's dtype and device).
    The device physics comes from :attr:`device`, the preset's
    :class:`~l2l_nmhw_ros.pcm.device_model.DeviceModel` (the same one :class:`Crossbar` uses).

    Args:
        cfg: the ``pcm`` configuration section.

    Raises:
        ValueError: ``cfg`` is not a PCMConfig.

    Note:
        :meth:`mvm` caches the read-noise variance of the last ``w_eff`` it saw (same object,
        unchanged version counter), so a trial that reads one weight tensor at every step pays
        for it once.
    """

    def __init__(self, cfg: PCMConfig) -> None:
        self.device = device_model(cfg)
        self.cfg = cfg
        self._sd_cache: tuple[weakref.ref[torch.Tensor], int, torch.Tensor] | None = None

    @property
    def preset(self) -> str:
        """The preset name: ``paper_code``, ``physical`` or ``ideal``."""
        return self.device.name

    @property
    def exact_reads(self) -> bool:
        """True when :meth:`mvm` is the exact product (``ideal`` preset or ``read_noise`` off)."""
        return self.device.exact_reads

    # ---- public API ---------------------------------------------------------------------------
    def deploy(self, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Program meta-learned weights into PCM for the first time and return ``w_eff``.

        - ``paper_code``: w_eff = clip(clip(w) + U(−a, a) + [clip(w·32^−ν) − w]) with a =
          ``deploy_jitter`` (0.01; on when ``prog_noise``; not on exact zeros, which are unused
          devices), ν per weight (on when ``drift``), no programming noise (paper code
          ``PCMNoise.init_weights``). A target |w| > w_max loses its excess again (w = 1.1 gives
          about 0.83 where the crossbar gives 0.84; w = 2 gives about 0; see
          :mod:`l2l_nmhw_ros.pcm.device_model`).
        - ``physical``: every device of the active polarity programmed to clip(w) with its own
          noise and ν, read back at t_inference after programming (see module docstring).
        - ``ideal``: identity (no clipping; the crossbar clips to ±w_max).

        Args:
            w: weights [1], shape (..., n_post, n_pre).
            generator: random generator (``None``: torch's default generator).

        Returns:
            w_eff [1], shape of ``w``, within ±w_max except in ``ideal`` (there ``w`` itself).

        Gradient: straight-through, d w_eff / d w = 1 (noise, drift and clipping pass).

        Raises:
            ValueError: ``w`` is not a floating-point tensor or has NaN/inf.
            ShapeError: ``w`` has fewer than 2 dims.
        """
        check_tensor('w', w, min_dim=2)
        if self.device.ideal:  # exact devices, no clipping: the weights themselves
            return w
        with torch.no_grad():
            value = self.device.deploy_weights(w.detach(), generator)
        return _straight_through(w, value)

    def quantize(self, delta_w: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Round ΔW to the ``delta_w_step`` grid (1/16), deterministically or stochastically
        (``stochastic_rounding``); see :func:`quantize_delta`.

        Args:
            delta_w: weight update [1], any shape.
            generator: random generator for stochastic rounding.

        Returns:
            ΔW_q [1], shape of ``delta_w``, multiples of ``delta_w_step``.

        Gradient: straight-through, d ΔW_q / d ΔW = 1 (paper code ``quantize_10``).

        Raises:
            ValueError: ``delta_w`` is not a floating-point tensor or has NaN/inf.
        """
        check_tensor('delta_w', delta_w)
        q = quantize_delta(delta_w.detach(), self.cfg.delta_w_step,
                           stochastic=self.cfg.stochastic_rounding, generator=generator)
        return _straight_through(delta_w, q)

    def reprogram(self, w_eff: torch.Tensor, delta_w: torch.Tensor,
                  generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one on-chip update: quantise ΔW, re-program only the weights whose ΔW_q ≠ 0.

        With w = w_eff + ΔW_q and mask = (ΔW_q ≠ 0):

        - ``paper_code``: w_new = clip(clip(w) + prog_noise(w, mask) + drift(w, mask)), noise and
          ν drawn per weight on the mask only (paper code ``PCMNoise.re_program``/``program``).
        - ``physical``: masked entries are programmed afresh from clip(w) on N devices each;
          unmasked entries keep w_eff.
        - ``ideal``: w_new = w (paper code's noise-free ``PCM.re_program``).

        Args:
            w_eff: current effective weights [1], shape (..., n_post, n_pre).
            delta_w: update [1], shape broadcastable with ``w_eff`` (same last two dims).
            generator: random generator.

        Returns:
            (w_new, n_programmed): w_new [1] of the broadcast shape; n_programmed int64 of the
            batch shape (all but the last two dims): the number of **devices** re-programmed, i.e.
            N (= ``n_devices``) per masked weight whose new target is non-zero, plus N for the
            other polarity's devices when a non-zero weight changes sign or becomes 0 (RESET).

        Gradient: straight-through w.r.t. ``w_eff`` and ``delta_w`` (d w_new / d w_eff =
        d w_new / d ΔW = 1).

        Raises:
            ValueError: non-floating or non-finite input.
            ShapeError: fewer than 2 dims, different (n_post, n_pre), or batch dims that do not
                broadcast.
        """
        check_tensor('w_eff', w_eff, min_dim=2)
        check_tensor('delta_w', delta_w, min_dim=2)
        if w_eff.shape[-2:] != delta_w.shape[-2:]:
            raise ShapeError(f'delta_w: expected (..., {w_eff.shape[-2]}, {w_eff.shape[-1]}) like '
                             f'w_eff, got {tuple(delta_w.shape)}')
        broadcast_batch('w_eff', w_eff.shape[:-2], 'delta_w', delta_w.shape[:-2])
        dq = self.quantize(delta_w, generator)
        w_t = w_eff + dq
        with torch.no_grad():
            wd = w_t.detach()
            mask = (dq.detach() != 0).expand_as(wd)
            value = self.device.reprogram_weights(wd, mask, generator)
            n_programmed = self.device.devices_written(w_eff.detach().expand_as(wd), wd, mask)
        return _straight_through(w_t, value), n_programmed

    def read_noise_sd(self, w_eff: torch.Tensor) -> torch.Tensor:
        """Return the read-noise SD of every weight [1] (weight units), no gradient.

        - ``paper_code``: σ = |g| Q_s(|g| in µS) sqrt(ln((t + t_read)/t_read)) / sqrt(N) with
          g = g_max·clip(w)/w_max and t = ``read_noise_t`` (paper code ``read_noise``).
        - ``physical``: σ = |g| Q_s(ĝ) sqrt(ln((t + t_read)/(2 t_read))) / sqrt(N), t =
          t_inference + t0 (aihwkit, one independent 1/f sample per device, N averaged).
        - ``ideal`` or ``read_noise`` off: 0.

        Args:
            w_eff: effective weights [1], shape (..., n_post, n_pre).

        Returns:
            σ [1], shape of ``w_eff``.
        """
        cfg = self.cfg
        with torch.no_grad():
            wd = w_eff.detach()
            if self.device.exact_reads:
                return torch.zeros_like(wd)
            g = torch.clamp(wd.abs(), max=cfg.w_max) * (cfg.g_max / cfg.w_max)
            sigma_g = self.device.read_noise_sd(g, cfg.t_inference, n_averaged=cfg.n_devices)
            return sigma_g * (cfg.w_max / cfg.g_max)

    def _cached_var(self, w_eff: torch.Tensor) -> torch.Tensor:
        """σ² of every weight, cached for the last ``w_eff`` seen (same object and version)."""
        c = self._sd_cache
        if c is not None and c[0]() is w_eff and c[1] == w_eff._version:
            return c[2]
        sd = self.read_noise_sd(w_eff)
        var = sd * sd
        self._sd_cache = (weakref.ref(w_eff), w_eff._version, var)
        return var

    def mvm(self, x: torch.Tensor, w_eff: torch.Tensor, generator: torch.Generator | None = None,
            *, per_device: bool = False) -> torch.Tensor:
        """Return the analog MVM y = x @ w_effᵀ + read noise.

        Fast path (default): one Gaussian per output with SD sqrt(Σ_i σ_ji² x_i²), σ from
        :meth:`read_noise_sd`; this is exactly the distribution of the per-device path
        (``per_device=True``: a fresh Gaussian on every weight, then the MVM), because a sum of
        independent Gaussians is Gaussian with the summed variance. The paper code clips the noisy
        conductance to [0, g_max]; reads here are not clipped (a measurement, documented in
        docs/pcm.md; the difference is < 1e-3 in weight units at |w| = w_max).

        Args:
            x: input [1], shape (..., n_pre) (spikes or rates; batch dims broadcast with w_eff's).
            w_eff: effective weights [1], shape (..., n_post, n_pre).
            generator: random generator for the read noise.
            per_device: draw the noise per weight instead of per output (slow reference path).

        Returns:
            y [1], shape (broadcast batch..., n_post). Exactly the float MVM when read noise is
            off (``ideal`` preset or ``read_noise: false``).

        Gradient: that of x @ w_effᵀ; the noise is added straight-through (no gradient).

        Raises:
            ValueError: non-floating input, or NaN/inf in ``x`` or ``w_eff``.
            ShapeError: ``w_eff`` not (..., n_post, n_pre) with n_pre = x.shape[-1], or batch dims
                that do not broadcast.
        """
        check_tensor('x', x, min_dim=1, finite=False)
        check_tensor('w_eff', w_eff, min_dim=2, finite=False)
        if x.shape[-1] != w_eff.shape[-1]:
            raise ShapeError(f'x: expected (..., {w_eff.shape[-1]}) to match w_eff '
                             f'{tuple(w_eff.shape)}, got {tuple(x.shape)}')
        if w_eff.dim() > 2:
            broadcast_batch('x', x.shape[:-1], 'w_eff', w_eff.shape[:-2])
        y = matmul_rows(x, w_eff)
        if not math.isfinite(float(y.detach().sum())):
            # one cheap check on the output (NaN/inf in x or w_eff reach it); name the culprit
            check_tensor('x', x)
            check_tensor('w_eff', w_eff)
        if self.device.exact_reads:
            return y
        with torch.no_grad():
            var_w = self._cached_var(w_eff)
            xd = x.detach()
            if per_device:
                sd = torch.sqrt(var_w)
                shape = torch.broadcast_shapes(xd.shape[:-1], w_eff.shape[:-2]) + w_eff.shape[-2:]
                xi = torch.randn(shape, generator=generator, dtype=sd.dtype, device=sd.device)
                noise = matmul_rows(xd, sd * xi)
            else:
                var = matmul_rows(xd * xd, var_w)  # sums of non-negative terms: var >= 0
                xi = torch.randn(var.shape, generator=generator, dtype=var.dtype,
                                 device=var.device)
                sd_y = var.sqrt_()
        if per_device:
            return y + noise
        return torch.addcmul(y, sd_y, xi)  # noise enters straight-through (no grad on it)
