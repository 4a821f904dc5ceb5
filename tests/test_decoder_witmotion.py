"""WitMotion BWT901BLECL decoder: byte vectors, corrupt-input table, stream reassembly, property test."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.decoders import witmotion
from sensorhub.profiles.decoders.witmotion import WitmotionDecoder, battery_percent

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "witmotion_bwt901blecl"
VECTORS = json.loads((ROOT / "tests" / "vectors" / f"{PROFILE}.json").read_text())
PROFILE_TOML = tomllib.loads((ROOT / "firmware_profiles" / f"{PROFILE}.toml").read_text())
G = 9.80665


def make_decoder(overrides: dict[str, Any] | None = None) -> WitmotionDecoder:
    """Settings exactly as the loader builds them: rate default | [decoder] table | --set."""
    merged = {"rate_hz": PROFILE_TOML["rates"]["default_hz"]} | PROFILE_TOML.get("decoder", {}) | (overrides or {})
    return WitmotionDecoder(merged, profile=PROFILE)


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
    if entry["raises"]:
        with pytest.raises(DecodeError):
            decoder.feed(bytes.fromhex(entry["bad"]))
    else:
        assert decoder.feed(bytes.fromhex(entry["bad"])) == []
    out = [as_dict(item) for payload in entry["after"] for item in decoder.feed(bytes.fromhex(payload))]
    assert_matches(out, entry["expect_after"], VECTORS["tolerance"])


def test_captured_packet_whole_result() -> None:
    """One captured ``55 61`` packet, every field.

    Bytes 6–7 ``11 08`` → az raw = 0x0811 = 2065; 2065 / 32768 × 16 g = 1.0083008 g
    = 1.0083008 × 9.80665 = 9.888053 m/s². Gyro bytes are all zero; the angle bytes
    (``98 ff 0d 00 f8 31``: roll −0.57°, pitch 0.07°, yaw 70.27°) are not returned.
    """
    decoder = make_decoder()
    out = decoder.feed(bytes.fromhex("5561fcffefff110800000000000098ff0d00f831"))
    scale = 16 * G / 32768
    assert out == [ImuSample(None, None, (-4 * scale, -17 * scale, 2065 * scale), (0.0, 0.0, 0.0))]
    assert math.isclose(2065 * scale, 9.888053, abs_tol=1e-6)
    assert decoder.stats.samples == 1
    assert decoder.stats.bytes_skipped == 0


def test_split_byte_by_byte_equals_whole() -> None:
    packets = bytes.fromhex(
        "5561fcffefff110800000000000098ff0d00f831"
        "5571640089010000000000000000000000000000"
        "5561feffe9ff0f0800000000000098ff0d00f831"
    )
    whole = make_decoder().feed(packets)
    one_by_one = make_decoder()
    pieces = [item for b in packets for item in one_by_one.feed(bytes([b]))]
    assert pieces == whole
    assert [type(x) for x in whole] == [ImuSample, DeviceInfo, ImuSample]
    assert whole[1] == DeviceInfo("battery", {"percent": 90, "voltage_v": 3.93, "register": 0x64})


def test_garbage_between_packets_is_counted() -> None:
    decoder = make_decoder()
    packet = bytes.fromhex("5561fcffefff110800000000000098ff0d00f831")
    out = decoder.feed(b"\x00\x01" + packet + b"\x55\x02" + packet)
    assert len(out) == 2
    assert decoder.stats.bytes_skipped == 4


def test_reset_forgets_pending_fragment() -> None:
    decoder = make_decoder()
    packet = bytes.fromhex("5561fcffefff110800000000000098ff0d00f831")
    assert decoder.feed(packet[:10]) == []
    decoder.reset()
    with pytest.raises(DecodeError):
        decoder.feed(packet[10:])  # the tail alone has no header
    assert decoder.feed(packet) == make_decoder().feed(packet)


@pytest.mark.parametrize(("centivolts", "percent"), [(420, 100), (396, 100), (395, 90), (380, 50), (341, 5), (300, 0)])
def test_battery_percent_table(centivolts: int, percent: int) -> None:
    assert battery_percent(centivolts) == percent


@pytest.mark.parametrize(
    ("settings_", "key"),
    [
        ({"acc_range_g": 0}, "decoder.acc_range_g"),
        ({"gyro_range_dps": "fast"}, "decoder.gyro_range_dps"),
        ({"path": "x"}, "decoder.path"),
    ],
)
def test_bad_settings_name_the_key(settings_: dict[str, Any], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        make_decoder(settings_)
    assert info.value.key == key


def test_module_exposes_decoder() -> None:
    assert witmotion.DECODER is WitmotionDecoder
    assert WitmotionDecoder.family == "witmotion" == PROFILE_TOML["family"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_arbitrary_bytes_only_decode_error_and_finite(chunks: list[bytes]) -> None:
    decoder = make_decoder()
    for chunk in chunks:
        try:
            out = decoder.feed(chunk)
        except DecodeError:
            continue
        for item in out:
            if isinstance(item, ImuSample):
                for vec in (item.acc_mps2, item.gyro_radps):
                    assert vec is not None
                    assert all(math.isfinite(v) for v in vec)
