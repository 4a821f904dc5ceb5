"""Records of the session store: what a session, a recorder's counters, a gap or retention look like."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sensorhub.errors import InputError
from sensorhub.model import JsonValue
from sensorhub.pipeline.calibration import RigCalibration

__all__ = [
    "Gap",
    "OnFull",
    "RecorderStats",
    "Retention",
    "SessionInfo",
    "SessionStatus",
    "StoredCalibration",
    "StoredCommand",
    "iso_utc",
]

SessionStatus = Literal["recording", "complete", "interrupted"]
OnFull = Literal["drop", "block"]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long sessions are kept.

    Attributes:
        max_age_days: delete sessions that ended more than this many days ago; 0 = keep forever.
        max_size_mb: delete the oldest sessions while the database uses more than this; 0 = no limit.
    """

    max_age_days: float = 0.0
    max_size_mb: float = 0.0

    def __post_init__(self) -> None:
        if not (self.max_age_days >= 0 and self.max_size_mb >= 0):
            raise InputError("retention limits must be ≥ 0 (0 = no limit)")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.max_age_days > 0 or self.max_size_mb > 0


@dataclass(frozen=True, slots=True)
class Gap:
    """Data the recorder dropped because its backlog was full.

    Attributes:
        kind: "imu" (raw samples) or "frames" (angles).
        sensor: the sensor id for raw samples, None for frames.
        start_t: first dropped instant (s, session clock).
        end_t: last dropped instant (s, session clock).
        count: samples or frames dropped.
        reason: why ("backlog").
    """

    kind: Literal["imu", "frames"]
    sensor: str | None
    start_t: float
    end_t: float
    count: int
    reason: str = "backlog"


@dataclass(frozen=True, slots=True)
class StoredCalibration:
    """A calibration a session used from batch ``from_batch`` on (arrival index of :meth:`SessionRecorder.add_imu`).

    ``seq`` orders calibrations and commands given before the same batch.
    """

    from_batch: int
    calibration: RigCalibration
    seq: int = 0


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """A posture-engine command given before batch ``at_batch`` (``seq``: order among calibrations and commands)."""

    at_batch: int
    name: str
    args: dict[str, JsonValue]
    seq: int = 0


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """What a recorder has done so far (a snapshot).

    Attributes:
        samples_written: raw samples committed.
        frames_written: angle instants committed.
        events_written: event rows written (an open event and its end count twice).
        chunks_written: chunk rows committed.
        bytes_written: encoded bytes committed (chunk blobs, labels, events, calibrations).
        commits: transactions committed.
        queue_depth: rows (samples + frames) buffered and not yet committed.
        dropped_samples: raw samples dropped (backlog full, or after an error).
        dropped_frames: angle instants dropped (backlog full, or after an error).
        gaps: gap markers made.
        last_commit_s: duration of the last commit.
    """

    samples_written: int = 0
    frames_written: int = 0
    events_written: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    commits: int = 0
    queue_depth: int = 0
    dropped_samples: int = 0
    dropped_frames: int = 0
    gaps: int = 0
    last_commit_s: float = 0.0

    def to_json(self) -> dict[str, JsonValue]:
        """JSON-ready dict (for the MQTT ``session`` topic)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A stored session (what ``sessions list`` and ``show`` print).

    Attributes:
        id: session id, ``YYYYMMDDTHHMMSSZ-xxxxxx`` (UTC start + random).
        wearer: wearer id.
        started: epoch seconds.
        ended: epoch seconds; None while recording.
        status: recording, complete or interrupted.
        placements: sensor placements worn.
        clock_offset_s: epoch seconds − session clock seconds (stored times are on the session clock).
        parent_id: the session this one was derived from (replay), or None.
        settings: processing settings (see :class:`sensorhub.store.replay.ProcessingSettings`).
        config: the configuration snapshot, or None.
        record_raw: whether raw IMU samples were recorded.
        sensors: (sensor id, placement) of every sensor seen.
        samples: raw samples stored.
        frames: angle instants stored.
        events: events stored.
        bytes: encoded bytes stored.
        dropped: samples + frames dropped by the recorder (see gaps).
        gaps: gap markers.
        first_t: first stored instant, session clock (None when empty).
        last_t: last stored instant, session clock (None when empty).
        error: why recording stopped early, or None.
    """

    id: str
    wearer: str
    started: float
    ended: float | None
    status: SessionStatus
    placements: tuple[str, ...]
    clock_offset_s: float
    parent_id: str | None
    settings: dict[str, JsonValue]
    config: dict[str, JsonValue] | None
    record_raw: bool
    sensors: tuple[tuple[str, str], ...]
    samples: int
    frames: int
    events: int
    bytes: int
    dropped: int
    gaps: int
    first_t: float | None
    last_t: float | None
    error: str | None

    @property
    def duration_s(self) -> float:
        """Ended − started; for a session still recording, up to its last stored instant."""
        if self.ended is not None:
            return max(0.0, self.ended - self.started)
        if self.last_t is not None:
            return max(0.0, self.last_t + self.clock_offset_s - self.started)
        return 0.0

    def to_json(self) -> dict[str, JsonValue]:
        """The ``sessions list --json`` object."""
        return {
            "id": self.id,
            "wearer": self.wearer,
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "started_utc": iso_utc(self.started),
            "ended_utc": None if self.ended is None else iso_utc(self.ended),
            "placements": list(self.placements),
            "sensors": [{"id": s, "placement": p} for s, p in self.sensors],
            "parent_id": self.parent_id,
            "record_raw": self.record_raw,
            "samples": self.samples,
            "frames": self.frames,
            "events": self.events,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "gaps": self.gaps,
            "clock_offset_s": self.clock_offset_s,
            "error": self.error,
        }


def iso_utc(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2025-01-31T09:00:00.000Z``."""
    moment = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
