"""The PCM accelerator's on-chip side of one episode (ROS-free core of ``pcm_accelerator``).

The trainee lives on ONE emulated crossbar (:class:`~l2l_nmhw_ros.pcm.crossbar.Crossbar`) holding
the packed (n_rec + n_out, n_in + n_rec) = (252, 255) matrix of :mod:`l2l_nmhw_ros.pcm.layout`.
Every MVM of a trial is a crossbar read at the emulator time ``t`` (drift, per-device 1/f read
noise): the synaptic input [W_in | W_rec] [x_t; z_{t-1}] is one read of rows 0..n_rec-1, the
readout W_out z_t a read of rows n_rec.. with [0 | z_t] as input. The recurrent loop runs in the
compiled kernel of :mod:`l2l_nmhw_ros.snn.fast_trial` (``fast=True``, the default when numba is
installed; ~1 ms instead of ~40 ms per trial) or in the torch loop of
:func:`~l2l_nmhw_ros.snn.trainee.run_trial` (``fast=False``): the same equations and read-noise
model; the noise is drawn in another order, so seeded runs of the two differ by the noise sample.

One episode (:meth:`Accelerator.adapt`), given the learning signal L (time, n_rec) received from
the controller:

a) baseline test trial with the current (meta-learned) weights, no update (optional) - only to
   report the error before the update;
b) learning trial; e-prop update ΔW = -η Σ_t L ψ ē with the local traces of that trial
   (:func:`l2l_nmhw_ros.snn.eprop.delta_w`), for W_in and/or W_rec (``eprop`` section), the W_rec
   diagonal masked (no autapses); ΔW rounded to the ``pcm.delta_w_step`` grid here, then written
   on-chip with :meth:`Crossbar.update`, which re-programs only the devices of changed weights;
c) adapted test trial -> readout omega (time, n_out).

:meth:`Accelerator.restore` undoes the update for the next task: the weights changed by the update
are programmed back to the targets they had before it (the controller's digital copy of the
meta-learned deployment), with fresh programming noise, drift exponent and t_prog, and the devices
written are counted. (The opposite quantised update would not do: a weight whose update was cut by
the ±w_max clip would not come back.)

Times (``t``, emulator clock) and the timing clock are passed in; no wall-clock reads here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import torch

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.errors import CheckpointError, ShapeError
from l2l_nmhw_ros.pcm.crossbar import Crossbar
from l2l_nmhw_ros.pcm.layout import pack_trainee, unpack_trainee
from l2l_nmhw_ros.pcm.model import quantize_delta
from l2l_nmhw_ros.snn import fast_trial
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.eprop import delta_w
from l2l_nmhw_ros.snn.neurons import decay_factor
from l2l_nmhw_ros.snn.trainee import TrialResult, _leaky, run_trial

__all__ = ['AdaptOutcome', 'Accelerator', 'trainee_weights']

_LOG = logging.getLogger(__name__)


def trainee_weights(weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Pick ``w_in``, ``w_rec``, ``w_out`` out of checkpoint weights (``trainee.*`` keys).

    Raises:
        CheckpointError: a key is missing.
    """
    out = {}
    for k in ('w_in', 'w_rec', 'w_out'):
        for key in (f'trainee.{k}', k):
            if key in weights:
                out[k] = np.asarray(weights[key], dtype=np.float32)
                break
        else:
            raise CheckpointError(f'checkpoint: trainee.{k} missing')
    return out


@dataclasses.dataclass(frozen=True)
class AdaptOutcome:
    """What one on-chip episode produced.

    Attributes:
        omega_adapted: readout of the test trial after the update (time, n_out).
        omega_baseline: readout of the baseline test trial before the update (time, n_out), or
            None when not run.
        devices_programmed: devices written by the update.
        weights_changed: weights whose quantised ΔW is not 0.
        dq_in, dq_rec: the quantised ΔW written (n_rec, n_in), (n_rec, n_rec).
        target_before: the crossbar's target weights before the update (n_post, n_pre).
        timings: seconds per stage: ``baseline_trial``, ``learning_trial``, ``update``,
            ``test_trial`` (measured with the clock passed in).
        rate_hz: mean firing rate of the trainee in the learning trial [Hz].
    """

    omega_adapted: np.ndarray
    omega_baseline: np.ndarray | None
    devices_programmed: int
    weights_changed: int
    dq_in: torch.Tensor
    dq_rec: torch.Tensor
    target_before: torch.Tensor
    timings: dict[str, float]
    rate_hz: float


class Accelerator:
    """The trainee on a PCM crossbar: trials, on-chip update, restore, device statistics.

    Args:
        cfg: whole configuration (pcm, trainee, eprop, task sections used).
        weights: meta-learned trainee weights ``w_in`` (n_rec, n_in), ``w_rec``, ``w_out``
            (or the checkpoint's ``trainee.*`` keys).
        t: emulator time [s] of the initial programming.
        seed: seed of the crossbar's generator (device noise and read noise).
        state_file: device-state file; when it exists and belongs to the same weights and
            configuration the crossbar is restored from it instead of being programmed.
        clock: monotonic clock [s] for the stage timings (e.g. ``time.perf_counter``).
        logger: where warnings go.
        fast: run trials in the compiled kernel (:mod:`l2l_nmhw_ros.snn.fast_trial`); ``None``:
            ``cfg.control.fast_trials`` when numba imports and the kernel compiles, else the torch
            loop (a warning says why); ``False``: the torch loop.

    Raises:
        RuntimeError: ``fast=True`` and numba is missing or the kernel does not compile.
        ShapeError: weights do not fit the ``trainee`` section.
    """

    def __init__(self, cfg: L2LConfig, weights: Mapping[str, Any], t: float, *, seed: int,
                 state_file: str | Path | None = None,
                 clock: Callable[[], float] | None = None,
                 logger: logging.Logger | Any = None, fast: bool | None = None) -> None:
        self.cfg = cfg
        tc = cfg.trainee
        self.n_in, self.n_rec, self.n_out = tc.n_in, tc.n_rec, tc.n_out
        self.n_post, self.n_pre = self.n_rec + self.n_out, self.n_in + self.n_rec
        w = trainee_weights(weights)
        for k, shape in (('w_in', (self.n_rec, self.n_in)), ('w_rec', (self.n_rec, self.n_rec)),
                         ('w_out', (self.n_out, self.n_rec))):
            if w[k].shape != shape:
                raise ShapeError(f'trainee {k}: expected {shape}, got {w[k].shape}')
        w_rec = w['w_rec'] * (1.0 - np.eye(self.n_rec, dtype=np.float32))
        self.w0 = torch.as_tensor(pack_trainee(w['w_in'], w_rec, w['w_out']))
        self.weights_digest = hashlib.sha256(self.w0.numpy().tobytes()).hexdigest()[:16]
        self._clock = clock or (lambda: 0.0)
        self._log = logger or _LOG
        self.x = clock_input(cfg.task, 1, n_in=self.n_in)
        self.crossbar = Crossbar(cfg.pcm, self.n_rec + self.n_out, self.n_in + self.n_rec, seed)
        self.loaded_from_state = False
        self.devices_programmed_total = 0
        if state_file is not None and Path(state_file).is_file():
            self.loaded_from_state = self._try_load(Path(state_file), seed)
        if not self.loaded_from_state:
            self.devices_programmed_total += self.crossbar.program(self.w0, t)
        self._x_bar: torch.Tensor | None = None
        self.fast = self._choose_trial_path(fast)

    def _choose_trial_path(self, fast: bool | None) -> bool:
        # compile (or load the cached kernel) now, not in episode 1; with fast=None a numba that
        # is missing or fails to compile means the torch loop (logged), with fast=True an error
        if fast is False or (fast is None and not self.cfg.control.fast_trials):
            return False
        if not fast_trial.available():
            if fast:
                raise RuntimeError('fast=True needs numba (pip install numba)')
            self._log.warning('numba is not installed: trials run in the torch loop (~40 ms)')
            return False
        try:
            fast_trial.warm_up()
        except Exception as exc:
            if fast:
                raise RuntimeError(f'the compiled trial kernel failed: {exc}') from exc
            self._log.warning(f'the compiled trial kernel failed ({exc}): trials run in the '
                              'torch loop (~40 ms)')
            return False
        return True

    # ---- persistence -----------------------------------------------------------------------
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + '.json')

    def _try_load(self, path: Path, seed: int) -> bool:
        try:
            meta = json.loads(self._sidecar(path).read_text(encoding='utf-8'))
            if meta.get('weights_digest') != self.weights_digest:
                raise CheckpointError('the state belongs to other trainee weights')
            self.crossbar = Crossbar.load(path, self.cfg.pcm, n_post=self.n_rec + self.n_out,
                                          n_pre=self.n_in + self.n_rec)
            self.devices_programmed_total = int(meta.get('devices_programmed_total', 0))
        except (OSError, ValueError, CheckpointError) as exc:
            self._log.warning(f'device state {path} not used ({exc}); programming the '
                              'checkpoint weights afresh')
            return False
        return True

    def save(self, path: str | Path) -> None:
        """Write the device state (atomic) and a JSON sidecar naming the weights it belongs to."""
        path = Path(path)
        self.crossbar.save(path)
        text = json.dumps({'weights_digest': self.weights_digest,
                           'devices_programmed_total': self.devices_programmed_total}) + '\n'
        tmp = self._sidecar(path).with_suffix('.tmp')
        tmp.write_text(text, encoding='utf-8')
        tmp.replace(self._sidecar(path))

    def reset(self, t: float) -> int:
        """Re-program every device to the meta-learned weights at ``t``; return devices written."""
        n = self.crossbar.program(self.w0, t)
        self.devices_programmed_total += n
        return n

    # ---- trials ------------------------------------------------------------------------------
    def _mvm(self, t: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        n_in, n_rec = self.n_in, self.n_rec
        xb = self.crossbar

        def mvm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            if tuple(w.shape[-2:]) == (n_rec, n_in + n_rec):  # [W_in | W_rec] [x; z]
                return xb.mvm(x, t)[..., :n_rec]
            if w.shape[-1] == n_rec:  # readout W_out z: input [0 | z]
                pad = torch.zeros(*x.shape[:-1], n_in, dtype=x.dtype)
                return xb.mvm(torch.cat([pad, x], dim=-1), t)[..., n_rec:]
            raise ShapeError(f'mvm: unexpected weight shape {tuple(w.shape)}')
        return mvm

    def run_trial(self, t: float) -> TrialResult:
        """One trial on the clock input, every MVM a crossbar read at ``t`` (batch 1)."""
        if self.fast:
            return self._run_trial_fast(t)
        w_in, w_rec, w_out = unpack_trainee(self.crossbar.w_target, self.n_in)
        with torch.no_grad():
            return run_trial(w_in, w_rec, w_out, self.x, self.cfg.trainee, self._mvm(t),
                             dt=self.cfg.task.dt)

    def _run_trial_fast(self, t: float) -> TrialResult:
        # the recurrent loop in the compiled kernel; the readout W_out z (rows n_rec.. of the
        # crossbar with [0 | z] as input) as one product over all steps with the same
        # output-noise model as Crossbar.mvm; one standard-normal draw per trial
        xb, tc = self.crossbar, self.cfg.trainee
        n, n_in, dt = self.n_rec, self.n_in, self.cfg.task.dt
        n_steps = self.x.shape[0]
        w = xb.effective_weights(t).double().numpy()
        if xb.cfg.preset == 'ideal' or not xb.cfg.read_noise:  # as Crossbar.mvm
            var = np.zeros_like(w)
            xi = np.zeros((n_steps, self.n_post))
        else:
            var = xb.read_noise_sd(t).double().square().numpy()
            # numpy's ziggurat is ~5x faster than torch.randn here; seeded from the crossbar's
            # generator, so a seeded accelerator stays reproducible
            seed = int(torch.randint(0, 2**62, (1,), generator=xb.generator))
            xi = np.random.default_rng(seed).standard_normal((n_steps, self.n_post))
        alpha = decay_factor(tc.tau_m, dt)
        z, v, psi, zbar = fast_trial.lif_recurrent(
            w[:n], var[:n], self.x[:, 0, :].double().numpy(), xi[:, :n], alpha=alpha,
            v_th=tc.v_th, n_ref=tc.n_ref, gamma=tc.dampening_factor)
        w_out, var_out = w[n:, n_in:], var[n:, n_in:]
        y_in = z @ w_out.T + np.sqrt((z * z) @ var_out.T) * xi[:, n:]
        y = scipy.signal.lfilter([1.0], [1.0, -decay_factor(tc.tau_out, dt)], y_in, axis=0)
        if self._x_bar is None:
            self._x_bar = _leaky(self.x, alpha)

        def seq(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(xb.dtype).unsqueeze(1)  # (time, 1, ...)
        return TrialResult(seq(z), seq(v), seq(psi), seq(y), self._x_bar, seq(zbar))

    def check_learning_signal(self, learning_signal: Any) -> torch.Tensor:
        """Return the learning signal as a (time, 1, n_rec) tensor.

        Raises:
            ShapeError: not (n_steps, n_rec).
            ValueError: not finite.
        """
        sig = torch.as_tensor(np.asarray(learning_signal, dtype=np.float32))
        shape = (self.cfg.task.n_steps, self.n_rec)
        if tuple(sig.shape) != shape:
            raise ShapeError(f'learning_signal: expected (time, neuron) = {shape}, got '
                             f'{tuple(sig.shape)}')
        if not bool(torch.isfinite(sig).all()):
            raise ValueError('learning_signal: contains NaN or inf')
        return sig.unsqueeze(1)

    def adapt(self, learning_signal: Any, t: float, *, baseline: bool = True) -> AdaptOutcome:
        """Run one episode on-chip: (baseline trial), learning trial, update, test trial.

        Args:
            learning_signal: L (time, n_rec) from the LSG.
            t: emulator time [s] (all reads and the programming of this episode).
            baseline: also run the baseline test trial before the update.

        Raises:
            ShapeError, ValueError: see :meth:`check_learning_signal`.
        """
        sig = self.check_learning_signal(learning_signal)
        timings: dict[str, float] = {}
        omega_base = None
        c0 = self._clock()
        if baseline:
            omega_base = self.run_trial(t).y[:, 0, :].double().numpy()
        c1 = self._clock()
        timings['baseline_trial'] = c1 - c0
        learn = self.run_trial(t)
        c2 = self._clock()
        timings['learning_trial'] = c2 - c1
        ec = self.cfg.eprop
        with torch.no_grad():
            dw_in, dw_rec = delta_w(learn, sig, ec.eta)
            dw_in = dw_in.reshape(self.n_rec, self.n_in)
            dw_rec = dw_rec.reshape(self.n_rec, self.n_rec)
            dw_rec = dw_rec * (1.0 - torch.eye(self.n_rec, dtype=dw_rec.dtype))
            pc = self.cfg.pcm
            dq_in = quantize_delta(dw_in, pc.delta_w_step, stochastic=pc.stochastic_rounding,
                                   generator=self.crossbar.generator) if ec.update_w_in else \
                torch.zeros_like(dw_in)
            dq_rec = quantize_delta(dw_rec, pc.delta_w_step, stochastic=pc.stochastic_rounding,
                                    generator=self.crossbar.generator) if ec.update_w_rec else \
                torch.zeros_like(dw_rec)
            dq = pack_trainee(dq_in, dq_rec, torch.zeros(self.n_out, self.n_rec))
        target_before = self.crossbar.w_target
        n_prog = self.crossbar.update(dq, t) if bool((dq != 0).any()) else 0
        self.devices_programmed_total += n_prog
        c3 = self._clock()
        timings['update'] = c3 - c2
        test = self.run_trial(t)
        timings['test_trial'] = self._clock() - c3
        rate = float(learn.z.mean()) / self.cfg.task.dt
        return AdaptOutcome(omega_adapted=test.y[:, 0, :].double().numpy(),
                            omega_baseline=omega_base, devices_programmed=int(n_prog),
                            weights_changed=int((dq != 0).sum()), dq_in=dq_in, dq_rec=dq_rec,
                            target_before=target_before, timings=timings, rate_hz=rate)

    def restore(self, outcome: AdaptOutcome, t: float) -> int:
        """Program the weights ``outcome`` changed back to their targets before it, at ``t``.

        Returns:
            Devices written.
        """
        mask = pack_trainee(outcome.dq_in != 0, outcome.dq_rec != 0,
                            torch.zeros(self.n_out, self.n_rec, dtype=torch.bool))
        if not bool(mask.any()):
            return 0
        n = self.crossbar.reprogram(outcome.target_before, mask, t)
        self.devices_programmed_total += n
        return int(n)

    # ---- statistics --------------------------------------------------------------------------
    def statistics(self, t: float) -> dict[str, float]:
        """Device statistics at ``t``: mean conductance of SET devices [µS], their mean age
        (t - t_prog) [s], the global drift-compensation factor, devices written since start,
        and the share of SET devices."""
        g = self.crossbar.conductances(t)
        t_prog = self.crossbar.t_prog
        on = g > 0
        n_on = int(on.sum())
        return {
            'mean_conductance_uS': float(g[on].mean()) if n_on else 0.0,
            'device_age_s': float((t - t_prog[on]).clamp(min=0).mean()) if n_on else 0.0,
            'drift_compensation_factor': float(self.crossbar.drift_compensation_factor(t)),
            'devices_programmed_total': float(self.devices_programmed_total),
            'devices_set_fraction': n_on / g.numel(),
        }
