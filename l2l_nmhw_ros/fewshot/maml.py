"""MAML inner loop of the few-shot CNN: readout only, 4 SGD steps, lr 0.1, updates on PCM.

Paper (Fig. 2) and code (``maml_trainer.py::inner_loop_auto``): the conv layers stay fixed; for
s = 1..4 the support set is passed through the network, and the readout gets

.. math::

    \\Delta W_{out} = -\\eta\\, \\nabla_{W_{out}}
        \\frac{1}{n} \\sum_i \\mathrm{CE}(W_{out} f_i, y_i)
                   = -\\frac{\\eta}{n} (\\mathrm{softmax}(z) - \\mathrm{onehot}(y))^\\top F,

η = 0.1, z = logits (n, K), F = features (n, C). The update is written by
:meth:`l2l_nmhw_ros.pcm.PCMModel.reprogram`: ΔW rounded to the ``delta_w_step`` grid (1/16,
stochastic rounding as the code's ``quantize_stochastic``), and only the weights whose rounded
ΔW ≠ 0 are re-programmed (programming noise and fresh drift on those only). With an ``ideal``
model and ``delta_w_step = 0`` this is plain float SGD (the code's documented ``--noise=False``
run); ``ideal`` with 1/16 is "software on the 1/16 grid".

The gradient is the closed form above evaluated on what the network produced (features and
logits of the noisy pass on PCM, as the code's custom gradient ``tf_beo_boh_beh_noise``, which
forms dW from the clean input and the output error). It is built from torch ops, so it is
differentiable: meta-training back-propagates through it (second-order MAML, as the code's
nested gradient tapes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.fewshot.model import readout_logits
from l2l_nmhw_ros.pcm import PCMModel

__all__ = ['INNER_LR', 'INNER_STEPS', 'InnerResult', 'cross_entropy', 'inner_loop',
           'readout_grad']

#: Inner-loop SGD steps per task (paper Fig. 2; code ``--inner_updates`` 4).
INNER_STEPS = 4
#: Inner learning rate η (code ``--lr_inner`` 0.1).
INNER_LR = 0.1

Readout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy per episode [nats]: logits (…, n, K), labels (…, n) -> (…)."""
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(-1)


def readout_grad(f: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy w.r.t. the readout W_out (closed form).

    For logits z = f W_outᵀ (+ read noise that does not depend on W_out):
    dL/dW_out = (softmax(z) − onehot(y))ᵀ f / n.

    Args:
        f: features (…, n, C).
        logits: (…, n, K).
        labels: int64 (…, n) in 0..K−1.

    Returns:
        gradient (…, K, C) [1/weight unit of loss].

    Raises:
        ShapeError: inconsistent shapes.
    """
    if logits.shape[:-1] != f.shape[:-1] or labels.shape != f.shape[:-1]:
        raise ShapeError(f'f {tuple(f.shape)}, logits {tuple(logits.shape)}, labels '
                         f'{tuple(labels.shape)}: expected (…, n, C), (…, n, K), (…, n)')
    err = torch.softmax(logits, dim=-1) - F.one_hot(labels, logits.shape[-1]).to(f.dtype)
    return err.transpose(-1, -2) @ f / f.shape[-2]


@dataclasses.dataclass
class InnerResult:
    """Outcome of :func:`inner_loop`.

    Attributes:
        w_out: adapted readout (…, K, C) (effective weights on the model).
        devices: devices re-programmed over all steps, int64 (…) (PCMModel's count).
        losses: support loss (…) before each step [nats], ``steps`` entries.
    """

    w_out: torch.Tensor
    devices: torch.Tensor
    losses: list[torch.Tensor]


def inner_loop(support_features: Callable[[int], torch.Tensor], w_out: torch.Tensor,
               labels: torch.Tensor, model: PCMModel, *, steps: int = INNER_STEPS,
               lr: float = INNER_LR, generator: torch.Generator | None = None,
               readout: Readout = readout_logits) -> InnerResult:
    """Adapt the readout to one task (or a batch of tasks) in ``steps`` SGD steps.

    Args:
        support_features: ``s -> F`` (…, n, C): the support set's features for step s (a fresh
            pass per step on PCM, where read noise differs each time).
        w_out: initial effective readout (…, K, C) (as deployed).
        labels: support labels int64 (…, n).
        model: the weight substrate (float, 1/16 grid or PCM).
        steps: SGD steps (paper: 4).
        lr: learning rate η (paper: 0.1).
        generator: random generator for rounding and programming noise.
        readout: ``(F, W) -> logits`` (exact by default; a PCM MVM on the chip).

    Returns:
        :class:`InnerResult`.

    Raises:
        ValueError: steps < 0 or lr not finite ≥ 0.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f'steps: expected an int >= 0, got {steps!r}')
    if not lr >= 0.0 or lr == float('inf'):
        raise ValueError(f'lr: expected a finite value >= 0, got {lr!r}')
    devices = torch.zeros(w_out.shape[:-2], dtype=torch.int64)
    losses = []
    w = w_out
    for s in range(steps):
        f = support_features(s)
        z = readout(f, w)
        losses.append(cross_entropy(z, labels).detach())
        g = readout_grad(f, z, labels)
        w, n = model.reprogram(w, -lr * g, generator)
        devices = devices + n
    return InnerResult(w, devices, losses)
