"""Home Assistant MQTT discovery messages, checked against facts taken from Home Assistant's source.

The facts below are Home Assistant's rules written out as data (keys each platform's discovery
schema accepts, the valid device/state classes, the topic and entity-id patterns). They were read
from the files cited next to each one in home-assistant/core (dev branch, 2026, the probatio-era
schemas); when HA changes a rule, update the fact and the citation together.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sensorhub.errors import ConfigError
from sensorhub.model import Placement, Posture
from sensorhub.mqtt.commands import CalibrateCommand, SnoozeCommand, parse_command
from sensorhub.mqtt.discovery import (
    DEFAULT_PREFIX,
    discovery_messages,
    ha_node_id,
    ha_status_topic,
    removal_messages,
)
from sensorhub.mqtt.topics import Topics


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- Home Assistant facts ----------------------------------------------------------------------

# homeassistant/components/mqtt/schemas.py: _MQTT_AVAILABILITY_SINGLE_SCHEMA, _MQTT_AVAILABILITY_LIST_SCHEMA
# and MQTT_ENTITY_COMMON_SCHEMA (every entity platform extends it).
HA_COMMON_KEYS = frozenset(
    {
        "availability_topic",
        "availability_template",
        "payload_available",
        "payload_not_available",
        "availability_mode",
        "availability",
        "device",
        "entity_picture",
        "origin",
        "enabled_by_default",
        "entity_category",
        "icon",
        "json_attributes_topic",
        "json_attributes_template",
        "default_entity_id",
        "message_expiry_interval",
        "unique_id",
        "visible_by_default",
    }
)
# homeassistant/components/mqtt/config.py: SCHEMA_BASE (MQTT_BASE_SCHEMA) and MQTT_RO_SCHEMA.
HA_BASE_KEYS = frozenset({"qos", "encoding", "group"})
HA_RO_KEYS = HA_BASE_KEYS | {"state_topic", "value_template"}
# homeassistant/components/mqtt/sensor.py: _PLATFORM_SCHEMA_BASE.
HA_SENSOR_KEYS = (
    HA_COMMON_KEYS
    | HA_RO_KEYS
    | {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "name",
        "options",
        "suggested_display_precision",
        "state_class",
        "unit_of_measurement",
    }
)
# homeassistant/components/mqtt/binary_sensor.py: PLATFORM_SCHEMA_MODERN.
HA_BINARY_SENSOR_KEYS = (
    HA_COMMON_KEYS
    | HA_RO_KEYS
    | {"device_class", "expire_after", "force_update", "name", "off_delay", "payload_off", "payload_on"}
)
# homeassistant/components/mqtt/button.py: PLATFORM_SCHEMA_MODERN (extends MQTT_BASE_SCHEMA, not RO).
HA_BUTTON_KEYS = (
    HA_COMMON_KEYS
    | HA_BASE_KEYS
    | {"command_template", "command_topic", "device_class", "name", "payload_press", "retain"}
)
HA_KEYS = {"sensor": HA_SENSOR_KEYS, "binary_sensor": HA_BINARY_SENSOR_KEYS, "button": HA_BUTTON_KEYS}
# Required keys: state_topic (MQTT_RO_SCHEMA) and command_topic (button.py); unique_id ties an entity
# to the device registry (the `device` key "only works when unique_id is set", sensor.mqtt docs).
HA_REQUIRED = {
    "sensor": {"state_topic", "unique_id"},
    "binary_sensor": {"state_topic", "unique_id"},
    "button": {"command_topic", "unique_id"},
}
# homeassistant/components/mqtt/schemas.py: MQTT_ENTITY_DEVICE_INFO_SCHEMA and MQTT_ORIGIN_INFO_SCHEMA.
HA_DEVICE_KEYS = frozenset(
    {
        "identifiers",
        "connections",
        "manufacturer",
        "model",
        "model_id",
        "name",
        "hw_version",
        "serial_number",
        "sw_version",
        "via_device",
        "suggested_area",
        "configuration_url",
    }
)
HA_ORIGIN_KEYS = frozenset({"name", "sw_version", "support_url"})
HA_ORIGIN_REQUIRED = frozenset({"name"})
# homeassistant/components/sensor/const.py: SensorDeviceClass and SensorStateClass.
HA_SENSOR_DEVICE_CLASSES = words(
    "date enum timestamp apparent_power aqi area atmospheric_pressure battery "
    "blood_glucose_concentration carbon_monoxide carbon_dioxide conductivity current data_rate data_size "
    "distance duration energy energy_distance energy_storage frequency gas humidity illuminance "
    "irradiance moisture monetary nitrogen_dioxide nitrogen_monoxide nitrous_oxide ozone ph pm1 pm10 "
    "pm25 power_factor power precipitation precipitation_intensity pressure reactive_power "
    "signal_strength sound_pressure speed sulphur_dioxide temperature volatile_organic_compounds "
    "volatile_organic_compounds_parts voltage volume volume_storage volume_flow_rate water weight "
    "wind_direction wind_speed"
)
HA_SENSOR_STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
# homeassistant/components/sensor/const.py: DEVICE_CLASS_UNITS[SensorDeviceClass.BATTERY] == {PERCENTAGE}.
HA_BATTERY_UNITS = frozenset({"%"})
# homeassistant/components/binary_sensor/__init__.py: BinarySensorDeviceClass.
HA_BINARY_SENSOR_DEVICE_CLASSES = words(
    "battery battery_charging carbon_monoxide cold connectivity door garage_door gas heat light lock "
    "moisture motion moving occupancy opening plug power presence problem running safety smoke sound "
    "tamper update vibration window"
)
# homeassistant/components/button/__init__.py: ButtonDeviceClass.
HA_BUTTON_DEVICE_CLASSES = frozenset({"identify", "restart", "update"})
# homeassistant/const.py: EntityCategory; sensor.mqtt docs: "the entity category must be diagnostic for sensors".
HA_ENTITY_CATEGORIES = frozenset({"config", "diagnostic"})
# homeassistant/components/mqtt/discovery.py: TOPIC_MATCHER (after the discovery prefix).
HA_TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
# homeassistant/core.py (helpers since 2025): VALID_ENTITY_ID.
HA_VALID_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
# homeassistant/components/mqtt/const.py: DEFAULT_PAYLOAD_AVAILABLE / DEFAULT_PAYLOAD_NOT_AVAILABLE, PAYLOAD_NONE.
HA_PAYLOAD_NONE = "None"

# -----------------------------------------------------------------------------------------------

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "mqtt" / "schemas"
PLACEMENTS = [p.value for p in Placement]
TOPICS = Topics.for_wearer("alex")


def configs(messages: list[tuple[str, bytes]], prefix: str = DEFAULT_PREFIX) -> list[tuple[str, dict[str, Any]]]:
    """(component, config) of each message, checking the topic on the way."""
    out = []
    for topic, payload in messages:
        assert topic.startswith(prefix + "/")
        match = HA_TOPIC_MATCHER.fullmatch(topic[len(prefix) + 1 :])
        assert match is not None, topic
        config = json.loads(payload)
        assert topic == f"{prefix}/{match['component']}/{match['node_id']}/{match['object_id']}/config"
        out.append((match["component"], config))
    return out


ALEX = configs(discovery_messages(TOPICS, PLACEMENTS, sw_version="0.1.0"))


def by_unique_id(suffix: str) -> dict[str, Any]:
    [config] = [config for _, config in ALEX if config["unique_id"] == f"sensorhub_alex_{suffix}"]
    return config


def test_entity_set() -> None:
    assert sorted((component, config["unique_id"]) for component, config in ALEX) == sorted(
        [
            ("sensor", "sensorhub_alex_thoracic_flexion"),
            ("sensor", "sensorhub_alex_lumbar_flexion"),
            ("sensor", "sensorhub_alex_trunk_flexion"),
            ("sensor", "sensorhub_alex_pelvis_tilt"),
            ("sensor", "sensorhub_alex_posture"),
            ("binary_sensor", "sensorhub_alex_slouching"),
            *[("sensor", f"sensorhub_alex_{p}_battery") for p in PLACEMENTS],
            *[("binary_sensor", f"sensorhub_alex_{p}_connection") for p in PLACEMENTS],
            ("button", "sensorhub_alex_calibrate"),
            ("button", "sensorhub_alex_snooze"),
        ]
    )
    topics = [topic for topic, _ in discovery_messages(TOPICS, PLACEMENTS, sw_version="0.1.0")]
    assert "homeassistant/sensor/sensorhub_alex/thoracic_flexion/config" in topics
    assert "homeassistant/binary_sensor/sensorhub_alex/upper_thoracic_connection/config" in topics
    assert len(set(topics)) == len(topics)


@pytest.mark.parametrize(("component", "config"), ALEX, ids=[c["unique_id"] for _, c in ALEX])
def test_every_key_is_one_home_assistant_documents(component: str, config: dict[str, Any]) -> None:
    assert set(config) <= HA_KEYS[component], set(config) - HA_KEYS[component]
    assert HA_REQUIRED[component] <= set(config)
    assert "object_id" not in config  # removed from the schema in HA 2026.4; default_entity_id replaces it
    assert set(config["device"]) <= HA_DEVICE_KEYS
    assert config["device"]["identifiers"] == ["sensorhub_alex"]
    assert set(config["origin"]) <= HA_ORIGIN_KEYS
    assert set(config["origin"]) >= HA_ORIGIN_REQUIRED


@pytest.mark.parametrize(("component", "config"), ALEX, ids=[c["unique_id"] for _, c in ALEX])
def test_classes_and_categories_are_valid_home_assistant_values(component: str, config: dict[str, Any]) -> None:
    device_classes = {
        "sensor": HA_SENSOR_DEVICE_CLASSES,
        "binary_sensor": HA_BINARY_SENSOR_DEVICE_CLASSES,
        "button": HA_BUTTON_DEVICE_CLASSES,
    }[component]
    if "device_class" in config:
        assert config["device_class"] in device_classes
    if "state_class" in config:
        assert config["state_class"] in HA_SENSOR_STATE_CLASSES
    if "entity_category" in config:
        assert config["entity_category"] in HA_ENTITY_CATEGORIES
        if component in ("sensor", "binary_sensor"):
            assert config["entity_category"] == "diagnostic"
    if config.get("device_class") == "battery":
        assert config["unit_of_measurement"] in HA_BATTERY_UNITS
    # homeassistant/components/mqtt/sensor.py, validate_sensor_state_and_device_class_config:
    if "options" in config:
        assert config["options"], "an empty options list is not allowed"
        assert config["device_class"] == "enum"
        assert "state_class" not in config
        assert "unit_of_measurement" not in config
    if "icon" in config:
        assert re.fullmatch(r"mdi:[a-z0-9-]+", config["icon"])


@pytest.mark.parametrize(("component", "config"), ALEX, ids=[c["unique_id"] for _, c in ALEX])
def test_ids_availability_and_device(component: str, config: dict[str, Any]) -> None:
    default_entity_id = config["default_entity_id"]
    assert HA_VALID_ENTITY_ID.match(default_entity_id)
    assert default_entity_id == f"{component}.{config['unique_id']}"
    assert config["availability_topic"] == "sensorhub/alex/status"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    assert config["device"] == {
        "identifiers": ["sensorhub_alex"],
        "name": "sensorhub alex",
        "manufacturer": "sensorhub",
        "model": "Posture sensor rig",
        "sw_version": "0.1.0",
    }
    assert config["origin"] == {"name": "sensorhub", "sw_version": "0.1.0"}
    assert not config["name"].lower().startswith("sensorhub alex")  # HA strips a device-name prefix and warns


def schema_properties(name: str) -> set[str]:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text("utf-8"))
    return set(schema["properties"])


@pytest.mark.parametrize(("component", "config"), ALEX, ids=[c["unique_id"] for _, c in ALEX])
def test_templates_read_keys_the_state_topic_carries(component: str, config: dict[str, Any]) -> None:
    if component == "button":
        return
    schema = {
        "sensorhub/alex/angles": "angles",
        "sensorhub/alex/posture": "posture",
        **{f"sensorhub/alex/sensors/{p}": "sensor" for p in PLACEMENTS},
    }[config["state_topic"]]
    used = set(re.findall(r"value_json\.(\w+)", config["value_template"]))
    assert used
    assert used <= schema_properties(schema)


def test_angle_sensors() -> None:
    config = by_unique_id("thoracic_flexion")
    assert config["state_topic"] == "sensorhub/alex/angles"
    # Whole degrees (fewer state writes at 10 Hz); JSON null renders HA's "None", i.e. unknown.
    assert config["value_template"] == (
        "{% set v = value_json.thoracic_flexion_deg %}{{ v | round | int if v is number else '"
        + HA_PAYLOAD_NONE
        + "' }}"
    )
    assert (config["unit_of_measurement"], config["state_class"]) == ("°", "measurement")
    assert config["suggested_display_precision"] == 0
    assert config["expire_after"] == 5
    assert "device_class" not in config  # HA has no device class for body angles


@pytest.mark.parametrize(("rate_hz", "expire_after"), [(10.0, 5), (1.0, 5), (0.5, 6), (0.1, 30), (100.0, 5)])
def test_angles_expire_after_three_publish_periods_at_least_5_s(rate_hz: float, expire_after: int) -> None:
    messages = configs(discovery_messages(TOPICS, [], sw_version="0.1.0", publish_rate_hz=rate_hz))
    assert {config["expire_after"] for _, config in messages if "expire_after" in config} == {expire_after}


def test_posture_and_slouching_read_the_retained_posture_topic() -> None:
    posture = by_unique_id("posture")
    assert posture["state_topic"] == "sensorhub/alex/posture"
    assert posture["device_class"] == "enum"
    assert posture["options"] == [p.value for p in Posture]
    assert posture["value_template"] == "{{ value_json.posture }}"
    slouching = by_unique_id("slouching")
    assert slouching["state_topic"] == "sensorhub/alex/posture"
    assert slouching["value_template"] == (
        "{% set p = value_json.posture %}"
        "{{ 'ON' if p == 'slouched' else '" + HA_PAYLOAD_NONE + "' if p in ('uncalibrated', 'unknown') else 'OFF' }}"
    )
    assert (slouching["payload_on"], slouching["payload_off"]) == ("ON", "OFF")


def test_per_placement_battery_and_connection() -> None:
    battery = by_unique_id("sacral_battery")
    assert battery["state_topic"] == "sensorhub/alex/sensors/sacral"
    assert battery["value_template"] == "{{ value_json.battery_pct }}"
    assert (battery["device_class"], battery["unit_of_measurement"]) == ("battery", "%")
    assert battery["name"] == "Sacral battery"
    link = by_unique_id("upper_thoracic_connection")
    assert link["state_topic"] == "sensorhub/alex/sensors/upper_thoracic"
    assert link["device_class"] == "connectivity"
    assert link["value_template"] == "{{ 'ON' if value_json.connected else 'OFF' }}"
    assert link["name"] == "Upper thoracic connection"


def test_buttons_send_payloads_the_command_parser_accepts() -> None:
    calibrate, snooze = by_unique_id("calibrate"), by_unique_id("snooze")
    assert calibrate["command_topic"] == "sensorhub/alex/cmd/calibrate"
    assert snooze["command_topic"] == "sensorhub/alex/cmd/snooze"
    for button in (calibrate, snooze):
        assert (button["qos"], button["retain"]) == (1, False)  # a retained command would fire on every reconnect
        name = TOPICS.command_name(button["command_topic"])
        assert name is not None
        schema = json.loads((SCHEMA_DIR / f"cmd-{name}.schema.json").read_text("utf-8"))
        Draft202012Validator(schema).validate(json.loads(button["payload_press"]))
    assert parse_command("calibrate", calibrate["payload_press"].encode()) == CalibrateCommand()
    assert parse_command("snooze", snooze["payload_press"].encode()) == SnoozeCommand(minutes=None)


def test_removal_messages_empty_every_config_topic() -> None:
    found = discovery_messages(TOPICS, PLACEMENTS, sw_version="0.1.0")
    removed = removal_messages(TOPICS, PLACEMENTS, sw_version="0.1.0")
    assert [topic for topic, _ in removed] == [topic for topic, _ in found]
    assert {payload for _, payload in removed} == {b""}


def test_device_name_prefix_and_root_are_honoured() -> None:
    topics = Topics.for_wearer("alex", root="home/sensorhub")
    messages = discovery_messages(topics, ["sacral"], prefix="ha", sw_version="1.2.3", device_name="Alex's desk")
    for component, config in configs(messages, prefix="ha"):
        assert config["device"]["name"] == "Alex's desk"
        assert config["device"]["sw_version"] == "1.2.3"
        assert config["availability_topic"] == "home/sensorhub/alex/status"
        if component != "button":
            assert config["state_topic"].startswith("home/sensorhub/alex/")
    assert ha_status_topic() == "homeassistant/status"
    assert ha_status_topic("ha") == "ha/status"


def test_non_ascii_wearers_get_safe_distinct_ids() -> None:
    assert ha_node_id("alex") == "alex"
    assert ha_node_id("Alex-Smith_2") == "Alex-Smith_2"
    jorg, jurg = ha_node_id("jörg"), ha_node_id("jürg")
    assert re.fullmatch(r"jorg_[0-9a-f]{8}", jorg)
    assert re.fullmatch(r"jurg_[0-9a-f]{8}", jurg)
    assert re.fullmatch(r"[0-9a-f]{8}", ha_node_id("日本語"))
    assert ha_node_id("a b") != ha_node_id("a_b")  # cannot happen after sanitising, but stays distinct
    [(_, config), *_] = configs(discovery_messages(Topics.for_wearer("Jörg"), [], sw_version="0.1.0"))
    node_id = ha_node_id("Jörg")
    assert re.fullmatch(r"Jorg_[0-9a-f]{8}", node_id)
    assert config["unique_id"] == f"sensorhub_{node_id}_thoracic_flexion"
    assert config["default_entity_id"] == f"sensor.sensorhub_{node_id.lower()}_thoracic_flexion"
    assert config["availability_topic"] == "sensorhub/Jörg/status"  # MQTT topics keep the real name


@given(st.text(st.characters(exclude_categories=()), min_size=1, max_size=80))
def test_any_wearer_gives_valid_home_assistant_ids(raw: str) -> None:
    try:
        topics = Topics.for_wearer(raw)
    except ConfigError:
        return
    node_id = ha_node_id(topics.wearer)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", node_id)
    for component, config in configs(discovery_messages(topics, ["sacral"], sw_version="0.1.0")):
        assert HA_VALID_ENTITY_ID.match(config["default_entity_id"]), config["default_entity_id"]
        assert config["default_entity_id"].startswith(component + ".")
        assert config["availability_topic"] == topics.status


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": ""}, "not a discovery prefix"),
        ({"prefix": "home/"}, "not a discovery prefix"),
        ({"prefix": "$ha"}, "not a discovery prefix"),
        ({"prefix": "ha/+"}, "not a discovery prefix"),
        ({"placements": ["Upper thoracic"]}, "lower-case letters"),
        ({"placements": ["sacral", "sacral"]}, "placements repeat"),
        ({"sw_version": ""}, "sw_version"),
        ({"publish_rate_hz": 0.0}, "publish_rate_hz"),
        ({"publish_rate_hz": float("nan")}, "publish_rate_hz"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"placements": ["sacral"], "sw_version": "0.1.0"} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        discovery_messages(TOPICS, **args)
    with pytest.raises(ValueError, match=re.escape(message)):
        removal_messages(TOPICS, **args)
