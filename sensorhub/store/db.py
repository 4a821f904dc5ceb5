"""The session database: one SQLite file, its schema, migrations, connections and writer locks.

Layout (schema version 1; every table name starts with ``store_`` or ``session``/``imu``/``frame``
so that other owners, such as the MQTT outbox's ``mqtt_outbox*`` tables, can share the file):

==================  ===========================================================================
table               one row per
==================  ===========================================================================
store_meta          key → value (``schema_version``)
sessions            session: id, wearer, started/ended (epoch s), status, config snapshot,
                    placements, clock offset (epoch − session clock), parent id, settings, counters
session_sensors     physical sensor seen in a session (sensor id, placement)
session_calibrations rig calibration used from a given arrival index on (RigCalibration JSON)
session_commands    command given to the posture engine (snooze, exercise, pain) at an arrival index
imu_chunks          ~0.5 s of one sensor's raw samples (see :mod:`sensorhub.store.codec`)
frame_chunks        ~0.5 s of spine angles and posture labels
session_events      event (slouch, break, rep, set, ...); an open one is replaced when it ends
session_gaps        data the recorder had to drop (writer backlog full): kind, sensor, time span
==================  ===========================================================================

The schema version lives in ``store_meta``, not in ``PRAGMA user_version``: the file is shared
with the MQTT outbox, and a pragma that is one number per file cannot have two owners.

Durability. WAL mode, ``synchronous = NORMAL``: a committed transaction has been written to the WAL
file (the operating system's page cache) when COMMIT returns, so it survives the process being
killed at any instant, SIGKILL included; only an operating-system crash or power cut can lose the
last commits (SQLite, "Write-Ahead Logging"). The recorder commits at least every
``flush_interval_s`` (0.5 s), which bounds what a kill loses.

Space. ``auto_vacuum = INCREMENTAL`` (set when the store creates its tables): deleting a session
puts its pages on the free list and ``PRAGMA incremental_vacuum`` then gives them back to the file
system; no full ``VACUUM`` (which rewrites the whole file and needs as much free space again) is
ever run on a populated database.

Writer locks. A recording session holds an exclusive advisory lock (``flock``; ``msvcrt.locking``
on Windows) on ``<db>.locks/<session id>.lock``. The operating system drops the lock when the
process dies, however it dies, so any later reader that can take the lock knows the writer is gone
and marks the session ``interrupted``. Advisory locks are unreliable on network file systems; keep
the database on a local disk.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

from sensorhub.errors import SinkError

__all__ = [
    "SCHEMA_VERSION",
    "SessionLock",
    "connect",
    "describe_sqlite_error",
    "ensure_schema",
    "lock_path",
    "sink_error",
    "transaction",
]

log = logging.getLogger(__name__)

#: Version of the tables below; bump it with a step in :func:`_migrate`.
SCHEMA_VERSION: Final = 1

#: Page size of a new database: 8 KiB keeps a 0.5 s chunk of one sensor (≈ 2 KB at 100 Hz) and its
#: index entries on few pages with little slack.
PAGE_SIZE: Final = 8192

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS store_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sessions (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        wearer TEXT NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted')),
        config TEXT,
        placements TEXT NOT NULL,
        clock_offset_s REAL NOT NULL,
        parent_id TEXT,
        settings TEXT NOT NULL,
        record_raw INTEGER NOT NULL,
        first_t REAL,
        last_t REAL,
        samples INTEGER NOT NULL DEFAULT 0,
        frames INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started)",
    """CREATE TABLE IF NOT EXISTS session_sensors (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        sensor_id TEXT NOT NULL,
        placement TEXT NOT NULL,
        PRIMARY KEY (session, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS session_calibrations (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        from_batch INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS session_commands (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at_batch INTEGER NOT NULL,
        name TEXT NOT NULL,
        args TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS imu_chunks (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        sensor INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t1 REAL NOT NULL,
        n INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS imu_chunks_order ON imu_chunks (session, sensor, seq)",
    """CREATE TABLE IF NOT EXISTS frame_chunks (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t1 REAL NOT NULL,
        n INTEGER NOT NULL,
        fields TEXT NOT NULL,
        data BLOB NOT NULL,
        posture TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS frame_chunks_order ON frame_chunks (session, seq)",
    """CREATE TABLE IF NOT EXISTS session_events (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        type TEXT NOT NULL,
        start_t REAL NOT NULL,
        end_t REAL,
        data TEXT NOT NULL,
        PRIMARY KEY (session, type, start_t)
    )""",
    """CREATE TABLE IF NOT EXISTS session_gaps (
        session INTEGER NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('imu', 'frames')),
        sensor TEXT,
        start_t REAL NOT NULL,
        end_t REAL NOT NULL,
        count INTEGER NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS session_gaps_session ON session_gaps (session)",
)


def describe_sqlite_error(exc: BaseException) -> str:
    """Plain words for the SQLite and OS errors a store meets (disk full, read-only, locked)."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if code == sqlite3.SQLITE_FULL or "database or disk is full" in text:
        return "the disk is full"
    if code == sqlite3.SQLITE_READONLY or "readonly database" in text or "read-only" in text:
        return "the database is read-only"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "the disk is full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"it is not writable ({exc.strerror})"
        return exc.strerror or text
    if code == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        return "it cannot be opened or created (is the directory writable?)"
    if code == sqlite3.SQLITE_BUSY or "locked" in text:
        return "another program holds the database locked"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return "it is not a sensorhub database or it is damaged"
    return text


def sink_error(action: str, path: Path, exc: BaseException, advice: str = "") -> SinkError:
    """One clear SinkError: "cannot <action> the session store '<path>': <plain reason> (advice)"."""
    reason = describe_sqlite_error(exc)
    if not advice:
        if reason == "the disk is full":
            advice = "free disk space, or lower storage.max_size_mb so old sessions are deleted"
        elif "writable" in reason or "read-only" in reason or "cannot be opened" in reason:
            advice = "make the directory writable, or choose another place with --db or storage.path"
    return SinkError(f"cannot {action} the session store {str(path)!r}: {reason}", advice=advice)


def connect(
    path: Path, *, readonly: bool = False, immutable: bool = False, pragmas: Sequence[str] = ()
) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with foreign keys on.

    Args:
        path: the database file (its directory must exist unless ``readonly``).
        readonly: open with ``mode=ro`` (no file is created; writes fail).
        immutable: with ``readonly``, also ``immutable=1``: no locks and no WAL index, for a file
            in a read-only directory.
        pragmas: extra statements run after the standard ones (e.g. ``PRAGMA max_page_count = 100``
            to simulate a full disk in tests).

    Raises:
        sqlite3.Error: the file cannot be opened.
    """
    if readonly:
        query = "mode=ro&immutable=1" if immutable else "mode=ro"
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?{query}", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout = 5000")  # wait for the outbox's or another writer's commit
        db.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            # Both only take effect on a new, empty file, so before WAL mode writes the header.
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if mode.lower() != "wal":
                log.warning("session store %s: SQLite kept journal_mode=%s instead of WAL", path, mode)
            db.execute("PRAGMA synchronous = NORMAL")  # why: module docstring, "Durability"
        for statement in pragmas:
            db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def ensure_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create or migrate the store's tables.

    Raises:
        SinkError: the file holds a store written by a newer sensorhub.
        sqlite3.Error: the database cannot be written.
    """
    row = _meta_version(db)
    if row == SCHEMA_VERSION:
        return
    if row is not None and row > SCHEMA_VERSION:
        raise SinkError(
            f"the session store {str(path)!r} has schema version {row}, newer than this sensorhub "
            f"understands ({SCHEMA_VERSION})",
            advice="upgrade sensorhub, or use another --db",
        )
    if row is None and int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
        # auto_vacuum changes on a file with tables only through VACUUM; the store's tables do not
        # exist yet, so the file holds at most another owner's small tables (the MQTT outbox).
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")
    with transaction(db):
        version = _meta_version(db)  # again, under the write lock: another process may have won
        if version == SCHEMA_VERSION:
            return
        for statement in _SCHEMA:
            db.execute(statement)
        _migrate(db, version)
        db.execute(
            "INSERT INTO store_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def _meta_version(db: sqlite3.Connection) -> int | None:
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'").fetchone()
    if exists is None:
        return None
    row = db.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def _migrate(db: sqlite3.Connection, version: int | None) -> None:
    """Bring tables of schema ``version`` (None = new file) up to :data:`SCHEMA_VERSION`.

    Each future version adds one step here (``if version < 2: ALTER TABLE ...``), run inside the
    schema transaction so a migration is all or nothing.
    """


def lock_path(db_path: Path, session_id: str) -> Path:
    """The lock file a recording session holds."""
    return db_path.with_name(db_path.name + ".locks") / f"{session_id}.lock"


class SessionLock:
    """An exclusive advisory lock on one session's lock file (held by its recorder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another open file holds it.

        Raises:
            OSError: the lock file cannot be created.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+b")
        if not _try_lock(fh):
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self, *, remove: bool = True) -> None:
        """Drop the lock (idempotent) and, by default, remove the lock file."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        fh.close()  # closing the file drops the lock

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fh is not None


def writer_alive(db_path: Path, session_id: str) -> bool:
    """Whether some process still holds the recording lock of ``session_id``."""
    probe = SessionLock(lock_path(db_path, session_id))
    try:
        if not probe.path.exists():
            return False
        if probe.acquire():
            probe.release()
            return False
    except OSError:
        return True  # cannot tell (e.g. a read-only directory): do not declare it dead
    return True


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fh: IO[bytes]) -> bool:
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fh: IO[bytes]) -> bool:
        # flock, not lockf: flock locks belong to the open file, so a second store object in the same
        # process (a CLI listing while a recorder runs) sees the lock too.
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True


def file_size(path: Path) -> int:
    """Bytes of the database file plus its WAL (0 when missing)."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += os.stat(p).st_size
    return total
