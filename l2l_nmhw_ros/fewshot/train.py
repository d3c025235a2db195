"""MAML meta-training of the few-shot CNN, and its checkpoint folder.

Outer loop (paper Fig. 2; code ``maml_trainer.py``, ``main.py``): Adam (lr 1e-3) on the 4 conv
kernels and the readout's initial value; per iteration a batch of tasks (5-way 5-shot, 5 query
drawings per class, each class rotated by a random multiple of 90°), the inner loop of
:func:`l2l_nmhw_ros.fewshot.maml.inner_loop` in software (float SGD, or ``grid``: ΔW on the 1/16
grid with straight-through gradients), and the mean query cross-entropy after adaptation as the
loss. Gradients flow through the inner loop (second-order MAML, as the code's nested tapes). The
code trains 30,000 iterations at batch 32/40 without device noise (README ``--noise=False``);
the defaults here are small for a CPU.

Determinism and resuming: the tasks and the rounding noise of iteration i come from generators
seeded with (seed, i), so a resumed run draws exactly what an uninterrupted one would; the
checkpoint holds the weights, Adam's moments and the iteration.

Checkpoint folder (the layout of :mod:`l2l_nmhw_ros.l2l.checkpoint`, readable by
:func:`l2l_nmhw_ros.reference.published.load_omniglot`): ``weights.safetensors`` (the
:data:`~l2l_nmhw_ros.fewshot.model.WEIGHT_KEYS`), ``train_state.safetensors`` (Adam), and
``metadata.json`` written last with ``model: omniglot_cnn``, ``format_version``,
``files_sha256``, ``iteration``, ``train`` (the settings), ``history_tail``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.fewshot.data import CharacterSet, sample_episode
from l2l_nmhw_ros.fewshot.maml import INNER_LR, INNER_STEPS, cross_entropy, inner_loop
from l2l_nmhw_ros.fewshot.model import CHANNELS, CNNWeights, features, readout_logits
from l2l_nmhw_ros.fewshot.pcm import variant_config
from l2l_nmhw_ros.fileio import atomic_write, sha256_file
from l2l_nmhw_ros.pcm import PCMModel

__all__ = ['TrainSettings', 'load_weights', 'meta_train', 'save_checkpoint']

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Meta-training settings (code defaults in brackets).

    Attributes:
        iterations: outer iterations [30000].
        batch: tasks per iteration [40; README 32].
        ways, shots, queries: task size [5, 5, 5].
        lr: Adam learning rate [1e-3].
        inner_steps, inner_lr: inner loop [4, 0.1].
        channels: conv channels [64; checkpoint 56].
        grid: inner updates on the 1/16 grid during meta-training [off in the README run].
        seed: seed of initial weights, tasks and rounding.
        checkpoint_every: save every this many iterations.
    """

    iterations: int = 1000
    batch: int = 8
    ways: int = 5
    shots: int = 5
    queries: int = 5
    lr: float = 1e-3
    inner_steps: int = INNER_STEPS
    inner_lr: float = INNER_LR
    channels: int = CHANNELS
    grid: bool = False
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        for k in ('iterations', 'batch', 'ways', 'shots', 'queries', 'channels',
                  'checkpoint_every'):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'{k}: expected a positive int, got {v!r}')
        if not self.lr > 0 or not self.inner_lr >= 0:
            raise ValueError('lr, inner_lr: expected lr > 0 and inner_lr >= 0')


def save_checkpoint(folder: str | Path, weights: CNNWeights, metadata: dict[str, Any],
                    train_state: dict[str, np.ndarray] | None = None) -> Path:
    """Write a few-shot checkpoint folder atomically (train state, weights, metadata last).

    Raises:
        CheckpointError: non-finite weights.
    """
    from safetensors.numpy import save_file

    from l2l_nmhw_ros.l2l import checkpoint as ck
    from l2l_nmhw_ros.reference.published import OMNIGLOT_MODEL

    folder = Path(folder)
    arrays = weights.to_arrays()
    for k, a in arrays.items():
        if not np.isfinite(a).all():
            raise CheckpointError(f'{k}: non-finite values')
    files = {}
    if train_state is not None:
        ck.save_train_state(folder, train_state)
        files[ck.TRAIN_STATE_FILE] = sha256_file(folder / ck.TRAIN_STATE_FILE)
    atomic_write(folder / ck.WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp))
    files[ck.WEIGHTS_FILE] = sha256_file(folder / ck.WEIGHTS_FILE)
    meta = {**metadata, 'model': OMNIGLOT_MODEL, 'format_version': ck.FORMAT_VERSION,
            'files_sha256': files}
    text = json.dumps(meta, indent=2, sort_keys=True) + '\n'
    atomic_write(folder / ck.METADATA_FILE, lambda tmp: Path(tmp).write_text(text, 'utf-8'))
    return folder


def load_weights(path: str | Path) -> tuple[CNNWeights, dict[str, Any]]:
    """Load CNN weights from a checkpoint folder (ours or an imported one) or the published
    ``.pickle`` (restricted unpickler); returns (weights, metadata).

    Raises:
        CheckpointError: unreadable, wrong model, or a file that differs from its recorded
            SHA-256.
    """
    from l2l_nmhw_ros.l2l import checkpoint as ck
    from l2l_nmhw_ros.reference import published as P

    p = Path(path)
    if p.is_file():
        pub = P.read_published(p)
        meta = {'source': {'file': p.name, 'sha256': pub.sha256}, 'model': P.OMNIGLOT_MODEL}
        return CNNWeights.from_arrays(P.convert_omniglot(pub)), meta
    arrays, meta = P.load_omniglot(p)
    ck._check_file(p, ck.WEIGHTS_FILE, meta)
    return CNNWeights.from_arrays(arrays), meta


def _task_batch(chars: CharacterSet, s: TrainSettings, it: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([s.seed, it])
    eps = [sample_episode(chars, s.ways, s.shots, s.queries, rng, rotate=True)
           for _ in range(s.batch)]
    return (torch.stack([e.support for e in eps]), torch.stack([e.support_labels for e in eps]),
            torch.stack([e.query for e in eps]), torch.stack([e.query_labels for e in eps]))


def meta_loss(kernels: list[torch.Tensor], readout: torch.Tensor, batch: tuple[torch.Tensor, ...],
              model: PCMModel, s: TrainSettings, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean query loss [nats] and accuracy after the inner loop, for a batch of tasks.

    Args:
        kernels, readout: the meta-parameters (gradients flow to them).
        batch: (support (e, n, 1, 28, 28), support labels (e, n), query, query labels).
        model: the inner loop's substrate (float or 1/16 grid).
        s: settings. generator: rounding noise.
    """
    xs, ys, xq, yq = batch
    fs = features(xs, kernels, 'batch')
    fq = features(xq, kernels, 'batch')
    w0 = readout.expand(xs.shape[0], *readout.shape)
    res = inner_loop(lambda _s: fs, w0, ys, model, steps=s.inner_steps, lr=s.inner_lr,
                     generator=generator)
    z = readout_logits(fq, res.w_out)
    return cross_entropy(z, yq).mean(), (z.argmax(-1) == yq).float().mean()


def meta_train(chars: CharacterSet, out: str | Path, s: TrainSettings, *,
               pcm: PCMConfig | None = None, resume: bool = True, progress: bool = True,
               extra_metadata: dict[str, Any] | None = None) -> Path:
    """Meta-train and write checkpoints to ``out`` (resuming from it when it holds one).

    Args:
        chars: training characters (rotations add classes).
        out: checkpoint folder.
        s: settings.
        pcm: base PCM config for the ``grid`` inner loop (only ``delta_w_step`` is used).
        resume: continue from ``out`` if it has a checkpoint with a train state.
        progress: tqdm bar on stderr.
        extra_metadata: merged into metadata.json (e.g. the alphabets used).

    Returns:
        the checkpoint folder.

    Raises:
        CheckpointError: ``out`` holds a checkpoint of other settings, or one without its
            train state (a shipped checkpoint), while ``resume`` is on.
    """
    from l2l_nmhw_ros.l2l import checkpoint as ck

    out = Path(out)
    torch.manual_seed(s.seed)
    w = CNNWeights.glorot(torch.Generator().manual_seed(s.seed), s.channels, s.ways)
    kernels = [k.clone().requires_grad_(True) for k in w.kernels]
    readout = w.readout.clone().requires_grad_(True)
    params = [*kernels, readout]
    opt = torch.optim.Adam(params, lr=s.lr)
    start, history = 0, []
    settings = dataclasses.asdict(s)
    if resume and (out / ck.METADATA_FILE).is_file():
        wl, meta = load_weights(out)
        state = ck.load_train_state(out)
        old = meta.get('train') or {}
        if any(old.get(k) != v for k, v in settings.items()
               if k not in ('iterations', 'checkpoint_every')):
            raise CheckpointError(f'{out}: holds a run with other settings '
                                  f'({meta.get("train")}); use another folder')
        if state is None:
            raise CheckpointError(f'{out}: holds a checkpoint without a train state (Adam '
                                  'moments), so it cannot be resumed; use another --out')
        with torch.no_grad():
            for p, v in zip(params, [*wl.kernels, wl.readout], strict=True):
                p.copy_(v)
        opt.load_state_dict(_opt_state(opt, state))
        start = int(meta['iteration'])
        history = list(meta.get('history_tail', []))
        log.info('resuming %s at iteration %d', out, start)
    cfg = variant_config('grid' if s.grid else 'float', pcm or PCMConfig())
    model = PCMModel(cfg)
    it_range = range(start, s.iterations)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(it_range, desc='meta-train', unit='it', initial=start, total=s.iterations,
                   dynamic_ncols=True)
        it_range = bar
    run_loss, run_acc = None, None
    for it in it_range:
        batch = _task_batch(chars, s, it)
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + it)
        loss, acc = meta_loss(kernels, readout, batch, model, s, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv, av = float(loss.detach()), float(acc)
        run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
        run_acc = av if run_acc is None else 0.98 * run_acc + 0.02 * av
        if bar is not None:
            bar.set_postfix(loss=f'{run_loss:.3f}', acc=f'{100 * run_acc:.1f}%')
        done = it + 1
        if done % s.checkpoint_every == 0 or done == s.iterations:
            history.append({'iteration': done, 'loss_ema': run_loss, 'acc_ema': run_acc})
            wnow = CNNWeights(tuple(k.detach().clone() for k in kernels),
                              readout.detach().clone())
            meta = {'iteration': done, 'train': settings, 'history_tail': history[-50:],
                    'metrics': {'train_loss_ema': run_loss, 'train_acc_ema': run_acc},
                    **(extra_metadata or {})}
            save_checkpoint(out, wnow, meta, _state_arrays(opt, params))
    return out


def _state_arrays(opt: torch.optim.Adam, params: list[torch.Tensor]) -> dict[str, np.ndarray]:
    arrays = {}
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for key in ('exp_avg', 'exp_avg_sq'):
            if key in st:
                arrays[f'adam.{i}.{key}'] = st[key].detach().numpy().astype(np.float32)
        if 'step' in st:
            arrays[f'adam.{i}.step'] = np.asarray([float(st['step'])], dtype=np.float64)
    return arrays


def _opt_state(opt: torch.optim.Adam, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    sd = opt.state_dict()
    state = {}
    for i in sd['param_groups'][0]['params']:
        if f'adam.{i}.step' not in arrays:
            continue
        state[i] = {'step': torch.tensor(float(arrays[f'adam.{i}.step'][0])),
                    'exp_avg': torch.from_numpy(np.array(arrays[f'adam.{i}.exp_avg'])),
                    'exp_avg_sq': torch.from_numpy(np.array(arrays[f'adam.{i}.exp_avg_sq']))}
    sd['state'] = state
    return sd
