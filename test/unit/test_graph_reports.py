"""The two wire reports: one key list each, None not sent, parsed back from the wire strings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from l2l_nmhw_ros.reach.reports import (RESULT_KEYS, STATUS_KEYS, AcceleratorStatus, EpisodeResult,
                                      Level, signal_crc)

DOCS = Path(__file__).resolve().parents[2] / 'docs' / 'ros.md'


def _wire(values: dict) -> dict[str, str]:
    """What a subscriber receives (the formatting of ros/convert.py's diag_status)."""
    return {k: repr(round(v, 9)) if isinstance(v, float) else str(v) for k, v in values.items()}


def test_status_key_list_is_the_documented_one_in_order() -> None:
    assert STATUS_KEYS == (
        'state', 'event', 'boot_id', 'phase', 'phase_start', 'phase_duration', 'phase_hold',
        'time_scale', 'episode', 'learning_signal_crc32', 'devices_programmed', 'weights_changed',
        'devices_restored', 'adaptation_latency_ms', 'baseline_trial_ms', 'learning_trial_ms',
        'update_ms', 'test_trial_ms', 'trainee_rate_hz', 'time_scale_baseline',
        'time_scale_adapted', 'mean_conductance_uS', 'device_age_s', 'drift_compensation_factor',
        'devices_programmed_total', 'devices_set_fraction', 'queued', 'queued_crc32',
        'rejected_messages', 'rejected_crc32', 'rejected_reason', 'fault', 'commands_clamped',
        'clock_stalled_s')


def test_result_key_list_is_the_documented_one_and_message_is_not_a_key() -> None:
    assert RESULT_KEYS[:5] == ('episode', 'target_x', 'target_y', 'target_z', 'status')
    for name in ('baseline', 'adapted'):
        for key in ('error_final', 'error_path', 'error_max', 'joint_rmse', 'evaluation_error'):
            assert f'{key}_{name}' in RESULT_KEYS
    assert set(EpisodeResult.FROM_STATUS) <= set(RESULT_KEYS) & set(STATUS_KEYS)
    assert 'message' not in RESULT_KEYS
    assert {'ik_distance', 'lsg_ms', 'signal_sends', 'accelerator_episode',
            'arm_moved_rad'} <= set(RESULT_KEYS)


def test_every_key_is_documented_in_docs_ros_md() -> None:
    text = DOCS.read_text(encoding='utf-8')
    documented = set(re.findall(r'`([a-z_0-9A-Z]+)`', text))
    for pattern in re.findall(r'`([a-z_]+)_\{baseline,adapted\}`', text):
        documented |= {f'{pattern}_baseline', f'{pattern}_adapted'}
    for pattern in re.findall(r'`([a-z_]+)_\*`', text):
        documented |= {f'{pattern}_baseline', f'{pattern}_adapted'}
    missing = [k for k in STATUS_KEYS + RESULT_KEYS if k not in documented
               and not k.startswith('target_')]
    assert missing == []


def test_values_leave_out_none_and_keep_the_key_order() -> None:
    st = AcceleratorStatus(state='idle', event='periodic', phase='', phase_start=0.0, queued=0,
                           queued_crc32='')
    assert list(st.values()) == ['state', 'event', 'phase', 'phase_start', 'queued',
                                 'queued_crc32']
    assert st.level is Level.OK and st.message == 'idle; episode 0'
    r = EpisodeResult(episode=3, target_x=0.1, target_y=0.2, target_z=0.3, status='timeout',
                      message='no answer')
    assert r.values() == {'episode': 3, 'target_x': 0.1, 'target_y': 0.2, 'target_z': 0.3,
                          'status': 'timeout'}
    assert r.level is Level.ERROR and r.hardware_id == 'episode 3'
    assert EpisodeResult(episode=1, target_x=0, target_y=0, target_z=0,
                         status='ok').level is Level.OK


def test_status_round_trips_through_the_wire_strings() -> None:
    st = AcceleratorStatus(state='streaming', event='start', phase='adapted', phase_start=12.5,
                           phase_duration=3.25, phase_hold=0.5, time_scale=9.876543210123,
                           episode=4, learning_signal_crc32='00c0ffee', devices_programmed=2528,
                           devices_restored=0, adaptation_latency_ms=15.123456789,
                           devices_programmed_total=130528.0, queued=1, queued_crc32='deadbeef',
                           rejected_messages=2)
    back = AcceleratorStatus.from_values(_wire(st.values()) | {'unknown_key': 'x'})
    assert back.values() == {k: (round(v, 9) if isinstance(v, float) else v)
                             for k, v in st.values().items()}
    # re-sent by the controller (EpisodeResult.FROM_STATUS): the same strings again
    assert _wire({'d': back.devices_programmed, 'l': back.adaptation_latency_ms}) == {
        'd': '2528', 'l': '15.123456789'}
    assert AcceleratorStatus.from_values({'phase': 'done'}).episode is None


@pytest.mark.parametrize(('key', 'value'), [('episode', 'one'), ('phase_start', 'x'),
                                            ('queued', '1.5')])
def test_a_malformed_status_value_is_an_error_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        AcceleratorStatus.from_values({key: value})


def test_signal_crc_is_of_the_float32_bytes() -> None:
    sig = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert signal_crc(sig) == signal_crc(sig.astype(np.float32))
    assert re.fullmatch(r'[0-9a-f]{8}', signal_crc(sig))
    assert signal_crc(sig) != signal_crc(sig + 1)
