"""The byte-vector runner: every ``tests/vectors/<profile>.json`` through its profile's decoder.

A vector file (format in docs/profiles.md) holds cases — payloads in arrival order and the WHOLE
expected output, as ``sensorhub decode`` prints it — and a corrupt-input table: payloads that must
raise DecodeError, return nothing, and leave the decoder able to decode what follows. Numbers
compare within the file's absolute ``tolerance``; integers (``seq``, battery percent), strings,
booleans and nulls compare exactly.

The decoders' own arithmetic is worked in their vector files' ``source`` notes and in the family
tests; this file only runs the tables, so a new profile is tested by adding its JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from profiles_helpers import as_json, assert_output, install_toy, load_vectors, vector_files

from sensorhub.errors import DecodeError
from sensorhub.profiles.base import Decoded
from sensorhub.profiles.cli import parse_hex
from sensorhub.profiles.registry import Registry, make_decoder


def _payloads(hexes: Sequence[str]) -> list[bytes]:
    return [parse_hex(h) for h in hexes]


def run_case(data: dict[str, Any], case: dict[str, Any], registry: Registry | None = None) -> None:
    decoder = make_decoder(data["profile"], case.get("set", {}), registry=registry)
    got: list[Decoded] = []
    for payload in _payloads(case["payloads"]):
        got += decoder.feed(payload)
    assert_output(as_json(got), case["expect"], float(data["tolerance"]), f"{data['profile']}: {case['name']}")
    assert decoder.stats.errors == 0


def run_corrupt(data: dict[str, Any], entry: dict[str, Any], registry: Registry | None = None) -> None:
    """Feed ``before``, then ``bad`` (DecodeError and no samples), then ``after`` (decoded normally).

    ``"raises": false`` is for stream decoders that cannot tell a bad payload on arrival (a packet
    whose tail never comes is held, then dropped on resync): ``bad`` then returns nothing and raises
    nothing, and the ``after`` payloads show the stream recovered.
    """
    where = f"{data['profile']}: corrupt {entry['name']!r}"
    unknown = set(entry) - {"name", "why", "set", "before", "bad", "after", "expect_after", "raises"}
    assert not unknown, f"{where}: unknown keys {sorted(unknown)}"
    decoder = make_decoder(data["profile"], entry.get("set", {}), registry=registry)
    for payload in _payloads(entry.get("before", [])):
        decoder.feed(payload)
    errors = decoder.stats.errors
    bad = parse_hex(entry["bad"])
    if entry.get("raises", True):
        returned: list[Decoded] | None = None
        with pytest.raises(DecodeError):
            returned = decoder.feed(bad)
        assert returned is None, f"{where}: decoded {returned} instead of raising"
        assert decoder.stats.errors == errors + 1, f"{where}: the error was not counted"
    else:
        assert decoder.feed(bad) == [], f"{where}: a corrupt payload gave samples"
    got: list[Decoded] = []
    for payload in _payloads(entry["after"]):
        got += decoder.feed(payload)
    if "expect_after" in entry:
        assert_output(as_json(got), entry["expect_after"], float(data["tolerance"]), f"{where}, after")


def _params(kind: str) -> list[Any]:
    params = []
    for path in vector_files():
        try:
            data = load_vectors(path)
        except (ValueError, AssertionError):
            params.append(pytest.param(path, -1, id=f"{path.stem}:unreadable"))  # fails in load_vectors
            continue
        for i, item in enumerate(data[kind]):
            params.append(pytest.param(path, i, id=f"{path.stem}:{item.get('name', i)}"))
    return params


@pytest.mark.parametrize(("path", "index"), _params("cases"))
def test_vector_case(path: Path, index: int) -> None:
    data = load_vectors(path)
    run_case(data, data["cases"][index])


@pytest.mark.parametrize(("path", "index"), _params("corrupt"))
def test_vector_corrupt(path: Path, index: int) -> None:
    data = load_vectors(path)
    run_corrupt(data, data["corrupt"][index])


# --- the runner itself, on the toy family ------------------------------------------------------


def test_runner_passes_good_toy_vectors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    for case in data["cases"]:
        run_case(data, case, registry)
    for entry in data["corrupt"]:
        run_corrupt(data, entry, registry)


def test_runner_catches_a_wrong_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    case = data["cases"][0]
    case["expect"][1]["gyro_radps"][2] += 1e-6
    with pytest.raises(AssertionError, match=r"item 1 gyro_radps"):
        run_case(data, case, registry)


def test_runner_catches_a_missing_or_extra_item(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    case = data["cases"][1]
    case["expect"].pop()
    with pytest.raises(AssertionError, match=r"2 items decoded, 1 expected"):
        run_case(data, case, registry)


def test_runner_catches_int_float_and_null_mismatches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    for key, value in (("seq", 2), ("sensor_time_s", 0.0), ("acc_mps2", None)):
        case = json.loads(json.dumps(data["cases"][0]))
        case["expect"][0][key] = value
        with pytest.raises(AssertionError, match=key):
            run_case(data, case, registry)


def test_runner_catches_a_payload_that_does_not_raise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    entry = dict(data["corrupt"][0], bad="b0 50")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        run_corrupt(data, entry, registry)


def test_runner_checks_the_output_after_a_corrupt_payload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    entry = json.loads(json.dumps(data["corrupt"][1]))
    entry["expect_after"][0]["seq"] = 3
    with pytest.raises(AssertionError, match=r"after: item 0 seq"):
        run_corrupt(data, entry, registry)


def test_runner_raises_false_means_nothing_returned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    data = load_vectors(tmp_path / "vectors" / "toy.json")
    p1 = data["cases"][0]["payloads"][0]
    held = {"name": "held tail", "why": "held", "raises": False, "bad": p1[:10], "after": [p1[10:]]}
    run_corrupt(data, dict(held, expect_after=data["cases"][0]["expect"][:1]), registry)
    with pytest.raises(DecodeError):
        run_corrupt(data, dict(held, bad="b0"), registry)
