"""Meta-training (the L2L outer loop) and evaluation of the adapted trainee.

Outer loss per batch of tasks (paper code ``model/l2l_trainee_lsg.py::loss``; test-trial output):

    loss = w_omega MSE(omega_out, omega*) + w_xyz MSE(FK(q0 + omega_scale cumsum omega_out), xyz*)
           + w_final mean_{t > T - W} |xyz_t - xyz*_T|^2          (reach; paper: w_final = 0)
           + lambda_trainee sum_j (rate_j - f_trainee dt)^2
           + lambda_lsg sum_j (rate_j - f_lsg dt)^2

MSEs averaged over batch, time and dimensions; rates per step, averaged over batch and time
(trainee: learning and test trial concatenated). The final-position term
(``meta.loss_final_weight`` over the last ``meta.final_window`` steps) is ours, for reaching: the
path terms weigh every step equally, so a path that ends off the target costs little, while a
user sees where the arm ends. Unlike the paper's official code (whose numpy
forward kinematics silently cut the xyz term out of the autodiff graph, paper-notes §7) our forward
kinematics is torch-differentiable, so BOTH terms drive meta-training here.

Meta-parameters: the trainee's initial W_in, W_rec, W_out and the LSG's W_in, W_rec, W_out.
Adam with lr decayed by ``lr_decay`` every ``lr_decay_every`` iterations. Gradients: BPTT through
the learning trial, the LSG, the e-prop update, the straight-through quantiser and PCM noise, and
the test trial (:func:`l2l_nmhw_ros.l2l.inner.adapt`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.arm.kinematics import forward_kinematics
from l2l_nmhw_ros.config import L2LConfig, config_hash, to_dict
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.distributed import SINGLE, World, noise_seed
from l2l_nmhw_ros.l2l.inner import AdaptResult, FloatBackend, adapt, n_learning_signals
from l2l_nmhw_ros.l2l.tasks import TaskBatch, integrate_omega, sample_mixed
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in
from l2l_nmhw_ros.snn.trainee import init_trainee_weights

__all__ = ['STAT_KEYS', 'MetaTrainer', 'combine_terms', 'loss_terms', 'make_backend',
           'outer_loss', 'rate_reg', 'task_errors', 'tasks_to', 'weights_from_numpy']

log = logging.getLogger(__name__)

PARAM_NAMES = ('trainee.w_in', 'trainee.w_rec', 'trainee.w_out', 'lsg.w_in', 'lsg.w_rec',
               'lsg.w_out')
# Seed offsets of the independent random streams derived from cfg.seed.
_SEED_INIT, _SEED_TASKS, _SEED_NOISE, _SEED_VALID = 0, 1, 2, 1_000_003


def task_errors(y: torch.Tensor, tasks: TaskBatch, omega_scale: float, *,
                final_window: int = 1) -> dict[str, torch.Tensor]:
    """Return the errors of readouts `y` (time, batch, k) on `tasks`, each per task (batch,).

    Keys: ``omega_mse`` (MSE of omega), ``xyz_mse`` [m²] (MSE over time and x, y, z of the
    end effector), ``distance`` [m] (mean Euclidean end-effector distance over time),
    ``final_distance`` [m] (distance of the last point to the target's last point: where the
    arm ends), ``final_sq`` [m²] (squared distance to the target's last point, averaged over the
    last `final_window` steps: the final-position loss term), and the predicted ``q``
    (time, batch, k) [rad] and ``xyz`` (time, batch, 3) [m].
    """
    q = integrate_omega(y, tasks.q0.unsqueeze(0), omega_scale)
    xyz = forward_kinematics(q)
    err = xyz - tasks.xyz
    end = xyz[-final_window:] - tasks.xyz[-1:]
    return {'omega_mse': ((y - tasks.omega) ** 2).mean(dim=(0, 2)),
            'xyz_mse': (err ** 2).mean(dim=(0, 2)),
            'distance': err.norm(dim=-1).mean(dim=0),
            'final_distance': err[-1].norm(dim=-1),
            'final_sq': (end ** 2).sum(dim=-1).mean(dim=0), 'q': q, 'xyz': xyz}


def rate_reg(z: torch.Tensor, target_hz: float, weight: float, dt: float) -> torch.Tensor:
    """Return weight * sum_j (mean_{t,b} z_j - target_hz dt)^2 for spikes z (time, batch, n)."""
    return rate_penalty(z.mean(dim=(0, 1)), target_hz, weight, dt)


def rate_penalty(rate: torch.Tensor, target_hz: float, weight: float, dt: float) -> torch.Tensor:
    """Return weight * sum_j (rate_j - target_hz dt)^2 for mean spikes per step `rate` (n,)."""
    return weight * ((rate - target_hz * dt) ** 2).sum()


def make_backend(cfg: L2LConfig, *, pcm: bool, quantize: bool) -> Any:
    """Return the crossbar model for the inner loop.

    ``pcm=True``: :class:`l2l_nmhw_ros.pcm.PCMModel` with ``cfg.pcm`` (quantisation as in the
    config). ``pcm=False``: :class:`~l2l_nmhw_ros.l2l.inner.FloatBackend` (exact weights),
    rounding Delta W to ``pcm.delta_w_step`` when `quantize` (stochastically if
    ``pcm.stochastic_rounding``).

    Raises:
        ImportError: if ``pcm=True`` and the PCM package is not available.
    """
    if not pcm:
        return FloatBackend(cfg.pcm.delta_w_step if quantize else 0.0,
                            stochastic=cfg.pcm.stochastic_rounding)
    from l2l_nmhw_ros.pcm import PCMModel

    return PCMModel(cfg.pcm)


def weights_from_numpy(weights: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor],
                                                                 dict[str, torch.Tensor]]:
    """Split checkpoint arrays into (trainee, lsg) dicts of float32 tensors (w_in/w_rec/w_out)."""
    tensors = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in weights.items()}
    return ckpt.network_weights(tensors, 'trainee'), ckpt.network_weights(tensors, 'lsg')


def loss_terms(res: AdaptResult, tasks: TaskBatch, cfg: L2LConfig) -> dict[str, torch.Tensor]:
    """Return the additive pieces of the outer loss of an adapted (sub-)batch.

    Everything a batch split over backends (``meta.pcm_fraction``) or over ranks
    (:mod:`l2l_nmhw_ros.l2l.distributed`) needs to form the loss of the whole batch is a sum:
    ``data`` (scalar, differentiable): sum over tasks of w_omega MSE(omega) + w_xyz MSE(xyz)
    + w_final final_sq; ``rate_trainee`` / ``rate_lsg`` (n,) differentiable spike counts per
    neuron (trainee: learning and test trial), with ``count_trainee`` / ``count_lsg`` the
    number of (step, task) pairs they sum over; and ``stats`` (no gradient): per-task sums of the
    logged errors (:data:`STAT_KEYS`) and the task count.
    """
    m = cfg.meta
    err = task_errors(res.test.y, tasks, cfg.task.omega_scale, final_window=m.final_window)
    data = m.loss_omega_weight * err['omega_mse'] + m.loss_xyz_weight * err['xyz_mse']
    if m.loss_final_weight > 0:
        data = data + m.loss_final_weight * err['final_sq']
    z_tr = torch.cat([res.learn.z, res.test.z], dim=0)
    with torch.no_grad():
        before = task_errors(res.learn.y, tasks, cfg.task.omega_scale)
        stats = torch.stack([
            err['omega_mse'].sum(), err['xyz_mse'].sum(), err['final_distance'].sum(),
            before['xyz_mse'].sum(), before['omega_mse'].sum(),
            res.n_programmed.to(data.dtype).sum(), data.sum(),
            torch.as_tensor(float(tasks.batch), dtype=data.dtype, device=data.device)]).detach()
    return {'data': data.sum(), 'rate_trainee': z_tr.sum(dim=(0, 1)),
            'count_trainee': z_tr.shape[0] * z_tr.shape[1],
            'rate_lsg': res.lsg_z.sum(dim=(0, 1)),
            'count_lsg': res.lsg_z.shape[0] * res.lsg_z.shape[1], 'stats': stats}


#: what ``loss_terms(...)['stats']`` sums per task, in order (the last entry counts tasks)
STAT_KEYS = ('omega_mse', 'xyz_mse', 'final_distance', 'xyz_mse_before', 'omega_mse_before',
             'n_programmed', 'data')


def combine_terms(terms: list[dict[str, torch.Tensor]], cfg: L2LConfig,
                  world: World = SINGLE) -> tuple[torch.Tensor, dict[str, float]]:
    """Return this rank's share of the outer loss (scalar, to backpropagate) and the loss parts
    of the whole global batch (floats, equal on every rank).

    loss = (sum of ``data`` over every task) / (global batch) + lambda_trainee
    sum_j (rate_j - f_trainee dt)^2 + lambda_lsg (same for the LSG), rates per step averaged
    over the global batch (summed over parts and ranks). Each rank returns its data share plus
    1/size of the regularisers; their gradients summed over ranks are the gradient of the loss.
    """
    dt = cfg.task.dt
    data = sum(t['data'] for t in terms)
    rate_t = world.all_reduce_autograd(sum(t['rate_trainee'] for t in terms))
    rate_l = world.all_reduce_autograd(sum(t['rate_lsg'] for t in terms))
    stats = sum(t['stats'] for t in terms).clone()
    counts = torch.tensor([float(sum(t['count_trainee'] for t in terms)),
                           float(sum(t['count_lsg'] for t in terms))], dtype=torch.float64,
                          device=stats.device)  # nccl reduces device tensors only
    world.all_reduce_(stats)
    world.all_reduce_(counts)
    n_tasks = float(stats[-1])
    rate_t = rate_t / float(counts[0])
    rate_l = rate_l / float(counts[1])
    reg_t = rate_penalty(rate_t, cfg.trainee.rate_target, cfg.trainee.rate_reg, dt)
    reg_l = rate_penalty(rate_l, cfg.lsg.rate_target, cfg.lsg.rate_reg, dt)
    loss = data / n_tasks + (reg_t + reg_l) / world.size
    mean = {k: float(stats[i]) / n_tasks for i, k in enumerate(STAT_KEYS)}
    parts = {'loss': mean.pop('data') + float(reg_t.detach()) + float(reg_l.detach()), **mean,
             'rate_trainee_hz': float(rate_t.detach().mean()) / dt,
             'rate_lsg_hz': float(rate_l.detach().mean()) / dt}
    return loss, parts


def outer_loss(res: AdaptResult, tasks: TaskBatch,
               cfg: L2LConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the outer loss (scalar tensor) of an adapted batch and its parts (floats).

    See the module docstring for the formula; the parts also hold the errors before the update
    (the learning trial's readout), the mean firing rates [Hz] and the devices programmed.
    """
    return combine_terms([loss_terms(res, tasks, cfg)], cfg)


def tasks_to(tasks: TaskBatch, device: torch.device | str) -> TaskBatch:
    """Return `tasks` with every tensor on `device` (the same object when already there)."""
    if tasks.xyz.device == torch.device(device):
        return tasks
    return TaskBatch(tasks.omega.to(device), tasks.q.to(device), tasks.xyz.to(device),
                     tasks.q0.to(device), tasks.family)


class MetaTrainer:
    """The outer loop: holds the meta-parameters, Adam, the task stream and the noise streams.

    Deterministic for ``cfg.seed`` (single-threaded torch), resumable from a checkpoint folder
    written by :meth:`save` (weights, Adam moments, task-stream state, iteration). Device noise
    comes from a stream per (seed, iteration, rank) (:func:`~l2l_nmhw_ros.l2l.distributed.
    noise_seed`), so it needs no saved state.

    Args:
        cfg: the whole configuration.
        backend: the crossbar model of the PCM share of a batch (default from ``meta``).
        device: where every tensor lives (checkpoints are always written from CPU copies).
        dtype: of the meta-parameters and tasks (float32; float64 for exactness tests).
        world: this process's rank in data-parallel training
            (:mod:`l2l_nmhw_ros.l2l.distributed`); default alone.
        fused: the recurrent loops through :mod:`l2l_nmhw_ros.snn.fused` (default); False:
            the step-by-step autograd reference (benchmarks, tests).
    """

    def __init__(self, cfg: L2LConfig, *, backend: Any | None = None,
                 device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32,
                 world: World = SINGLE, fused: bool = True) -> None:
        self.cfg = cfg
        self.fused = fused
        self.device = torch.device(device)
        self.dtype = dtype
        self.world = world
        gen = torch.Generator().manual_seed(cfg.seed + _SEED_INIT)  # CPU: same on any device
        tw = init_trainee_weights(cfg.trainee, gen)
        lw = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in),
                              n_learning_signals(cfg), gen)
        self.params = {f'trainee.{k}': torch.nn.Parameter(v.to(self.device, dtype))
                       for k, v in tw.items()}
        self.params.update({f'lsg.{k}': torch.nn.Parameter(v.to(self.device, dtype))
                            for k, v in lw.items()})
        self.optimizer = torch.optim.Adam([self.params[k] for k in PARAM_NAMES], lr=cfg.meta.lr)
        self.iteration = 0
        self.task_rng = np.random.default_rng(cfg.seed + _SEED_TASKS)
        self.noise_gen = torch.Generator(device=self.device)
        self.noise_gen.manual_seed(noise_seed(cfg.seed + _SEED_NOISE, 0, world.rank))
        self.backend = backend if backend is not None else make_backend(
            cfg, pcm=cfg.meta.pcm_in_loop, quantize=cfg.meta.quantize_in_loop)
        # the software share of a mixed batch (meta.pcm_fraction < 1)
        self.soft_backend = make_backend(cfg, pcm=False, quantize=cfg.meta.quantize_in_loop)
        if backend is None and cfg.meta.pcm_in_loop and not cfg.meta.pcm_read_noise_in_loop:
            self.backend = make_backend(dataclasses.replace(
                cfg, pcm=dataclasses.replace(cfg.pcm, read_noise=False)), pcm=True, quantize=True)
        self.history: list[dict[str, float]] = []

    # --- helpers -------------------------------------------------------------------------------
    def trainee_weights(self) -> dict[str, torch.Tensor]:
        """Return the trainee meta-parameters (views with gradient) keyed w_in/w_rec/w_out."""
        return ckpt.network_weights(self.params, 'trainee')

    def lsg_weights(self) -> dict[str, torch.Tensor]:
        """Return the LSG meta-parameters keyed w_in/w_rec/w_out."""
        return ckpt.network_weights(self.params, 'lsg')

    def lr(self) -> float:
        """Return the scheduled learning rate of the current iteration."""
        m = self.cfg.meta
        return m.lr * m.lr_decay ** (self.iteration // m.lr_decay_every)

    def loss(self, res: AdaptResult, tasks: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the outer loss (scalar) and its parts (floats) for one adapted batch."""
        return outer_loss(res, tasks, self.cfg)

    def _adapt_loss(self, tasks: TaskBatch, gen: torch.Generator, world: World = SINGLE
                    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Adapt and score this rank's share of a global batch, the first ``pcm_fraction`` of
        the global batch on the PCM model and the rest in software; returns this rank's loss
        share and the global batch's parts (:func:`combine_terms`)."""
        m = self.cfg.meta
        n_pcm = tasks.batch
        if m.pcm_in_loop and m.pcm_fraction < 1.0:
            n_pcm = int(round(m.pcm_fraction * tasks.batch))
        mine = world.shard(tasks.batch)
        terms = []
        for lo, hi, backend in ((0, n_pcm, self.backend), (n_pcm, tasks.batch, self.soft_backend)):
            lo, hi = max(lo, mine[0]), min(hi, mine[1])
            if hi <= lo:
                continue
            sub = tasks.subset(lo, hi) if (lo, hi) != (0, tasks.batch) else tasks
            res = adapt(self.trainee_weights(), self.lsg_weights(), sub, self.cfg,
                        backend=backend, generator=gen, fused=self.fused)
            terms.append(loss_terms(res, sub, self.cfg))
        return combine_terms(terms, self.cfg, world)

    def sample_tasks(self, families: tuple[str, ...] | list[str], batch: int,
                     rng: np.random.Generator) -> TaskBatch:
        """Draw `batch` tasks of `families` from `rng`, in this trainer's dtype and device."""
        tasks = sample_mixed(families, self.cfg.task, batch, rng, dtype=self.dtype)
        return tasks_to(tasks, self.device)

    def step(self) -> dict[str, float]:
        """Run one meta-training iteration (this rank's share of it); returns the loss parts
        of the global batch."""
        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g['lr'] = self.lr()
        tasks = self.sample_tasks(cfg.meta.families, cfg.meta.batch_size, self.task_rng)
        self.noise_gen.manual_seed(noise_seed(cfg.seed + _SEED_NOISE, self.iteration,
                                              self.world.rank))
        loss, parts = self._adapt_loss(tasks, self.noise_gen, self.world)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.world.all_reduce_grads([self.params[k] for k in PARAM_NAMES])
        if cfg.meta.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), cfg.meta.grad_clip)
            parts['grad_norm'] = float(norm)
        self.optimizer.step()
        with torch.no_grad():  # keep the no-autapse structure exact in the stored weights
            for k in ('trainee.w_rec', 'lsg.w_rec'):
                self.params[k].fill_diagonal_(0.0)
            if cfg.meta.clip_trainee:  # only what the crossbar can hold (meta.clip_trainee)
                for k in ('trainee.w_in', 'trainee.w_rec', 'trainee.w_out'):
                    self.params[k].clamp_(-cfg.pcm.w_max, cfg.pcm.w_max)
        self.iteration += 1
        parts['iteration'] = self.iteration
        parts['lr'] = self.lr()
        return parts

    @torch.no_grad()
    def validate(self, *, batches: int | None = None, tasks_per_batch: int | None = None,
                 families: tuple[str, ...] | None = None) -> dict[str, float]:
        """Return mean before/after errors on a fixed validation task set (seed-independent of
        training: ``cfg.seed + 1000003``), with the training backend."""
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed + _SEED_VALID)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(cfg.seed + _SEED_VALID)
        acc: dict[str, list[float]] = {}
        for _ in range(batches or cfg.meta.validation_batches):
            tasks = self.sample_tasks(families or cfg.meta.families,
                                      tasks_per_batch or cfg.meta.validation_tasks, rng)
            _, parts = self._adapt_loss(tasks, gen)
            for k, v in parts.items():
                acc.setdefault(k, []).append(v)
        return {f'val_{k}': float(np.mean(v)) for k, v in acc.items()}

    # --- checkpoints ---------------------------------------------------------------------------
    def numpy_weights(self) -> dict[str, np.ndarray]:
        """Return the meta-parameters as float32 arrays keyed like the checkpoint."""
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.params.items()}

    def save(self, path: str, *, extra: dict[str, Any] | None = None,
             train_state: bool = True) -> None:
        """Write a checkpoint folder (weights, metadata, and the resumable training state).

        The training state is written first and metadata.json last, with the SHA-256 of the
        other files (:func:`l2l_nmhw_ros.l2l.checkpoint.save`): a save cut short is refused on
        load, never read as a mix of two iterations. Only rank 0 writes (other ranks return).
        """
        if not self.world.is_main:
            return
        meta = {'config': to_dict(self.cfg), 'config_hash': config_hash(self.cfg),
                'iteration': self.iteration, 'history_tail': self.history[-20:]}
        meta.update(extra or {})
        state: dict[str, np.ndarray] | None = None
        if train_state:
            state = {}
            opt = self.optimizer.state_dict()
            for idx, name in enumerate(PARAM_NAMES):
                st = opt['state'].get(idx)
                if st:
                    state[f'adam.{name}.exp_avg'] = st['exp_avg'].detach().cpu().numpy()
                    state[f'adam.{name}.exp_avg_sq'] = st['exp_avg_sq'].detach().cpu().numpy()
                    state[f'adam.{name}.step'] = np.asarray([float(st['step'])], dtype=np.float64)
            state['rng.noise'] = self.noise_gen.get_state().cpu().numpy()
            bg = self.task_rng.bit_generator.state
            state['rng.tasks'] = np.frombuffer(json.dumps(bg).encode(), dtype=np.uint8).copy()
            state['iteration'] = np.asarray([self.iteration], dtype=np.int64)
        ckpt.save(path, self.numpy_weights(), meta, train_state=state)

    def load(self, path: str, *, strict_config: bool = True,
             same_target_code: bool = True) -> dict[str, Any]:
        """Load weights (and the training state when present) from a checkpoint folder.

        Raises:
            CheckpointError: config hash differs from this trainer's (when `strict_config`);
                the LSG target code differs (when `same_target_code`; only a new training that
                starts from these weights, ``train --init-from``, may change the code).
        """
        weights, meta = ckpt.load(path)
        if same_target_code:
            ckpt.check_target_code(meta, self.cfg.lsg.target_code, path)
        if strict_config and meta.get('config_hash') != config_hash(self.cfg):
            raise CheckpointError(f'{path}: config hash {meta.get("config_hash")} differs from '
                                  f'the current configuration {config_hash(self.cfg)}')
        with torch.no_grad():
            for k in PARAM_NAMES:
                if tuple(weights[k].shape) != tuple(self.params[k].shape):
                    raise CheckpointError(f'{path}: {k} has shape {weights[k].shape}, expected '
                                          f'{tuple(self.params[k].shape)}')
                self.params[k].copy_(torch.as_tensor(weights[k]).to(self.params[k]))
        self.iteration = int(meta.get('iteration', 0))
        self.history = list(meta.get('history_tail', []))
        state = ckpt.load_train_state(path)
        if state is not None:
            self._load_adam(state)
            self.task_rng.bit_generator.state = json.loads(bytes(state['rng.tasks']).decode())
            self.iteration = int(state['iteration'][0])
        return meta

    def init_from(self, path: str) -> dict[str, Any]:
        """Start a new training from a checkpoint's weights (``train --init-from``).

        Unlike :meth:`load` (same configuration), the checkpoint may come from another
        configuration with the same network sizes and is carried over so that it still means
        the same thing: the trainee's readout is scaled by (its ``task.omega_scale`` / this
        configuration's), which leaves every joint trajectory unchanged; when this configuration
        also learns the readout (``eprop.update_w_out``), the LSG's readout-signal rows are scaled
        the same way (so the readout update moves the arm as before), or added as n_out zero
        rows when the checkpoint has none (the first update is the checkpoint's).
        The LSG target code may differ (the LSG then relearns its input). Adam's moments and
        step counts are carried over when the checkpoint has them, transformed like the weights
        (readout: first moment / scale, second / scale², added rows 0), so that the first steps
        are as calibrated as the checkpoint's last (a fresh Adam moves every weight by about lr
        in its first steps, which shook a trained reach network); iteration 0, task and noise
        streams start fresh.

        Returns:
            The checkpoint's metadata.

        Raises:
            CheckpointError: a tensor's shape cannot be carried over.
        """
        weights, meta = ckpt.load(path)
        src = meta.get('config', {}) if isinstance(meta.get('config'), dict) else {}
        src_scale = float(src.get('task', {}).get('omega_scale', self.cfg.task.omega_scale))
        n_rec = self.cfg.trainee.n_rec
        with torch.no_grad():
            for k in PARAM_NAMES:
                w = torch.as_tensor(weights[k]).to(self.params[k])
                want = tuple(self.params[k].shape)
                if k == 'lsg.w_out' and tuple(w.shape) == (n_rec, want[1]) and want[0] > n_rec:
                    w = torch.cat([w, w.new_zeros(want[0] - n_rec, want[1])])
                    log.info('%s: LSG without readout signals; %d zero rows added', path,
                             want[0] - n_rec)
                if k == 'trainee.w_out' and src_scale != self.cfg.task.omega_scale:
                    w = w * (src_scale / self.cfg.task.omega_scale)
                    log.info('%s: readout scaled by %g (task.omega_scale %g -> %g)', path,
                             src_scale / self.cfg.task.omega_scale, src_scale,
                             self.cfg.task.omega_scale)
                if k == 'lsg.w_out' and w.shape[0] > n_rec:  # its readout signals: same change
                    w = w.clone()
                    w[n_rec:] *= src_scale / self.cfg.task.omega_scale
                if tuple(w.shape) != want:
                    raise CheckpointError(f'{path}: {k} has shape {tuple(w.shape)}, expected '
                                          f'{want}')
                self.params[k].copy_(w)
        self.iteration = 0
        self.history = []
        self.optimizer = torch.optim.Adam([self.params[k] for k in PARAM_NAMES],
                                          lr=self.cfg.meta.lr)
        state = ckpt.load_train_state(path)
        if state is not None:
            r = self.cfg.task.omega_scale / src_scale  # gradient scale of a rescaled block

            def carry(k: str, m1: torch.Tensor, m2: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
                # the moments transformed like their weights (a weight x 1/r: gradient x r)
                want = tuple(self.params[k].shape)
                if k == 'trainee.w_out':
                    m1, m2 = m1 * r, m2 * r * r
                if k == 'lsg.w_out' and m1.shape[0] > n_rec:
                    m1, m2 = m1.clone(), m2.clone()
                    m1[n_rec:] *= r
                    m2[n_rec:] *= r * r
                if tuple(m1.shape) != want and m1.shape[1:] == want[1:] and m1.shape[0] < want[0]:
                    pad = m1.new_zeros(want[0] - m1.shape[0], *want[1:])
                    m1, m2 = torch.cat([m1, pad]), torch.cat([m2, pad])
                return (m1, m2) if tuple(m1.shape) == want else None
            self._load_adam(state, carry)
        return meta

    def _load_adam(self, state: dict[str, np.ndarray],
                   transform: Callable[[str, torch.Tensor, torch.Tensor],
                                       tuple[torch.Tensor, torch.Tensor] | None] | None = None
                   ) -> None:
        """Put the Adam moments and step counts of a saved training state into the optimizer
        (``transform(name, m1, m2)`` may change them, or drop them with None)."""
        opt = self.optimizer.state_dict()
        for idx, name in enumerate(PARAM_NAMES):
            if f'adam.{name}.exp_avg' not in state:
                continue
            m1 = torch.as_tensor(state[f'adam.{name}.exp_avg'])
            m2 = torch.as_tensor(state[f'adam.{name}.exp_avg_sq'])
            if transform is not None:
                moved = transform(name, m1, m2)
                if moved is None:
                    continue
                m1, m2 = moved
            opt['state'][idx] = {'step': torch.tensor(float(state[f'adam.{name}.step'][0])),
                                 'exp_avg': m1.clone(), 'exp_avg_sq': m2.clone()}
        self.optimizer.load_state_dict(opt)  # moves the moments to the parameters' device

    def train(self, iterations: int, *, on_step: Callable[[dict[str, float]], None] | None = None,
              on_validate: Callable[[dict[str, float]], None] | None = None,
              on_checkpoint: Callable[[], None] | None = None) -> None:
        """Run meta-training up to `iterations` in total (continues from ``self.iteration``)."""
        m = self.cfg.meta
        while self.iteration < iterations:
            parts = self.step()
            self.history.append(parts)
            if on_step:
                on_step(parts)
            if on_validate and self.world.is_main and self.iteration % m.validate_every == 0:
                on_validate(self.validate())
            if on_checkpoint and (self.iteration % m.checkpoint_every == 0
                                  or self.iteration == iterations):
                on_checkpoint()
