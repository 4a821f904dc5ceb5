"""Nordic Thingy:52 motion service: the raw data characteristic (and reads of the configuration).

Protocol facts, checked in Nordic's firmware (NordicSemiconductor/Nordic-Thingy52-FW v2.x; the
paths below are in that repository), not in a client library:

* Motion service 0x0400 on the vendor base UUID EF68xxxx-9B35-4933-9B10-52FFA9740042; raw data
  characteristic 0x0406 (notify), configuration characteristic 0x0401 (read/write)
  (``source/ble_services/ble_tms.c``: ``TMS_BASE_UUID`` — bytes listed least significant first —,
  ``BLE_UUID_TMS_RAW_CHAR``, ``BLE_UUID_TMS_CONFIG_CHAR``; ``include/ble_services/ble_tms.h``
  ``BLE_UUID_TMS_SERVICE``).
* Raw data: ``ble_tms_raw_t`` = accel x y z, gyro x y z, compass x y z, each int16, packed,
  little-endian (nRF52), 18 bytes (``ble_tms.h``; ``ble_tms_raw_set`` sends ``sizeof``).
* Fixed-point formats: the motion library gives 16Q16 values (g, °/s, µT) and the firmware shifts
  them right by the number of integer bits, 6 for the accelerometer, 11 for the gyroscope and 12
  for the compass (``source/modules/m_motion.c``: ``RAW_Q_FORMAT_ACC_INTEGER_BITS``,
  ``RAW_Q_FORMAT_GYR_INTEGER_BITS``, ``RAW_Q_FORMAT_CMP_INTEGER_BITS`` and the
  ``DRV_MOTION_EVT_RAW`` case). So acc is Q6.10 (g = raw / 2¹⁰) and gyro Q11.5
  (°/s = raw / 2⁵). Values beyond the integer range are clamped to the integer limits first
  (acc [−32, 31] g, gyro [−1024, 1023] °/s; same case, ``overflow_limit_upper/lower``).
* Sign: the firmware gives the motion library the accelerometer orientation matrix −I, "inverted
  to get positive readings when axis is aligned with g (down)", and the gyroscope the identity
  ("gyro axes are aligned with Thingy axes") (``source/drivers/drv_motion.c``: ``s_accel_pdata``,
  ``s_gyro_pdata``). The raw acc is therefore minus the specific force; this decoder negates it,
  so a Thingy lying flat (z up) gives +9.81 m/s² on z, in the same axes as the gyroscope.
* The MPU-9250 runs at ±2 g and ±2000 °/s (``libs/eMD6/core/driver/eMPL/inv_mpu.c``
  ``mpu_init``: ``mpu_set_gyro_fsr(2000)``, ``mpu_set_accel_fsr(2)``), so the accelerometer
  saturates near ±2 g and the gyroscope at the firmware clamp of 1023 °/s.
* Configuration (``ble_tms_config_t``, 9 bytes): pedometer interval ms, temperature compensation
  interval ms, compass interval ms, motion processing frequency Hz (uint16 LE each), wake on
  motion (uint8). A write must be 9 bytes with pedo 100–5000 ms, temp 100–5000 ms, compass
  100–1000 ms, frequency 5–200 Hz and wake on motion 0/1, else it is refused (``ble_tms.h``
  ``BLE_TMS_CONFIG_*``; ``ble_tms.c`` ``on_authorize_req``). Default 1000, 500, 500, 10 Hz, 1
  (``include/modules/m_motion.h`` ``MOTION_DEFAULT_CONFIG``).

Choices of this decoder:

* The notification has no time and no counter (``ble_tms_raw_t``) and the firmware drops a
  notification the SoftDevice cannot queue (``m_motion.c``: ``(void)ble_tms_raw_set(…)``):
  ``sensor_time_s`` and ``seq`` are None; the clock uses the host rate model.
* The compass is not decoded (sensorhub does not use it).
* An 18-byte payload is raw data; a 9-byte payload is a read of the configuration characteristic
  and is reported as ``{"kind": "config", …}`` (refused when outside the firmware's limits);
  any other length is a DecodeError.

Settings (``[decoder]`` table, ``--set``):
    rate_hz: the motion processing frequency written in the configuration, 5–200 Hz.
    acc_range_g, gyro_range_dps: informational (fixed by the firmware: 2 g, 2000 °/s).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import ClassVar, Final

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue

__all__ = ["DECODER", "Thingy52Decoder"]

RAW_LEN: Final = 18  # sizeof(ble_tms_raw_t)
CONFIG_LEN: Final = 9  # sizeof(ble_tms_config_t)
#: m_motion.c: 16Q16 >> RAW_Q_FORMAT_ACC_INTEGER_BITS (6) leaves 10 fraction bits.
ACC_G_PER_LSB: Final = 1.0 / (1 << 10)
#: m_motion.c: 16Q16 >> RAW_Q_FORMAT_GYR_INTEGER_BITS (11) leaves 5 fraction bits.
GYRO_DPS_PER_LSB: Final = 1.0 / (1 << 5)
#: ble_tms.h BLE_TMS_CONFIG_MPUF_MIN / _MAX: motion processing frequency limits, Hz.
RATE_MIN_HZ: Final = 5
RATE_MAX_HZ: Final = 200
_CONFIG: Final = struct.Struct("<HHHHB")
_KNOWN_SETTINGS: Final = frozenset({"rate_hz", "acc_range_g", "gyro_range_dps"})


def _setting_error(key: str, message: str) -> ProfileError:
    return ProfileError(message, key=f"decoder.{key}")


class Thingy52Decoder(Decoder):
    """Decoder of the Thingy:52 raw motion data (see the module docstring)."""

    family: ClassVar[str] = "thingy52"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        for key in self.settings:
            if key not in _KNOWN_SETTINGS:
                raise _setting_error(key, f"unknown setting; known: {', '.join(sorted(_KNOWN_SETTINGS))}")
        rate = self.settings.get("rate_hz", 100.0)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or not float(rate).is_integer()
            or not RATE_MIN_HZ <= rate <= RATE_MAX_HZ
        ):
            raise _setting_error("rate_hz", f"must be a whole number of Hz, {RATE_MIN_HZ}-{RATE_MAX_HZ}, got {rate!r}")
        for key in ("acc_range_g", "gyro_range_dps"):
            value = self.settings.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise _setting_error(key, f"must be a positive number, got {value!r}")
        self.rate_hz = float(rate)

    def _error(self, message: str, payload: bytes) -> DecodeError:
        return DecodeError(message, profile=self.profile, payload=payload)

    def _decode(self, payload: bytes) -> list[Decoded]:
        if len(payload) == RAW_LEN:
            ax, ay, az, gx, gy, gz = struct.unpack_from("<6h", payload)
            # Negated: the firmware's accelerometer orientation is −I (drv_motion.c s_accel_pdata).
            acc = -G_MPS2 * ACC_G_PER_LSB
            gyro = DEG_TO_RAD * GYRO_DPS_PER_LSB
            # "+ 0.0" turns −0.0 into 0.0 for a raw 0.
            return [
                ImuSample(
                    None, None, (ax * acc + 0.0, ay * acc + 0.0, az * acc + 0.0), (gx * gyro, gy * gyro, gz * gyro)
                )
            ]
        if len(payload) == CONFIG_LEN:
            return [self._config(payload)]
        raise self._error(
            f"{len(payload)} bytes; raw motion data is {RAW_LEN} bytes (a configuration read {CONFIG_LEN})",
            payload,
        )

    def _config(self, payload: bytes) -> DeviceInfo:
        pedo_ms, temp_ms, compass_ms, freq_hz, wake = _CONFIG.unpack(payload)
        # The limits the firmware enforces on a write (ble_tms.c on_authorize_req).
        if not (
            100 <= pedo_ms <= 5000
            and 100 <= temp_ms <= 5000
            and 100 <= compass_ms <= 1000
            and RATE_MIN_HZ <= freq_hz <= RATE_MAX_HZ
            and wake <= 1
        ):
            raise self._error("configuration outside the firmware's limits", payload)
        return DeviceInfo(
            "config",
            {
                "pedometer_interval_ms": pedo_ms,
                "temperature_interval_ms": temp_ms,
                "compass_interval_ms": compass_ms,
                "motion_freq_hz": freq_hz,
                "wake_on_motion": bool(wake),
            },
        )


DECODER: type[Decoder] = Thingy52Decoder
