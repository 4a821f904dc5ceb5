"""Movesense GATT SensorData Protocol (GSP): ``/Meas/IMU6`` (and IMU9, Acc, Gyro) subscriptions.

Protocol facts and where they come from. ``gsp/`` below is the Movesense device library sample
``samples/gatt_sensordata_app/`` (movesense-device-lib 2.3, mirrored at
github.com/alexisduque/movesense-device-lib), ``api/`` is
``MovesenseCoreLib/resources/movesense-api/meas/`` of the same library, and ``doc`` is the
Movesense document "GATT SensorData Protocol specification" (movesense.com/docs/esw/
gatt_sensordata_protocol, revised from Movesense Ltd. GD-77 v1.0).

* Service 34802252-7185-4d5d-b431-630e7050e8f0; commands are written to 34800001-… (write),
  responses and data come as notifications of 34800002-… (``gsp/GATTSensorDataClient.cpp``:
  ``SENSOR_DATASERVICE_UUID``, ``COMMAND_CHAR_UUID``, ``DATA_CHAR_UUID``; doc, "GATT Layer").
* Commands: ``<command> <client reference, not zero> <data>``; HELLO = 0, SUBSCRIBE = 1 with the
  resource path as ASCII (e.g. ``/Meas/IMU6/52``), UNSUBSCRIBE = 2 with the reference of the
  subscription (``gsp/GATTSensorDataClient.cpp``: ``enum Commands``, ``handleIncomingCommand``).
* Notifications: ``<response type> <client reference> <data>``; COMMAND_RESULT = 1, DATA = 2,
  DATA_PART2 = 3 (``enum Responses``). HELLO is answered ``01 <ref> "Hello"``; a SUBSCRIBE with
  no free slot ``01 <ref> 01 fb`` (507 as two bytes, most significant first).
* A DATA notification carries the SBEM-serialised resource value; when it is longer than 150
  bytes, the first 150 go in DATA and the rest in a DATA_PART2 notification with the same
  reference (``onNotify``: ``firstPartLen = (length>150) ? 150 : length``, fixed in 2.2.1
  "Live-streams missing DATA_PART2", ``CHANGES.md``). The sample client joins them by appending
  DATA_PART2's bytes after its two header bytes (``gsp/python_client/movesense_sensor_data.py``).
* IMU6 value: ``Timestamp`` uint32 ms, "local timestamp of first measurement", then
  ``ArrayAcc`` (N × float32 x y z, m/s²), then ``ArrayGyro`` (N × x y z, °/s); IMU9 adds
  ``ArrayMagn``; Acc and Gyro carry one array (``api/imu.yaml`` IMU6Data/IMU9Data,
  ``api/acc.yaml``, ``api/gyro.yaml``). Arrays have no length prefix: sample i of the acc array is
  at 6 + 12 i in the notification and the gyro array starts 12 N later; multi-byte fields are
  little-endian (``movesense_sensor_data.py``: ``get_uint_32(2)``, ``offset = 6 + i*3*4``,
  ``skip = 3*8*4``, ``struct.unpack('<f', …)``).
* Per-sample time: the timestamp belongs to the first sample; sample i is ``i / rate`` later
  (``api/imu.yaml``; the sample client: ``row_timestamp = timestamp + int(i*1000/104)``).

Choices of this decoder:

* N is read from the length: (bytes − 4) / (12 × arrays). A DATA body of exactly 150 bytes that
  is not a whole number of samples waits for its DATA_PART2 (146 is no multiple of 12, 24 or 36,
  so every split packet is recognised); a DATA_PART2 with nothing waiting, or with another
  reference, is refused; a new DATA drops a waiting first part (counted in
  ``stats.bytes_skipped``).
* ``sensor_time_s`` = timestamp / 1000 + i / rate_hz, on the sensor's own millisecond clock
  (it wraps after 2³² ms ≈ 49.7 days; the clock mapper unwraps). ``seq`` is None: GSP has no
  counter, gaps show in the timestamps.
* A non-finite float (NaN or ±inf bit pattern) makes the whole payload a DecodeError.

Settings (``[decoder]`` table, ``--set``):
    rate_hz: the subscribed rate (Hz), used when ``path`` is not given.
    path: the subscribed resource, e.g. ``/Meas/IMU6/52`` (default ``/Meas/IMU6/<rate_hz>``);
        its rate wins over ``rate_hz``.
    reference: the client reference byte of the subscription, 1–255 (default 99, as the sample).
    acc_range_g, gyro_range_dps: informational (values arrive in SI units already).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from typing import ClassVar, Final

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = ["DECODER", "MovesenseDecoder"]

COMMAND_RESULT: Final = 0x01
DATA: Final = 0x02
DATA_PART2: Final = 0x03
#: gsp/GATTSensorDataClient.cpp onNotify: the first notification carries at most 150 value bytes.
FIRST_PART_LEN: Final = 150
TIMESTAMP_LEN: Final = 4
VECTOR_LEN: Final = 12  # FloatVector3D: 3 × float32
DEFAULT_REFERENCE: Final = 99  # movesense_sensor_data.py subscribes with bytearray([1, 99])
#: Arrays in each resource's value, in order (api/imu.yaml, acc.yaml, gyro.yaml).
ARRAYS: Final[Mapping[str, tuple[str, ...]]] = {
    "IMU6": ("acc", "gyro"),
    "IMU9": ("acc", "gyro", "magn"),
    "Acc": ("acc",),
    "Gyro": ("gyro",),
}
_PATH_RE: Final = re.compile(r"^/Meas/(IMU6|IMU9|Acc|Gyro)/([1-9][0-9]*)$")
_KNOWN_SETTINGS: Final = frozenset({"rate_hz", "path", "reference", "acc_range_g", "gyro_range_dps"})


def _setting_error(key: str, message: str) -> ProfileError:
    return ProfileError(message, key=f"decoder.{key}")


def _positive_number(settings: Mapping[str, SettingValue], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _setting_error(key, f"must be a positive number, got {value!r}")
    return float(value)


class MovesenseDecoder(Decoder):
    """Decoder of one GSP subscription (see the module docstring)."""

    family: ClassVar[str] = "movesense"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        for key in self.settings:
            if key not in _KNOWN_SETTINGS:
                raise _setting_error(key, f"unknown setting; known: {', '.join(sorted(_KNOWN_SETTINGS))}")
        rate_hz = _positive_number(self.settings, "rate_hz", 52.0)
        _positive_number(self.settings, "acc_range_g", 16)
        _positive_number(self.settings, "gyro_range_dps", 2000)
        reference = self.settings.get("reference", DEFAULT_REFERENCE)
        if isinstance(reference, bool) or not isinstance(reference, int) or not 1 <= reference <= 255:
            # The client reference is one byte and must not be zero (GATTSensorDataClient.cpp).
            raise _setting_error("reference", f"must be an integer 1-255, got {reference!r}")
        self.reference: int = reference
        path = self.settings.get("path")
        if path is None:
            path = f"/Meas/IMU6/{rate_hz:g}"
        match = _PATH_RE.match(path) if isinstance(path, str) else None
        if match is None:
            raise _setting_error("path", f"must be /Meas/<IMU6|IMU9|Acc|Gyro>/<rate>, got {path!r}")
        self.path: str = str(path)
        self.arrays: tuple[str, ...] = ARRAYS[match.group(1)]
        self.rate_hz: float = float(match.group(2))
        self._sample_len = VECTOR_LEN * len(self.arrays)
        self._pending: bytes | None = None

    def reset(self) -> None:
        self._pending = None

    def _error(self, message: str, payload: bytes) -> DecodeError:
        return DecodeError(message, profile=self.profile, payload=payload)

    def _decode(self, payload: bytes) -> list[Decoded]:
        if len(payload) < 2:
            raise self._error(f"{len(payload)} bytes; a GSP notification has at least 2", payload)
        kind, reference, body = payload[0], payload[1], payload[2:]
        if kind == COMMAND_RESULT:
            return [self._command_result(reference, body, payload)]
        if kind == DATA:
            return self._data(reference, body, payload)
        if kind == DATA_PART2:
            return self._part2(reference, body, payload)
        raise self._error(f"unknown response type 0x{kind:02x} (1 result, 2 data, 3 data part 2)", payload)

    def _command_result(self, reference: int, body: bytes, payload: bytes) -> DeviceInfo:
        if body == b"Hello":
            return DeviceInfo("hello", {"reference": reference})
        if len(body) == 2:
            # Most significant byte first: 507 is sent as 01 fb (handleIncomingCommand).
            return DeviceInfo("command_result", {"reference": reference, "status": int.from_bytes(body, "big")})
        raise self._error(f"command result of {len(body)} bytes (expected 'Hello' or a 2-byte status)", payload)

    def _data(self, reference: int, body: bytes, payload: bytes) -> list[Decoded]:
        if self._pending is not None:
            # The DATA_PART2 of the waiting first part was lost: its samples cannot be rebuilt.
            self.stats.bytes_skipped += len(self._pending)
            self._pending = None
        if reference != self.reference:
            raise self._error(f"reference {reference} is not the subscription's ({self.reference})", payload)
        if len(body) > FIRST_PART_LEN:
            raise self._error(f"{len(body)} data bytes; the firmware sends at most {FIRST_PART_LEN}", payload)
        if len(body) == FIRST_PART_LEN and (len(body) - TIMESTAMP_LEN) % self._sample_len:
            self._pending = body
            return []
        return self._samples(body, payload)

    def _part2(self, reference: int, body: bytes, payload: bytes) -> list[Decoded]:
        first, self._pending = self._pending, None
        if first is None:
            raise self._error("DATA_PART2 without a first part waiting (out of order or lost)", payload)
        if reference != self.reference:
            self.stats.bytes_skipped += len(first)
            raise self._error(f"DATA_PART2 reference {reference} is not the subscription's ({self.reference})", payload)
        return self._samples(first + body, payload)

    def _samples(self, value: bytes, payload: bytes) -> list[Decoded]:
        count, rest = divmod(len(value) - TIMESTAMP_LEN, self._sample_len)
        if count < 1 or rest:
            raise self._error(
                f"{len(value)} value bytes is not a 4-byte timestamp and whole {self.path} samples "
                f"({self._sample_len} bytes each)",
                payload,
            )
        (timestamp_ms,) = struct.unpack_from("<I", value)
        floats = struct.unpack_from(f"<{count * 3 * len(self.arrays)}f", value, TIMESTAMP_LEN)
        if not all(math.isfinite(x) for x in floats):
            raise self._error("a float is NaN or infinite", payload)
        arrays = {name: floats[k * 3 * count : (k + 1) * 3 * count] for k, name in enumerate(self.arrays)}
        acc = arrays.get("acc")
        gyro = arrays.get("gyro")
        out: list[Decoded] = []
        for i in range(count):
            out.append(
                ImuSample(
                    sensor_time_s=timestamp_ms / 1000.0 + i / self.rate_hz,
                    seq=None,
                    acc_mps2=None if acc is None else (acc[3 * i], acc[3 * i + 1], acc[3 * i + 2]),
                    gyro_radps=None
                    if gyro is None
                    else (gyro[3 * i] * DEG_TO_RAD, gyro[3 * i + 1] * DEG_TO_RAD, gyro[3 * i + 2] * DEG_TO_RAD),
                )
            )
        return out


DECODER: type[Decoder] = MovesenseDecoder
