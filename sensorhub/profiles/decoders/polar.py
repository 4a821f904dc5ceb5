"""Polar Measurement Data (PMD) service: ACC and GYRO streams of the Polar Verity Sense.

Protocol facts and where they come from (polarofficial/polar-ble-sdk, Android sources under
``sources/Android/android-communications/library/src/main/java/com/polar/androidcommunications/
api/ble/model/gatt/client/pmd/``, called ``pmd/`` below):

* Data frame: byte 0 measurement type (low 6 bits; ACC = 0x02, GYRO = 0x05), bytes 1–8 the
  timestamp (uint64 LE, ns since 2000-01-01T00:00:00Z) of the LAST sample of the frame, byte 9 the
  frame type (bit 0x80 = delta compressed, low 7 bits = type number), then the content.
  (``pmd/PmdDataFrame.kt``, ``pmd/PmdMeasurementType.kt``; ``documentation/TimeSystemExplained.md``;
  ``pmd/model/PmdTimeStampUtils.kt``: the frame timestamp is given to the last sample.)
* Raw ACC frames: type 0/1/2 = 1/2/3-byte signed LE per channel, x y z, in mG; raw GYRO frames are
  not produced by any supported device (``pmd/model/AccData.kt``, ``pmd/model/GyrData.kt``).
* Delta-compressed frames: a reference sample (each channel in whole bytes, ⌈resolution/8⌉, signed
  LE), then blocks of [delta bit width (1 byte), sample count (1 byte), count × channels deltas of
  that width, bit-packed LSB first, signed two's complement, padded to a whole byte]; each delta is
  added to the previous sample (``pmd/BlePMDClient.kt``: ``parseDeltaFramesAll``,
  ``parseDeltaFrame``, ``parseDeltaFrameRefSamples``).
  ACC compressed type 1: 16-bit, mG × factor. ACC compressed type 0: 16-bit, G × factor.
  GYRO compressed type 0: 16-bit, °/s × factor. GYRO compressed type 1: 32-bit IEEE-754 bit
  patterns, deltas added to the integer bits, °/s × factor (``AccData.kt``, ``GyrData.kt``).
  Verity Sense sends ACC as compressed type 1 (frame type 0x81) in practice
  (polar-ble-sdk issues #331 and #443, captures with ``… 0A 81 EE 02 …``).
* Control point (``FB005C81…``) replies: ``F0 <op> <measurement type> <status> <more>
  <parameters…>``; ops 1 = get settings, 2 = start, 3 = stop (``pmd/PmdControlPointResponse.kt``,
  ``pmd/PmdControlPointCommand.kt``). Parameters are setting records ``<type> <count> <values>``
  with value sizes 2 (sample rate, resolution, range), 4 (range in milliunits), 1 (channels),
  4 (factor, IEEE-754 float), 16 (security) (``pmd/PmdSetting.kt``). A start reply may carry the
  conversion FACTOR, which then applies to that measurement's compressed frames
  (``PmdSetting.updateSelectedFromStartResponse``, ``BlePMDClient.getFactor``: 1.0 when absent).
  Byte 0 = 0x01 on the control point is the device's "measurement stopped" notice
  (``PmdControlPointCommandServiceToClient``).

Choices of this decoder:

* Per-sample times are back-filled from the last sample's timestamp at the nominal period
  1/``rate_hz``: t_i = t_last − (n − 1 − i) / rate_hz. (The SDK spreads samples between consecutive
  frame timestamps instead; sensorhub leaves drift to the clock mapper, DESIGN §3.)
* Values are not truncated to whole mG as the SDK does; ``seq`` is None (PMD has no counter).
* A frame that is short, has bytes left over, an unknown measurement or frame type, a zero-width
  or zero-count delta block, or a non-finite value raises :class:`DecodeError`.

Settings (``[decoder]`` table, ``--set``):
    rate_hz: sample rate requested in the start command (Hz), for the per-sample times.
    acc_factor, gyro_factor: conversion factor until a start reply brings one (default 1.0).
    acc_range_g, gyro_range_dps: the ranges requested (informational, not used to decode).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Final

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = ["ACC", "DECODER", "GYRO", "PolarPmdDecoder"]

ACC: Final = 0x02
GYRO: Final = 0x05
MEASUREMENT_TYPE_MASK: Final = 0x3F  # PmdMeasurementType.MEASUREMENT_TYPE_BIT_MASK
DELTA_FRAME_BIT: Final = 0x80  # PmdDataFrame.DELTA_FRAME_BIT_MASK
FRAME_TYPE_MASK: Final = 0x7F
HEADER_LEN: Final = 10
CONTROL_POINT_RESPONSE: Final = 0xF0
MEASUREMENT_STOPPED: Final = 0x01
CHANNELS: Final = 3
SETTING_FACTOR: Final = 5

_MEASUREMENT_NAMES: Final = {0: "ecg", 1: "ppg", ACC: "acc", 3: "ppi", GYRO: "gyro", 6: "magnetometer"}
_OP_KINDS: Final = {1: "settings", 2: "start_response", 3: "stop_response"}
#: PmdSetting.PmdSettingType → (name, value size in bytes), PmdSetting.typeToFieldSize.
_SETTING_TYPES: Final = {
    0: ("sample_rate", 2),
    1: ("resolution", 2),
    2: ("range", 2),
    3: ("range_milliunit", 4),
    4: ("channels", 1),
    5: ("factor", 4),
    6: ("security", 16),
}
#: PmdControlPointResponse.PmdControlPointResponseCode
_STATUS_NAMES: Final = (
    "success",
    "invalid_op_code",
    "invalid_measurement_type",
    "not_supported",
    "invalid_length",
    "invalid_parameter",
    "already_in_state",
    "invalid_resolution",
    "invalid_sample_rate",
    "invalid_range",
    "invalid_mtu",
    "invalid_number_of_channels",
    "invalid_state",
    "device_in_charger",
    "disk_full",
)
_FLOAT32: Final = struct.Struct("<f")


class _FrameError(Exception):
    """Internal: what is wrong with a frame; turned into DecodeError with the payload attached."""


def _number_setting(settings: Mapping[str, SettingValue], key: str, default: float, *, positive: bool) -> float:
    value = settings.get(key, default)
    wanted = "a positive number" if positive else "a non-zero number"
    if isinstance(value, bool):
        raise ProfileError(f"must be {wanted}, got {value!r}", key=f"decoder.{key}")
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"must be {wanted}, got {value!r}", key=f"decoder.{key}") from None
    if not math.isfinite(number) or (number <= 0 if positive else number == 0):
        raise ProfileError(f"must be {wanted}, got {value!r}", key=f"decoder.{key}")
    return number


def _signed(value: int, bits: int) -> int:
    """Two's complement of the low ``bits`` bits of ``value``."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _delta_frames(content: bytes, byte_width: int) -> list[tuple[int, int, int]]:
    """Reference sample + delta blocks → integer samples (``BlePMDClient.parseDeltaFramesAll``)."""
    ref_len = CHANNELS * byte_width
    if len(content) < ref_len:
        raise _FrameError(f"compressed frame shorter than its {ref_len}-byte reference sample")
    bits = byte_width * 8
    last = [_signed(int.from_bytes(content[c * byte_width : (c + 1) * byte_width], "little"), bits) for c in range(3)]
    samples = [(last[0], last[1], last[2])]
    offset = ref_len
    while offset < len(content):
        if offset + 2 > len(content):
            raise _FrameError(f"delta block header cut short at byte {offset}")
        width, count = content[offset], content[offset + 1]
        offset += 2
        if width == 0 or width > 32 or count == 0:
            raise _FrameError(f"invalid delta block (width {width} bits, {count} samples)")
        n_bits = width * count * CHANNELS
        n_bytes = (n_bits + 7) // 8
        if offset + n_bytes > len(content):
            raise _FrameError(f"delta block of {n_bytes} bytes cut short ({len(content) - offset} left)")
        block = int.from_bytes(content[offset : offset + n_bytes], "little")
        offset += n_bytes
        pos = 0
        for _ in range(count):
            for c in range(CHANNELS):
                last[c] += _signed(block >> pos, width)
                pos += width
            samples.append((last[0], last[1], last[2]))
    return samples


def _raw_frames(content: bytes, byte_width: int) -> list[tuple[int, int, int]]:
    step = CHANNELS * byte_width
    if len(content) % step:
        raise _FrameError(f"{len(content)} content bytes is not a whole number of {step}-byte samples")
    out: list[tuple[int, int, int]] = []
    for i in range(0, len(content), step):
        x, y, z = (
            int.from_bytes(content[i + c * byte_width : i + (c + 1) * byte_width], "little", signed=True)
            for c in range(3)
        )
        out.append((x, y, z))
    return out


def _float_bits(samples: list[tuple[int, int, int]]) -> list[tuple[float, float, float]]:
    out: list[tuple[float, float, float]] = []
    for sample in samples:
        x, y, z = (_FLOAT32.unpack((v & 0xFFFFFFFF).to_bytes(4, "little"))[0] for v in sample)
        out.append((x, y, z))
    return out


class PolarPmdDecoder(Decoder):
    """Decodes PMD data frames (ACC, GYRO) and control-point replies, keeping the start-reply factor."""

    family = "polar"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        known = {"rate_hz", "acc_factor", "gyro_factor", "acc_range_g", "gyro_range_dps"}
        for key in settings:
            if key not in known:
                raise ProfileError(f"unknown setting; known: {', '.join(sorted(known))}", key=f"decoder.{key}")
        self.rate_hz = _number_setting(settings, "rate_hz", 52.0, positive=True)
        for key in ("acc_range_g", "gyro_range_dps"):
            if key in settings:
                _number_setting(settings, key, 1.0, positive=True)
        self._default_factors = {
            ACC: _number_setting(settings, "acc_factor", 1.0, positive=False),
            GYRO: _number_setting(settings, "gyro_factor", 1.0, positive=False),
        }
        self.factors = dict(self._default_factors)

    def reset(self) -> None:
        # A reconnect re-sends the start command, whose reply brings the factor again.
        self.factors = dict(self._default_factors)

    def _decode(self, payload: bytes) -> list[Decoded]:
        try:
            if not payload:
                raise _FrameError("empty notification")
            if payload[0] == CONTROL_POINT_RESPONSE:
                return [self._control_point(payload)]
            if payload[0] == MEASUREMENT_STOPPED and len(payload) < HEADER_LEN:
                types = [_MEASUREMENT_NAMES.get(b & MEASUREMENT_TYPE_MASK, str(b)) for b in payload[1:]]
                return [DeviceInfo("measurement_stopped", {"measurements": ",".join(types)})]
            return list(self._data_frame(payload))
        except _FrameError as exc:
            raise DecodeError(str(exc), profile=self.profile, payload=payload) from None

    def _control_point(self, payload: bytes) -> DeviceInfo:
        if len(payload) < 4:
            raise _FrameError(f"control point reply of {len(payload)} bytes, at least 4 expected")
        op, measurement, status = payload[1], payload[2] & MEASUREMENT_TYPE_MASK, payload[3]
        values: dict[str, SettingValue | None] = {
            "op": op,
            "measurement": _MEASUREMENT_NAMES.get(measurement, str(measurement)),
            "status": status,
            "status_name": _STATUS_NAMES[status] if status < len(_STATUS_NAMES) else "unknown",
        }
        if status == 0:
            values["more"] = len(payload) > 4 and payload[4] != 0
            for name, items in self._setting_records(payload[5:]).items():
                values[name] = items[0] if len(items) == 1 else ",".join(str(v) for v in items)
            factor = values.get("factor")
            if op == 2 and isinstance(factor, float) and measurement in self.factors:
                self.factors[measurement] = factor
        return DeviceInfo(_OP_KINDS.get(op, "control_point_response"), values)

    @staticmethod
    def _setting_records(params: bytes) -> dict[str, list[SettingValue]]:
        """``PmdSetting.parsePmdSettingsData``: records of <type> <count> <count values>."""
        out: dict[str, list[SettingValue]] = {}
        offset = 0
        while offset < len(params):
            if offset + 2 > len(params):
                raise _FrameError("setting record cut short")
            kind, count = params[offset], params[offset + 1]
            offset += 2
            if kind not in _SETTING_TYPES:
                raise _FrameError(f"unknown setting type {kind}")
            name, size = _SETTING_TYPES[kind]
            if offset + count * size > len(params):
                raise _FrameError(f"setting {name} cut short")
            items: list[SettingValue] = []
            for _ in range(count):
                field = params[offset : offset + size]
                offset += size
                if kind == SETTING_FACTOR:
                    factor = float(_FLOAT32.unpack(field)[0])
                    if not math.isfinite(factor) or factor == 0.0:
                        raise _FrameError(f"conversion factor {factor} is not usable")
                    items.append(factor)
                elif size <= 4:
                    items.append(int.from_bytes(field, "little", signed=True))
                else:
                    items.append(field.hex())
            out[name] = items
        return out

    def _data_frame(self, payload: bytes) -> list[ImuSample]:
        if len(payload) <= HEADER_LEN:
            raise _FrameError(f"data frame of {len(payload)} bytes, more than {HEADER_LEN} expected")
        measurement = payload[0] & MEASUREMENT_TYPE_MASK
        if measurement not in (ACC, GYRO):
            name = _MEASUREMENT_NAMES.get(measurement, f"0x{measurement:02x}")
            raise _FrameError(f"measurement type {name} is not an IMU stream (ACC 0x02, GYRO 0x05)")
        timestamp_ns = int.from_bytes(payload[1:9], "little")
        frame_byte = payload[9]
        compressed = bool(frame_byte & DELTA_FRAME_BIT)
        frame_type = frame_byte & FRAME_TYPE_MASK
        content = payload[HEADER_LEN:]
        factor = self.factors[measurement]

        values: list[tuple[float, float, float]]
        if measurement == ACC:
            if not compressed and frame_type in (0, 1, 2):
                to_mps2 = G_MPS2 / 1000.0  # raw ACC is in mG
                values = [(x * to_mps2, y * to_mps2, z * to_mps2) for x, y, z in _raw_frames(content, frame_type + 1)]
            elif compressed and frame_type in (0, 1):
                # Type 0 counts in G, type 1 in mG (AccData.dataFromCompressedType0/1).
                unit = G_MPS2 if frame_type == 0 else G_MPS2 / 1000.0
                scale = factor * unit
                values = [(x * scale, y * scale, z * scale) for x, y, z in _delta_frames(content, 2)]
            else:
                raise _FrameError(f"unknown ACC frame type 0x{frame_byte:02x}")
        else:
            scale = factor * DEG_TO_RAD
            if compressed and frame_type == 0:
                values = [(x * scale, y * scale, z * scale) for x, y, z in _delta_frames(content, 2)]
            elif compressed and frame_type == 1:
                values = [(x * scale, y * scale, z * scale) for x, y, z in _float_bits(_delta_frames(content, 4))]
            else:
                raise _FrameError(f"unknown GYRO frame type 0x{frame_byte:02x}")
        if not all(math.isfinite(v) for sample in values for v in sample):
            raise _FrameError("frame decodes to a non-finite value")

        period_s = 1.0 / self.rate_hz
        last_s = timestamp_ns / 1e9
        n = len(values)
        out: list[ImuSample] = []
        for i, vec in enumerate(values):
            t = last_s - (n - 1 - i) * period_s
            if measurement == ACC:
                out.append(ImuSample(sensor_time_s=t, seq=None, acc_mps2=vec, gyro_radps=None))
            else:
                out.append(ImuSample(sensor_time_s=t, seq=None, acc_mps2=None, gyro_radps=vec))
        return out


DECODER: type[Decoder] = PolarPmdDecoder
