"""The posture engine: SpineFrames in; posture labels, alerts, breaks, exercise events, buzz requests out.

One stateful object per wearer (DESIGN §2), pure computation: the live service, ``analyze`` and
replays feed it the rig's SpineFrames in time order and get the same results whatever the
blocks' sizes (tested). Time is the frames' clock, never the wall clock; only quiet hours need to
know the wall clock, through ``epoch_offset_s`` (see :mod:`sensorhub.posture.alerting`).

Per block it runs, instant by instant:

1. exercise mode: the ``set_exercising`` command and the cat/camel coach
   (:class:`~sensorhub.posture.exercise.ExerciseCoach`, fed the same frames; its rep, set and
   pain-stop events come out with the others);
2. the :class:`~sensorhub.posture.classifier.PostureClassifier` (one label per instant);
3. the :class:`~sensorhub.posture.slouch.SlouchDetector` (slouch alerts);
4. the :class:`~sensorhub.posture.breaks.BreakTracker` (break reminders);
5. the :class:`~sensorhub.posture.stats.SessionStats`.

Commands (``cmd/snooze``, ``cmd/exercise``, ``cmd/pain``, calibration state) are methods; events
they cause come out with the next :meth:`PostureEngine.process`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.model import Event, FloatArray, JsonValue, Placement, Posture, SpineFrame
from sensorhub.posture.alerting import AlertGate, BuzzRequest
from sensorhub.posture.breaks import BreakSettings, BreakTracker
from sensorhub.posture.classifier import SEGMENT_FIELDS, ClassifierSettings, PostureClassifier
from sensorhub.posture.exercise import ExerciseCoach
from sensorhub.posture.slouch import SlouchDetector, SlouchSettings
from sensorhub.posture.stats import SessionStats

__all__ = ["PostureEngine", "PostureOutput", "PostureState"]

BoolArray = NDArray[np.bool_]

_FIELDS = (
    "thoracic_flexion_deg",
    "lumbar_flexion_deg",
    "trunk_flexion_deg",
    "pelvis_tilt_deg",
    "spine_flexion_deg",
    "movement",
)


@dataclass(frozen=True, slots=True)
class PostureState:
    """Where the engine stands after the last instant it processed.

    Attributes:
        t: that instant (s, frame clock), None before any.
        posture: its label.
        since: when that label began (s), None before any instant.
        slouch_alert: an alerted slouch episode is open.
        snoozed_until: end of the current snooze (s), or None.
        exercising: exercise mode is on (command or an open coach set).
        sitting_s: sitting time counted towards the next break reminder.
    """

    t: float | None
    posture: Posture
    since: float | None
    slouch_alert: bool
    snoozed_until: float | None
    exercising: bool
    sitting_s: float


@dataclass(frozen=True, slots=True)
class PostureOutput:
    """What one :meth:`PostureEngine.process` call found.

    Attributes:
        t: (N,) the frame's instants.
        labels: (N,) posture per instant (the angle CSV's ``posture`` column).
        started: alerts that became due (slouch, break), ``end_t`` None; see ``alert_state``.
        finished: complete events: slouch and break episodes that ended, exercise rep / set /
            pain-stop events (the coach's), in the order they happened.
        buzz: buzz requests, one per sent alert when buzzing is on.
        changes: (t, posture) for each label change (for the retained ``posture`` topic).
        state: the state after the last instant.
    """

    t: FloatArray
    labels: list[Posture]
    started: list[Event]
    finished: list[Event]
    buzz: list[BuzzRequest]
    changes: list[tuple[float, Posture]]
    state: PostureState


class PostureEngine:
    """Posture classes, slouch alerts, break reminders, the exercise coach and statistics for one wearer.

    Args:
        alerts: the ``[alerts]`` settings (thresholds, dwell, hysteresis, cap, snooze, quiet hours,
            buzz, break reminders).
        placements: the sensors worn.
        classifier: classifier thresholds; default: :meth:`ClassifierSettings.from_alerts`.
        epoch_offset_s: frame time + this = Unix time, for quiet hours; None = unknown (quiet hours
            then never apply).
        tz: time zone of the quiet hours; None = the machine's local zone.
        calibrated: whether the angles are relative to a calibrated neutral (else every instant
            is ``uncalibrated`` and nothing alerts).
        coach: the cat/camel coach to run; None = a default :class:`ExerciseCoach` unless
            ``exercise_coach`` is False.
        exercise_coach: run a coach at all.
        hold_max_s: longest moving / unknown stretch that does not end a slouch episode.
        break_reset_s: uninterrupted standing / moving that counts as a break.
        max_step_s: a step between instants longer than this is a gap (counts no time).
    """

    def __init__(
        self,
        alerts: AlertsConfig,
        placements: Sequence[Placement],
        *,
        classifier: ClassifierSettings | None = None,
        epoch_offset_s: float | None = None,
        tz: dt.tzinfo | None = None,
        calibrated: bool = True,
        coach: ExerciseCoach | None = None,
        exercise_coach: bool = True,
        hold_max_s: float = 5.0,
        break_reset_s: float = 10.0,
        max_step_s: float = 1.0,
    ) -> None:
        if not placements:
            raise InputError("the posture engine needs at least one sensor placement")
        self.alerts = alerts
        self.placements = tuple(placements)
        self.classifier = PostureClassifier(self.placements, classifier or ClassifierSettings.from_alerts(alerts))
        self.segments = self.classifier.segments
        self.gate = AlertGate(
            enabled=alerts.enabled,
            buzz=alerts.buzz,
            max_per_hour=alerts.max_per_hour,
            quiet_hours=alerts.quiet_hours,
            epoch_offset_s=epoch_offset_s,
            tz=tz,
        )
        thresholds = {s: self.classifier.settings.threshold(s) for s in self.segments}
        self.slouch = SlouchDetector(
            self.segments, thresholds, SlouchSettings(alerts.dwell_s, hold_max_s=hold_max_s), self.gate
        )
        self.breaks = BreakTracker(BreakSettings(alerts.break_after_min * 60.0, reset_s=break_reset_s), self.gate)
        self.coach = coach if coach is not None else (ExerciseCoach() if exercise_coach else None)
        self.stats = SessionStats()
        self.max_step_s = max_step_s
        self._calibrated = calibrated
        self._queued: list[Event] = []
        self._cmd_state = False
        self._cmd_changes: list[tuple[float, bool]] = []
        self._coach_start_pending = False
        self._last_t: float | None = None
        self._posture = Posture.UNKNOWN
        self._since: float | None = None

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> PostureState:
        """The state after the last processed instant."""
        return PostureState(
            t=self._last_t,
            posture=self._posture,
            since=self._since,
            slouch_alert=self.slouch.alerting,
            snoozed_until=self.gate.snoozed_until,
            exercising=self._exercising_now(),
            sitting_s=self.breaks.sitting_s,
        )

    def stats_json(self) -> dict[str, JsonValue]:
        """Session statistics so far (:class:`~sensorhub.posture.stats.SessionStats`)."""
        return self.stats.to_json(self.slouch.open_event)

    def open_events(self) -> list[Event]:
        """Alerts still open (slouch episode, break reminder), ``end_t`` None."""
        return [e for e in (self.slouch.open_event, self.breaks.open_event) if e is not None]

    def finish(self) -> list[Event]:
        """End of a recording: closes an open exercise set and returns its events and the open alerts."""
        out = list(self._queued)
        self._queued = []
        if self.coach is not None and self.coach.active and self._last_t is not None:
            out.extend(self.coach.stop(self._last_t))
        return out + self.open_events()

    # -- commands -------------------------------------------------------------------------

    def snooze(self, minutes: float | None, now_t: float) -> float | None:
        """Hold alerts back for ``minutes`` (None = ``[alerts] snooze_min``; ≤ 0 ends a snooze).

        Alerts due from ``now_t`` (frame clock) to the end of the snooze are held back; an alert
        that is already out stays open until its episode ends. Returns the end of the snooze, or
        None when it was ended.
        """
        length = self.alerts.snooze_min if minutes is None else float(minutes)
        if not math.isfinite(length):
            raise InputError(f"snooze minutes must be a number, got {minutes!r}")
        until = now_t + 60.0 * length if length > 0 else None
        self.gate.snooze(now_t, until)
        return until

    def set_exercising(self, active: bool, t: float | None = None) -> None:
        """Exercise mode on or off from ``t`` (None: from the next instant), e.g. ``cmd/exercise``.

        With a coach, on opens a set (:meth:`ExerciseCoach.start`) and off closes it; its set event
        comes out with the next :meth:`process`. While on, instants are ``exercising``: no slouch
        alerts, and the time counts as a break from sitting.
        """
        when_cmd = -math.inf if t is None else t
        # A newer command supersedes pending ones that would take effect at or after it.
        self._cmd_changes = [c for c in self._cmd_changes if c[0] < when_cmd] + [(when_cmd, active)]
        if self.coach is None:
            return
        when = t if t is not None else self._last_t
        if active:
            if when is None:
                self._coach_start_pending = True
            else:
                self._queued.extend(self.coach.start(when))
        else:
            self._coach_start_pending = False
            if when is not None:
                self._queued.extend(self.coach.stop(when))

    def pain(self, region: str | None, t: float | None = None) -> None:
        """A pain stop (``cmd/pain``) at ``t`` (None: the last instant); its event comes with the next output."""
        when = t if t is not None else self._last_t
        if self.coach is None or when is None:
            return
        self._queued.extend(self.coach.pain(region, when))

    def set_calibrated(self, calibrated: bool) -> None:
        """Whether the angles are relative to a calibrated neutral (from the next frame on)."""
        self._calibrated = calibrated

    # -- frames ---------------------------------------------------------------------------

    def process(self, frame: SpineFrame) -> PostureOutput:
        """Feed the next block of grid instants (in time order)."""
        started: list[Event] = []
        finished: list[Event] = self._queued
        self._queued = []
        buzz: list[BuzzRequest] = []
        changes: list[tuple[float, Posture]] = []
        n = len(frame.t)
        if n == 0:
            return PostureOutput(frame.t, [], started, finished, buzz, changes, self.state)
        exercising = self._exercising(frame, finished)
        cls = self.classifier.classify(frame, exercising=exercising, calibrated=self._calibrated)
        labels = cls.labels
        nan = [math.nan] * n
        columns: list[list[float]] = []
        for seg in self.segments:
            values: FloatArray | None = getattr(frame, SEGMENT_FIELDS[seg])
            columns.append(nan if values is None else values.tolist())
        values_at = list(zip(*columns, strict=True)) if columns else [()] * n
        flexed_at = list(zip(*(cls.flexed[s] for s in self.segments), strict=True)) if self.segments else [()] * n
        slouch_step, break_step, add = self.slouch.step, self.breaks.step, self.stats.add
        last_t, posture, max_step = self._last_t, self._posture, self.max_step_s
        for t, label, vals, flex in zip(frame.t.tolist(), labels, values_at, flexed_at, strict=True):
            step = 0.0 if last_t is None else t - last_t
            dt_s = step if 0.0 < step <= max_step else 0.0
            slouch_step(t, label, vals, flex, started, finished, buzz)
            break_step(t, dt_s, label, started, finished, buzz)
            add(t, dt_s, label)
            if label is not posture:
                posture = label
                self._since = t
                changes.append((t, label))
            last_t = t
        self._last_t, self._posture = last_t, posture
        for e in started:
            self.stats.alert_started(e)
        for e in finished:
            if e.type == "slouch":
                self.stats.episode_ended(e)
        self.stats.breaks_taken = self.breaks.breaks_taken
        return PostureOutput(frame.t, labels, started, finished, buzz, changes, self.state)

    # -- exercise mode --------------------------------------------------------------------

    def _exercising_now(self) -> bool:
        return self._cmd_state or (self.coach is not None and self.coach.active)

    def _exercising(self, frame: SpineFrame, finished: list[Event]) -> BoolArray:
        """Per instant: exercise mode from the command and the coach (fed here, its events to ``finished``)."""
        n = len(frame.t)
        t = frame.t
        mask = np.full(n, self._cmd_state)
        keep: list[tuple[float, bool]] = []
        last = float(t[-1])
        for when, on in self._cmd_changes:
            mask[t >= when] = on
            if when > last:
                keep.append((when, on))
        self._cmd_changes = keep
        self._cmd_state = bool(mask[-1])
        coach = self.coach
        if coach is None:
            return mask
        if self._coach_start_pending:
            self._coach_start_pending = False
            finished.extend(coach.start(float(t[0])))
        if not coach.settings.auto_detect:
            # Without auto-detection a set opens and closes only by command, so the command's
            # timeline is the coach's too and the block can go in whole.
            finished.extend(coach.process(frame))
            return mask
        # An automatically detected set can open or close at any instant: feed instant by instant
        # so that the label follows the coach exactly, whatever the block size.
        coach_active = np.empty(n, dtype=bool)
        for i in range(n):
            finished.extend(coach.process(_slice(frame, i)))
            coach_active[i] = coach.active
        out: BoolArray = mask | coach_active
        return out


def _slice(frame: SpineFrame, i: int) -> SpineFrame:
    fields = [getattr(frame, name) for name in _FIELDS]
    return SpineFrame(frame.t[i : i + 1], *(None if v is None else v[i : i + 1] for v in fields))
