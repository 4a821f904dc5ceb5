"""Crash safety: SIGKILL loses at most a second; a full disk or a read-only store gives one clear error."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sensorhub.errors import SinkError
from sensorhub.store import SessionStore
from sensorhub.store.export import export_session
from tests.store_helpers import EPOCH, synthetic_batch, synthetic_frame

REPO = Path(__file__).resolve().parents[1]

# A recorder fed in real time, as a service would: 2 sensors at 100 Hz in 40 ms notifications and
# 50 Hz angles; after each notification it prints the last sample time it has handed over.
CHILD = """
import sys, time
import numpy as np
from pathlib import Path
from sensorhub.model import ImuBatch, Placement, SpineFrame
from sensorhub.store import SessionStore

store = SessionStore(Path(sys.argv[1]))
start = time.monotonic()
rec = store.start_session("alex", ["upper_thoracic", "sacral"], started_epoch=time.time(),
                          clock_offset_s=time.time() - start)
print(rec.id, flush=True)
k = 0
while True:
    t = start + 0.04 * k + np.arange(4) * 0.01
    for p in ("upper_thoracic", "sacral"):
        acc = np.tile([9.80665, 0.0, 0.0], (4, 1))
        rec.add_imu(ImuBatch("kid-" + p, Placement(p), t, acc, np.zeros((4, 3)), np.arange(4 * k, 4 * k + 4)))
    ft = start + 0.04 * k + np.array([0.0, 0.02])
    rec.add_frame(SpineFrame(t=ft, trunk_flexion_deg=np.array([1.0, 2.0]), pelvis_tilt_deg=np.array([0.5, 0.5])),
                  ["upright", "upright"])
    print(repr(float(t[-1])), flush=True)
    k += 1
    time.sleep(max(0.0, start + 0.04 * k - time.monotonic()))
"""


def test_sigkill_loses_at_most_a_second_and_the_session_exports(tmp_path):
    db = tmp_path / "sessions.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        session_id = proc.stdout.readline().strip()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the recorder died on its own"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # Everything it printed was handed to the recorder before the kill.
        handed = [float(x) for x in proc.stdout.read().split()] or [float(line)]
        last_handed = max(float(line), *handed)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when an assertion fired first
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with SessionStore(db) as store:
        assert store.integrity_check() == "ok"
        info = store.get(session_id)
        assert info.status == "interrupted"
        assert info.last_t is not None
        loss = last_handed - info.last_t
        assert loss <= 1.0, f"lost {loss:.3f} s"
        assert info.samples >= 2 * 4 * 50  # ≥ 2 s of two sensors were kept
        assert [s.id for s in store.list_sessions()] == [session_id]
        assert info.ended == pytest.approx(info.last_t + info.clock_offset_s)
        raw = tmp_path / "raw.csv"
        export_session(store, session_id, "csv", raw, raw=True, progress=False)
        assert raw.read_text().count("\n") == info.samples + 1
        angles = tmp_path / "angles.csv"
        export_session(store, session_id, "csv", angles, progress=False)
        assert angles.read_text().count("\n") == info.frames + 1


def _fill_until_error(store: SessionStore, limit_batches: int = 4000):
    rec = store.start_session("alex", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH)
    committed = 0
    for k in range(limit_batches):
        rec.add_imu(synthetic_batch("sacral", k * 0.25, n=25, seq0=25 * k))
        rec.add_frame(*synthetic_frame(k * 0.25, n=12))
        if k % 5 == 4:
            if not rec.flush():
                break
            committed = k + 1
    return rec, committed


def test_full_disk_stops_recording_with_one_clear_error_and_keeps_what_was_committed(tmp_path, caplog):
    path = tmp_path / "s.db"
    store = SessionStore(path)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's max_page_count refuses to grow the file past N pages with SQLITE_FULL, exactly as
    # a full disk does; only the recorder's connection gets it.
    store.pragmas = (f"PRAGMA max_page_count = {pages + 40}",)
    rec, committed = _fill_until_error(store)
    assert committed > 0
    error = rec.error
    assert isinstance(error, SinkError)
    text = str(error)
    assert "disk is full" in text
    assert rec.id in text
    assert "\n" not in text
    assert "free disk space" in text
    assert [r.levelname for r in caplog.records if "recording stopped" in r.getMessage()] == ["ERROR"]
    rec.add_imu(synthetic_batch("sacral", 9999.0))  # after the error: no exception, counted
    assert rec.stats.dropped_samples >= 4
    rec.close()  # no exception either
    store.close()
    with SessionStore(path) as again:
        assert again.integrity_check() == "ok"
        info = again.get(rec.id)
        assert info.status == "interrupted"
        assert info.samples >= committed * 25
        back = list(again.read_imu(rec.id))
        assert sum(len(b) for b in back) == info.samples
        np.testing.assert_allclose(np.concatenate([b.t for b in back]), np.arange(info.samples) / 100.0, atol=1e-12)
        export_session(again, rec.id, "csv", tmp_path / "a.csv", progress=False)
        # The store is writable again once space is back.
        again.start_session("alex", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH).close()


def test_database_turning_read_only_mid_session_stops_recording_cleanly(tmp_path):
    path = tmp_path / "s.db"
    store = SessionStore(path)
    rec = store.start_session("alex", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH)
    rec.add_imu(synthetic_batch("sacral", 0.0, n=50))
    assert rec.flush()
    # query_only makes SQLite refuse every write with SQLITE_READONLY, as a file system remounted
    # read-only does (permissions cannot be used: tests may run as root).
    rec_db = sqlite3.connect(path)
    rec_db.close()
    store.pragmas = ("PRAGMA query_only = 1",)
    rec2 = store.start_session("alex", ["sacral"], started_epoch=EPOCH + 60, clock_offset_s=EPOCH)
    rec2.add_imu(synthetic_batch("sacral", 0.0, n=50))
    assert not rec2.flush()
    assert isinstance(rec2.error, SinkError)
    assert "read-only" in str(rec2.error)
    rec2.close()
    rec.close()
    store.close()
    with SessionStore(path) as again:
        assert again.integrity_check() == "ok"
        assert again.get(rec.id).status == "complete"
        assert again.get(rec2.id).status == "interrupted"


def test_store_path_under_a_file_gives_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(SinkError) as info:
        SessionStore(blocker / "sessions.db")
    assert "cannot create the session store" in str(info.value)
    assert "\n" not in str(info.value)


def _read_only(path: Path) -> bool:
    """Whether permissions really stop this process writing there (they do not for root)."""
    probe = path / ".probe" if path.is_dir() else path
    try:
        with open(probe, "a"):
            pass
    except OSError:
        return True
    if probe != path:
        probe.unlink()
    return False


def test_read_only_directory_gives_one_clear_error(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        if not _read_only(directory):
            pytest.skip("permissions do not apply to this user (root)")
        with pytest.raises(SinkError) as info:
            SessionStore(directory / "sessions.db")
        text = str(info.value)
        assert "session store" in text
        assert "writable" in text
        assert "\n" not in text
    finally:
        directory.chmod(0o755)


def test_read_only_file_can_be_listed_but_not_recorded_into(tmp_path):
    path = tmp_path / "s.db"
    with SessionStore(path) as store:
        store.start_session("alex", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH).close()
    os.chmod(path, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        if not _read_only(path):
            pytest.skip("permissions do not apply to this user (root)")
        with SessionStore(path) as store:
            assert store.readonly
            assert len(store.list_sessions()) == 1
            with pytest.raises(SinkError, match="read-only"):
                store.start_session("alex", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH)
    finally:
        os.chmod(tmp_path, 0o755)
        os.chmod(path, 0o644)
