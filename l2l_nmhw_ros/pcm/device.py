"""PCM device statistics: programming noise, drift exponent, drift law and 1/f read noise.

Pure torch functions of the normalised conductance ``g_hat = g / g_max`` (or of ``g`` in µS
where the formula says so). Each function evaluates one published formula (the fits live here
only); the per-preset device models of :mod:`l2l_nmhw_ros.pcm.device_model` compose them, and the
crossbar and the functional model use those. Noise is sampled under ``no_grad``: device noise
enters the computational graph straight-through (see :mod:`l2l_nmhw_ros.pcm.model`).

References:
    Nandakumar et al., "Phase-change memory models for deep learning training and inference",
    ICECS 2019 (the fit); IBM aihwkit ``aihwkit.inference.noise.pcm.PCMLikeNoiseModel`` (its
    implementation, t0 = 20 s, t_read = 250 ns); Ortner et al., Nat. Commun. 16 (2025) and its code
    ``online_learning_robot/module/pcm.py`` (fixed t/t0 = 32, read noise with g in µS inside Q_s,
    averaged over 2 devices).
"""

from __future__ import annotations

import math

import torch

from l2l_nmhw_ros.config import PCMConfig

__all__ = [
    'G_HAT_EPS', 'G_EPS', 'Q_S_DENOM_EPS', 'drift_factor', 'drift_factor_since', 'nu_mean',
    'nu_std', 'q_s_hat', 'q_s_micro', 'read_noise_log_term', 'sample_nu', 'sigma_prog',
]

#: Floor of ``g_hat`` before ``log`` in the ν statistics (aihwkit ``_ZERO_CLIP`` = 1e-7). Below it
#: μ_ν and σ_ν sit on their clip bounds anyway (ln 1e-7 ≈ −16 gives μ_ν ≈ 0.27 > 0.1).
G_HAT_EPS = 1e-7
#: Floor of ``g`` [µS] before the power in the paper code's ``Q_s(g) = min(a / g^b, c)``; at and
#: below it Q_s is on its cap c (a / eps^b ≫ c), so the floor never changes a value, it only keeps
#: the gradient and the power finite at g = 0.
G_EPS = 1e-7
#: Floor of ``g_hat^b`` in aihwkit's ``Q_s(g_hat) = min(a / max(g_hat^b, 1e-3), c)`` (aihwkit's own
#: clamp; 1e-3 ≪ a / c = 0.044, so it never binds before the cap).
Q_S_DENOM_EPS = 1e-3


def sigma_prog(g_hat: torch.Tensor, cfg: PCMConfig) -> torch.Tensor:
    """Return the programming-noise SD of a device programmed to ``g_hat``.

    .. math:: \\sigma_{prog}(\\hat g) = \\max(c_0 + c_1 \\hat g + c_2 \\hat g^2, 0)
              \\cdot g_{max} / g_{max,ref}

    with c = ``cfg.prog_noise_coeffs`` (0.26348, 1.9650, −1.1731 µS) fitted at
    ``g_max,ref = cfg.prog_noise_g_max_ref`` (25 µS). The factor g_max / g_max,ref is aihwkit's
    rescaling: σ_prog / g_max is the same function of ĝ for every g_max.

    Args:
        g_hat: target conductance / g_max [1], any shape.
        cfg: the ``pcm`` configuration.

    Returns:
        σ_prog [µS], shape of ``g_hat``.

    References:
        Nandakumar et al., ICECS 2019; aihwkit ``apply_programming_noise_to_conductance``.
    """
    c0, c1, c2 = cfg.prog_noise_coeffs
    sigma = torch.clamp(c0 + c1 * g_hat + c2 * g_hat * g_hat, min=0.0)
    return sigma * (cfg.g_max / cfg.prog_noise_g_max_ref)


def _clipped_log_fit(g_hat: torch.Tensor, coeffs: tuple[float, ...],
                     bounds: tuple[float, ...]) -> torch.Tensor:
    """clip(a ln ĝ + b, lo, hi) with ĝ = |g_hat| floored at :data:`G_HAT_EPS` (ν fits)."""
    (a, b), (lo, hi) = coeffs, bounds
    return torch.clamp(a * torch.log(torch.clamp(g_hat.abs(), min=G_HAT_EPS)) + b, lo, hi)


def nu_mean(g_hat: torch.Tensor, cfg: PCMConfig) -> torch.Tensor:
    """Return the mean drift exponent μ_ν = clip(a ln ĝ + b, lo, hi) (a, b = −0.0155, 0.0244;
    bounds 0.049, 0.1), with ĝ floored at :data:`G_HAT_EPS`.

    Args:
        g_hat: target conductance / g_max [1], any shape.
        cfg: the ``pcm`` configuration (``nu_mean_coeffs``, ``nu_mean_bounds``).

    Returns:
        μ_ν [1], shape of ``g_hat``.

    References:
        Nandakumar et al., ICECS 2019; aihwkit ``generate_drift_coefficients``.
    """
    return _clipped_log_fit(g_hat, cfg.nu_mean_coeffs, cfg.nu_mean_bounds)


def nu_std(g_hat: torch.Tensor, cfg: PCMConfig) -> torch.Tensor:
    """Return the SD of the drift exponent σ_ν [1], shape of ``g_hat`` (target conductance /
    g_max [1], any shape): clip(a ln ĝ + b, lo, hi) with a, b = ``cfg.nu_std_coeffs`` (−0.0125,
    −0.0059) and lo, hi = ``cfg.nu_std_bounds`` (0.008, 0.045), ĝ floored at :data:`G_HAT_EPS`.
    Source as :func:`nu_mean` (Nandakumar et al., ICECS 2019; aihwkit).
    """
    return _clipped_log_fit(g_hat, cfg.nu_std_coeffs, cfg.nu_std_bounds)


def sample_nu(g_hat: torch.Tensor, cfg: PCMConfig,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one drift exponent per element: ν = |N(μ_ν(ĝ), σ_ν(ĝ)²)|.

    Args:
        g_hat: target conductance / g_max [1], any shape.
        cfg: the ``pcm`` configuration.
        generator: random generator (``None``: torch's default generator).

    Returns:
        ν ≥ 0 [1], shape of ``g_hat``, no gradient.
    """
    with torch.no_grad():
        xi = torch.randn(g_hat.shape, generator=generator, dtype=g_hat.dtype,
                         device=g_hat.device)
        return torch.abs(nu_mean(g_hat, cfg) + nu_std(g_hat, cfg) * xi)


def drift_factor(nu: torch.Tensor, t_ratio: torch.Tensor | float) -> torch.Tensor:
    """Return the drift factor g(t) / g_prog = (t / t0)^(−ν).

    Args:
        nu: drift exponent [1], any shape.
        t_ratio: t / t0 ≥ 1 [1], scalar or broadcastable to ``nu``. The crossbar passes
            (Δt + t0) / t0 with Δt the time since programming (aihwkit convention: the factor is 1
            right after programming); the paper code passes the constant 32.

    Returns:
        factor in (0, 1], broadcast shape.
    """
    t_ratio = torch.as_tensor(t_ratio, dtype=nu.dtype, device=nu.device)
    return torch.pow(torch.clamp(t_ratio, min=1.0), -nu)


def drift_factor_since(nu: torch.Tensor, dt: torch.Tensor, t0: float) -> torch.Tensor:
    """Return the drift factor ((Δt + t0) / t0)^(−ν) of devices programmed Δt ago.

    The same law as :func:`drift_factor` at t/t0 = (Δt + t0)/t0 (aihwkit convention: 1 right
    after programming), evaluated as exp(−ν · log1p(Δt / t0)) with the log in the precision of
    ``dt`` (float64 per-device ages stay exact for Δt ≪ t0 and for days).

    Args:
        nu: drift exponent [1], any shape.
        dt: time since programming Δt ≥ 0 [s], float64, broadcastable to ``nu``.
        t0: drift reference time [s] (``cfg.t0``, 20 s).

    Returns:
        factor in (0, 1], broadcast shape, dtype of ``nu``.

    References:
        aihwkit ``PCMLikeNoiseModel.apply_drift_noise_to_conductance``.
    """
    return torch.exp(-nu * torch.log1p(dt / t0).to(nu.dtype))


def q_s_hat(g_hat: torch.Tensor, cfg: PCMConfig) -> torch.Tensor:
    """Return aihwkit's 1/f noise magnitude Q_s(ĝ) = min(a / max(ĝ^b, 1e-3), c).

    a, b, c = ``cfg.q_s_coeffs`` (0.0088, 0.65, 0.2); ĝ = |g| / g_max (physical preset).

    References:
        aihwkit ``apply_drift_noise_to_conductance``; Nandakumar et al., ICECS 2019.
    """
    a, b, c = cfg.q_s_coeffs
    denom = torch.clamp(torch.pow(torch.clamp(g_hat.abs(), min=0.0), b), min=Q_S_DENOM_EPS)
    return torch.clamp(a / denom, max=c)


def q_s_micro(g: torch.Tensor, cfg: PCMConfig) -> torch.Tensor:
    """Return the paper code's Q_s(g) = min(a / |g|^b, c) with ``g`` in µS (not normalised).

    This makes the read noise about (25)^0.65 ≈ 8× smaller at g_max than aihwkit's. |g| is floored
    at :data:`G_EPS` (where Q_s is on its cap c anyway).

    References:
        Ortner et al. 2025 code, ``online_learning_robot/module/pcm.py::PCMNoise.read_noise``.
    """
    a, b, c = cfg.q_s_coeffs
    return torch.clamp(a / torch.pow(torch.clamp(g.abs(), min=G_EPS), b), max=c)


def read_noise_log_term(t: float | torch.Tensor, cfg: PCMConfig, *,
                        paper_code: bool) -> float | torch.Tensor:
    """Return sqrt(ln((t + t_read) / (2 t_read))) (aihwkit) or sqrt(ln((t + t_read) / t_read))
    (paper code) for a read at time ``t`` [s] (0 where the log is negative, t < t_read).

    ``t`` is a float (one read time: a float comes back) or a tensor (per device, e.g. float64
    ages: a tensor of its shape and dtype comes back); the formula is the same.
    """
    denom = cfg.t_read if paper_code else 2.0 * cfg.t_read
    if isinstance(t, torch.Tensor):
        return torch.sqrt(torch.clamp(torch.log((t + cfg.t_read) / denom), min=0.0))
    return math.sqrt(max(math.log((t + cfg.t_read) / denom), 0.0))
