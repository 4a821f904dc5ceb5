"""sensorhub open profile decoder: byte vectors, corrupt inputs and arbitrary bytes.

The vectors (tests/vectors/sensorhub_open.json) are built from the byte tables of
firmware_profiles/sensorhub_open.md. Worked example, the first case
``11 43 0100 40420f00 1027 0000 0000 0008 0000 0000 1000``: range byte 0x43 → acc code 3 (±16 g),
gyro code 4 (±2000 °/s); seq = 0x0001; t0 = 0x000f4240 µs = 1.0 s; period 0x2710 = 10 000 µs;
az = 0x0800 = 2048 → 2048 · 16 g / 32768 = 1 g = 9.80665 m/s²; gz = 16 → 16 · 2000 / 32768 °/s
= 0.9765625 °/s = 0.0170442 rad/s.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import Decoded, DeviceInfo, ImuSample
from sensorhub.profiles.decoders import sensorhub_open
from sensorhub.profiles.decoders.sensorhub_open import DECODER, SensorhubOpenDecoder

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sensorhub_open.json").read_text(encoding="utf-8"))
TOLERANCE = float(VECTORS["tolerance"])


def make(overrides: dict[str, Any] | None = None) -> SensorhubOpenDecoder:
    decoder = DECODER({"rate_hz": 100.0} | (overrides or {}), profile="sensorhub_open")
    assert isinstance(decoder, SensorhubOpenDecoder)
    return decoder


def as_dict(item: Decoded) -> dict[str, Any]:
    if isinstance(item, DeviceInfo):
        return {"kind": item.kind, **item.values}
    return {
        "sensor_time_s": item.sensor_time_s,
        "seq": item.seq,
        "acc_mps2": list(item.acc_mps2) if item.acc_mps2 is not None else None,
        "gyro_radps": list(item.gyro_radps) if item.gyro_radps is not None else None,
    }


def assert_matches(got: list[Decoded], expect: list[dict[str, Any]]) -> None:
    """Whole-result comparison: same records, same keys, floats within the vectors' tolerance."""
    got_dicts = [as_dict(item) for item in got]
    assert [sorted(d) for d in got_dicts] == [sorted(d) for d in expect]
    for g, e in zip(got_dicts, expect, strict=True):
        for key, want in e.items():
            if isinstance(want, list | float):
                assert g[key] == pytest.approx(want, abs=TOLERANCE, rel=0), key
            else:
                assert g[key] == want, key


def decode_all(decoder: SensorhubOpenDecoder, payloads: list[str]) -> list[Decoded]:
    return [item for payload in payloads for item in decoder.feed(bytes.fromhex(payload))]


def test_module_exposes_the_decoder_for_its_family() -> None:
    assert sensorhub_open.DECODER is SensorhubOpenDecoder
    assert SensorhubOpenDecoder.family == "sensorhub_open" == Path(sensorhub_open.__file__).stem
    assert VECTORS["profile"] == "sensorhub_open"
    assert len(VECTORS["cases"]) >= 3
    assert len(VECTORS["corrupt"]) >= 4


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector(case: dict[str, Any]) -> None:
    decoder = make(case["set"])
    assert_matches(decode_all(decoder, case["payloads"]), case["expect"])
    assert decoder.stats.errors == 0
    assert decoder.stats.samples == sum(1 for e in case["expect"] if "kind" not in e)


@pytest.mark.parametrize("entry", VECTORS["corrupt"], ids=lambda c: c["name"])
def test_corrupt_payload_is_refused_and_the_stream_goes_on(entry: dict[str, Any]) -> None:
    decoder = make(entry["set"])
    decode_all(decoder, entry["before"])
    with pytest.raises(DecodeError) as info:
        decoder.feed(bytes.fromhex(entry["bad"]))
    assert info.value.profile == "sensorhub_open"
    assert info.value.payload == bytes.fromhex(entry["bad"])[:64]
    assert decoder.stats.errors == 1
    assert_matches(decode_all(decoder, entry["after"]), entry["expect_after"])


def test_one_sample_whole_result() -> None:
    """The worked example of the module docstring, asserted as the whole decoded record."""
    payload = bytes.fromhex("1143 0100 40420f00 1027 0000 0000 0008 0000 0000 1000")
    assert make().feed(payload) == [
        ImuSample(
            sensor_time_s=1.0,
            seq=1,
            acc_mps2=(0.0, 0.0, 9.80665),
            gyro_radps=(0.0, 0.0, 16 * (2000 * (math.pi / 180.0) / 32768.0)),  # 0.9765625 °/s
        )
    ]


def test_timestamp_and_counter_wrap_per_sample() -> None:
    """t0 = 2³² − 15 000 µs, period 10 ms: samples at 4294.952296 s, 4294.962296 s, then 0.005 s."""
    payload = struct.pack("<BBHIH", 0x11, 0x43, 0xFFFE, 2**32 - 15000, 10000) + bytes(12 * 3)
    samples = make().feed(payload)
    assert [(s.seq, s.sensor_time_s) for s in samples if isinstance(s, ImuSample)] == [
        (65534, 4294.952296),
        (65535, 4294.962296),
        (0, 0.005),
    ]


def test_status_decodes_to_battery_info() -> None:
    assert make().feed(bytes.fromhex("12503c0f01")) == [
        DeviceInfo(
            "battery",
            {
                "percent": 80,
                "millivolts": 3900,
                "streaming": True,
                "charging": False,
                "imu_error": False,
                "command_rejected": False,
            },
        )
    ]


@pytest.mark.parametrize(
    ("settings_", "key"),
    [
        ({"acc_range_g": 8}, "decoder.acc_range_g"),
        ({"rate_hz": 0}, "decoder.rate_hz"),
        ({"rate_hz": "x"}, "decoder.rate_hz"),
    ],
)
def test_bad_settings_name_the_key(settings_: dict[str, Any], key: str) -> None:
    with pytest.raises(ProfileError) as info:
        make(settings_)
    assert info.value.key == key


def test_reset_keeps_decoding() -> None:
    decoder = make()
    decoder.reset()
    assert len(decoder.feed(bytes.fromhex(VECTORS["cases"][0]["payloads"][0]))) == 1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=260) | st.binary(max_size=250).map(lambda b: bytes([0x11, b[0] if b else 0x43]) + b))
def test_arbitrary_bytes_raise_only_decode_error_never_nan(payload: bytes) -> None:
    decoder = make()
    try:
        out = decoder.feed(payload)
    except DecodeError:
        assert decoder.stats.errors == 1
        return
    for item in out:
        if isinstance(item, ImuSample):
            values = [item.sensor_time_s, *(item.acc_mps2 or ()), *(item.gyro_radps or ())]
            assert all(v is not None and math.isfinite(v) for v in values)
            assert item.seq is not None
            assert 0 <= item.seq < 2**16
        else:
            assert item.kind == "battery"
