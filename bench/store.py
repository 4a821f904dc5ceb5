"""Benchmark of the session store (issue 6's targets): write rate, size per hour, export and report times.

Prints one JSON object. The data are synthetic but shaped like the real thing and go through the
real :class:`~sensorhub.store.SessionRecorder`:

- raw IMU: 3 sensors at 100 Hz, in notifications of 4 samples (40 ms, as BLE sensors send them),
  16-bit quantised like a MEMS IMU (±16 g, ±2000 °/s), a slowly changing posture plus noise, with
  device counters; each sensor's clock jitters by a few microseconds;
- angles: 50 Hz frames with all spine angles and movement, posture labels, a slouch event every
  20 minutes.

Measured:

- ``write``: sustained rate of the recorder with live-sized chunks (a commit per 0.5 s of data per
  sensor, as the live writer's 0.5 s flush interval gives) in samples/s and as a multiple of real
  time, and the caller's cost per ``add_imu`` call (what the event loop pays);
- ``db_mb_per_hour``: file size (database + WAL after a checkpoint) per recorded hour; target ≤ 60;
- ``export_*_s``: angle CSV, raw CSV (the issue's "8-hour 3-sensor session to CSV", ~8.6 M
  samples; target ≤ 30 s), raw and angle Parquet, angle JSON Lines;
- ``report_png_s``: the PNG report of the whole session; target ≤ 10 s;
- each time also as ``*_cpu_s``, the CPU time of the process: on a busy shared machine the wall
  time includes waiting for a core, the CPU time does not.

Run: ``.venv/bin/python bench/store.py`` (8 h of data, a few minutes); ``--quick``: 1 h, and the
8-hour figures extrapolated linearly (``*_8h_est``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sensorhub.model import Event, ImuBatch, Placement, SpineFrame
from sensorhub.store import SessionStore
from sensorhub.store.export import ExportFormat, export_session
from sensorhub.store.report import write_report

RATE_HZ = 100.0
FRAME_HZ = 50.0
PER_NOTIFICATION = 4
PLACEMENTS = (Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL)
ACC_LSB = 16 * 9.80665 / 32768  # m/s² per count at ±16 g
GYRO_LSB = np.radians(2000.0) / 32768  # rad/s per count at ±2000 °/s
BLOCK_S = 600.0
FLUSH_SAMPLES = 50  # 0.5 s at 100 Hz: the recorder's flush interval
TARGETS = {"db_mb_per_hour": 60.0, "export_csv_raw_s": 30.0, "report_png_s": 10.0}


def _raw_block(
    rng: np.random.Generator, t0: float, seconds: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(seconds * RATE_HZ)
    t = t0 + np.arange(n) / RATE_HZ + rng.normal(0, 5e-6, n) + k * 1e-3
    tilt = np.radians(10.0) * (1 + np.sin(2 * np.pi * t / 1200.0 + k)) + rng.normal(0, 0.01, n)
    acc = np.column_stack([9.80665 * np.cos(tilt), np.zeros(n), 9.80665 * np.sin(tilt)]) + rng.normal(0, 0.03, (n, 3))
    gyro = rng.normal(0, 0.01, (n, 3))
    return t, np.round(acc / ACC_LSB) * ACC_LSB, np.round(gyro / GYRO_LSB) * GYRO_LSB


def _frames(t0: float, seconds: float) -> tuple[SpineFrame, list[str]]:
    t = t0 + np.arange(int(seconds * FRAME_HZ)) / FRAME_HZ
    wave = 8.0 + 8.0 * np.sin(2 * np.pi * t / 1200.0)
    frame = SpineFrame(
        t=t,
        thoracic_flexion_deg=wave + 0.1 * np.sin(t),
        lumbar_flexion_deg=0.7 * wave + 0.05 * np.cos(t),
        trunk_flexion_deg=1.4 * wave,
        pelvis_tilt_deg=-0.3 * wave,
        spine_flexion_deg=1.7 * wave,
        movement=0.1 + 0.02 * np.abs(np.sin(t / 7.0)),
    )
    labels = ["slouched" if w > 15.0 else "upright" for w in wave.tolist()]
    return frame, labels


def record(store: SessionStore, hours: float) -> dict[str, float]:
    """Write ``hours`` of synthetic data through a recorder; returns the write figures."""
    rng = np.random.default_rng(0)
    recorder = store.start_session(
        "bench",
        [p.value for p in PLACEMENTS],
        started_epoch=1_767_258_000.0,
        clock_offset_s=1_767_258_000.0,
        settings={"nominal_rate_hz": {p.value: RATE_HZ for p in PLACEMENTS}},
        on_full="block",
    )
    total_s = hours * 3600.0
    produce_s = add_s = 0.0
    calls = 0
    seq = dict.fromkeys(PLACEMENTS, 0)
    started = time.perf_counter()
    t0 = 0.0
    while t0 < total_s:
        span = min(BLOCK_S, total_s - t0)
        tick = time.perf_counter()
        blocks = {p: _raw_block(rng, t0, span, k) for k, p in enumerate(PLACEMENTS)}
        produce_s += time.perf_counter() - tick
        n = len(blocks[PLACEMENTS[0]][0])
        frames_from, next_flush = 0, FLUSH_SAMPLES
        for i in range(0, n, PER_NOTIFICATION):
            for p in PLACEMENTS:
                t, acc, gyro = blocks[p]
                j = min(i + PER_NOTIFICATION, n)
                batch = ImuBatch(f"bench-{p.value}", p, t[i:j], acc[i:j], gyro[i:j], np.arange(seq[p], seq[p] + j - i))
                seq[p] += j - i
                tick = time.perf_counter()
                recorder.add_imu(batch)
                add_s += time.perf_counter() - tick
                calls += 1
            if i + PER_NOTIFICATION >= next_flush or i + PER_NOTIFICATION >= n:
                # Half a second of angles and, now and then, an event. Live, the writer commits
                # every 0.5 s of wall time, i.e. 0.5 s of data per chunk; committing here at the
                # same pace gives chunks (and so a file size) as live.
                upto = min(next_flush, n)
                frame, labels = _frames(t0 + frames_from / RATE_HZ, (upto - frames_from) / RATE_HZ)
                recorder.add_frame(frame, labels)
                second = t0 + frames_from / RATE_HZ
                if second % 1200 == 600:
                    recorder.add_events([Event("slouch", second, second + 60.0, {"alert_state": "sent"})])
                recorder.flush()
                frames_from, next_flush = upto, upto + FLUSH_SAMPLES
        t0 += span
    recorder.close()
    elapsed = time.perf_counter() - started
    stats = recorder.stats
    if recorder.error is not None:
        raise recorder.error
    return {
        "seconds": round(elapsed, 2),
        "samples": stats.samples_written,
        "samples_per_s": round(stats.samples_written / max(elapsed - produce_s, 1e-9)),
        "realtime_factor": round(total_s / max(elapsed - produce_s, 1e-9), 1),
        "add_imu_us": round(1e6 * add_s / calls, 2),
        "commits": stats.commits,
        "dropped": stats.dropped_samples + stats.dropped_frames,
        "synthesis_s": round(produce_s, 2),
    }


def _timed(fn: Callable[..., object], *args: object, **kwargs: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier figure."""
    tick, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return round(time.perf_counter() - tick, 2), round(time.process_time() - cpu, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 hour of data instead of 8")
    parser.add_argument("--hours", type=float, default=None, help="hours of data (default 8, --quick 1)")
    args = parser.parse_args()
    hours = args.hours or (1.0 if args.quick else 8.0)
    scale = 8.0 / hours
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sensorhub-bench-") as tmp:
        root = Path(tmp)
        db = root / "sessions.db"
        with SessionStore(db) as store:
            print(f"# writing {hours:g} h ...", file=sys.stderr, flush=True)
            write = record(store, hours)
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            size = store.size_bytes()
            figures["db_mb_per_hour"] = round(size / 1e6 / hours, 2)
            session = store.list_sessions()[0].id
            print("# exporting ...", file=sys.stderr, flush=True)
            exports: dict[str, tuple[ExportFormat, bool]] = {
                "export_csv_raw": ("csv", True),
                "export_parquet_raw": ("parquet", True),
                "export_csv": ("csv", False),
                "export_parquet": ("parquet", False),
                "export_jsonl": ("jsonl", False),
            }
            for name, (fmt, raw) in exports.items():
                path = root / f"{name}.{fmt}"
                figures[f"{name}_s"], figures[f"{name}_cpu_s"] = _timed(
                    export_session, store, session, fmt, path, raw=raw, progress=False
                )
                figures[f"{name}_mb"] = round(path.stat().st_size / 1e6, 1)
                path.unlink()
            print("# report ...", file=sys.stderr, flush=True)
            figures["report_png_s"], figures["report_png_cpu_s"] = _timed(
                write_report, store, session, root / "r.png", progress=False
            )
    if scale != 1.0:
        # Linear in the data: an upper bound for the report, whose plotting part does not grow.
        for name in (
            "export_csv_raw_s",
            "export_csv_raw_cpu_s",
            "export_parquet_raw_s",
            "export_csv_s",
            "report_png_s",
        ):
            figures[f"{name}_8h_est"] = round(figures[name] * scale, 1)
    targets: dict[str, object] = {}
    for name, limit in TARGETS.items():
        value = figures[f"{name}_8h_est" if scale != 1.0 and name != "db_mb_per_hour" else name]
        targets[name] = {"target": limit, "value": value, "ok": value <= limit}
    out: dict[str, object] = {
        "hours": hours,
        "sensors": len(PLACEMENTS),
        "rate_hz": RATE_HZ,
        "write": write,
        "db_bytes": size,
        **figures,
        "targets": targets,
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count()},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
