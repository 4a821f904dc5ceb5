"""Home Assistant MQTT discovery: the retained config messages that make one wearer a device in HA.

One message per entity on ``<prefix>/<component>/<node_id>/<object_id>/config`` (HA's single-component
discovery), all tied to one device per wearer. Entities:

- sensor: thoracic, lumbar and trunk flexion, pelvis tilt (°, measurement), from ``angles``; they
  expire after a few publish periods, so stale values show as unavailable;
- sensor: posture (enum of the :class:`~sensorhub.model.Posture` values), from the retained ``posture``;
- binary_sensor: slouching (on = ``slouched``, unknown while uncalibrated), from ``posture``;
- per placement, from the retained ``sensors/<placement>``: a battery sensor (%) and a connection
  binary_sensor (connectivity), both diagnostic;
- button: calibrate and snooze alerts, publishing to ``cmd/calibrate`` and ``cmd/snooze``.

Every entity is available while ``status`` says ``online``. Choices, with the reasons:

- Angle sensors get whole degrees (the template rounds; the ``angles`` topic keeps 0.01°): HA
  records every state change, and at 10 Hz sub-degree jitter would write tens of rows a second.
- ``default_entity_id`` (``sensor.sensorhub_<wearer>_thoracic_flexion``) and no ``object_id``: HA
  2025.10 replaced the ``object_id`` option with it and 2026.4 ignores ``object_id``.
- The wearer id may hold any Unicode; HA needs ``[a-zA-Z0-9_-]`` in discovery topics and lower-case
  slugs in entity ids, so ids that are not already safe are folded to ASCII and get a short hash
  suffix that keeps distinct wearers distinct (:func:`ha_node_id`).
- Button payloads are the JSON objects :func:`~sensorhub.mqtt.commands.parse_command` accepts,
  sent with QoS 1 and never retained (a retained snooze would fire again on every reconnect).

Removing a device is publishing an empty retained payload on each config topic
(:func:`removal_messages`). HA asks for a re-announcement by publishing ``online`` on
:func:`ha_status_topic`.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sensorhub.model import JsonValue, Posture
from sensorhub.mqtt.payloads import STATUS_OFFLINE, STATUS_ONLINE, encode
from sensorhub.mqtt.topics import Topics

__all__ = [
    "DEFAULT_PREFIX",
    "HA_ONLINE",
    "MANUFACTURER",
    "MODEL",
    "discovery_messages",
    "ha_node_id",
    "ha_status_topic",
    "removal_messages",
]

#: Home Assistant's default discovery prefix.
DEFAULT_PREFIX: Final = "homeassistant"
#: Payload HA publishes on :func:`ha_status_topic` when it (re)starts; republish discovery then.
HA_ONLINE: Final = "online"

MANUFACTURER: Final = "sensorhub"
MODEL: Final = "Posture sensor rig"

# Angle entities: (object id, angles-topic key, display name).
_ANGLE_ENTITIES: Final = (
    ("thoracic_flexion", "thoracic_flexion_deg", "Thoracic flexion"),
    ("lumbar_flexion", "lumbar_flexion_deg", "Lumbar flexion"),
    ("trunk_flexion", "trunk_flexion_deg", "Trunk flexion"),
    ("pelvis_tilt", "pelvis_tilt_deg", "Pelvis tilt"),
)

# HA's discovery topic allows [a-zA-Z0-9_-] in node_id and object_id
# (homeassistant/components/mqtt/discovery.py, TOPIC_MATCHER).
_HA_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_PLACEMENT_RE: Final = re.compile(r"[a-z0-9_]+")
_HASH_HEX: Final = 8

# Seconds an angle value stays valid without a new message: at least this, and at least three
# publish periods, so one or two lost QoS-0 messages do not flicker the entity to unavailable.
_MIN_EXPIRE_AFTER_S: Final = 5
_EXPIRE_PERIODS: Final = 3


def ha_node_id(wearer: str) -> str:
    """The HA-safe id of a (sanitised) wearer, ``[A-Za-z0-9_-]+``.

    An id already made of those characters is returned unchanged. Otherwise every other character
    becomes ``_`` (accents are first folded away: ``Jörg`` → ``Jorg``) and ``_`` plus 8 hex digits of
    the id's BLAKE2s hash is appended, so ``jörg`` and ``jürg`` stay two devices.
    """
    if _HA_ID_RE.fullmatch(wearer):
        return wearer
    ascii_text = unicodedata.normalize("NFKD", wearer).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_")
    digest = hashlib.blake2s(wearer.encode("utf-8"), digest_size=_HASH_HEX // 2).hexdigest()
    return f"{folded}_{digest}" if folded else digest


def _slug(text: str) -> str:
    # HA entity ids are lower-case [a-z0-9_] without leading, trailing or doubled underscores
    # (homeassistant/core.py, VALID_ENTITY_ID).
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", text.lower())).strip("_")


def ha_status_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Topic on which HA announces ``online`` (its birth message) and ``offline``."""
    return f"{prefix}/status"


@dataclass(frozen=True, slots=True)
class _Entity:
    component: str
    object_id: str
    config: dict[str, JsonValue]


def _check_prefix(prefix: str) -> None:
    if (
        not prefix
        or prefix.startswith(("/", "$"))
        or prefix.endswith("/")
        or any(char in "+#" for char in prefix)
        or any(unicodedata.category(char) in ("Cc", "Cs") for char in prefix)
    ):
        raise ValueError(f"{prefix!r} is not a discovery prefix; Home Assistant expects {DEFAULT_PREFIX!r}")


def _check_placements(placements: Sequence[str]) -> None:
    for placement in placements:
        if not isinstance(placement, str) or not _PLACEMENT_RE.fullmatch(placement):
            raise ValueError(f"placement {placement!r} must be lower-case letters, digits and '_'")
    if len(set(placements)) != len(placements):
        raise ValueError(f"placements repeat: {', '.join(placements)}")


def _expire_after_s(publish_rate_hz: float) -> int:
    if not (math.isfinite(publish_rate_hz) and publish_rate_hz > 0):
        raise ValueError(f"publish_rate_hz must be a positive number, got {publish_rate_hz!r}")
    return max(_MIN_EXPIRE_AFTER_S, math.ceil(_EXPIRE_PERIODS / publish_rate_hz))


def _label(placement: str) -> str:
    return placement.replace("_", " ").capitalize()


def _entities(
    topics: Topics, placements: Sequence[str], *, sw_version: str, publish_rate_hz: float, device_name: str | None
) -> list[_Entity]:
    if not sw_version:
        raise ValueError("sw_version must not be empty")
    _check_placements(placements)
    expire_after = _expire_after_s(publish_rate_hz)
    node = ha_node_id(topics.wearer)
    slug = _slug(f"sensorhub_{node}")
    device: dict[str, JsonValue] = {
        "identifiers": [f"sensorhub_{node}"],
        "name": device_name or f"sensorhub {topics.wearer}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": sw_version,
    }
    origin: dict[str, JsonValue] = {"name": "sensorhub", "sw_version": sw_version}

    def entity(component: str, object_id: str, name: str, **config: JsonValue) -> _Entity:
        common: dict[str, JsonValue] = {
            "name": name,
            "unique_id": f"sensorhub_{node}_{object_id}",
            "default_entity_id": f"{component}.{slug}_{_slug(object_id)}",
            "availability_topic": topics.status,
            "payload_available": STATUS_ONLINE,
            "payload_not_available": STATUS_OFFLINE,
            "device": device,
            "origin": origin,
        }
        return _Entity(component, object_id, common | config)

    entities: list[_Entity] = []
    for object_id, key, name in _ANGLE_ENTITIES:
        entities.append(
            entity(
                "sensor",
                object_id,
                name,
                state_topic=topics.angles,
                # null → "None", which HA reads as unknown; numbers → whole degrees (module docstring).
                value_template=(
                    f"{{% set v = value_json.{key} %}}{{{{ v | round | int if v is number else 'None' }}}}"
                ),
                unit_of_measurement="°",
                state_class="measurement",
                suggested_display_precision=0,
                expire_after=expire_after,
                icon="mdi:angle-acute",
            )
        )
    entities.append(
        entity(
            "sensor",
            "posture",
            "Posture",
            state_topic=topics.posture,
            value_template="{{ value_json.posture }}",
            device_class="enum",
            options=[posture.value for posture in Posture],
            icon="mdi:human",
        )
    )
    entities.append(
        entity(
            "binary_sensor",
            "slouching",
            "Slouching",
            state_topic=topics.posture,
            # "None" is HA's unknown: without a calibration there is no telling.
            value_template=(
                "{% set p = value_json.posture %}"
                f"{{{{ 'ON' if p == '{Posture.SLOUCHED.value}' else 'None' if p in "
                f"('{Posture.UNCALIBRATED.value}', '{Posture.UNKNOWN.value}') else 'OFF' }}}}"
            ),
            payload_on="ON",
            payload_off="OFF",
            icon="mdi:human-handsdown",
        )
    )
    for placement in placements:
        label = _label(placement)
        entities.append(
            entity(
                "sensor",
                f"{placement}_battery",
                f"{label} battery",
                state_topic=topics.sensor(placement),
                value_template="{{ value_json.battery_pct }}",
                device_class="battery",
                unit_of_measurement="%",
                state_class="measurement",
                entity_category="diagnostic",
            )
        )
        entities.append(
            entity(
                "binary_sensor",
                f"{placement}_connection",
                f"{label} connection",
                state_topic=topics.sensor(placement),
                value_template="{{ 'ON' if value_json.connected else 'OFF' }}",
                payload_on="ON",
                payload_off="OFF",
                device_class="connectivity",
                entity_category="diagnostic",
            )
        )
    entities.append(
        entity(
            "button",
            "calibrate",
            "Calibrate",
            command_topic=topics.cmd("calibrate"),
            payload_press='{"functional":false}',
            qos=1,
            retain=False,
            entity_category="config",
            icon="mdi:crosshairs",
        )
    )
    entities.append(
        entity(
            "button",
            "snooze",
            "Snooze alerts",
            command_topic=topics.cmd("snooze"),
            payload_press="{}",
            qos=1,
            retain=False,
            icon="mdi:bell-sleep",
        )
    )
    return entities


def _config_topic(prefix: str, topics: Topics, entity: _Entity) -> str:
    return f"{prefix}/{entity.component}/sensorhub_{ha_node_id(topics.wearer)}/{entity.object_id}/config"


def discovery_messages(
    topics: Topics,
    placements: Sequence[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    sw_version: str,
    publish_rate_hz: float = 10.0,
    device_name: str | None = None,
) -> list[tuple[str, bytes]]:
    """The retained discovery config messages of one wearer, as ``(topic, payload)`` pairs.

    Publish each with QoS 1 and retain (:data:`~sensorhub.mqtt.topics.DELIVERY` ``["discovery"]``),
    at start and whenever HA publishes ``online`` on :func:`ha_status_topic`.

    Args:
        topics: the wearer's topics.
        placements: placements of the configured sensors (e.g. ``["upper_thoracic", "sacral"]``);
            each gets a battery sensor and a connection binary sensor.
        prefix: HA discovery prefix (``[mqtt] discovery_prefix``).
        sw_version: sensorhub version shown on the device page.
        publish_rate_hz: rate of the ``angles`` topic (``[mqtt] publish_rate_hz``); sets how long an
            angle stays valid without a new message (three periods, at least 5 s).
        device_name: device name in HA (e.g. ``[wearer] name``); ``sensorhub <wearer>`` by default.

    Raises:
        ValueError: a malformed prefix, placement, rate or an empty ``sw_version``.
    """
    _check_prefix(prefix)
    entities = _entities(
        topics, placements, sw_version=sw_version, publish_rate_hz=publish_rate_hz, device_name=device_name
    )
    return [(_config_topic(prefix, topics, entity), encode(entity.config)) for entity in entities]


def removal_messages(
    topics: Topics,
    placements: Sequence[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    sw_version: str,
    publish_rate_hz: float = 10.0,
    device_name: str | None = None,
) -> list[tuple[str, bytes]]:
    """The messages that remove the wearer's entities from HA: each config topic, empty payload.

    Publish retained (an empty retained message also clears the broker's copy). Same arguments as
    :func:`discovery_messages`, which makes the topics match.
    """
    _check_prefix(prefix)
    entities = _entities(
        topics, placements, sw_version=sw_version, publish_rate_hz=publish_rate_hz, device_name=device_name
    )
    return [(_config_topic(prefix, topics, entity), b"") for entity in entities]
