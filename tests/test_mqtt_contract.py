"""The topics v1 contract end to end: what a running publisher puts on a real broker validates
against the JSON Schemas in docs/mqtt/schemas/ (DESIGN §7), for every topic, on both brokers."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiomqtt
import jsonschema
from brokers import BrokerHandle, Subscriber

from sensorhub.config import MqttConfig, MqttProtocol
from sensorhub.mqtt.outbox import Outbox
from sensorhub.mqtt.publisher import MqttPublisher

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "mqtt" / "schemas"
WEARER = "contract"
PLACEMENTS = ("upper_thoracic", "thoracolumbar", "sacral")


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _schema_for(topic: str) -> str | None:
    """The schema that governs a topic of the wearer's tree (None for discovery configs)."""
    parts = topic.split("/")
    if parts[0] != "sensorhub":
        return None
    rest = parts[2:]
    if rest[0] == "sensors":
        return "sensor"
    if rest[0] == "cmd":
        return f"cmd-{rest[1]}"
    return rest[0]


async def test_every_v1_topic_carries_schema_valid_payloads(mqtt_broker: BrokerHandle, tmp_path: Path) -> None:
    protocol = MqttProtocol.V311 if mqtt_broker.kind == "amqtt" else MqttProtocol.V5
    config = MqttConfig(url=mqtt_broker.url, client_id=f"contract-{uuid.uuid4().hex[:8]}", protocol=protocol)
    with Outbox(tmp_path / "outbox.db") as outbox:
        publisher = MqttPublisher(config, WEARER, outbox=outbox, placements=PLACEMENTS, sw_version="0.0.0-test")
        async with Subscriber(mqtt_broker, "sensorhub/#", "homeassistant/#") as sub:
            task = asyncio.create_task(publisher.run(), name="contract-publisher")
            try:
                await sub.wait_for(1, topic=f"sensorhub/{WEARER}/status")
                t = 1795700000.0
                publisher.publish_angles(
                    t,
                    {"thoracic_flexion_deg": 12.3, "lumbar_flexion_deg": None, "trunk_flexion_deg": 15.0},
                    "slouched",
                )
                publisher.publish_posture(t, "slouched", t - 40.0)
                for placement in PLACEMENTS:
                    publisher.publish_sensor(
                        placement, t=t, connected=True, battery_pct=80.0, rssi=-60, rate_hz=100.0, dropped=0
                    )
                publisher.publish_session("s-1", t - 600.0, {"upright_pct": 80.5, "slouch_episodes": 1})
                publisher.publish_alert(t, "slouch", "start", 0.0, segment="thoracic", episode=1)
                publisher.publish_alert(t + 60, "slouch", "end", 60.0, segment="thoracic", episode=1)
                rom = {"thoracic": 20.0, "lumbar": 12.5, "trunk": 30.0, "pelvis": None}
                publisher.publish_exercise(
                    t, {"type": "rep", "start_t": t - 8, "end_t": t, "rom_deg": rom, "too_fast": False}
                )
                async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, timeout=5) as commander:
                    await commander.publish(f"sensorhub/{WEARER}/cmd/snooze", b'{"minutes": 9999}', qos=1)
                for topic in ("angles", "posture", "session", "alerts", "exercise", "errors"):
                    await sub.wait_for(1, topic=f"sensorhub/{WEARER}/{topic}", timeout=10)
                await sub.wait_for(len(PLACEMENTS), topic=f"sensorhub/{WEARER}/sensors/+", timeout=10)
                await sub.wait_for(2, topic=f"sensorhub/{WEARER}/alerts", timeout=10)
            finally:
                task.cancel()
                await asyncio.wait([task], timeout=6)
            await sub.wait_for(2, topic=f"sensorhub/{WEARER}/status")
    seen: set[str] = set()
    for message in sub.messages:
        name = _schema_for(message.topic)
        if message.topic.startswith("homeassistant/"):
            assert json.loads(message.payload)["device"]["identifiers"] == [f"sensorhub_{WEARER}"]
            continue
        if name is None or name.startswith("cmd-"):
            continue
        value = message.text if name == "status" else message.json()
        _validator(name).validate(value)
        seen.add(name)
    assert seen == {"status", "angles", "posture", "sensor", "session", "alerts", "exercise", "errors"}
    statuses = [m.text for m in sub.matching(f"sensorhub/{WEARER}/status")]
    assert statuses[0] == "online"
    assert statuses[-1] == "offline"
    assert any(m.topic.startswith("homeassistant/") for m in sub.messages)


def test_command_examples_in_the_docs_validate() -> None:
    """The command payloads docs/mqtt.md shows are accepted by their schemas."""
    examples = {
        "cmd-calibrate": {"functional": False, "neutral_s": 10},
        "cmd-snooze": {"minutes": 30},
        "cmd-exercise": {"action": "start", "reps": 10},
        "cmd-pain": {"region": "lower", "level": 6},
    }
    for name, payload in examples.items():
        _validator(name).validate(payload)
    _validator("cmd-exercise").validate({"action": "stop"})
