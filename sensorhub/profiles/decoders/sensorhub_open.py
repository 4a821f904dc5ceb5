"""Decoder of the sensorhub open profile (DIY nRF52840 / ESP32 boards), ``firmware_profiles/sensorhub_open.md``.

Two packet types, told apart by their first byte (high nibble: protocol version 1, low nibble:
type), little-endian throughout:

* ``0x11`` IMU (data characteristic): a 10-byte header, then N = 1…19 samples of six int16::

      off size field
      0   1    0x11
      1   1    ranges: bits 0–3 acc code a (±(2 << a) g, a ≤ 4), bits 4–7 gyro code g (±(125 << g) °/s, g ≤ 5)
      2   2    seq: sample counter of the first sample, mod 2¹⁶ (counts samples *taken*)
      4   4    t0_us: device time of the first sample, µs, mod 2³²
      8   2    period_us: sample period, µs, ≥ 1
      10  12·N ax ay az gx gy gz, int16, value = raw · range / 32768

  Sample i has ``seq = (seq0 + i) mod 2¹⁶`` and ``sensor_time_s = ((t0_us + i·period_us) mod 2³²) / 10⁶``.
  Both are reported as the device sends them, *wrapping*; ``sensorhub.sources.timing.SampleTimer``
  unwraps them (``counter_bits=16``, ``time_wrap_s=TIME_WRAP_S``).
* ``0x12`` status (status characteristic, read or notified)::

      0   1    0x12
      1   1    battery percent 0–100, 0xFF = unknown
      2   2    battery voltage, mV, 0 = unknown
      4   1    flags: bit 0 streaming, bit 1 charging, bit 2 IMU error, bit 3 last command rejected;
               bits 4–7 reserved, sent as 0 and ignored

  It decodes to ``DeviceInfo("battery", {"percent", "millivolts", "streaming", "charging",
  "imu_error", "command_rejected"})``.

The decoder keeps no stream state: every packet is self-describing. Decoder settings: ``rate_hz``
only (the nominal rate; the packet's own ``period_us`` is what the sample times use).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import ClassVar, Final

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = [
    "COUNTER_BITS",
    "DECODER",
    "HEADER_SIZE",
    "IMU_HEADER",
    "MAX_SAMPLES",
    "SAMPLE_SIZE",
    "STATUS_HEADER",
    "TIME_WRAP_S",
    "SensorhubOpenDecoder",
]

IMU_HEADER: Final = 0x11
STATUS_HEADER: Final = 0x12
HEADER_SIZE: Final = 10
SAMPLE_SIZE: Final = 12
#: 19 samples = 238 bytes fill an ATT MTU of 247 (244-byte notifications), the largest MTU the
#: nRF52840 SoftDevice / ESP32 NimBLE data-length extension carries in one link-layer packet.
MAX_SAMPLES: Final = 19
STATUS_SIZE: Final = 5
#: Width of the packet's sample counter, and the period of its µs timestamp in seconds.
COUNTER_BITS: Final = 16
TIME_WRAP_S: Final = 2**32 / 1e6

_ACC_RANGES_G: Final = (2, 4, 8, 16, 32)
_GYRO_RANGES_DPS: Final = (125, 250, 500, 1000, 2000, 4000)
_HEADER: Final = struct.Struct("<BBHIH")
_STATUS: Final = struct.Struct("<BBHB")
_SETTINGS: Final = ("rate_hz",)


class SensorhubOpenDecoder(Decoder):
    """IMU and status packets of the sensorhub open profile (stateless; see the module docstring)."""

    family: ClassVar[str] = "sensorhub_open"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        for key in self.settings:
            if key not in _SETTINGS:
                raise ProfileError(
                    f"unknown decoder setting for family {self.family}",
                    key=f"decoder.{key}",
                    advice=f"allowed: {', '.join(_SETTINGS)}; the packets carry their own ranges and period",
                )
        rate = self.settings.get("rate_hz", 100.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (math.isfinite(rate) and rate > 0):
            raise ProfileError(f"rate_hz must be a positive number, got {rate!r}", key="decoder.rate_hz")
        self.rate_hz = float(rate)

    def _decode(self, payload: bytes) -> list[Decoded]:
        if not payload:
            raise DecodeError("empty payload", profile=self.profile, payload=payload)
        kind = payload[0]
        if kind == IMU_HEADER:
            return list(self._imu(payload))
        if kind == STATUS_HEADER:
            return [self._status(payload)]
        raise DecodeError(
            f"unknown packet header 0x{kind:02x} (expected 0x11 IMU or 0x12 status)",
            profile=self.profile,
            payload=payload,
        )

    def _imu(self, payload: bytes) -> list[ImuSample]:
        n, extra = divmod(len(payload) - HEADER_SIZE, SAMPLE_SIZE)
        if len(payload) < HEADER_SIZE + SAMPLE_SIZE or extra or n > MAX_SAMPLES:
            raise DecodeError(
                f"IMU packet of {len(payload)} bytes; expected {HEADER_SIZE} + 12·N with N = 1…{MAX_SAMPLES}",
                profile=self.profile,
                payload=payload,
            )
        _, ranges, seq0, t0_us, period_us = _HEADER.unpack_from(payload)
        acc_code, gyro_code = ranges & 0x0F, ranges >> 4
        if acc_code >= len(_ACC_RANGES_G) or gyro_code >= len(_GYRO_RANGES_DPS):
            raise DecodeError(
                f"bad range byte 0x{ranges:02x} (acc code ≤ 4, gyro code ≤ 5)", profile=self.profile, payload=payload
            )
        if period_us == 0:
            raise DecodeError("sample period of 0 µs", profile=self.profile, payload=payload)
        acc_scale = _ACC_RANGES_G[acc_code] * G_MPS2 / 32768.0
        gyro_scale = _GYRO_RANGES_DPS[gyro_code] * DEG_TO_RAD / 32768.0
        raw = struct.unpack_from(f"<{6 * n}h", payload, HEADER_SIZE)
        out = []
        for i in range(n):
            ax, ay, az, gx, gy, gz = raw[6 * i : 6 * i + 6]
            out.append(
                ImuSample(
                    sensor_time_s=((t0_us + i * period_us) % 2**32) / 1e6,
                    seq=(seq0 + i) % 2**COUNTER_BITS,
                    acc_mps2=(ax * acc_scale, ay * acc_scale, az * acc_scale),
                    gyro_radps=(gx * gyro_scale, gy * gyro_scale, gz * gyro_scale),
                )
            )
        return out

    def _status(self, payload: bytes) -> DeviceInfo:
        if len(payload) != STATUS_SIZE:
            raise DecodeError(
                f"status packet of {len(payload)} bytes; expected {STATUS_SIZE}", profile=self.profile, payload=payload
            )
        _, percent, millivolts, flags = _STATUS.unpack(payload)
        if percent > 100 and percent != 0xFF:
            raise DecodeError(f"battery percent {percent} > 100", profile=self.profile, payload=payload)
        return DeviceInfo(
            "battery",
            {
                "percent": None if percent == 0xFF else percent,
                "millivolts": millivolts or None,
                "streaming": bool(flags & 0x01),
                "charging": bool(flags & 0x02),
                "imu_error": bool(flags & 0x04),
                "command_rejected": bool(flags & 0x08),
            },
        )


DECODER: type[Decoder] = SensorhubOpenDecoder
