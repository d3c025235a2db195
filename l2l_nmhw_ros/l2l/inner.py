"""The inner loop (one task = one on-chip learning episode), natural e-prop as in the paper code.

Per task (``model/l2l_trainee_lsg.py::inner_loop``):

1. deploy the trainee's weights on the (emulated) crossbar (per task: its own device noise);
2. learning trial on the clock input -> psi, x_bar, z_bar;
3. LSG on [clock, binary-coded target xyz] -> learning signals L (software, float);
4. Delta W = -eta sum_t L psi e_bar for W_in and W_rec (W_out fixed; with ``eprop.update_w_out``
   also Delta W_out = -eta_out sum_t L_out z_hat, L_out from n_out further LSG outputs or, with
   ``eprop.readout_signal = error``, e-prop's output error y - y* against the demonstration, see
   :mod:`l2l_nmhw_ros.snn.eprop` and :func:`compose_signal`), quantised to the 1/16 grid and
   re-programmed through the crossbar (only changed devices);
5. (steps 2-4 repeated ``n_updates`` times; paper: once) test trial -> joint velocities.

Everything is vectorised over the batch of tasks and differentiable (BPTT through both trials, the
LSG, the update, and the PCM model's straight-through noise and quantiser), so the same function is
the meta-training forward pass and the evaluation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.l2l.substrate import FunctionalSubstrate, Substrate
from l2l_nmhw_ros.l2l.tasks import TaskBatch
from l2l_nmhw_ros.pcm.model import PCMModel, quantize_delta
from l2l_nmhw_ros.snn.encoding import clock_input, encode_target
from l2l_nmhw_ros.snn.eprop import delta_w, delta_w_out
from l2l_nmhw_ros.snn.lsg import run_lsg_full
from l2l_nmhw_ros.snn.neurons import PAPER, SpikeMode, decay_factor
from l2l_nmhw_ros.snn.trainee import TrialResult, default_mvm

__all__ = ['AdaptResult', 'FloatBackend', 'adapt', 'compose_signal', 'lsg_inputs',
           'n_learning_signals', 'readout_error',
           'quantize_ste', 'update_and_test']


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
    """Outcome of :func:`adapt` (or :func:`update_and_test`) for a batch of tasks.

    Fields: learn (first learning trial, before any update), test (trial after the updates),
    lsg_z (LSG spikes, time, batch, n_lsg; None when the learning signal came from outside),
    learning_signal (time, batch, n_rec [+ n_out]: :func:`n_learning_signals`), dw_in / dw_rec
    (unquantised Delta W of the last update, batch first), n_programmed (batch,) devices (PCM) or
    weights (software) changed over all updates, w_in / w_rec / w_out (batch, ...) weights after
    the updates as the test trial saw them, dw_out (batch, n_out, n_rec) the unquantised readout
    update of the last update (None unless ``eprop.update_w_out``), repeat: the test trial run
    again on the same weights with fresh read noise (:func:`adapt`'s ``repeat_generator``; None
    otherwise).
    """

    learn: TrialResult
    test: TrialResult
    lsg_z: torch.Tensor | None
    learning_signal: torch.Tensor
    dw_in: torch.Tensor
    dw_rec: torch.Tensor
    n_programmed: torch.Tensor
    w_in: torch.Tensor
    w_rec: torch.Tensor
    w_out: torch.Tensor
    dw_out: torch.Tensor | None = None
    repeat: TrialResult | None = None


def n_learning_signals(cfg: L2LConfig) -> int:
    """Return the number of learning signals the LSG emits per step: one per trainee neuron
    (``trainee.n_rec``), plus one per readout (``trainee.n_out``) with ``eprop.update_w_out``."""
    return cfg.trainee.n_rec + (cfg.trainee.n_out if cfg.eprop.update_w_out else 0)


def compose_signal(cfg: L2LConfig, lsg_signal: torch.Tensor, omega_target: torch.Tensor
                   ) -> torch.Tensor:
    """Return the signal the on-chip loop receives (:func:`update_and_test`): the LSG's output,
    with ``eprop.update_w_out`` and ``eprop.readout_signal = error`` its last n_out channels
    replaced by the demonstration's readout target y* (:func:`readout_error` turns them into
    e-prop's output error; the LSG's own readout rows stay in the checkpoint, unused, so one
    checkpoint serves both settings). Otherwise `lsg_signal` unchanged.

    Args:
        cfg: whole configuration (``eprop``, ``trainee`` used).
        lsg_signal: LSG output (..., :func:`n_learning_signals`).
        omega_target: y*, the demonstration's joint velocities in readout (integrator) units,
            (..., n_out), the same leading shape as `lsg_signal` (time[, batch]).

    Raises:
        ShapeError: shapes do not match.
    """
    n_rec, n_out = cfg.trainee.n_rec, cfg.trainee.n_out
    if not (cfg.eprop.update_w_out and cfg.eprop.readout_signal == 'error'):
        return lsg_signal
    if (lsg_signal.shape[-1] != n_rec + n_out or omega_target.shape[-1] != n_out
            or lsg_signal.shape[:-1] != omega_target.shape[:-1]):
        raise ShapeError(f'compose_signal: expected LSG output (..., {n_rec + n_out}) and '
                         f'y* (..., {n_out}) with the same leading shape, got '
                         f'{tuple(lsg_signal.shape)} and {tuple(omega_target.shape)}')
    omega_target = omega_target.to(dtype=lsg_signal.dtype, device=lsg_signal.device)
    return torch.cat([lsg_signal[..., :n_rec], omega_target], dim=-1)


def readout_error(cfg: L2LConfig, trial: TrialResult, signal_out: torch.Tensor) -> torch.Tensor:
    """Return the readout's learning signal L_out (time, batch, n_out) for one learning trial.

    ``eprop.readout_signal = lsg``: `signal_out` itself (the LSG's readout outputs).
    ``error``: e-prop's readout error L_out = y - y* (Bellec et al. 2020, Nat. Commun., readout
    rule with the squared error), `signal_out` being y* (the demonstration's joint velocities in
    readout units): Delta W_out = -eta_out sum_t L_out z_hat is then exactly the gradient step on
    1/2 sum_t |y - y*|^2 with respect to W_out for the trial's spikes.
    """
    if cfg.eprop.readout_signal == 'error':
        return trial.y - signal_out
    return signal_out


def lsg_inputs(cfg: L2LConfig, xyz: torch.Tensor) -> torch.Tensor:
    """Return the LSG input spikes [clock, encode_target(xyz)] (time, batch, n_clock + 3 bits),
    the target in the code ``cfg.lsg.target_code`` (see :func:`~l2l_nmhw_ros.snn.encoding.
    encode_target`)."""
    clock = clock_input(cfg.task, xyz.shape[1], n_in=cfg.trainee.n_in, dtype=xyz.dtype)
    code = encode_target(xyz, cfg.lsg.bits_per_coord, code=cfg.lsg.target_code)
    clock, code = clock.to(xyz.device), code.to(xyz.device)
    return torch.cat([clock, code], dim=-1)


def update_and_test(substrate: Substrate, learning_signal: torch.Tensor, cfg: L2LConfig, *,
                    n_updates: int | None = None, mode: SpikeMode = PAPER,
                    learn: TrialResult | None = None) -> AdaptResult:
    """The on-chip part of the inner loop, on any substrate: THE e-prop loop of the package.

    ``n_updates`` times (paper: once): learning trial on the clock input, natural e-prop
    Delta W = -eta sum_t L psi e_bar (:func:`~l2l_nmhw_ros.snn.eprop.delta_w`) for the blocks the
    ``eprop`` section enables (with ``update_w_out`` also the readout,
    :func:`~l2l_nmhw_ros.snn.eprop.delta_w_out`, from the last n_out signals), written by
    ``substrate.update`` (which rounds it to the grid once); then the test trial. With
    ``n_updates = 0`` the test trial is the learning trial.

    Args:
        substrate: see :mod:`l2l_nmhw_ros.l2l.substrate` (functional batch or crossbar).
        learning_signal: L (time, batch, :func:`n_learning_signals`): one signal per trainee
            neuron and step (then one per readout with ``eprop.update_w_out``; with
            ``eprop.readout_signal = error`` those carry y*, see :func:`compose_signal`).
        cfg: whole configuration (trainee, eprop, task sections used).
        n_updates: inner updates (default ``cfg.eprop.n_updates``).
        mode: spike mode (:data:`~l2l_nmhw_ros.snn.neurons.PAPER`; smooth ones for tests).
        learn: the first learning trial when the caller already ran it (it must be this
            substrate's trial on the clock input); None runs it here.

    Returns:
        :class:`AdaptResult` (``lsg_z`` None).

    Raises:
        ShapeError: `learning_signal` does not match the trial (see ``delta_w``) or has not
            :func:`n_learning_signals` channels.
    """
    n_updates = cfg.eprop.n_updates if n_updates is None else n_updates
    n_sig, n_rec = n_learning_signals(cfg), cfg.trainee.n_rec
    if learning_signal.ndim != 3 or learning_signal.shape[-1] != n_sig:
        raise ShapeError(f'learning_signal: expected (time, batch, {n_sig}) (eprop.update_w_out='
                         f'{cfg.eprop.update_w_out}), got {tuple(learning_signal.shape)}')
    signal_rec, signal_out = learning_signal[..., :n_rec], learning_signal[..., n_rec:]
    kappa = decay_factor(cfg.trainee.tau_out, cfg.task.dt)
    batch = learning_signal.shape[1]
    dt = cfg.task.dt
    x = clock_input(cfg.task, batch, n_in=cfg.trainee.n_in, dtype=learning_signal.dtype)
    x = x.to(learning_signal.device)
    if learn is None:
        learn = substrate.trial(x, cfg.trainee, dt=dt, mode=mode)
    n_prog = torch.zeros(batch, dtype=torch.int64, device=learning_signal.device)
    trial = learn
    w_in, w_rec, _ = substrate.weights()
    dw_in = torch.zeros_like(w_in)
    dw_rec = torch.zeros_like(w_rec)
    dw_out = None
    ec = cfg.eprop
    for k in range(n_updates):
        if k:
            trial = substrate.trial(x, cfg.trainee, dt=dt, mode=mode)
        if ec.update_w_in or ec.update_w_rec:  # (a readout-only loop skips both products)
            dw_in, dw_rec = delta_w(trial, signal_rec, ec.eta)
        if ec.update_w_out:
            dw_out = delta_w_out(trial, readout_error(cfg, trial, signal_out), ec.eta_out, kappa)
        n_prog = n_prog + substrate.update(dw_in if ec.update_w_in else None,
                                           dw_rec if ec.update_w_rec else None, dw_out)
    test = substrate.trial(x, cfg.trainee, dt=dt, mode=mode) if n_updates else learn
    w_in, w_rec, w_out = substrate.weights()
    return AdaptResult(learn, test, None, learning_signal, dw_in, dw_rec, n_prog, w_in, w_rec,
                       w_out, dw_out)


def adapt(trainee: dict[str, torch.Tensor], lsg: dict[str, torch.Tensor], tasks: TaskBatch,
          cfg: L2LConfig, *, backend: Any | None = None, generator: torch.Generator | None = None,
          n_updates: int | None = None, mode: SpikeMode = PAPER, fused: bool = True,
          repeat_generator: torch.Generator | None = None) -> AdaptResult:
    """Run the inner loop on a batch of tasks.

    Deploys the trainee on a :class:`~l2l_nmhw_ros.l2l.substrate.FunctionalSubstrate` of
    `backend`, runs the learning trial, the LSG on [clock, coded target], then
    :func:`update_and_test` (the same loop the ``pcm_accelerator`` node runs on its crossbar).

    Args:
        trainee: meta-learned initial weights ``w_in`` (n_rec, n_in), ``w_rec``, ``w_out``.
        lsg: LSG weights ``w_in``, ``w_rec``, ``w_out`` (see :mod:`l2l_nmhw_ros.snn.lsg`).
        tasks: the target trajectories (only ``xyz`` is shown to the LSG).
        cfg: whole configuration (trainee, lsg, eprop, task sections used).
        backend: the crossbar model: a :class:`~l2l_nmhw_ros.pcm.PCMModel` (deploy / reprogram
            / mvm with device noise; the readout on ``pcm.readout_replicas`` copies) or
            :class:`FloatBackend` (default: float, no quantisation, one readout).
        generator: torch generator for the device noise.
        n_updates: inner updates (default ``cfg.eprop.n_updates``; paper: 1).
        mode: spike mode of both networks (the model's :data:`PAPER`; smooth ones for tests).
        fused: both networks' recurrent loops through :mod:`l2l_nmhw_ros.snn.fused` (default;
            same equations, gradients and seeded noise); False: the step-by-step autograd
            loops, the reference.
        repeat_generator: when given, the test trial is run once more on the same adapted
            weights with its read noise drawn from this generator (``AdaptResult.repeat``: how
            far two runs of the same adapted network lie apart; every other result is as
            without it).

    Returns:
        :class:`AdaptResult`.
    """
    backend = backend if backend is not None else FloatBackend()
    # the readout's copies are a crossbar mapping: software has one exact readout
    replicas = cfg.pcm.readout_replicas if isinstance(backend, PCMModel) else 1
    substrate = FunctionalSubstrate(backend, trainee, tasks.batch, generator, fused=fused,
                                    readout_replicas=replicas)
    x = clock_input(cfg.task, tasks.batch, n_in=cfg.trainee.n_in, dtype=tasks.xyz.dtype)
    x = x.to(tasks.xyz.device)
    # the learning trial before the LSG: the order of the random draws of every seeded result
    learn = substrate.trial(x, cfg.trainee, dt=cfg.task.dt, mode=mode)
    lsg_res = run_lsg_full(lsg, lsg_inputs(cfg, tasks.xyz), cfg.lsg, dt=cfg.task.dt, mode=mode,
                           fused=fused)
    signal = compose_signal(cfg, lsg_res.learning_signal, tasks.omega)
    res = update_and_test(substrate, signal, cfg, n_updates=n_updates, mode=mode, learn=learn)
    repeat = None
    if repeat_generator is not None:
        repeat = substrate.trial(x, cfg.trainee, dt=cfg.task.dt, mode=mode,
                                 generator=repeat_generator)
    return res._replace(lsg_z=lsg_res.z, repeat=repeat)
