"""Movesense GSP decoder: whole-result byte vectors, continuation state, settings, commands, property test."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.decoders.movesense import MovesenseDecoder
from sensorhub.profiles.registry import get_profile, make_decoder, render_command

D2R = math.pi / 180


def value(timestamp_ms: int, *arrays: list[tuple[float, float, float]]) -> bytes:
    """An SBEM resource value as GSP sends it: uint32 ms, then each array of float32 x y z."""
    out = struct.pack("<I", timestamp_ms)
    for array in arrays:
        for vec in array:
            out += struct.pack("<3f", *vec)
    return out


def decoder(**overrides: object) -> MovesenseDecoder:
    dec = make_decoder("movesense", overrides)  # type: ignore[arg-type]
    assert isinstance(dec, MovesenseDecoder)
    return dec


def test_imu6_packet_whole_result() -> None:
    """Two IMU6 samples in one DATA notification.

    Bytes 02 63 | 40 e2 01 00 | acc 2 × xyz | gyro 2 × xyz. Timestamp 0x0001e240 = 123456 ms is the
    first sample's (meas/imu.yaml), so sample 1 is at 123.456 + 1/52 = 123.47523 s; gyro[1].z =
    00 00 b4 42 = 90.0 °/s × π/180 = 1.5707963 rad/s.
    """
    payload = bytes([0x02, 99]) + value(
        123456, [(0.0, 0.0, 9.8125), (0.25, -0.5, 9.75)], [(1.5, -2.25, 0.0), (0.0, 0.0, 90.0)]
    )
    assert payload[2:6].hex() == "40e20100"
    assert decoder().feed(payload) == [
        ImuSample(123.456, None, (0.0, 0.0, 9.8125), (1.5 * D2R, -2.25 * D2R, 0.0)),
        ImuSample(123.456 + 1 / 52, None, (0.25, -0.5, 9.75), (0.0, 0.0, 90.0 * D2R)),
    ]


def test_split_packet_is_joined_and_counted() -> None:
    """An 8-sample IMU6 value (196 bytes) arrives as DATA (150 value bytes) + DATA_PART2 (46)."""
    acc = [(float(i), 0.0, 9.8125) for i in range(8)]
    gyro = [(0.0, float(i), 0.0) for i in range(8)]
    body = value(1000, acc, gyro)
    dec = decoder(path="/Meas/IMU6/104")
    assert dec.feed(bytes([0x02, 99]) + body[:150]) == []
    samples = dec.feed(bytes([0x03, 99]) + body[150:])
    assert samples == [ImuSample(1.0 + i / 104, None, acc[i], (0.0, i * D2R, 0.0)) for i in range(8)]
    assert dec.stats.samples == 8
    assert dec.stats.payloads == 2


def test_lost_part2_is_dropped_at_next_data_and_reset_forgets() -> None:
    body = value(1000, [(1.0, 2.0, 3.0)] * 8, [(0.0, 0.0, 0.0)] * 8)
    dec = decoder(path="/Meas/IMU6/104")
    dec.feed(bytes([0x02, 99]) + body[:150])
    short = bytes([0x02, 99]) + value(2000, [(1.0, 2.0, 3.0)], [(0.0, 0.0, 0.0)])
    assert dec.feed(short) == [ImuSample(2.0, None, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0))]
    assert dec.stats.bytes_skipped == 150
    dec.feed(bytes([0x02, 99]) + body[:150])
    dec.reset()
    with pytest.raises(DecodeError, match="without a first part"):
        dec.feed(bytes([0x03, 99]) + body[150:])


def test_replies_and_non_imu_paths() -> None:
    dec = decoder(path="/Meas/Gyro/26", reference=7)
    assert dec.feed(bytes([0x01, 7]) + b"Hello") == [DeviceInfo("hello", {"reference": 7})]
    assert dec.feed(bytes.fromhex("010701fb")) == [DeviceInfo("command_result", {"reference": 7, "status": 507})]
    assert dec.feed(bytes([0x02, 7]) + value(5, [(180.0, 0.0, -180.0)])) == [
        ImuSample(0.005, None, None, (math.pi, 0.0, -math.pi))
    ]
    imu9 = decoder(path="/Meas/IMU9/13")
    out = imu9.feed(bytes([0x02, 99]) + value(0, [(1.0, 2.0, 3.0)], [(0.0, 0.0, 0.0)], [(50.0, 50.0, 50.0)]))
    assert out == [ImuSample(0.0, None, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0))]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x02", "at least 2"),
        (bytes([0x09, 99]), "unknown response type"),
        (bytes([0x02, 98]) + value(0, [(0.0, 0.0, 0.0)], [(0.0, 0.0, 0.0)]), "reference 98"),
        (bytes([0x02, 99]) + bytes(151), "at most 150"),
        (bytes([0x02, 99]) + bytes(4), "whole"),
        (bytes([0x02, 99]) + value(0, [(math.nan, 0.0, 0.0)], [(0.0, 0.0, 0.0)]), "NaN or infinite"),
        (bytes([0x02, 99]) + value(0, [(0.0, 0.0, 0.0)], [(0.0, -math.inf, 0.0)]), "NaN or infinite"),
        (bytes([0x01, 99, 1, 2, 3]), "command result"),
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
        ({"path": "/Meas/ECG/125"}, "decoder.path"),
        ({"path": 52}, "decoder.path"),
        ({"reference": 0}, "decoder.reference"),
        ({"reference": 256}, "decoder.reference"),
        ({"rate_hz": -1}, "decoder.rate_hz"),
        ({"colour": "red"}, "decoder.colour"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        decoder(**overrides)
    assert info.value.key == key


def test_path_rate_wins_over_rate_hz() -> None:
    dec = decoder(rate_hz=52, path="/Meas/IMU6/208")
    assert dec.rate_hz == 208.0
    assert decoder(rate_hz=26).path == "/Meas/IMU6/26"


def test_start_sequence_subscribes_the_rate_path() -> None:
    """SUBSCRIBE = 01 <ref> <path ASCII> (GATTSensorDataClient.cpp); HELLO and a stale UNSUBSCRIBE first."""
    profile = get_profile("movesense")
    start = [render_command(profile, step, 104.0) for step in profile.commands["start"]]
    assert start == [b"\x00\x63", b"\x02\x63", b"\x01\x63/Meas/IMU6/104"]
    assert [render_command(profile, step, 52.0) for step in profile.commands["stop"]] == [b"\x02\x63"]
    assert not profile.has_motor


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=320), st.sampled_from(["/Meas/IMU6/52", "/Meas/IMU9/104", "/Meas/Acc/13"]))
def test_arbitrary_bytes_only_decode_error_and_finite(data: bytes, path: str) -> None:
    dec = decoder(path=path)
    # Prefix some examples with a valid header so hypothesis reaches the float parsing.
    for payload in (data, bytes([0x02, 99]) + data, bytes([0x03, 99]) + data):
        try:
            items = dec.feed(payload)
        except DecodeError:
            continue
        for item in items:
            if isinstance(item, ImuSample):
                for vec in (item.acc_mps2, item.gyro_radps):
                    assert vec is None or all(math.isfinite(x) for x in vec)
                assert item.sensor_time_s is not None
                assert math.isfinite(item.sensor_time_s)
