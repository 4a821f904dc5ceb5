"""Exports: raw data back exactly (float32), angles within 1e-6°, DESIGN §6 headers, Parquet units, JSON Lines."""

from __future__ import annotations

import builtins
import csv
import datetime as dt
import json
import math

import numpy as np
import pytest

from sensorhub.errors import DependencyError, InputError
from sensorhub.model import ANGLE_COLUMNS
from sensorhub.sources.csvfile import IMU_COLUMNS, read_imu_csv
from sensorhub.store import SessionStore
from sensorhub.store.export import ANGLE_EXPORT_COLUMNS, events_path, export_session
from tests.store_helpers import EPOCH, template

ANGLE_FIELDS = ANGLE_COLUMNS[1:5]


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    rec = template(tmp_path_factory.getbasetemp())
    with SessionStore(rec.copy_to(tmp_path)) as s:
        yield s


@pytest.fixture
def sid(store):
    return store.list_sessions()[0].id


def _stored_raw(store: SessionStore, sid: str) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for chunk in store.read_imu_chunks(sid):
        d = out.setdefault(chunk.placement.value, {"t": [], "acc": [], "gyro": []})
        d["t"].append(chunk.t)
        d["acc"].append(chunk.acc)
        d["gyro"].append(chunk.gyro)
    return {p: {k: np.concatenate(v) for k, v in d.items()} for p, d in out.items()}


def test_raw_csv_round_trips_exactly_at_float32(store, sid, tmp_path):
    path = tmp_path / "raw.csv"
    assert export_session(store, sid, "csv", path, raw=True, progress=False) == [path]
    with path.open() as fh:
        assert fh.readline().strip() == ",".join(IMU_COLUMNS)
    recording = read_imu_csv(path)  # the input format of `sensorhub analyze`
    stored = _stored_raw(store, sid)
    assert {p.value for p in recording.series} == set(stored)
    for placement, series in recording.series.items():
        want = stored[placement.value]
        # t: epoch seconds with 6 decimals: within 1 µs (0.5 µs rounding + float64 steps of 0.24 µs).
        np.testing.assert_allclose(series.t, want["t"] + EPOCH, rtol=0, atol=1e-6)
        # acc/gyro: the shortest decimal of each stored float32 reads back to it exactly.
        np.testing.assert_array_equal(series.acc.astype(np.float32), want["acc"])
        np.testing.assert_array_equal(series.gyro.astype(np.float32), want["gyro"])


def test_angle_csv_has_the_design_columns_and_round_trips_within_1e_6_deg(store, sid, tmp_path):
    path = tmp_path / "angles.csv"
    written = export_session(store, sid, "csv", path, progress=False)
    assert written == [path, events_path(path)]
    assert events_path(path).name == "angles.events.json"
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == ANGLE_EXPORT_COLUMNS
    assert tuple(rows[0][: len(ANGLE_COLUMNS)]) == ANGLE_COLUMNS
    frame, labels = store.read_frame(sid)
    body = rows[1:]
    assert len(body) == len(frame)
    col = {name: i for i, name in enumerate(rows[0])}
    t = np.array([float(r[col["t"]]) for r in body])
    np.testing.assert_allclose(t, frame.t + EPOCH, rtol=0, atol=5.1e-5)
    for name in (*ANGLE_FIELDS, "spine_flexion_deg"):
        values = getattr(frame, name)
        cells = [r[col[name]] for r in body]
        if values is None:
            assert set(cells) == {""}
            continue
        got = np.array([math.nan if c == "" else float(c) for c in cells])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(values))
        ok = ~np.isnan(values)
        assert np.max(np.abs(got[ok] - values[ok])) <= 1e-6
    assert [r[col["posture"]] for r in body] == labels
    first = dt.datetime.fromisoformat(body[0][col["time_utc"]].replace("Z", "+00:00"))
    assert body[0][col["time_utc"]].endswith("Z")
    assert first.timestamp() == pytest.approx(frame.t[0] + EPOCH, abs=1e-3)


def test_events_json_is_on_the_epoch_clock(store, sid, tmp_path):
    path = tmp_path / "angles.csv"
    export_session(store, sid, "csv", path, progress=False)
    doc = json.loads(events_path(path).read_text())
    stored = store.read_events(sid)
    assert doc["session"] == sid
    assert doc["clock"] == "unix epoch seconds"
    assert [e["type"] for e in doc["events"]] == [e.type for e in stored]
    for got, want in zip(doc["events"], stored, strict=True):
        assert got["start_t"] == pytest.approx(want.start_t + EPOCH, abs=1e-3)


def test_parquet_has_the_same_columns_with_units_in_the_schema(store, sid, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "angles.parquet"
    export_session(store, sid, "parquet", path, progress=False)
    table = pq.read_table(path)
    assert tuple(table.column_names) == ANGLE_EXPORT_COLUMNS
    meta = json.loads(table.schema.metadata[b"sensorhub"])
    assert meta["session"] == sid
    assert meta["units"]["thoracic_flexion_deg"].startswith("deg")
    assert table.schema.field("trunk_flexion_deg").metadata[b"unit"].startswith(b"deg")
    assert table.schema.field("t").metadata[b"unit"] == b"s (Unix epoch)"
    assert str(table.schema.field("time_utc").type) == "timestamp[us, tz=UTC]"
    frame, labels = store.read_frame(sid)
    trunk = table.column("trunk_flexion_deg").to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(trunk, frame.trunk_flexion_deg)  # float64, exact
    assert table.column("posture").to_pylist() == labels

    raw = tmp_path / "raw.parquet"
    export_session(store, sid, "parquet", raw, raw=True, progress=False)
    rt = pq.read_table(raw)
    assert tuple(rt.column_names) == IMU_COLUMNS
    assert str(rt.schema.field("ax").type) == "float"  # float32, as stored
    assert rt.schema.field("gx").metadata[b"unit"] == b"rad/s"
    stored = _stored_raw(store, sid)
    sensor = np.array(rt.column("sensor").to_pylist())
    np.testing.assert_array_equal(rt.column("az").to_numpy()[sensor == "sacral"], stored["sacral"]["acc"][:, 2])


def test_jsonl_has_one_object_per_row(store, sid, tmp_path):
    path = tmp_path / "angles.jsonl"
    export_session(store, sid, "jsonl", path, progress=False)
    lines = path.read_text().splitlines()
    frame, labels = store.read_frame(sid)
    assert len(lines) == len(frame)
    rows = [json.loads(line) for line in lines]
    assert list(rows[0]) == ["t", *ANGLE_FIELDS, "spine_flexion_deg", "movement", "posture", "time_utc"]
    for i in (0, len(rows) // 2, len(rows) - 1):
        for name in ANGLE_FIELDS:
            v = getattr(frame, name)[i]
            assert (rows[i][name] is None) == bool(np.isnan(v))
            if rows[i][name] is not None:
                assert rows[i][name] == pytest.approx(v, abs=1e-6)
        assert rows[i]["posture"] == labels[i]
    raw = tmp_path / "raw.jsonl"
    export_session(store, sid, "jsonl", raw, raw=True, progress=False)
    first = json.loads(raw.read_text().splitlines()[0])
    assert list(first) == list(IMU_COLUMNS)


def test_parquet_without_pyarrow_names_the_extra(store, sid, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(DependencyError) as info:
        export_session(store, sid, "parquet", tmp_path / "x.parquet", progress=False)
    assert "sensorhub[parquet]" in str(info.value)
    assert info.value.extra == "parquet"
    assert not (tmp_path / "x.parquet").exists()


def test_session_without_angles_or_raw_is_an_input_error(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = store.start_session("a", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH)
        rec.close()
        with pytest.raises(InputError, match="no angles"):
            export_session(store, rec.id, "csv", tmp_path / "a.csv", progress=False)
        with pytest.raises(InputError, match="no raw IMU data"):
            export_session(store, rec.id, "csv", tmp_path / "r.csv", raw=True, progress=False)


def test_raw_time_formatting_handles_negative_and_large_times():
    from sensorhub.store.export import _format_time

    values = np.array([-1.5, -0.000001, 0.0, 1.25, 1_767_258_000.123456])
    whole, milli, micro = _format_time(values)
    assert [(a + b + c).decode() for a, b, c in zip(whole.tolist(), milli.tolist(), micro.tolist(), strict=True)] == [
        "-1.500000",
        "-0.000001",
        "0.000000",
        "1.250000",
        "1767258000.123456",
    ]


def test_analyze_reads_an_exported_session_back(store, sid, tmp_path):
    """The raw export is `analyze`'s input: the offline path runs on it end to end."""
    from sensorhub.cli import main

    raw = tmp_path / "raw.csv"
    export_session(store, sid, "csv", raw, raw=True, progress=False)
    out = tmp_path / "angles.csv"
    assert main(["analyze", str(raw), "-o", str(out), "--neutral", f"{EPOCH + 0.5}:{EPOCH + 10}"]) == 0
    assert out.read_text().count("\n") > 100


def test_export_path_in_a_missing_directory_is_a_usage_error(store, sid, tmp_path):
    from sensorhub.cli import main

    rc = main(
        ["sessions", "--db", str(store.path), "export", sid, "--format", "csv", "-o", str(tmp_path / "no" / "a.csv")]
    )
    assert rc == 2


def test_exported_columns_are_listed_in_units():
    from sensorhub.store.export import UNITS

    for name in (*ANGLE_EXPORT_COLUMNS, *IMU_COLUMNS):
        assert name in UNITS, name
