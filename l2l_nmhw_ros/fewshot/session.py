"""Streaming few-shot classification: the core behind the ``fewshot_classifier`` node.

Images arrive one at a time (a camera, a topic). :class:`FewShotSession` keeps the labelled
support images of the new classes, runs ONE on-chip learning on them
(:meth:`~l2l_nmhw_ros.fewshot.pcm.FewShotClassifier.learn`: 4 readout updates on the emulated
PCM, paper §4) and classifies single images afterwards.

BatchNorm context (a choice, measured): the network normalises with the statistics of the images
it is given together (transductive, as the authors' code; see :mod:`l2l_nmhw_ros.fewshot.model`).
A single image alone is normalised with its own statistics, and accuracy drops to chance-like
levels (published weights, float, 5-way 5-shot, 40 episodes, small2 alphabets: 47.6 % one at a
time vs 98.4 % with the 25 queries together). So each query is classified TOGETHER with the
support set it was learned from (support + this image in one pass; the query's logits are
used): 97.6 % on the same episodes, and the answer for one image does not depend on which other
images were asked before.

Image conversion (:func:`image_to_gray`): ``mono8``, ``mono16``, ``8UC1``, ``rgb8``/``bgr8``
(mean of the channels), ``rgba8``/``bgra8``, ``32FC1`` (0..1); any size, resized to 28 × 28 as
the data loader (:func:`~l2l_nmhw_ros.fewshot.data.preprocess`). Omniglot's convention holds:
dark strokes on a white background.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.fewshot.data import preprocess
from l2l_nmhw_ros.fewshot.pcm import FewShotClassifier, LearnReport

__all__ = ['ENCODINGS', 'FewShotSession', 'image_to_gray']

#: encoding -> (channels, bytes per channel)
ENCODINGS = {'mono8': (1, 1), '8UC1': (1, 1), 'mono16': (1, 2), '16UC1': (1, 2),
             'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1),
             '32FC1': (1, 4)}


def image_to_gray(encoding: str, height: int, width: int, step: int, data: bytes | Any, *,
                  big_endian: bool = False) -> np.ndarray:
    """Return the grey values (height, width) uint8 of a raw image (sensor_msgs/Image fields).

    Raises:
        ValueError: unsupported encoding, a size that does not match the data, non-finite
            float pixels.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f'image encoding {encoding!r} not supported; use one of '
                         f'{sorted(ENCODINGS)}')
    ch, size = ENCODINGS[encoding]
    if height < 1 or width < 1 or height > 4096 or width > 4096:
        raise ValueError(f'image size {width} x {height}: expected 1..4096 pixels per side')
    row = width * ch * size
    if step < row:
        raise ValueError(f'image step {step} < width x channels x bytes = {row}')
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size != step * height:
        raise ValueError(f'image data has {buf.size} bytes, expected step x height = '
                         f'{step * height}')
    rows = buf.reshape(height, step)[:, :row]
    if size == 1:
        px = rows.reshape(height, width, ch).astype(np.float32) / 255.0
    elif size == 2:
        dt = np.dtype('>u2' if big_endian else '<u2')
        px = rows.copy().view(dt).reshape(height, width, 1).astype(np.float32) / 65535.0
    else:
        dt = np.dtype('>f4' if big_endian else '<f4')
        px = rows.copy().view(dt).reshape(height, width, 1).astype(np.float32)
        if not np.isfinite(px).all():
            raise ValueError('32FC1 image has NaN or inf pixels')
    grey = px[..., :3].mean(axis=-1) if ch >= 3 else px[..., 0]
    return np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)


class FewShotSession:
    """Support buffers per class, one on-chip learning, single-image classification.

    Args:
        classifier: the CNN deployed on the PCM model.
        max_per_class: support images kept per class (the newest; paper: 5 shots).

    Raises:
        ValueError: ``max_per_class`` < 1.
    """

    def __init__(self, classifier: FewShotClassifier, *, max_per_class: int = 20) -> None:
        if max_per_class < 1:
            raise ValueError(f'max_per_class must be >= 1, got {max_per_class}')
        self.classifier = classifier
        self.max_per_class = max_per_class
        self.support: list[list[torch.Tensor]] = [[] for _ in range(classifier.ways)]
        self._context: torch.Tensor | None = None  # the support set learned from
        self.last_report: LearnReport | None = None

    @property
    def ways(self) -> int:
        """Number of classes."""
        return self.classifier.ways

    @property
    def learned(self) -> bool:
        """True after a successful :meth:`learn` (until :meth:`clear`)."""
        return self._context is not None

    def add_support(self, label: int, grey: np.ndarray) -> int:
        """Keep one labelled image (grey uint8 (h, w)); returns the images now held for `label`.

        Raises:
            ValueError: label outside 0..ways-1 or a bad image.
        """
        if not 0 <= int(label) < self.ways:
            raise ValueError(f'label {label}: expected 0..{self.ways - 1}')
        buf = self.support[int(label)]
        buf.append(_to_input(grey))
        del buf[:-self.max_per_class]
        return len(buf)

    def clear(self) -> None:
        """Forget the support images and the learned classes (the readout is reset)."""
        self.support = [[] for _ in range(self.ways)]
        self._context = None
        self.classifier.reset_readout()

    def learn(self) -> LearnReport:
        """ONE on-chip learning on every support image held (the readout starts again from its
        meta-learned value).

        Raises:
            ValueError: a class has no support image (names them).
        """
        missing = [k for k, buf in enumerate(self.support) if not buf]
        if missing:
            raise ValueError(f'no support images for class(es) {missing}: send at least one '
                             'image of every class first')
        images = torch.stack([img for buf in self.support for img in buf])
        labels = torch.tensor([k for k, buf in enumerate(self.support) for _ in buf],
                              dtype=torch.int64)
        self.last_report = self.classifier.learn(images, labels)
        self._context = images
        return self.last_report

    def classify(self, grey: np.ndarray) -> tuple[int, float, np.ndarray]:
        """Return (class, confidence, probabilities (ways,)) of one grey image (h, w) uint8,
        classified together with the support set (module docstring).

        Raises:
            RuntimeError: nothing learned yet.
            ValueError: a bad image.
        """
        if self._context is None:
            raise RuntimeError('no classes learned yet: send support images and call learn')
        x = torch.cat([self._context, _to_input(grey).unsqueeze(0)])
        p = torch.softmax(self.classifier.logits(x)[-1], dim=-1).numpy().astype(np.float64)
        k = int(np.argmax(p))
        return k, float(p[k]), p


def _to_input(grey: np.ndarray) -> torch.Tensor:
    if not isinstance(grey, np.ndarray) or grey.dtype != np.uint8 or grey.ndim != 2:
        raise ShapeError(f'image: expected uint8 (h, w), got {getattr(grey, "dtype", None)} '
                         f'{getattr(grey, "shape", None)}')
    return preprocess(grey[None])  # (1, 28, 28)
