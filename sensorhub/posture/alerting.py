"""Whether an alert that is due may go out: enabled, snooze, quiet hours, cap per hour; buzz requests.

Every alert the posture engine finds is recorded as an event with an ``alert_state``; only
``"sent"`` alerts reach the wearer (MQTT ``alerts``, a buzz). The others say why they were held
back, so statistics still count the episode:

``"sent"``, ``"disabled"`` (``[alerts] enabled = false``), ``"snoozed"`` (``cmd/snooze``),
``"quiet_hours"`` (``[alerts] quiet_hours``), ``"rate_limited"`` (``max_per_hour`` reached).

Time is the frames' clock. Quiet hours need the wall clock: ``epoch_offset_s`` maps frame time to
Unix time (``t + epoch_offset_s``), read in ``tz`` (default: the machine's local zone). Without an
offset (None) quiet hours cannot be placed and never apply.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from sensorhub.config import QuietHours

__all__ = ["AlertGate", "AlertState", "BuzzRequest"]

AlertState = Literal["sent", "disabled", "snoozed", "quiet_hours", "rate_limited"]

_HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class BuzzRequest:
    """Ask the sensors that have a vibration motor to buzz (the service routes it by profile).

    Attributes:
        t: when the alert started (frame clock, s).
        reason: "slouch" or "break".
        pulses: number of pulses.
        pulse_ms: length of each pulse.
    """

    t: float
    reason: str
    pulses: int = 2
    pulse_ms: int = 200


#: Buzz patterns per alert type: two short pulses for a slouch, three for a break reminder.
BUZZ_PATTERNS: dict[str, tuple[int, int]] = {"slouch": (2, 200), "break": (3, 300)}


class AlertGate:
    """Decides the ``alert_state`` of each alert that is due.

    Args:
        enabled: alert at all.
        buzz: ask for a buzz with each sent alert.
        max_per_hour: sent alerts per rolling hour at most (0 = no limit); applies to the alert
            types that ask for it (slouch alerts).
        quiet_hours: daily local window without alerts, or None.
        epoch_offset_s: frame time + this = Unix time; None = the frame clock has no wall-clock
            meaning (quiet hours are then not applied).
        tz: time zone of the quiet hours; None = the machine's local zone.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        buzz: bool = True,
        max_per_hour: int = 0,
        quiet_hours: QuietHours | None = None,
        epoch_offset_s: float | None = None,
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.enabled = enabled
        self.buzz = buzz
        self.max_per_hour = max_per_hour
        self.quiet_hours = quiet_hours
        self.epoch_offset_s = epoch_offset_s
        self.tz = tz
        self.snoozed_from = -math.inf
        self.snoozed_until: float | None = None
        self._sent: deque[float] = deque()

    def snooze(self, from_t: float, until_t: float | None) -> None:
        """Hold alerts due in [``from_t``, ``until_t``) back (frame clock); ``until_t`` None ends a snooze."""
        self.snoozed_from = from_t
        self.snoozed_until = until_t

    def in_quiet_hours(self, t: float) -> bool:
        """Whether frame time ``t`` falls inside the quiet hours (False when they cannot be placed)."""
        if self.quiet_hours is None or self.epoch_offset_s is None:
            return False
        moment = dt.datetime.fromtimestamp(t + self.epoch_offset_s, tz=self.tz or dt.UTC)
        if self.tz is None:
            moment = moment.astimezone()  # the machine's local zone, with its DST rules at that date
        return self.quiet_hours.contains(moment.time())

    def decide(self, t: float, *, capped: bool) -> AlertState:
        """The state of an alert due at ``t``; a ``"sent"`` one counts towards the cap when ``capped``."""
        if not self.enabled:
            return "disabled"
        if self.snoozed_until is not None and self.snoozed_from <= t < self.snoozed_until:
            return "snoozed"
        if self.in_quiet_hours(t):
            return "quiet_hours"
        if capped and self.max_per_hour > 0:
            while self._sent and self._sent[0] <= t - _HOUR_S:
                self._sent.popleft()
            if len(self._sent) >= self.max_per_hour:
                return "rate_limited"
            self._sent.append(t)
        return "sent"

    def buzz_for(self, t: float, reason: str, state: AlertState) -> BuzzRequest | None:
        """The buzz that goes with an alert, or None (not sent, or buzzing is off)."""
        if state != "sent" or not self.buzz:
            return None
        pulses, pulse_ms = BUZZ_PATTERNS.get(reason, (2, 200))
        return BuzzRequest(t, reason, pulses, pulse_ms)
