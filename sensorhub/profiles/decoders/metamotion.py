"""MbientLab MetaWear / MetaMotion: accelerometer and gyroscope (BMI160 or BMI270) data streams.

Protocol facts and where they come from (mbientlab/MetaWear-SDK-Cpp; ``src/`` and ``test/`` below
are that repository's folders):

* Every notification of the MetaWear notify characteristic 326a9006-85cb-9195-d9dd-464cfbbae75a
  starts with ``<module id> <register id>`` (``src/metawear/impl/cpp/metawearboard.cpp``:
  ``METAWEAR_SERVICE_NOTIFY_CHAR``, ``ResponseHeader(response[0], response[1])``). Module ids:
  accelerometer 0x03, haptic 0x08, settings 0x11, gyro 0x13 (``src/metawear/core/module.h``).
* Accelerometer data register 0x04 on both chips (``DATA_INTERRUPT``); packed data 0x1c on the
  BMI160 and 0x05 on the BMI270 (``src/metawear/sensor/cpp/accelerometer_bosch_register.h``).
  Gyro data 0x05 (BMI160) / 0x04 (BMI270), packed 0x07 (BMI160) / 0x05 (BMI270)
  (``gyro_bosch_register.h``). So ``13 05`` is plain BMI160 gyro data or packed BMI270 gyro data:
  the ``imu_chip`` setting says which.
* Plain data: x y z int16 little-endian; packed data: three such samples, oldest first, in one
  20-byte notification (``metawearboard.cpp``: ``response_handler_packed_data`` steps through the
  payload 6 bytes at a time; ``test/test_accelerometer_bmi160.py`` TestBmi160HighFreqAccData).
* Scale, LSB per g: 16384, 8192, 4096, 2048 for ±2, 4, 8, 16 g, the same on both chips
  (``accelerometer_bosch.cpp``: ``BMI160_FSR_SCALE``, ``BMI270_FSR_SCALE``). Gyro LSB per °/s:
  16.4, 32.8, 65.6, 131.2, 262.4 for ±2000, 1000, 500, 250, 125 °/s (``gyro_bosch.cpp``:
  ``FSR_SCALE``). Checked against the SDK's own tests: ``03 04 16 c4 94 a2 2a d0`` at ±4 g is
  (−1.872, −2.919, −1.495) g; ``13 05 3e 43 ff 7f 00 80`` at ±500 °/s is (262.409, 499.497,
  −499.512) °/s (``test_accelerometer_bmi160.py``, ``test_gyro_bmi160.py``).
* Battery: a read of settings register 0x0c (``11 8c``) is answered ``11 8c <charge %, uint8>
  <voltage mV, uint16 LE>`` (``settings_register.h`` ``BATTERY_STATE``; ``datainterpreter.cpp``
  ``convert_to_battery_state``; ``test/test_data.py`` test_battery_state: ``11 8c 63 34 10``).

Choices of this decoder:

* Accelerometer and gyroscope come in separate notifications, so each sample carries one of them
  (the other is None); the source pairs the two streams.
* No device time and no counter in streamed data: ``sensor_time_s`` and ``seq`` are None; gaps are
  found by the host rate model (samples received against elapsed time). The firmware's
  "accounter" data processor (module 0x09) could prepend a counter, but its id is assigned at run
  time and it changes the payload, so this profile does not use it.
* A notification with another header, or of the wrong length for its header, is a DecodeError.
  Full-scale values (−32768, 32767) are decoded as they are: saturation is not an error.

Settings (``[decoder]`` table, ``--set``):
    imu_chip: ``bmi270`` (MetaMotion S, default) or ``bmi160`` (MetaMotion R/C, MetaWear C/CPRO).
    acc_range_g: 2, 4, 8 or 16; gyro_range_dps: 125, 250, 500, 1000 or 2000 (as configured).
    rate_hz: the configured output data rate (informational here).
    buzz_duty: haptic duty cycle 0–248 (248 = 100 %); buzz_ms: pulse width 1–65535 ms (for the
        ``buzz`` command only).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import ClassVar, Final, Literal

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = ["DECODER", "MetaMotionDecoder"]

MODULE_ACCELEROMETER: Final = 0x03
MODULE_SETTINGS: Final = 0x11
MODULE_GYRO: Final = 0x13
#: READ_REGISTER(BATTERY_STATE): 0x80 | 0x0c (settings_register.h, register.h).
BATTERY_STATE_READ: Final = 0x8C
HEADER_LEN: Final = 2
SAMPLE_LEN: Final = 6  # x y z int16 LE
PACKED_SAMPLES: Final = 3

#: accelerometer_bosch.cpp BMI160_FSR_SCALE / BMI270_FSR_SCALE: LSB per g.
ACC_LSB_PER_G: Final[Mapping[int, float]] = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
#: gyro_bosch.cpp FSR_SCALE: LSB per °/s.
GYRO_LSB_PER_DPS: Final[Mapping[int, float]] = {2000: 16.4, 1000: 32.8, 500: 65.6, 250: 131.2, 125: 262.4}

Stream = Literal["acc", "gyro"]
#: (module, register) → (stream, samples per notification), per chip.
_HEADERS: Final[Mapping[str, Mapping[tuple[int, int], tuple[Stream, int]]]] = {
    "bmi160": {
        (MODULE_ACCELEROMETER, 0x04): ("acc", 1),
        (MODULE_ACCELEROMETER, 0x1C): ("acc", PACKED_SAMPLES),
        (MODULE_GYRO, 0x05): ("gyro", 1),
        (MODULE_GYRO, 0x07): ("gyro", PACKED_SAMPLES),
    },
    "bmi270": {
        (MODULE_ACCELEROMETER, 0x04): ("acc", 1),
        (MODULE_ACCELEROMETER, 0x05): ("acc", PACKED_SAMPLES),
        (MODULE_GYRO, 0x04): ("gyro", 1),
        (MODULE_GYRO, 0x05): ("gyro", PACKED_SAMPLES),
    },
}
_KNOWN_SETTINGS: Final = frozenset({"rate_hz", "imu_chip", "acc_range_g", "gyro_range_dps", "buzz_duty", "buzz_ms"})


def _setting_error(key: str, message: str) -> ProfileError:
    return ProfileError(message, key=f"decoder.{key}")


def _int_setting(settings: Mapping[str, SettingValue], key: str, default: int, allowed: range | tuple[int, ...]) -> int:
    value = settings.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        shown = f"{allowed.start}-{allowed.stop - 1}" if isinstance(allowed, range) else ", ".join(map(str, allowed))
        raise _setting_error(key, f"must be one of {shown}, got {value!r}")
    return value


class MetaMotionDecoder(Decoder):
    """Decoder of the MetaWear notify characteristic (see the module docstring)."""

    family: ClassVar[str] = "metamotion"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        for key in self.settings:
            if key not in _KNOWN_SETTINGS:
                raise _setting_error(key, f"unknown setting; known: {', '.join(sorted(_KNOWN_SETTINGS))}")
        chip = self.settings.get("imu_chip", "bmi270")
        if chip not in _HEADERS:
            raise _setting_error("imu_chip", f"must be 'bmi160' or 'bmi270', got {chip!r}")
        self.imu_chip: str = str(chip)
        self.acc_range_g = _int_setting(self.settings, "acc_range_g", 16, tuple(ACC_LSB_PER_G))
        self.gyro_range_dps = _int_setting(self.settings, "gyro_range_dps", 2000, tuple(GYRO_LSB_PER_DPS))
        _int_setting(self.settings, "buzz_duty", 248, range(249))  # haptic.cpp: 100 % → 248
        _int_setting(self.settings, "buzz_ms", 400, range(1, 65536))  # uint16 pulse width
        rate = self.settings.get("rate_hz", 100.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise _setting_error("rate_hz", f"must be a positive number, got {rate!r}")
        self._acc_scale = G_MPS2 / ACC_LSB_PER_G[self.acc_range_g]
        self._gyro_scale = DEG_TO_RAD / GYRO_LSB_PER_DPS[self.gyro_range_dps]
        self._headers = _HEADERS[self.imu_chip]

    def _error(self, message: str, payload: bytes) -> DecodeError:
        return DecodeError(message, profile=self.profile, payload=payload)

    def _decode(self, payload: bytes) -> list[Decoded]:
        if len(payload) < HEADER_LEN:
            raise self._error(f"{len(payload)} bytes; a MetaWear notification has a 2-byte header", payload)
        header = (payload[0], payload[1])
        if header == (MODULE_SETTINGS, BATTERY_STATE_READ):
            if len(payload) != 5:
                raise self._error(f"battery state of {len(payload)} bytes (expected 5)", payload)
            charge = payload[2]
            if charge > 100:
                raise self._error(f"battery charge {charge} % is over 100", payload)
            voltage_mv = int.from_bytes(payload[3:5], "little")
            return [DeviceInfo("battery", {"percent": charge, "voltage_mv": voltage_mv})]
        found = self._headers.get(header)
        if found is None:
            raise self._error(
                f"unknown module/register {payload[0]:02x} {payload[1]:02x} for the {self.imu_chip}", payload
            )
        stream, count = found
        expected = HEADER_LEN + count * SAMPLE_LEN
        if len(payload) != expected:
            raise self._error(f"{stream} data of {len(payload)} bytes (expected {expected})", payload)
        raw = struct.unpack_from(f"<{3 * count}h", payload, HEADER_LEN)
        out: list[Decoded] = []
        for i in range(count):
            x, y, z = raw[3 * i : 3 * i + 3]
            if stream == "acc":
                s = self._acc_scale
                out.append(ImuSample(None, None, (x * s, y * s, z * s), None))
            else:
                s = self._gyro_scale
                out.append(ImuSample(None, None, None, (x * s, y * s, z * s)))
        return out


DECODER: type[Decoder] = MetaMotionDecoder
