"""Polar Verity Sense PMD decoder: byte vectors, corrupt-input table, factor state, property test."""

from __future__ import annotations

import json
import math
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.decoders import polar
from sensorhub.profiles.decoders.polar import PolarPmdDecoder

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "polar_verity_sense"
VECTORS = json.loads((ROOT / "tests" / "vectors" / f"{PROFILE}.json").read_text())
PROFILE_TOML = tomllib.loads((ROOT / "firmware_profiles" / f"{PROFILE}.toml").read_text())
G = 9.80665
D2R = math.pi / 180


def make_decoder(overrides: dict[str, Any] | None = None) -> PolarPmdDecoder:
    """Settings exactly as the loader builds them: rate default | [decoder] table | --set."""
    merged = {"rate_hz": PROFILE_TOML["rates"]["default_hz"]} | PROFILE_TOML.get("decoder", {}) | (overrides or {})
    return PolarPmdDecoder(merged, profile=PROFILE)


def as_dict(item: ImuSample | DeviceInfo) -> dict[str, Any]:
    if isinstance(item, DeviceInfo):
        return {"kind": item.kind, **item.values}
    return {
        "sensor_time_s": item.sensor_time_s,
        "seq": item.seq,
        "acc_mps2": None if item.acc_mps2 is None else list(item.acc_mps2),
        "gyro_radps": None if item.gyro_radps is None else list(item.gyro_radps),
    }


def assert_matches(actual: Any, expected: Any, tol: float) -> None:
    if isinstance(expected, float) or (isinstance(expected, int) and isinstance(actual, float)):
        assert isinstance(actual, int | float)
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=tol), (actual, expected)
    elif isinstance(expected, list):
        assert isinstance(actual, list)
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_matches(a, e, tol)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_matches(actual[key], expected[key], tol)
    else:
        assert actual == expected


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector_case(case: dict[str, Any]) -> None:
    decoder = make_decoder(case["set"])
    out = [as_dict(item) for payload in case["payloads"] for item in decoder.feed(bytes.fromhex(payload))]
    assert_matches(out, case["expect"], VECTORS["tolerance"])


@pytest.mark.parametrize("entry", VECTORS["corrupt"], ids=lambda c: c["name"])
def test_corrupt_table(entry: dict[str, Any]) -> None:
    decoder = make_decoder(entry["set"])
    for payload in entry["before"]:
        decoder.feed(bytes.fromhex(payload))
    assert entry["raises"]
    with pytest.raises(DecodeError):
        decoder.feed(bytes.fromhex(entry["bad"]))
    assert decoder.stats.errors == 1
    out = [as_dict(item) for payload in entry["after"] for item in decoder.feed(bytes.fromhex(payload))]
    assert_matches(out, entry["expect_after"], VECTORS["tolerance"])


def test_compressed_type_1_whole_result() -> None:
    """SDK AccDataTest 'compressed data type 1': reference sample + one 6-bit delta sample.

    Reference x = ``F1 FF`` = −15 mG. Delta bits (LSB first) of ``7B`` = 0111 1011: x = 111011b
    = −5, so sample 1 x = −20 mG = −20 / 1000 × 9.80665 = −0.196133 m/s². The frame timestamp
    0x65 = 101 ns belongs to the last sample; the first is one period (1/52 s) earlier.
    """
    frame = bytes.fromhex("02650000000000000081f1ff1400f00306017b0f08")
    out = make_decoder({"rate_hz": 52}).feed(frame)
    mg = G / 1000
    assert out == [
        ImuSample(101e-9 - 1 / 52, None, (-15 * mg, 20 * mg, 1008 * mg), None),
        ImuSample(101e-9, None, (-20 * mg, 17 * mg, 1008 * mg), None),
    ]
    assert math.isclose(-20 * mg, -0.196133, abs_tol=1e-6)


def test_start_response_factor_applies_to_gyro_only_until_reset() -> None:
    """A start reply with FACTOR 2.5 scales the GYRO frame: ref x = ``EA FF`` = −22 → −55 °/s."""
    decoder = make_decoder()
    reply = bytes.fromhex("f0020500000501") + struct.pack("<f", 2.5)
    frame = bytes.fromhex("05ffffffffffffff7f80eaff08000d000301df00")
    info = decoder.feed(reply)
    assert info == [
        DeviceInfo(
            "start_response",
            {"op": 2, "measurement": "gyro", "status": 0, "status_name": "success", "more": False, "factor": 2.5},
        )
    ]
    assert decoder.factors == {polar.ACC: 1.0, polar.GYRO: 2.5}
    first = decoder.feed(frame)[0]
    assert first.gyro_radps is not None
    assert math.isclose(first.gyro_radps[0], -55 * D2R)
    decoder.reset()
    again = decoder.feed(frame)[0]
    assert again.gyro_radps is not None
    assert math.isclose(again.gyro_radps[0], -22 * D2R)


def test_error_status_and_settings_reply() -> None:
    decoder = make_decoder()
    (failed,) = decoder.feed(bytes.fromhex("f002020c00"))
    assert failed == DeviceInfo(
        "start_response", {"op": 2, "measurement": "acc", "status": 12, "status_name": "invalid_state"}
    )
    # Verity Sense in SDK mode offers several rates (fsmeraldi/bleakheart PR #11 settings dump).
    (settings_reply,) = decoder.feed(bytes.fromhex("f00102000000021a0034000101100002010800040103"))
    assert settings_reply == DeviceInfo(
        "settings",
        {
            "op": 1,
            "measurement": "acc",
            "status": 0,
            "status_name": "success",
            "more": False,
            "sample_rate": "26,52",
            "resolution": 16,
            "range": 8,
            "channels": 3,
        },
    )


def test_measurement_stopped_notice() -> None:
    assert make_decoder().feed(bytes.fromhex("010205")) == [
        DeviceInfo("measurement_stopped", {"measurements": "acc,gyro"})
    ]


@pytest.mark.parametrize(
    ("settings_", "key"),
    [
        ({"rate_hz": 0}, "decoder.rate_hz"),
        ({"gyro_factor": "x"}, "decoder.gyro_factor"),
        ({"path": "/Meas"}, "decoder.path"),
    ],
)
def test_bad_settings_name_the_key(settings_: dict[str, Any], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        make_decoder(settings_)
    assert info.value.key == key


def test_module_exposes_decoder() -> None:
    assert polar.DECODER is PolarPmdDecoder
    assert PolarPmdDecoder.family == "polar" == PROFILE_TOML["family"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.tuples(
            st.sampled_from([0x02, 0x05, 0xF0]),
            st.binary(min_size=8, max_size=8),
            st.sampled_from([0, 1, 2, 0x80, 0x81]),
            st.binary(max_size=80),
        ).map(lambda t: bytes([t[0]]) + t[1] + bytes([t[2]]) + t[3]),
    )
)
def test_arbitrary_bytes_only_decode_error_and_finite(payload: bytes) -> None:
    decoder = make_decoder()
    try:
        out = decoder.feed(payload)
    except DecodeError:
        return
    for item in out:
        if isinstance(item, ImuSample):
            assert item.sensor_time_s is not None
            assert math.isfinite(item.sensor_time_s)
            for vec in (item.acc_mps2, item.gyro_radps):
                assert vec is None or all(math.isfinite(v) for v in vec)
