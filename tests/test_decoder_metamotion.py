"""MetaWear/MetaMotion decoder: SDK byte vectors as whole results, chip headers, settings, commands."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.decoders.metamotion import MetaMotionDecoder
from sensorhub.profiles.registry import get_profile, make_decoder, render_command

G = 9.80665
D2R = math.pi / 180


def decoder(**overrides: object) -> MetaMotionDecoder:
    dec = make_decoder("metamotion", overrides)  # type: ignore[arg-type]
    assert isinstance(dec, MetaMotionDecoder)
    return dec


def test_sdk_plain_acceleration_4g() -> None:
    """MetaWear-SDK-Cpp test_accelerometer_bmi160.py: 03 04 16 c4 94 a2 2a d0 at ±4 g.

    x = 0xc416 = −15338; ±4 g is 8192 LSB/g (accelerometer_bosch.cpp BMI160_FSR_SCALE), so
    −15338 / 8192 = −1.8723145 g × 9.80665 = −18.3611325 m/s² (the SDK test expects −1.872 g).
    """
    out = decoder(imu_chip="bmi160", acc_range_g=4).feed(bytes.fromhex("030416c494a22ad0"))
    assert out == [ImuSample(None, None, (-15338 * G / 8192, -23916 * G / 8192, -12246 * G / 8192), None)]
    sample = out[0]
    assert isinstance(sample, ImuSample)
    assert sample.acc_mps2 is not None
    assert sample.acc_mps2[0] == pytest.approx(-18.3611325, abs=1e-6)


def test_sdk_packed_acceleration_bmi270() -> None:
    """test_accelerometer_bmi270.py: three samples under 03 05 at ±8 g (4096 LSB/g), oldest first."""
    payload = bytes.fromhex("030562b7530de9fd16d04d0e57028affa1050a01")
    raw = [(-18590, 3411, -535), (-12266, 3661, 599), (-118, 1441, 266)]
    assert decoder().feed(payload) == [
        ImuSample(None, None, (x * G / 4096, y * G / 4096, z * G / 4096), None) for x, y, z in raw
    ]


def test_sdk_gyro_full_scale_is_decoded() -> None:
    """test_gyro_bmi160.py: 13 05 3e 43 ff 7f 00 80 at ±500 °/s (65.6 LSB per °/s) = (262.409, 499.497, −499.512)."""
    out = decoder(imu_chip="bmi160", gyro_range_dps=500).feed(bytes.fromhex("13053e43ff7f0080"))
    assert out == [ImuSample(None, None, None, (17214 / 65.6 * D2R, 32767 / 65.6 * D2R, -32768 / 65.6 * D2R))]


def test_same_header_means_different_things_per_chip() -> None:
    packed = bytes.fromhex("1305") + bytes(18)
    assert len(decoder(imu_chip="bmi270").feed(packed)) == 3
    with pytest.raises(DecodeError, match="expected 8"):
        decoder(imu_chip="bmi160").feed(packed)
    with pytest.raises(DecodeError, match="unknown module/register 13 07"):
        decoder(imu_chip="bmi270").feed(bytes.fromhex("1307") + bytes(18))


def test_battery_state() -> None:
    """test_data.py: 11 8c 63 34 10 → charge 0x63 = 99 %, voltage 0x1034 = 4148 mV."""
    assert decoder().feed(bytes.fromhex("118c633410")) == [DeviceInfo("battery", {"percent": 99, "voltage_mv": 4148})]


@pytest.mark.parametrize(
    ("hex_payload", "message"),
    [
        ("03", "2-byte header"),
        ("0304000000000000" + "00", "expected 8"),
        ("0305" + "00" * 12, "expected 20"),
        ("0801f8881300", "unknown module/register"),
        ("118c63", "battery state"),
        ("118c653410", "over 100"),
    ],
)
def test_corrupt_payloads_raise(hex_payload: str, message: str) -> None:
    dec = decoder()
    with pytest.raises(DecodeError, match=message):
        dec.feed(bytes.fromhex(hex_payload))
    assert dec.stats.errors == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"imu_chip": "bmi088"}, "decoder.imu_chip"),
        ({"acc_range_g": 3}, "decoder.acc_range_g"),
        ({"gyro_range_dps": 300}, "decoder.gyro_range_dps"),
        ({"buzz_duty": 249}, "decoder.buzz_duty"),
        ({"buzz_ms": 0}, "decoder.buzz_ms"),
        ({"rate_hz": 0}, "decoder.rate_hz"),
        ({"volume": 1}, "decoder.volume"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        decoder(**overrides)
    assert info.value.key == key


def test_command_bytes_match_the_sdk_tests() -> None:
    """Configure/start bytes as the SDK's tests expect them (test_accelerometer_bmi270.py, test_haptic.py)."""
    profile = get_profile("metamotion")
    configure = [render_command(profile, step, 200.0) for step in profile.commands["configure"]]
    assert configure == [bytes.fromhex("0303a902"), bytes.fromhex("13032902")]  # 200 Hz, ±8 g / ±500 °/s
    start = [render_command(profile, step, 100.0) for step in profile.commands["start"]]
    assert start[2:] == [bytes.fromhex(h) for h in ("03020100", "13020100", "030101", "130101")]
    buzz = render_command(profile, profile.commands["buzz"][0], 100.0, {"buzz_duty": 248, "buzz_ms": 5000})
    assert buzz == bytes.fromhex("0801f8881300")  # mbl_mw_haptic_start_motor(100 %, 5000 ms)
    assert profile.has_motor


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24), st.sampled_from(["bmi160", "bmi270"]))
def test_arbitrary_bytes_only_decode_error_and_finite(data: bytes, chip: str) -> None:
    dec = decoder(imu_chip=chip)
    for payload in (data, b"\x03\x05" + data, b"\x13\x05" + data, b"\x03\x04" + data, b"\x11\x8c" + data):
        try:
            items = dec.feed(payload)
        except DecodeError:
            continue
        for item in items:
            if isinstance(item, ImuSample):
                for vec in (item.acc_mps2, item.gyro_radps):
                    assert vec is None or all(math.isfinite(x) for x in vec)
