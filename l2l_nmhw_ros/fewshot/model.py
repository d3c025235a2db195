"""The Omniglot CNN of Ortner et al. 2025 (paper Fig. 2; code ``maml_trainee_omniglot.py``).

Architecture (paper-notes §4, CODE ``MAMLTraineeOmniglotConv``), for 28 × 28 × 1 inputs:

.. code-block:: text

    4 × [ conv 3×3, stride 2, padding 1, no bias  →  ReLU  →  BatchNorm without scale/shift ]
        spatial 28 → 14 → 7 → 4 → 2, C = 56 channels (checkpoint; code default 64)
    2×2 max-pool (global over the 2×2 map)  →  feature f ∈ R^C
    dense readout, no bias: logits = W_out f,  W_out (n_ways, C)

BatchNorm: y = (x − μ) / sqrt(σ² + ε), ε = 1e-3 (Keras default), per channel, no γ/β. The code's
layers have momentum 1, so their *moving* statistics never leave (μ, σ²) = (0, 1). Two modes:

- ``'batch'``: μ, σ² (biased) of the current pass, over its images and positions. The code runs
  **every** pass this way, at evaluation too: ``MAMLTrainer.do_stuff(training=False)`` calls
  ``inner_loop_auto(data, target)`` without the flag, whose default is ``training=True``, and the
  query pass passes no flag either (default True). The code pools the statistics of a whole
  meta-batch of tasks (batch 32/40); here every episode has its own (its support or query images
  only), which is what the code does at batch size 1.
- ``'fixed'``: the moving statistics, y = x / sqrt(1 + ε) (unnormalised).

Correction to paper-notes §4, which reads the support passes at evaluation as ``training=False``
(``'fixed'``): the call chain above says otherwise, and measurement agrees: the published weights
reach 97 % (5-way 5-shot, float, 40 episodes) with ``'batch'`` everywhere and chance level
(19.5 %) with ``'fixed'`` support passes. :data:`BN_PROTOCOLS` keeps both: ``'batch'`` (default,
the code's behaviour) and ``'fixed_support'`` (the notes' reading, for comparison).
Consequence: classification is transductive (a query image is normalised with the statistics of
the query set it comes with).

Convolutions are matrix-vector products (im2col): ``conv2d`` accepts a per-layer MVM so that the
same function runs exact (``torch.nn.functional.conv2d``) or on the PCM emulator
(:mod:`l2l_nmhw_ros.fewshot.pcm`). Weights are (n_post, n_pre) everywhere: kernels
(c_out, c_in, 3, 3), flattened (c_out, 9·c_in) in the unfold order (c_in, kh, kw).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from l2l_nmhw_ros.errors import ShapeError

__all__ = ['BN_EPS', 'BN_MODES', 'BN_PROTOCOLS', 'CHANNELS', 'KERNEL', 'N_CONV', 'WEIGHT_KEYS',
           'CNNWeights', 'ConvMVM', 'batch_norm', 'conv2d', 'features', 'readout_logits']

#: Channels of every conv layer (published checkpoint: 56).
CHANNELS = 56
#: Conv layers.
N_CONV = 4
#: Kernel side [pixels]; stride 2, padding 1.
KERNEL = 3
#: BatchNorm ε (Keras default 1e-3).
BN_EPS = 1e-3
BN_MODES = ('batch', 'fixed')
#: Evaluation protocols: name -> (support BN mode, query BN mode).
BN_PROTOCOLS: dict[str, tuple[str, str]] = {'batch': ('batch', 'batch'),
                                            'fixed_support': ('fixed', 'batch')}
#: Checkpoint keys (the published importer's names, l2l_nmhw_ros.reference.published).
WEIGHT_KEYS = ('omniglot.kernel1', 'omniglot.kernel2', 'omniglot.kernel3', 'omniglot.kernel4',
               'omniglot.kernel5')

#: MVM of one conv layer: (x (m, 9·c_in), layer index 0..3) -> y (m, c_out).
ConvMVM = Callable[[torch.Tensor, int], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class CNNWeights:
    """The CNN's weights [1] (weight units; PCM maps |w| ≤ w_max = 1 to 0..25 µS).

    Attributes:
        kernels: 4 conv kernels, (C, 1, 3, 3) then 3 × (C, C, 3, 3).
        readout: dense readout W_out, (n_ways, C).
    """

    kernels: tuple[torch.Tensor, ...]
    readout: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.kernels) != N_CONV:
            raise ShapeError(f'kernels: expected {N_CONV}, got {len(self.kernels)}')
        c = self.kernels[0].shape[0]
        for i, k in enumerate(self.kernels):
            want = (c, 1 if i == 0 else c, KERNEL, KERNEL)
            if tuple(k.shape) != want:
                raise ShapeError(f'kernels[{i}]: expected {want}, got {tuple(k.shape)}')
        if self.readout.dim() != 2 or self.readout.shape[1] != c:
            raise ShapeError(f'readout: expected (n_ways, {c}), got {tuple(self.readout.shape)}')

    @property
    def channels(self) -> int:
        """C, the channels of every conv layer."""
        return int(self.kernels[0].shape[0])

    @property
    def ways(self) -> int:
        """Classes of the readout."""
        return int(self.readout.shape[0])

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray | torch.Tensor]) -> CNNWeights:
        """Build from checkpoint arrays keyed by :data:`WEIGHT_KEYS` (float32 copies).

        Raises:
            ValueError: a key is missing. ShapeError: inconsistent shapes.
        """
        missing = [k for k in WEIGHT_KEYS if k not in arrays]
        if missing:
            raise ValueError(f'weights: missing {missing}')
        t = [torch.as_tensor(np.asarray(arrays[k]), dtype=torch.float32).clone()
             for k in WEIGHT_KEYS]
        return cls(tuple(t[:N_CONV]), t[N_CONV])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return the weights keyed by :data:`WEIGHT_KEYS` (float32 numpy)."""
        ts = (*self.kernels, self.readout)
        return {k: t.detach().cpu().numpy().astype(np.float32)
                for k, t in zip(WEIGHT_KEYS, ts, strict=True)}

    @classmethod
    def glorot(cls, generator: torch.Generator, channels: int = CHANNELS,
               ways: int = 5) -> CNNWeights:
        """Glorot-uniform initial weights as the code's ``GlorotUniform`` (fans of the TF kernel
        (kh, kw, c_in, c_out): fan_in = 9·c_in, fan_out = 9·c_out; readout (C, ways))."""
        ks = []
        for i in range(N_CONV):
            c_in = 1 if i == 0 else channels
            lim = math.sqrt(6.0 / (KERNEL * KERNEL * (c_in + channels)))
            ks.append((torch.rand((channels, c_in, KERNEL, KERNEL), generator=generator) * 2 - 1)
                      * lim)
        lim = math.sqrt(6.0 / (channels + ways))
        ro = (torch.rand((ways, channels), generator=generator) * 2 - 1) * lim
        return cls(tuple(ks), ro)


def conv2d(x: torch.Tensor, kernel: torch.Tensor, mvm: Callable[[torch.Tensor], torch.Tensor]
           | None = None) -> torch.Tensor:
    """3×3 convolution, stride 2, padding 1, no bias, optionally as an im2col MVM.

    Args:
        x: input [1], (n, c_in, h, w).
        kernel: (c_out, c_in, 3, 3) [1].
        mvm: ``None``: exact ``F.conv2d``; else a function y = mvm(cols) with cols
            (n·h_out·w_out, 9·c_in) in the unfold order (c_in, kh, kw), returning
            (n·h_out·w_out, c_out), e.g. an analog MVM with read noise.

    Returns:
        (n, c_out, h_out, w_out), h_out = ⌊(h − 1)/2⌋ + 1.

    Raises:
        ShapeError: x not 4-d or channel mismatch.
    """
    if x.dim() != 4 or x.shape[1] != kernel.shape[1]:
        raise ShapeError(f'x: expected (n, {kernel.shape[1]}, h, w), got {tuple(x.shape)}')
    if mvm is None:
        return F.conv2d(x, kernel, stride=2, padding=1)
    n, _, h, w = x.shape
    h_out, w_out = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    cols = F.unfold(x, KERNEL, padding=1, stride=2)  # (n, 9 c_in, L)
    y = mvm(cols.transpose(1, 2).reshape(n * h_out * w_out, -1))
    return y.reshape(n, h_out * w_out, -1).transpose(1, 2).reshape(n, -1, h_out, w_out)


def batch_norm(x: torch.Tensor, mode: str) -> torch.Tensor:
    """BatchNorm without scale and shift (see module docstring).

    Args:
        x: activations (e, n, c, h, w): e episodes of n images each.
        mode: ``'batch'`` (statistics per episode and channel over n, h, w; biased variance)
            or ``'fixed'`` (the code's moving statistics μ = 0, σ² = 1).

    Returns:
        normalised x, same shape. Gradient: through the batch statistics (``'batch'``).

    Raises:
        ValueError: unknown mode. ShapeError: x not 5-d.
    """
    if x.dim() != 5:
        raise ShapeError(f'x: expected (episodes, images, c, h, w), got {tuple(x.shape)}')
    if mode == 'fixed':
        return x / math.sqrt(1.0 + BN_EPS)
    if mode != 'batch':
        raise ValueError(f'mode: expected one of {BN_MODES}, got {mode!r}')
    mean = x.mean(dim=(1, 3, 4), keepdim=True)
    var = x.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + BN_EPS)


def features(images: torch.Tensor, kernels: Sequence[torch.Tensor], bn: str,
             mvm: ConvMVM | None = None) -> torch.Tensor:
    """Return the CNN's feature vectors (input of the readout).

    Args:
        images: (e, n, 1, 28, 28) [1] (e episodes of n images; (n, 1, 28, 28) is read as e = 1).
        kernels: the 4 conv kernels (see :class:`CNNWeights`).
        bn: BatchNorm mode of this pass, ``'batch'`` or ``'fixed'``.
        mvm: per-layer MVM (``None``: exact ``F.conv2d``), see :data:`ConvMVM`.

    Returns:
        features (e, n, C) (or (n, C) for 4-d input) [1].

    Raises:
        ShapeError: images not (…, 1, 28, 28).
    """
    squeeze = images.dim() == 4
    x = images.unsqueeze(0) if squeeze else images
    if x.dim() != 5 or x.shape[2] != 1:
        raise ShapeError(f'images: expected (e, n, 1, h, w), got {tuple(images.shape)}')
    e, n = x.shape[:2]
    x = x.reshape(e * n, *x.shape[2:])
    for i, k in enumerate(kernels):
        layer_mvm = None if mvm is None else (lambda cols, i=i: mvm(cols, i))
        x = torch.relu(conv2d(x, k, layer_mvm))
        x = batch_norm(x.reshape(e, n, *x.shape[1:]), bn).reshape(e * n, *x.shape[1:])
    f = torch.amax(x, dim=(2, 3))  # 2×2 max-pool over the whole 2×2 map (28 → ... → 2)
    f = f.reshape(e, n, -1)
    return f[0] if squeeze else f


def readout_logits(f: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """Exact readout: logits = f W_outᵀ, f (…, n, C), W_out (…, K, C) -> (…, n, K)."""
    return f @ w_out.transpose(-1, -2)
