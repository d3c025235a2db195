"""One device model per PCM preset: the device physics both PCM paths use (:class:`DeviceModel`).

The batched functional model (:class:`~l2l_nmhw_ros.pcm.model.PCMModel`: clock-free,
differentiable; meta-training and evaluation) and the stateful emulator
(:class:`~l2l_nmhw_ros.pcm.crossbar.Crossbar`: per-device state on a clock; the accelerator node)
take every piece of device physics from the object :func:`device_model` returns for
``cfg.preset``, one class per preset:

========================  ==================================================================
:class:`PaperCodeDevice`  ``paper_code``: the paper code's ``PCMNoise`` (fixed t/t0 = 32, its
                          read-noise variant, draws once per weight, deployment jitter)
:class:`PhysicalDevice`   ``physical``: aihwkit's ``PCMLikeNoiseModel`` per device, on the
                          time since programming
:class:`IdealDevice`      ``ideal``: ideal devices (no noise, no drift, exact reads)
========================  ==================================================================

What a device model defines, each written once here on top of the fitted formulas of
:mod:`l2l_nmhw_ros.pcm.device` (the single source of the fits):

- programming: :meth:`~DeviceModel.deployment_jitter`, :meth:`~DeviceModel.programming_noise`,
  :meth:`~DeviceModel.sample_nu` and their composition :meth:`~DeviceModel.program_devices`
  (g_prog, ν of freshly programmed devices);
- drift: :meth:`~DeviceModel.t_ratio`, :meth:`~DeviceModel.drift_factor`;
- reads: :meth:`~DeviceModel.read_noise_sd` (1/f noise SD of a device, or of the average of N);
- device counting of a write: :meth:`~DeviceModel.write_masks`,
  :meth:`~DeviceModel.devices_written`;
- the batched model's read-back after (re)programming, :meth:`~DeviceModel.deploy_weights` and
  :meth:`~DeviceModel.reprogram_weights`, composed from the above (with the paper code's
  weight-level conventions in ``paper_code``, see below).

Time enters as ``t_since``, the time since programming [s]: a float (the batched model reads
every weight at one time, ``t_inference``) or a float64 tensor (the crossbar's per-device ages).
``paper_code`` and ``ideal`` ignore it (no clock).

Where the two paths differ, on purpose (the tests in ``test/unit/test_pcm_paths_agree.py`` pin
each difference):

- **Targets beyond ±w_max.** The crossbar clips every target to ±w_max first, in every preset (a
  device pair cannot hold more than g_max). The batched model clips first in ``physical`` only:
  in ``paper_code`` it keeps the paper code's quirk (its noise terms are differences to the
  *unclipped* target, so a target w with |w| > w_max loses its excess again: without noise and
  drift clip(2·clip(w) − w), e.g. 1.1 → 0.9 and 2 → 0); in ``ideal`` it does not clip at all
  (the paper code's noise-free ``PCM`` class, the "4-bit software" reference). Within ±w_max
  the ideal paths agree exactly.
- **Where paper_code drift acts.** The batched model multiplies the *target* weight by the drift
  factor (the code's ``drift_noise``); the crossbar drifts each device's programmed (noisy or
  jittered) conductance: the deployed SD differs by the second-order term
  (noise or jitter) × (1 − 32^−ν).
- **physical read noise.** The crossbar evaluates Q_s at each device's programmed conductance
  (aihwkit); the batched model keeps no g_prog and evaluates it at the read (drifted, averaged)
  conductance |w_eff|·g_max/w_max, which is about (32^−ν)^−0.65 ≈ 1.1× larger at t/t0 = 32.

References:
    Nandakumar et al., ICECS 2019; IBM aihwkit ``PCMLikeNoiseModel``; Ortner et al., Nat. Commun.
    16 (2025) and its code ``online_learning_robot/module/pcm.py`` (``PCMNoise``, ``PCM``).
"""

from __future__ import annotations

import abc
import math
import weakref
from typing import ClassVar

import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import ConfigError
from l2l_nmhw_ros.pcm import device

__all__ = ['PRESETS', 'DeviceModel', 'IdealDevice', 'PaperCodeDevice', 'PhysicalDevice',
           'device_model']

#: Time since programming [s]: one float for all devices, or a float64 tensor per device.
TimeSince = float | torch.Tensor


class DeviceModel(abc.ABC):
    """Device physics of one preset (base class; see the module docstring).

    The base class holds what every preset shares (the switches, programming from ĝ, device
    counting); subclasses set the preset's noise and time conventions. Methods draw random
    numbers only where the preset has the effect switched on, in a fixed order, so a seeded
    generator gives the same numbers on every call path.

    Args:
        cfg: the ``pcm`` configuration.

    Raises:
        ValueError: ``cfg`` is not a :class:`~l2l_nmhw_ros.config.PCMConfig`.
    """

    #: ``cfg.preset`` value of this model.
    name: ClassVar[str] = ''
    #: Ideal devices: a write stores its target exactly and a read returns it.
    ideal: ClassVar[bool] = False
    #: Drift and read noise depend on the time since programming (the crossbar keeps ages).
    clocked: ClassVar[bool] = False
    #: Programming noise, jitter and ν are drawn once per weight and shared by its N devices.
    per_weight_draws: ClassVar[bool] = False

    def __init__(self, cfg: PCMConfig) -> None:
        if not isinstance(cfg, PCMConfig):
            raise ValueError(f'cfg: expected a PCMConfig, got {type(cfg).__name__}')
        self.cfg = cfg

    def __repr__(self) -> str:
        return f'{type(self).__name__}(preset={self.name!r})'

    # ---- switches (the config flags as this preset honours them) ------------------------------
    @property
    def prog_noise_on(self) -> bool:
        """Programming noise on re-programmed devices (``prog_noise``; never in ``ideal``)."""
        return not self.ideal and self.cfg.prog_noise

    @property
    def drift_on(self) -> bool:
        """Conductance drift (``drift``; never in ``ideal``)."""
        return not self.ideal and self.cfg.drift

    @property
    def read_noise_on(self) -> bool:
        """1/f read noise on every read (``read_noise``; never in ``ideal``)."""
        return not self.ideal and self.cfg.read_noise

    @property
    def exact_reads(self) -> bool:
        """True when a read (MVM) is the exact product of the stored weights (no read noise)."""
        return not self.read_noise_on

    # ---- programming ---------------------------------------------------------------------------
    def deployment_jitter(self, w: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor | None:
        """Return the jitter added to the targets at initial deployment, or None (no draw).

        Only ``paper_code`` has one (see :meth:`PaperCodeDevice.deployment_jitter`).

        Args:
            w: target weights [1], any shape.
            generator: random generator (``None``: torch's default generator).

        Returns:
            jitter [1] of the shape of ``w``, or None.
        """
        return None

    def programming_noise(self, g_hat: torch.Tensor, generator: torch.Generator | None, *,
                          deploy: bool = False) -> torch.Tensor | None:
        """Return additive programming noise σ_prog(ĝ)·ξ, ξ ~ N(0, 1) [µS], or None (no draw).

        One draw per element of ``g_hat`` (pass the per-device or the per-weight targets, see
        :attr:`per_weight_draws`). σ_prog from :func:`l2l_nmhw_ros.pcm.device.sigma_prog`.

        Args:
            g_hat: target conductance / g_max [1], any shape.
            generator: random generator (``None``: torch's default generator).
            deploy: initial deployment (``paper_code`` has jitter instead of programming noise).

        Returns:
            noise [µS] of the shape, dtype and device of ``g_hat``; None when off.

        References:
            Nandakumar et al., ICECS 2019; aihwkit ``apply_programming_noise_to_conductance``.
        """
        if not self.prog_noise_on:
            return None
        xi = torch.randn(g_hat.shape, generator=generator, dtype=g_hat.dtype,
                         device=g_hat.device)
        return device.sigma_prog(g_hat, self.cfg) * xi

    def sample_nu(self, g_hat: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor | None:
        """Draw drift exponents ν = |N(μ_ν(ĝ), σ_ν(ĝ)²)| [1], or return None when drift is off.

        Args:
            g_hat: target conductance / g_max [1], any shape (one ν per element).
            generator: random generator (``None``: torch's default generator).

        Returns:
            ν ≥ 0 [1] of the shape of ``g_hat``, or None.

        References:
            Nandakumar et al., ICECS 2019; aihwkit ``generate_drift_coefficients``.
        """
        if not self.drift_on:
            return None
        return device.sample_nu(g_hat, self.cfg, generator)

    def program_devices(self, g_hat: torch.Tensor, shape: tuple[int, ...],
                        generator: torch.Generator | None, *, deploy: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Program devices to targets ĝ: g_prog = clip(ĝ g_max + σ_prog(ĝ) ξ, 0, g_max), new ν.

        Draws programming noise first, then ν (each over the devices, or over the weights and
        shared by their devices when :attr:`per_weight_draws`).

        Args:
            g_hat: target conductance / g_max [1] in [0, 1], broadcastable to ``shape`` with
                size-1 dims where the devices of one weight are (crossbar: (P, Q) for
                (2, N, P, Q); batched model: (..., n_post, n_pre, 1) for (..., N)).
            shape: shape of the device tensor.
            generator: random generator (``None``: torch's default generator).
            deploy: initial deployment (see :meth:`programming_noise`).

        Returns:
            (g_prog [µS] in [0, g_max], ν [1]; 0 when drift is off), both of ``shape`` (may be
            expanded views).
        """
        if not self.per_weight_draws:
            g_hat = g_hat.expand(shape)
        g = g_hat * self.cfg.g_max
        noise = self.programming_noise(g_hat, generator, deploy=deploy)
        if noise is not None:
            g = torch.clamp(g + noise, 0.0, self.cfg.g_max)
        nu = self.sample_nu(g_hat, generator)
        if nu is None:
            nu = torch.zeros(shape, dtype=g.dtype, device=g.device)
        return g.expand(shape), nu.expand(shape)

    # ---- drift ---------------------------------------------------------------------------------
    def t_ratio(self, t_since: float) -> float:
        """Return t/t0 at which drift is evaluated ``t_since`` [s] after programming (1: none)."""
        return 1.0

    def drift_factor(self, nu: torch.Tensor, t_since: TimeSince) -> torch.Tensor:
        """Return g(t)/g_prog = (t/t0)^(−ν) of devices programmed ``t_since`` ago (1 when off).

        Args:
            nu: drift exponents [1], any shape.
            t_since: time since programming [s]: a float, or a float64 tensor broadcastable to
                ``nu`` (per device). Ignored by the presets without a clock.

        Returns:
            factor in (0, 1], shape and dtype of ``nu``.
        """
        return torch.ones_like(nu)

    # ---- reads ---------------------------------------------------------------------------------
    def read_noise_sd(self, g: torch.Tensor, t_since: TimeSince, *,
                      g_prog: torch.Tensor | None = None, n_averaged: int = 1) -> torch.Tensor:
        """Return the 1/f read-noise SD σ = g · Q_s · L(t) / sqrt(n_averaged) [µS].

        The SD of one read of a device at conductance ``g`` (``n_averaged = 1``), or of the mean
        of ``n_averaged`` devices at ``g`` with independent noise. Q_s and the log term L(t) are
        the preset's (:func:`~l2l_nmhw_ros.pcm.device.q_s_micro` /
        :func:`~l2l_nmhw_ros.pcm.device.q_s_hat`,
        :func:`~l2l_nmhw_ros.pcm.device.read_noise_log_term`).

        Args:
            g: read (drifted) conductance [µS], any shape.
            t_since: time since programming [s] (float or per-device float64 tensor).
            g_prog: programmed conductance [µS] where ``physical`` evaluates Q_s (aihwkit);
                default ``g``.
            n_averaged: devices averaged per read (≥ 1).

        Returns:
            σ [µS], shape and dtype of ``g``; zeros when read noise is off.
        """
        return torch.zeros_like(g)

    # ---- device counting -----------------------------------------------------------------------
    @staticmethod
    def write_masks(w_old: torch.Tensor, w_new: torch.Tensor,
                    selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return which polarities a write SETs and which it RESETs, per weight.

        A selected weight SETs the polarity of its new sign (none when the new target is 0) and
        RESETs the polarity of its old sign when the sign changes or the weight becomes 0.

        Args:
            w_old: weights before the write [1] (only the sign is used), shape (..., P, Q).
            w_new: new targets [1], same shape.
            selected: bool, same shape: the weights written.

        Returns:
            (set, reset): bool, shape (2 (+, −), ..., P, Q).
        """
        pol = torch.tensor([1.0, -1.0], dtype=w_new.dtype, device=w_new.device)
        pol = pol.view(2, *([1] * w_new.dim()))
        s_old, s_new = torch.sign(w_old), torch.sign(w_new)
        return selected & (s_new == pol), selected & (s_old == pol) & (s_new != pol)

    def devices_written(self, w_old: torch.Tensor, w_new: torch.Tensor,
                        selected: torch.Tensor) -> torch.Tensor:
        """Return the number of devices a write programs: N (= ``n_devices``) per SET or RESET
        polarity of :meth:`write_masks`, summed over the last two dims.

        Args:
            w_old, w_new, selected: as for :meth:`write_masks`, shape (..., P, Q).

        Returns:
            int64 tensor of the batch shape (...).
        """
        # per polarity p (+1, -1): SET where the new sign is p, RESET where the old sign is p and
        # the new one is not; written = SET or RESET (write_masks without the stacked copies)
        s_old, s_new = torch.sign(w_old), torch.sign(w_new)
        n = None
        for pol in (1.0, -1.0):
            new_p = s_new == pol
            written = (new_p | (s_old == pol)) & selected
            count = written.sum(dim=(-2, -1))
            n = count if n is None else n + count
        return n * self.cfg.n_devices

    # ---- the batched model's programming (weights in, read-back weights out) -------------------
    @abc.abstractmethod
    def deploy_weights(self, w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Return the weights the batched model reads after the initial deployment of ``w``.

        Args:
            w: target weights [1], shape (..., n_post, n_pre), no gradient.
            generator: random generator (``None``: torch's default generator).

        Returns:
            w_eff [1], shape and dtype of ``w`` (the caller adds the gradient straight-through).
        """

    @abc.abstractmethod
    def reprogram_weights(self, w: torch.Tensor, mask: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Return the weights the batched model reads after re-programming the masked weights.

        Args:
            w: new target weights [1] (w_eff + ΔW_q), shape (..., n_post, n_pre), no gradient.
            mask: bool, shape of ``w``: the weights re-programmed (ΔW_q ≠ 0).
            generator: random generator (``None``: torch's default generator).

        Returns:
            w_new [1], shape and dtype of ``w``; unmasked entries keep their value (clipped to
            ±w_max in ``paper_code``).
        """

    def _clip(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(w, -self.cfg.w_max, self.cfg.w_max)


class PaperCodeDevice(DeviceModel):
    """``paper_code``: the device model of the paper code's ``PCMNoise``.

    - drift at the fixed ratio t/t0 = ``drift_t_ratio`` (32), whatever the clock;
    - read noise σ = g · Q_s(g in µS) · sqrt(ln((``read_noise_t`` + t_read)/t_read)) (t = 32);
    - programming noise, ν and deployment jitter drawn once per weight (the code draws them per
      weight value), shared by the weight's N devices;
    - deployment: jitter U(−a, a) instead of programming noise.

    The batched model (:meth:`deploy_weights`, :meth:`reprogram_weights`) follows the code on
    the weight value: w_eff = clip(clip(w) + [noisy clip(w) − w] + [clip(w·32^−ν) − w]), i.e.
    drift multiplies the target and a target beyond ±w_max loses its excess again (quirk kept:
    the published checkpoint was meta-trained with it).

    References:
        Ortner et al. 2025 code, ``online_learning_robot/module/pcm.py``
        (``PCMNoise.init_weights``, ``program``, ``program_noise``, ``drift_noise``,
        ``read_noise``).
    """

    name = 'paper_code'
    per_weight_draws = True

    def deployment_jitter(self, w: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor | None:
        """Return U(−a, a) per weight, a = ``deploy_jitter`` (0.01), 0 where w = 0 (unused
        devices stay RESET); None (no draw) without programming noise or with a = 0.

        Args:
            w: target weights [1], any shape.
            generator: random generator (``None``: torch's default generator).

        Returns:
            jitter [1], shape of ``w``, or None.

        References:
            Ortner et al. 2025 code, ``PCMNoise.init_weights``.
        """
        cfg = self.cfg
        if not (self.prog_noise_on and cfg.deploy_jitter > 0):
            return None
        u = torch.rand(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        return (2.0 * u - 1.0) * cfg.deploy_jitter * (w != 0)

    def programming_noise(self, g_hat: torch.Tensor, generator: torch.Generator | None, *,
                          deploy: bool = False) -> torch.Tensor | None:
        """As :meth:`DeviceModel.programming_noise`; none at deployment (jitter instead)."""
        if deploy:
            return None
        return super().programming_noise(g_hat, generator)

    def t_ratio(self, t_since: float) -> float:
        """Return ``drift_t_ratio`` (32) whatever the time."""
        return self.cfg.drift_t_ratio

    def drift_factor(self, nu: torch.Tensor, t_since: TimeSince) -> torch.Tensor:
        """Return 32^(−ν) (t/t0 = ``drift_t_ratio``; ``t_since`` ignored); 1 when drift is off."""
        if not self.drift_on:
            return torch.ones_like(nu)
        return device.drift_factor(nu, self.cfg.drift_t_ratio)

    def read_noise_sd(self, g: torch.Tensor, t_since: TimeSince, *,
                      g_prog: torch.Tensor | None = None, n_averaged: int = 1) -> torch.Tensor:
        """Return σ = g · Q_s(g in µS) · sqrt(ln((t + t_read)/t_read)) / sqrt(n_averaged) [µS]
        at t = ``read_noise_t`` (``t_since`` and ``g_prog`` ignored); see
        :meth:`DeviceModel.read_noise_sd`.

        References:
            Ortner et al. 2025 code, ``PCMNoise.read_noise`` (n_averaged = 2 there).
        """
        if not self.read_noise_on:
            return torch.zeros_like(g)
        log_term = device.read_noise_log_term(self.cfg.read_noise_t, self.cfg, paper_code=True)
        return g * device.q_s_micro(g, self.cfg) * (log_term / math.sqrt(n_averaged))

    def deploy_weights(self, w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Return clip(clip(w) + U(−a, a) + [clip(w · 32^−ν) − w]) [1]: jitter (on exact zeros
        none), then one ν per weight; no programming noise (code ``PCMNoise.init_weights``).
        No gradient; shape of ``w``."""
        jitter = self.deployment_jitter(w, generator)
        if jitter is None:
            jitter = torch.zeros_like(w)
        return self._clip(self._clip(w) + jitter + self._drift_delta(w, None, generator))

    def reprogram_weights(self, w: torch.Tensor, mask: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Return clip(clip(w) + prog_noise(w) + drift(w)) on ``mask`` (noise, then ν, drawn per
        weight and zeroed off the mask), clip(w) elsewhere (code ``PCMNoise.program``)."""
        maskf = mask.to(w.dtype)
        value = self._clip(self._clip(w) + self._prog_delta(w, maskf, generator)
                           + self._drift_delta(w, maskf, generator))
        # unmasked entries: the code's formula is the identity up to float rounding
        return torch.where(mask, value, self._clip(w))

    def _prog_delta(self, w: torch.Tensor, mask: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        """Code ``program_noise``: (noisy clipped target on its polarity) − w, one draw per
        weight (at ĝ = |w|/w_max, unclipped), none where w = 0."""
        cfg = self.cfg
        scale = cfg.g_max / cfg.w_max
        g_t = w * scale
        noise = self.programming_noise(g_t.abs() / cfg.g_max, generator)
        if noise is None:
            noise = torch.zeros_like(g_t)
        else:
            noise = noise * mask
        pos = torch.clamp(torch.clamp(g_t, min=0.0) + noise * (g_t > 0), 0.0, cfg.g_max)
        neg = torch.clamp(torch.clamp(g_t, max=0.0) + noise * (g_t < 0), -cfg.g_max, 0.0)
        return (pos + neg) / scale - w

    def _drift_delta(self, w: torch.Tensor, mask: torch.Tensor | None,
                     generator: torch.Generator | None) -> torch.Tensor:
        """Code ``drift_noise``: clip(w · 32^−ν) − w, one ν per weight drawn at ĝ = |w|/w_max
        (ν = 0 off the mask)."""
        nu = self.sample_nu(w.abs() / self.cfg.w_max, generator)
        if nu is None:
            return self._clip(w) - w
        if mask is not None:
            nu = nu * mask
        return self._clip(w * self.drift_factor(nu, 0.0)) - w


class PhysicalDevice(DeviceModel):
    """``physical``: aihwkit's ``PCMLikeNoiseModel`` per device, on the time since programming.

    - each of the N devices of the active polarity gets its own programming noise and ν;
    - drift g(t) = g_prog · ((Δt + t0)/t0)^(−ν), Δt = time since programming (t0 = 20 s; the
      factor is 1 right after programming);
    - read noise σ = g(t) · Q_s(ĝ_prog) · sqrt(ln((Δt + t0 + t_read)/(2 t_read))), ĝ = g/g_max.

    The batched model programs clip(w) on N devices each and reads their average at
    Δt = ``t_inference`` (620 s: t/t0 = 32); it evaluates Q_s at the read conductance (it keeps
    no g_prog), see the module docstring.

    References:
        Nandakumar et al., ICECS 2019; aihwkit ``PCMLikeNoiseModel``
        (``apply_programming_noise_to_conductance``, ``apply_drift_noise_to_conductance``).
    """

    name = 'physical'
    clocked = True

    def __init__(self, cfg: PCMConfig) -> None:
        super().__init__(cfg)
        self._q_s_memo: tuple[weakref.ref[torch.Tensor], int, torch.Tensor] | None = None

    def t_ratio(self, t_since: float) -> float:
        """Return (t_since + t0)/t0."""
        return (t_since + self.cfg.t0) / self.cfg.t0

    def drift_factor(self, nu: torch.Tensor, t_since: TimeSince) -> torch.Tensor:
        """Return ((t_since + t0)/t0)^(−ν); 1 when drift is off. A float time uses
        :func:`~l2l_nmhw_ros.pcm.device.drift_factor`, a per-device tensor
        :func:`~l2l_nmhw_ros.pcm.device.drift_factor_since` (same law, log in float64)."""
        if not self.drift_on:
            return torch.ones_like(nu)
        if isinstance(t_since, torch.Tensor):
            return device.drift_factor_since(nu, t_since, self.cfg.t0)
        return device.drift_factor(nu, self.t_ratio(t_since))

    def read_noise_sd(self, g: torch.Tensor, t_since: TimeSince, *,
                      g_prog: torch.Tensor | None = None, n_averaged: int = 1) -> torch.Tensor:
        """Return σ = g · Q_s(g_prog/g_max) · sqrt(ln((t + t_read)/(2 t_read))) / sqrt(n_averaged)
        [µS] at t = t_since + t0; see :meth:`DeviceModel.read_noise_sd`.

        References:
            aihwkit ``PCMLikeNoiseModel.apply_drift_noise_to_conductance``.
        """
        if not self.read_noise_on:
            return torch.zeros_like(g)
        log_term = device.read_noise_log_term(t_since + self.cfg.t0, self.cfg, paper_code=False)
        log_term = log_term / math.sqrt(n_averaged)
        if isinstance(log_term, torch.Tensor):
            log_term = log_term.to(g.dtype)
        return g * self._q_s(g if g_prog is None else g_prog, memo=g_prog is not None) * log_term

    def _q_s(self, g_prog: torch.Tensor, *, memo: bool) -> torch.Tensor:
        """Q_s(g_prog/g_max), remembered for the last stored ``g_prog`` (same object, version)."""
        m = self._q_s_memo
        if memo and m is not None and m[0]() is g_prog and m[1] == g_prog._version:
            return m[2]
        q_s = device.q_s_hat(g_prog / self.cfg.g_max, self.cfg)
        if memo:
            self._q_s_memo = (weakref.ref(g_prog), g_prog._version, q_s)
        return q_s

    def deploy_weights(self, w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Return the average read-back of clip(w) programmed on N devices each (noise and ν per
        device) at ``t_inference``. No gradient; shape of ``w``."""
        return self._read_back(self._clip(w), generator)

    def reprogram_weights(self, w: torch.Tensor, mask: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Return the read-back of clip(w) programmed afresh on ``mask``, ``w`` elsewhere."""
        return torch.where(mask, self._read_back(self._clip(w), generator), w)

    def _read_back(self, w_target: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
        """Program clipped targets on N devices each; return the drifted average read back
        (weight units); RESET devices (target 0) stay at 0."""
        cfg = self.cfg
        g_hat = (w_target.abs() / cfg.w_max).unsqueeze(-1)
        g, nu = self.program_devices(g_hat, (*w_target.shape, cfg.n_devices), generator)
        if self.drift_on:
            g = g * self.drift_factor(nu, cfg.t_inference)
        g = torch.where(g_hat > 0, g, torch.zeros_like(g))
        return torch.sign(w_target) * g.mean(-1) / cfg.g_max * cfg.w_max


class IdealDevice(DeviceModel):
    """``ideal``: ideal devices.

    A write stores its target exactly (no programming noise, no jitter, ν = 0), there is no
    drift (factor 1) and a read returns the stored value exactly (σ_read = 0); writes are counted
    as in every preset. What is stored is the path's target: the crossbar's is clip(w, ±w_max)
    (as in every preset), the batched model's is w itself, unclipped (the paper code's
    noise-free ``PCM`` class: deploy is the identity, reprogram is w + ΔW_q). Within ±w_max both
    paths hold exactly the same weights.

    References:
        Ortner et al. 2025 code, ``online_learning_robot/module/pcm.py::PCM``.
    """

    name = 'ideal'
    ideal = True

    def deploy_weights(self, w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Return ``w`` (identity, no clipping)."""
        return w

    def reprogram_weights(self, w: torch.Tensor, mask: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Return ``w`` (identity, no clipping)."""
        return w


#: The device model class of every ``pcm.preset`` value.
PRESETS: dict[str, type[DeviceModel]] = {
    cls.name: cls for cls in (PaperCodeDevice, PhysicalDevice, IdealDevice)}


def device_model(cfg: PCMConfig) -> DeviceModel:
    """Return a new device model for ``cfg.preset``.

    Args:
        cfg: the ``pcm`` configuration.

    Returns:
        a :class:`PaperCodeDevice`, :class:`PhysicalDevice` or :class:`IdealDevice`.

    Raises:
        ValueError: ``cfg`` is not a PCMConfig.
        ConfigError: unknown preset (the config's own validation normally catches it).
    """
    if not isinstance(cfg, PCMConfig):
        raise ValueError(f'cfg: expected a PCMConfig, got {type(cfg).__name__}')
    cls = PRESETS.get(cfg.preset)
    if cls is None:
        raise ConfigError(f'pcm.preset = {cfg.preset!r} is not one of {sorted(PRESETS)}')
    return cls(cfg)
