"""Command payloads from dashboards: the parser, its messages, and its agreement with the schemas."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sensorhub.errors import InputError, SensorhubError
from sensorhub.mqtt.commands import (
    MAX_COMMAND_BYTES,
    CalibrateCommand,
    Command,
    CommandError,
    ExerciseCommand,
    PainCommand,
    SnoozeCommand,
    parse_command,
)
from sensorhub.mqtt.topics import COMMANDS

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "mqtt" / "schemas"


def outcome(name: str, payload: bytes) -> Command | CommandError:
    """The parsed command or the CommandError; any other exception fails the test."""
    try:
        return parse_command(name, payload)
    except CommandError as exc:
        return exc


SCHEMAS = {
    name: Draft202012Validator(json.loads((SCHEMA_DIR / f"cmd-{name}.schema.json").read_text("utf-8")))
    for name in COMMANDS
}


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("calibrate", b"", CalibrateCommand(functional=False, neutral_s=10.0)),
        ("calibrate", b"  \r\n", CalibrateCommand()),
        ("calibrate", b"{}", CalibrateCommand()),
        ("calibrate", b'\xef\xbb\xbf{"functional": true}', CalibrateCommand(functional=True)),  # UTF-8 BOM
        ("calibrate", b'{"functional":false,"neutral_s":15}', CalibrateCommand(neutral_s=15.0)),
        ("calibrate", b'{"neutral_s":4}', CalibrateCommand(neutral_s=4.0)),
        ("calibrate", b'{"neutral_s":120.0}', CalibrateCommand(neutral_s=120.0)),
        ("snooze", b"", SnoozeCommand(minutes=None)),
        ("snooze", b"{}", SnoozeCommand(minutes=None)),
        ("snooze", b'{"minutes": 15}', SnoozeCommand(minutes=15.0)),
        ("snooze", b'{"minutes": 1}', SnoozeCommand(minutes=1.0)),
        ("snooze", b'{"minutes": 2.4e2}', SnoozeCommand(minutes=240.0)),
        ("exercise", b'{"action":"start"}', ExerciseCommand(action="start", reps=None)),
        ("exercise", b'{"action":"start","reps":10}', ExerciseCommand(action="start", reps=10)),
        ("exercise", b'{"action":"start","reps":8.0}', ExerciseCommand(action="start", reps=8)),
        ("exercise", b'{"action":"start","reps":null}', ExerciseCommand(action="start")),
        ("exercise", b'{"action":"stop"}', ExerciseCommand(action="stop")),
        ("exercise", b'{"action":"stop","reps":null}', ExerciseCommand(action="stop")),
        ("pain", b"", PainCommand(region=None, level=None)),
        ("pain", b'{"region":"lower","level":6}', PainCommand(region="lower", level=6)),
        ("pain", b'{"region":null,"level":0}', PainCommand(level=0)),
        ("pain", b'{"level":10}', PainCommand(level=10)),
        ("pain", b'{"region":"mid"}', PainCommand(region="mid")),
    ],
)
def test_valid_commands(name: str, payload: bytes, expected: Command) -> None:
    assert parse_command(name, payload) == expected


@pytest.mark.parametrize(
    ("name", "payload", "key", "message"),
    [
        ("snooze", b'{"minutes": 0}', "minutes", "cmd/snooze: 'minutes' must be a number from 1 to 240, got 0"),
        ("snooze", b'{"minutes": 241}', "minutes", "must be a number from 1 to 240, got 241"),
        ("snooze", b'{"minutes": "15"}', "minutes", "must be a number from 1 to 240, got a string"),
        ("snooze", b'{"minutes": true}', "minutes", "got a boolean"),
        ("snooze", b'{"minutes": null}', "minutes", "got null"),
        ("snooze", b'{"minutes": 1e999}', "minutes", "got inf"),
        ("snooze", b'{"mins": 15}', "mins", "unknown key 'mins'; allowed: minutes"),
        ("calibrate", b'{"functional": "yes"}', "functional", "'functional' must be true or false, got a string"),
        ("calibrate", b'{"neutral_s": 3.9}', "neutral_s", "'neutral_s' must be a number from 4 to 120"),
        ("calibrate", b'{"neutral": 10}', "neutral", "unknown key 'neutral'; allowed: functional, neutral_s"),
        ("exercise", b"", "action", "'action' is required: one of start, stop"),
        ("exercise", b'{"action":"pause"}', "action", "'action' must be one of start, stop, got 'pause'"),
        ("exercise", b'{"action":null}', "action", "'action' must be one of start, stop, got null"),
        ("exercise", b'{"action":"start","reps":0}', "reps", "'reps' must be an integer from 1 to 100 or null"),
        ("exercise", b'{"action":"start","reps":101}', "reps", "from 1 to 100"),
        ("exercise", b'{"action":"start","reps":2.5}', "reps", "got 2.5"),
        ("exercise", b'{"action":"start","reps":"5"}', "reps", "got a string"),
        ("exercise", b'{"action":"stop","reps":5}', "reps", "'reps' goes only with action 'start'"),
        ("pain", b'{"region":"neck"}', "region", "'region' must be one of upper, mid, lower or null, got 'neck'"),
        ("pain", b'{"region":1}', "region", "got a number"),
        ("pain", b'{"level":11}', "level", "'level' must be an integer from 0 to 10 or null, got 11"),
        ("pain", b'{"level":-1}', "level", "got -1"),
        ("pain", b'{"level":false}', "level", "got a boolean"),
        ("pain", b'{"level":1,"level":2}', "level", "key 'level' appears twice"),
    ],
)
def test_invalid_values_name_the_key_and_what_is_allowed(name: str, payload: bytes, key: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(name, payload)
    assert info.value.command == name
    assert info.value.key == key
    assert str(info.value).startswith(f"cmd/{name}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff{}", "payload is not UTF-8 text (bad byte at 0)"),
        (b'{"minutes": 15', "payload is not JSON: Expecting ',' delimiter at character 14"),
        (b"15", "payload must be a JSON object, got a number"),
        (b'"15"', "got a string"),
        (b"[15]", "got an array"),
        (b"null", "got null"),
        (b"true", "got a boolean"),
        (b'{"minutes": NaN}', "NaN is not a JSON number"),
        (b'{"minutes": -Infinity}', "-Infinity is not a JSON number"),
        (b"[" * 3000 + b"]" * 3000, "payload is"),  # too big
        (b"[" * 2000 + b"]" * 2000, "payload is not usable JSON"),  # deeper than the recursion limit
        (b"{}" + b" " * MAX_COMMAND_BYTES, f"at most {MAX_COMMAND_BYTES}"),
        (b"{} {}", "payload is not JSON: Extra data"),
        (b"\x0b{}", "payload is not JSON"),
    ],
)
def test_payloads_that_are_not_a_json_object(payload: bytes, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command("snooze", payload)
    assert info.value.key is None
    assert message in str(info.value)


@pytest.mark.parametrize("name", COMMANDS)
def test_the_example_in_the_advice_is_a_valid_payload(name: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(name, b"[]")
    example = info.value.advice.removeprefix("e.g. ")
    assert example != info.value.advice
    assert parse_command(name, example.encode())  # parses, and a command is truthy
    SCHEMAS[name].validate(json.loads(example))


def test_unknown_command() -> None:
    with pytest.raises(CommandError) as info:
        parse_command("dance", b"{}")
    assert info.value.command == "dance"
    assert str(info.value) == "cmd/dance: unknown command 'dance' (one of calibrate, snooze, exercise, pain)"


def test_unprintable_input_is_quoted_safely_and_briefly() -> None:
    with pytest.raises(CommandError) as info:
        parse_command("x\n\x00" + "y" * 100, b"{}")
    text = str(info.value)
    assert "\n" not in text
    assert "\x00" not in text
    assert "…" in text
    assert info.value.command == "x\n\x00" + "y" * 100  # the field keeps what was received


def test_command_error_is_an_input_error_with_exit_code_2() -> None:
    error = CommandError("snooze", "'minutes' must be a number", key="minutes")
    assert isinstance(error, InputError)
    assert isinstance(error, SensorhubError)
    assert error.exit_code == 2
    assert error.reason == "'minutes' must be a number"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SnoozeCommand(minutes=0.5), "minutes must be from 1 to 240"),
        (lambda: CalibrateCommand(neutral_s=1.0), "neutral_s must be from 4 to 120"),
        (lambda: ExerciseCommand(action="pause"), "action must be"),  # type: ignore[arg-type]
        (lambda: ExerciseCommand(action="stop", reps=5), "only with 'start'"),
        (lambda: PainCommand(region="neck"), "region must be one of upper, mid, lower"),
        (lambda: PainCommand(level=11), "level must be from 0 to 10"),
    ],
)
def test_commands_built_in_code_are_checked_too(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@given(st.text(max_size=30), st.binary(max_size=50))
def test_any_name_gives_a_command_or_a_command_error(name: str, payload: bytes) -> None:
    result = outcome(name, payload)
    if isinstance(result, CommandError):
        assert result.command == name
    else:
        assert name in COMMANDS


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-300, 300),
    st.floats(-300, 300, allow_nan=False),
    st.sampled_from(["start", "stop", "upper", "mid", "lower", "neck", "", "15"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
# Values near the edges of every command's ranges, so both sides of each bound are drawn often.
edge_values = st.one_of(
    st.integers(-2, 250),
    st.integers(-2, 250).map(float),
    st.floats(-2, 250, allow_nan=False),
    st.sampled_from([0, 0.999, 1, 2.9, 3, 10, 100, 101, 120, 120.5, 240, 240.001, 241, 1e999, -1e999, 2**70]),
    st.sampled_from(["start", "stop", "upper", "mid", "lower", "neck", "", "START"]),
    st.none(),
    st.booleans(),
    json_values,
)
keys_by_command = {
    "calibrate": ["functional", "neutral_s"],
    "snooze": ["minutes"],
    "exercise": ["action", "reps"],
    "pain": ["region", "level"],
}


# Values on both sides of each key's bounds, drawn more often than the generic ones above.
key_values: dict[str, st.SearchStrategy[object]] = {
    "functional": st.booleans(),
    "neutral_s": st.sampled_from([3, 3.99, 4, 10, 120, 120.01, 121]) | st.floats(0, 130),
    "minutes": st.sampled_from([0, 0.99, 1, 30, 240, 240.01, 241]) | st.floats(-1, 250),
    "action": st.sampled_from(["start", "stop", "pause", None]),
    "reps": st.sampled_from([0, 1, 8.0, 2.5, 50.5, 100, 101, None]) | st.integers(-1, 102),
    "region": st.sampled_from(["upper", "mid", "lower", "neck", "", None]),
    "level": st.sampled_from([-1, 0, 5.0, 5.5, 10, 11, None]) | st.integers(-1, 11),
}


def command_objects(name: str) -> st.SearchStrategy[dict[str, object]]:
    """JSON objects with the command's keys (each present or not) and now and then an unknown one."""
    optional = {key: st.one_of(*[key_values[key]] * 3, edge_values) for key in keys_by_command[name]}
    known = st.fixed_dictionaries({}, optional=optional)
    extra = st.sampled_from([{}, {}, {}, {}, {"extra": 1}])
    return st.builds(lambda a, b: {**a, **b}, known, extra)


def json_payloads(name: str) -> st.SearchStrategy[bytes]:
    """Bytes that are often a JSON object with the command's keys, sometimes anything at all."""
    objects = command_objects(name).map(lambda obj: json.dumps(obj).encode())
    return st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode), objects)


@given(st.data())
def test_any_bytes_give_a_command_or_a_command_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(COMMANDS))
    result = outcome(name, data.draw(json_payloads(name)))
    if isinstance(result, CommandError):
        assert result.command == name
        assert str(result).startswith(f"cmd/{name}: ")
    else:
        expected_type = {
            "calibrate": CalibrateCommand,
            "snooze": SnoozeCommand,
            "exercise": ExerciseCommand,
            "pain": PainCommand,
        }[name]
        assert type(result) is expected_type


@given(st.data())
def test_parser_accepts_exactly_what_the_schema_accepts(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(COMMANDS))
    obj = data.draw(command_objects(name))
    # json.dumps writes inf as Infinity, which is not JSON; 1e999 is the JSON spelling that overflows to inf.
    text = json.dumps(obj).replace("Infinity", "1e999")
    schema_ok = SCHEMAS[name].is_valid(json.loads(text))
    result = outcome(name, text.encode())
    if isinstance(result, CommandError):
        assert not schema_ok, f"schema accepts {text} but the parser refuses it: {result}"
    else:
        assert schema_ok, f"parser accepts {text} ({result}) but the schema refuses it"


# Every combination of these per-key edge values (absent included) is checked exhaustively.
ABSENT = object()
EDGES: dict[str, list[object]] = {
    "functional": [ABSENT, True, False, None, "true", 0],
    "neutral_s": [ABSENT, 3.99, 4, 10.5, 120, 120.01, "10", None, True, 1e999],
    "minutes": [ABSENT, 0, 0.99, 1, 30, 240, 240.01, -1e999, "30", None, False, [30]],
    "action": [ABSENT, "start", "stop", "pause", "", None, 1],
    "reps": [ABSENT, 0, 1, 8.0, 2.5, 100, 101, None, "5", True, 2**70],
    "region": [ABSENT, "upper", "mid", "lower", "neck", "", None, 1, ["upper"]],
    "level": [ABSENT, -1, 0, 5.0, 5.5, 10, 11, None, "3", False],
}


def edge_cases() -> list[tuple[str, dict[str, object]]]:
    cases = []
    for name in COMMANDS:
        keys = keys_by_command[name]
        for values in itertools.product(*(EDGES[key] for key in keys)):
            obj = {key: value for key, value in zip(keys, values, strict=True) if value is not ABSENT}
            cases += [(name, obj), (name, {**obj, "extra": 1})]
    return cases


def test_parser_and_schema_agree_on_every_edge_combination() -> None:
    cases = edge_cases()
    assert len(cases) == 2 * (6 * 10 + 12 + 7 * 11 + 9 * 10)
    accepted = 0
    for name, obj in cases:
        text = json.dumps(obj).replace("Infinity", "1e999")
        schema_ok = SCHEMAS[name].is_valid(json.loads(text))
        result = outcome(name, text.encode())
        assert schema_ok == (not isinstance(result, CommandError)), f"cmd/{name} {text}: schema {schema_ok}, {result}"
        accepted += schema_ok
    # calibrate 3 × 4, snooze 4, exercise 5 (start) + 2 (stop), pain 5 × 5; none with the extra key.
    assert accepted == 12 + 4 + 7 + 25


def test_parsed_values_are_the_sent_values() -> None:
    for payload, expected in [
        ({"minutes": 45}, SnoozeCommand(45.0)),
        ({"functional": True, "neutral_s": 20.5}, CalibrateCommand(True, 20.5)),
        ({"action": "start", "reps": 12}, ExerciseCommand("start", 12)),
        ({"region": "upper", "level": 3}, PainCommand("upper", 3)),
    ]:
        name = {SnoozeCommand: "snooze", CalibrateCommand: "calibrate", ExerciseCommand: "exercise"}.get(
            type(expected), "pain"
        )
        SCHEMAS[name].validate(payload)
        assert parse_command(name, json.dumps(payload).encode()) == expected
