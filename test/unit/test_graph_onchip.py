"""The accelerator node's core with a fake accelerator, fake clocks and fake outputs (no rclpy):
signal queue and CRC de-duplication, the pending undo, playback, status, reset, live changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.reach.accelerator import AdaptOutcome
from l2l_nmhw_ros.reach.onchip import Admission, OnChipLearner, QueuedSignal, SignalQueue
from l2l_nmhw_ros.reach.reports import STATUS_KEYS, AcceleratorStatus, signal_crc

T = 249
STATS = {'mean_conductance_uS': 12.5, 'device_age_s': 3.0, 'drift_compensation_factor': 1.0,
         'devices_programmed_total': 100.0, 'devices_set_fraction': 0.5}


class FakeAccelerator:
    """Records adapt/restore/reset; readouts are a constant slow motion."""

    def __init__(self, n_rec: int = 250) -> None:
        self.n_rec = n_rec
        self.adapted: list[tuple[str, float, bool]] = []
        self.restored: list[AdaptOutcome] = []
        self.resets: list[float] = []
        self.saved: list[str] = []
        self.fail_save = False

    def check_learning_signal(self, sig) -> None:
        sig = np.asarray(sig)
        if sig.shape != (T, self.n_rec):
            raise ShapeError(f'learning_signal: expected {(T, self.n_rec)}, got {sig.shape}')
        if not np.isfinite(sig).all():
            raise ValueError('learning_signal: contains NaN or inf')

    def adapt(self, sig, t: float, *, baseline: bool = True) -> AdaptOutcome:
        self.adapted.append((signal_crc(sig), t, baseline))
        omega = np.full((T, 2), 0.1)
        return AdaptOutcome(omega_adapted=omega, omega_baseline=-omega if baseline else None,
                            devices_programmed=40 + len(self.adapted), weights_changed=20,
                            dq_in=None, dq_rec=None, changed=None, target_before=None,
                            timings={'baseline_trial': 0.002, 'learning_trial': 0.001,
                                     'update': 0.003, 'test_trial': 0.001}, rate_hz=12.0)

    def restore(self, outcome: AdaptOutcome, t: float) -> int:
        self.restored.append(outcome)
        return outcome.devices_programmed

    def reset(self, t: float) -> int:
        self.resets.append(t)
        return 128000

    def statistics(self, t: float) -> dict[str, float]:
        return dict(STATS)

    def save(self, path) -> None:
        if self.fail_save:
            raise OSError('disk full')
        self.saved.append(str(path))


class Outputs:
    def __init__(self) -> None:
        self.commands: list[np.ndarray] = []
        self.status: list[AcceleratorStatus] = []

    def publish_command(self, q: np.ndarray) -> None:
        self.commands.append(np.asarray(q))

    def publish_status(self, status: AcceleratorStatus) -> None:
        self.status.append(status)

    def events(self) -> list[tuple[str, str]]:
        return [(s.event, s.phase) for s in self.status]


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _cfg(**control) -> C.L2LConfig:
    return C.from_dict({'control': {'settle_time': 0.1, 'queue_size': 2, **control}})


def _learner(**control):
    acc, out, now, clock = FakeAccelerator(), Outputs(), Clock(10.0), Clock(500.0)
    core = OnChipLearner(_cfg(**control), acc, out, now=now, clock=clock)
    return core, acc, out, now


def _signal(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (T, 250)).astype(np.float32)


def _play(core: OnChipLearner, now: Clock, until: float, dt: float = 0.02) -> None:
    while now.t < until:
        now.t += dt
        core.tick()


def test_signal_queue_is_bounded_fifo_by_crc() -> None:
    q = SignalQueue(2)
    items = [QueuedSignal(np.zeros(1), f'{i:08x}', float(i)) for i in range(3)]
    assert q.push(items[0]) == [] and q.push(items[1]) == []
    assert q.push(items[2]) == [items[0]]  # full: the oldest is dropped
    assert q.crcs == ('00000001', '00000002') and '00000001' in q and '00000000' not in q
    assert q.pop() is items[1] and len(q) == 1
    q.clear()
    assert q.pop() is None
    with pytest.raises(ValueError, match='queue size'):
        SignalQueue(0)


def test_first_signal_runs_repeats_are_ignored_others_queued_in_order() -> None:
    core, acc, out, _ = _learner()
    a, b, c, d = (_signal(i) for i in range(4))
    assert core.on_learning_signal(a, 499.99) is Admission.STARTED
    st = out.status[-1]
    assert (st.event, st.phase, st.state, st.episode) == ('computed', 'computed', 'streaming', 1)
    assert st.learning_signal_crc32 == signal_crc(a) and st.devices_restored == 0
    # latency: clock at computation minus arrival, without the baseline trial
    assert st.adaptation_latency_ms == pytest.approx(1e3 * (0.01 - 0.002))
    assert st.time_scale_baseline > 0 and st.time_scale_adapted > 0
    n = len(out.status)
    assert core.on_learning_signal(a.copy(), 500.0) is Admission.DUPLICATE  # a re-send
    assert len(out.status) == n and len(acc.adapted) == 1
    assert core.on_learning_signal(b, 500.0) is Admission.QUEUED
    assert out.status[-1].event == 'queued' and out.status[-1].queued_crc32 == signal_crc(b)
    assert core.on_learning_signal(b, 500.0) is Admission.DUPLICATE  # queued one re-sent
    assert core.on_learning_signal(c, 500.0) is Admission.QUEUED
    assert core.on_learning_signal(d, 500.0) is Admission.QUEUED  # full (2): b dropped
    assert core.queue.crcs == (signal_crc(c), signal_crc(d))
    assert out.status[-1].queued == 2
    assert out.status[-1].queued_crc32 == f'{signal_crc(c)},{signal_crc(d)}'


def test_an_episode_plays_its_phases_undoes_its_update_then_the_next_starts() -> None:
    core, acc, out, now = _learner(state_file='pcm_state.safetensors')  # the fake writes none
    a, b = _signal(1), _signal(2)
    core.on_learning_signal(a, 500.0)
    core.on_learning_signal(b, 500.0)
    first = core.running
    assert first is not None and first.outcome.devices_programmed == 41  # the pending undo
    _play(core, now, now.t + 60.0)
    starts = [p for e, p in out.events() if e == 'start']
    assert starts[:5] == ['home', 'baseline', 'return_baseline', 'adapted', 'return_adapted']
    end = next(s for s in out.status if s.event == 'end' and s.phase == 'done')
    assert end.devices_restored == 41 and end.learning_signal_crc32 == signal_crc(a)
    assert acc.restored[0] is first.outcome  # the outcome never left the core
    assert acc.saved == ['pcm_state.safetensors'] * 2  # after each episode
    # then the queued one ran (episode 2) and ended too
    assert [x[0] for x in acc.adapted] == [signal_crc(a), signal_crc(b)]
    assert core.running is None and core.episode == 2 and not len(core.queue)
    assert out.status[-1].phase == 'done' and out.status[-1].episode == 2
    # an execution's start reports its window; commands hold the unlearned joints at home
    adapted = next(s for s in out.status if s.event == 'start' and s.phase == 'adapted')
    assert adapted.phase_duration > 0 and adapted.time_scale == adapted.time_scale_adapted
    q = np.array(out.commands)
    assert q.shape[1] == 4 and np.all(q[:, 2:] == 0.0)
    np.testing.assert_allclose(q[-1], 0.0, atol=1e-12)  # back home


def test_without_restore_or_baseline() -> None:
    core, acc, out, now = _learner(restore_weights=False, run_baseline=False)
    core.on_learning_signal(_signal(1), 500.0)
    _play(core, now, now.t + 60.0)
    assert acc.restored == [] and acc.adapted[0][2] is False
    assert [p for e, p in out.events() if e == 'start'] == ['home', 'adapted', 'return_adapted']
    assert out.status[-1].devices_restored == 0 and out.status[-1].time_scale_baseline == 0.0


def test_reset_ends_the_episode_and_drops_the_queue() -> None:
    core, acc, out, now = _learner()
    core.on_learning_signal(_signal(1), 500.0)
    core.on_learning_signal(_signal(2), 500.0)
    _play(core, now, now.t + 1.0)
    msg = core.reset()
    assert '128000 devices' in msg and acc.resets == [now.t]
    st = out.status[-1]
    assert (st.event, st.phase, st.state, st.queued) == ('reset', 'done', 'idle', 0)
    assert core.running is None and acc.restored == []  # reset re-programs everything
    n = len(out.commands)
    _play(core, now, now.t + 5.0)
    assert len(out.commands) == n and len(acc.adapted) == 1  # nothing streams, nothing runs


def test_bad_signals_are_refused_and_change_nothing() -> None:
    core, acc, out, _ = _learner()
    with pytest.raises(ShapeError):  # not a signal of this network: the node rejects it
        core.on_learning_signal(np.zeros((10, 250), np.float32), 0.0)
    bad = _signal(1)
    bad[3, 3] = np.nan
    # a signal of the right shape is answered: status `rejected` with its CRC and the reason
    assert core.on_learning_signal(bad, 0.0) is Admission.REJECTED
    assert acc.adapted == [] and core.episode == 0 and core.rejected['learning_signal'] == 1
    assert [(s.event, s.rejected_crc32) for s in out.status] == [('rejected', signal_crc(bad))]
    assert 'NaN' in out.status[0].rejected_reason


def test_status_has_every_key_after_an_episode_and_counts_rejections() -> None:
    core, _, out, now = _learner()
    st = core.status('periodic')
    assert st.episode is None and st.phase == '' and st.state == 'idle'  # nothing ran yet
    core.rejected['learning_signal'] += 2
    core.on_learning_signal(_signal(1), 500.0)
    _play(core, now, now.t + 60.0)
    st = core.status('periodic')
    # every key but those of a refusal (event `rejected` only) and of an episode ended early
    only_when = ('rejected_crc32', 'rejected_reason', 'fault')
    assert list(st.values()) == [k for k in STATUS_KEYS if k not in only_when]
    assert st.rejected_messages == 2 and st.mean_conductance_uS == 12.5
    assert st.commands_clamped == 0 and st.clock_stalled_s == 0.0 and st.boot_id == core.boot_id


def test_live_configuration_applies_from_the_next_episode() -> None:
    core, acc, out, now = _learner()
    cfg = core.cfg
    core.configure(dataclasses.replace(cfg, control=dataclasses.replace(
        cfg.control, queue_size=1, run_baseline=False, time_scale=20.0)))
    core.on_learning_signal(_signal(1), 500.0)
    assert out.status[-1].time_scale_adapted == 20.0 and acc.adapted[0][2] is False
    core.on_learning_signal(_signal(2), 500.0)
    core.on_learning_signal(_signal(3), 500.0)
    assert core.queue.crcs == (signal_crc(_signal(3)),)
    with pytest.raises(C.ConfigError, match='home'):
        core.configure(dataclasses.replace(cfg, control=dataclasses.replace(
            cfg.control, home=(0.0, 0.0))))


def test_save_reports_success_and_failure(tmp_path: Path) -> None:
    core, acc, _, _ = _learner()
    assert core.save() == (False, 'no control.state_file set: state kept in memory only')
    core, acc, _, _ = _learner(state_file=str(tmp_path / 's.safetensors'))
    ok, msg = core.save()
    assert ok and acc.saved == [str(tmp_path / 's.safetensors')]
    acc.fail_save = True
    ok, msg = core.save()
    assert not ok and 'disk full' in msg
    core.close()  # logs, does not raise
