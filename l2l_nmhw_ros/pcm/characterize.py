"""Device characterisation of the emulated PCM array: measured vs model statistics and plots.

:func:`characterize` programs a sweep of target conductances on a large crossbar (every target on
``rows_per_level × 256`` weights, i.e. ``× n_devices`` G+ devices), reads it from 1 s to 1 day and
compares, per target level ĝ:

- programming error SD (g_prog − g_target) with σ_prog(ĝ) censored at [0, g_max],
- drift exponent ν (recovered from the drift between programming and the last read time) mean
  and SD with the folded normal |N(μ_ν, σ_ν²)|,
- drift of the mean, mean g(t) / mean g_prog, with E[(t/t0)^−ν] of the folded normal,
- read-noise SD of one noisy read (read − true conductance) with the RMS of the 1/f formula over
  the devices.

Every measured value comes with its standard error (SE), from the sample size, so ``z`` =
(measured − model) / SE is the number a hardware researcher reads first (|z| < 3 expected).

References:
    Nandakumar et al., ICECS 2019 (the statistics and their plots); aihwkit ``PCMLikeNoiseModel``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.pcm import device
from l2l_nmhw_ros.pcm.crossbar import Crossbar

__all__ = ['DEFAULT_LEVELS', 'DEFAULT_TIMES', 'censored_normal_sd', 'characterize',
           'folded_normal_mgf', 'folded_normal_moments', 'format_table', 'make_figures',
           'nu_model', 'prog_sd_model', 'write_plots']

#: Target levels ĝ (on the 1/16 update grid, so that one update programs them exactly).
DEFAULT_LEVELS = (1 / 16, 2 / 16, 3 / 16, 4 / 16, 6 / 16, 8 / 16, 10 / 16, 12 / 16, 14 / 16, 1.0)
#: Read times after programming [s]: 1 s ... 1 day.
DEFAULT_TIMES = (1.0, 10.0, 100.0, 1000.0, 3600.0, 86400.0)
_N_PRE = 256


def folded_normal_moments(mu: float, sd: float) -> tuple[float, float]:
    """Return mean and SD of |X|, X ~ N(mu, sd²)."""
    a = mu / sd
    mean = sd * math.sqrt(2 / math.pi) * math.exp(-a * a / 2) + mu * (1 - 2 * stats.norm.cdf(-a))
    return mean, math.sqrt(max(mu * mu + sd * sd - mean * mean, 0.0))


def folded_normal_mgf(mu: float, sd: float, s: float) -> float:
    """Return E[exp(−s |X|)], X ~ N(mu, sd²) (the mean drift factor for s = ln(t/t0))."""
    a = mu / sd
    pos = math.exp(-s * mu + s * s * sd * sd / 2) * stats.norm.cdf(a - s * sd)
    neg = math.exp(s * mu + s * s * sd * sd / 2) * stats.norm.cdf(-a - s * sd)
    return float(pos + neg)


def censored_normal_sd(mu: float, sd: float, lo: float, hi: float) -> float:
    """Return the SD of clip(X, lo, hi), X ~ N(mu, sd²) (programming noise clipped to
    [0, g_max])."""
    if sd <= 0:
        return 0.0
    al, be = (lo - mu) / sd, (hi - mu) / sd
    pa, pb = stats.norm.cdf(al), stats.norm.cdf(be)
    fa, fb = stats.norm.pdf(al), stats.norm.pdf(be)
    m1 = lo * pa + hi * (1 - pb) + mu * (pb - pa) + sd * (fa - fb)
    m2 = (lo * lo * pa + hi * hi * (1 - pb) + (mu * mu + sd * sd) * (pb - pa)
          + 2 * mu * sd * (fa - fb) + sd * sd * (al * fa - be * fb))
    return math.sqrt(max(m2 - m1 * m1, 0.0))


def _stat(measured: float, model: float, se: float) -> dict[str, float]:
    return {'measured': measured, 'model': model, 'se': se,
            'z': (measured - model) / se if se > 0 else 0.0}


def characterize(cfg: PCMConfig, *, levels: tuple[float, ...] = DEFAULT_LEVELS,
                 times: tuple[float, ...] = DEFAULT_TIMES, rows_per_level: int = 32,
                 seed: int = 0) -> dict[str, Any]:
    """Program a sweep of targets, read it over time and compare with the model.

    Args:
        cfg: the ``pcm`` config (its preset decides the time mode; ``paper_code`` has no clock).
        levels: target conductances ĝ = g / g_max in (0, 1].
        times: read times after programming [s], increasing, > 0.
        rows_per_level: crossbar rows per level (each row has 256 weights × n_devices devices).
        seed: seed of the crossbar's generator.

    Returns:
        A JSON-ready dict: ``preset``, ``g_max``, ``devices_per_level``, ``times`` and ``levels``,
        a list with, per level, ``g_hat``, ``prog_sd``, ``nu_mean``, ``nu_sd`` (each measured,
        model, se, z) and ``read_sd``, ``drift_mean`` (lists over ``times``).

    Raises:
        ValueError: bad levels, times or sizes.
    """
    if not levels or any(not 0.0 < g <= 1.0 for g in levels):
        raise ValueError(f'levels: expected values in (0, 1], got {levels!r}')
    if not times or any(t <= 0 for t in times) or list(times) != sorted(times):
        raise ValueError(f'times: expected increasing positive times [s], got {times!r}')
    if rows_per_level < 1:
        raise ValueError(f'rows_per_level: expected >= 1, got {rows_per_level}')
    cfg = dataclasses.replace(cfg, delta_w_step=0.0, stochastic_rounding=False,
                              drift_compensation=False)
    n_lv = len(levels)
    xb = Crossbar(cfg, n_lv * rows_per_level, _N_PRE, seed, dtype=torch.float64)
    target = torch.tensor(levels, dtype=torch.float64).repeat_interleave(rows_per_level)
    w = (target * cfg.w_max).unsqueeze(1).expand(-1, _N_PRE).contiguous()
    # an update from the empty array programs every target with programming noise in every preset
    xb.update(w, 0.0)
    g_prog = xb.g_plus.reshape(cfg.n_devices, n_lv, rows_per_level * _N_PRE)
    nu = xb.nu[0].reshape(cfg.n_devices, n_lv, -1)
    per_level = lambda x: x.transpose(0, 1).reshape(n_lv, -1)  # noqa: E731
    g_prog, nu = per_level(g_prog), per_level(nu)
    n = g_prog.shape[1]
    reads = {}
    for t in times:
        true = per_level(xb.conductances(t)[0].reshape(cfg.n_devices, n_lv, -1))
        noisy = per_level(xb.read_conductances(t)[0].reshape(cfg.n_devices, n_lv, -1))
        reads[t] = (true, noisy)
    dev = xb.device
    drift_on = dev.drift_on
    t_last = times[-1]
    ratio_last = dev.t_ratio(t_last)
    out_levels = []
    for i, g_hat in enumerate(levels):
        gh = torch.tensor(g_hat, dtype=torch.float64)
        g_t = g_hat * cfg.g_max
        err = g_prog[i] - g_t
        sd_meas = float(err.std())
        # paper_code shares one draw by the N devices of a weight: n / N independent samples
        n_ind = n // cfg.n_devices if dev.per_weight_draws else n
        row: dict[str, Any] = {
            'g_hat': g_hat, 'g_target': g_t,
            'prog_sd': _stat(sd_meas, prog_sd_model(g_hat, cfg, dev.prog_noise_on),
                             sd_meas / math.sqrt(2 * (n_ind - 1)))}
        mu_nu, sd_nu = float(device.nu_mean(gh, cfg)), float(device.nu_std(gh, cfg))
        f_mean, f_sd = nu_model(g_hat, cfg, drift_on)
        true_last = reads[t_last][0][i]
        pos = g_prog[i] > 0
        if drift_on and ratio_last > 1.0:
            nu_meas = -torch.log(true_last[pos] / g_prog[i][pos]) / math.log(ratio_last)
        else:
            nu_meas = nu[i][pos]
        nm, ns = float(nu_meas.mean()), float(nu_meas.std())
        row['nu_mean'] = _stat(nm, f_mean, ns / math.sqrt(n_ind) if ns > 0 else 0.0)
        row['nu_sd'] = _stat(ns, f_sd, ns / math.sqrt(2 * (n_ind - 1)))
        row['read_sd'], row['drift_mean'] = [], []
        for t in times:
            true, noisy = reads[t][0][i], reads[t][1][i]
            resid = noisy - true
            sd_dev = dev.read_noise_sd(true, t, g_prog=g_prog[i])
            model_sd = float(torch.sqrt((sd_dev * sd_dev).mean()))  # RMS over the devices
            rs = float(resid.std())
            row['read_sd'].append({'t': t, **_stat(rs, model_sd, rs / math.sqrt(2 * (n - 1)))})
            model_drift = (folded_normal_mgf(mu_nu, sd_nu, math.log(dev.t_ratio(t)))
                           if drift_on else 1.0)
            fac = true / g_prog[i].mean()
            row['drift_mean'].append({'t': t, **_stat(
                float(fac.mean()), model_drift, float(fac.std()) / math.sqrt(n_ind))})
        out_levels.append(row)
    return {'preset': cfg.preset, 'g_max': cfg.g_max, 'n_devices': cfg.n_devices,
            'devices_per_level': n, 'times': list(times), 'levels': out_levels}


def _fmt_t(t: float) -> str:
    for unit, s in (('d', 86400.0), ('h', 3600.0), ('min', 60.0)):
        if t >= s:
            return f'{t / s:.3g} {unit}'
    return f'{t:g} s'


def format_table(result: dict[str, Any]) -> str:
    """Return the characterisation as plain-text tables (measured / model / z per level)."""
    lines = [f"PCM characterisation: preset {result['preset']}, g_max {result['g_max']} µS, "
             f"{result['devices_per_level']} devices per level "
             f"({result['n_devices']} per polarity per weight)", '',
             'programming error and drift exponent (model in brackets, z = (meas - model) / SE)',
             f"{'g_hat':>6} {'g [µS]':>7} | {'prog SD [µS]':>22} | {'nu mean':>22} | "
             f"{'nu SD':>22}"]
    for r in result['levels']:
        cells = [f"{r[k]['measured']:.4f} ({r[k]['model']:.4f}) {r[k]['z']:+5.1f}"
                 for k in ('prog_sd', 'nu_mean', 'nu_sd')]
        lines.append(f"{r['g_hat']:6.3f} {r['g_target']:7.2f} | " + ' | '.join(
            f'{c:>22}' for c in cells))
    times = result['times']
    for key, title, fmt in (('read_sd', 'read-noise SD [µS] vs time after programming', '.4f'),
                            ('drift_mean', 'drift of the mean, mean g(t) / mean g_prog', '.4f')):
        lines += ['', title + ' (measured (model))',
                  f"{'g_hat':>6} | " + ' | '.join(f'{_fmt_t(t):>17}' for t in times)]
        for r in result['levels']:
            cells = [f"{c['measured']:{fmt}} ({c['model']:{fmt}})" for c in r[key]]
            lines.append(f"{r['g_hat']:6.3f} | " + ' | '.join(f'{c:>17}' for c in cells))
    zs = [abs(r[k]['z']) for r in result['levels'] for k in ('prog_sd', 'nu_mean', 'nu_sd')]
    zs += [abs(c['z']) for r in result['levels'] for k in ('read_sd', 'drift_mean')
           for c in r[k]]
    lines += ['', f'max |z| over all {len(zs)} statistics: {max(zs):.2f}']
    return '\n'.join(lines)


def prog_sd_model(g_hat: float, cfg: PCMConfig, prog_noise_on: bool = True) -> float:
    """Return the model SD [µS] of the programmed conductance at target ĝ: σ_prog(ĝ) of a
    normal censored at [0, g_max] (the value the table compares against; the clipping at g_max
    halves the SD at ĝ = 1). 0 when the preset has no programming noise."""
    if not prog_noise_on:
        return 0.0
    sig = float(device.sigma_prog(torch.tensor(g_hat, dtype=torch.float64), cfg))
    return censored_normal_sd(g_hat * cfg.g_max, sig, 0.0, cfg.g_max)


def nu_model(g_hat: float, cfg: PCMConfig, drift_on: bool = True) -> tuple[float, float]:
    """Return the model mean and SD of the drift exponent ν at target ĝ: the folded normal
    |N(μ_ν(ĝ), σ_ν(ĝ)²)| (the values the table compares against); (0, 0) without drift."""
    if not drift_on:
        return 0.0, 0.0
    gh = torch.tensor(g_hat, dtype=torch.float64)
    return folded_normal_moments(float(device.nu_mean(gh, cfg)), float(device.nu_std(gh, cfg)))


def make_figures(result: dict[str, Any], cfg: PCMConfig) -> dict[str, Any]:
    """Return the characterisation figures (matplotlib, not saved), by file name.

    ``prog_noise.png`` (programming error SD vs target), ``drift_nu.png`` (ν mean and SD vs
    target), ``drift_mean.png`` (mean g(t)/g_prog vs t), ``read_noise.png`` (read SD vs t).
    Every model curve is the model the table's ``model`` column and ``z`` use (programming
    noise: σ_prog censored at [0, g_max]; ν: the folded normal), evaluated on a grid that
    contains the measured levels, so a measured point sits on its curve when the test passes.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    dev = Crossbar(dataclasses.replace(cfg, delta_w_step=0.0), 1, 1, 0).device
    lv = result['levels']
    gh = [r['g_hat'] for r in lv]
    g_max = result['g_max']
    grid = sorted({*(i / 400 for i in range(1, 401)), *gh})
    preset = result['preset']
    figs: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot([g * g_max for g in grid], [prog_sd_model(g, cfg, dev.prog_noise_on) for g in grid],
            'k-', label='model: σ_prog(ĝ) clipped to [0, g_max]')
    if dev.prog_noise_on:
        raw = device.sigma_prog(torch.tensor(grid, dtype=torch.float64), cfg)
        ax.plot([g * g_max for g in grid], raw, color='0.6', ls=':', lw=1,
                label='σ_prog(ĝ) before clipping')
    ax.errorbar([r['g_target'] for r in lv], [r['prog_sd']['measured'] for r in lv],
                yerr=[r['prog_sd']['se'] for r in lv], fmt='o', label='measured ± SE')
    ax.set(xlabel='target conductance [µS]', ylabel='programming error SD [µS]',
           title=f'Programming noise ({preset} preset)')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figs['prog_noise.png'] = fig

    fig, ax = plt.subplots(figsize=(6, 4.2))
    mom = [nu_model(g, cfg, dev.drift_on) for g in grid]
    ax.plot([g * g_max for g in grid], [m[0] for m in mom], 'k-',
            label='model mean of |N(μ_ν, σ_ν²)|')
    ax.plot([g * g_max for g in grid], [m[1] for m in mom], 'k--', label='model SD')
    ax.errorbar([r['g_target'] for r in lv], [r['nu_mean']['measured'] for r in lv],
                yerr=[r['nu_mean']['se'] for r in lv], fmt='o', label='measured mean ± SE')
    ax.plot([r['g_target'] for r in lv], [r['nu_sd']['measured'] for r in lv], 's',
            label='measured SD')
    ax.set(xlabel='target conductance [µS]', ylabel='drift exponent ν [1]',
           title=f'Drift exponent ({preset} preset)')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figs['drift_nu.png'] = fig

    for key, name, ylabel, title in (
            ('drift_mean', 'drift_mean.png', 'mean g(t) / mean g_prog [1]', 'Drift of the mean'),
            ('read_sd', 'read_noise.png', 'read-noise SD [µS]', 'Read noise of one read')):
        fig, ax = plt.subplots(figsize=(8.4, 4.4))
        for r, g in zip(lv, gh, strict=True):
            ts = [c['t'] for c in r[key]]
            line, = ax.plot(ts, [c['model'] for c in r[key]], '-', lw=1)
            ax.plot(ts, [c['measured'] for c in r[key]], 'o', ms=3, color=line.get_color(),
                    label=f'ĝ = {g:.3f} ({g * g_max:.1f} µS)')
        ax.set_xscale('log')
        if key == 'read_sd':
            ax.set_yscale('log')
        ax.set(xlabel='time after programming [s]', ylabel=ylabel,
               title=f'{title} ({preset} preset)')
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color='k', lw=1), Line2D([], [], color='k', ls='none',
                                                            marker='o', ms=3)]
        labels += ['model', 'measured']
        ax.legend(handles, labels, fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3, which='both')
        figs[name] = fig
    return figs


def write_plots(result: dict[str, Any], cfg: PCMConfig, out_dir: str | Path) -> list[Path]:
    """Write :func:`make_figures` as PNG files (matplotlib Agg) to ``out_dir``; return the
    paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out / name) for name, fig in make_figures(result, cfg).items()]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
