"""Substrates: where the trainee's weights live while the ONE inner loop runs on them.

The inner loop (:func:`l2l_nmhw_ros.l2l.inner.update_and_test`: learning trial, natural e-prop
ΔW, on-chip update, test trial) asks a substrate for three things only:

- ``trial(x, cfg, dt=..., mode=...)`` -> :class:`~l2l_nmhw_ros.snn.trainee.TrialResult`: one
  trial of the trainee, every MVM a read of the substrate;
- ``update(dw_in, dw_rec[, dw_out])`` -> devices (or weights) programmed per task, shape
  (batch,): round ΔW to the update grid ONCE and write it (``dw_out`` only with
  ``eprop.update_w_out``);
- ``weights()`` -> (w_in, w_rec, w_out) as the next trial reads them (noise-free).

Implementations:

- :class:`FunctionalSubstrate`: a batch of tasks on a functional model with the
  :class:`~l2l_nmhw_ros.pcm.PCMModel` interface (``deploy`` / ``reprogram`` / ``mvm``): the PCM
  model itself, or :class:`~l2l_nmhw_ros.l2l.inner.FloatBackend` (float software). Differentiable
  (meta-training, evaluation, fidelity).
- :class:`CrossbarSubstrate`: batch 1 on the stateful emulated crossbar
  (:class:`~l2l_nmhw_ros.pcm.crossbar.Crossbar`) at emulator time ``t`` (the ``pcm_accelerator``
  node). Its trials run in the compiled kernel of :mod:`l2l_nmhw_ros.snn.fast_trial` or in the
  torch loop of :func:`~l2l_nmhw_ros.snn.trainee.run_trial`, the same equations and read-noise
  model (tested equal without read noise). No gradients.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from l2l_nmhw_ros.config import EpropConfig, TraineeConfig
from l2l_nmhw_ros.errors import RejectedInput, ShapeError
from l2l_nmhw_ros.pcm.crossbar import Crossbar
from l2l_nmhw_ros.pcm.layout import (average_replicas, check_replicas, pack_trainee,
                                     unpack_trainee)
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.snn import fast_trial
from l2l_nmhw_ros.snn.neurons import PAPER, SpikeMode, decay_factor, leaky_integrate
from l2l_nmhw_ros.snn.trainee import MVM, TrialResult, default_mvm, run_trial, run_trial_fused

__all__ = ['CrossbarSubstrate', 'FunctionalSubstrate', 'Substrate', 'exact_reads']


class Substrate(Protocol):
    """What the inner loop needs of the place the trainee's weights live (module docstring)."""

    def trial(self, x: torch.Tensor, cfg: TraineeConfig, *, dt: float,
              mode: SpikeMode = PAPER) -> TrialResult:  # noqa: D102
        ...

    def update(self, dw_in: torch.Tensor | None, dw_rec: torch.Tensor | None,
               dw_out: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        ...

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: D102
        ...


def exact_reads(model: Any) -> bool:
    """True when `model`'s reads are the exact product: software (no ``exact_reads`` property),
    or a PCM model / crossbar whose device model says so (``ideal`` preset or no read noise)."""
    return bool(getattr(model, 'exact_reads', True))


class FunctionalSubstrate:
    """A batch of tasks on a functional crossbar model (differentiable).

    Args:
        model: ``deploy(w, generator)``, ``reprogram(w_eff, dw, generator) -> (w, n)`` and
            ``mvm(x, w, generator)``, e.g. :class:`~l2l_nmhw_ros.pcm.PCMModel` or
            :class:`~l2l_nmhw_ros.l2l.inner.FloatBackend`.
        trainee: initial weights ``w_in`` (n_rec, n_in), ``w_rec`` (n_rec, n_rec), ``w_out``
            (n_out, n_rec); deployed once per task (each task gets its own device noise).
        batch: number of tasks.
        generator: torch generator of the device and read noise.
        fused: PAPER-mode trials through the fused loop
            (:func:`~l2l_nmhw_ros.snn.trainee.run_trial_fused`: same equations, gradients and
            seeded noise, several times faster); False: the step-by-step autograd loop
            (:func:`~l2l_nmhw_ros.snn.trainee.run_trial`, the reference).
        readout_replicas: R copies of every readout weight (``pcm.readout_replicas``,
            :mod:`l2l_nmhw_ros.pcm.layout`): deployed, re-programmed and read on their own (the
            update's rounding too), the readout the average of the R copies' outputs; 1 (default):
            the paper's one copy. :attr:`w_out` is the copies' average.

    Raises:
        ValueError: readout_replicas < 1.
    """

    def __init__(self, model: Any, trainee: dict[str, torch.Tensor], batch: int,
                 generator: torch.Generator | None = None, *, fused: bool = True,
                 readout_replicas: int = 1) -> None:
        check_replicas(readout_replicas)
        self.model = model
        self.generator = generator
        self.fused = fused
        self.replicas = readout_replicas
        self._read_var = None if exact_reads(model) else (
            lambda w: model.read_noise_sd(w) ** 2)

        def per_task(w: torch.Tensor) -> torch.Tensor:
            return w.unsqueeze(0).expand(batch, *w.shape)

        self.w_in = model.deploy(per_task(trainee['w_in']), generator=generator)
        self.w_rec = model.deploy(per_task(trainee['w_rec']), generator=generator)
        # the readout's rows as the crossbar holds them: R copies, (batch, R n_out, n_rec)
        self.w_out_rows = model.deploy(per_task(trainee['w_out'].repeat(self.replicas, 1)),
                                       generator=generator)
        self.w_out = average_replicas(self.w_out_rows, self.replicas)
        self.batch = batch

    def _mvm_with(self, generator: torch.Generator | None) -> MVM:
        """The model's MVM drawing its read noise from `generator` (exact reads: the plain
        product, whose CPU kernel is faster than a batched one)."""
        if exact_reads(self.model):
            return default_mvm
        model = self.model

        def mvm(xx: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
            return model.mvm(xx, ww, generator=generator)
        return mvm

    def _readout_mvm(self, mvm: MVM) -> MVM:
        """`mvm` with the readout W_out z read as the average of its R copies' reads."""
        if self.replicas == 1:
            return mvm
        def read(xx: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
            if ww is self.w_out:  # the trial reads the readout: all copies, each with its noise
                y = mvm(xx, self.w_out_rows)
                return average_replicas(y.unsqueeze(-1), self.replicas).squeeze(-1)
            return mvm(xx, ww)
        return read

    def trial(self, x: torch.Tensor, cfg: TraineeConfig, *, dt: float,
              mode: SpikeMode = PAPER, generator: torch.Generator | None = None
              ) -> TrialResult:
        """One trial of every task on input spikes `x` (time, batch, n_in).

        `generator`: draw this trial's read noise from another generator than the substrate's
        (e.g. a repeat of the test trial that leaves the seeded streams as they were); None: the
        substrate's own.
        """
        gen = self.generator if generator is None else generator
        mvm = self._readout_mvm(self._mvm_with(gen))
        if self.fused and mode is PAPER:
            return run_trial_fused(self.w_in, self.w_rec, self.w_out, x, cfg, mvm,
                                   read_var=self._read_var, generator=gen, dt=dt)
        return run_trial(self.w_in, self.w_rec, self.w_out, x, cfg, mvm, dt=dt, mode=mode)

    def update(self, dw_in: torch.Tensor | None, dw_rec: torch.Tensor | None,
               dw_out: torch.Tensor | None = None) -> torch.Tensor:
        """Re-program W_in, W_rec and/or W_out by ΔW (None: that block is not updated), in
        that order (the order of the seeded device noise); returns the devices (PCM) or weights
        (software) programmed per task, (batch,) int64."""
        n = torch.zeros(self.batch, dtype=torch.int64, device=self.w_in.device)
        if dw_in is not None:
            self.w_in, n_in = self.model.reprogram(self.w_in, dw_in, generator=self.generator)
            n = n + n_in
        if dw_rec is not None:
            self.w_rec, n_rec = self.model.reprogram(self.w_rec, dw_rec,
                                                     generator=self.generator)
            n = n + n_rec
        if dw_out is not None:
            # every copy gets the same ΔW_out, rounded and programmed on its own
            dw_rows = dw_out.repeat(*([1] * (dw_out.dim() - 2)), self.replicas, 1)
            self.w_out_rows, n_out = self.model.reprogram(self.w_out_rows, dw_rows,
                                                          generator=self.generator)
            self.w_out = average_replicas(self.w_out_rows, self.replicas)
            n = n + n_out
        return n

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(w_in, w_rec, w_out) per task, as the next trial reads them without read noise."""
        return self.w_in, self.w_rec, self.w_out


class CrossbarSubstrate:
    """The trainee on the stateful emulated crossbar at emulator time ``t`` (batch 1).

    The crossbar holds the packed (n_rec + R·n_out, n_in + n_rec) matrix of
    :mod:`l2l_nmhw_ros.pcm.layout` (R = ``readout_replicas`` copies of the readout rows). A trial
    reads it at ``t``: the synaptic input [W_in | W_rec] [x; z] is one read of rows 0..n_rec-1,
    the readout W_out z a read of the rows n_rec.. with [0 | z] as input, averaged over the R
    copies. An update rounds ΔW to ``pcm.delta_w_step`` (stochastically when
    ``pcm.stochastic_rounding``, with the crossbar's generator; ΔW_out once per copy) and writes
    the changed weights with :meth:`Crossbar.add` (only their devices). The undo record of all
    updates of this substrate is kept: :attr:`target_before` (the targets before the first
    update), :attr:`changed` (packed bool mask of the weights written) and the summed rounded
    updates :attr:`dq_in`, :attr:`dq_rec`, :attr:`dq_out` (the readout's, averaged over its
    copies: zero unless the inner loop updates it, ``eprop.update_w_out``).

    Args:
        crossbar: the programmed crossbar.
        t: emulator time [s] of every read and write of this substrate.
        n_in: input neurons (the packed layout's column split).
        eprop: which blocks the update may change (``update_w_in`` / ``update_w_rec``).
        fast: trials in the compiled kernel (True) or the torch loop (False).
        max_changed: largest number of weights one update may change after rounding (0: no
            limit); a larger or non-finite update raises :class:`RejectedInput` before any
            device is written (defence against a hostile or corrupted learning signal).
        readout_replicas: R, copies of the readout rows on the crossbar (``pcm.readout_replicas``).

    Raises:
        ValueError: readout_replicas < 1.
        ShapeError: the crossbar's rows are not n_rec plus R equal readout blocks.
    """

    def __init__(self, crossbar: Crossbar, t: float, n_in: int, eprop: EpropConfig, *,
                 fast: bool, max_changed: int = 0, readout_replicas: int = 1) -> None:
        self.crossbar, self.t, self.n_in, self.eprop, self.fast = crossbar, t, n_in, eprop, fast
        self.max_changed = max_changed
        self.n_post, self.n_pre = crossbar.shape
        self.n_rec = self.n_pre - n_in
        check_replicas(readout_replicas)
        self.replicas = readout_replicas
        n_rows = self.n_post - self.n_rec
        if n_rows < 1 or n_rows % readout_replicas:
            raise ShapeError(f'crossbar {crossbar.shape}: {n_rows} readout rows are not '
                             f'{readout_replicas} copies of the readout')
        self.n_out = n_rows // readout_replicas
        self.dq_in: torch.Tensor | None = None
        self.dq_rec: torch.Tensor | None = None
        self.dq_out: torch.Tensor | None = None
        self.target_before: torch.Tensor | None = None
        self.changed: torch.Tensor | None = None
        self._x_bar: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- trials --------------------------------------------------------------------------------
    def _mvm(self) -> MVM:
        n_in, n_rec, xb, t, replicas = self.n_in, self.n_rec, self.crossbar, self.t, self.replicas

        def mvm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            # the weight tensor only says which block is read; its values are the crossbar's
            if tuple(w.shape[-2:]) == (n_rec, n_in + n_rec):  # [W_in | W_rec] [x; z]
                return xb.mvm(x, t)[..., :n_rec]
            if w.shape[-1] == n_rec:  # readout W_out z: input [0 | z], copies averaged
                pad = torch.zeros(*x.shape[:-1], n_in, dtype=x.dtype)
                y = xb.mvm(torch.cat([pad, x], dim=-1), t)[..., n_rec:]
                return average_replicas(y.unsqueeze(-1), replicas).squeeze(-1)
            raise ShapeError(f'mvm: unexpected weight shape {tuple(w.shape)}')
        return mvm

    def trial(self, x: torch.Tensor, cfg: TraineeConfig, *, dt: float,
              mode: SpikeMode = PAPER) -> TrialResult:
        """One trial on input spikes `x` (time, 1, n_in), every MVM a crossbar read at ``t``.

        Raises:
            ShapeError: `x` is not (time, 1, n_in).
            ValueError: ``fast`` with a spike mode other than the paper's.
        """
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.n_in:
            raise ShapeError(f'x: expected (time, 1, {self.n_in}), got {tuple(x.shape)}')
        if not self.fast:
            w_in, w_rec, w_out = unpack_trainee(self.crossbar.w_target, self.n_in, self.replicas)
            with torch.no_grad():
                return run_trial(w_in, w_rec, w_out, x, cfg, self._mvm(), dt=dt, mode=mode)
        if mode is not PAPER:
            raise ValueError('the compiled trial runs the paper spike mode only')
        return self._trial_fast(x, cfg, dt)

    def _trial_fast(self, x: torch.Tensor, cfg: TraineeConfig, dt: float) -> TrialResult:
        # the recurrent loop in the compiled kernel; the readout W_out z (rows n_rec.. of the
        # crossbar with [0 | z] as input) as one product over all steps with the same
        # output-noise model as Crossbar.mvm; one standard-normal draw per trial
        xb, n, n_in = self.crossbar, self.n_rec, self.n_in
        n_steps = x.shape[0]
        w = xb.effective_weights(self.t).double().numpy()
        if xb.exact_reads:  # as Crossbar.mvm
            var = np.zeros_like(w)
            xi = np.zeros((n_steps, self.n_post))
        else:
            var = xb.read_noise_sd(self.t).double().square().numpy()
            # numpy's ziggurat is ~5x faster than torch.randn here; seeded from the crossbar's
            # generator, so a seeded accelerator stays reproducible
            seed = int(torch.randint(0, 2**62, (1,), generator=xb.generator))
            xi = np.random.default_rng(seed).standard_normal((n_steps, self.n_post))
        alpha = decay_factor(cfg.tau_m, dt)
        z, v, psi, zbar = fast_trial.lif_recurrent(
            w[:n], var[:n], x[:, 0, :].double().numpy(), xi[:, :n], alpha=alpha,
            v_th=cfg.v_th, n_ref=cfg.n_ref, gamma=cfg.dampening_factor)
        w_out, var_out = w[n:, n_in:], var[n:, n_in:]
        y_in = z @ w_out.T + np.sqrt((z * z) @ var_out.T) * xi[:, n:]  # (time, R n_out)
        y_in = average_replicas(y_in[..., None], self.replicas)[..., 0]
        y = leaky_integrate(torch.from_numpy(y_in), decay_factor(cfg.tau_out, dt)).numpy()
        if self._x_bar is None or self._x_bar[0] is not x:  # the input trace, once per input
            self._x_bar = (x, leaky_integrate(x, alpha).to(xb.dtype))

        def seq(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(xb.dtype).unsqueeze(1)  # (time, 1, ...)
        return TrialResult(seq(z), seq(v), seq(psi), seq(y), self._x_bar[1], seq(zbar))

    # ---- the update ----------------------------------------------------------------------------
    def update(self, dw_in: torch.Tensor | None, dw_rec: torch.Tensor | None,
               dw_out: torch.Tensor | None = None) -> torch.Tensor:
        """Round ΔW once, write the changed weights at ``t``; returns devices written, (1,).

        Args:
            dw_in: ΔW_in (1, n_rec, n_in) or (n_rec, n_in); None: W_in is not updated.
            dw_rec: ΔW_rec (1, n_rec, n_rec) or (n_rec, n_rec), diagonal ignored; None: W_rec
                is not updated.
            dw_out: ΔW_out (1, n_out, n_rec) or (n_out, n_rec); None (default): the readout is
                not updated (the paper). Each of the R copies gets it rounded on its own.

        Raises:
            RejectedInput: ΔW not finite, or more than ``max_changed`` weights would change;
                nothing is written.
        """
        pc = self.crossbar.cfg
        gen = self.crossbar.generator
        for name, dw in (('ΔW_in', dw_in), ('ΔW_rec', dw_rec), ('ΔW_out', dw_out)):
            if dw is not None and not bool(torch.isfinite(dw).all()):
                raise RejectedInput(f'{name} is not finite: update refused, nothing programmed')
        with torch.no_grad():
            def rounded(dw: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor:
                if dw is None:
                    return torch.zeros(shape, dtype=self.crossbar.dtype)
                return quantize_delta(dw.reshape(shape), pc.delta_w_step,
                                      stochastic=pc.stochastic_rounding, generator=gen)
            dq_in = rounded(dw_in, (self.n_rec, self.n_in))
            dq_rec = rounded(dw_rec, (self.n_rec, self.n_rec))
            dq_rec = dq_rec * (1.0 - torch.eye(self.n_rec, dtype=dq_rec.dtype))
            if dw_out is None:
                dq_rows = rounded(None, (self.replicas * self.n_out, self.n_rec))
            else:
                dq_rows = rounded(dw_out.reshape(self.n_out, self.n_rec).repeat(self.replicas, 1),
                                  (self.replicas * self.n_out, self.n_rec))
            dq_out = average_replicas(dq_rows, self.replicas)
            dq = pack_trainee(dq_in, dq_rec, dq_rows)
        if not bool(torch.isfinite(dq).all()):
            raise RejectedInput('ΔW overflows the update grid: update refused, nothing programmed')
        n_changed = int((dq != 0).sum())
        if self.max_changed and n_changed > self.max_changed:
            raise RejectedInput(f'the update would change {n_changed} weights, more than the '
                                f'limit of {self.max_changed} (control.max_weights_changed): '
                                'refused, nothing programmed')
        if self.target_before is None:  # the first update of this substrate
            self.target_before = self.crossbar.w_target
            self.changed = torch.zeros_like(dq, dtype=torch.bool)
            self.dq_in, self.dq_rec = torch.zeros_like(dq_in), torch.zeros_like(dq_rec)
            self.dq_out = torch.zeros_like(dq_out)
        self.dq_in, self.dq_rec = self.dq_in + dq_in, self.dq_rec + dq_rec
        self.dq_out = self.dq_out + dq_out
        self.changed |= dq != 0
        n = self.crossbar.add(dq, self.t) if bool((dq != 0).any()) else 0
        return torch.tensor([n], dtype=torch.int64)

    def undo_record(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target_before (n_post, n_pre), changed bool (n_post, n_pre), dq_in, dq_rec) of all
        updates so far; with no update: the current targets, nothing changed, zero updates."""
        if self.target_before is None:
            return (self.crossbar.w_target, torch.zeros(self.n_post, self.n_pre, dtype=torch.bool),
                    torch.zeros(self.n_rec, self.n_in), torch.zeros(self.n_rec, self.n_rec))
        return self.target_before, self.changed, self.dq_in, self.dq_rec

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The crossbar's target weights (w_in, w_rec, w_out), each with a batch dim of 1 (w_out:
        the average of its copies)."""
        w_in, w_rec, w_out = unpack_trainee(self.crossbar.w_target, self.n_in, self.replicas)
        return w_in.unsqueeze(0), w_rec.unsqueeze(0), w_out.unsqueeze(0)
