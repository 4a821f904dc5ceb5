"""The session store: open the database, start recorders, list and read sessions back, delete, retention.

Recording itself is :mod:`sensorhub.store.recorder` (buffers, the writer thread, the backlog
policy, errors); the file layout is :mod:`sensorhub.store.db`; the chunk encoding
:mod:`sensorhub.store.codec`.

Retention (:class:`~sensorhub.store.records.Retention`): sessions older than ``max_age_days`` (by
their end) are deleted, then, while the database's pages in use exceed ``max_size_mb``, the
oldest sessions, one at a time. A session whose writer is alive is never deleted, nor the one being
started. Freed pages go back to the file system with ``PRAGMA incremental_vacuum`` (the file is
``auto_vacuum = INCREMENTAL``); no full VACUUM. Retention runs on the writer thread when a session
starts, and on demand (:meth:`SessionStore.apply_retention`).
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import numpy as np

from sensorhub.errors import InputError, SinkError
from sensorhub.model import Event, ImuBatch, JsonValue, Placement, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration
from sensorhub.store import db as dbmod
from sensorhub.store.codec import ImuChunk, decode_frames, decode_imu, decode_posture
from sensorhub.store.recorder import FRAME_FIELDS, SessionRecorder, join_frames
from sensorhub.store.records import (
    Gap,
    OnFull,
    RecorderStats,
    Retention,
    SessionInfo,
    SessionStatus,
    StoredCalibration,
    StoredCommand,
    iso_utc,
)

__all__ = [
    "FRAME_FIELDS",
    "Gap",
    "OnFull",
    "RecorderStats",
    "Retention",
    "SessionInfo",
    "SessionRecorder",
    "SessionStatus",
    "SessionStore",
    "StoredCalibration",
    "StoredCommand",
    "iso_utc",
]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S: Final = 0.5
DEFAULT_MAX_BACKLOG: Final = 30_000
DEFAULT_COMPACT_S: Final = 60.0
_MB: Final = 1024 * 1024


def _new_id(started_epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(started_epoch, tz=dt.UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _json_text(value: Mapping[str, JsonValue] | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)  # must be JSON text
        return value
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------

_SESSION_COLUMNS: Final = (
    "key, id, wearer, started, ended, status, config, placements, clock_offset_s, parent_id, settings, "
    "record_raw, first_t, last_t, samples, frames, events, bytes, dropped, error, "
    "(SELECT count(*) FROM session_gaps g WHERE g.session = sessions.key)"
)


class SessionStore:
    """The SQLite session store.

    Args:
        path: database file; default ``<user data dir>/sensorhub/sessions.db``
            (:func:`sensorhub.config.default_store_path`).
        retention: limits applied when a session starts (None = keep everything).
        create: create the file (and its directory) when missing; with False a missing file
            raises :class:`~sensorhub.errors.InputError`.
        flush_interval_s: how often recorders commit (bounds what a crash loses).
        max_backlog: rows a recorder buffers before its ``on_full`` policy applies.
        compact_s: span of the chunks a recorder merges its small per-flush chunks into.
        pragmas: extra SQLite statements for every connection (tests simulate a full disk with
            ``PRAGMA max_page_count``).

    Raises:
        SinkError: the file cannot be opened or created, or was written by a newer sensorhub.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        retention: Retention | None = None,
        create: bool = True,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        compact_s: float = DEFAULT_COMPACT_S,
        pragmas: Sequence[str] = (),
    ) -> None:
        if path is None:
            from sensorhub.config import default_store_path

            path = default_store_path()
        if not 0 < flush_interval_s <= 0.9:
            raise ValueError("flush_interval_s must be in (0, 0.9] so a crash loses less than a second")
        self.path = Path(path)
        self.retention = retention
        self.flush_interval_s = flush_interval_s
        self.max_backlog = max_backlog
        self.compact_s = compact_s
        self.pragmas = tuple(pragmas)
        self.readonly = False
        self._mutex = threading.RLock()
        if not create and not self.path.exists():
            raise InputError(f"no session store at {str(self.path)!r}", advice="record a session first, or pass --db")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise dbmod.sink_error("create", self.path, exc) from exc
        try:
            self._db = dbmod.connect(self.path, pragmas=self.pragmas)
        except sqlite3.Error as exc:
            if not self.path.exists():
                raise dbmod.sink_error("create", self.path, exc) from exc
            self._db = self._open_readonly(exc)
        try:
            if not self.readonly:
                try:
                    dbmod.ensure_schema(self._db, self.path)
                except sqlite3.OperationalError as exc:
                    if dbmod.describe_sqlite_error(exc) != "the database is read-only":
                        raise
                    self._db.close()
                    self._db = self._open_readonly(exc)
            if self.readonly and dbmod._meta_version(self._db) is None:
                raise SinkError(f"{str(self.path)!r} is read-only and holds no session store")
            if not self.readonly:
                self._reap()
        except sqlite3.Error as exc:
            self._db.close()
            raise dbmod.sink_error("open", self.path, exc) from exc
        except BaseException:
            self._db.close()
            raise

    def _open_readonly(self, cause: BaseException) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        # mode=ro needs the WAL index (-shm) to exist or be creatable; in a read-only directory
        # without one, immutable=1 reads the file as it is (nobody can be writing there).
        for immutable in (False, True):
            try:
                db = dbmod.connect(self.path, readonly=True, immutable=immutable, pragmas=self.pragmas)
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                    db = None
                if immutable:
                    raise dbmod.sink_error("open", self.path, cause) from exc
        assert db is not None  # the loop either breaks with a connection or raises
        self.readonly = True
        log.info("session store %s opened read-only", self.path)
        return db

    @classmethod
    def from_config(cls, storage: object) -> SessionStore:
        """A store from a :class:`sensorhub.config.StorageConfig` (path and retention)."""
        from sensorhub.config import StorageConfig

        if not isinstance(storage, StorageConfig):
            raise TypeError("expected a StorageConfig")
        return cls(storage.path, retention=Retention(storage.retention_days, storage.max_size_mb))

    # -- recording ---------------------------------------------------------------------------

    def start_session(
        self,
        wearer: str,
        placements: Sequence[str],
        *,
        config_json: Mapping[str, JsonValue] | str | None = None,
        started_epoch: float,
        clock_offset_s: float,
        parent_id: str | None = None,
        settings: Mapping[str, JsonValue] | None = None,
        record_raw: bool = True,
        on_full: OnFull = "drop",
    ) -> SessionRecorder:
        """Create a session (status ``recording``) and start its writer.

        Args:
            wearer: wearer id.
            placements: placements worn (e.g. ``["upper_thoracic", "sacral"]``).
            config_json: the configuration snapshot (a JSON object or its text).
            started_epoch: start, epoch seconds.
            clock_offset_s: epoch seconds − session clock seconds (the clock of ImuBatch.t).
            parent_id: the session this one derives from (replays).
            settings: processing settings (:meth:`sensorhub.store.replay.ProcessingSettings.to_json`).
            record_raw: keep raw IMU samples (needed for replay and raw export).
            on_full: backlog policy, "drop" (live) or "block" (offline producers).

        Raises:
            SinkError: the store cannot be written (read-only, disk full).
        """
        if self.readonly:
            raise dbmod.sink_error(
                "write to", self.path, sqlite3.OperationalError("attempt to write a readonly database")
            )
        for p in placements:
            Placement(p)  # ValueError on an unknown placement
        session_id = _new_id(started_epoch)
        lock = dbmod.SessionLock(dbmod.lock_path(self.path, session_id))
        try:
            if not lock.acquire():
                raise SinkError(f"session {session_id} is locked by another writer")
        except OSError as exc:
            raise dbmod.sink_error("write to", self.path, exc) from exc
        settings_json: dict[str, JsonValue] = dict(settings or {})
        try:
            with self._mutex, dbmod.transaction(self._db):
                cursor = self._db.execute(
                    "INSERT INTO sessions (id, wearer, started, status, config, placements, clock_offset_s, parent_id, "
                    "settings, record_raw) VALUES (?, ?, ?, 'recording', ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        wearer,
                        float(started_epoch),
                        _json_text(config_json),
                        json.dumps([str(p) for p in placements]),
                        float(clock_offset_s),
                        parent_id,
                        json.dumps(settings_json, separators=(",", ":"), allow_nan=False),
                        int(record_raw),
                    ),
                )
                key = cursor.lastrowid
        except sqlite3.Error as exc:
            lock.release()
            raise dbmod.sink_error("write to", self.path, exc) from exc
        except BaseException:
            lock.release()  # e.g. a config snapshot that is not JSON: no lock file left behind
            raise
        if key is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
            lock.release()
            raise SinkError("the session store returned no key for a new session")
        info = self.get(session_id)
        retention = self.retention
        hook = None
        if retention is not None and retention.active:

            def hook(db: sqlite3.Connection) -> object:
                return self._apply_retention(db, retention, time.time(), protect={session_id})

        return SessionRecorder(
            self.path,
            pragmas=self.pragmas,
            key=key,
            info=info,
            lock=lock,
            on_full=on_full,
            max_backlog=self.max_backlog,
            flush_interval_s=self.flush_interval_s,
            compact_s=self.compact_s,
            retention=hook,
        )

    # -- reading -----------------------------------------------------------------------------

    def list_sessions(self) -> list[SessionInfo]:
        """All sessions, newest first (stale ``recording`` sessions reported as ``interrupted``)."""
        with self._mutex:
            if not self.readonly:
                self._reap()
            rows = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started DESC, key DESC"
            ).fetchall()
            sensors = self._sensors()
        return [self._info(row, sensors.get(int(row[0]), ())) for row in rows]

    def get(self, session_id: str) -> SessionInfo:
        """One session by id or unique id prefix.

        Raises:
            InputError: no such session, or the prefix matches several.
        """
        with self._mutex:
            key = self._key(session_id)
            if not self.readonly:
                self._reap(key)
            row = self._db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone()
            sensors = self._sensors(key)
        return self._info(row, sensors.get(key, ()))

    def read_imu_chunks(self, session_id: str) -> Iterator[ImuChunk]:
        """Raw chunks, all sensors merged by start time (a derived session reads its parent's)."""
        key = self._raw_key(session_id)
        with self._mutex:
            sensors = {
                int(i): (str(s), Placement(p))
                for i, s, p in self._db.execute(
                    "SELECT idx, sensor_id, placement FROM session_sensors WHERE session = ?", (key,)
                ).fetchall()
            }
        streams = [self._sensor_chunks(key, idx, sid, placement) for idx, (sid, placement) in sorted(sensors.items())]
        for _, _, chunk in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield chunk

    def _sensor_chunks(
        self, key: int, idx: int, sensor_id: str, placement: Placement, page: int = 256
    ) -> Iterator[tuple[float, int, ImuChunk]]:
        last = -1
        while True:
            with self._mutex:
                rows = self._db.execute(
                    "SELECT seq, t0, data FROM imu_chunks WHERE session = ? AND sensor = ? AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (key, idx, last, page),
                ).fetchall()
            for _seq, t0, data in rows:
                yield float(t0), idx, decode_imu(bytes(data), sensor_id, placement)
            if len(rows) < page:
                return
            last = int(rows[-1][0])

    def read_imu(self, session_id: str) -> Iterator[ImuBatch]:
        """The raw batches as the recorder received them, in arrival order (acc/gyro float32-exact)."""
        for _, batch in self.read_imu_indexed(session_id):
            yield batch

    def read_imu_indexed(self, session_id: str) -> Iterator[tuple[int, ImuBatch]]:
        """:meth:`read_imu` with each batch's arrival index (what calibrations and commands refer to)."""
        key = self._raw_key(session_id)
        with self._mutex:
            sensors = self._db.execute(
                "SELECT idx, sensor_id, placement FROM session_sensors WHERE session = ? ORDER BY idx", (key,)
            ).fetchall()

        def batches(idx: int, sid: str, placement: Placement) -> Iterator[tuple[int, ImuBatch]]:
            for _, _, chunk in self._sensor_chunks(key, idx, sid, placement):
                yield from chunk.split()

        streams = [batches(int(i), str(s), Placement(p)) for i, s, p in sensors]
        yield from heapq.merge(*streams, key=lambda item: item[0])

    def read_frames(self, session_id: str) -> Iterator[tuple[SpineFrame, list[str]]]:
        """Stored angle blocks with their posture labels, in time order."""
        key = self._key_of(session_id)
        last = -1
        while True:
            with self._mutex:
                rows = self._db.execute(
                    "SELECT seq, fields, data, posture FROM frame_chunks WHERE session = ? AND seq > ? "
                    "ORDER BY seq LIMIT 512",
                    (key, last),
                ).fetchall()
            for _, fields, data, posture in rows:
                names = [n for n in str(fields).split(",") if n]
                t, columns = decode_frames(bytes(data), len(names))
                values = {n: c for n, c in zip(names, columns, strict=True) if n in FRAME_FIELDS}
                yield SpineFrame(t=t, **values), decode_posture(str(posture))
            if len(rows) < 512:
                return
            last = int(rows[-1][0])

    def read_frame(self, session_id: str) -> tuple[SpineFrame, list[str]]:
        """All of a session's angles as one frame, with the posture labels."""
        blocks = list(self.read_frames(session_id))
        if not blocks:
            return SpineFrame(t=np.empty(0)), []
        t, names, columns, labels = join_frames(blocks)
        return SpineFrame(t=t, **dict(zip(names, columns, strict=True))), labels

    def read_events(self, session_id: str) -> list[Event]:
        """Events in start order (open ones have ``end_t`` None)."""
        key = self._key_of(session_id)
        with self._mutex:
            rows = self._db.execute(
                "SELECT type, start_t, end_t, data FROM session_events WHERE session = ? ORDER BY start_t, rowid",
                (key,),
            ).fetchall()
        return [Event(str(ty), float(s), None if e is None else float(e), json.loads(d)) for ty, s, e, d in rows]

    def read_calibrations(self, session_id: str) -> list[StoredCalibration]:
        """The calibrations the session used, in order."""
        key = self._key_of(session_id)
        with self._mutex:
            rows = self._db.execute(
                "SELECT from_batch, data, seq FROM session_calibrations WHERE session = ? ORDER BY seq", (key,)
            ).fetchall()
        return [StoredCalibration(int(b), RigCalibration.from_json(json.loads(d)), int(q)) for b, d, q in rows]

    def read_commands(self, session_id: str) -> list[StoredCommand]:
        """The posture-engine commands given during the session, in order."""
        key = self._key_of(session_id)
        with self._mutex:
            rows = self._db.execute(
                "SELECT at_batch, name, args, seq FROM session_commands WHERE session = ? ORDER BY seq", (key,)
            ).fetchall()
        return [StoredCommand(int(b), str(n), json.loads(a), int(q)) for b, n, a, q in rows]

    def read_gaps(self, session_id: str) -> list[Gap]:
        """Gap markers (data the recorder dropped), in time order."""
        key = self._key_of(session_id)
        with self._mutex:
            rows = self._db.execute(
                "SELECT kind, sensor, start_t, end_t, count, reason FROM session_gaps WHERE session = ? "
                "ORDER BY start_t",
                (key,),
            ).fetchall()
        return [Gap(k, s, float(a), float(b), int(n), str(r)) for k, s, a, b, n, r in rows]

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, session_id: str) -> None:
        """Delete a session and its data, then return the freed pages to the file system.

        Raises:
            InputError: no such session, or it is still being recorded.
            SinkError: the store cannot be written.
        """
        info = self.get(session_id)
        if info.status == "recording":
            raise InputError(f"session {info.id} is being recorded; stop it first")
        try:
            with self._mutex:
                self._delete_keys(self._db, [self._key(info.id)])
                self._db.executescript("PRAGMA incremental_vacuum;")  # execute() would step once: one page
        except sqlite3.Error as exc:
            raise dbmod.sink_error("write to", self.path, exc) from exc

    def apply_retention(self, now: float | None = None, retention: Retention | None = None) -> list[str]:
        """Apply ``retention`` (default: the store's); returns the ids deleted, oldest first.

        Raises:
            SinkError: the store cannot be written.
        """
        limits = retention or self.retention
        if limits is None or not limits.active:
            return []
        try:
            with self._mutex:
                return self._apply_retention(self._db, limits, time.time() if now is None else now, protect=set())
        except sqlite3.Error as exc:
            raise dbmod.sink_error("write to", self.path, exc) from exc

    def _apply_retention(
        self, db: sqlite3.Connection, retention: Retention, now: float, *, protect: set[str]
    ) -> list[str]:
        rows = db.execute("SELECT key, id, started, ended, status FROM sessions ORDER BY started, key").fetchall()
        candidates = [
            (int(k), str(i), float(s), e)
            for k, i, s, e, status in rows
            if i not in protect and not (status == "recording" and dbmod.writer_alive(self.path, str(i)))
        ]
        deleted: list[str] = []
        if retention.max_age_days > 0:
            cutoff = now - retention.max_age_days * 86400.0
            old = [c for c in candidates if (c[3] if c[3] is not None else c[2]) < cutoff]
            for key, sid, _, _ in old:
                self._delete_keys(db, [key])
                deleted.append(sid)
            candidates = [c for c in candidates if c[1] not in set(deleted)]
        if retention.max_size_mb > 0:
            limit = retention.max_size_mb * _MB
            while candidates and _used_bytes(db) > limit:
                key, sid, _, _ = candidates.pop(0)
                self._delete_keys(db, [key])
                deleted.append(sid)
        if deleted:
            db.executescript("PRAGMA incremental_vacuum;")  # execute() would step once: one page
            log.info(
                "session store %s: retention deleted %d session(s): %s", self.path, len(deleted), ", ".join(deleted)
            )
        return deleted

    @staticmethod
    def _delete_keys(db: sqlite3.Connection, keys: Sequence[int]) -> None:
        with dbmod.transaction(db):
            for key in keys:
                # ON DELETE CASCADE removes the chunks, events, calibrations, sensors and gaps.
                db.execute("DELETE FROM sessions WHERE key = ?", (key,))

    # -- housekeeping ------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" or SQLite's list of problems."""
        with self._mutex:
            rows = self._db.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

    def size_bytes(self) -> int:
        """Bytes on disk (database file + WAL)."""
        return dbmod.file_size(self.path)

    def close(self) -> None:
        """Close the reading connection (recorders keep their own until they close)."""
        with self._mutex:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionStore({str(self.path)!r})"

    # -- internals ---------------------------------------------------------------------------

    def _reap(self, key: int | None = None) -> None:
        """Mark ``recording`` sessions without a live writer as ``interrupted``."""
        where = "status = 'recording'" + ("" if key is None else " AND key = ?")
        args: tuple[int, ...] = () if key is None else (key,)
        with self._mutex:
            rows = self._db.execute(
                f"SELECT key, id, started, clock_offset_s, last_t FROM sessions WHERE {where}", args
            ).fetchall()
            for k, sid, started, offset, last_t in rows:
                if dbmod.writer_alive(self.path, str(sid)):
                    continue
                ended = float(started) if last_t is None else max(float(started), float(last_t) + float(offset))
                try:
                    with dbmod.transaction(self._db):
                        self._db.execute(
                            "UPDATE sessions SET status = 'interrupted', ended = ? "
                            "WHERE key = ? AND status = 'recording'",
                            (ended, k),
                        )
                except sqlite3.Error as exc:
                    log.warning("session store %s: cannot mark session %s interrupted: %s", self.path, sid, exc)
                    continue
                log.info("session %s was not closed (its writer is gone): marked interrupted", sid)

    def _key(self, session_id: str) -> int:
        """The key of a session id or unique prefix (InputError otherwise)."""
        text = session_id.strip()
        if not text:
            raise InputError("empty session id")
        with self._mutex:
            row = self._db.execute("SELECT key FROM sessions WHERE id = ?", (text,)).fetchone()
            if row is not None:
                return int(row[0])
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._db.execute(
                "SELECT key, id FROM sessions WHERE id LIKE ? ESCAPE '\\' ORDER BY started LIMIT 3", (escaped + "%",)
            ).fetchall()
        if not rows:
            raise InputError(f"no session {text!r} in {str(self.path)!r}", advice="see: sensorhub sessions list")
        if len(rows) > 1:
            more = ", ..." if len(rows) > 2 else ""
            raise InputError(
                f"session id {text!r} is ambiguous: {', '.join(str(r[1]) for r in rows[:2])}{more}",
                advice="give more characters",
            )
        return int(rows[0][0])

    def _key_of(self, session_id: str) -> int:
        return self._key(session_id)

    def _raw_key(self, session_id: str) -> int:
        """The key whose raw chunks belong to this session: its own, or its parent's for a derived one."""
        info = self.get(session_id)
        key = self._key(info.id)
        seen = {info.id}
        while not info.record_raw and info.parent_id is not None and info.parent_id not in seen:
            try:
                info = self.get(info.parent_id)
            except InputError:
                break
            seen.add(info.id)
            key = self._key(info.id)
        return key

    def _sensors(self, key: int | None = None) -> dict[int, tuple[tuple[str, str], ...]]:
        sql = "SELECT session, sensor_id, placement FROM session_sensors"
        args: tuple[int, ...] = ()
        if key is not None:
            sql += " WHERE session = ?"
            args = (key,)
        out: dict[int, list[tuple[str, str]]] = {}
        for k, s, p in self._db.execute(sql + " ORDER BY session, idx", args).fetchall():
            out.setdefault(int(k), []).append((str(s), str(p)))
        return {k: tuple(v) for k, v in out.items()}

    def _info(self, row: Sequence[Any], sensors: tuple[tuple[str, str], ...]) -> SessionInfo:
        (
            _key,
            sid,
            wearer,
            started,
            ended,
            status,
            config,
            placements,
            offset,
            parent,
            settings,
            record_raw,
            first_t,
            last_t,
            samples,
            frames,
            events,
            nbytes,
            dropped,
            error,
            gaps,
        ) = row
        state = str(status)
        if state == "recording" and self.readonly and not dbmod.writer_alive(self.path, str(sid)):
            state = "interrupted"
        return SessionInfo(
            id=str(sid),
            wearer=str(wearer),
            started=float(started),
            ended=None if ended is None else float(ended),
            status="recording" if state == "recording" else "complete" if state == "complete" else "interrupted",
            placements=tuple(json.loads(str(placements))),
            clock_offset_s=float(offset),
            parent_id=None if parent is None else str(parent),
            settings=json.loads(str(settings)),
            config=None if config is None else json.loads(str(config)),
            record_raw=bool(record_raw),
            sensors=sensors,
            samples=int(samples),
            frames=int(frames),
            events=int(events),
            bytes=int(nbytes),
            dropped=int(dropped),
            gaps=int(gaps),
            first_t=None if first_t is None else float(first_t),
            last_t=None if last_t is None else float(last_t),
            error=None if error is None else str(error),
        )


def _used_bytes(db: sqlite3.Connection) -> int:
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    return (pages - free) * page_size
