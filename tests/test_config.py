"""Tests of the TOML configuration layer (sensorhub.config) and `sensorhub config check`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sensorhub.cli import main
from sensorhub.config import (
    SCENARIO_NAMES,
    SECTIONS,
    AlertsConfig,
    Config,
    Estimator,
    FunctionalMode,
    MqttConfig,
    MqttProtocol,
    MqttTransport,
    PipelineConfig,
    QuietHours,
    SensorConfig,
    SourceConfig,
    SourceKind,
    StorageConfig,
    WearerConfig,
    load_config,
    parse_config,
    user_data_dir,
)
from sensorhub.errors import ConfigError
from sensorhub.model import Placement

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "sensorhub.example.toml"
DOCS = REPO_ROOT / "docs" / "configuration.md"

#: The wearer and one sensor of the DESIGN §6 minimal file, without its [mqtt] section.
BASE = """\
[wearer]
id = "alex"

[[sensors]]
placement = "upper_thoracic"          # upper_thoracic | thoracolumbar | sacral
profile = "witmotion_bwt901blecl"
address = "C0:FF:EE:00:00:01"         # or: name = "WT901BLE68"
"""

#: The DESIGN §6 minimal file, verbatim.
MINIMAL = (
    BASE
    + """
[mqtt]
url = "mqtt://127.0.0.1:1883"         # mqtts:// for TLS; omitted = no MQTT
"""
)


def _sensor(placement: str, address: str) -> str:
    return f'\n[[sensors]]\nplacement = "{placement}"\nprofile = "movesense"\naddress = "{address}"\n'


def _write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default store path into the test's directory, whatever the machine has set."""
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data


# --------------------------------------------------------------------------------------------
# Good files
# --------------------------------------------------------------------------------------------


def test_minimal_design_config_parses_with_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))

    assert config.wearer == WearerConfig(id="alex", name="")
    assert config.sensors == (
        SensorConfig(placement=Placement.UPPER_THORACIC, profile="witmotion_bwt901blecl", address="C0:FF:EE:00:00:01"),
    )
    assert config.source == SourceConfig(kind=SourceKind.BLE, scenario="desk_session", seed=0, speed=1.0, rate_hz=100.0)
    assert config.pipeline == PipelineConfig(
        estimator=Estimator.VQF,
        output_rate_hz=50.0,
        neutral_duration_s=10.0,
        functional=FunctionalMode.AUTO,
        sensor_timeout_s=2.0,
    )
    assert config.alerts == AlertsConfig(
        enabled=True,
        thoracic_threshold_deg=15.0,
        lumbar_threshold_deg=10.0,
        trunk_threshold_deg=10.0,
        dwell_s=30.0,
        hysteresis_deg=3.0,
        max_per_hour=4,
        snooze_min=30.0,
        quiet_hours=None,
        buzz=True,
        break_after_min=45.0,
    )
    assert config.mqtt == MqttConfig(
        url="mqtt://127.0.0.1:1883",
        client_id="sensorhub-alex",
        keepalive_s=30,
        publish_rate_hz=10.0,
        discovery=True,
        discovery_prefix="homeassistant",
        outbox_max_messages=10_000,
        protocol=MqttProtocol.V5,
    )
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("127.0.0.1", 1883, False)
    assert config.mqtt.transport is MqttTransport.TCP
    assert config.storage == StorageConfig(
        path=tmp_path / "xdg-data" / "sensorhub" / "sessions.db", record_raw=True, retention_days=90, max_size_mb=2048
    )


def test_no_mqtt_section_means_no_mqtt(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, BASE)).mqtt is None


def test_example_file_parses_and_shows_the_defaults() -> None:
    config = load_config(EXAMPLE)

    assert [sensor.placement for sensor in config.sensors] == list(Placement)
    # The example promises that the values it writes are the defaults.
    assert config.source == SourceConfig()
    assert config.pipeline == PipelineConfig()
    assert config.alerts == AlertsConfig()
    assert config.mqtt == MqttConfig(url="mqtt://127.0.0.1:1883", client_id="sensorhub-alex")
    assert dataclasses.replace(config.storage, path=Path("x")) == StorageConfig(path=Path("x"))


@pytest.mark.parametrize("section", list(SECTIONS))
def test_example_and_docs_mention_every_key(section: str) -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    docs = DOCS.read_text(encoding="utf-8")
    header = f"[[{section}]]" if section == "sensors" else f"[{section}]"
    assert header in example
    assert f"## `{header}`" in docs
    for key in SECTIONS[section]:
        # Optional keys appear commented out ("# key = ...").
        assert re.search(rf"^#? ?{key} = ", example, re.MULTILINE), f"{section}.{key} missing in the example"
        assert f"| `{key}` |" in docs, f"{section}.{key} missing in docs/configuration.md"


@pytest.mark.parametrize(
    ("section", "record_type"),
    [
        ("wearer", WearerConfig),
        ("source", SourceConfig),
        ("sensors", SensorConfig),
        ("pipeline", PipelineConfig),
        ("alerts", AlertsConfig),
        ("mqtt", MqttConfig),
        ("storage", StorageConfig),
    ],
)
def test_section_keys_are_the_record_fields(section: str, record_type: type) -> None:
    assert set(SECTIONS[section]) == {f.name for f in dataclasses.fields(record_type)}


def test_config_fields_are_the_sections() -> None:
    assert set(SECTIONS) == {f.name for f in dataclasses.fields(Config)}


#: Every key set to a value other than its default (mutually exclusive keys: one of each pair).
FULL = """\
[wearer]
id = "alex-2"
name = "Alex Example"

[[sensors]]
placement = "upper_thoracic"
profile = "witmotion_bwt901blecl"
address = "C0:FF:EE:00:00:01"
rate_hz = 50

[[sensors]]
placement = "sacral"
profile = "movesense"
name = "Movesense 2"

[source]
kind = "simulator"
scenario = "cat_camel"
seed = 7
speed = 4
rate_hz = 52
session = "s-1"

[pipeline]
estimator = "complementary"
output_rate_hz = 100
neutral_duration_s = 5
functional = "none"
sensor_timeout_s = 0.5

[alerts]
enabled = false
thoracic_threshold_deg = 20
lumbar_threshold_deg = 12.5
trunk_threshold_deg = 25
dwell_s = 0
hysteresis_deg = 0
max_per_hour = 0
snooze_min = 5
quiet_hours = "22:30-07:15"
buzz = false
break_after_min = 0

[mqtt]
url = "wss://[::1]"
username = "alex"
password_env = "SENSORHUB_TEST_PASSWORD"
client_id = "desk-7"
ca_file = "certs/ca.pem"
client_cert = "~/certs/alex.pem"
client_key = "/etc/sensorhub/alex.key"
keepalive_s = 0
publish_rate_hz = 100
discovery = false
discovery_prefix = "ha/test"
outbox_max_messages = 100
protocol = "3.1.1"

[storage]
path = "sessions/alex.db"
record_raw = false
retention_days = 0
max_size_mb = 0
"""


def test_every_key_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(_write(tmp_path, FULL))

    assert config.wearer == WearerConfig(id="alex-2", name="Alex Example")
    assert config.source == SourceConfig(
        kind=SourceKind.SIMULATOR, scenario="cat_camel", seed=7, speed=4.0, rate_hz=52.0, session="s-1"
    )
    assert config.sensors == (
        SensorConfig(
            placement=Placement.UPPER_THORACIC,
            profile="witmotion_bwt901blecl",
            address="C0:FF:EE:00:00:01",
            rate_hz=50.0,
        ),
        SensorConfig(placement=Placement.SACRAL, profile="movesense", name="Movesense 2"),
    )
    assert config.pipeline.estimator is Estimator.COMPLEMENTARY
    assert config.pipeline.functional is FunctionalMode.NONE
    assert isinstance(config.pipeline.output_rate_hz, float)
    assert config.alerts.quiet_hours == QuietHours(start=dt.time(22, 30), end=dt.time(7, 15))
    assert (config.alerts.enabled, config.alerts.max_per_hour, config.alerts.lumbar_threshold_deg) == (False, 0, 12.5)

    mqtt = config.mqtt
    assert mqtt is not None
    assert mqtt.url == "wss://[::1]:443/mqtt"
    assert (mqtt.host, mqtt.port, mqtt.tls, mqtt.transport, mqtt.websocket_path) == (
        "::1",
        443,
        True,
        MqttTransport.WEBSOCKETS,
        "/mqtt",
    )
    assert mqtt.protocol is MqttProtocol.V311
    # Relative paths are taken from the config file's directory; "~" is the home directory.
    assert mqtt.ca_file == tmp_path / "certs" / "ca.pem"
    assert mqtt.client_cert == tmp_path / "home" / "certs" / "alex.pem"
    assert mqtt.client_key == Path("/etc/sensorhub/alex.key")
    assert config.storage == StorageConfig(
        path=tmp_path / "sessions" / "alex.db", record_raw=False, retention_days=0, max_size_mb=0
    )


@pytest.mark.parametrize("text", [MINIMAL, BASE, FULL], ids=["minimal", "no-mqtt", "full"])
def test_as_dict_round_trips(tmp_path: Path, text: str) -> None:
    config = load_config(_write(tmp_path, text))
    shown = config.as_dict()
    assert parse_config(shown, path=str(tmp_path / "config.toml")) == config
    assert ("mqtt" in shown) == (config.mqtt is not None)


def test_as_dict_of_example_is_plain_data() -> None:
    shown = load_config(EXAMPLE).as_dict()
    sensors = shown["sensors"]
    assert isinstance(sensors, list)
    assert sensors[0] == {
        "placement": "upper_thoracic",
        "profile": "witmotion_bwt901blecl",
        "address": "C0:FF:EE:00:00:01",
    }
    assert shown["mqtt"] == {
        "url": "mqtt://127.0.0.1:1883",
        "client_id": "sensorhub-alex",
        "keepalive_s": 30,
        "publish_rate_hz": 10.0,
        "discovery": True,
        "discovery_prefix": "homeassistant",
        "outbox_max_messages": 10000,
        "protocol": "5",
    }
    assert type(shown["pipeline"]["estimator"]) is str  # type: ignore[index]


def test_scenario_names_match_the_simulator() -> None:
    scenarios = pytest.importorskip("sensorhub.sim.scenarios")
    assert set(SCENARIO_NAMES) == set(scenarios.SCENARIOS)


@pytest.mark.parametrize("kind", ["simulator", "replay"])
def test_sensors_need_no_address_off_ble(tmp_path: Path, kind: str) -> None:
    text = f'[source]\nkind = "{kind}"\nsession = "s-1"\n\n[[sensors]]\nplacement = "sacral"\nprofile = "thingy52"\n'
    config = load_config(_write(tmp_path, text))
    assert config.sensors[0].address is None
    assert config.sensors[0].name is None


def test_addresses_are_normalised_and_uuids_accepted(tmp_path: Path) -> None:
    text = (
        BASE.replace("C0:FF:EE:00:00:01", "c0:ff:ee:0a:0b:0c")
        + _sensor("sacral", "6e400001-b5a3-f393-e0a9-e50e24dcca9e")
        + '\n[[sensors]]\nplacement = "thoracolumbar"\nprofile = "polar_verity_sense"\nname = "Polar Sense B5A3F393"\n'
    )
    sensors = load_config(_write(tmp_path, text)).sensors
    assert [s.address for s in sensors] == ["C0:FF:EE:0A:0B:0C", "6E400001-B5A3-F393-E0A9-E50E24DCCA9E", None]
    assert sensors[2].name == "Polar Sense B5A3F393"


@pytest.mark.parametrize(
    ("url", "normalised", "port", "tls"),
    [
        ("mqtt://broker.local", "mqtt://broker.local:1883", 1883, False),
        ("mqtts://Broker.Local", "mqtts://broker.local:8883", 8883, True),
        ("mqtt://10.0.0.2:11883/", "mqtt://10.0.0.2:11883", 11883, False),
        ("ws://broker:9001/ws", "ws://broker:9001/ws", 9001, False),
        ("mqtt://[fe80::1]:1884", "mqtt://[fe80::1]:1884", 1884, False),
    ],
)
def test_mqtt_urls(url: str, normalised: str, port: int, tls: bool) -> None:
    config = parse_config(
        {"sensors": [{"placement": "sacral", "profile": "movesense", "name": "x"}], "mqtt": {"url": url}}
    )
    assert config.mqtt is not None
    assert (config.mqtt.url, config.mqtt.port, config.mqtt.tls) == (normalised, port, tls)


def test_wearer_id_allows_utf8_up_to_64_bytes() -> None:
    wearer_id = "ä" * 32  # 2 UTF-8 bytes each
    config = parse_config({"wearer": {"id": wearer_id}, "source": {"kind": "simulator"}, "sensors": [_SACRAL]})
    assert config.wearer.id == wearer_id


_SACRAL = {"placement": "sacral", "profile": "movesense"}


# --------------------------------------------------------------------------------------------
# Bad files: each names the file and the dotted key, and says what is allowed
# --------------------------------------------------------------------------------------------

BAD_CONFIGS = [
    pytest.param(
        MINIMAL + '\n[sensor]\nplacement = "sacral"\n', "sensor", "did you mean 'sensors'?", id="unknown-section"
    ),
    pytest.param(BASE + "\n[alerts]\ndwel_s = 10\n", "alerts.dwel_s", "did you mean 'dwell_s'?", id="unknown-key"),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\npassword = "x"\n', "mqtt.password", "password_file", id="password-key"
    ),
    pytest.param(
        'wearer = "alex"\n' + BASE.replace('[wearer]\nid = "alex"\n', ""),
        "wearer",
        "expected a table",
        id="not-a-table",
    ),
    pytest.param(
        BASE + '\n[alerts]\ndwell_s = "30"\n', "alerts.dwell_s", "expected a number, got string '30'", id="wrong-type"
    ),
    pytest.param(
        BASE + "\n[alerts]\nmax_per_hour = true\n", "alerts.max_per_hour", "expected a whole number", id="bool-not-int"
    ),
    pytest.param(BASE + "\n[alerts]\nmax_per_hour = 2.0\n", "alerts.max_per_hour", "got float 2.0", id="float-not-int"),
    pytest.param(BASE + "\n[alerts]\nbuzz = 1\n", "alerts.buzz", "expected true or false", id="int-not-bool"),
    pytest.param(
        BASE.replace('"upper_thoracic"', '"uper_thoracic"'),
        "sensors[0].placement",
        "choose one of: upper_thoracic, thoracolumbar, sacral (did you mean 'upper_thoracic'?)",
        id="bad-enum",
    ),
    pytest.param(
        BASE.replace("witmotion_bwt901blecl", "witmotion"), "sensors[0].profile", "polar_verity_sense", id="bad-profile"
    ),
    pytest.param(
        BASE + '\n[pipeline]\nestimator = "madgwick"\n', "pipeline.estimator", "vqf, complementary", id="bad-estimator"
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\nprotocol = 5\n', "mqtt.protocol", "'5', '3.1.1'", id="protocol-int"
    ),
    pytest.param(
        BASE + _sensor("upper_thoracic", "C0:FF:EE:00:00:02"),
        "sensors[1].placement",
        "'upper_thoracic' is already used by sensors[0]",
        id="duplicate-placement",
    ),
    pytest.param(
        BASE + _sensor("sacral", "c0:ff:ee:00:00:01"),
        "sensors[1].address",
        "already used by sensors[0]",
        id="duplicate-address",
    ),
    pytest.param('[wearer]\nid = "alex"\n', "sensors", "at least one sensor is required", id="missing-sensors"),
    pytest.param("sensors = []\n", "sensors", "at least one sensor is required", id="empty-sensors"),
    pytest.param(
        '[sensors]\nplacement = "sacral"\nprofile = "movesense"\n',
        "sensors",
        "double brackets",
        id="sensors-single-brackets",
    ),
    pytest.param(
        BASE
        + _sensor("thoracolumbar", "C0:FF:EE:00:00:02")
        + _sensor("sacral", "C0:FF:EE:00:00:03")
        + _sensor("sacral", "C0:FF:EE:00:00:04"),
        "sensors",
        "3 sensors at most (one per placement), got 4",
        id="four-sensors",
    ),
    pytest.param(
        BASE + 'name = "WT901BLE68"\n', "sensors[0].name", "either address or name, not both", id="address-and-name"
    ),
    pytest.param(
        BASE.replace('address = "C0:FF:EE:00:00:01"', ""),
        "sensors[0].address",
        "required when source.kind = 'ble'",
        id="no-address-no-name",
    ),
    pytest.param(
        BASE.replace("C0:FF:EE:00:00:01", "C0:FF:EE:00:00"), "sensors[0].address", "AA:BB:CC:DD:EE:FF", id="bad-mac"
    ),
    pytest.param(BASE.replace('"alex"', '"alex/desk"'), "wearer.id", "must not contain '/'", id="wearer-id-slash"),
    pytest.param(BASE.replace('"alex"', '"alex+"'), "wearer.id", "must not contain '+'", id="wearer-id-plus"),
    pytest.param(
        BASE.replace('"alex"', '"a\\tb"'), "wearer.id", "control characters (found U+0009)", id="wearer-id-tab"
    ),
    pytest.param(BASE.replace('"alex"', '""'), "wearer.id", "must not be empty", id="wearer-id-empty"),
    pytest.param(
        BASE.replace('"alex"', '"' + "é" * 33 + '"'),
        "wearer.id",
        "66 UTF-8 bytes long; 64 at most",
        id="wearer-id-long",
    ),
    pytest.param(
        BASE + '\n[alerts]\nquiet_hours = "10pm-7am"\n', "alerts.quiet_hours", '"HH:MM-HH:MM"', id="quiet-hours-format"
    ),
    pytest.param(
        BASE + '\n[alerts]\nquiet_hours = "22:00-24:30"\n', "alerts.quiet_hours", "impossible time", id="quiet-hours-24"
    ),
    pytest.param(
        BASE + '\n[alerts]\nquiet_hours = "07:00-07:00"\n', "alerts.quiet_hours", "same time", id="quiet-hours-empty"
    ),
    pytest.param(
        BASE + "\n[alerts]\nhysteresis_deg = 10\n",
        "alerts.hysteresis_deg",
        "smaller than every threshold, got 10 ≥ lumbar_threshold_deg = 10",
        id="hysteresis-vs-threshold",
    ),
    pytest.param(
        BASE + "\n[pipeline]\nneutral_duration_s = 3\n", "pipeline.neutral_duration_s", "at least 4", id="neutral-short"
    ),
    pytest.param(BASE + "\n[pipeline]\noutput_rate_hz = nan\n", "pipeline.output_rate_hz", "finite", id="nan"),
    pytest.param(
        BASE + "\n[storage]\nretention_days = -1\n", "storage.retention_days", "at least 0", id="negative-days"
    ),
    pytest.param(BASE + '\n[storage]\npath = ""\n', "storage.path", "must not be empty", id="empty-path"),
    pytest.param(
        BASE + '\n[source]\nkind = "replay"\n', "source.session", "required when source.kind = 'replay'", id="replay"
    ),
    pytest.param(BASE + "\n[source]\nrate_hz = 50\n", "source.rate_hz", "52, 100, 104, 200", id="sim-rate"),
    pytest.param(
        BASE + '\n[source]\nscenario = "desk"\n', "source.scenario", "did you mean 'desk_session'?", id="scenario"
    ),
    pytest.param(BASE + "\n[source]\nspeed = 0\n", "source.speed", "greater than 0", id="speed-zero"),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "http://broker:1883"\n', "mqtt.url", "mqtt://, mqtts:// (TLS)", id="url-scheme"
    ),
    pytest.param(BASE + '\n[mqtt]\nurl = "broker:1883"\n', "mqtt.url", "has no scheme", id="url-no-scheme"),
    pytest.param(BASE + '\n[mqtt]\nurl = "mqtt://:1883"\n', "mqtt.url", "has no host", id="url-no-host"),
    pytest.param(BASE + '\n[mqtt]\nurl = "mqtt://h:99999"\n', "mqtt.url", "1 to 65535", id="url-port"),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtts://u:pw@h"\n',
        "mqtt.url",
        "must not contain a user name or password",
        id="url-creds",
    ),
    pytest.param(BASE + '\n[mqtt]\nusername = "alex"\n', "mqtt.url", "required in [mqtt]", id="url-missing"),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtts://h"\nclient_key = "alex.key"\n',
        "mqtt.client_key",
        "needs client_cert",
        id="key-no-cert",
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\nca_file = "ca.pem"\n', "mqtt.ca_file", "needs a TLS url", id="ca-no-tls"
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\npassword_file = "pw"\npassword_env = "PW"\n',
        "mqtt.password_env",
        "either password_file or password_env",
        id="two-passwords",
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\nprotocol = "3.1.1"\npassword_env = "PW"\n',
        "mqtt.username",
        "3.1.1",
        id="password-without-user-311",
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\npublish_rate_hz = 0\n',
        "mqtt.publish_rate_hz",
        "greater than 0 and at most 100",
        id="rate",
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\noutbox_max_messages = 10\n',
        "mqtt.outbox_max_messages",
        "at least 100",
        id="outbox",
    ),
    pytest.param(
        BASE + '\n[mqtt]\nurl = "mqtt://h"\ndiscovery_prefix = "ha/#"\n', "mqtt.discovery_prefix", "'#'", id="prefix"
    ),
]


@pytest.mark.parametrize(("text", "key", "expected"), BAD_CONFIGS)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message
    assert "\n" not in message
    assert (info.value.path, info.value.key, info.value.exit_code) == (str(path), key, 2)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param('[wearer]\nid = "alex\n', 2, id="unterminated-string"),
        pytest.param(BASE + "\n[alerts]\ndwell_s 30\n", 10, id="missing-equals"),
        pytest.param(BASE + '\n[wearer]\nname = "x"\n', 9, id="table-twice"),
        pytest.param('[wearer]\nid = "a"\nid = "b"\n', 3, id="key-twice"),
        pytest.param("[wearer]\nid =", 2, id="end-of-file"),
    ],
)
def test_toml_syntax_error_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid TOML at "), message
    assert f"line {line}" in message
    assert "\n" not in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the config file: No such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[wearer]\nname = "J\xf6rg"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml: not valid UTF-8 at line 2"):
        load_config(path)


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).wearer.id == "alex"


def test_parse_config_without_a_file_names_the_key_only() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"sensors": [{"placement": "sacral"}]})
    assert str(info.value).startswith("sensors[0].profile: required (choose one of: witmotion_bwt901blecl,")


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "inside", "outside"),
    [
        (
            QuietHours(start=dt.time(22, 0), end=dt.time(7, 0)),
            [dt.time(23, 59), dt.time(0, 0), dt.time(6, 59)],
            [dt.time(7, 0), dt.time(12, 0), dt.time(21, 59)],
        ),
        (
            QuietHours(start=dt.time(12, 0), end=dt.time(13, 30)),
            [dt.time(12, 0), dt.time(13, 29)],
            [dt.time(13, 30), dt.time(11, 59)],
        ),
    ],
)
def test_quiet_hours_contains(window: QuietHours, inside: list[dt.time], outside: list[dt.time]) -> None:
    assert all(window.contains(moment) for moment in inside)
    assert not any(window.contains(moment) for moment in outside)


def test_quiet_hours_render_as_written() -> None:
    assert str(QuietHours(start=dt.time(22, 5), end=dt.time(7, 0))) == "22:05-07:00"


def test_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir("linux") == tmp_path / "xdg"
    # The XDG spec: relative or empty values are ignored.
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert user_data_dir("linux") == home / ".local" / "share"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert user_data_dir("freebsd14") == home / ".local" / "share"
    assert user_data_dir("darwin") == home / "Library" / "Application Support"
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert user_data_dir("win32") == tmp_path / "local"
    monkeypatch.delenv("LOCALAPPDATA")
    assert user_data_dir("win32") == home / "AppData" / "Local"


def test_password_is_read_at_use_and_never_stored(tmp_path: Path) -> None:
    secret = "s3cret-Pa55"
    (tmp_path / "pw").write_text(secret + "\n", encoding="utf-8")
    text = BASE + '\n[mqtt]\nurl = "mqtts://h"\nusername = "alex"\npassword_file = "pw"\n'
    config = load_config(_write(tmp_path, text))
    assert config.mqtt is not None
    assert config.mqtt.read_password() == secret
    assert secret not in repr(config)
    assert secret not in str(config.as_dict())

    from_env = MqttConfig(url="mqtt://h:1883", client_id="c", password_env="SENSORHUB_PW")
    assert from_env.read_password({"SENSORHUB_PW": secret}) == secret
    with pytest.raises(ConfigError, match=r"mqtt\.password_env: environment variable SENSORHUB_PW is not set"):
        from_env.read_password({})
    assert MqttConfig(url="mqtt://h:1883", client_id="c").read_password() is None
    missing = MqttConfig(url="mqtt://h:1883", client_id="c", password_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read the password file"):
        missing.read_password()


def test_records_are_frozen(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.wearer.id = "other"  # type: ignore[misc]
    assert isinstance(config.sensors, tuple)


# --------------------------------------------------------------------------------------------
# `sensorhub config check`
# --------------------------------------------------------------------------------------------


def test_cli_config_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, MINIMAL)
    assert main(["config", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{path}: ok")
    assert captured.err == ""


def test_cli_config_check_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BASE.replace('"upper_thoracic"', '"neck"'))
    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"sensorhub: error: {path}: sensors[0].placement: 'neck' is not allowed; "
        "choose one of: upper_thoracic, thoracolumbar, sacral"
    ]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # cwd = the repository, so `-m sensorhub` finds the package even without an install.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sensorhub", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("use_example", [False, True], ids=["minimal", "example"])
def test_cli_subprocess_ok(tmp_path: Path, use_example: bool) -> None:
    path = EXAMPLE if use_example else _write(tmp_path, MINIMAL)
    result = _run_cli("config", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok (wearer 'alex'; sensors upper_thoracic:witmotion_bwt901blecl")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param(BASE + "\n[alerts]\ndwel_s = 10\n", "alerts.dwel_s: unknown key", id="unknown-key"),
        pytest.param(BASE.replace("C0:FF:EE:00:00:01", "nope"), "sensors[0].address:", id="bad-mac"),
        pytest.param(BASE + '\n[mqtt]\nurl = "tcp://h"\n', "mqtt.url:", id="url-scheme"),
        pytest.param('[wearer]\nid = "alex\n', "invalid TOML at line 2", id="syntax"),
        pytest.param(None, "cannot read the config file", id="missing-file"),
    ],
)
def test_cli_subprocess_bad_is_one_line_exit_2(tmp_path: Path, text: str | None, where: str) -> None:
    path = _write(tmp_path, text) if text is not None else tmp_path / "missing.toml"
    result = _run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sensorhub: error: {path}: {where}")
    assert "Traceback" not in result.stderr
