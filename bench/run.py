"""Run every ``bench/bench_*.py`` and write ``bench/results.json`` and ``bench/results.md``.

Each module exposes ``run(quick: bool) -> list[dict]`` (rows from :func:`bench.common.row`), and
may expose

- ``RATIOS``: a list of (label, numerator row name, denominator row name), computed here from rows
  of this same run (rows of any module; names are unique);
- ``GOALS``: a list of (label, row name, bound[, note]): the row's median must be at most the
  bound, a number of seconds or the name of another row of this run (see :func:`compute_goals`).

``--quick`` is the short version (``make bench QUICK=1``, < 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_info() -> dict:
    """Return the machine, thread settings and library versions of this run."""
    import numpy
    import torch

    info = {
        'date': dt.datetime.now(dt.UTC).isoformat(timespec='seconds'),
        'python': platform.python_version(),
        'platform': platform.platform(),
        'processor': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'torch': torch.__version__,
        'torch_threads': torch.get_num_threads(),
        'numpy': numpy.__version__,
        'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', ''),
        'loadavg_start': [round(x, 2) for x in os.getloadavg()],
        'git': _git_revision(),
    }
    for mod in ('brian2', 'pybullet', 'aihwkit', 'rclpy'):
        try:
            m = importlib.import_module(mod)
            info[mod] = getattr(m, '__version__', 'installed')
        except Exception as exc:  # noqa: BLE001 - report why an optional side is missing
            info[mod] = f'unavailable ({type(exc).__name__})'
    return info


def _git_revision() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=HERE, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def compute_ratios(rows: list[dict], specs: list[tuple[str, str, str]]) -> list[dict]:
    """Return one ratio per spec (label, numerator row, denominator row): median / median.

    Both sides come from ``rows`` (this same run); ``value`` is None when a side is missing or
    was skipped.
    """
    by_name = {r['name']: r for r in rows}
    out = []
    for label, num, den in specs:
        a, b = by_name.get(num), by_name.get(den)
        ok = bool(a and b and a['median_s'] and b['median_s'])
        out.append({'label': label, 'numerator': num, 'denominator': den,
                    'value': (a['median_s'] / b['median_s']) if ok else None})
    return out


def compute_goals(rows: list[dict], specs: list[tuple]) -> list[dict]:
    """Check each goal (label, row, bound[, note]) against the rows of this run.

    The goal is met when the row's median is at most the bound: ``bound`` is a number of
    seconds, or the name of another row of this run (its median is the bound). ``margin`` =
    bound / median: above 1 the goal is met with that much headroom, below 1 it is missed by the
    factor 1/margin. ``met`` and ``margin`` are None when a side was not measured.
    """
    by_name = {r['name']: r for r in rows}
    out = []
    for spec in specs:
        label, name, bound = spec[:3]
        note = spec[3] if len(spec) > 3 else ''
        r = by_name.get(name)
        value = r['median_s'] if r else None
        if isinstance(bound, str):
            b = by_name.get(bound)
            bound_s = b['median_s'] if b else None
        else:
            bound_s = float(bound)
        ok = value is not None and value > 0 and bound_s is not None
        out.append({'label': label, 'row': name, 'bound': bound, 'bound_s': bound_s,
                    'value_s': value, 'note': note, 'met': (value <= bound_s) if ok else None,
                    'margin': (bound_s / value) if ok else None})
    return out


def _goal_status(g: dict) -> str:
    if g['met'] is None:
        return 'not measured'
    if g['met']:
        return f"met ({g['margin']:.3g}× headroom)"
    return f"missed by {1 / g['margin']:.3g}×"


def _fmt_s(x: float | None) -> str:
    if x is None:
        return '—'
    if x >= 1:
        return f'{x:.3g} s'
    if x >= 1e-3:
        return f'{x * 1e3:.3g} ms'
    return f'{x * 1e6:.3g} µs'


def to_markdown(info: dict, rows: list[dict], ratios: list[dict],
                goals: list[dict] | None = None, quick: bool = False) -> str:
    """Return the results as a Markdown report."""
    load = ' → '.join(str(info.get(k, '?')) for k in ('loadavg_start', 'loadavg_end'))
    lines = ['# Benchmark results' + (' (quick)' if quick else ''), '',
             f"{info['date']} · git {info.get('git', '?')} · {info['platform']} · "
             f"{info['processor']} · {info['cpu_count']} CPUs (load average 1/5/15 min: {load}) · "
             f"Python {info['python']} · torch {info['torch']} ({info['torch_threads']} threads, "
             f"OMP_NUM_THREADS={info['OMP_NUM_THREADS'] or 'unset'}) · numpy {info['numpy']} · "
             f"brian2 {info['brian2']} · aihwkit {info['aihwkit']} · rclpy {info['rclpy']}"
             + (f" · whole run {info['wall_s']} s" if 'wall_s' in info else ''), '',
             '| group | benchmark | median | spread (±) | runs | notes |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['group']} | {r['name']} | {_fmt_s(r['median_s'])} | "
                     f"{_fmt_s(r['spread_s'])} | {r['n']} | {r.get('notes', '')} |")
    if ratios:
        lines += ['', '| ratio (same run) | value |', '|---|---|']
        for q in ratios:
            v = q['value']
            lines.append(f"| {q['label']} | {'—' if v is None else f'{v:.3g}×'} |")
    if goals:
        lines += ['', '| goal | ours (this run) | target | status |', '|---|---|---|---|']
        for g in goals:
            target = _fmt_s(g['bound_s'])
            if isinstance(g['bound'], str):
                target = f"≤ {g['bound']} ({target}, this run)"
            else:
                target = f'≤ {target}'
            if g['note']:
                target += f" — {g['note']}"
            lines.append(f"| {g['label']} | {_fmt_s(g['value_s'])} | {target} | "
                         f'{_goal_status(g)} |')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit code (1 if a benchmark module crashed)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--quick', action='store_true', help='short version (< 5 minutes)')
    ap.add_argument('--only', nargs='*', default=None, help='module names, e.g. bench_pcm')
    ap.add_argument('--out', default=str(HERE), help='folder for results.json / results.md')
    args = ap.parse_args(argv)
    names = sorted(p.stem for p in HERE.glob('bench_*.py'))
    if args.only:
        names = [n for n in names if n in args.only]
    t_run = time.perf_counter()
    info = machine_info()
    rows: list[dict] = []
    ratio_specs: list[tuple[str, str, str]] = []
    goal_specs: list[tuple] = []
    failed = False
    for name in names:
        t0 = time.perf_counter()
        print(f'[bench] {name} ...', flush=True)
        try:
            mod = importlib.import_module(f'bench.{name}')
            got = mod.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            failed = True
            continue
        group = name.removeprefix('bench_')
        rows.extend({'group': group, **r} for r in got)  # a row without a group gets the module's
        ratio_specs.extend(getattr(mod, 'RATIOS', []))
        goal_specs.extend(getattr(mod, 'GOALS', []))
        print(f'[bench] {name} done in {time.perf_counter() - t0:.1f} s', flush=True)
    ratios = compute_ratios(rows, ratio_specs)  # both sides come from rows of this same run
    goals = compute_goals(rows, goal_specs)
    info['loadavg_end'] = [round(x, 2) for x in os.getloadavg()]
    info['wall_s'] = round(time.perf_counter() - t_run, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {'machine': info, 'quick': args.quick, 'rows': rows, 'ratios': ratios,
              'goals': goals}
    (out / 'results.json').write_text(json.dumps(result, indent=2) + '\n')
    md = to_markdown(info, rows, ratios, goals, quick=args.quick)
    (out / 'results.md').write_text(md)
    print(md)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
