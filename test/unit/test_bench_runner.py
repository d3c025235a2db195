"""The benchmark runner computes same-run ratios and writes a readable table."""

from __future__ import annotations

import json
import sys
import types

from bench import run as bench_run
from bench.common import measure, row


def test_measure_counts_calls_and_orders_stats():
    calls = []
    median, spread, n = measure(lambda: calls.append(1), repeat=4, warmup=2, number=3)
    assert len(calls) == 2 + 4 * 3
    assert n == 4 and median >= 0 and spread >= 0


def test_ratios_come_from_rows_of_the_same_run(tmp_path, monkeypatch):
    fake = types.ModuleType('bench.bench_fake')
    fake.run = lambda quick: [row('g', 'ours', 2e-3, 1e-4, 5), row('g', 'theirs', 6e-3, 1e-4, 5)]
    fake.RATIOS = [('theirs / ours', 'theirs', 'ours'), ('missing', 'nope', 'ours')]
    monkeypatch.setitem(sys.modules, 'bench.bench_fake', fake)
    monkeypatch.setattr(bench_run, 'HERE', tmp_path)
    (tmp_path / 'bench_fake.py').write_text('')
    assert bench_run.main(['--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'results.json').read_text())
    values = {q['label']: q['value'] for q in result['ratios']}
    assert abs(values['theirs / ours'] - 3.0) < 1e-12
    assert values['missing'] is None
    md = (tmp_path / 'results.md').read_text()
    assert '| g | ours | 2 ms |' in md and '| theirs / ours | 3× |' in md
