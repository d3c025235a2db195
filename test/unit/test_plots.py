"""The figures a reader looks at: the demo's and ``pcm characterize``'s, rendered.

Each figure has a title, axis labels with units and a legend (or a colour bar for heat maps);
nothing overlaps (tick labels of one panel inside another, the figure title over a panel's
title); the demo's paths and joints name every target in their legend; the characterisation's
model curves are the models its table compares against.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import zlib
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from l2l_nmhw_ros import config as C  # noqa: E402
from l2l_nmhw_ros.arm.kinematics import forward_kinematics  # noqa: E402
from l2l_nmhw_ros.pcm import characterize as ch  # noqa: E402
from l2l_nmhw_ros.pcm.crossbar import Crossbar  # noqa: E402
from l2l_nmhw_ros.ros.tools import demo  # noqa: E402

pytestmark = pytest.mark.unit

UNIT = re.compile(r'\[[^\]]+\]')


def _boxes(fig: Any) -> dict[str, Any]:
    """Window extents of every axes, its tick labels, its title and the figure title."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out: dict[str, Any] = {'axes': [], 'ticks': [], 'titles': []}
    for ax in fig.axes:
        out['axes'].append(ax.get_window_extent(r))
        out['ticks'].append([t.get_window_extent(r) for t in
                             ax.get_xticklabels() + ax.get_yticklabels()
                             if t.get_visible() and t.get_text()])
        out['titles'].append(ax.title.get_window_extent(r) if ax.get_title() else None)
    st = fig._suptitle  # noqa: SLF001 - matplotlib keeps the figure title here
    out['suptitle'] = st.get_window_extent(r) if st is not None and st.get_text() else None
    return out


def overlaps(fig: Any) -> list[str]:
    """Return what overlaps in ``fig``: a tick label inside another axes, or the figure title
    over (or less than 4 px from) an axes or an axes title."""
    b = _boxes(fig)
    found = []
    for i, j in itertools.permutations(range(len(fig.axes)), 2):
        for t in b['ticks'][i]:
            if t.overlaps(b['axes'][j]):
                found.append(f'tick label of axes {i} inside axes {j}')
                break
    if b['suptitle'] is not None:
        b['suptitle'] = b['suptitle'].padded(4.0)
        for i, box in enumerate(b['axes']):
            if b['suptitle'].overlaps(box):
                found.append(f'figure title over axes {i}')
            if b['titles'][i] is not None and b['suptitle'].overlaps(b['titles'][i]):
                found.append(f'figure title over the title of axes {i}')
    return found


def _legend_texts(fig: Any) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def _is_colorbar(ax: Any) -> bool:
    return hasattr(ax, '_colorbar')


def check_readable(name: str, fig: Any) -> None:
    """Title, units on every data axis, a legend (or colour bar); no overlaps."""
    st = fig._suptitle  # noqa: SLF001
    titles = [ax.get_title() for ax in fig.axes if not _is_colorbar(ax)]
    assert (st is not None and st.get_text()) or all(titles), f'{name}: no title'
    for ax in fig.axes:
        if _is_colorbar(ax):
            assert UNIT.search(ax.get_ylabel()), f'{name}: colour bar without unit'
            continue
        if ax.get_xlabel():
            assert UNIT.search(ax.get_xlabel()), f'{name}: x label {ax.get_xlabel()!r}'
        if ax.get_ylabel():
            assert UNIT.search(ax.get_ylabel()), f'{name}: y label {ax.get_ylabel()!r}'
    assert any(ax.get_xlabel() for ax in fig.axes), f'{name}: no x label'
    assert any(ax.get_ylabel() for ax in fig.axes), f'{name}: no y label'
    assert _legend_texts(fig) or any(_is_colorbar(ax) for ax in fig.axes), \
        f'{name}: no legend'
    assert not overlaps(fig), f'{name}: {overlaps(fig)}'


def test_overlap_detector_finds_the_old_learning_signal_layout() -> None:
    """The check used below can fail: the old learning-signal figure (five panels of their own
    y axes, tight layout off, a figure title) had tick labels running into the next panel and
    the figure title on a panel title."""
    fig, axes = plt.subplots(1, 5, figsize=(17, 4), squeeze=False)
    for i in range(5):
        axes[0, i].imshow(np.zeros((250, 249)), aspect='auto', origin='lower')
        axes[0, i].set_title(f'episode {i + 1}')
    fig.colorbar(axes[0, 0].images[0], ax=axes[0, :].tolist(), label='learning signal L')
    fig.suptitle('Learning signals from the LSG (one per episode)')
    found = overlaps(fig)
    plt.close(fig)
    assert any('tick label' in f for f in found)
    assert any('figure title' in f for f in found)


# ---- the demo's figures --------------------------------------------------------------------

def _demo_inputs(tmp_path: Path, n: int = 3) -> dict[str, Any]:
    """Synthetic but consistent inputs: n episodes with demonstrations, joint states in both
    execution windows (time scale 10), learning signals and a saved crossbar."""
    cfg = C.load()
    rng = np.random.default_rng(0)
    T, J = 249, len(cfg.arm.joints)
    rows, status, demos, signals, ts, qs = [], [], [], [], [], []
    t = 0.0
    for _ in range(n):
        goal = np.zeros(J)
        goal[:2] = rng.uniform(-0.8, 0.8, 2)
        s = np.linspace(0.0, 1.0, T)[:, None]
        demo_q = goal * (10 * s**3 - 15 * s**4 + 6 * s**5)
        target = forward_kinematics(demo_q[-1])
        sig = rng.normal(size=(T, cfg.trainee.n_rec)).astype(np.float32)
        crc = str(zlib.crc32(sig.tobytes()))
        for phase, frac in (('baseline', 0.5), ('adapted', 0.95)):
            dur = T * cfg.task.dt * 10.0
            status.append({'learning_signal_crc32': crc, 'event': 'start', 'phase': phase,
                           'phase_start': str(t), 'phase_duration': str(dur),
                           'phase_hold': '0.5', 'time_scale': '10.0'})
            tt = t + np.linspace(0.0, dur, 60)
            ts.append(tt)
            qs.append(frac * goal * (10 * s[::4][:60] ** 3 - 15 * s[::4][:60] ** 4
                                     + 6 * s[::4][:60] ** 5))
            t += dur + 5.0
        rows.append({'target': [round(float(v), 4) for v in target], 'crc': crc})
        demos.append(demo_q)
        signals.append(sig)
    state = tmp_path / 'pcm_state.safetensors'
    xb = Crossbar(cfg.pcm, cfg.trainee.n_rec + cfg.trainee.n_out,
                  cfg.trainee.n_in + cfg.trainee.n_rec, 0)
    xb.program(torch.randn(xb.n_post, xb.n_pre) * 0.3, t=0.0)
    xb.save(state)
    return {'cfg': cfg, 'rows': rows, 'status': status, 'signals': signals, 'demos': demos,
            'js_t': np.concatenate(ts), 'js_q': np.concatenate(qs), 'state_file': state}


@pytest.fixture(scope='module')
def demo_figures(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict]:
    inp = _demo_inputs(tmp_path_factory.mktemp('demo'))
    figs = demo.make_figures(**inp)
    yield figs, inp
    plt.close('all')


def test_demo_figures_are_readable(demo_figures: tuple[dict[str, Any], dict]) -> None:
    figs, _ = demo_figures
    assert sorted(figs) == ['conductance.png', 'joints.png', 'learning_signal.png', 'paths.png']
    for name, fig in figs.items():
        check_readable(name, fig)


def test_demo_paths_and_joints_name_each_target(
        demo_figures: tuple[dict[str, Any], dict]) -> None:
    figs, inp = demo_figures
    for name in ('paths.png', 'joints.png'):
        texts = _legend_texts(figs[name])
        for i, r in enumerate(inp['rows']):
            xyz = ', '.join(f'{v:+.2f}' for v in r['target'])
            assert f'target {i + 1}: ({xyz}) m' in texts, (name, texts)
        assert {'demonstration', 'executed before the update',
                'executed after one on-chip update'} <= set(texts)
        assert ('target' in texts) == (name == 'paths.png')  # stars only in the paths
        # the colour of target i's legend entry is the colour of its star and its paths
        handles = [h for lg in figs[name].legends for h in lg.legend_handles]
        colours = [tuple(h.get_color()) for h in handles[:len(inp['rows'])]]
        assert len(set(colours)) == len(inp['rows'])
    stars = [ln for ln in figs['paths.png'].axes[0].lines if ln.get_marker() == '*']
    assert [tuple(s.get_color()) for s in stars] == colours
    np.testing.assert_allclose([s.get_xydata()[0] for s in stars],
                               [r['target'][:2] for r in inp['rows']])


def test_demo_joints_show_learned_joints_on_network_time(
        demo_figures: tuple[dict[str, Any], dict]) -> None:
    figs, inp = demo_figures
    fig = figs['joints.png']
    cfg = inp['cfg']
    learned = list(cfg.task.learned_joints)
    axes = [ax for ax in fig.axes]
    assert [ax.get_ylabel() for ax in axes] == [f'{j} [rad]' for j in learned]
    title = fig._suptitle.get_text()  # noqa: SLF001
    assert 'learned joints only' in title
    for j in cfg.arm.joints:
        assert j in title  # learned ones listed, the others named as held
    assert axes[-1].get_xlabel().startswith('network time [ms]')
    # demonstration: 249 steps of 1 ms -> 1..249 ms; executions mapped back to 0..249 ms
    dotted = [ln for ln in axes[0].lines if ln.get_linestyle() == ':']
    assert dotted[0].get_xdata()[0] == pytest.approx(1.0)
    assert dotted[0].get_xdata()[-1] == pytest.approx(249.0)
    solid = [ln for ln in axes[0].lines if ln.get_linestyle() == '-']
    assert max(ln.get_xdata()[-1] for ln in solid) == pytest.approx(249.0)


def test_demo_learning_signal_panels_share_scale(
        demo_figures: tuple[dict[str, Any], dict]) -> None:
    figs, inp = demo_figures
    fig = figs['learning_signal.png']
    panels = [ax for ax in fig.axes if not _is_colorbar(ax)]
    assert len(panels) == len(inp['signals'])
    clims = {ax.images[0].get_clim() for ax in panels}
    assert len(clims) == 1
    # only the first panel labels the neurons; the others share its axis (no tick labels)
    assert panels[0].get_ylabel()
    assert not any(t.get_text() for ax in panels[1:] for t in ax.get_yticklabels()
                   if t.get_visible())


# ---- pcm characterize ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def characterisation() -> tuple[dict[str, Any], Any, dict[str, Any]]:
    cfg = dataclasses.replace(C.load().pcm, preset='physical')
    res = ch.characterize(cfg, rows_per_level=4, times=(1.0, 3600.0, 86400.0))
    figs = ch.make_figures(res, cfg)
    yield res, cfg, figs
    plt.close('all')


def test_characterisation_figures_are_readable(
        characterisation: tuple[dict[str, Any], Any, dict[str, Any]]) -> None:
    _, _, figs = characterisation
    assert sorted(figs) == ['drift_mean.png', 'drift_nu.png', 'prog_noise.png',
                            'read_noise.png']
    for name, fig in figs.items():
        check_readable(name, fig)


def _curve_at(line: Any, x: float) -> float:
    xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    k = int(np.argmin(np.abs(xs - x)))
    assert xs[k] == pytest.approx(x, abs=1e-12), 'the model curve misses a measured level'
    return float(ys[k])


def test_characterisation_curves_are_the_table_models(
        characterisation: tuple[dict[str, Any], Any, dict[str, Any]]) -> None:
    """The curve a reader compares a point with is the model of the table's z: the programming
    noise clipped to [0, g_max] (at ĝ = 1 about half the unclipped σ_prog, where the old plot
    showed the unclipped curve and a correct measurement looked 7 SE off)."""
    res, cfg, figs = characterisation
    prog = figs['prog_noise.png'].axes[0]
    model = next(ln for ln in prog.lines if ln.get_label().startswith('model'))
    nu_ax = figs['drift_nu.png'].axes[0]
    nu_mean = next(ln for ln in nu_ax.lines if ln.get_label().startswith('model mean'))
    nu_sd = next(ln for ln in nu_ax.lines if ln.get_label() == 'model SD')
    for r in res['levels']:
        assert _curve_at(model, r['g_target']) == pytest.approx(r['prog_sd']['model'], rel=1e-9)
        assert _curve_at(nu_mean, r['g_target']) == pytest.approx(r['nu_mean']['model'],
                                                                  rel=1e-9)
        assert _curve_at(nu_sd, r['g_target']) == pytest.approx(r['nu_sd']['model'], rel=1e-9)
    top = res['levels'][-1]
    assert top['g_hat'] == 1.0
    raw = float(ch.device.sigma_prog(torch.tensor(1.0, dtype=torch.float64), cfg))
    assert top['prog_sd']['model'] < 0.65 * raw
    # the measured point at g_max lies on the plotted curve (within 4 SE), not on sigma_prog
    assert abs(top['prog_sd']['measured'] - _curve_at(model, top['g_target'])) \
        < 4 * top['prog_sd']['se']
    assert abs(top['prog_sd']['measured'] - raw) > 10 * top['prog_sd']['se']
