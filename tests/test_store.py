"""Session store: exact round trips, compaction, the backlog policy, retention, schema and sharing the file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sensorhub.errors import InputError, SinkError
from sensorhub.model import Event
from sensorhub.mqtt.outbox import Outbox
from sensorhub.store import Retention, SessionStore, stored_precision
from sensorhub.store import db as dbmod
from tests.store_helpers import ALL, EPOCH, sim_batches, slouch, synthetic_batch, synthetic_frame


def _start(store: SessionStore, **kwargs):
    return store.start_session(
        "alex", list(kwargs.pop("placements", ALL)), started_epoch=EPOCH, clock_offset_s=EPOCH, **kwargs
    )


def test_raw_round_trip_is_exact_at_float32_in_arrival_order(tmp_path):
    batches = sim_batches(20.0)
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(store)
        stored = [rec.add_imu(b) for b in batches]
        rec.close()
        assert rec.error is None
        back = list(store.read_imu_indexed(rec.id))
        info = store.get(rec.id)
    assert [i for i, _ in back] == list(range(len(batches)))
    for (_, got), want, orig in zip(back, stored, batches, strict=True):
        assert got.sensor_id == orig.sensor_id
        assert got.placement == orig.placement
        np.testing.assert_array_equal(got.t, orig.t)  # float64, bit-exact
        np.testing.assert_array_equal(got.seq, orig.seq)
        np.testing.assert_array_equal(got.acc, want.acc)  # exactly the float32 the store keeps
        np.testing.assert_array_equal(got.gyro, want.gyro)
        # float32: 24 significant bits, a relative error of at most 2^-24.
        np.testing.assert_allclose(got.acc, orig.acc, rtol=2.0**-24, atol=0)
        np.testing.assert_allclose(got.gyro, orig.gyro, rtol=2.0**-24, atol=0)
    assert info.samples == sum(len(b) for b in batches)
    assert info.status == "complete"
    assert info.sensors
    assert {p for _, p in info.sensors} == set(ALL)
    assert info.ended == pytest.approx(EPOCH + max(float(b.t[-1]) for b in batches))


def test_stored_precision_is_what_the_store_returns():
    b = synthetic_batch("sacral", 1.0, n=50)
    s = stored_precision(b)
    assert s.acc.dtype == np.float64
    np.testing.assert_array_equal(s.acc, b.acc.astype(np.float32))
    assert stored_precision(s).acc.tobytes() == s.acc.tobytes()  # idempotent


def test_frames_events_calibrations_and_commands_round_trip(tmp_path):
    from sensorhub.pipeline.calibration import calibrate_rig

    batches = sim_batches(15.0)
    data = {}
    for p in ALL:
        mine = [stored_precision(b) for b in batches if b.placement.value == p]
        data[p] = tuple(np.concatenate([getattr(b, k) for b in mine]) for k in ("t", "acc", "gyro"))
    cal = calibrate_rig(data, neutral=(0.5, 10.0), functional=None)
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(store)
        blocks = [synthetic_frame(10.0 + k * 0.5) for k in range(6)]
        for frame, labels in blocks:
            rec.add_frame(frame, labels)
        rec.add_events([slouch(40.0, None)])
        rec.set_calibration(cal)
        rec.add_command("exercise", {"active": True, "t": 12.0})
        assert rec.flush()
        rec.add_events([slouch(40.0, 75.0), Event("rep", 50.0, 60.0, {"rom_deg": {"thoracic": 20.0}})])
        rec.add_events([slouch(40.0, None)])  # a late open copy never replaces the closed one
        rec.close()
        frame, labels = store.read_frame(rec.id)
        events = store.read_events(rec.id)
        cals = store.read_calibrations(rec.id)
        commands = store.read_commands(rec.id)
        info = store.get(rec.id)
    np.testing.assert_array_equal(frame.t, np.concatenate([f.t for f, _ in blocks]))
    np.testing.assert_array_equal(
        frame.lumbar_flexion_deg, np.concatenate([f.lumbar_flexion_deg for f, _ in blocks])
    )  # NaN where the input had NaN
    assert frame.pelvis_tilt_deg is None
    assert frame.spine_flexion_deg is None
    assert labels == [label for _, ls in blocks for label in ls]
    assert [(e.type, e.start_t, e.end_t) for e in events] == [("slouch", 40.0, 75.0), ("rep", 50.0, 60.0)]
    assert events[1].data == {"rom_deg": {"thoracic": 20.0}}
    assert cals[0].from_batch == 0
    assert cals[0].calibration.to_json() == cal.to_json()
    assert commands[0].name == "exercise"
    assert commands[0].args == {"active": True, "t": 12.0}
    assert commands[0].seq > cals[0].seq
    assert info.frames == 150
    assert info.events == 2


def test_small_chunks_are_merged_without_changing_the_data(tmp_path):
    with SessionStore(tmp_path / "s.db", compact_s=2.0) as store:
        rec = _start(store, placements=["sacral"])
        sent = []
        for k in range(100):  # 4 s at 100 Hz in 4-sample notifications, one commit each
            sent.append(rec.add_imu(synthetic_batch("sacral", k * 0.04, seq0=4 * k)))
            rec.add_frame(*synthetic_frame(k * 0.04, n=2))
            assert rec.flush()
        rec.close()
        back = list(store.read_imu(rec.id))
        frame, _ = store.read_frame(rec.id)
        info = store.get(rec.id)
        with sqlite3.connect(store.path) as con:
            chunks = con.execute("SELECT count(*) FROM imu_chunks").fetchone()[0]
            frame_chunks = con.execute("SELECT count(*) FROM frame_chunks").fetchone()[0]
            stored_bytes = con.execute(
                "SELECT (SELECT sum(length(data)) FROM imu_chunks) + "
                "(SELECT sum(length(data) + length(posture)) FROM frame_chunks)"
            ).fetchone()[0]
        con.close()
    assert len(back) == 100
    for got, want in zip(back, sent, strict=True):
        np.testing.assert_array_equal(got.t, want.t)
        np.testing.assert_array_equal(got.acc, want.acc)
        np.testing.assert_array_equal(got.seq, want.seq)
    assert len(frame) == 200
    assert np.all(np.diff(frame.t) > 0)
    assert chunks < 100 / 10
    assert frame_chunks < 100 / 10
    assert info.bytes == stored_bytes  # byte accounting follows the merges


def test_full_backlog_drops_newest_and_writes_a_gap_marker(tmp_path):
    path = tmp_path / "s.db"
    with SessionStore(path, max_backlog=40, flush_interval_s=0.05) as store:
        rec = _start(store, placements=["sacral"])
        rec.add_imu(synthetic_batch("sacral", 0.0, n=20))
        assert rec.flush()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the disk "stalls": the writer waits for the lock
        try:
            time.sleep(0.2)
            kept = [rec.add_imu(synthetic_batch("sacral", 0.2 + 0.2 * k, n=20)) for k in range(2)]
            dropped = [synthetic_batch("sacral", 0.6 + 0.2 * k, n=20) for k in range(3)]
            for b in dropped:
                rec.add_imu(b)
            stats = rec.stats
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        rec.close()
        gaps = store.read_gaps(rec.id)
        info = store.get(rec.id)
    assert stats.dropped_samples == 60
    assert stats.gaps == 1
    assert len(kept) == 2
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.kind, g.sensor, g.count) == ("imu", "syn-sacral", 60)
    assert g.start_t == pytest.approx(0.6)
    assert g.end_t == pytest.approx(float(dropped[-1].t[-1]))
    assert info.samples == 60
    assert info.dropped == 60
    assert info.gaps == 1


def test_block_policy_waits_for_room_and_drops_nothing(tmp_path):
    with SessionStore(tmp_path / "s.db", max_backlog=50, flush_interval_s=0.05) as store:
        rec = _start(store, placements=["sacral"], on_full="block")
        for k in range(200):
            rec.add_imu(synthetic_batch("sacral", k * 0.04, seq0=4 * k))
        rec.close()
        assert rec.stats.dropped_samples == 0
        assert store.get(rec.id).samples == 800


def test_close_is_idempotent_and_adds_after_close_are_counted(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(store, placements=["sacral"])
        rec.add_imu(synthetic_batch("sacral", 0.0))
        rec.close()
        rec.close()
        rec.add_imu(synthetic_batch("sacral", 1.0))
        assert rec.stats.dropped_samples == 4
        assert store.get(rec.id).samples == 4
        assert not dbmod.lock_path(store.path, rec.id).exists()


def test_list_is_newest_first_and_ids_resolve_by_unique_prefix(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        ids = []
        for k in range(3):
            rec = store.start_session("alex", ["sacral"], started_epoch=EPOCH + 86400 * k, clock_offset_s=EPOCH)
            rec.close()
            ids.append(rec.id)
        listed = [s.id for s in store.list_sessions()]
        assert listed == ids[::-1]
        assert store.get(ids[0][:12]).id == ids[0]  # the date part is unique per day here
        with pytest.raises(InputError, match="no session"):
            store.get("19990101")
        with pytest.raises(InputError, match="ambiguous"):
            store.get("2026010")


def test_delete_removes_everything_and_refuses_a_recording_session(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(store, placements=["sacral"])
        rec.add_imu(synthetic_batch("sacral", 0.0))
        rec.add_events([slouch(1.0, 2.0)])
        with pytest.raises(InputError, match="being recorded"):
            store.delete(rec.id)
        rec.close()
        store.delete(rec.id)
        assert store.list_sessions() == []
        with sqlite3.connect(store.path) as con:
            for table in ("imu_chunks", "frame_chunks", "session_events", "session_sensors", "session_calibrations"):
                assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        con.close()


def _session_with_data(store: SessionStore, started: float, seconds: int) -> str:
    rec = store.start_session("alex", ["sacral"], started_epoch=started, clock_offset_s=started, on_full="block")
    for k in range(seconds):
        rec.add_imu(synthetic_batch("sacral", float(k), n=100, seq0=100 * k))
    rec.close()
    return rec.id


def test_retention_by_age_keeps_recent_and_recording_sessions(tmp_path):
    now = EPOCH + 100 * 86400
    with SessionStore(tmp_path / "s.db") as store:
        old = _session_with_data(store, now - 40 * 86400, 2)
        recent = _session_with_data(store, now - 5 * 86400, 2)
        live = store.start_session("alex", ["sacral"], started_epoch=now - 50 * 86400, clock_offset_s=0.0)
        deleted = store.apply_retention(now, Retention(max_age_days=30))
        assert deleted == [old]
        assert {s.id for s in store.list_sessions()} == {recent, live.id}
        live.close()


def test_retention_by_size_deletes_oldest_first_and_shrinks_the_file(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        ids = [_session_with_data(store, EPOCH + k * 3600, 600) for k in range(4)]
        size_before = store.size_bytes()
        per_session = store.get(ids[0]).bytes
        limit_mb = (2.5 * per_session) / 2**20
        deleted = store.apply_retention(EPOCH, Retention(max_size_mb=limit_mb))
        assert deleted == ids[: len(deleted)]
        assert len(deleted) >= 1
        assert [s.id for s in store.list_sessions()][-1] == ids[len(deleted)]
        with sqlite3.connect(store.path) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            used = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
            free = con.execute("PRAGMA freelist_count").fetchone()[0]
        con.close()
        assert used <= limit_mb * 2**20
        assert free == 0  # incremental vacuum gave the pages back
        assert store.size_bytes() < size_before
        assert store.integrity_check() == "ok"


def test_retention_runs_when_a_session_starts(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        old = _session_with_data(store, time.time() - 400 * 86400, 1)
    with SessionStore(tmp_path / "s.db", retention=Retention(max_age_days=90)) as store:
        rec = store.start_session("alex", ["sacral"], started_epoch=time.time(), clock_offset_s=0.0)
        rec.close()
        assert [s.id for s in store.list_sessions()] == [rec.id]
        assert old != rec.id


def test_schema_is_versioned_in_its_own_table_and_wal_is_on(tmp_path):
    path = tmp_path / "s.db"
    SessionStore(path).close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == (
            str(dbmod.SCHEMA_VERSION),
        )
        assert con.execute("PRAGMA user_version").fetchone() == (0,)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
        con.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SinkError, match="newer than this sensorhub"):
        SessionStore(path)


def test_store_and_mqtt_outbox_share_one_file(tmp_path):
    path = tmp_path / "s.db"
    outbox_first = Outbox(path)
    outbox_first.put("sensorhub/alex/alerts", b"{}")
    with SessionStore(path) as store:  # created after the outbox: its tables and message survive
        rec = _start(store, placements=["sacral"])
        rec.add_imu(synthetic_batch("sacral", 0.0))
        outbox = Outbox(store.path)
        outbox.put("sensorhub/alex/alerts", b'{"x": 1}')
        rec.close()
        assert [m.payload for m in outbox.peek(5)] == [b"{}", b'{"x": 1}']
        assert store.get(rec.id).samples == 4
        assert store.integrity_check() == "ok"
        outbox.close()
    outbox_first.close()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    con.close()


def test_add_calls_are_cheap_and_thread_safe(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(store)
        errors: list[BaseException] = []

        def feed(placement: str) -> None:
            try:
                for k in range(250):
                    rec.add_imu(synthetic_batch(placement, k * 0.04, seq0=4 * k))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=feed, args=(p,)) for p in ALL]
        started = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        per_call = (time.perf_counter() - started) / 750
        rec.close()
        assert not errors
        assert store.get(rec.id).samples == 3000
    assert per_call < 2e-3  # generous: a shared CI core; typically ~20 µs


def test_settings_and_config_are_stored_as_json(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = _start(
            store, placements=["sacral"], settings={"estimator": "vqf"}, config_json={"wearer": {"id": "alex"}}
        )
        rec.close()
        info = store.get(rec.id)
        assert info.settings == {"estimator": "vqf"}
        assert info.config == {"wearer": {"id": "alex"}}
        doc = info.to_json()
        json.dumps(doc)
        assert doc["status"] == "complete"
        assert doc["duration_s"] >= 0


def test_unknown_placement_is_refused(tmp_path):
    with SessionStore(tmp_path / "s.db") as store, pytest.raises(ValueError, match="elbow"):
        store.start_session("alex", ["elbow"], started_epoch=EPOCH, clock_offset_s=EPOCH)


def test_missing_store_without_create_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no session store"):
        SessionStore(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_flush_interval_must_bound_the_loss_window(tmp_path):
    with pytest.raises(ValueError, match="less than a second"):
        SessionStore(tmp_path / "s.db", flush_interval_s=1.5)


def test_lock_file_marks_a_live_writer(tmp_path):
    path: Path = tmp_path / "s.db"
    with SessionStore(path) as store:
        rec = _start(store, placements=["sacral"])
        assert dbmod.writer_alive(path, rec.id)
        with SessionStore(path) as other:  # another reader does not take a live session for dead
            assert other.get(rec.id).status == "recording"
        rec.close()
        assert not dbmod.writer_alive(path, rec.id)
