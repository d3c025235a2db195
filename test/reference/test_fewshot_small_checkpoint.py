"""The shipped checkpoint checkpoints/fewshot_small: loads, and gives its golden accuracy.

Meta-trained by this package on the images_background_small1 alphabets (Balinese,
Early_Aramaic, Greek, Korean, Latin); evaluated here on 12 seeded 5-way 5-shot episodes of the
disjoint small2 alphabets Japanese_(katakana), Sanskrit, Tagalog. Golden values computed once
(torch 2.13 CPU); float per episode must match within one query, the seeded 1/16-grid and PCM
means within 2 points (see test_fewshot_published.py for why).
"""

from __future__ import annotations

import numpy as np
import pytest

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.fewshot import data as D
from l2l_nmhw_ros.fewshot import pcm as FP
from l2l_nmhw_ros.fewshot import train as T

FLOAT = [0.92, 0.92, 0.76, 1.0, 1.0, 0.96, 1.0, 1.0, 0.96, 0.92, 0.92, 1.0]
MEANS = {'grid': 0.94, 'pcm': 0.90667}


def test_shipped_fewshot_checkpoint_golden_accuracy(repo_root, shared_data) -> None:
    w, meta = T.load_weights(repo_root / 'checkpoints' / 'fewshot_small')
    assert meta['model'] == 'omniglot_cnn' and meta['iteration'] == 2500
    train_alphabets = set(meta['data']['alphabets'])
    assert train_alphabets == {'Balinese', 'Early_Aramaic', 'Greek', 'Korean', 'Latin'}
    z = shared_data / 'omniglot' / 'images_background_small2.zip'
    if not z.is_file():
        pytest.skip(f'{z} not found')
    chars = D.load_characters([z], exclude=sorted(train_alphabets))
    assert not set(chars.alphabets) & train_alphabets  # disjoint alphabets
    res = FP.evaluate(w, lambda i: D.sample_episode(chars, 5, 5, 5,
                                                    np.random.default_rng([0, i])),
                      12, PCMConfig(), seed=0)
    assert np.abs(res['float'].accuracy - FLOAT).sum() <= 1 / 25 + 1e-9
    for v, want in MEANS.items():
        assert res[v].accuracy.mean() == pytest.approx(want, abs=0.02), v
