"""Property tests at scale for the user-facing parsers: config files, raw IMU CSV, MQTT commands.

Each parser, fed arbitrary or mutated input, either returns a valid result (finite numbers, no
NaN) or raises its own error type with a message — never anything else, never a hang. The
decoders have their own (tests/test_profiles_fuzz.py).

``FUZZ_EXAMPLES`` sets the examples per test (default 150; the benchmark run uses thousands):
``FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import tomllib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorhub.config import ConfigError, load_config
from sensorhub.errors import InputError
from sensorhub.mqtt.commands import CommandError, parse_command
from sensorhub.sources.csvfile import read_imu_csv

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

GOOD_CONFIG = """\
[wearer]
id = "alex"

[source]
kind = "simulator"
speed = 2.0

[[sensors]]
placement = "upper_thoracic"
profile = "witmotion_bwt901blecl"
address = "C0:FF:EE:00:00:01"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[alerts]
thoracic_threshold_deg = 15
dwell_s = 30
"""

GOOD_CSV = """\
t,sensor,ax,ay,az,gx,gy,gz
0.00,upper_thoracic,9.81,0.01,0.02,0.001,0.002,0.003
0.01,upper_thoracic,9.80,0.02,0.01,0.002,0.001,0.000
0.00,sacral,9.79,0.00,0.10,0.000,0.000,0.001
0.01,sacral,9.80,0.01,0.11,0.001,0.000,0.002
"""

_SCRATCH = Path(tempfile.mkdtemp(prefix="sensorhub-fuzz-"))


def _mutate(text: str, data: st.DataObject) -> str:
    """Apply a few random edits: delete, duplicate or replace a span, insert random characters."""
    for _ in range(data.draw(st.integers(1, 4))):
        if not text:
            text = data.draw(st.text(max_size=20))
            continue
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        op = data.draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
        piece = data.draw(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(["nan", "inf", "-1e999", "1e999", '"', "[", "]]", "=", ",", "\n", "\x00", "-0"]),
            )
        )
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "replace":
            text = text[:i] + piece + text[j:]
        else:
            text = text[:i] + piece + text[i:]
    return text


def _write(text: str, suffix: str) -> Path:
    path = _SCRATCH / f"case{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _finite_config_numbers(obj: object) -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj) or obj == math.inf, obj  # source.speed may be inf only when given so
    elif isinstance(obj, dict):
        for v in obj.values():
            _finite_config_numbers(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _finite_config_numbers(v)


@FUZZ
@given(st.data())
def test_config_loader_mutations(data: st.DataObject) -> None:
    text = _mutate(GOOD_CONFIG, data)
    path = _write(text, ".toml")
    try:
        config = load_config(path)
    except ConfigError as exc:
        message = str(exc)
    else:
        _finite_config_numbers(config.as_dict())
        return
    assert message
    assert "\n" not in message.strip()  # one clear line


@FUZZ
@given(st.text(max_size=400))
def test_config_loader_arbitrary_text(text: str) -> None:
    try:
        path = _write(text, ".toml")
    except UnicodeEncodeError:
        return
    with contextlib.suppress(ConfigError):
        load_config(path)


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )
)
def test_config_parser_arbitrary_structures(value: object) -> None:
    from sensorhub.config import parse_config

    doc = {"wearer": {"id": "x"}, "sensors": [{"placement": "sacral", "profile": "thingy52", "name": "t"}]}
    for key in ("wearer", "source", "alerts", "mqtt", "pipeline", "storage"):
        with contextlib.suppress(ConfigError):
            parse_config({**doc, key: value})


@FUZZ
@given(st.data())
def test_imu_csv_mutations(data: st.DataObject) -> None:
    text = _mutate(GOOD_CSV, data)
    try:
        path = _write(text, ".csv")
    except UnicodeEncodeError:
        return
    try:
        recording = read_imu_csv(path)
    except InputError as exc:
        message = str(exc)
        assert message, "an error says what is wrong"
        return
    for series in recording.series.values():
        assert np.isfinite(series.t).all()
        assert np.isfinite(series.acc).all()
        assert np.isfinite(series.gyro).all()
        assert (np.diff(series.t) > 0).all()


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["calibrate", "snooze", "exercise", "pain", "other", ""]))
def test_command_payloads_arbitrary_bytes(payload: bytes, name: str) -> None:
    try:
        command = parse_command(name, payload)
    except CommandError as exc:
        message = str(exc)
        assert message, "an error says what is wrong"
        return
    for value in vars(command).values() if hasattr(command, "__dict__") else []:
        if isinstance(value, float):
            assert math.isfinite(value)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["neutral_s", "functional", "minutes", "action", "region", "x", ""]),
        st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12),
        max_size=4,
    ),
    st.sampled_from(["calibrate", "snooze", "exercise", "pain"]),
)
def test_command_payloads_json_objects(obj: dict[str, object], name: str) -> None:
    import json

    try:
        payload = json.dumps(obj).encode()
    except ValueError:
        return
    with contextlib.suppress(CommandError):
        parse_command(name, payload)


def test_the_seed_inputs_are_valid() -> None:
    """The mutation tests start from inputs that parse, so mutations explore near valid ones."""
    assert tomllib.loads(GOOD_CONFIG)
    load_config(_write(GOOD_CONFIG, ".toml"))
    assert len(read_imu_csv(_write(GOOD_CSV, ".csv")).series) == 2
