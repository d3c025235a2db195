"""The benchmark runner computes same-run ratios and goals and writes a readable table."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bench import run as bench_run
from bench.common import measure, measure_interleaved, row, skipped, summarize


def test_measure_counts_calls_and_orders_stats():
    calls = []
    median, spread, n = measure(lambda: calls.append(1), repeat=4, warmup=2, number=3)
    assert len(calls) == 2 + 4 * 3
    assert n == 4
    assert median >= 0
    assert spread >= 0


def test_ratios_come_from_rows_of_the_same_run(tmp_path, monkeypatch):
    fake = types.ModuleType('bench.bench_fake')
    fake.run = lambda quick: [row('g', 'ours', 2e-3, 1e-4, 5), row('g', 'theirs', 6e-3, 1e-4, 5),
                              {'name': 'no group', 'median_s': 1.0, 'spread_s': 0.0, 'n': 1,
                               'notes': ''}]
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
    assert '| g | ours | 2 ms |' in md
    assert '| theirs / ours | 3× |' in md
    assert '| fake | no group | 1 s |' in md  # the module's name stands in for a missing group


def test_measure_stops_at_the_budget_with_at_least_one_run():
    # a fake clock that advances 1 s per call of fn: warm-up ends at 1 s, run k ends at 1 + k s
    now = [0.0]

    def fn():
        now[0] += 1.0

    med, spread, n = measure(fn, repeat=10, warmup=1, budget_s=2.5, clock=lambda: now[0])
    assert (med, spread, n) == (1.0, 0.0, 2)  # runs end at 2 s (< 2.5) and 3 s (stop)
    now[0] = 0.0
    assert measure(fn, repeat=10, warmup=3, budget_s=0.5, clock=lambda: now[0])[2] == 1
    now[0] = 0.0
    assert measure(fn, repeat=4, warmup=0, clock=lambda: now[0])[2] == 4  # no budget: all runs


def test_summarize_median_and_half_range():
    assert summarize([3.0, 1.0, 2.0, 10.0]) == (2.5, 4.5, 4)
    with pytest.raises(ValueError, match='times'):
        summarize([])


def test_goals_against_seconds_and_against_another_row():
    rows = [row('g', 'fast', 0.01, 0.0, 3), row('g', 'slow', 0.4, 0.0, 3),
            row('g', 'ref', 0.1, 0.0, 3), skipped('g', 'gone', 'not here')]
    goals = bench_run.compute_goals(rows, [
        ('fast under 20 ms', 'fast', 0.02),
        ('slow under 20 ms', 'slow', 0.02, 'a note'),
        ('fast at most ref', 'fast', 'ref'),
        ('skipped row', 'gone', 1.0),
        ('bound row missing', 'fast', 'nope'),
    ])
    by = {g['label']: g for g in goals}
    assert by['fast under 20 ms']['met'] is True
    assert abs(by['fast under 20 ms']['margin'] - 2) < 1e-12
    assert by['slow under 20 ms']['met'] is False
    assert abs(by['slow under 20 ms']['margin'] - 0.05) < 1e-12  # missed by 20x
    assert by['fast at most ref']['met'] is True
    assert by['fast at most ref']['bound_s'] == 0.1
    assert by['skipped row']['met'] is None
    assert by['bound row missing']['met'] is None
    md = bench_run.to_markdown(
        {'date': 'd', 'platform': 'p', 'processor': 'x', 'cpu_count': 2, 'python': '3.11',
         'torch': 't', 'torch_threads': 2, 'numpy': 'n', 'brian2': 'b', 'aihwkit': 'a',
         'rclpy': 'r', 'OMP_NUM_THREADS': '2'}, rows, [], goals)
    assert '| slow under 20 ms | 400 ms | ≤ 20 ms — a note | missed by 20× |' in md
    assert '| fast under 20 ms | 10 ms | ≤ 20 ms | met (2× headroom) |' in md
    assert '| skipped row | — | ≤ 1 s | not measured |' in md


def test_measure_interleaved_alternates_the_order_of_the_sides():
    now, log = [0.0], []

    def work(name, cost):
        def fn():
            log.append(name)
            now[0] += cost
        return fn

    got = measure_interleaved({'a': work('a', 1.0), 'b': work('b', 2.0)}, repeat=3, warmup=1,
                              number=2, clock=lambda: now[0])
    # warm-up a, b; then runs a b | b a | a b, each run = 2 calls
    assert log == ['a', 'b'] + ['a', 'a', 'b', 'b'] + ['b', 'b', 'a', 'a'] + ['a', 'a', 'b', 'b']
    assert got == {'a': (1.0, 0.0, 3), 'b': (2.0, 0.0, 3)}
