"""Session statistics of the posture engine, JSON-ready (MQTT ``session`` topic, reports, analyze).

Definitions (docs/posture.md):

- ``time_s``: time per posture label. Each grid instant lasts until the next one; a step longer
  than ``max_step_s`` (a gap in the data) counts nothing.
- ``sitting_s``: time in the sitting postures (upright, slouched, leaning forward, reclined).
- ``upright_pct``: upright time as a percentage of sitting time, for the session and for each hour
  of it (hour 0 = the first 60 minutes after the first instant); None without sitting time.
- ``slouch_episodes``: episodes that lasted long enough to alert (whatever their alert state):
  count, longest and total duration from onset to end (an open episode counts up to now).
- ``alerts_sent``: alerts that went out, per type; ``alerts_held``: alerts held back, per reason.
- ``breaks_taken``: breaks from sitting (see :mod:`sensorhub.posture.breaks`).
"""

from __future__ import annotations

import math
from collections import Counter

from sensorhub.model import Event, JsonValue, Posture
from sensorhub.posture.classifier import SITTING

__all__ = ["SessionStats"]

_HOUR_S = 3600.0


class SessionStats:
    """Accumulates the statistics of one session, instant by instant and event by event."""

    def __init__(self) -> None:
        self.start_t: float | None = None
        self.last_t: float | None = None
        self.time_s: dict[Posture, float] = dict.fromkeys(Posture, 0.0)
        self._hours: dict[int, list[float]] = {}  # hour index -> [sitting_s, upright_s]
        self._episodes_s: list[float] = []
        self.alerts_sent: Counter[str] = Counter()
        self.alerts_held: Counter[str] = Counter()
        self.breaks_taken = 0

    def add(self, t: float, dt_s: float, label: Posture) -> None:
        """One grid instant at ``t`` that lasted ``dt_s`` (0 for the first instant or after a gap)."""
        if self.start_t is None:
            self.start_t = t
        self.last_t = t
        if dt_s <= 0.0:
            return
        self.time_s[label] += dt_s
        if label in SITTING:
            hour = self._hours.setdefault(int((t - self.start_t) // _HOUR_S), [0.0, 0.0])
            hour[0] += dt_s
            if label is Posture.UPRIGHT:
                hour[1] += dt_s

    def alert_started(self, event: Event) -> None:
        """Count an alert (slouch or break) when it becomes due."""
        state = event.data.get("alert_state")
        if state == "sent":
            self.alerts_sent[event.type] += 1
        elif isinstance(state, str):
            self.alerts_held[state] += 1

    def episode_ended(self, event: Event) -> None:
        """Count a finished slouch episode."""
        duration = event.data.get("duration_s")
        if isinstance(duration, int | float):
            self._episodes_s.append(float(duration))

    def to_json(self, open_episode: Event | None = None) -> dict[str, JsonValue]:
        """The statistics so far; ``open_episode`` (an open slouch alert) counts up to the last instant."""
        episodes = list(self._episodes_s)
        onset = None if open_episode is None else open_episode.data.get("onset_t")
        if isinstance(onset, int | float) and self.last_t is not None:
            episodes.append(self.last_t - float(onset))
        sitting = sum(self.time_s[p] for p in SITTING)
        hours: list[JsonValue] = []
        for k in sorted(self._hours):
            sit, up = self._hours[k]
            start = (self.start_t or 0.0) + k * _HOUR_S
            hours.append(
                {"hour": k, "start_t": round(start, 3), "sitting_s": round(sit, 1), "upright_pct": _pct(up, sit)}
            )
        time_s: dict[str, JsonValue] = {p.value: round(v, 1) for p, v in self.time_s.items()}
        sent: dict[str, JsonValue] = dict(sorted(self.alerts_sent.items()))
        held: dict[str, JsonValue] = dict(sorted(self.alerts_held.items()))
        return {
            "start_t": None if self.start_t is None else round(self.start_t, 3),
            "end_t": None if self.last_t is None else round(self.last_t, 3),
            "time_s": time_s,
            "sitting_s": round(sitting, 1),
            "upright_pct": _pct(self.time_s[Posture.UPRIGHT], sitting),
            "upright_pct_by_hour": hours,
            "slouch_episodes": {
                "count": len(episodes),
                "longest_s": round(max(episodes), 1) if episodes else 0.0,
                "total_s": round(sum(episodes), 1),
            },
            "alerts_sent": sent,
            "alerts_held": held,
            "breaks_taken": self.breaks_taken,
        }


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole > 0 and math.isfinite(whole) else None
