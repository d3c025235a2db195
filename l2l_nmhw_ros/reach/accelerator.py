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
the controller, runs the package's one inner loop,
:func:`l2l_nmhw_ros.l2l.inner.update_and_test`, on a
:class:`~l2l_nmhw_ros.l2l.substrate.CrossbarSubstrate` of this crossbar at the episode's time:

a) baseline test trial with the current (meta-learned) weights, no update (optional) - only to
   report the error before the update;
b) learning trial; e-prop update ΔW = -η Σ_t L ψ ē with the local traces of that trial, for W_in
   and/or W_rec (``eprop`` section), the W_rec diagonal masked (no autapses); ΔW rounded ONCE to
   the ``pcm.delta_w_step`` grid and written on-chip with :meth:`Crossbar.add`, which
   re-programs only the devices of changed weights;
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
import torch

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.errors import CheckpointError, ShapeError
from l2l_nmhw_ros.l2l.inner import update_and_test
from l2l_nmhw_ros.l2l.substrate import CrossbarSubstrate
from l2l_nmhw_ros.pcm.crossbar import Crossbar
from l2l_nmhw_ros.pcm.layout import pack_trainee
from l2l_nmhw_ros.snn import fast_trial
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.trainee import TrialResult

__all__ = ['AdaptOutcome', 'Accelerator', 'trainee_weights']

_LOG = logging.getLogger(__name__)


class _Timed:
    """A substrate whose trial and update calls are timed with `clock`: ``times`` holds
    (``'trial'`` or ``'update'``, seconds) in call order."""

    def __init__(self, substrate: CrossbarSubstrate, clock: Callable[[], float]) -> None:
        self.substrate, self._clock = substrate, clock
        self.times: list[tuple[str, float]] = []

    def _timed(self, kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        c0 = self._clock()
        out = fn(*args, **kwargs)
        self.times.append((kind, self._clock() - c0))
        return out

    def trial(self, *args: Any, **kwargs: Any) -> TrialResult:  # noqa: D102
        return self._timed('trial', self.substrate.trial, *args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> torch.Tensor:  # noqa: D102
        return self._timed('update', self.substrate.update, *args, **kwargs)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: D102
        return self.substrate.weights()

    def stage_times(self, baseline: bool) -> dict[str, float]:
        """Seconds per stage: baseline_trial (first trial when `baseline`), learning_trial (all
        trials before the last), update (all updates), test_trial (the last trial)."""
        trials = [s for k, s in self.times if k == 'trial']
        base = trials.pop(0) if baseline else 0.0
        return {'baseline_trial': base, 'learning_trial': sum(trials[:-1]),
                'update': sum(s for k, s in self.times if k == 'update'),
                'test_trial': trials[-1]}


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
        dq_in, dq_rec: the rounded ΔW written (n_rec, n_in), (n_rec, n_rec) (summed over the
            episode's updates).
        changed: bool (n_post, n_pre): the packed weights the episode wrote.
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
    changed: torch.Tensor
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
    def substrate(self, t: float) -> CrossbarSubstrate:
        """The crossbar as the inner loop's substrate at emulator time ``t``."""
        return CrossbarSubstrate(self.crossbar, t, self.n_in, self.cfg.eprop, fast=self.fast)

    def run_trial(self, t: float) -> TrialResult:
        """One trial on the clock input, every MVM a crossbar read at ``t`` (batch 1)."""
        return self.substrate(t).trial(self.x, self.cfg.trainee, dt=self.cfg.task.dt)

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
        sub = _Timed(self.substrate(t), self._clock)
        omega_base = None
        if baseline:
            omega_base = sub.trial(self.x, self.cfg.trainee, dt=self.cfg.task.dt).y
            omega_base = omega_base[:, 0, :].double().numpy()
        with torch.no_grad():
            res = update_and_test(sub, sig, self.cfg)
        n_prog = int(res.n_programmed[0])
        self.devices_programmed_total += n_prog
        target_before, changed, dq_in, dq_rec = sub.substrate.undo_record()
        return AdaptOutcome(omega_adapted=res.test.y[:, 0, :].double().numpy(),
                            omega_baseline=omega_base, devices_programmed=n_prog,
                            weights_changed=int(changed.sum()), dq_in=dq_in, dq_rec=dq_rec,
                            changed=changed, target_before=target_before,
                            timings=sub.stage_times(baseline),
                            rate_hz=float(res.learn.z.mean()) / self.cfg.task.dt)

    def restore(self, outcome: AdaptOutcome, t: float) -> int:
        """Program the weights ``outcome`` changed back to their targets before it, at ``t``.

        Returns:
            Devices written.
        """
        if not bool(outcome.changed.any()):
            return 0
        n = self.crossbar.reprogram(outcome.target_before, outcome.changed, t)
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
