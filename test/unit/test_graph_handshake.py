"""The controller's hand-over of a learning signal: the state machine alone (no rclpy)."""

from __future__ import annotations

import pytest

from l2l_nmhw_ros.reach.handshake import (HandshakeAction as A, HandshakeState as S,
                                        HandshakeUpdate as U, SignalHandshake, Window)
from l2l_nmhw_ros.reach.reports import AcceleratorStatus

CRC = '0badf00d'
RETRY, TIMEOUT = 2.0, 120.0


def status(phase: str = 'computed', episode: int = 7, crc: str = CRC, event: str = 'computed',
           **kw) -> AcceleratorStatus:
    return AcceleratorStatus(phase=phase, episode=episode, learning_signal_crc32=crc,
                             event=event, **kw)


def window(phase: str, start: float, episode: int = 7) -> AcceleratorStatus:
    return status(phase, episode, event='start', phase_start=start, phase_duration=2.0,
                  phase_hold=0.5, time_scale=4.0)


def sent() -> SignalHandshake:
    hs = SignalHandshake(CRC, 100.0, retry_s=RETRY, timeout_s=TIMEOUT)
    assert hs.poll(100.0, subscribers=1) is A.SEND
    return hs


def test_first_send_waits_for_a_subscriber() -> None:
    hs = SignalHandshake(CRC, 0.0, retry_s=RETRY, timeout_s=TIMEOUT)
    assert hs.poll(0.0, subscribers=0) is A.WAIT  # once (the caller logs it) ...
    assert hs.poll(0.5, subscribers=0) is A.NONE  # ... then quietly
    assert hs.sends == 0
    assert hs.poll(1.0, subscribers=1) is A.SEND
    assert (hs.sends, hs.sent_at, hs.state) == (1, 1.0, S.DELIVERING)


def test_acknowledged_by_the_start_of_an_episode_with_its_crc() -> None:
    hs = sent()
    assert hs.on_status(status(crc='12345678')) is U.IGNORED  # another signal
    assert hs.on_status(status()) is U.ACKNOWLEDGED
    assert hs.state is S.RUNNING and hs.accelerator_episode == 7 and hs.acknowledged
    assert hs.poll(100.0 + 10 * RETRY, subscribers=1) is A.NONE  # no re-sends any more
    assert hs.sends == 1
    # the episode's executions give their windows, its done ends it
    assert hs.on_status(status('home', event='start')) is U.PROGRESS
    assert hs.on_status(window('baseline', 110.0)) is U.WINDOW
    assert hs.on_status(window('adapted', 120.0)) is U.WINDOW
    assert hs.windows['adapted'] == Window(120.0, 2.0, 0.5, 4.0)
    assert hs.windows['adapted'].end == 122.5
    assert hs.on_status(status('done', event='end')) is U.DONE
    assert hs.state is S.DONE
    assert hs.on_status(status('done', event='periodic')) is U.IGNORED
    assert hs.last_status.phase == 'done'


def test_the_home_phase_acknowledges_too() -> None:
    hs = sent()
    assert hs.on_status(status('home', 3, event='start')) is U.ACKNOWLEDGED
    assert hs.accelerator_episode == 3


def test_a_lost_signal_is_sent_again_after_the_retry_period() -> None:
    hs = sent()
    assert hs.poll(100.0 + 0.5 * RETRY, subscribers=1) is A.NONE  # re-send not needed yet
    assert hs.poll(100.0 + RETRY - 1e-6, subscribers=1) is A.NONE
    assert hs.poll(100.0 + RETRY, subscribers=1) is A.RESEND
    assert hs.sends == 2
    assert hs.poll(100.0 + 1.5 * RETRY, subscribers=1) is A.NONE  # the period restarts
    assert hs.poll(100.0 + 2 * RETRY, subscribers=1) is A.RESEND
    assert hs.poll(100.0 + 3 * RETRY, subscribers=0) is A.NONE  # nobody listens: no send
    assert hs.sends == 3
    assert hs.on_status(status()) is U.ACKNOWLEDGED


def test_stale_statuses_of_an_earlier_episode_with_the_same_signal_never_acknowledge() -> None:
    hs = sent()
    for phase in ('adapted', 'return_adapted', 'done'):
        assert hs.on_status(status(phase, 6, event='periodic')) is U.IGNORED
    assert hs.state is S.DELIVERING and not hs.acknowledged
    assert hs.on_status(status('computed', 7)) is U.ACKNOWLEDGED
    # after the acknowledgement, the earlier episode's statuses still do nothing
    assert hs.on_status(status('done', 6, event='periodic')) is U.IGNORED
    assert hs.on_status(window('adapted', 5.0, episode=6)) is U.IGNORED
    assert hs.state is S.RUNNING and hs.windows == {}


def test_a_queued_signal_is_not_sent_again_until_it_leaves_the_queue() -> None:
    hs = sent()
    other = status(crc='12345678', event='queued', queued=2, queued_crc32=f'aaaaaaaa,{CRC}')
    assert hs.on_status(other) is U.QUEUED
    assert hs.state is S.QUEUED
    assert hs.poll(100.0 + 5 * RETRY, subscribers=1) is A.NONE
    assert hs.on_status(other) is U.IGNORED  # still queued: nothing new
    # a status without the key says nothing about the queue
    assert hs.on_status(status(crc='12345678', event='periodic')) is U.IGNORED
    assert hs.state is S.QUEUED
    # dropped (queue overflow, reset): re-sends resume at once (the last send is long ago)
    assert hs.on_status(status(crc='12345678', event='reset', queued_crc32='')) is U.IGNORED
    assert hs.state is S.DELIVERING
    assert hs.poll(100.0 + 5 * RETRY, subscribers=1) is A.RESEND
    # queued again, then started
    hs.on_status(other)
    assert hs.on_status(status(queued_crc32='')) is U.ACKNOWLEDGED


def test_timeout_before_and_after_the_acknowledgement() -> None:
    hs = sent()
    assert hs.poll(100.0 + TIMEOUT, subscribers=1) is not A.TIMEOUT  # at the deadline: not yet
    assert hs.poll(100.0 + TIMEOUT + 0.1, subscribers=1) is A.TIMEOUT
    assert hs.state is S.TIMED_OUT
    assert 'never acknowledged' in hs.timeout_reason() and 'sent' in hs.timeout_reason()
    assert hs.poll(1e9, subscribers=1) is A.NONE
    assert hs.on_status(status()) is U.IGNORED
    hs = sent()
    hs.on_status(status())
    assert hs.poll(100.0 + TIMEOUT + 1.0, subscribers=1) is A.TIMEOUT
    assert hs.timeout_reason() == 'accelerator episode 7 did not reach phase done'


def test_an_execution_start_without_timing_is_an_error() -> None:
    hs = sent()
    hs.on_status(status())
    with pytest.raises(ValueError, match='timing'):
        hs.on_status(status('adapted', event='start', phase_start=1.0))
    assert hs.state is S.RUNNING and 'adapted' not in hs.windows


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError, match='retry_s'):
        SignalHandshake(CRC, 0.0, retry_s=0.0, timeout_s=1.0)
