"""Streaming few-shot core (fewshot/session.py): image conversion on hand-computed pixels, the
support buffers, learn / classify and their refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.fewshot.model import CNNWeights
from l2l_nmhw_ros.fewshot.pcm import FewShotClassifier, variant_config
from l2l_nmhw_ros.fewshot.session import FewShotSession, image_to_gray


def test_image_to_gray_hand_computed() -> None:
    # rgb8 2x1 with a padded row (step 8): (30, 60, 90) -> 60, (255, 0, 0) -> 85
    data = bytes([30, 60, 90, 255, 0, 0, 7, 7])
    np.testing.assert_array_equal(image_to_gray('rgb8', 1, 2, 8, data), [[60, 85]])
    # mono16 little endian: 65535 -> 255, 32768 -> 128
    data = np.array([65535, 32768], dtype='<u2').tobytes()
    np.testing.assert_array_equal(image_to_gray('mono16', 1, 2, 4, data), [[255, 128]])
    # 32FC1 big endian: 0.5 -> 128 (rint 127.5 -> 128), 2.0 clipped to 255
    data = np.array([0.5, 2.0], dtype='>f4').tobytes()
    np.testing.assert_array_equal(image_to_gray('32FC1', 1, 2, 8, data, big_endian=True),
                                  [[128, 255]])


@pytest.mark.parametrize(('args', 'words'), [
    (('yuv422', 1, 1, 2, b'00'), 'not supported'),
    (('mono8', 2, 2, 2, b'000'), 'expected step x height = 4'),
    (('rgb8', 1, 2, 5, b'000000'), 'step 5 < width'),
    (('mono8', 0, 2, 2, b''), 'expected 1..4096'),
    (('32FC1', 1, 1, 4, np.array([np.nan], '<f4').tobytes()), 'NaN'),
])
def test_image_to_gray_refuses_bad_images(args, words) -> None:
    with pytest.raises(ValueError, match=words):
        image_to_gray(*args)


def _session() -> FewShotSession:
    w = CNNWeights.glorot(torch.Generator().manual_seed(0), channels=8)
    clf = FewShotClassifier(w, variant_config('float', C.PCMConfig()))
    return FewShotSession(clf, max_per_class=2)


def test_support_buffers_learn_and_classify() -> None:
    s = _session()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 3, 28, 28), dtype=np.uint8)
    with pytest.raises(RuntimeError, match='no classes learned'):
        s.classify(imgs[0, 0])
    for k in range(4):
        s.add_support(k, imgs[k, 0])
    with pytest.raises(ValueError, match=r'class\(es\) \[4\]'):
        s.learn()
    assert s.add_support(4, imgs[4, 0]) == 1
    assert [s.add_support(0, imgs[0, j]) for j in (1, 2)] == [2, 2]  # newest 2 kept
    with pytest.raises(ValueError, match='label 5'):
        s.add_support(5, imgs[0, 0])
    report = s.learn()
    assert s.learned and len(report.losses) == 4
    k, conf, p = s.classify(imgs[2, 0])
    assert p.shape == (5,) and p.sum() == pytest.approx(1.0, abs=1e-6)
    assert k == int(np.argmax(p)) and conf == pytest.approx(p.max())
    # the same image gives the same answer: the BN context is the support set, not history
    assert s.classify(imgs[2, 0])[0] == k
    s.clear()
    assert not s.learned and all(not b for b in s.support)
