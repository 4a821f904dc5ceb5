"""Thingy:52 raw motion decoder: firmware fixed-point formats as whole results, config reads, settings."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.decoders.thingy52 import Thingy52Decoder
from sensorhub.profiles.registry import get_profile, make_decoder, render_command

G = 9.80665
D2R = math.pi / 180


def decoder(**overrides: object) -> Thingy52Decoder:
    dec = make_decoder("thingy52", overrides)  # type: ignore[arg-type]
    assert isinstance(dec, Thingy52Decoder)
    return dec


def test_raw_packet_whole_result() -> None:
    """One ble_tms_raw_t: acc, gyro, compass int16 x y z (Nordic-Thingy52-FW ble_tms.h).

    m_motion.c shifts the 16Q16 values right by 6 (acc) and 11 (gyro): acc z 00 fc = −1024 is
    −1024 / 2¹⁰ = −1 g, and the firmware's accelerometer orientation is −I (drv_motion.c
    s_accel_pdata), so the specific force is +1 g = +9.80665 m/s² (lying flat, z up); gyro x
    20 00 = 32 is 32 / 2⁵ = 1 °/s = 0.0174533 rad/s. The compass (last 6 bytes) is not decoded.
    """
    payload = bytes.fromhex("0000000000fc2000c0ff0000640038ff2c01")
    assert payload == struct.pack("<9h", 0, 0, -1024, 32, -64, 0, 100, -200, 300)
    assert decoder().feed(payload) == [ImuSample(None, None, (0.0, 0.0, G), (1 * D2R, -2 * D2R, 0.0))]


def test_saturated_values_are_decoded() -> None:
    """±2 g accelerometer full scale (negated to specific force) and the gyro clamp 1023 / −1024 °/s."""
    payload = struct.pack("<9h", 2047, -2048, 0, 32736, -32768, 0, 0, 0, 0)
    assert decoder().feed(payload) == [
        ImuSample(None, None, (-2047 / 1024 * G, 2 * G, 0.0), (1023 * D2R, -1024 * D2R, 0.0)),
    ]


def test_configuration_read() -> None:
    assert decoder().feed(bytes.fromhex("e803f401f401c80000")) == [
        DeviceInfo(
            "config",
            {
                "pedometer_interval_ms": 1000,
                "temperature_interval_ms": 500,
                "compass_interval_ms": 500,
                "motion_freq_hz": 200,
                "wake_on_motion": False,
            },
        )
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes(17), "17 bytes"),
        (bytes(19), "19 bytes"),
        (b"", "0 bytes"),
        (bytes.fromhex("e803f401f401040001"), "limits"),  # 4 Hz < 5 Hz minimum
        (bytes.fromhex("0000f401f401640001"), "limits"),  # pedometer 0 ms
    ],
)
def test_corrupt_payloads_raise(payload: bytes, message: str) -> None:
    dec = decoder()
    with pytest.raises(DecodeError, match=message):
        dec.feed(payload)
    assert dec.stats.errors == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"rate_hz": 4}, "decoder.rate_hz"),
        ({"rate_hz": 201}, "decoder.rate_hz"),
        ({"rate_hz": 52.5}, "decoder.rate_hz"),
        ({"acc_range_g": 0}, "decoder.acc_range_g"),
        ({"compass": True}, "decoder.compass"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        decoder(**overrides)
    assert info.value.key == key


def test_configure_writes_the_rate_in_the_motion_config() -> None:
    """ble_tms_config_t at 50 Hz: 1000, 500, 500 ms, 50 Hz (32 00), wake on motion 1 (9 bytes, as required)."""
    profile = get_profile("thingy52")
    (step,) = profile.commands["configure"]
    written = render_command(profile, step, 50.0)
    assert written == bytes.fromhex("e803f401f401320001")
    assert decoder().feed(written)[0] == DeviceInfo(
        "config",
        {
            "pedometer_interval_ms": 1000,
            "temperature_interval_ms": 500,
            "compass_interval_ms": 500,
            "motion_freq_hz": 50,
            "wake_on_motion": True,
        },
    )
    assert profile.commands["start"] == ()
    assert not profile.has_motor


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_only_decode_error_and_finite(data: bytes) -> None:
    dec = decoder()
    try:
        items = dec.feed(data)
    except DecodeError:
        return
    for item in items:
        if isinstance(item, ImuSample):
            for vec in (item.acc_mps2, item.gyro_radps):
                assert vec is not None
                assert all(math.isfinite(x) for x in vec)
