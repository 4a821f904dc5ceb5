"""The local session store: crash-safe recording, export, reports and replay (docs/sessions.md).

- :mod:`~sensorhub.store.store`: ``SessionStore``, the SQLite file: start, list, read, delete,
  retention;
- :mod:`~sensorhub.store.recorder`: ``SessionRecorder``, buffers and the writer thread;
- :mod:`~sensorhub.store.records`: the records (``SessionInfo``, ``RecorderStats``, ...);
- :mod:`~sensorhub.store.db` (schema, connections, locks) and :mod:`~sensorhub.store.codec` (chunks);
- :mod:`~sensorhub.store.export` (DESIGN §6 files, Parquet, JSON Lines), :mod:`~sensorhub.store.report`
  (PNG, HTML), :mod:`~sensorhub.store.replay` (rerun a recording), :mod:`~sensorhub.store.cli`
  (``sensorhub sessions``).
"""

from __future__ import annotations

from sensorhub.store.codec import ImuChunk, stored_precision
from sensorhub.store.recorder import SessionRecorder
from sensorhub.store.records import (
    Gap,
    RecorderStats,
    Retention,
    SessionInfo,
    SessionStatus,
    StoredCalibration,
    StoredCommand,
)
from sensorhub.store.store import SessionStore

__all__ = [
    "Gap",
    "ImuChunk",
    "RecorderStats",
    "Retention",
    "SessionInfo",
    "SessionRecorder",
    "SessionStatus",
    "SessionStore",
    "StoredCalibration",
    "StoredCommand",
    "stored_precision",
]
