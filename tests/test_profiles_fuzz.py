"""Property tests over every registered profile: no bytes crash a decoder or make it emit NaN/inf.

Two kinds of input per profile: arbitrary payload sequences (which mostly test the first checks),
and the profile's own vector payloads mutated — a byte changed, the payload cut or extended, a
random payload slipped in — which reach deep into the decoders' state (delta frames, split
packets, continuation packets). Either way a decoder may only raise DecodeError, and everything it
returns must print as finite JSON (``sensorhub decode``'s format).

``FUZZ_EXAMPLES`` raises the number of examples per profile (default 100) for a longer run:
``FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_profiles_fuzz.py``.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles_helpers import VECTOR_DIR, load_vectors

from sensorhub.errors import DecodeError
from sensorhub.profiles.base import Decoded, DeviceInfo, ImuSample, SettingValue
from sensorhub.profiles.cli import format_decoded, parse_hex
from sensorhub.profiles.registry import default_registry, make_decoder

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
NAMES = list(default_registry().names())
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _streams(name: str) -> list[tuple[dict[str, SettingValue], list[bytes]]]:
    """(settings, payloads) of every vector case and corrupt entry of a profile; the defaults with nothing."""
    path = VECTOR_DIR / f"{name}.json"
    if not path.is_file():
        return [({}, [])]
    data = load_vectors(path)
    streams = [(case.get("set", {}), [parse_hex(h) for h in case["payloads"]]) for case in data["cases"]]
    for entry in data["corrupt"]:
        hexes = [*entry.get("before", []), entry["bad"], *entry["after"]]
        streams.append((entry.get("set", {}), [parse_hex(h) for h in hexes]))
    return streams


def _check(item: Decoded) -> None:
    if isinstance(item, ImuSample):
        for vec in (item.acc_mps2, item.gyro_radps):
            assert vec is None or (len(vec) == 3 and all(math.isfinite(v) for v in vec)), item
        assert item.sensor_time_s is None or math.isfinite(item.sensor_time_s), item
        assert item.seq is None or isinstance(item.seq, int), item
    else:
        assert isinstance(item, DeviceInfo), item
        for value in item.values.values():
            assert not isinstance(value, float) or math.isfinite(value), item
    format_decoded(item)  # raises on NaN/inf and on anything JSON cannot hold


def _feed_all(name: str, overrides: dict[str, Any], payloads: list[bytes]) -> None:
    decoder = make_decoder(name, overrides)
    for payload in payloads:
        try:
            out = decoder.feed(payload)
        except DecodeError:
            continue
        for item in out:
            _check(item)


@st.composite
def _mutated(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], list[bytes]]:
    overrides, payloads = draw(st.sampled_from(_streams(name)))
    payloads = list(payloads) or [b""]
    i = draw(st.integers(0, len(payloads) - 1))
    payload = bytearray(payloads[i])
    how = draw(st.sampled_from(["flip", "cut", "extend", "insert", "replace"]))
    if how == "flip" and payload:
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(payload) - 1))
            payload[at] = draw(st.integers(0, 255))
        payloads[i] = bytes(payload)
    elif how == "cut":
        payloads[i] = bytes(payload[: draw(st.integers(0, len(payload)))])
    elif how == "extend":
        payloads[i] = bytes(payload) + draw(st.binary(min_size=1, max_size=40))
    elif how == "insert":
        payloads.insert(i, draw(st.binary(max_size=64)))
    else:
        payloads[i] = draw(st.binary(max_size=len(payload) + 8))
    return overrides, payloads


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_arbitrary_bytes_only_raise_decode_error(name: str, data: st.DataObject) -> None:
    overrides = data.draw(st.sampled_from([s for s, _ in _streams(name)]))
    _feed_all(name, overrides, data.draw(st.lists(st.binary(max_size=300), max_size=8)))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_mutated_vectors_only_raise_decode_error(name: str, data: st.DataObject) -> None:
    _feed_all(name, *data.draw(_mutated(name)))
