"""Run every ``bench/bench_*.py``; write ``bench/results.json`` and ``bench/results.md``.

Each module exposes ``run(quick: bool) -> list[dict]`` (rows from :func:`bench.common.row`), and
may expose ``RATIOS``: a list of (label, numerator row name, denominator row name), computed here
from rows of this same run (rows of any module; names are unique). ``--quick`` is the short
version (``make bench QUICK=1``, < 5 minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
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
    }
    for mod in ('brian2', 'pybullet', 'aihwkit', 'rclpy'):
        try:
            m = importlib.import_module(mod)
            info[mod] = getattr(m, '__version__', 'installed')
        except Exception as exc:  # noqa: BLE001 - report why an optional side is missing
            info[mod] = f'unavailable ({type(exc).__name__})'
    return info


def _fmt_s(x: float | None) -> str:
    if x is None:
        return '—'
    if x >= 1:
        return f'{x:.3g} s'
    if x >= 1e-3:
        return f'{x * 1e3:.3g} ms'
    return f'{x * 1e6:.3g} µs'


def to_markdown(info: dict, rows: list[dict], ratios: list[dict]) -> str:
    """Return the results as a Markdown report."""
    lines = ['# Benchmark results', '',
             f"{info['date']} · {info['platform']} · {info['cpu_count']} CPUs · Python "
             f"{info['python']} · torch {info['torch']} ({info['torch_threads']} threads) · numpy "
             f"{info['numpy']} · brian2 {info['brian2']} · aihwkit {info['aihwkit']}", '',
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
    info = machine_info()
    rows: list[dict] = []
    ratios: list[dict] = []
    ratio_specs: list[tuple[str, str, str]] = []
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
        rows.extend(got)
        ratio_specs.extend(getattr(mod, 'RATIOS', []))
        print(f'[bench] {name} done in {time.perf_counter() - t0:.1f} s', flush=True)
    by_name = {r['name']: r for r in rows}
    for label, num, den in ratio_specs:  # both sides come from rows of this same run
        a, b = by_name.get(num), by_name.get(den)
        ok = a and b and a['median_s'] and b['median_s']
        ratios.append({'label': label, 'numerator': num, 'denominator': den,
                       'value': (a['median_s'] / b['median_s']) if ok else None})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {'machine': info, 'quick': args.quick, 'rows': rows, 'ratios': ratios}
    (out / 'results.json').write_text(json.dumps(result, indent=2) + '\n')
    md = to_markdown(info, rows, ratios)
    (out / 'results.md').write_text(md)
    print(md)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
