"""ED-Scorbot UDP: DSR conversion, datagrams captured by a fake FPGA on 127.0.0.1, feedback."""

from __future__ import annotations

import csv
import json
import socket
import struct

import numpy as np
import pytest

from l2l_nmhw_ros.arm import scorbot_udp as U
from l2l_nmhw_ros.errors import ShapeError


def test_dsr_factors_by_hand():
    # 10 deg on every joint -> 10 x factor
    q = np.radians([10.0, 10.0, 10.0, 10.0])
    np.testing.assert_allclose(U.radians_to_dsr(q),
                               [30.50640635, 95.32888465, 32.20611916, 176.6784452], rtol=1e-12)
    np.testing.assert_allclose(U.dsr_to_radians(U.radians_to_dsr(q)), q, rtol=1e-12)


def test_counts_by_hand():
    # (32768 - count) / k: 32768 - 1255 = 31513 -> 10 deg on joint 1; joint 4: 80.7004 per deg
    np.testing.assert_allclose(np.degrees(U.counts_to_radians([31513, 32768 + 1310, 32768,
                                                               32768 - 807.004])),
                               [10.0, -10.0, 0.0, 10.0], atol=1e-12)
    q = np.radians([12.3, -45.6, 78.9, -10.1])
    # one count is at most 1/80.7 deg; rounding to the nearest count halves that
    np.testing.assert_allclose(U.counts_to_radians(U.radians_to_counts(q)), q,
                               atol=np.radians(0.5 / 80.7004) + 1e-15)


def test_reference_datagram_is_four_little_endian_float32():
    data = U.encode_reference(np.radians([1.0, 2.0, 3.0, 4.0]))
    assert len(data) == 16
    vals = struct.unpack('<4f', data)
    np.testing.assert_allclose(vals, [3.050640635, 2 * 9.532888465, 3 * 3.220611916,
                                      4 * 17.66784452], rtol=1e-7)  # float32 precision
    with pytest.raises(ValueError, match='finite'):
        U.encode_reference([np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ShapeError):
        U.encode_reference([0.0, 0.0])


def test_feedback_decoder_accepts_16_or_24_bytes_only():
    q = U.decode_feedback(struct.pack('<4i', 31513, 32768, 32768, 32768))
    np.testing.assert_allclose(np.degrees(q), [10.0, 0.0, 0.0, 0.0], atol=1e-12)
    q6 = U.decode_feedback(struct.pack('<6i', 31513, 32768, 32768, 32768, 1, 2))
    np.testing.assert_array_equal(q6, q)
    for n in (0, 8, 20, 32):
        with pytest.raises(ValueError, match='feedback datagram'):
            U.decode_feedback(b'\0' * n)


def test_fake_fpga_captures_datagrams_that_decode_to_the_dsr_values():
    fpga = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fpga.bind(('127.0.0.1', 0))
    fpga.settimeout(5.0)
    host, port = fpga.getsockname()
    q = np.array([0.1, -0.2, 0.3, -0.4])
    with U.ScorbotUDP(host, port, feedback_port=0, feedback_host='127.0.0.1') as link:
        link.send(q)
        data, sender = fpga.recvfrom(64)
        np.testing.assert_allclose(U.decode_reference(data), U.radians_to_dsr(q), rtol=1e-6)
        # the fake FPGA answers with encoder counts, plus one malformed datagram
        assert link.poll() is None
        fb = link.feedback_address
        fpga.sendto(b'bad', fb)
        fpga.sendto(U.encode_feedback(U.radians_to_counts(q)), fb)
        got = None
        for _ in range(1000):  # bounded retries: loopback delivery is asynchronous
            got = link.poll()
            if got is not None:
                break
        assert got is not None
        np.testing.assert_allclose(got, q, atol=np.radians(0.5 / 80.7004) + 1e-15)
        assert link.n_bad_feedback == 1
        assert link.n_sent == 1
    fpga.close()


def test_recorded_counts_and_dsr_agree_with_the_recorded_trajectory(shared_data):
    # sign convention check on real data: SR row k = trajectory point k + 1 x DSR factor
    # (rounded to integers), and the first encoder sample = trajectory point 0 within the
    # arm's settling error
    root = shared_data / 'ed_scorbot'
    name = 'square_x_13_6.67_4'
    traj = np.radians(np.array(json.loads((root / 'trajectories' / name /
                                           'joints_degrees.json').read_text()))[:, :4])
    with open(root / 'measured' / name / 'SR_1.000.csv') as f:
        sr = np.array([[float(r[f'm{j}']) for j in range(1, 5)] for r in csv.DictReader(f)])
    with open(root / 'measured' / name / 'COUNT_1.000.csv') as f:
        counts = np.array([[int(r[f'm{j}']) for j in range(1, 5)] for r in csv.DictReader(f)])
    n = min(len(sr), len(traj) - 1)
    dsr = np.rint(np.degrees(traj[1:n + 1]) * U.DSR_PER_DEGREE)
    np.testing.assert_allclose(sr[:n], dsr, atol=1.0)
    np.testing.assert_allclose(U.counts_to_radians(counts[0]), traj[0], atol=np.radians(0.5))
