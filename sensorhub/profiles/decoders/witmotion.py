"""WitMotion BLE 5.0 firmware (BWT901BLECL, WT901BLE68 …): a reassembled 20-byte packet stream.

Protocol facts and where they come from:

* The sensor is a UART-to-BLE bridge: notifications on ``ffe4`` carry the MCU's byte stream, so a
  notification may hold several 20-byte packets back to back (real captures hold 40 and 80 bytes)
  or stop in the middle of one. Packets have no checksum over BLE and no counter.
  (WITMOTION/WitBluetooth_BWT901BLE5_0 ``Python/BWT901BLE5.0_python_sdk/device_model.py``,
  ``onDataReceived``: a byte buffer that drops bytes until ``55 61``/``55 71`` and cuts 20 bytes.)
* ``55 61`` + 9 int16 little-endian: acceleration x y z, angular rate x y z, angle x y z;
  acc = raw / 32768 × 16 g, gyro = raw / 32768 × 2000 °/s, angle = raw / 32768 × 180 °.
  (WT901BLECL datasheet v20-0707 §6.1.1; same SDK file, ``processData``.)
* ``55 71`` + start register (uint16 LE) + 8 register values (int16 LE): the reply to a register
  read ``ff aa 27 <reg> 00``. (WT901BLECL datasheet §6.1.2, example ``55 71 3A 00 68 01 69 00 7A 00
  …`` = magnetic field 360, 105, 122.)
* Register 0x64 is the battery voltage in 0.01 V; the vendor app maps it to a percentage with a
  step table. (WitBluetooth_BWT901BLE5_0 ``IOS_swift/WitSDK/Sensor/Modular/Processor/Roles/
  BWT901BLE5_0DataProcessor.swift``: ``readDataThread`` reads 0x64, ``getEqPercent``.)

Choices of this decoder:

* The angle fields (the device's own Euler angles) are ignored: sensorhub estimates orientation
  from acc + gyro itself (VQF), so there is one orientation source for every vendor.
* A raw value of −32768 is a saturated reading at full scale (−16 g, −2000 °/s): it is kept, it is a
  real measurement and clipping it would hide that the range was exceeded.
* ``sensor_time_s`` and ``seq`` are None (the firmware sends neither); the profile's clock is
  ``host_rate_model``.
* Resynchronisation: bytes that cannot start a packet are dropped and counted in
  ``stats.bytes_skipped``. When a packet is pending and the next notification starts with a packet
  header of its own, the alignment that puts more packet headers on 20-byte boundaries wins; a
  losing pending fragment (its tail was lost) is dropped and counted.
* A notification raises :class:`DecodeError` when it is empty, longer than any attribute value
  (512 bytes, Bluetooth Core 5.3 Vol 3 Part F §3.2.9), or yields nothing while bytes of it had to be
  dropped (garbage, an unknown packet type). Bytes held for the next notification are kept.

Settings (``[decoder]`` table, ``--set``):
    rate_hz: output rate set on the device; kept for the host rate model, not used to decode.
    acc_range_g: full scale of the accelerometer, default 16 (fixed on the BWT901BLECL).
    gyro_range_dps: full scale of the gyroscope, default 2000 (fixed on the BWT901BLECL).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Final

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = ["DECODER", "WitmotionDecoder", "battery_percent"]

HEADER: Final = 0x55
FLAG_IMU: Final = 0x61  # acc + gyro + angle packet (datasheet §6.1.1)
FLAG_REGISTER: Final = 0x71  # register read reply (datasheet §6.1.2)
FLAGS: Final = frozenset((FLAG_IMU, FLAG_REGISTER))
PACKET_LEN: Final = 20  # "Bluetooth uploads up to 20 bytes per data" (datasheet §6.1)
FULL_SCALE_RAW: Final = 32768.0
BATTERY_REGISTER: Final = 0x64
#: Bluetooth Core 5.3 Vol 3 Part F §3.2.9: an attribute value is at most 512 bytes.
MAX_NOTIFICATION_LEN: Final = 512

_NINE_INT16: Final = struct.Struct("<9h")
_REGISTER_REPLY: Final = struct.Struct("<H8h")

#: (lowest voltage in 0.01 V, percent), highest first: the vendor app's step table
#: (BWT901BLE5_0DataProcessor.swift, ``getEqPercent``), kept in integer centivolts.
_BATTERY_STEPS: Final = (
    (396, 100),
    (393, 90),
    (387, 75),
    (382, 60),
    (379, 50),
    (377, 40),
    (373, 30),
    (370, 20),
    (368, 15),
    (350, 10),
    (340, 5),
)


def battery_percent(centivolts: int) -> int:
    """Battery percentage from register 0x64 (0.01 V), by the vendor app's step table."""
    for threshold, percent in _BATTERY_STEPS:
        if centivolts >= threshold:
            return percent
    return 0


def _positive_setting(settings: Mapping[str, SettingValue], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool):
        raise ProfileError(f"must be a positive number, got {value!r}", key=f"decoder.{key}")
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"must be a positive number, got {value!r}", key=f"decoder.{key}") from None
    if not math.isfinite(number) or number <= 0:
        raise ProfileError(f"must be a positive number, got {value!r}", key=f"decoder.{key}")
    return number


def _is_header(data: bytes | bytearray, i: int) -> bool:
    return data[i] == HEADER and data[i + 1] in FLAGS


def _alignment_score(payload: bytes, first_boundary: int) -> int:
    """+1 for every packet boundary of this alignment that holds a header, −1 for every one that does not."""
    score = 0
    i = first_boundary
    while i < len(payload):
        if i + 1 < len(payload):
            score += 1 if _is_header(payload, i) else -1
        else:
            score += 1 if payload[i] == HEADER else -1
        i += PACKET_LEN
    return score


class WitmotionDecoder(Decoder):
    """Reassembles the ``ffe4`` byte stream into ``55 61`` samples and ``55 71`` register replies."""

    family = "witmotion"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        known = {"rate_hz", "acc_range_g", "gyro_range_dps"}
        for key in settings:
            if key not in known:
                raise ProfileError(f"unknown setting; known: {', '.join(sorted(known))}", key=f"decoder.{key}")
        self.rate_hz = _positive_setting(settings, "rate_hz", 50.0)
        self.acc_range_g = _positive_setting(settings, "acc_range_g", 16.0)
        self.gyro_range_dps = _positive_setting(settings, "gyro_range_dps", 2000.0)
        self._acc_scale = self.acc_range_g * G_MPS2 / FULL_SCALE_RAW
        self._gyro_scale = self.gyro_range_dps * DEG_TO_RAD / FULL_SCALE_RAW
        self._pending = bytearray()

    def reset(self) -> None:
        self._pending.clear()

    def _decode(self, payload: bytes) -> list[Decoded]:
        if not payload:
            raise DecodeError("empty notification", profile=self.profile, payload=payload)
        if len(payload) > MAX_NOTIFICATION_LEN:
            raise DecodeError(
                f"{len(payload)} bytes is longer than any BLE notification ({MAX_NOTIFICATION_LEN})",
                profile=self.profile,
                payload=payload,
            )
        orphaned = self._drop_orphaned_fragment(payload)
        # The pending fragment always starts with a header, so only this payload's bytes can be skipped.
        data = bytes(self._pending) + payload
        self._pending.clear()

        out: list[Decoded] = []
        skipped_here = 0
        unknown_flags: list[int] = []
        i = 0
        n = len(data)
        while i < n:
            start = i
            while i < n and not (data[i] == HEADER and (i + 1 == n or data[i + 1] in FLAGS)):
                if data[i] == HEADER and i + 1 < n and data[i + 1] != HEADER:
                    unknown_flags.append(data[i + 1])
                i += 1
            skipped_here += i - start
            if i == n:
                break
            if n - i < PACKET_LEN:
                self._pending += data[i:]
                break
            out.append(self._packet(data[i : i + PACKET_LEN]))
            i += PACKET_LEN

        self.stats.bytes_skipped += orphaned + skipped_here
        if not out and skipped_here:
            if unknown_flags:
                what = f"unknown packet type 0x{unknown_flags[0]:02x} (only 55 61 and 55 71 are sent over BLE)"
            else:
                what = "no 55 61 / 55 71 packet header"
            raise DecodeError(f"{what}; {skipped_here} bytes dropped", profile=self.profile, payload=payload)
        return out

    def _drop_orphaned_fragment(self, payload: bytes) -> int:
        """Drop the pending fragment when this payload reads better as a fresh start; return bytes dropped."""
        pending = len(self._pending)
        if not pending:
            return 0
        if pending == 1 and payload[0] not in FLAGS:
            # A lone 0x55 not followed by a packet flag cannot start a packet.
            self._pending.clear()
            return 1
        starts_fresh = len(payload) >= 2 and _is_header(payload, 0)
        if not starts_fresh:
            return 0
        if _alignment_score(payload, 0) > _alignment_score(payload, PACKET_LEN - pending):
            self._pending.clear()
            return pending
        return 0

    def _packet(self, packet: bytes) -> Decoded:
        if packet[1] == FLAG_IMU:
            raw = _NINE_INT16.unpack_from(packet, 2)
            # raw[6:9] are the device's Euler angles, deliberately not used (module docstring).
            acc = (raw[0] * self._acc_scale, raw[1] * self._acc_scale, raw[2] * self._acc_scale)
            gyro = (raw[3] * self._gyro_scale, raw[4] * self._gyro_scale, raw[5] * self._gyro_scale)
            return ImuSample(sensor_time_s=None, seq=None, acc_mps2=acc, gyro_radps=gyro)
        start, *values = _REGISTER_REPLY.unpack_from(packet, 2)
        if start == BATTERY_REGISTER:
            centivolts = values[0]
            return DeviceInfo(
                "battery",
                {"percent": battery_percent(centivolts), "voltage_v": centivolts / 100.0, "register": start},
            )
        fields: dict[str, SettingValue | None] = {"register": start}
        for offset, value in enumerate(values):
            fields[f"reg_{(start + offset) & 0xFFFF:02x}"] = value
        return DeviceInfo("register", fields)


DECODER: type[Decoder] = WitmotionDecoder
