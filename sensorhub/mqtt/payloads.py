"""JSON payloads of the MQTT v1 topics (DESIGN §7), one builder per topic, and the wire encoding.

Each builder returns the JSON object of its topic, ready for :func:`encode`; the schemas in
``docs/mqtt/schemas/`` describe them and the tests validate every builder against them. Builders
check their arguments and raise ``ValueError`` for values the contract cannot carry (an unknown
posture, a negative duration), so a programming mistake never reaches a dashboard.

Numbers are rounded to what the measurement supports, which also keeps the messages short:

- times and durations (``t``, ``since``, ``started``, ``ended``, ``*_t``, ``*_s``): 0.001 s;
- angles (``*_deg``, and numbers nested under such a key, e.g. ``rom_deg``): 0.01°;
- ``*_pct``: 0.1; ``*_hz``: 0.01 Hz; other numbers as given.

Non-finite numbers (NaN, ±inf) become ``null``: in JSON they would be invalid, and "not available"
is what they mean. ``-0.0`` becomes ``0.0``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any, Final

from sensorhub.model import JsonValue, Posture

__all__ = [
    "ALERT_STATES",
    "ANGLE_DECIMALS",
    "ANGLE_KEYS",
    "EXERCISE_EVENT_TYPES",
    "MAX_EXCERPT_CHARS",
    "OPTIONAL_ANGLE_KEYS",
    "ROM_REGIONS",
    "STATUS_OFFLINE",
    "STATUS_ONLINE",
    "TIME_DECIMALS",
    "alert_payload",
    "angles_payload",
    "encode",
    "error_payload",
    "exercise_payload",
    "posture_payload",
    "sensor_payload",
    "session_payload",
    "status_payload",
]

#: Payload of the ``status`` topic while sensorhub runs (plain text, not JSON).
STATUS_ONLINE: Final = "online"
#: Payload of the ``status`` topic after a clean stop, and the will message.
STATUS_OFFLINE: Final = "offline"

#: Angle keys of the ``angles`` payload, always present (null when the sensors cannot give them).
ANGLE_KEYS: Final = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg")
#: Angle keys present only when the caller passes them (DESIGN §3: upper_thoracic + sacral rigs).
OPTIONAL_ANGLE_KEYS: Final = ("spine_flexion_deg",)

#: Decimals kept for angles (0.01°) and for times and durations (0.001 s).
ANGLE_DECIMALS: Final = 2
TIME_DECIMALS: Final = 3
_PCT_DECIMALS: Final = 1
_HZ_DECIMALS: Final = 2

#: Values of ``state`` in an ``alerts`` payload.
ALERT_STATES: Final = ("start", "end")
#: Values of ``type`` in an ``exercise`` payload.
EXERCISE_EVENT_TYPES: Final = ("rep", "set", "pain_stop")
#: Regions of ``rom_deg`` in a rep or set event (DESIGN §6).
ROM_REGIONS: Final = ("thoracic", "lumbar", "trunk", "pelvis")

#: Longest excerpt of an offending payload in an ``errors`` message, in characters (plus "…").
MAX_EXCERPT_CHARS: Final = 200
_MAX_MESSAGE_CHARS: Final = 1000

# Bluetooth Core 5.4, Vol 4, Part E, §7.5.4: an HCI RSSI is a signed byte from -127 to +20 dBm.
_RSSI_RANGE_DBM: Final = (-127, 20)

_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_TIME_KEYS: Final = frozenset({"t", "since", "started", "ended"})


def _round(value: float, ndigits: int) -> float | None:
    if not math.isfinite(value):
        return None
    # Adding 0.0 turns -0.0 (e.g. round(-0.001, 2)) into 0.0.
    return round(value, ndigits) + 0.0


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _time(value: float, what: str = "t") -> float:
    rounded = _round(_number(value, what), TIME_DECIMALS)
    if rounded is None:
        raise ValueError(f"{what} must be a finite time in seconds, got {value!r}")
    return rounded


def _optional(
    value: object, what: str, ndigits: int, low: float | None = None, high: float | None = None
) -> float | None:
    if value is None:
        return None
    number = _number(value, what)
    if math.isfinite(number) and ((low is not None and number < low) or (high is not None and number > high)):
        span = " ".join(
            part for part in ("" if low is None else f"from {low:g}", "" if high is None else f"to {high:g}") if part
        )
        raise ValueError(f"{what} must be {span}, got {value!r}")
    return _round(number, ndigits)


def _posture(posture: str) -> str:
    try:
        return Posture(posture).value
    except ValueError:
        raise ValueError(f"unknown posture {posture!r}; one of {', '.join(p.value for p in Posture)}") from None


def _digits_for(key: str, inherited: int | None) -> int | None:
    if key in _TIME_KEYS or key.endswith(("_t", "_s")):
        return TIME_DECIMALS
    if key.endswith("_deg"):
        return ANGLE_DECIMALS
    if key.endswith("_pct"):
        return _PCT_DECIMALS
    if key.endswith("_hz"):
        return _HZ_DECIMALS
    return inherited


def _clean(value: object, ndigits: int | None, where: str) -> JsonValue:
    """A JSON-ready copy of ``value``: floats rounded by key, non-finite floats as None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            return None
        return number if ndigits is None else _round(number, ndigits)
    if isinstance(value, Mapping):
        return _clean_mapping(value, ndigits, where)
    if isinstance(value, list | tuple):
        return [_clean(item, ndigits, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ValueError(f"{where}: {type(value).__name__} is not JSON data")


def _clean_mapping(value: Mapping[Any, object], ndigits: int | None, where: str) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {key!r}")
        out[key] = _clean(item, _digits_for(key, ndigits), f"{where}.{key}")
    return out


def _clean_fields(fields: Mapping[str, object], where: str) -> dict[str, JsonValue]:
    return _clean_mapping(fields, None, where)


def status_payload(online: bool) -> bytes:
    """The ``status`` payload: ``online`` or ``offline`` as plain UTF-8 text (not JSON)."""
    return (STATUS_ONLINE if online else STATUS_OFFLINE).encode("ascii")


def angles_payload(t: float, angles: Mapping[str, float | None], posture: str) -> dict[str, JsonValue]:
    """The ``angles`` payload.

    Keys, in this order: ``t``, the four :data:`ANGLE_KEYS`, ``posture``; then ``spine_flexion_deg``
    when ``angles`` has that key (DESIGN §3 computes it for upper_thoracic + sacral rigs; consumers
    must ignore keys they do not know). A missing or NaN angle is ``null``.

    Args:
        t: epoch seconds of the sample.
        angles: degrees relative to the calibrated neutral, + = flexion, keyed by
            :data:`ANGLE_KEYS` / :data:`OPTIONAL_ANGLE_KEYS`; None or NaN = not available.
        posture: a :class:`~sensorhub.model.Posture` value.

    Raises:
        ValueError: an unknown key in ``angles``, an unknown posture, or a non-finite ``t``.
    """
    unknown = sorted(set(angles) - set(ANGLE_KEYS) - set(OPTIONAL_ANGLE_KEYS))
    if unknown:
        allowed = ", ".join(ANGLE_KEYS + OPTIONAL_ANGLE_KEYS)
        raise ValueError(f"unknown angle key(s) {', '.join(unknown)}; allowed: {allowed}")
    out: dict[str, JsonValue] = {"t": _time(t)}
    for key in ANGLE_KEYS:
        out[key] = _optional(angles.get(key), key, ANGLE_DECIMALS)
    out["posture"] = _posture(posture)
    for key in OPTIONAL_ANGLE_KEYS:
        if key in angles:
            out[key] = _optional(angles[key], key, ANGLE_DECIMALS)
    return out


def posture_payload(t: float, posture: str, since: float) -> dict[str, JsonValue]:
    """The retained ``posture`` payload ``{"t", "posture", "since"}``.

    Args:
        t: epoch seconds of this message.
        posture: a :class:`~sensorhub.model.Posture` value.
        since: epoch seconds when this posture began.

    Raises:
        ValueError: an unknown posture or a non-finite time.
    """
    return {"t": _time(t), "posture": _posture(posture), "since": _time(since, "since")}


def alert_payload(
    t: float, type: str, state: str, duration_s: float | None, **extra: JsonValue
) -> dict[str, JsonValue]:
    """An ``alerts`` payload: one ``start`` and one ``end`` per episode.

    Known extra keys and their types: ``segment`` (str, e.g. ``"thoracic"``), ``angle_deg`` and
    ``threshold_deg`` (degrees or None), ``episode`` (str or int id shared by the start and end of
    one episode). Other extra keys pass through, rounded by the table in the module docstring.

    Args:
        t: epoch seconds of this message.
        type: what the alert is about, lower-case snake case: ``"slouch"``, ``"break"``, ...
        state: ``"start"`` or ``"end"``.
        duration_s: seconds the condition has lasted (at the start: the dwell; at the end: the whole
            episode), or None when unknown.
        **extra: more JSON fields.

    Raises:
        ValueError: an unknown state, a malformed type, a negative duration or a mistyped known extra.
    """
    if not isinstance(type, str) or not _NAME_RE.fullmatch(type):
        raise ValueError(f"alert type must be lower-case snake case, e.g. 'slouch', got {type!r}")
    if state not in ALERT_STATES:
        raise ValueError(f"alert state must be one of {', '.join(ALERT_STATES)}, got {state!r}")
    segment = extra.get("segment")
    if segment is not None and not isinstance(segment, str):
        raise ValueError(f"segment must be a string, got {segment!r}")
    for key in ("angle_deg", "threshold_deg"):
        if key in extra:
            _optional(extra[key], key, ANGLE_DECIMALS)
    episode = extra.get("episode")
    if episode is not None and (isinstance(episode, bool) or not isinstance(episode, str | int)):
        raise ValueError(f"episode must be a string or an integer, got {episode!r}")
    out: dict[str, JsonValue] = {
        "t": _time(t),
        "type": type,
        "state": state,
        "duration_s": _optional(duration_s, "duration_s", TIME_DECIMALS, low=0.0),
    }
    out.update(_clean_fields(extra, "alert"))
    return out


def sensor_payload(
    t: float,
    *,
    connected: bool,
    battery_pct: float | None,
    rssi: int | None,
    rate_hz: float | None,
    dropped: int,
) -> dict[str, JsonValue]:
    """The retained ``sensors/<placement>`` payload.

    Args:
        t: epoch seconds of this message.
        connected: whether the sensor is connected now.
        battery_pct: battery charge 0–100 %, or None when the sensor does not report it.
        rssi: received signal strength in dBm (-127..20), or None.
        rate_hz: measured sample rate, or None while disconnected.
        dropped: samples lost since the session started (gaps found from the device counter).

    Raises:
        ValueError: a value out of its range or of the wrong type.
    """
    if not isinstance(connected, bool):
        raise ValueError(f"connected must be a bool, got {connected!r}")
    low_dbm, high_dbm = _RSSI_RANGE_DBM
    if rssi is not None and not (_is_int(rssi) and low_dbm <= rssi <= high_dbm):
        raise ValueError(f"rssi must be an integer from {low_dbm} to {high_dbm} dBm, got {rssi!r}")
    if not (_is_int(dropped) and dropped >= 0):
        raise ValueError(f"dropped must be a non-negative integer, got {dropped!r}")
    return {
        "t": _time(t),
        "connected": connected,
        "battery_pct": _optional(battery_pct, "battery_pct", _PCT_DECIMALS, low=0.0, high=100.0),
        "rssi": None if rssi is None else int(rssi),
        "rate_hz": _optional(rate_hz, "rate_hz", _HZ_DECIMALS, low=0.0),
        "dropped": int(dropped),
    }


def session_payload(session_id: str, started: float, stats: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """The retained ``session`` payload ``{"id", "started", "stats"}``.

    Args:
        session_id: id of the session in the store.
        started: epoch seconds when it started.
        stats: running statistics, free-form JSON (e.g. ``{"slouch_s": 120.5, "alerts": 2}``);
            rounded by key.

    Raises:
        ValueError: an empty id, a non-finite start or stats that are not JSON data.
    """
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"session id must be a non-empty string, got {session_id!r}")
    return {"id": session_id, "started": _time(started, "started"), "stats": _clean_fields(stats, "stats")}


def exercise_payload(t: float, event: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """An ``exercise`` payload: a rep or a set of the cat/camel coach.

    ``event`` is a DESIGN §6 event object (:meth:`sensorhub.model.Event.to_json` fits): ``type`` is
    ``"rep"`` or ``"set"``; ``rom_deg`` (optional) maps :data:`ROM_REGIONS` to degrees, and regions
    it lacks are filled with null; ``too_fast`` (optional) is a bool; other fields pass through,
    rounded by key.

    Args:
        t: epoch seconds of this message.
        event: the event fields.

    Raises:
        ValueError: a missing or unknown type, a ``t`` inside ``event``, or a malformed ``rom_deg``
            or ``too_fast``.
    """
    kind = event.get("type")
    if kind not in EXERCISE_EVENT_TYPES:
        raise ValueError(f"exercise event type must be one of {', '.join(EXERCISE_EVENT_TYPES)}, got {kind!r}")
    if "t" in event:
        raise ValueError("the event must not carry 't'; pass the message time as t")
    fields = {key: value for key, value in event.items() if key != "type"}
    if "rom_deg" in fields:
        rom = fields["rom_deg"]
        if not isinstance(rom, Mapping):
            raise ValueError(f"rom_deg must map {', '.join(ROM_REGIONS)} to degrees, got {rom!r}")
        unknown = sorted(set(rom) - set(ROM_REGIONS))
        if unknown:
            raise ValueError(f"unknown rom_deg region(s) {', '.join(unknown)}; allowed: {', '.join(ROM_REGIONS)}")
        rom_deg: dict[str, JsonValue] = {
            region: _optional(rom.get(region), f"rom_deg.{region}", ANGLE_DECIMALS) for region in ROM_REGIONS
        }
        fields["rom_deg"] = rom_deg
    if "too_fast" in fields and not isinstance(fields["too_fast"], bool):
        raise ValueError(f"too_fast must be a bool, got {fields['too_fast']!r}")
    out: dict[str, JsonValue] = {"t": _time(t), "type": kind}
    out.update(_clean_fields(fields, "event"))
    return out


def _one_line(text: str, max_chars: int) -> str:
    if len(text) > max_chars:
        text = text[:max_chars] + "…"
    # Line breaks and tabs become spaces, other controls U+FFFD, so the text shows on one line.
    return "".join(
        " " if char in "\t\n\r" else "\ufffd" if unicodedata.category(char) == "Cc" else char for char in text
    )


def error_payload(t: float, *, source: str, message: str, payload: bytes | None = None) -> dict[str, JsonValue]:
    """An ``errors`` payload: why an incoming message was rejected.

    Keys: ``t``; ``source``, what was rejected (e.g. ``"cmd/snooze"``); ``message``, one line for a
    person (at most 1000 characters); ``payload_excerpt``, the first :data:`MAX_EXCERPT_CHARS`
    characters of the offending payload decoded as UTF-8 (U+FFFD for bad bytes and controls, spaces
    for line breaks, "…" when cut); ``payload_bytes``, its full length. Both are null without a payload.

    Raises:
        ValueError: an empty source or message, or a non-finite ``t``.
    """
    if not source:
        raise ValueError("source must not be empty")
    if not message:
        raise ValueError("message must not be empty")
    excerpt = None if payload is None else _one_line(payload.decode("utf-8", "replace"), MAX_EXCERPT_CHARS)
    return {
        "t": _time(t),
        "source": source,
        "message": _one_line(message, _MAX_MESSAGE_CHARS),
        "payload_excerpt": excerpt,
        "payload_bytes": None if payload is None else len(payload),
    }


def encode(obj: Mapping[str, JsonValue]) -> bytes:
    """Compact UTF-8 JSON for the wire (no spaces, key order kept, non-ASCII unescaped).

    Lone surrogates, which UTF-8 cannot carry, become ``?``.

    Raises:
        ValueError: ``obj`` holds NaN or infinity (the builders never produce them).
        TypeError: ``obj`` holds something that is not JSON data.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", errors="replace")
