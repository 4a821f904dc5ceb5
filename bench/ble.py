"""Benchmark of the BLE source: CPU per 1000 notifications, and how many 100 Hz sensors one process carries.

Prints one JSON object. The whole receive path is measured — real bleak (BlueZ D-Bus backend,
dbus-fast), the source's callback and queue, decoding, timing (``SampleTimer``), axis mapping and
the output queue, with a consumer that takes every batch — against the fake BlueZ of
``tests/fakebluez`` with firmware emulators (``tests/fakebluez/devices.py``) streaming at 100 Hz.

How the emulator is kept out of the figure: the fake BlueZ and its emulators run in a **separate
process** (``bench/ble.py --serve PROFILE N RUN``), and the private ``dbus-daemon`` is a third one;
the figure is this process's own CPU time (``time.process_time``, user + system, all threads) over
a steady-state window of ``--window`` seconds after every link streams, divided by the wall time
(CPU %) or by the notifications decoded in the window (ms per 1000). The measuring process is
only the sensorhub side, as it would run against a real bluetoothd.

For each profile (``sensorhub_open``: 4 samples per notification, 25 notifications/s per sensor;
``thingy52``: 1 sample per notification, 100/s — the most notifications per sample) it runs 1, 2,
3, … sensors (``--counts``; a BleSource holds one sensor per placement, so more than three use
several sources in the same process) and reports CPU %, ms per 1000 notifications, the achieved
sample rate per sensor and the notifications the source had to drop. ``sustained_within_50pct``
is the largest measured count whose CPU stays within 50 % of one core with every sensor at its
full rate; ``extrapolated_within_50pct`` extends the measured per-sensor slope (least squares over
the counts) to 50 % of a core.

Run: ``.venv/bin/python bench/ble.py [--window 5] [--counts 1 2 3 4 6] [--quick]``.
Needs ``dbus-daemon`` (Debian package ``dbus-daemon``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakebluez import FakeBlueZ, running_system_bus
from fakebluez.devices import emulator_for

from sensorhub.config import SensorConfig
from sensorhub.model import Placement
from sensorhub.sources.ble import BleSource

PLACEMENTS = tuple(Placement)
RATE_HZ = 100.0


def address(run: int, index: int) -> str:
    return f"C0:FF:EE:{run:02X}:00:{index:02X}"


async def serve(profile: str, count: int, run: int) -> None:
    """The device side: fake bluetoothd + ``count`` emulators, until killed."""
    async with FakeBlueZ() as bluez, contextlib.AsyncExitStack() as stack:
        cls = emulator_for(profile)
        for i in range(count):
            placement = PLACEMENTS[i % len(PLACEMENTS)]
            await stack.enter_async_context(cls(bluez, address(run, i), placement, rate_hz=RATE_HZ, seed=i))
        print("ready", flush=True)
        await asyncio.Event().wait()


async def measure(profile: str, count: int, run: int, window_s: float) -> dict[str, float | int]:
    """Stream ``count`` sensors into BleSources; this process's CPU over a steady window."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", profile, str(count), str(run), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"emulator process did not start: {line!r}")
        sources = []
        for start in range(0, count, len(PLACEMENTS)):
            group = range(start, min(count, start + len(PLACEMENTS)))
            sensors = [
                SensorConfig(placement=PLACEMENTS[i - start], profile=profile, address=address(run, i), rate_hz=RATE_HZ)
                for i in group
            ]
            sources.append(BleSource(sensors))
        samples = [0]

        async def consume(source: BleSource) -> None:
            async for batch in source:
                samples[0] += len(batch)

        links = [link for source in sources for link in source.links.values()]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(consume(s), name=f"bench-consume-{i}") for i, s in enumerate(sources)]
            async with asyncio.timeout(60):
                # the links own their state; a poll every 0.1 s is the simple, bounded wait here
                while not all(link.state.samples > 0 for link in links):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # warm-up
            cpu0, wall0 = time.process_time(), time.monotonic()
            notes0 = sum(link.state.notifications for link in links)
            samples0 = samples[0]
            await asyncio.sleep(window_s)
            cpu1, wall1 = time.process_time(), time.monotonic()
            notes = sum(link.state.notifications for link in links) - notes0
            got = samples[0] - samples0
            dropped = sum(link.state.dropped for link in links)
            reconnects = sum(link.state.reconnects for link in links)
            for task in tasks:
                task.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
    cpu_s, wall_s = cpu1 - cpu0, wall1 - wall0
    return {
        "sensors": count,
        "cpu_pct": round(100.0 * cpu_s / wall_s, 1),
        "ms_per_1000_notifications": round(1000.0 * cpu_s / max(notes, 1) * 1000.0, 1),
        "notifications_per_s": round(notes / wall_s, 1),
        "samples_per_s_per_sensor": round(got / wall_s / count, 1),
        "dropped": dropped,
        "reconnects": reconnects,
    }


def summarise(rows: list[dict[str, float | int]]) -> dict[str, float | int | None]:
    ok = [
        r
        for r in rows
        if float(r["cpu_pct"]) <= 50.0 and float(r["samples_per_s_per_sensor"]) >= 0.97 * RATE_HZ and r["dropped"] == 0
    ]
    n = [float(r["sensors"]) for r in rows]
    cpu = [float(r["cpu_pct"]) for r in rows]
    if len(rows) >= 2:
        mean_n, mean_c = sum(n) / len(n), sum(cpu) / len(cpu)
        slope = sum((a - mean_n) * (b - mean_c) for a, b in zip(n, cpu, strict=True)) / sum(
            (a - mean_n) ** 2 for a in n
        )
        intercept = mean_c - slope * mean_n
        extrapolated = int((50.0 - intercept) // slope) if slope > 0 else None
    else:
        slope, intercept, extrapolated = cpu[0] / n[0], 0.0, int(50.0 // (cpu[0] / n[0]))
    return {
        "sustained_within_50pct": max((int(r["sensors"]) for r in ok), default=0),
        "cpu_pct_per_sensor": round(slope, 2),
        "cpu_pct_fixed": round(intercept, 2),
        "extrapolated_within_50pct": extrapolated,
        "median_ms_per_1000_notifications": sorted(float(r["ms_per_1000_notifications"]) for r in rows)[len(rows) // 2],
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    run = 0
    for profile in args.profiles:
        rows = []
        for count in args.counts:
            run += 1
            rows.append(await measure(profile, count, run, args.window))
        results[profile] = {"runs": rows, **summarise(rows)}
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    parser.add_argument("--profiles", nargs="+", default=["sensorhub_open", "thingy52"])
    parser.add_argument("--quick", action="store_true", help="2 s windows, 1 and 3 sensors")
    parser.add_argument("--serve", nargs=3, metavar=("PROFILE", "N", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        profile, count, run = args.serve
        asyncio.run(serve(profile, int(count), int(run)))
        return
    if args.quick:
        args.window, args.counts = 2.0, [1, 3]
    with running_system_bus():
        results = asyncio.run(main(args))
    print(
        json.dumps(
            {
                "benchmark": "ble",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "rate_hz": RATE_HZ,
                "window_s": args.window,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    cli()
