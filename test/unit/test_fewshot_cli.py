"""``l2l-nmhw fewshot train|eval`` end to end on a tiny synthetic Omniglot folder (no shared data).

The folder has the distributed layout ``<alphabet>/<character>/<drawing>.png`` (105 × 105 PNGs),
so this also covers the unpacked-folder path of the loader.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from l2l_nmhw_ros import cli

PIL = pytest.importorskip('PIL.Image')


def _make_folder(root, alphabets=('Alpha', 'Beta'), chars=4, drawings=6) -> None:
    rng = np.random.default_rng(0)
    for a in alphabets:
        for c in range(chars):
            d = root / a / f'character{c + 1:02d}'
            d.mkdir(parents=True)
            base = rng.random((105, 105)) > 0.8
            for k in range(drawings):
                img = base ^ (rng.random((105, 105)) > 0.97)
                PIL.fromarray(np.where(img, 0, 255).astype(np.uint8)).save(d / f'{k:04d}.png')


def test_fewshot_train_then_eval_on_a_folder(tmp_path, capsys) -> None:
    data = tmp_path / 'omni'
    _make_folder(data)
    out = tmp_path / 'ckpt'
    rc = cli.main(['fewshot', 'train', '--data', str(data), '--alphabets', 'Alpha', '--out',
                   str(out), '--iterations', '2', '--batch', '2', '--ways', '3', '--shots', '2',
                   '--queries', '2', '--channels', '4', '--checkpoint-every', '1'])
    assert rc == 0
    meta = json.loads((out / 'metadata.json').read_text())
    assert meta['iteration'] == 2 and meta['model'] == 'omniglot_cnn'
    assert meta['data']['alphabets'] == ['Alpha'] and meta['data']['characters'] == 4
    capsys.readouterr()
    res_file = tmp_path / 'res.json'
    rc = cli.main(['fewshot', 'eval', '--checkpoint', str(out), '--data', str(data),
                   '--exclude-alphabets', 'Alpha', '--ways', '3', '--shots', '2', '--queries',
                   '2', '--episodes', '3', '--no-progress', '--json', str(res_file)])
    text = capsys.readouterr().out
    assert rc == 0
    assert 'overlap with these episodes: none' in text
    res = json.loads(res_file.read_text())
    assert res['episodes'] == 3 and res['shots'] == 2
    for v in ('float', 'grid', 'pcm'):
        s = res['results'][v]
        assert 0.0 <= s['ci_low_pct'] <= s['accuracy_pct'] <= s['ci_high_pct'] <= 100.0 + 1e-9
    # PCM updates write devices; float's count is every weight it changed (24 weights x 2 x 4)
    assert res['results']['pcm']['devices_mean'] > 0
    assert res['results']['float']['devices_mean'] == pytest.approx(3 * 4 * 2 * 4)


def test_fewshot_eval_rejects_bad_input(tmp_path, capsys) -> None:
    data = tmp_path / 'omni'
    _make_folder(data, alphabets=('Alpha',), chars=3, drawings=3)
    rc = cli.main(['fewshot', 'eval', '--checkpoint', str(tmp_path / 'none'), '--data',
                   str(data)])
    assert rc == 2
    assert 'not a checkpoint folder' in capsys.readouterr().err
