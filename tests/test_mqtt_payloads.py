"""Payload builders of the MQTT v1 topics, checked byte for byte and against docs/mqtt/schemas."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sensorhub.model import Event, JsonValue, Posture
from sensorhub.mqtt.payloads import (
    ANGLE_KEYS,
    MAX_EXCERPT_CHARS,
    alert_payload,
    angles_payload,
    encode,
    error_payload,
    exercise_payload,
    posture_payload,
    sensor_payload,
    session_payload,
    status_payload,
)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "mqtt" / "schemas"
TOPIC_SCHEMAS = ("status", "angles", "posture", "alerts", "sensor", "session", "exercise", "errors")
COMMAND_SCHEMAS = ("cmd-calibrate", "cmd-snooze", "cmd-exercise", "cmd-pain")
T = 1_700_000_000.123


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text("utf-8")))


SCHEMAS = {name: validator(name) for name in TOPIC_SCHEMAS}


def assert_valid(name: str, payload: dict[str, Any]) -> None:
    """Valid against the topic's schema, and unchanged by a trip over the wire."""
    SCHEMAS[name].validate(payload)
    assert json.loads(encode(payload)) == payload


def test_every_v1_payload_has_a_valid_2020_12_schema() -> None:
    names = {path.name.removesuffix(".schema.json") for path in SCHEMA_DIR.glob("*.schema.json")}
    assert names == set(TOPIC_SCHEMAS) | set(COMMAND_SCHEMAS)
    for name in names:
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text("utf-8"))
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:sensorhub:mqtt:v1:{name}"


def test_posture_enums_of_the_schemas_are_the_model_postures() -> None:
    postures = [p.value for p in Posture]
    angles = json.loads((SCHEMA_DIR / "angles.schema.json").read_text("utf-8"))
    posture = json.loads((SCHEMA_DIR / "posture.schema.json").read_text("utf-8"))
    assert angles["$defs"]["posture"]["enum"] == postures
    assert posture["properties"]["posture"]["enum"] == postures


# --- status -----------------------------------------------------------------------------------


def test_status_is_plain_text() -> None:
    assert status_payload(True) == b"online"
    assert status_payload(False) == b"offline"
    SCHEMAS["status"].validate(status_payload(True).decode("utf-8"))
    assert not SCHEMAS["status"].is_valid('"online"')  # JSON-quoted text is not the contract


# --- angles -----------------------------------------------------------------------------------


def test_angles_payload_bytes() -> None:
    """0.01° for angles, 0.001 s for t: 12.3456 → 12.35, -3.004 → -3.0, 1700000000.1234 → ….123."""
    payload = angles_payload(
        1_700_000_000.1234,
        {"thoracic_flexion_deg": 12.3456, "lumbar_flexion_deg": -3.004, "trunk_flexion_deg": 20.0},
        "slouched",
    )
    assert encode(payload) == (
        b'{"t":1700000000.123,"thoracic_flexion_deg":12.35,"lumbar_flexion_deg":-3.0,'
        b'"trunk_flexion_deg":20.0,"pelvis_tilt_deg":null,"posture":"slouched"}'
    )
    assert_valid("angles", payload)


def test_angles_keys_are_in_the_csv_order_and_unavailable_is_null() -> None:
    payload = angles_payload(T, {}, Posture.UNCALIBRATED)
    assert list(payload) == ["t", *ANGLE_KEYS, "posture"]
    assert all(payload[key] is None for key in ANGLE_KEYS)
    assert payload["posture"] == "uncalibrated"
    assert_valid("angles", payload)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_angles_nan_and_inf_become_null(bad: float | None) -> None:
    payload = angles_payload(T, {"trunk_flexion_deg": bad}, "unknown")
    assert payload["trunk_flexion_deg"] is None
    assert_valid("angles", payload)


def test_angles_negative_zero_is_written_as_zero() -> None:
    payload = angles_payload(T, {"trunk_flexion_deg": -0.001}, "upright")
    assert encode(payload).count(b'"trunk_flexion_deg":0.0,') == 1


def test_spine_flexion_is_present_only_when_given() -> None:
    two_sensor = angles_payload(T, {"trunk_flexion_deg": 30.0, "spine_flexion_deg": 24.567}, "slouched")
    assert list(two_sensor)[-1] == "spine_flexion_deg"
    assert two_sensor["spine_flexion_deg"] == 24.57
    assert_valid("angles", two_sensor)
    assert "spine_flexion_deg" not in angles_payload(T, {"trunk_flexion_deg": 30.0}, "slouched")
    assert angles_payload(T, {"spine_flexion_deg": None}, "slouched")["spine_flexion_deg"] is None


def test_angles_reject_what_the_contract_cannot_carry() -> None:
    with pytest.raises(ValueError, match=r"unknown angle key.*thoracic_deg"):
        angles_payload(T, {"thoracic_deg": 1.0}, "upright")
    with pytest.raises(ValueError, match="unknown posture 'slumped'; one of upright, slouched"):
        angles_payload(T, {}, "slumped")
    with pytest.raises(ValueError, match="finite time"):
        angles_payload(math.nan, {}, "upright")
    with pytest.raises(ValueError, match="must be a number"):
        angles_payload(T, {"trunk_flexion_deg": "12"}, "upright")  # type: ignore[dict-item]


angle_values = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([math.nan, math.inf]))


@given(
    st.floats(min_value=0, max_value=4e9),
    st.dictionaries(st.sampled_from([*ANGLE_KEYS, "spine_flexion_deg"]), angle_values),
    st.sampled_from(list(Posture)),
)
def test_angles_payload_is_always_valid(t: float, angles: dict[str, float | None], posture: Posture) -> None:
    payload = angles_payload(t, angles, posture)
    assert_valid("angles", payload)
    for key, value in angles.items():
        if value is None or not math.isfinite(value):
            assert payload[key] is None
        else:
            assert payload[key] == pytest.approx(value, abs=0.005)


# --- posture ----------------------------------------------------------------------------------


def test_posture_payload() -> None:
    payload = posture_payload(T, Posture.LEANING_FORWARD, 1_699_999_990.00049)
    assert encode(payload) == b'{"t":1700000000.123,"posture":"leaning_forward","since":1699999990.0}'
    assert_valid("posture", payload)
    with pytest.raises(ValueError, match="since"):
        posture_payload(T, "upright", math.inf)


# --- alerts -----------------------------------------------------------------------------------


def test_alert_start_and_end_pair_up_by_episode() -> None:
    start = alert_payload(
        T, "slouch", "start", 30.0, episode="e42", segment="thoracic", angle_deg=18.456, threshold_deg=15.0
    )
    end = alert_payload(T + 95.5, "slouch", "end", 125.5004, episode="e42", segment="thoracic")
    assert encode(start) == (
        b'{"t":1700000000.123,"type":"slouch","state":"start","duration_s":30.0,'
        b'"episode":"e42","segment":"thoracic","angle_deg":18.46,"threshold_deg":15.0}'
    )
    assert (end["state"], end["duration_s"], end["episode"]) == ("end", 125.5, "e42")
    assert_valid("alerts", start)
    assert_valid("alerts", end)


def test_alert_carries_extra_keys_rounded_by_name() -> None:
    payload = alert_payload(T, "break", "start", None, sitting_s=2700.12345, nested={"peak_deg": 1.23456})
    assert payload["duration_s"] is None
    assert payload["sitting_s"] == 2700.123
    assert payload["nested"] == {"peak_deg": 1.23}
    assert_valid("alerts", payload)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "slouch", "state": "begin", "duration_s": 1.0}, "state must be one of start, end"),
        ({"type": "Slouch", "state": "start", "duration_s": 1.0}, "lower-case snake case"),
        ({"type": "", "state": "start", "duration_s": 1.0}, "lower-case snake case"),
        ({"type": "slouch", "state": "end", "duration_s": -1.0}, "duration_s must be from 0"),
        ({"type": "slouch", "state": "end", "duration_s": 1.0, "segment": 3}, "segment must be a string"),
        ({"type": "slouch", "state": "end", "duration_s": 1.0, "angle_deg": "x"}, "angle_deg must be a number"),
        ({"type": "slouch", "state": "end", "duration_s": 1.0, "episode": 1.5}, "episode must be"),
        ({"type": "slouch", "state": "end", "duration_s": 1.0, "episode": True}, "episode must be"),
    ],
)
def test_alert_rejects_malformed_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alert_payload(T, **kwargs)


# --- sensors/<placement> ----------------------------------------------------------------------


def test_sensor_payload() -> None:
    payload = sensor_payload(T, connected=True, battery_pct=87.46, rssi=-67, rate_hz=52.0049, dropped=3)
    assert encode(payload) == (
        b'{"t":1700000000.123,"connected":true,"battery_pct":87.5,"rssi":-67,"rate_hz":52.0,"dropped":3}'
    )
    assert_valid("sensor", payload)
    gone = sensor_payload(T, connected=False, battery_pct=None, rssi=None, rate_hz=None, dropped=0)
    assert (gone["battery_pct"], gone["rssi"], gone["rate_hz"]) == (None, None, None)
    assert_valid("sensor", gone)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"battery_pct": 101.0}, "battery_pct must be from 0 to 100"),
        ({"battery_pct": -1.0}, "battery_pct must be from 0 to 100"),
        ({"rssi": -128}, "rssi must be an integer from -127 to 20"),
        ({"rssi": 21}, "rssi must be an integer"),
        ({"rssi": -60.5}, "rssi must be an integer"),
        ({"rssi": True}, "rssi must be an integer"),
        ({"dropped": -1}, "dropped must be a non-negative integer"),
        ({"rate_hz": -1.0}, "rate_hz must be from 0"),
        ({"connected": 1}, "connected must be a bool"),
    ],
)
def test_sensor_payload_rejects_out_of_range(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"connected": True, "battery_pct": 50.0, "rssi": -60, "rate_hz": 50.0, "dropped": 0}
    with pytest.raises(ValueError, match=message):
        sensor_payload(T, **(args | kwargs))


@given(
    st.booleans(),
    st.one_of(st.none(), st.floats(min_value=0, max_value=100), st.just(math.nan)),
    st.one_of(st.none(), st.integers(-127, 20)),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e4), st.just(math.inf)),
    st.integers(0, 2**53),
)
def test_sensor_payload_is_always_valid(
    connected: bool, battery: float | None, rssi: int | None, rate: float | None, dropped: int
) -> None:
    assert_valid(
        "sensor", sensor_payload(T, connected=connected, battery_pct=battery, rssi=rssi, rate_hz=rate, dropped=dropped)
    )


# --- session ----------------------------------------------------------------------------------


def test_session_payload_rounds_stats_by_name_and_nulls_nan() -> None:
    stats: dict[str, JsonValue] = {
        "slouch_s": 120.98765,
        "alerts": 2,
        "mean_thoracic_deg": 8.12345,
        "ratio": math.nan,
        "per_hour": [1, 2.5],
    }
    payload = session_payload("2024-05-01T09-00-00_alex", 1_700_000_000.0, stats)
    assert payload == {
        "id": "2024-05-01T09-00-00_alex",
        "started": 1_700_000_000.0,
        "stats": {"slouch_s": 120.988, "alerts": 2, "mean_thoracic_deg": 8.12, "ratio": None, "per_hour": [1, 2.5]},
    }
    assert_valid("session", payload)


def test_session_payload_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="session id"):
        session_payload("", T, {})
    with pytest.raises(ValueError, match="not JSON data"):
        session_payload("s1", T, {"when": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="keys must be strings"):
        session_payload("s1", T, {"by_hour": {9: 1}})  # type: ignore[dict-item]


# --- exercise ---------------------------------------------------------------------------------


def test_exercise_rep_from_an_event() -> None:
    rep = Event(
        "rep", 100.0, 104.25, {"rom_deg": {"thoracic": 21.456, "lumbar": 14.0, "trunk": 30.1}, "too_fast": False}
    )
    payload = exercise_payload(T, rep.to_json())
    assert payload == {
        "t": T,
        "type": "rep",
        "start_t": 100.0,
        "end_t": 104.25,
        "rom_deg": {"thoracic": 21.46, "lumbar": 14.0, "trunk": 30.1, "pelvis": None},  # missing region → null
        "too_fast": False,
    }
    assert_valid("exercise", payload)


def test_exercise_set_event() -> None:
    payload = exercise_payload(T, {"type": "set", "reps": 10, "mean_rom_deg": {"thoracic": 20.0}})
    assert payload["type"] == "set"
    assert payload["reps"] == 10
    assert_valid("exercise", payload)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "type must be one of rep, set"),
        ({"type": "stretch"}, "type must be one of rep, set"),
        ({"type": "rep", "t": 1.0}, "must not carry 't'"),
        ({"type": "rep", "rom_deg": 12.0}, "rom_deg must map"),
        ({"type": "rep", "rom_deg": {"neck": 1.0}}, "unknown rom_deg region"),
        ({"type": "rep", "too_fast": "no"}, "too_fast must be a bool"),
    ],
)
def test_exercise_rejects_malformed_events(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exercise_payload(T, event)


# --- errors -----------------------------------------------------------------------------------


def test_error_payload_with_a_short_payload() -> None:
    payload = error_payload(
        T, source="cmd/snooze", message="'minutes' must be a number from 1 to 240, got 999", payload=b'{"minutes":999}'
    )
    assert payload == {
        "t": T,
        "source": "cmd/snooze",
        "message": "'minutes' must be a number from 1 to 240, got 999",
        "payload_excerpt": '{"minutes":999}',
        "payload_bytes": 15,
    }
    assert_valid("errors", payload)


def test_error_excerpt_is_short_safe_and_one_line() -> None:
    payload = error_payload(T, source="cmd/pain", message="bad", payload=b'\xff\xfe{\n\t"a":\x00}' + b"x" * 500)
    excerpt = payload["payload_excerpt"]
    assert isinstance(excerpt, str)
    assert excerpt.startswith('\ufffd\ufffd{  "a":\ufffd}xxx')  # bad bytes and NUL → U+FFFD, \n \t → space
    assert excerpt.endswith("…")
    assert len(excerpt) == MAX_EXCERPT_CHARS + 1
    assert payload["payload_bytes"] == 11 + 500
    assert_valid("errors", payload)


def test_error_payload_without_payload_and_its_checks() -> None:
    payload = error_payload(T, source="cmd/dance", message="unknown command 'dance'")
    assert (payload["payload_excerpt"], payload["payload_bytes"]) == (None, None)
    assert_valid("errors", payload)
    assert len(str(error_payload(T, source="x", message="m" * 5000)["message"])) == 1001
    assert error_payload(T, source="x", message="two\nlines\x00")["message"] == "two lines\ufffd"
    with pytest.raises(ValueError, match="source"):
        error_payload(T, source="", message="m")
    with pytest.raises(ValueError, match="message"):
        error_payload(T, source="x", message="")


@given(st.binary(max_size=1000))
def test_error_payload_of_any_bytes_is_valid(data: bytes) -> None:
    payload = error_payload(T, source="cmd/snooze", message="bad", payload=data)
    assert_valid("errors", payload)
    excerpt = payload["payload_excerpt"]
    assert isinstance(excerpt, str)
    assert "\n" not in excerpt
    assert "\x00" not in excerpt


# --- encode and the schemas' strictness --------------------------------------------------------


def test_encode_is_compact_utf8_and_refuses_nan() -> None:
    assert encode({"a": "é", "b": [1, None, True]}) == '{"a":"é","b":[1,null,true]}'.encode()
    with pytest.raises(ValueError, match="Out of range float"):
        encode({"a": math.nan})
    assert encode({"m": "a\ud800b"}) == b'{"m":"a?b"}'  # UTF-8 cannot carry a lone surrogate


@pytest.mark.parametrize(
    ("name", "mistake"),
    [
        ("angles", lambda p: p.pop("pelvis_tilt_deg")),
        ("angles", lambda p: p.update(posture="slumped")),
        ("angles", lambda p: p.update(thoracic_deg=1.0)),
        ("angles", lambda p: p.update(trunk_flexion_deg="12")),
        ("angles", lambda p: p.update(t=None)),
        ("posture", lambda p: p.pop("since")),
        ("alerts", lambda p: p.update(state="stop")),
        ("alerts", lambda p: p.update(duration_s=-1)),
        ("sensor", lambda p: p.update(battery_pct=120)),
        ("sensor", lambda p: p.update(connected="yes")),
        ("sensor", lambda p: p.update(dropped=1.5)),
        ("session", lambda p: p.update(stats=[])),
        ("exercise", lambda p: p.update(type="stretch")),
        ("exercise", lambda p: p.update(rom_deg={"thoracic": 1.0})),
        ("errors", lambda p: p.update(extra=1)),
    ],
)
def test_schemas_catch_mistakes(name: str, mistake: Any) -> None:
    good = {
        "angles": angles_payload(T, {}, "upright"),
        "posture": posture_payload(T, "upright", T),
        "alerts": alert_payload(T, "slouch", "start", 30.0),
        "sensor": sensor_payload(T, connected=True, battery_pct=50.0, rssi=-60, rate_hz=50.0, dropped=0),
        "session": session_payload("s1", T, {}),
        "exercise": exercise_payload(T, {"type": "rep"}),
        "errors": error_payload(T, source="cmd/x", message="m"),
    }[name]
    SCHEMAS[name].validate(good)
    mistake(good)
    assert not SCHEMAS[name].is_valid(good)
