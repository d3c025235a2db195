"""The PCM accelerator's on-chip side of one episode (ROS-free core of ``pcm_accelerator``).

The trainee lives on ONE emulated crossbar (:class:`~l2l_nmhw_ros.pcm.crossbar.Crossbar`) holding
the packed (n_rec + R·n_out, n_in + n_rec) matrix of :mod:`l2l_nmhw_ros.pcm.layout` ((252, 255) in
the paper's setting; R = ``pcm.readout_replicas`` copies of the readout rows; in
``checkpoints/default``: 8 copies and 25 clock neurons, (274, 275) on 2 x 2 tiles). Every MVM of
a trial is a crossbar read at the emulator time ``t`` (drift, per-device 1/f read noise): the
synaptic input [W_in | W_rec] [x_t; z_{t-1}] is one read of rows 0..n_rec-1, the readout W_out z_t
a read of rows n_rec.. with [0 | z_t] as input, averaged over the R copies. The recurrent loop
runs in the compiled kernel of :mod:`l2l_nmhw_ros.snn.fast_trial` (``fast=True``, the default
when numba is installed; ~1 ms instead of ~40 ms per trial) or in the torch loop of
:func:`~l2l_nmhw_ros.snn.trainee.run_trial` (``fast=False``): the same equations and read-noise
model; the noise is drawn in another order, so seeded runs of the two differ by the noise sample.

One episode (:meth:`Accelerator.adapt`), given the learning signal L (time, n_signals) received
from the controller (n_signals = n_rec, plus n_out when the checkpoint's inner loop also learns
the readout, ``eprop.update_w_out``), runs the package's one inner loop,
:func:`l2l_nmhw_ros.l2l.inner.update_and_test`, on a
:class:`~l2l_nmhw_ros.l2l.substrate.CrossbarSubstrate` of this crossbar at the episode's time:

a) baseline test trial with the current (meta-learned) weights, no update (optional) - only to
   report the error before the update;
b) learning trial; e-prop update ΔW = -η Σ_t L ψ ē with the local traces of that trial, for W_in
   and/or W_rec (``eprop`` section), the W_rec diagonal masked (no autapses), and with
   ``eprop.update_w_out`` ΔW_out = -η_out Σ_t L_out ẑ from the last n_out signals (with
   ``eprop.readout_signal = error`` they are the demonstration's y* and L_out = y - y* is formed
   here from this trial's readout, as e-prop's readout rule does on-chip); ΔW rounded
   ONCE to the ``pcm.delta_w_step`` grid and written on-chip with :meth:`Crossbar.add`, which
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
import datetime
import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2l_nmhw_ros.config import L2LConfig
from l2l_nmhw_ros.errors import CheckpointError, RejectedInput, ShapeError
from l2l_nmhw_ros.fileio import atomic_write, sha256_file
from l2l_nmhw_ros.l2l.inner import n_learning_signals, update_and_test
from l2l_nmhw_ros.l2l.substrate import CrossbarSubstrate
from l2l_nmhw_ros.pcm.crossbar import Crossbar
from l2l_nmhw_ros.pcm.layout import pack_trainee
from l2l_nmhw_ros.snn import fast_trial
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.lsg import learning_signal_bound
from l2l_nmhw_ros.snn.trainee import TrialResult

__all__ = ['SIDECAR_VERSION', 'AdaptOutcome', 'Accelerator', 'demonstration_bound',
           'trainee_weights']

_LOG = logging.getLogger(__name__)

#: Layout version of the device-state sidecar ``<state file>.json`` (:meth:`Accelerator.save`);
#: 1 was the unversioned sidecar without a checksum.
SIDECAR_VERSION = 2
#: Keys of the sidecar and their JSON types (``bool`` is not an int here).
_SIDECAR_KEYS = {'format_version': int, 'weights_digest': str, 'state_sha256': str,
                 'devices_programmed_total': int}
#: A sidecar larger than this is not one of ours (ours is ~200 bytes).
_SIDECAR_MAX_BYTES = 64 * 1024


def _read_sidecar(path: Path) -> dict[str, Any]:
    """Return the device-state sidecar at ``path``, checked key by key.

    Raises:
        CheckpointError: missing, too large, not UTF-8 JSON, not an object, a key missing or of
            another type, another format version, a malformed checksum or a negative count.
    """
    if not path.is_file():
        raise CheckpointError(f'its sidecar {path.name} is missing')
    if path.stat().st_size > _SIDECAR_MAX_BYTES:
        raise CheckpointError(f'sidecar {path.name} is {path.stat().st_size} bytes, not a sidecar')
    try:
        meta = json.loads(path.read_bytes().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f'sidecar {path.name} is not valid JSON ({exc})') from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f'sidecar {path.name} holds a JSON {type(meta).__name__}, '
                              'expected an object')
    for key, kind in _SIDECAR_KEYS.items():
        if key not in meta:
            raise CheckpointError(f'sidecar {path.name} has no {key!r}')
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CheckpointError(f'sidecar {path.name}: {key} is {value!r}, expected '
                                  f'{kind.__name__}')
    if meta['format_version'] != SIDECAR_VERSION:
        raise CheckpointError(f'sidecar {path.name}: format_version {meta["format_version"]}, '
                              f'this version reads {SIDECAR_VERSION}')
    if not re.fullmatch('[0-9a-f]{64}', meta['state_sha256']):
        raise CheckpointError(f'sidecar {path.name}: state_sha256 is not 64 hex digits')
    if not 0 <= meta['devices_programmed_total'] < 2 ** 63:
        raise CheckpointError(f'sidecar {path.name}: devices_programmed_total '
                              f'{meta["devices_programmed_total"]} outside [0, 2^63)')
    return meta


def _utc_stamp() -> str:
    # the module's one wall-clock read: it names files moved aside, it never enters the physics
    return datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')


def _move_aside(path: Path, sidecar: Path) -> str:
    """Rename ``path`` and ``sidecar`` (those present) to ``<name>.rejected-<UTC time>`` (with
    ``-2``, ``-3``, ... when that name is taken); nothing is deleted or overwritten. Returns
    what was done, for the log line."""
    stamp = _utc_stamp()
    files = [f for f in (path, sidecar) if os.path.lexists(f)]
    for k in itertools.count(1):
        tag = f'rejected-{stamp}' + (f'-{k}' if k > 1 else '')
        dst = [f.with_name(f'{f.name}.{tag}') for f in files]
        if not any(os.path.lexists(d) for d in dst):
            break
    done = []
    for src, new in zip(files, dst, strict=True):
        try:
            src.rename(new)
            done.append(f'{src.name} -> {new.name}')
        except OSError as exc:
            done.append(f'{src.name} NOT moved ({exc})')
    return 'moved aside: ' + ', '.join(done)


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


def demonstration_bound(cfg: L2LConfig) -> torch.Tensor:
    """Return the largest |y*| per readout [integrator units] a demonstration can ask for with
    ``eprop.readout_signal = error``: a whole safe joint range in one step,
    (``task.joint_hi`` - ``task.joint_lo``) / ``task.omega_scale``, shape (n_out,)."""
    lo = torch.as_tensor(cfg.task.joint_lo, dtype=torch.float32)
    hi = torch.as_tensor(cfg.task.joint_hi, dtype=torch.float32)
    return (hi - lo) / cfg.task.omega_scale


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
        dq_out: the rounded readout ΔW written (n_out, n_rec): zero unless
            ``eprop.update_w_out``.
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
    dq_out: torch.Tensor | None = None


class Accelerator:
    """The trainee on a PCM crossbar: trials, on-chip update, restore, device statistics.

    Args:
        cfg: whole configuration (pcm, trainee, eprop, task sections used).
        weights: meta-learned trainee weights ``w_in`` (n_rec, n_in), ``w_rec``, ``w_out``
            (or the checkpoint's ``trainee.*`` keys).
        t: emulator time [s] of the initial programming.
        seed: seed of the crossbar's generator (device noise and read noise).
        state_file: device-state file (:meth:`save`); when it exists, belongs to the same
            weights and configuration, its sidecar is sound, its SHA-256 matches and its arrays
            pass :func:`~l2l_nmhw_ros.pcm.crossbar.check_state`, the crossbar is restored from
            it instead of being programmed (``loaded_from_state``). Otherwise the state file and
            its sidecar are renamed ``<name>.rejected-<UTC time>`` (kept, never deleted), one
            warning names the file and the reason, and the weights are programmed afresh.
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
        self.replicas = cfg.pcm.readout_replicas  # copies of the readout rows
        self.n_post = self.n_rec + self.replicas * self.n_out
        self.n_pre = self.n_in + self.n_rec
        self.n_signals = n_learning_signals(cfg)  # n_rec (+ n_out with eprop.update_w_out)
        w = trainee_weights(weights)
        for k, shape in (('w_in', (self.n_rec, self.n_in)), ('w_rec', (self.n_rec, self.n_rec)),
                         ('w_out', (self.n_out, self.n_rec))):
            if w[k].shape != shape:
                raise ShapeError(f'trainee {k}: expected {shape}, got {w[k].shape}')
        w_rec = w['w_rec'] * (1.0 - np.eye(self.n_rec, dtype=np.float32))
        self.w0 = torch.as_tensor(pack_trainee(w['w_in'], w_rec, w['w_out'], self.replicas))
        self.weights_digest = hashlib.sha256(self.w0.numpy().tobytes()).hexdigest()[:16]
        self._clock = clock or (lambda: 0.0)
        self._log = logger or _LOG
        self.x = clock_input(cfg.task, 1, n_in=self.n_in)
        self.crossbar = Crossbar(cfg.pcm, self.n_post, self.n_pre, seed)
        self.loaded_from_state = False
        self.devices_programmed_total = 0
        if state_file is not None and Path(state_file).is_file():
            self.loaded_from_state = self._try_load(Path(state_file))
        if not self.loaded_from_state:
            self.devices_programmed_total += self.crossbar.program(self.w0, t)
        self.fast = self._choose_trial_path(fast)
        self.signal_bound = self._signal_bound(weights)

    def _signal_bound(self, weights: Mapping[str, Any]) -> torch.Tensor | None:
        # the largest |L| per neuron the checkpoint's LSG can emit (+0.1 % and 1e-6 for float32)
        w_out = weights.get('lsg.w_out')
        if w_out is None:
            self._log.warning('no LSG in the checkpoint: learning signals are checked for shape '
                              'and finiteness only, not for their magnitude')
            return None
        w_out = torch.as_tensor(np.asarray(w_out, dtype=np.float32))
        if tuple(w_out.shape) != (self.n_signals, self.cfg.lsg.n_rec):
            raise ShapeError(f'lsg.w_out: expected ({self.n_signals}, {self.cfg.lsg.n_rec}), got '
                             f'{tuple(w_out.shape)}')
        bound = learning_signal_bound(w_out, self.cfg.lsg, dt=self.cfg.task.dt)
        bound = bound * 1.001 + 1e-6
        if self.cfg.eprop.update_w_out and self.cfg.eprop.readout_signal == 'error':
            bound[self.cfg.trainee.n_rec:] = demonstration_bound(self.cfg)
        return bound

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

    def _try_load(self, path: Path) -> bool:
        """Restore the crossbar from ``path`` when the state is sound and ours; else move the
        state file and its sidecar aside (never deleted), log one warning and return False."""
        try:
            meta = _read_sidecar(self._sidecar(path))
            if meta['weights_digest'] != self.weights_digest:
                raise CheckpointError('the state belongs to other trainee weights (digest '
                                      f'{meta["weights_digest"]}, ours {self.weights_digest})')
            digest = sha256_file(path)
            if digest != meta['state_sha256']:
                raise CheckpointError(f'checksum mismatch: the file has sha256 {digest[:16]}..., '
                                      f'the sidecar records {meta["state_sha256"][:16]}...')
            crossbar = Crossbar.load(path, self.cfg.pcm, n_post=self.n_post, n_pre=self.n_pre)
        except Exception as exc:  # hostile bytes may raise anything: all of it means unusable
            reason = str(exc) if isinstance(exc, CheckpointError) else (
                f'{type(exc).__name__}: {exc}')
            reason = reason.removeprefix(f'{path}: ')  # the line names the file once
            self._log.warning(f'device state {path} refused: {reason.replace(chr(10), " ")}; '
                              f'{_move_aside(path, self._sidecar(path))}; programming the '
                              'checkpoint weights afresh')
            return False
        self.crossbar = crossbar
        self.devices_programmed_total = meta['devices_programmed_total']
        return True

    def save(self, path: str | Path) -> None:
        """Write the device state and its JSON sidecar, each atomically (temporary file +
        rename), the state first.

        The sidecar ``<path>.json`` holds ``format_version`` (:data:`SIDECAR_VERSION`),
        ``weights_digest`` (the trainee weights the state belongs to), ``state_sha256`` (of the
        state file's bytes) and ``devices_programmed_total``. A crash between the two writes
        leaves a state whose checksum does not match: refused (and kept aside) at the next start.

        Raises:
            OSError: the folder is not writable (nothing is half-written).
        """
        path = Path(path)
        self.crossbar.save(path)
        text = json.dumps({'format_version': SIDECAR_VERSION,
                           'weights_digest': self.weights_digest,
                           'state_sha256': sha256_file(path),
                           'devices_programmed_total': self.devices_programmed_total}) + '\n'
        atomic_write(self._sidecar(path),
                     lambda tmp: Path(tmp).write_text(text, encoding='utf-8'))

    def reset(self, t: float) -> int:
        """Re-program every device to the meta-learned weights at ``t``; return devices written."""
        n = self.crossbar.program(self.w0, t)
        self.devices_programmed_total += n
        return n

    # ---- trials ------------------------------------------------------------------------------
    def substrate(self, t: float) -> CrossbarSubstrate:
        """The crossbar as the inner loop's substrate at emulator time ``t``."""
        return CrossbarSubstrate(self.crossbar, t, self.n_in, self.cfg.eprop, fast=self.fast,
                                 max_changed=self.cfg.control.max_weights_changed,
                                 readout_replicas=self.replicas)

    def run_trial(self, t: float) -> TrialResult:
        """One trial on the clock input, every MVM a crossbar read at ``t`` (batch 1)."""
        return self.substrate(t).trial(self.x, self.cfg.trainee, dt=self.cfg.task.dt)

    def check_learning_signal(self, learning_signal: Any) -> torch.Tensor:
        """Return the learning signal as a (time, 1, n_signals) tensor (n_signals = n_rec, plus
        n_out with ``eprop.update_w_out``: :func:`~l2l_nmhw_ros.l2l.inner.n_learning_signals`).

        Raises:
            ShapeError: not (n_steps, n_signals).
            ValueError: not finite.
            RejectedInput: larger than the checkpoint's LSG can emit
                (:func:`~l2l_nmhw_ros.snn.lsg.learning_signal_bound`, per neuron); with
                ``eprop.readout_signal = error`` a readout target y* beyond
                :func:`demonstration_bound`.
        """
        sig = torch.as_tensor(np.asarray(learning_signal, dtype=np.float32))
        shape = (self.cfg.task.n_steps, self.n_signals)
        if tuple(sig.shape) != shape:
            raise ShapeError(f'learning_signal: expected (time, neuron) = {shape}, got '
                             f'{tuple(sig.shape)}')
        if not bool(torch.isfinite(sig).all()):
            raise ValueError('learning_signal: contains NaN or inf')
        if self.signal_bound is not None:
            excess = sig.abs().amax(dim=0) / self.signal_bound
            if bool((excess > 1.0).any()):
                j = int(excess.argmax())
                peak, bound = float(sig[:, j].abs().max()), float(self.signal_bound[j])
                if j >= self.cfg.trainee.n_rec and self.cfg.eprop.readout_signal == 'error':
                    raise RejectedInput(f'learning_signal: the readout target y* of readout '
                                        f'{j - self.cfg.trainee.n_rec} reaches {peak:.4g}, above '
                                        f'{bound:.4g} (a whole safe joint range in one step): '
                                        'refused')
                raise RejectedInput(f'learning_signal: |L| of neuron {j} reaches {peak:.4g}, '
                                    f'above {bound:.4g}, the most the checkpoint\'s LSG can '
                                    'emit: refused')
        return sig.unsqueeze(1)

    def adapt(self, learning_signal: Any, t: float, *, baseline: bool = True) -> AdaptOutcome:
        """Run one episode on-chip: (baseline trial), learning trial, update, test trial.

        Args:
            learning_signal: L (time, n_signals) from the LSG (:meth:`check_learning_signal`).
            t: emulator time [s] (all reads and the programming of this episode).
            baseline: also run the baseline test trial before the update.

        Raises:
            ShapeError, ValueError, RejectedInput: see :meth:`check_learning_signal`.
            RejectedInput: the update is not finite or changes more than
                ``control.max_weights_changed`` weights (nothing was programmed; the trials of
                this call are lost, the crossbar is as before).
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
                            rate_hz=float(res.learn.z.mean()) / self.cfg.task.dt,
                            dq_out=sub.substrate.dq_out)

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
