"""The session list and the export / report files the dashboard links to (blocking: run in a thread).

Files are addressed by session id only, and only ids the store lists are used: the file names
are built here from a checked id inside the dashboard's own cache directory, so no request can
name a path. A finished session's files are generated once and reused; a session that is still
recording is generated again on every request (it grows).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sensorhub.errors import ConfigError, InputError
from sensorhub.model import JsonValue
from sensorhub.mqtt.topics import sanitize_wearer
from sensorhub.store import SessionInfo, SessionStore

from .security import valid_session_id

__all__ = ["SessionFiles", "SessionNotFoundError"]

#: Sessions listed per request at most (newest first).
LIST_MAX = 100


class SessionNotFoundError(InputError):
    """No session with this id in the store (or not a session id at all)."""


class SessionFiles:
    """Lists sessions and makes their CSV export and HTML report on demand.

    Args:
        db: the session database; the default store when None.
        cache_dir: where generated files go (the dashboard's own temporary directory).
    """

    def __init__(self, db: Path | None, cache_dir: Path) -> None:
        self.db = db
        self.cache_dir = cache_dir
        self._lock = threading.Lock()  # one generation at a time: matplotlib and the store are not made for more

    def _store(self) -> SessionStore | None:
        try:
            return SessionStore(self.db, create=False)
        except InputError:
            return None  # no store yet: no sessions

    def list(self, wearer: str | None = None) -> list[JsonValue]:
        """Sessions (of the wearer, by sanitised id, when given), newest first, at most :data:`LIST_MAX`."""
        store = self._store()
        if store is None:
            return []
        with store:
            infos = store.list_sessions()
        out: list[JsonValue] = []
        for info in infos:
            if wearer is not None and _topic_level(info.wearer) != wearer:
                continue
            out.append(_describe(info))
            if len(out) >= LIST_MAX:
                break
        return out

    def _info(self, store: SessionStore, session_id: str) -> SessionInfo:
        # Exact ids only: SessionStore.get also accepts a unique prefix.
        if valid_session_id(session_id):
            for info in store.list_sessions():
                if info.id == session_id:
                    return info
        raise SessionNotFoundError(f"no session {session_id!r}")

    def _target(self, session_id: str, suffix: str) -> Path:
        path = (self.cache_dir / f"{session_id}{suffix}").resolve()
        if path.parent != self.cache_dir.resolve():  # unreachable with a valid id; kept as a second wall
            raise SessionNotFoundError(f"no session {session_id!r}")
        return path

    def export_csv(self, session_id: str) -> Path:
        """The session's angle CSV (DESIGN §6).

        Raises:
            SessionNotFoundError: no such session.
            InputError: the session has nothing to export.
        """
        from sensorhub.store.export import export_session

        store = self._store()
        if store is None:
            raise SessionNotFoundError(f"no session {session_id!r}")
        with store, self._lock:
            info = self._info(store, session_id)
            path = self._target(info.id, "-angles.csv")
            if info.status == "recording" or not path.exists():
                export_session(store, info.id, "csv", path, progress=False)
            return path

    def report_html(self, session_id: str) -> Path:
        """The session's self-contained HTML report.

        Raises:
            SessionNotFoundError: no such session.
            InputError: the session has no angles.
            DependencyError: matplotlib is not installed.
        """
        from sensorhub.store.report import write_report

        store = self._store()
        if store is None:
            raise SessionNotFoundError(f"no session {session_id!r}")
        with store, self._lock:
            info = self._info(store, session_id)
            path = self._target(info.id, "-report.html")
            if info.status == "recording" or not path.exists():
                write_report(store, info.id, path, progress=False)
            return path


def _topic_level(wearer: str) -> str | None:
    try:
        return sanitize_wearer(wearer)
    except ConfigError:  # an id that sanitises to nothing belongs to no topic
        return None


def _describe(info: SessionInfo) -> dict[str, JsonValue]:
    ended = info.ended
    return {
        "id": info.id,
        "wearer": info.wearer,
        "started": info.started,
        "ended": ended,
        "status": info.status,
        "duration_s": None if ended is None else round(ended - info.started, 1),
        "frames": info.frames,
        "events": info.events,
    }
