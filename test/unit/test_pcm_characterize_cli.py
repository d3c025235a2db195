"""``l2l-nmhw pcm characterize``: table, JSON and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2l_nmhw_ros import cli


def test_characterize_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plots = tmp_path / 'plots'
    rc = cli.main(['pcm', 'characterize', '--json', '--rows-per-level', '2', '--times', '1',
                   '86400', '--plots', str(plots)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res['preset'] == 'physical'
    assert res['devices_per_level'] == 2 * 256 * 2
    assert len(res['levels']) == 10
    assert [c['t'] for c in res['levels'][0]['read_sd']] == [1.0, 86400.0]
    # the mean drifts down between 1 s and 1 day (nu > 0.049 at every level)
    for lv in res['levels']:
        assert lv['drift_mean'][1]['measured'] < lv['drift_mean'][0]['measured'] < 1.0
    names = sorted(p.name for p in plots.iterdir())
    assert names == ['drift_mean.png', 'drift_nu.png', 'prog_noise.png', 'read_noise.png']
    assert all((plots / n).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for n in names)


def test_characterize_table(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(['pcm', 'characterize', '--preset', 'paper_code', '--rows-per-level', '1',
                   '--times', '1', '--plots', ''])
    assert rc == 0
    out = capsys.readouterr().out
    assert 'preset paper_code' in out
    assert 'read-noise SD [µS]' in out
    assert 'max |z|' in out
