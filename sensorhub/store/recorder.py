"""The session recorder: buffers on the caller's thread, a writer thread that commits every 0.5 s.

Recording. :meth:`SessionStore.start_session` returns a :class:`SessionRecorder`. Its ``add_*``
methods only append to in-memory buffers under a lock (microseconds; safe to call from the event
loop); a writer thread with its own SQLite connection takes the buffers every ``flush_interval_s``
(0.5 s), encodes them into chunks (:mod:`sensorhub.store.codec`) and commits them in one
transaction. So a SIGKILL or a crash loses at most the data of the last flush interval plus one
commit (≈ 0.5 s, always < 1 s); the session then stays ``recording`` in the file with no live
writer, and the next reader reports it ``interrupted`` (and it exports like any other). Every
``compact_s`` (60 s) of data, and at the end, the writer merges a stream's small per-flush chunks
into one chunk in the same transaction as the next flush (fewer rows, better compression, faster
reads; see :meth:`SessionRecorder._write`).

Backlog policy (the recorder never drops silently). The buffers are the writer's queue, bounded by
``max_backlog`` rows (samples + frames; default 30 000 ≈ 100 s of three 100 Hz sensors and their
50 Hz angles), which only fills when the disk stalls. Then, with ``on_full="drop"`` (the live
default: the event loop must never wait for a disk), the new raw batch or frame block is dropped,
counted in :attr:`RecorderStats.dropped_samples` / ``dropped_frames`` and recorded as a gap marker
(``session_gaps``: kind, sensor, time span, count) when the writer catches up. With
``on_full="block"`` (replay, benchmarks: offline producers) the caller waits for room. Events,
calibrations and commands are small and rare and are never dropped.

Errors. When the database cannot be written (disk full, read-only file or directory, file removed)
the recorder stops: the failed transaction is rolled back (nothing half-written),
:attr:`SessionRecorder.error` holds one :class:`~sensorhub.errors.SinkError` that says what
happened and what was kept, it is logged once, and later ``add_*`` calls only count what they
drop. The caller keeps running (alerts do not depend on the store).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Generic, Literal, Self, TypeVar

import numpy as np

from sensorhub.errors import SinkError
from sensorhub.model import Event, FloatArray, ImuBatch, JsonValue, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration
from sensorhub.store import db as dbmod
from sensorhub.store.codec import encode_frames, encode_imu, encode_posture, stored_precision
from sensorhub.store.records import Gap, OnFull, RecorderStats, SessionInfo, SessionStatus

__all__ = ["FRAME_FIELDS", "SessionRecorder", "join_frames"]

log = logging.getLogger(__name__)

#: SpineFrame's array fields after ``t``, in order (all are stored; a new field is stored as well).
FRAME_FIELDS: Final = tuple(f.name for f in dataclasses.fields(SpineFrame) if f.name != "t")

#: Called on the writer's connection when recording starts (the store's retention), or None.
RetentionHook = Callable[[sqlite3.Connection], object]


@dataclass(slots=True)
class _Work:
    imu: dict[str, list[tuple[int, ImuBatch]]] = field(default_factory=dict)
    frames: list[tuple[SpineFrame, list[str]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    calibrations: list[tuple[int, int, RigCalibration]] = field(default_factory=list)
    commands: list[tuple[int, int, str, dict[str, JsonValue]]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    rows: int = 0

    def __bool__(self) -> bool:
        return bool(self.imu or self.frames or self.events or self.calibrations or self.commands or self.gaps)


class SessionRecorder:
    """Records one session; made by :meth:`SessionStore.start_session`.

    Thread-safe. ``add_*`` return at once (see the module docstring for the backlog policy); call
    :meth:`close` at the end (it waits for the last commit, so call it from a worker thread in
    async code: ``await asyncio.to_thread(recorder.close)``).

    Replay contract (what makes a replay reproduce the live angles bit for bit): feed the pipeline
    the batch :meth:`add_imu` returns (float32-rounded like the store), in the order you pass them
    here; call :meth:`set_calibration` when you start a new ``SpinePipeline(cal, ...)``, with
    ``from_batch`` = the arrival index (:attr:`arrivals`) of the first batch it processes (default:
    the next one; flush the old pipeline and record its frames first); record posture-engine
    commands with :meth:`add_command` (or use :class:`sensorhub.store.replay.SessionProcessor`);
    and store the pipeline and alert settings in ``settings``
    (:class:`sensorhub.store.replay.ProcessingSettings`).

    Args:
        path: the database file (the writer opens its own connection).
        pragmas: extra SQLite statements for that connection.
        key: the session's row key.
        info: the session as created.
        lock: the session's writer lock, held until the writer ends.
        on_full: backlog policy, "drop" or "block".
        max_backlog: rows buffered before the policy applies.
        flush_interval_s: how often the writer commits.
        compact_s: span of data after which small chunks are merged.
        retention: run on the writer's connection before the first commit, or None.
    """

    def __init__(
        self,
        path: Path,
        *,
        pragmas: Sequence[str],
        key: int,
        info: SessionInfo,
        lock: dbmod.SessionLock,
        on_full: OnFull,
        max_backlog: int,
        flush_interval_s: float,
        compact_s: float,
        retention: RetentionHook | None,
    ) -> None:
        self.id = info.id
        self.info = info
        self._path = path
        self._pragmas = tuple(pragmas)
        self._key = key
        self._lock_file = lock
        self._on_full: OnFull = on_full
        self._max_backlog = max_backlog
        self._flush_interval_s = flush_interval_s
        self._retention = retention
        self._mutex = threading.Lock()
        self._room = threading.Condition(self._mutex)
        self._flushed = threading.Condition(self._mutex)
        self._wake = threading.Event()
        self._work = _Work()
        self._lost: _Work | None = None  # the unit whose commit failed
        self._pending_gaps: dict[tuple[str, str | None], Gap] = {}
        self._arrivals = 0
        self._actions = 0  # calibrations and commands, in the order given
        self._generation = 0  # work units taken by the writer
        self._written_generation = 0  # work units the writer has finished with
        self._closing = False
        self._final_status: SessionStatus = "complete"
        self._stopped = False
        self._error: SinkError | None = None
        self._stats = RecorderStats()
        self._compact_s = compact_s
        self._sensor_idx: dict[str, int] = {}
        self._imu_next_seq: dict[int, int] = {}
        self._imu_segments: dict[int, _Segment[tuple[int, ImuBatch]]] = {}
        self._frame_next_seq = 0
        self._frame_segment: _Segment[tuple[SpineFrame, list[str]]] = _Segment(0)
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"sensorhub-recorder-{info.id}", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    @property
    def error(self) -> SinkError | None:
        """Why recording stopped early, or None while it works."""
        return self._error

    @property
    def arrivals(self) -> int:
        """Batches passed to :meth:`add_imu` so far: the arrival index the next one gets.

        A live path that calibrates on buffered batches and then processes them notes this when the
        calibration capture starts and gives it to :meth:`set_calibration` as ``from_batch``.
        """
        with self._mutex:
            return self._arrivals

    @property
    def stats(self) -> RecorderStats:
        """Counters so far."""
        with self._mutex:
            return dataclasses.replace(self._stats, queue_depth=self._work.rows)

    def add_imu(self, batch: ImuBatch) -> ImuBatch:
        """Record a raw batch (arrival order); returns it at the store's precision (feed that to the pipeline)."""
        stored = stored_precision(batch)
        n = len(batch)
        with self._mutex:
            index = self._arrivals
            self._arrivals += 1
            if not self.info.record_raw or n == 0:
                return stored
            if not self._make_room(n):
                self._drop("imu", batch.sensor_id, float(batch.t[0]), float(batch.t[-1]), n)
                return stored
            self._work.imu.setdefault(batch.sensor_id, []).append((index, stored))
            self._work.rows += n
        return stored

    def add_frame(self, frame: SpineFrame, posture: Sequence[str] | None = None) -> None:
        """Record a block of spine angles with their posture labels (None = ``unknown``)."""
        n = len(frame)
        if n == 0:
            return
        labels = ["unknown"] * n if posture is None else [str(p) for p in posture]
        if len(labels) != n:
            raise ValueError(f"{len(labels)} posture labels for {n} frame instants")
        with self._mutex:
            if not self._make_room(n):
                self._drop("frames", None, float(frame.t[0]), float(frame.t[-1]), n)
                return
            self._work.frames.append((frame, labels))
            self._work.rows += n

    def add_events(self, events: Sequence[Event]) -> None:
        """Record events; an open one (``end_t`` None) is replaced when it comes again with its end."""
        if not events:
            return
        with self._mutex:
            if not (self._stopped or self._closing):
                self._work.events.extend(events)

    def set_calibration(self, calibration: RigCalibration, *, from_batch: int | None = None) -> None:
        """Record the calibration the pipeline uses for the batches added from now on.

        Args:
            calibration: the rig calibration.
            from_batch: arrival index of the first batch it applies to; default: the next
                :meth:`add_imu` call (a replay passes the recording's index).
        """
        with self._mutex:
            if not (self._stopped or self._closing):
                at = self._arrivals if from_batch is None else from_batch
                self._work.calibrations.append((self._actions, at, calibration))
                self._actions += 1

    def add_command(self, name: str, args: Mapping[str, JsonValue], *, at_batch: int | None = None) -> None:
        """Record a command given to the posture engine before the batch ``at_batch`` (default: the next one)."""
        with self._mutex:
            if not (self._stopped or self._closing):
                at = self._arrivals if at_batch is None else at_batch
                self._work.commands.append((self._actions, at, name, dict(args)))
                self._actions += 1

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything added so far is committed; False on timeout or when recording stopped."""
        with self._mutex:
            if self._stopped:
                return False
            target = self._generation + 1
            self._wake.set()
            ok = self._flushed.wait_for(lambda: self._written_generation >= target or self._stopped, timeout)
            return ok and not self._stopped

    def close(self, status: SessionStatus = "complete") -> None:
        """Commit what is buffered, mark the session ``status`` and stop the writer (idempotent)."""
        if status not in ("complete", "interrupted"):
            raise ValueError(f"a session closes as complete or interrupted, not {status!r}")
        with self._mutex:
            if not self._closing:
                self._closing = True
                self._final_status = status
                self._room.notify_all()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close("complete" if exc_type is None else "interrupted")

    def _make_room(self, n: int) -> bool:
        """Under the mutex: whether ``n`` more rows may be buffered (waiting in block mode)."""
        if self._stopped or self._closing:
            return False
        if self._work.rows + n <= self._max_backlog or self._work.rows == 0:
            return True
        if self._on_full == "drop":
            return False
        self._wake.set()
        self._room.wait_for(
            lambda: self._work.rows + n <= self._max_backlog or self._work.rows == 0 or self._stopped or self._closing
        )
        return not (self._stopped or self._closing)

    def _drop(self, kind: Literal["imu", "frames"], sensor: str | None, t0: float, t1: float, n: int) -> None:
        """Under the mutex: count a drop; while recording works, extend or open a gap marker."""
        if kind == "imu":
            self._stats = dataclasses.replace(self._stats, dropped_samples=self._stats.dropped_samples + n)
        else:
            self._stats = dataclasses.replace(self._stats, dropped_frames=self._stats.dropped_frames + n)
        if self._stopped or self._closing:
            return
        gap_key = (kind, sensor)
        gap = self._pending_gaps.get(gap_key)
        if gap is None:
            self._pending_gaps[gap_key] = Gap(kind, sensor, t0, t1, n)
            self._stats = dataclasses.replace(self._stats, gaps=self._stats.gaps + 1)
            log.warning("session %s: the store is behind; dropping %s data (gap marker from t=%.3f)", self.id, kind, t0)
        else:
            self._pending_gaps[gap_key] = dataclasses.replace(gap, end_t=t1, count=gap.count + n)

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = dbmod.connect(self._path, pragmas=self._pragmas)
        except sqlite3.Error as exc:
            self._fail(exc)
            self._lock_file.release()
            return
        try:
            if self._retention is not None:
                try:
                    self._retention(db)
                except sqlite3.Error as exc:
                    log.warning("session store %s: retention failed: %s", self._path, exc)
            while True:
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
                with self._mutex:
                    work, self._work = self._work, _Work()
                    work.gaps = list(self._pending_gaps.values())
                    self._pending_gaps = {}
                    closing = self._closing
                    self._generation += 1
                    generation = self._generation
                    self._room.notify_all()
                if work or closing:
                    try:
                        self._write(db, work, final=closing)
                    except BaseException:
                        self._lost = work
                        raise
                with self._mutex:
                    self._written_generation = generation
                    self._flushed.notify_all()
                if closing:
                    self._finish(db, self._final_status)
                    return
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc, db)
        except BaseException as exc:
            log.exception("session %s: the recorder failed", self.id)
            self._fail(exc, db)
        finally:
            db.close()
            self._lock_file.release()

    def _write(self, db: sqlite3.Connection, work: _Work, *, final: bool = False) -> None:
        """Commit one unit of work; chunks of the open segment are merged once it spans ``compact_s``
        (and all open segments on the ``final`` write, so a closed session keeps only merged chunks).

        Every flush writes small chunks (what arrived in the last flush interval), so a crash loses
        little; every ``compact_s`` of data the writer replaces a sensor's small chunks since the last
        merge by one chunk in the same transaction (fewer rows, better compression, faster reads).
        The merged data are still in memory, so nothing is read back.
        """
        started = time.perf_counter()
        samples = frames = nbytes = 0
        first_t, last_t = self._first_t, self._last_t
        new_sensors: list[tuple[int, str, str]] = []
        imu_rows: list[tuple[int, int, int, float, float, int, bytes]] = []
        imu_deletes: list[tuple[int, int, int, int]] = []
        next_imu_seq = dict(self._imu_next_seq)
        segments = dict(self._imu_segments)
        streams = dict(work.imu)
        if final:
            for sensor_id, known in self._sensor_idx.items():
                if segments.get(known, _Segment(0)).chunks > 1:
                    streams.setdefault(sensor_id, [])
        for sensor_id, batches in streams.items():
            found = self._sensor_idx.get(sensor_id)
            if found is not None:
                idx = found
            else:
                idx = len(self._sensor_idx) + len(new_sensors)
                new_sensors.append((idx, sensor_id, batches[0][1].placement.value))
            seg = segments.get(idx) or _Segment(next_imu_seq.get(idx, 0))
            merged = seg.items + batches
            if batches:
                samples += sum(len(b) for _, b in batches)
                t0, t1 = float(batches[0][1].t[0]), float(batches[-1][1].t[-1])
                first_t = t0 if first_t is None else min(first_t, t0)
                last_t = t1 if last_t is None else max(last_t, t1)
            span = float(merged[-1][1].t[-1]) - float(merged[0][1].t[0])
            if seg.chunks and (span >= self._compact_s or final):
                imu_deletes.append((self._key, idx, seg.first_seq, next_imu_seq.get(idx, 0) - 1))
                seq = seg.first_seq
                for run in _runs_by_seq(merged):
                    blob, n, a, b = encode_imu(run)
                    imu_rows.append((self._key, idx, seq, a, b, n, blob))
                    nbytes += len(blob)
                    seq += 1
                nbytes -= seg.nbytes
                segments[idx] = _Segment(next_imu_seq.get(idx, 0))
            else:
                seq = next_imu_seq.get(idx, 0)
                added = 0
                for run in _runs_by_seq(batches):
                    blob, n, a, b = encode_imu(run)
                    imu_rows.append((self._key, idx, seq, a, b, n, blob))
                    added += len(blob)
                    seq += 1
                nbytes += added
                segments[idx] = _Segment(
                    seg.first_seq, merged, seg.chunks + seq - next_imu_seq.get(idx, 0), seg.nbytes + added
                )
                next_imu_seq[idx] = seq
        frame_rows: list[tuple[int, int, float, float, int, str, bytes, str]] = []
        frame_delete: tuple[int, int, int] | None = None
        frame_segment = self._frame_segment
        next_frame_seq = self._frame_next_seq
        if work.frames or (final and frame_segment.chunks > 1):
            t_new = work.frames
            merged_frames = frame_segment.items + t_new
            if t_new:
                frames = sum(len(f) for f, _ in t_new)
                a, b = float(t_new[0][0].t[0]), float(t_new[-1][0].t[-1])
                first_t = a if first_t is None else min(first_t, a)
                last_t = b if last_t is None else max(last_t, b)
            span = float(merged_frames[-1][0].t[-1]) - float(merged_frames[0][0].t[0])
            if frame_segment.chunks and (span >= self._compact_s or final):
                frame_delete = (self._key, frame_segment.first_seq, next_frame_seq - 1)
                row, size = _frame_row(self._key, frame_segment.first_seq, merged_frames)
                frame_rows.append(row)
                nbytes += size - frame_segment.nbytes
                frame_segment = _Segment(next_frame_seq)
            else:
                row, size = _frame_row(self._key, next_frame_seq, t_new)
                frame_rows.append(row)
                nbytes += size
                frame_segment = _Segment(
                    frame_segment.first_seq, merged_frames, frame_segment.chunks + 1, frame_segment.nbytes + size
                )
                next_frame_seq += 1
        event_rows = []
        for e in work.events:
            data = json.dumps(dict(e.data), separators=(",", ":"))
            end_t = None if e.end_t is None or math.isnan(e.end_t) else float(e.end_t)
            event_rows.append((self._key, e.type, float(e.start_t), end_t, data))
            nbytes += len(data)
        cal_rows = []
        for seq, from_batch, cal in work.calibrations:
            text = json.dumps(cal.to_json(), separators=(",", ":"))
            cal_rows.append((self._key, seq, from_batch, text))
            nbytes += len(text)
        command_rows = []
        for seq, at_batch, name, args in work.commands:
            text = json.dumps(args, separators=(",", ":"))
            command_rows.append((self._key, seq, at_batch, name, text))
            nbytes += len(text)
        with dbmod.transaction(db):
            db.executemany(
                "INSERT INTO session_sensors (session, idx, sensor_id, placement) VALUES (?, ?, ?, ?)",
                [(self._key, *s) for s in new_sensors],
            )
            db.executemany(
                "DELETE FROM imu_chunks WHERE session = ? AND sensor = ? AND seq BETWEEN ? AND ?", imu_deletes
            )
            db.executemany(
                "INSERT INTO imu_chunks (session, sensor, seq, t0, t1, n, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                imu_rows,
            )
            if frame_delete is not None:
                db.execute("DELETE FROM frame_chunks WHERE session = ? AND seq BETWEEN ? AND ?", frame_delete)
            db.executemany(
                "INSERT INTO frame_chunks (session, seq, t0, t1, n, fields, data, posture) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                frame_rows,
            )
            db.executemany(
                "INSERT INTO session_events (session, type, start_t, end_t, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (session, type, start_t) DO UPDATE SET end_t = excluded.end_t, data = excluded.data "
                "WHERE excluded.end_t IS NOT NULL OR session_events.end_t IS NULL",
                event_rows,
            )
            db.executemany(
                "INSERT INTO session_calibrations (session, seq, from_batch, data) VALUES (?, ?, ?, ?)", cal_rows
            )
            db.executemany(
                "INSERT INTO session_commands (session, seq, at_batch, name, args) VALUES (?, ?, ?, ?, ?)", command_rows
            )
            db.executemany(
                "INSERT INTO session_gaps (session, kind, sensor, start_t, end_t, count, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self._key, g.kind, g.sensor, g.start_t, g.end_t, g.count, g.reason) for g in work.gaps],
            )
            with self._mutex:
                dropped = self._stats.dropped_samples + self._stats.dropped_frames
            db.execute(
                "UPDATE sessions SET samples = samples + ?, frames = frames + ?, bytes = bytes + ?, dropped = ?, "
                "first_t = ?, last_t = ?, events = (SELECT count(*) FROM session_events WHERE session = ?) "
                "WHERE key = ?",
                (samples, frames, nbytes, dropped, first_t, last_t, self._key, self._key),
            )
        # Committed: only now does the writer's bookkeeping move on.
        for idx, sensor_id, _ in new_sensors:
            self._sensor_idx[sensor_id] = idx
        self._imu_next_seq = next_imu_seq
        self._imu_segments = segments
        self._frame_segment = frame_segment
        self._frame_next_seq = next_frame_seq
        self._first_t, self._last_t = first_t, last_t
        with self._mutex:
            s = self._stats
            self._stats = dataclasses.replace(
                s,
                samples_written=s.samples_written + samples,
                frames_written=s.frames_written + frames,
                events_written=s.events_written + len(event_rows),
                chunks_written=s.chunks_written + len(imu_rows) + len(frame_rows),
                bytes_written=s.bytes_written + nbytes,
                commits=s.commits + 1,
                last_commit_s=time.perf_counter() - started,
            )

    def _finish(self, db: sqlite3.Connection, status: SessionStatus) -> None:
        ended = (
            self.info.started
            if self._last_t is None
            else max(self.info.started, self._last_t + self.info.clock_offset_s)
        )
        with dbmod.transaction(db):
            db.execute("UPDATE sessions SET status = ?, ended = ? WHERE key = ?", (status, ended, self._key))
        with self._mutex:
            self._stopped = True
            self._room.notify_all()
            self._flushed.notify_all()

    def _fail(self, exc: BaseException, db: sqlite3.Connection | None = None) -> None:
        with self._mutex:
            kept = "nothing was recorded" if self._last_t is None else f"the first {self._kept_s():.0f} s are kept"
            error = dbmod.sink_error("write to", self._path, exc)
            self._error = SinkError(
                f"session {self.id}: recording stopped: {error.message}; {kept}", advice=error.advice
            )
            log.error("%s", self._error)  # before anyone waiting hears of it
            self._stopped = True
            lost = [self._work] if self._lost is None else [self._lost, self._work]
            self._stats = dataclasses.replace(
                self._stats,
                dropped_samples=self._stats.dropped_samples
                + sum(len(b) for w in lost for v in w.imu.values() for _, b in v),
                dropped_frames=self._stats.dropped_frames + sum(len(f) for w in lost for f, _ in w.frames),
            )
            self._work = _Work()
            self._lost = None
            self._room.notify_all()
            self._flushed.notify_all()
        if db is not None:
            # Best effort: mark it interrupted now (a full disk may refuse even this; readers then
            # find it without a writer and mark it themselves).
            try:
                with dbmod.transaction(db):
                    ended = self.info.started if self._last_t is None else self._last_t + self.info.clock_offset_s
                    db.execute(
                        "UPDATE sessions SET status = 'interrupted', ended = ?, error = ? WHERE key = ?",
                        (ended, self._error.message, self._key),
                    )
            except sqlite3.Error:
                pass

    def _kept_s(self) -> float:
        if self._first_t is None or self._last_t is None:
            return 0.0
        return self._last_t - self._first_t

    def __repr__(self) -> str:
        return f"SessionRecorder({self.id!r}, error={self._error!r})"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Segment(Generic[T]):
    """The writer's open segment of one stream: small chunks since the last merge (``first_seq`` on)."""

    first_seq: int
    items: list[T] = field(default_factory=list)
    chunks: int = 0
    nbytes: int = 0


def _frame_row(
    key: int, seq: int, blocks: list[tuple[SpineFrame, list[str]]]
) -> tuple[tuple[int, int, float, float, int, str, bytes, str], int]:
    t, names, columns, labels = join_frames(blocks)
    blob = encode_frames(t, columns)
    posture = encode_posture(labels)
    return (key, seq, float(t[0]), float(t[-1]), len(t), ",".join(names), blob, posture), len(blob) + len(posture)


def _runs_by_seq(batches: list[tuple[int, ImuBatch]]) -> Iterator[list[tuple[int, ImuBatch]]]:
    """Consecutive batches grouped so that all or none of a group carry device counters."""
    run: list[tuple[int, ImuBatch]] = []
    for item in batches:
        if run and (run[-1][1].seq is None) != (item[1].seq is None):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def join_frames(
    blocks: list[tuple[SpineFrame, list[str]]],
) -> tuple[FloatArray, list[str], list[FloatArray], list[str]]:
    t = np.concatenate([f.t for f, _ in blocks])
    names: list[str] = []
    columns: list[FloatArray] = []
    for name in FRAME_FIELDS:
        parts = [getattr(f, name) for f, _ in blocks]
        if all(p is None for p in parts):
            continue
        names.append(name)
        columns.append(
            np.concatenate(
                [
                    np.full(len(f.t), np.nan) if p is None else np.asarray(p, dtype=np.float64)
                    for (f, _), p in zip(blocks, parts, strict=True)
                ]
            )
        )
    labels = [label for _, ls in blocks for label in ls]
    return t, names, columns, labels
