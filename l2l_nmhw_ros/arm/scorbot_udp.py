"""ED-Scorbot FPGA interface over UDP: digital spike references out, encoder counts in (ROS-free).

Facts (RTC-research-group/ED-Scorbot, via ``shared/data/README.md``):

- Joint references go to the FPGA as ONE UDP datagram of four float32 values, native
  little-endian, joints 1..4, in DSR units (digital spike reference), on UDP port 25000:
  ``dsr_j = degrees(q_j) * DSR_PER_DEGREE[j]``.
- Encoder counts convert to degrees as ``(32768 - count) / COUNTS_PER_DEGREE[j]``.

The recorded trajectories agree with this: their DSR log equals degrees x factor, and their encoder
counts give back the commanded degrees with the same sign (``docs/arm.md``).

Feedback datagram (our own format; the repository does not document the FPGA's): the FPGA (or a
bridge) sends the encoder counts to the driver's ``feedback_port`` as **4 or 6 little-endian
int32** (m1..m4 [, m5, m6], 16 or 24 bytes, the columns of the recorded ``COUNT_*.csv``); only
m1..m4 are used. Any other length is rejected. :func:`decode_feedback` is the whole decoder.
"""

from __future__ import annotations

import socket
import struct

import numpy as np
import numpy.typing as npt

from l2l_nmhw_ros.errors import ShapeError

#: degrees -> DSR factor, joints 1..4 (ED-Scorbot repository).
DSR_PER_DEGREE = (3.050640635, 9.532888465, 3.220611916, 17.66784452)
#: encoder counts per degree, joints 1..4 (joint 4: 1 / 0.012391573729863692 deg per count).
COUNTS_PER_DEGREE = (125.5, 131.0, 132.5, 80.7004)
#: encoder count at 0 deg.
COUNT_ZERO = 32768
#: wire format of the reference datagram: 4 x float32, little-endian.
REFERENCE_FORMAT = '<4f'
#: wire format of one feedback count: int32, little-endian; 4 or 6 of them per datagram.
FEEDBACK_COUNT_FORMAT = '<i'
FEEDBACK_LENGTHS = (16, 24)
N_JOINTS = 4


def _q4(q: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    a = np.asarray(q, dtype=np.float64)
    if a.shape != (N_JOINTS,):
        raise ShapeError(f'{name}: expected shape ({N_JOINTS},), got {a.shape}')
    if not np.all(np.isfinite(a)):
        raise ValueError(f'{name}: must be finite, got {a}')
    return a


def radians_to_dsr(q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert joint positions [rad], shape (4,), to DSR units: degrees x DSR_PER_DEGREE.

    Raises:
        ShapeError: ``q`` is not shape (4,).
        ValueError: non-finite values.
    """
    return np.degrees(_q4(q, 'q')) * np.array(DSR_PER_DEGREE)


def dsr_to_radians(dsr: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of :func:`radians_to_dsr`: DSR units, shape (4,) -> joint positions [rad]."""
    return np.radians(_q4(dsr, 'dsr') / np.array(DSR_PER_DEGREE))


def encode_reference(q: npt.ArrayLike) -> bytes:
    """Return the 16-byte reference datagram for joint positions ``q`` [rad], shape (4,)."""
    return struct.pack(REFERENCE_FORMAT, *radians_to_dsr(q).tolist())


def decode_reference(data: bytes) -> npt.NDArray[np.float64]:
    """Return the four DSR values (float32 precision) of a reference datagram.

    Raises:
        ValueError: the datagram is not 16 bytes.
    """
    if len(data) != struct.calcsize(REFERENCE_FORMAT):
        raise ValueError(f'reference datagram: expected 16 bytes, got {len(data)}')
    return np.array(struct.unpack(REFERENCE_FORMAT, data), dtype=np.float64)


def counts_to_radians(counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Encoder counts of joints 1..4, shape (..., 4), -> joint positions [rad].

    q = radians((32768 - count) / COUNTS_PER_DEGREE).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim == 0 or c.shape[-1] != N_JOINTS:
        raise ShapeError(f'counts: expected shape (..., {N_JOINTS}), got {c.shape}')
    return np.radians((COUNT_ZERO - c) / np.array(COUNTS_PER_DEGREE))


def radians_to_counts(q: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Joint positions [rad], shape (..., 4) -> nearest encoder counts (for fakes and tests)."""
    a = np.asarray(q, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != N_JOINTS:
        raise ShapeError(f'q: expected shape (..., {N_JOINTS}), got {a.shape}')
    return np.rint(COUNT_ZERO - np.degrees(a) * np.array(COUNTS_PER_DEGREE)).astype(np.int64)


def encode_feedback(counts: npt.ArrayLike) -> bytes:
    """Return a feedback datagram (4 or 6 little-endian int32) for ``counts`` (for fakes)."""
    c = [int(x) for x in np.asarray(counts).reshape(-1)]
    if len(c) * 4 not in FEEDBACK_LENGTHS:
        raise ShapeError(f'counts: expected 4 or 6 values, got {len(c)}')
    return struct.pack(f'<{len(c)}i', *c)


def decode_feedback(data: bytes) -> npt.NDArray[np.float64]:
    """Decode a feedback datagram into joint positions [rad], shape (4,).

    Raises:
        ValueError: the length is not 16 or 24 bytes.
    """
    if len(data) not in FEEDBACK_LENGTHS:
        raise ValueError(f'feedback datagram: expected {FEEDBACK_LENGTHS} bytes, got {len(data)}')
    return counts_to_radians(struct.unpack_from('<4i', data))


class ScorbotUDP:
    """Non-blocking UDP link to the ED-Scorbot FPGA.

    Args:
        host: FPGA address (references are sent there).
        port: FPGA UDP port for references (25000 on the real arm).
        feedback_port: local UDP port for encoder feedback; None = no feedback; 0 = ephemeral
            (tests).
        feedback_host: local address to bind the feedback socket to.

    Raises:
        OSError: a socket cannot be created or bound.
    """

    def __init__(self, host: str, port: int, *, feedback_port: int | None = None,
                 feedback_host: str = '0.0.0.0') -> None:
        self.address = (host, int(port))
        self._tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rx: socket.socket | None = None
        if feedback_port is not None:
            self._rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._rx.bind((feedback_host, int(feedback_port)))
            self._rx.setblocking(False)
        self.n_sent = 0
        self.n_received = 0
        self.n_bad_feedback = 0

    @property
    def feedback_address(self) -> tuple[str, int] | None:
        """Bound (host, port) of the feedback socket, or None without feedback."""
        return None if self._rx is None else self._rx.getsockname()

    def send(self, q: npt.ArrayLike) -> bytes:
        """Send joint positions ``q`` [rad], shape (4,), as one reference datagram; return it."""
        data = encode_reference(q)
        self._tx.sendto(data, self.address)
        self.n_sent += 1
        return data

    def poll(self) -> npt.NDArray[np.float64] | None:
        """Drain the feedback socket; return the newest decoded position [rad] or None.

        Malformed datagrams are counted in ``n_bad_feedback`` and skipped.
        """
        if self._rx is None:
            return None
        newest = None
        while True:
            try:
                data = self._rx.recv(64)
            except (BlockingIOError, InterruptedError):
                return newest
            try:
                newest = decode_feedback(data)
                self.n_received += 1
            except ValueError:
                self.n_bad_feedback += 1

    def close(self) -> None:
        """Close both sockets (idempotent)."""
        self._tx.close()
        if self._rx is not None:
            self._rx.close()

    def __enter__(self) -> ScorbotUDP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
