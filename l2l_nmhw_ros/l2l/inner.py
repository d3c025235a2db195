"""The inner loop (one task = one on-chip learning episode), natural e-prop as in the paper code.

Per task (``model/l2l_trainee_lsg.py::inner_loop``):

1. deploy the trainee's weights on the (emulated) crossbar (per task: its own device noise);
2. learning trial on the clock input -> psi, x_bar, z_bar;
3. LSG on [clock, binary-coded target xyz] -> learning signals L (software, float);
4. Delta W = -eta sum_t L psi e_bar for W_in and W_rec (W_out fixed), quantised to the 1/16 grid
   and re-programmed through the crossbar (only changed devices);
5. (steps 2-4 repeated ``n_updates`` times; paper: once) test trial -> joint velocities.

Everything is vectorised over the batch of tasks and differentiable (BPTT through both trials, the
LSG, the update, and the PCM model's straight-through noise and quantiser), so the same function is
the meta-training forward pass and the evaluation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.l2l.tasks import TaskBatch
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.snn.encoding import clock_input, encode_target
from l2l_nmhw_ros.snn.eprop import delta_w
from l2l_nmhw_ros.snn.lsg import run_lsg_full
from l2l_nmhw_ros.snn.neurons import PAPER, SpikeMode
from l2l_nmhw_ros.snn.trainee import TrialResult, default_mvm, run_trial

__all__ = ['AdaptResult', 'FloatBackend', 'adapt', 'lsg_inputs', 'quantize_ste']


def quantize_ste(delta_w: torch.Tensor, step: float, *, stochastic: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Round `delta_w` to the `step` grid with a straight-through gradient.

    Deterministic (nearest multiple, the paper's robot code) or stochastic (unbiased: truncate,
    then one step up in magnitude with probability equal to the remainder; the paper's Omniglot
    code); see :func:`l2l_nmhw_ros.pcm.model.quantize_delta`. ``step <= 0`` returns `delta_w`.
    """
    if step <= 0:
        return delta_w
    q = quantize_delta(delta_w.detach(), step, stochastic=stochastic, generator=generator)
    return delta_w + (q - delta_w).detach()


class FloatBackend:
    """Software stand-in with the :class:`~l2l_nmhw_ros.pcm.PCMModel` interface: exact weights.

    deploy is the identity, mvm the float product, reprogram adds Delta W (rounded to
    ``delta_w_step`` with a straight-through gradient when `step` > 0; stochastically when
    `stochastic`) and counts the weights whose quantised Delta W is not 0 (1 per weight: no
    devices in software).
    """

    def __init__(self, step: float = 0.0, *, stochastic: bool = False) -> None:
        self.step = step
        self.stochastic = stochastic

    def deploy(self, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return `w` unchanged."""
        return w

    def quantize(self, delta_w: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Return Delta W rounded to the grid (straight-through), or unchanged if step = 0."""
        return quantize_ste(delta_w, self.step, stochastic=self.stochastic, generator=generator)

    def reprogram(self, w_eff: torch.Tensor, delta_w: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (w + quantize(Delta W), number of changed weights per batch entry)."""
        dq = self.quantize(delta_w, generator=generator)
        n = (dq.detach() != 0).sum(dim=(-1, -2))
        return w_eff + dq, n

    def mvm(self, x: torch.Tensor, w: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Return x @ wᵀ exactly."""
        return default_mvm(x, w)


class AdaptResult(NamedTuple):
    """Outcome of :func:`adapt` for a batch of tasks.

    Fields: learn (first learning trial, before any update), test (trial after the updates),
    lsg_z (LSG spikes, time, batch, n_lsg), learning_signal (time, batch, n_rec), dw_in / dw_rec
    (unquantised Delta W of the last update, batch first), n_programmed (batch,) devices (PCM) or
    weights (software) changed over all updates, w_in / w_rec / w_out (batch, ...) weights after
    the updates as the test trial saw them.
    """

    learn: TrialResult
    test: TrialResult
    lsg_z: torch.Tensor
    learning_signal: torch.Tensor
    dw_in: torch.Tensor
    dw_rec: torch.Tensor
    n_programmed: torch.Tensor
    w_in: torch.Tensor
    w_rec: torch.Tensor
    w_out: torch.Tensor


def _exact_reads(backend: Any) -> bool:
    # FloatBackend, or a PCMModel whose reads are the exact product (no read noise / ideal)
    if isinstance(backend, FloatBackend):
        return True
    pcm_cfg = getattr(backend, 'cfg', None)
    return pcm_cfg is not None and (not pcm_cfg.read_noise or pcm_cfg.preset == 'ideal')


def lsg_inputs(cfg: L2LConfig, xyz: torch.Tensor) -> torch.Tensor:
    """Return the LSG input spikes [clock, encode_target(xyz)] (time, batch, n_clock + 3 bits),
    the target in the code ``cfg.lsg.target_code`` (see :func:`~l2l_nmhw_ros.snn.encoding.
    encode_target`)."""
    clock = clock_input(cfg.task, xyz.shape[1], n_in=cfg.trainee.n_in, dtype=xyz.dtype)
    code = encode_target(xyz, cfg.lsg.bits_per_coord, code=cfg.lsg.target_code)
    return torch.cat([clock, code], dim=-1)


def adapt(trainee: dict[str, torch.Tensor], lsg: dict[str, torch.Tensor], tasks: TaskBatch,
          cfg: L2LConfig, *, backend: Any | None = None, generator: torch.Generator | None = None,
          n_updates: int | None = None, mode: SpikeMode = PAPER) -> AdaptResult:
    """Run the inner loop on a batch of tasks.

    Args:
        trainee: meta-learned initial weights ``w_in`` (n_rec, n_in), ``w_rec``, ``w_out``.
        lsg: LSG weights ``w_in``, ``w_rec``, ``w_out`` (see :mod:`l2l_nmhw_ros.snn.lsg`).
        tasks: the target trajectories (only ``xyz`` is shown to the LSG).
        cfg: whole configuration (trainee, lsg, eprop, task sections used).
        backend: the crossbar model: a :class:`~l2l_nmhw_ros.pcm.PCMModel` (deploy / reprogram
            / mvm with device noise) or :class:`FloatBackend` (default: float, no quantisation).
        generator: torch generator for the device noise.
        n_updates: inner updates (default ``cfg.eprop.n_updates``; paper: 1).
        mode: spike mode of both networks (the model's :data:`PAPER`; smooth ones for tests).

    Returns:
        :class:`AdaptResult`.
    """
    backend = backend if backend is not None else FloatBackend()
    n_updates = cfg.eprop.n_updates if n_updates is None else n_updates
    batch = tasks.batch
    x = clock_input(cfg.task, batch, n_in=cfg.trainee.n_in, dtype=tasks.xyz.dtype)

    def per_task(w: torch.Tensor) -> torch.Tensor:
        return w.unsqueeze(0).expand(batch, *w.shape)

    w_in = backend.deploy(per_task(trainee['w_in']), generator=generator)
    w_rec = backend.deploy(per_task(trainee['w_rec']), generator=generator)
    w_out = backend.deploy(per_task(trainee['w_out']), generator=generator)

    if _exact_reads(backend):
        mvm = default_mvm  # same values, faster CPU kernel than a generic batched product
    else:
        def mvm(xx: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
            return backend.mvm(xx, ww, generator=generator)

    dt = cfg.task.dt
    learn = run_trial(w_in, w_rec, w_out, x, cfg.trainee, mvm, dt=dt, mode=mode)
    lsg_res = run_lsg_full(lsg, lsg_inputs(cfg, tasks.xyz), cfg.lsg, dt=dt, mode=mode)
    signal = lsg_res.learning_signal
    n_prog = torch.zeros(batch, dtype=torch.int64)
    trial = learn
    dw_in = torch.zeros_like(w_in)
    dw_rec = torch.zeros_like(w_rec)
    for k in range(n_updates):
        if k:
            trial = run_trial(w_in, w_rec, w_out, x, cfg.trainee, mvm, dt=dt, mode=mode)
        dw_in, dw_rec = delta_w(trial, signal, cfg.eprop.eta)
        if cfg.eprop.update_w_in:
            w_in, n_in = backend.reprogram(w_in, dw_in, generator=generator)
            n_prog = n_prog + n_in
        if cfg.eprop.update_w_rec:
            w_rec, n_rec = backend.reprogram(w_rec, dw_rec, generator=generator)
            n_prog = n_prog + n_rec
    test = learn
    if n_updates:
        test = run_trial(w_in, w_rec, w_out, x, cfg.trainee, mvm, dt=dt, mode=mode)
    return AdaptResult(learn, test, lsg_res.z, signal, dw_in, dw_rec, n_prog, w_in, w_rec, w_out)
