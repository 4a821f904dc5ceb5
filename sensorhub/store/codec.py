"""Binary chunks of the session store: raw IMU samples and spine angles, compact and exact.

Precision (what a round trip through the store keeps):

- sample and frame times ``t``: float64, bit-exact;
- accelerometer (m/s²) and gyroscope (rad/s): **float32**, i.e. 24 significant bits — a relative
  error ≤ 6·10⁻⁸, at most 1·10⁻⁵ m/s² at 16 g and 2·10⁻⁶ rad/s at 2000 °/s, far below what any
  16-bit MEMS IMU resolves (one LSB is 4.8·10⁻³ m/s² at ±16 g and 1.1·10⁻³ rad/s at ±2000 °/s);
- device sample counters: int64, exact;
- angles (degrees) and movement: float64, bit-exact;
- posture labels: exact strings, run-length encoded.

:func:`stored_precision` gives a batch exactly as the store will give it back, so the live path
can feed the pipeline what a replay will feed it (then a replay with the same settings reproduces
the live angles bit for bit).

Blob layout (little-endian): a 12-byte header — magic (``SHI1`` raw, ``SHF1`` frames), a flags
byte (bit 0: device counters present, bit 1: zlib-compressed payload), three pad bytes, a uint32
sample count — then for raw chunks a uint32 batch count, then the payload: every array
byte-shuffled (byte 0 of all elements, then byte 1, ... as HDF5's shuffle filter and Blosc do,
which puts the slowly varying sign/exponent bytes together) and concatenated, zlib level 1 when it
saves at least 10 %. Raw payload: ``t`` (f8) · ``acc`` (f4, N×3) · ``gyro`` (f4, N×3) · the batch
table (u4 pairs: arrival index, sample count — the notifications as the recorder received them, so
a replay feeds the pipeline the same batches in the same order) · counters as int64 first
differences. Frame payload: ``t`` then each present field, all f8.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from sensorhub.errors import SinkError
from sensorhub.model import FloatArray, ImuBatch, IntArray, Placement

__all__ = [
    "ImuChunk",
    "decode_frames",
    "decode_imu",
    "decode_posture",
    "encode_frames",
    "encode_imu",
    "encode_posture",
    "stored_precision",
]

_RAW_MAGIC: Final = b"SHI1"
_FRAME_MAGIC: Final = b"SHF1"
_HEADER: Final = struct.Struct("<4sB3xI")
_RAW_EXTRA: Final = struct.Struct("<I")
_HAS_SEQ: Final = 1
_ZLIB: Final = 2
_MIN_SAVING: Final = 0.9  # keep the compressed payload only when it is ≤ 90 % of the plain one

F32 = NDArray[np.float32]
U32 = NDArray[np.uint32]


def stored_precision(batch: ImuBatch) -> ImuBatch:
    """``batch`` with acc and gyro rounded to float32, as the store keeps them (times, seq exact)."""
    return ImuBatch(
        batch.sensor_id,
        batch.placement,
        batch.t,
        batch.acc.astype(np.float32).astype(np.float64),
        batch.gyro.astype(np.float32).astype(np.float64),
        batch.seq,
    )


@dataclass(frozen=True, slots=True)
class ImuChunk:
    """One stored chunk of one sensor's raw samples.

    Attributes:
        sensor_id: the physical sensor.
        placement: where it sat.
        t: (N,) float64 seconds, session clock.
        acc: (N, 3) float32 m/s².
        gyro: (N, 3) float32 rad/s.
        seq: (N,) device counters or None.
        batches: (B, 2) uint32: arrival index of each received batch and its sample count.
    """

    sensor_id: str
    placement: Placement
    t: FloatArray
    acc: F32
    gyro: F32
    seq: IntArray | None
    batches: U32

    def __len__(self) -> int:
        return len(self.t)

    def split(self) -> Iterator[tuple[int, ImuBatch]]:
        """The batches as received: (arrival index, ImuBatch with float64 acc/gyro)."""
        acc = self.acc.astype(np.float64)
        gyro = self.gyro.astype(np.float64)
        start = 0
        for index, count in self.batches.tolist():
            end = start + count
            seq = None if self.seq is None else self.seq[start:end]
            yield (
                index,
                ImuBatch(self.sensor_id, self.placement, self.t[start:end], acc[start:end], gyro[start:end], seq),
            )
            start = end


def _shuffle(arr: NDArray[np.generic]) -> bytes:
    data = np.ascontiguousarray(arr).view(np.uint8)
    size = arr.dtype.itemsize
    return data.reshape(-1, size).T.tobytes()


def _unshuffle(buf: memoryview, dtype: np.dtype[np.generic], count: int) -> NDArray[np.generic]:
    size = dtype.itemsize
    raw = np.frombuffer(buf, dtype=np.uint8, count=count * size).reshape(size, count)
    return np.ascontiguousarray(raw.T).view(dtype).reshape(count)


def _pack(arrays: Sequence[NDArray[np.generic]]) -> tuple[bytes, bool]:
    plain = b"".join(_shuffle(a) for a in arrays)
    packed = zlib.compress(plain, 1)
    if len(packed) <= _MIN_SAVING * len(plain):
        return packed, True
    return plain, False


class _Reader:
    def __init__(self, payload: bytes) -> None:
        self._buf = memoryview(payload)
        self._pos = 0

    def take(self, dtype: type[np.generic], count: int) -> NDArray[np.generic]:
        dt = np.dtype(dtype)
        end = self._pos + count * dt.itemsize
        if end > len(self._buf):
            raise ValueError("chunk payload too short")
        out = _unshuffle(self._buf[self._pos : end], dt, count)
        self._pos = end
        return out


def encode_imu(batches: Sequence[tuple[int, ImuBatch]]) -> tuple[bytes, int, float, float]:
    """Encode one sensor's consecutive batches (with their arrival indexes).

    Returns:
        (blob, sample count, first t, last t).
    """
    parts = [b for _, b in batches if len(b)]
    t = np.concatenate([b.t for b in parts])
    acc = np.concatenate([b.acc for b in parts]).astype(np.float32)
    gyro = np.concatenate([b.gyro for b in parts]).astype(np.float32)
    table = np.array([(i, len(b)) for i, b in batches if len(b)], dtype=np.uint32).reshape(-1, 2)
    arrays: list[NDArray[np.generic]] = [t, acc.reshape(-1), gyro.reshape(-1), table.reshape(-1)]
    flags = 0
    seqs = [b.seq for b in parts]
    if all(s is not None for s in seqs):
        seq = np.concatenate([s for s in seqs if s is not None])
        arrays.append(np.diff(seq, prepend=np.int64(0)))
        flags |= _HAS_SEQ
    payload, packed = _pack(arrays)
    if packed:
        flags |= _ZLIB
    header = _HEADER.pack(_RAW_MAGIC, flags, len(t)) + _RAW_EXTRA.pack(len(table))
    return header + payload, len(t), float(t[0]), float(t[-1])


def decode_imu(blob: bytes, sensor_id: str, placement: Placement) -> ImuChunk:
    """Inverse of :func:`encode_imu`.

    Raises:
        SinkError: the blob is not a raw chunk this version can read.
    """
    try:
        magic, flags, n = _HEADER.unpack_from(blob)
        (nb,) = _RAW_EXTRA.unpack_from(blob, _HEADER.size)
        if magic != _RAW_MAGIC:
            raise ValueError(f"bad magic {magic!r}")
        payload = blob[_HEADER.size + _RAW_EXTRA.size :]
        if flags & _ZLIB:
            payload = zlib.decompress(payload)
        r = _Reader(payload)
        t = r.take(np.float64, n).astype(np.float64, copy=False)
        acc = r.take(np.float32, 3 * n).astype(np.float32, copy=False).reshape(n, 3)
        gyro = r.take(np.float32, 3 * n).astype(np.float32, copy=False).reshape(n, 3)
        table = r.take(np.uint32, 2 * nb).astype(np.uint32, copy=False).reshape(nb, 2)
        seq = np.cumsum(r.take(np.int64, n)).astype(np.int64) if flags & _HAS_SEQ else None
    except (struct.error, ValueError, zlib.error) as exc:
        raise SinkError(f"a stored IMU chunk cannot be read: {exc}", advice="the database may be damaged") from exc
    return ImuChunk(sensor_id, placement, t, acc, gyro, seq, table)


def encode_frames(t: FloatArray, columns: Sequence[FloatArray]) -> bytes:
    """Encode a block of frames: ``t`` and the present fields' columns, all float64."""
    payload, packed = _pack([np.asarray(t, dtype=np.float64), *(np.asarray(c, dtype=np.float64) for c in columns)])
    return _HEADER.pack(_FRAME_MAGIC, _ZLIB if packed else 0, len(t)) + payload


def decode_frames(blob: bytes, n_fields: int) -> tuple[FloatArray, list[FloatArray]]:
    """Inverse of :func:`encode_frames`: (t, columns).

    Raises:
        SinkError: the blob is not a frame chunk this version can read.
    """
    try:
        magic, flags, n = _HEADER.unpack_from(blob)
        if magic != _FRAME_MAGIC:
            raise ValueError(f"bad magic {magic!r}")
        payload = blob[_HEADER.size :]
        if flags & _ZLIB:
            payload = zlib.decompress(payload)
        r = _Reader(payload)
        t = r.take(np.float64, n).astype(np.float64, copy=False)
        columns = [r.take(np.float64, n).astype(np.float64, copy=False) for _ in range(n_fields)]
    except (struct.error, ValueError, zlib.error) as exc:
        raise SinkError(f"a stored frame chunk cannot be read: {exc}", advice="the database may be damaged") from exc
    return t, columns


def encode_posture(labels: Sequence[str]) -> str:
    """Run-length JSON of posture labels: ``[["upright", 120], ["slouched", 30]]``."""
    runs: list[list[str | int]] = []
    last: str | None = None
    for label in labels:
        if label == last:
            runs[-1][1] = int(runs[-1][1]) + 1
        else:
            runs.append([label, 1])
            last = label
    return json.dumps(runs, separators=(",", ":"))


def decode_posture(text: str) -> list[str]:
    """Inverse of :func:`encode_posture`."""
    out: list[str] = []
    for label, count in json.loads(text):
        out.extend([str(label)] * int(count))
    return out
