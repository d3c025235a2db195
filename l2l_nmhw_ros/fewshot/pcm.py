"""The few-shot CNN deployed on the PCM emulator, and its evaluation (float / 1/16 grid / PCM).

Every weight of the network (4 conv kernels and the readout) is deployed with
:meth:`l2l_nmhw_ros.pcm.PCMModel.deploy` (paper code ``PCMNoise.init_weights``: jitter + drift,
weights clipped to ±1, its |w| > 1 quirk included in the ``paper_code`` preset). A conv layer is an
im2col MVM through :meth:`PCMModel.mvm` on its kernel flattened to (c_out, 9·c_in) = (56, 504)
(504 rows = two 252-row halves on two 256 × 256 tiles, as the paper splits each conv layer over
two crossbars); the readout is the (5, 56) matrix. Each MVM carries 1/f read noise. The inner
loop (:func:`l2l_nmhw_ros.fewshot.maml.inner_loop`) re-programs only the readout entries whose
rounded update is non-zero, and counts the devices written.

Variants (:func:`variant_config`), one code path with three PCM configurations:

``float``  ideal devices, ΔW not rounded: the 32-bit software model (code ``--noise=False``).
``grid``   ideal devices, ΔW stochastically rounded to the 1/16 grid ("4-bit" software).
``pcm``    the configured device model (default ``paper_code``), stochastic rounding.

Differences to the paper code's noisy run, on purpose (one device model for the package): the
readout's read noise is drawn per output (:meth:`PCMModel.mvm`, the SD of the sum) where the code
draws one noisy copy of W_out per pass with ln((t + t_read)/(2 t_read)) and no 1/√2; the conv
layers' read noise matches the code (per output, ln((t + t_read)/t_read)/√2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.fewshot.data import Episode
from l2l_nmhw_ros.fewshot.maml import INNER_LR, INNER_STEPS, cross_entropy, inner_loop
from l2l_nmhw_ros.fewshot.model import BN_PROTOCOLS, CNNWeights, features
from l2l_nmhw_ros.pcm import PCMModel

__all__ = ['VARIANTS', 'EvalResult', 'FewShotClassifier', 'LearnReport', 'accuracy_interval',
           'evaluate', 'variant_config']

VARIANTS = ('float', 'grid', 'pcm')


def variant_config(variant: str, base: PCMConfig) -> PCMConfig:
    """Return the PCM configuration of an evaluation variant (see module docstring).

    Raises:
        ValueError: unknown variant.
    """
    if variant == 'float':
        return dataclasses.replace(base, preset='ideal', delta_w_step=0.0)
    if variant == 'grid':
        return dataclasses.replace(base, preset='ideal', stochastic_rounding=True)
    if variant == 'pcm':
        return dataclasses.replace(base, stochastic_rounding=True)
    raise ValueError(f'variant: expected one of {VARIANTS}, got {variant!r}')


@dataclasses.dataclass
class LearnReport:
    """What one on-chip learning of a task did.

    Attributes:
        devices: PCM devices re-programmed by the inner-loop updates (N = 2 per changed weight).
        losses: support loss [nats] before each of the inner steps.
    """

    devices: int
    losses: list[float]


class FewShotClassifier:
    """The CNN deployed on a PCM model: on-chip learning of new classes and prediction.

    Typical use (the core a ROS node would hold)::

        clf = FewShotClassifier(weights, cfg.pcm, generator=torch.Generator().manual_seed(0))
        report = clf.learn(support_images, support_labels)   # 4 on-chip readout updates
        cls, conf = clf.predict(query_images)

    Args:
        weights: meta-learned weights.
        pcm: PCM configuration (see :func:`variant_config` for float / grid).
        generator: random generator for device noise and rounding (``None``: seed 0).
        bn_protocol: ``'batch'`` (default, the code) or ``'fixed_support'``
            (:data:`~l2l_nmhw_ros.fewshot.model.BN_PROTOCOLS`).
        steps: inner SGD steps (paper: 4).
        lr: inner learning rate (paper: 0.1).

    Raises:
        ValueError: unknown protocol, or a PCM config of another type.
    """

    def __init__(self, weights: CNNWeights, pcm: PCMConfig, *,
                 generator: torch.Generator | None = None, bn_protocol: str = 'batch',
                 steps: int = INNER_STEPS, lr: float = INNER_LR) -> None:
        if bn_protocol not in BN_PROTOCOLS:
            raise ValueError(f'bn_protocol: expected one of {tuple(BN_PROTOCOLS)}, got '
                             f'{bn_protocol!r}')
        self.weights = weights
        self.model = PCMModel(pcm)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.bn_support, self.bn_query = BN_PROTOCOLS[bn_protocol]
        self.steps, self.lr = steps, lr
        self._kernels: list[torch.Tensor] = []
        self.w_out = weights.readout
        self.deploy()

    @property
    def ways(self) -> int:
        """Classes the readout distinguishes."""
        return self.weights.ways

    def deploy(self) -> None:
        """Program every weight afresh (initial deployment: jitter, drift, new device draws)."""
        with torch.no_grad():
            self._kernels = [self.model.deploy(k.reshape(k.shape[0], -1), self.generator)
                             for k in self.weights.kernels]
        self.reset_readout()

    def reset_readout(self) -> None:
        """Program the readout back to its meta-learned value (a fresh deployment of W_out)."""
        with torch.no_grad():
            self.w_out = self.model.deploy(self.weights.readout, self.generator)

    def _conv_mvm(self, cols: torch.Tensor, i: int) -> torch.Tensor:
        return self.model.mvm(cols, self._kernels[i], self.generator)

    def _readout(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.model.mvm(f, w, self.generator)

    def features(self, images: torch.Tensor, bn: str) -> torch.Tensor:
        """Features (n, C) of images (n, 1, 28, 28) through the deployed conv layers (no grad)."""
        x = _check_images(images)
        with torch.no_grad():
            if self.model.exact_reads:
                ks = [k.reshape(w.shape)
                      for k, w in zip(self._kernels, self.weights.kernels, strict=True)]
                return features(x, ks, bn)
            ks = list(self.weights.kernels)  # shapes only; the MVM reads the deployed matrices
            return features(x, ks, bn, mvm=self._conv_mvm)

    def learn(self, images: torch.Tensor, labels: torch.Tensor) -> LearnReport:
        """Learn new classes on chip: reset the readout, then the inner loop on the support set.

        Args:
            images: support images (n, 1, 28, 28) or (n, 28, 28) [1], 1.0 = background.
            labels: int64 (n,) in 0..ways−1.

        Returns:
            :class:`LearnReport` (devices re-programmed by the updates, support losses).

        Raises:
            ShapeError: bad image shape or label count. ValueError: labels out of range.
        """
        x = _check_images(images)
        y = _check_labels(labels, x.shape[0], self.ways)
        self.reset_readout()
        cached: list[torch.Tensor] = []

        def support(step: int) -> torch.Tensor:
            if self.model.exact_reads and cached:  # exact reads: the same features every step
                return cached[0]
            f = self.features(x, self.bn_support)
            cached[:] = [f]
            return f

        with torch.no_grad():
            res = inner_loop(support, self.w_out, y, self.model, steps=self.steps, lr=self.lr,
                             generator=self.generator, readout=self._readout)
        self.w_out = res.w_out
        return LearnReport(int(res.devices), [float(v) for v in res.losses])

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (n, ways) of images (n, 1, 28, 28); BatchNorm statistics are taken over the
        images given together (``'batch'`` query protocol: pass the whole query set at once)."""
        with torch.no_grad():
            return self._readout(self.features(images, self.bn_query), self.w_out)

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (class int64 (n,), confidence (n,) = softmax probability of that class)."""
        p = torch.softmax(self.logits(images), dim=-1)
        conf, cls = p.max(dim=-1)
        return cls, conf


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError('images: expected a floating-point tensor')
    x = images.unsqueeze(1) if images.dim() == 3 else images
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[0] < 1:
        raise ShapeError(f'images: expected (n, 1, h, w) or (n, h, w), got {tuple(images.shape)}')
    return x.to(torch.float32)


def _check_labels(labels: torch.Tensor, n: int, ways: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise ValueError('labels: expected an int64 tensor')
    if tuple(labels.shape) != (n,):
        raise ShapeError(f'labels: expected ({n},), got {tuple(labels.shape)}')
    if bool((labels < 0).any()) or bool((labels >= ways).any()):
        raise ValueError(f'labels: expected values in 0..{ways - 1}')
    return labels


@dataclasses.dataclass
class EvalResult:
    """Per-episode results of one variant: accuracy [fraction] and devices re-programmed, both
    float64 (n_episodes,); query loss after adaptation [nats]."""

    variant: str
    accuracy: np.ndarray
    devices: np.ndarray
    loss: np.ndarray

    def summary(self, level: float = 0.95) -> dict[str, float]:
        """Mean accuracy [%] with its interval (:func:`accuracy_interval`), devices, loss."""
        m, lo, hi = accuracy_interval(self.accuracy, level)
        return {'accuracy_pct': 100 * m, 'ci_low_pct': 100 * lo, 'ci_high_pct': 100 * hi,
                'episodes': int(self.accuracy.size), 'devices_mean': float(self.devices.mean()),
                'query_loss': float(self.loss.mean())}


def accuracy_interval(acc: np.ndarray, level: float = 0.95, *,
                      bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float, float]:
    """Mean of per-episode accuracies and its Student-t confidence interval.

    Interval: mean ± t_{(1+level)/2, n−1} · s / √n over episodes (s the sample SD), the usual
    few-shot report (queries within an episode are not independent, so the episode is the unit),
    clipped to ``bounds`` (accuracies: [0, 1]; paired differences: pass (−1, 1)).

    Returns:
        (mean, low, high) as fractions; low = high = mean for one episode.

    Raises:
        ValueError: empty input or level outside (0, 1).
    """
    from scipy import stats

    a = np.asarray(acc, dtype=np.float64)
    if a.size == 0:
        raise ValueError('acc: no episode')
    if not 0.0 < level < 1.0:
        raise ValueError(f'level: expected a value in (0, 1), got {level!r}')
    m = float(a.mean())
    if a.size == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, a.size - 1)) * float(a.std(ddof=1)) / math.sqrt(
        a.size)
    return m, max(m - half, bounds[0]), min(m + half, bounds[1])


def evaluate(weights: CNNWeights, episodes: Sequence[Episode] | Callable[[int], Episode],
             n_episodes: int, pcm: PCMConfig, *, variants: Sequence[str] = VARIANTS,
             seed: int = 0, bn_protocol: str = 'batch',
             progress: bool = False) -> dict[str, EvalResult]:
    """Evaluate the variants side by side on the same episodes.

    Each episode: the whole network is deployed afresh (as the paper code's ``set_weights`` at
    its evaluation batch size 1), the readout learns the support set on chip, the query set is
    classified. Each variant has its own generator (seed + 7919·index).

    Args:
        weights: the network.
        episodes: a sequence of :class:`Episode`, or a callable ``i -> Episode``.
        n_episodes: episodes to run.
        pcm: base PCM configuration (the ``pcm`` variant uses it with stochastic rounding).
        variants: subset of :data:`VARIANTS`.
        seed: seed of the device noise and rounding.
        bn_protocol: ``'batch'`` or ``'fixed_support'``.
        progress: show a tqdm bar on stderr.

    Returns:
        variant -> :class:`EvalResult`.

    Raises:
        ValueError: unknown variant or protocol, n_episodes < 1.
    """
    if n_episodes < 1:
        raise ValueError(f'n_episodes: expected >= 1, got {n_episodes}')
    get: Callable[[int], Episode] = episodes if callable(episodes) else episodes.__getitem__
    clfs = {v: FewShotClassifier(weights, variant_config(v, pcm),
                                 generator=torch.Generator().manual_seed(seed + 7919 * k),
                                 bn_protocol=bn_protocol)
            for k, v in enumerate(variants)}
    acc = {v: np.zeros(n_episodes) for v in variants}
    dev = {v: np.zeros(n_episodes) for v in variants}
    loss = {v: np.zeros(n_episodes) for v in variants}
    it = range(n_episodes)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc='episodes', unit='ep', dynamic_ncols=True)
    for i in it:
        ep = get(i)
        for v, clf in clfs.items():
            clf.deploy()
            rep = clf.learn(ep.support, ep.support_labels)
            z = clf.logits(ep.query)
            acc[v][i] = float((z.argmax(-1) == ep.query_labels).double().mean())
            dev[v][i] = rep.devices
            loss[v][i] = float(cross_entropy(z, ep.query_labels))
    return {v: EvalResult(v, acc[v], dev[v], loss[v]) for v in variants}
