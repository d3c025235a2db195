"""Omniglot loader and episode sampling (l2l_nmhw_ros.fewshot.data).

The resize is checked on a hand-computed case; the loader on the shared zips (skipped when
../shared/data is absent).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.fewshot import data as D


def test_preprocess_is_bilinear_half_pixel_resize() -> None:
    # 56 -> 28 with half-pixel centres (tf.image.resize bilinear, no antialias): output pixel i
    # samples input coordinate 2i + 0.5, i.e. the mean of pixels 2i and 2i + 1 in each axis
    g = np.random.default_rng(0)
    a = g.integers(0, 256, size=(2, 56, 56), dtype=np.uint8)
    want = a.astype(np.float64).reshape(2, 28, 2, 28, 2).mean(axis=(2, 4)) / 255.0
    got = D.preprocess(a)
    assert got.shape == (2, 28, 28) and got.dtype == torch.float32
    assert np.allclose(got.numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match='uint8'):
        D.preprocess(a.astype(np.float32))


def _chars() -> D.CharacterSet:
    g = torch.Generator().manual_seed(0)
    return D.CharacterSet(tuple(f'A/c{i}' for i in range(7)),
                          tuple(torch.rand(20, 28, 28, generator=g) for _ in range(7)))


def test_episode_layout_and_disjoint_support_query() -> None:
    chars = _chars()
    ep = D.sample_episode(chars, 5, 5, 5, np.random.default_rng(1))
    assert ep.support.shape == (25, 1, 28, 28) and ep.query.shape == (25, 1, 28, 28)
    assert ep.support_labels.tolist() == [k for k in range(5) for _ in range(5)]
    assert len(set(ep.classes)) == 5  # classes drawn without replacement
    for k, name in enumerate(ep.classes):
        imgs = chars.images[chars.names.index(name)]
        s = ep.support[ep.support_labels == k, 0]
        q = ep.query[ep.query_labels == k, 0]
        idx = [int(torch.nonzero((imgs == x).all(-1).all(-1))[0, 0]) for x in torch.cat([s, q])]
        assert len(set(idx)) == 10  # 10 distinct drawings of the right character
    again = D.sample_episode(chars, 5, 5, 5, np.random.default_rng(1))
    assert torch.equal(again.support, ep.support)  # seeded
    rot = D.sample_episode(chars, 5, 1, 1, np.random.default_rng(2), rotate=True)
    assert any('@rot' in c for c in rot.classes)
    with pytest.raises(ValueError, match='drawings'):
        D.sample_episode(chars, 5, 15, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match='ways'):
        D.sample_episode(chars, 8, 1, 1, np.random.default_rng(0))


def test_loader_on_shared_zips(shared_data) -> None:
    z1 = shared_data / 'omniglot' / 'images_background_small1.zip'
    z2 = shared_data / 'omniglot' / 'images_background_small2.zip'
    if not (z1.is_file() and z2.is_file()):
        pytest.skip(f'Omniglot zips not found under {shared_data / "omniglot"}')
    c1 = D.load_characters([z1])
    assert c1.alphabets == ('Balinese', 'Early_Aramaic', 'Greek', 'Korean', 'Latin')
    # 480 + 440 + 480 + 800 + 520 drawings, 20 per character
    assert len(c1) == 136 and all(x.shape == (20, 28, 28) for x in c1.images)
    x = torch.stack(c1.images)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert 0.85 < float(x.mean()) < 0.95  # white background = 1, not inverted
    both = D.load_characters([z1, z2])  # Greek and Latin are in both zips: read once
    assert len(both) == 136 + 156 - 24 - 26
    held_out = D.load_characters([z2], exclude=list(c1.alphabets))
    assert held_out.alphabets == ('Japanese_(katakana)', 'Sanskrit', 'Tagalog')
    with pytest.raises(ValueError, match='not in the sources'):
        D.load_characters([z1], alphabets=['Klingon'])


def test_one_shot_runs_on_shared_zip(shared_data) -> None:
    z = shared_data / 'omniglot' / 'one_shot_all_runs.zip'
    if not z.is_file():
        pytest.skip(f'{z} not found')
    runs = D.load_one_shot_runs(z)
    assert len(runs) == 20 and runs[0].name == 'run01'
    assert runs[0].support.shape == (20, 28, 28) and runs[0].query.shape == (20, 28, 28)
    # run01/class_labels.txt: item01 -> class08, item02 -> class09, item03 -> class02
    assert runs[0].query_labels[:3].tolist() == [7, 8, 1]
    assert sorted(runs[0].query_labels.tolist()) == list(range(20))
    ep = D.sample_one_shot_episode(runs, 5, np.random.default_rng(0))
    assert ep.support.shape == (5, 1, 28, 28) and ep.query_labels.tolist() == list(range(5))
