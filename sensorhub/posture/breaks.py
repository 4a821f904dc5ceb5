"""Movement breaks: a reminder after sitting too long without getting up (docs/posture.md).

Sitting time accumulates over the sitting postures (upright, slouched, leaning forward, reclined);
changing between them is not a break. Being away from sitting (standing, moving or exercising)
for ``reset_s`` without interruption is a break: it resets the sitting time and counts as a
break taken. Shorter bouts (a reach, a quick stretch) pause the sitting time but do not reset it;
``unknown`` and ``uncalibrated`` pause it too.

Once the sitting time reaches ``break_after_s`` a reminder is due (one per sitting bout). It is an
event of type ``"break"`` with ``start_t`` = when it was due and ``end_t`` = when the wearer got up
for the break that followed (None until then); ``data``: ``sitting_s`` and ``alert_state`` (snooze
and quiet hours apply; the hourly cap is for slouch alerts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sensorhub.errors import InputError
from sensorhub.model import Event, Posture
from sensorhub.posture.alerting import AlertGate, BuzzRequest
from sensorhub.posture.classifier import SITTING

__all__ = ["AWAY", "BreakSettings", "BreakTracker"]

#: Labels that count as being away from sitting.
AWAY: frozenset[Posture] = frozenset({Posture.STANDING, Posture.MOVING, Posture.EXERCISING})


@dataclass(frozen=True, slots=True)
class BreakSettings:
    """When to remind and what counts as a break.

    Attributes:
        break_after_s: sitting time before a reminder (``[alerts] break_after_min`` × 60); 0 = none.
        reset_s: uninterrupted standing / moving / exercising that counts as a break.
    """

    break_after_s: float = 45.0 * 60.0
    reset_s: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.break_after_s) and self.break_after_s >= 0):
            raise InputError(f"break_after_s must be ≥ 0 seconds, got {self.break_after_s!r}")
        if not (math.isfinite(self.reset_s) and self.reset_s > 0):
            raise InputError(f"reset_s must be a positive number of seconds, got {self.reset_s!r}")


class BreakTracker:
    """Counts sitting time, reminds, and counts breaks taken (stateful, chunk-invariant)."""

    def __init__(self, settings: BreakSettings, gate: AlertGate) -> None:
        self.settings = settings
        self.gate = gate
        self.sitting_s = 0.0
        self.breaks_taken = 0
        self._away_since: float | None = None
        self._reminded = False
        self._open: Event | None = None

    @property
    def open_event(self) -> Event | None:
        """The reminder waiting for a break, or None."""
        return self._open

    def step(
        self,
        t: float,
        dt_s: float,
        label: Posture,
        started: list[Event],
        finished: list[Event],
        buzz: list[BuzzRequest],
    ) -> bool:
        """Advance by one instant lasting ``dt_s``; returns True when a break was taken at ``t``."""
        if label in SITTING:
            self._away_since = None
            self.sitting_s += dt_s
            due = self.settings.break_after_s
            if due > 0 and not self._reminded and self.sitting_s >= due:
                self._reminded = True
                state = self.gate.decide(t, capped=False)
                self._open = Event("break", t, None, {"sitting_s": round(self.sitting_s, 1), "alert_state": state})
                started.append(self._open)
                request = self.gate.buzz_for(t, "break", state)
                if request is not None:
                    buzz.append(request)
            return False
        if label not in AWAY:
            return False
        if self._away_since is None:
            self._away_since = t
        if t - self._away_since < self.settings.reset_s or (self.sitting_s <= 0.0 and self._open is None):
            return False
        if self._open is not None:
            finished.append(replace(self._open, end_t=self._away_since))
            self._open = None
        self.sitting_s = 0.0
        self._reminded = False
        self.breaks_taken += 1
        return True
