"""Slouch alerts: dwell, hysteresis, one start and one end per episode (docs/posture.md).

The classifier labels an instant ``slouched`` while a slouch segment's latch is on: it switched on
when the segment's flexion reached its threshold and switches off only once the flexion is back
below threshold − hysteresis (re-arming). The detector turns that label into episodes:

- **pending**: from the first ``slouched`` instant (the onset);
- **alert**: when the wearer has been ``slouched`` for ``dwell_s`` since the onset. The alert is
  due at that instant; the :class:`~sensorhub.posture.alerting.AlertGate` decides whether it is
  sent (snooze, quiet hours, cap per hour) and a buzz is requested with a sent one;
- **end**: at the first instant that is neither ``slouched`` nor a *holding* label.

``moving`` and ``unknown`` hold: a reach for the mouse or a short sensor gap neither ends a
slouch nor restarts its dwell, as long as it lasts at most ``hold_max_s``; an alert cannot become
due during a hold. Any other label (upright, leaning forward, reclined, standing, exercising,
uncalibrated) ends the episode: a pending one silently, an alerted one with its end event.
That keeps to one ``start`` and one ``end`` per episode whatever the angles do in between.

Events (type ``"slouch"``, DESIGN §6): ``start_t`` = when the alert became due, ``end_t`` = the
end of the episode (None while open); ``data``: ``onset_t``, ``segments`` (those whose latch was on
during the episode), ``peak_deg`` (largest flexion per slouch segment since the onset),
``threshold_deg``, ``alert_state``, and at the end ``duration_s`` (end − onset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sensorhub.errors import InputError
from sensorhub.model import Event, JsonValue, Posture
from sensorhub.posture.alerting import AlertGate, AlertState, BuzzRequest

__all__ = ["HOLDING", "SlouchDetector", "SlouchSettings"]

#: Labels that neither continue nor end a slouch: the episode waits for them (up to hold_max_s).
HOLDING: frozenset[Posture] = frozenset({Posture.MOVING, Posture.UNKNOWN})


@dataclass(frozen=True, slots=True)
class SlouchSettings:
    """Timing of slouch alerts.

    Attributes:
        dwell_s: how long the wearer stays slouched before the alert (``[alerts] dwell_s``).
        hold_max_s: the longest ``moving`` / ``unknown`` stretch that does not end an episode.
    """

    dwell_s: float = 30.0
    hold_max_s: float = 5.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dwell_s) and self.dwell_s >= 0):
            raise InputError(f"dwell_s must be ≥ 0 seconds, got {self.dwell_s!r}")
        if not (math.isfinite(self.hold_max_s) and self.hold_max_s >= 0):
            raise InputError(f"hold_max_s must be ≥ 0 seconds, got {self.hold_max_s!r}")


@dataclass(slots=True)
class _Episode:
    onset_t: float
    peaks: dict[str, float]
    segments: set[str]
    alert: Event | None = None
    state: AlertState = "sent"
    hold_since: float | None = None


class SlouchDetector:
    """Turns per-instant posture labels into slouch episodes and alerts (stateful, chunk-invariant).

    Args:
        segments: the slouch segments of the rig (classifier order).
        thresholds_deg: threshold per segment (for the events).
        settings: dwell and hold.
        gate: decides whether a due alert is sent.
    """

    def __init__(
        self,
        segments: Sequence[str],
        thresholds_deg: Mapping[str, float],
        settings: SlouchSettings,
        gate: AlertGate,
    ) -> None:
        self.segments = tuple(segments)
        self.thresholds_deg = {s: float(thresholds_deg[s]) for s in self.segments}
        self.settings = settings
        self.gate = gate
        self._episode: _Episode | None = None

    @property
    def alerting(self) -> bool:
        """Whether an alerted episode is open."""
        return self._episode is not None and self._episode.alert is not None

    @property
    def open_event(self) -> Event | None:
        """The open alerted episode's start event, or None."""
        return None if self._episode is None else self._episode.alert

    def step(
        self,
        t: float,
        label: Posture,
        values: Sequence[float],
        flexed: Sequence[bool],
        started: list[Event],
        finished: list[Event],
        buzz: list[BuzzRequest],
    ) -> None:
        """Advance by one grid instant.

        Args:
            t: the instant (s).
            label: its posture.
            values: flexion per slouch segment (deg, NaN in a gap), in ``segments`` order.
            flexed: latch state per slouch segment.
            started, finished, buzz: lists the alert starts, complete events and buzz requests go to.
        """
        ep = self._episode
        if label is Posture.SLOUCHED:
            if ep is None:
                ep = self._episode = _Episode(t, {}, set())
            ep.hold_since = None
            for seg, v, on in zip(self.segments, values, flexed, strict=True):
                if v > ep.peaks.get(seg, -math.inf):  # False for NaN
                    ep.peaks[seg] = v
                if on:
                    ep.segments.add(seg)
            if ep.alert is None and t - ep.onset_t >= self.settings.dwell_s:
                ep.state = self.gate.decide(t, capped=True)
                ep.alert = Event("slouch", t, None, self._data(ep))
                started.append(ep.alert)
                request = self.gate.buzz_for(t, "slouch", ep.state)
                if request is not None:
                    buzz.append(request)
            return
        if ep is None:
            return
        if label in HOLDING:
            if ep.hold_since is None:
                ep.hold_since = t
            if t - ep.hold_since <= self.settings.hold_max_s:
                return
            self._end(ep.hold_since, finished)
            return
        self._end(t, finished)

    def _data(self, ep: _Episode) -> dict[str, JsonValue]:
        return {
            "onset_t": round(ep.onset_t, 4),
            "segments": [s for s in self.segments if s in ep.segments],
            "peak_deg": {s: round(ep.peaks[s], 3) if s in ep.peaks else None for s in self.segments},
            "threshold_deg": dict(self.thresholds_deg),
            "alert_state": ep.state,
        }

    def _end(self, end_t: float, finished: list[Event]) -> None:
        ep = self._episode
        self._episode = None
        if ep is None or ep.alert is None:
            return
        data = self._data(ep)
        data["duration_s"] = round(end_t - ep.onset_t, 3)
        finished.append(replace(ep.alert, end_t=end_t, data=data))
