"""What the dashboard knows about every wearer, built from MQTT messages: pure, no I/O.

:meth:`DashboardState.ingest` takes one message of ``sensorhub/+/#`` and returns the
:class:`Update` to push to browsers (or None for a message that changes nothing); the snapshot
methods give a page that has just connected everything at once. Ages are measured on the
injected monotonic ``clock`` from the moment a message arrived, so a browser never has to
compare its own clock with the wearer's.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sensorhub.model import JsonValue
from sensorhub.mqtt.topics import DEFAULT_ROOT, sanitize_wearer

__all__ = ["ANGLE_KEYS", "HISTORY_S", "DashboardState", "Update", "WearerState"]

log = logging.getLogger(__name__)

#: The angle fields a trace is drawn for (DESIGN §7 ``angles``).
ANGLE_KEYS: Final = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg")
#: Seconds of angles (on the message clock ``t``) kept for a page that connects.
HISTORY_S: Final = 300.0
#: Angle samples kept per wearer at most: 5 min at 20 Hz (twice the default publish rate).
HISTORY_MAX: Final = 6000
#: Exercise events kept per wearer for the exercise view.
EXERCISE_MAX: Final = 60
#: ``msg_id`` values remembered per wearer to drop redelivered alerts and exercise events.
SEEN_IDS_MAX: Final = 2000
#: Topic kinds the dashboard reads; ``cmd/…`` (its own commands) and unknown kinds are ignored.
KINDS: Final = frozenset({"status", "angles", "posture", "alerts", "sensors", "session", "exercise", "errors"})


@dataclass(frozen=True, slots=True)
class Update:
    """One change to push to the browsers of ``wearer``.

    Attributes:
        wearer: the sanitised wearer level.
        kind: the topic kind (``status``, ``angles``, ``posture``, ``alerts``, ``sensors``,
            ``session``, ``exercise``, ``errors``).
        data: the JSON object sent as the server-sent event's data.
    """

    wearer: str
    kind: str
    data: dict[str, JsonValue]


@dataclass(slots=True)
class WearerState:
    """The latest of every topic of one wearer (arrival times on the dashboard's monotonic clock)."""

    wearer: str
    status: str | None = None
    status_at: float | None = None
    angles: dict[str, JsonValue] | None = None
    angles_at: float | None = None
    history: deque[tuple[float, float | None, float | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=HISTORY_MAX)
    )
    posture: dict[str, JsonValue] | None = None
    sensors: dict[str, dict[str, JsonValue]] = field(default_factory=dict)
    session: dict[str, JsonValue] | None = None
    open_alerts: dict[str, dict[str, JsonValue]] = field(default_factory=dict)
    exercise: deque[dict[str, JsonValue]] = field(default_factory=lambda: deque(maxlen=EXERCISE_MAX))
    last_error: dict[str, JsonValue] | None = None
    seen_ids: deque[str] = field(default_factory=lambda: deque(maxlen=SEEN_IDS_MAX))

    def open_alert_list(self) -> list[JsonValue]:
        """The alert episodes that started and have not ended, oldest first."""
        return list(self.open_alerts.values())

    def summary(self, now: float) -> dict[str, JsonValue]:
        """Everything but the angle history and the exercise list (the overview's card)."""
        return {
            "wearer": self.wearer,
            "status": self.status,
            "status_age_s": _age(now, self.status_at),
            "angles": self.angles,
            "angles_age_s": _age(now, self.angles_at),
            "posture": self.posture,
            "sensors": dict(self.sensors),
            "session": self.session,
            "open_alerts": self.open_alert_list(),
            "last_error": self.last_error,
        }

    def detail(self, now: float) -> dict[str, JsonValue]:
        """The summary plus the last :data:`HISTORY_S` of angles (``[t, thoracic, lumbar, trunk]`` rows)
        and the recent exercise events (the wearer page)."""
        newest = self.history[-1][0] if self.history else 0.0
        rows: list[JsonValue] = [list(row) for row in self.history if row[0] >= newest - HISTORY_S]
        out = self.summary(now)
        out["history"] = rows
        out["exercise"] = list(self.exercise)
        return out


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, now - at), 3)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which no browser's JSON.parse reads back
        raise ValueError(f"{text} is out of range")
    return value


def _json_object(payload: bytes) -> dict[str, JsonValue] | None:
    """A JSON object payload, or None (bad UTF-8, bad JSON, NaN/Infinity, not an object)."""
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _finite_or_none(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class DashboardState:
    """Every wearer seen on the broker, and how each message changes them.

    Args:
        root: the topic root (``sensorhub``).
        clock: monotonic seconds, for the age of what arrived.
    """

    def __init__(self, root: str = DEFAULT_ROOT, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = root + "/"
        self._clock = clock
        self._wearers: dict[str, WearerState] = {}
        self.ignored = 0  # messages that were not valid for their topic

    def __contains__(self, wearer: object) -> bool:
        return wearer in self._wearers

    @property
    def wearers(self) -> list[str]:
        """Wearers seen, sorted."""
        return sorted(self._wearers)

    def now(self) -> float:
        """The state's clock, now."""
        return self._clock()

    def overview(self) -> list[JsonValue]:
        """The summary of every wearer, sorted by wearer."""
        now = self._clock()
        return [self._wearers[w].summary(now) for w in self.wearers]

    def wearer_detail(self, wearer: str) -> dict[str, JsonValue] | None:
        """The detail of one wearer, or None when it has not been seen."""
        state = self._wearers.get(wearer)
        return None if state is None else state.detail(self._clock())

    def ingest(self, topic: str, payload: bytes) -> Update | None:
        """Apply one message (retained or not: both are the latest state); returns what to push, or
        None when it changes nothing or is not understood."""
        if not topic.startswith(self._prefix):
            return None
        parts = topic[len(self._prefix) :].split("/")
        if len(parts) < 2:
            return None
        wearer, kind = parts[0], parts[1]
        if kind not in KINDS or len(parts) != (3 if kind == "sensors" else 2):
            return None
        if not wearer or sanitize_wearer(wearer) != wearer:
            return None
        if kind == "status":
            return self._status(wearer, payload)
        obj = _json_object(payload)
        if obj is None:
            self.ignored += 1
            log.debug("ignored a %s message that is not a JSON object: %r", topic, payload[:80])
            return None
        state = self._wearer(wearer)
        if kind == "angles":
            return self._angles(state, obj)
        if kind == "posture":
            state.posture = obj
        elif kind == "sensors":
            placement = parts[2]
            if not placement:
                return None
            state.sensors[placement] = obj
            return Update(wearer, kind, {"placement": placement, "value": obj})
        elif kind == "session":
            state.session = obj
        elif kind == "alerts":
            return self._alert(state, obj)
        elif kind == "exercise":
            if self._seen(state, obj):
                return None
            state.exercise.append(obj)
        elif kind == "errors":
            state.last_error = obj
        return Update(wearer, kind, {"value": obj})

    def _wearer(self, wearer: str) -> WearerState:
        state = self._wearers.get(wearer)
        if state is None:
            state = self._wearers[wearer] = WearerState(wearer)
        return state

    def _status(self, wearer: str, payload: bytes) -> Update | None:
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            if not payload and wearer not in self._wearers:
                return None  # a cleared retained status of a wearer never seen
            self.ignored += 1
            return None
        state = self._wearer(wearer)
        state.status, state.status_at = text, self._clock()
        return Update(wearer, "status", {"value": text})

    def _angles(self, state: WearerState, obj: dict[str, JsonValue]) -> Update | None:
        t = _finite_or_none(obj.get("t"))
        if t is None:
            self.ignored += 1
            return None
        state.angles, state.angles_at = obj, self._clock()
        if state.history and t < state.history[-1][0] - 1.0:
            state.history.clear()  # the clock went back: a new session (or a replay)
        th, lu, tr = (_finite_or_none(obj.get(key)) for key in ANGLE_KEYS)
        state.history.append((t, th, lu, tr))
        return Update(state.wearer, "angles", {"value": obj})

    def _alert(self, state: WearerState, obj: dict[str, JsonValue]) -> Update | None:
        if self._seen(state, obj):
            return None
        key = f"{obj.get('type')}:{obj.get('episode')}"
        if obj.get("state") == "start":
            state.open_alerts[key] = obj
        elif obj.get("state") == "end":
            state.open_alerts.pop(key, None)
        return Update(state.wearer, "alerts", {"value": obj, "open": state.open_alert_list()})

    @staticmethod
    def _seen(state: WearerState, obj: dict[str, JsonValue]) -> bool:
        """Whether this ``msg_id`` came before (at-least-once delivery); remembers it otherwise."""
        msg_id = obj.get("msg_id")
        if not isinstance(msg_id, str):
            return False
        if msg_id in state.seen_ids:
            return True
        state.seen_ids.append(msg_id)
        return False
