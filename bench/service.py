"""Benchmark of the whole service: latency to a subscriber, CPU per sensor, memory over a long day.

Prints one JSON object:

- ``latency_ms``: end-to-end latency of the ``angles`` topic through a private mosquitto, from a
  sample entering the source to a subscriber (a separate process, paho) receiving the message
  that carries it; p50, p99 and max over the run. The simulated wearer streams in real time
  (speed 1, 4-sample notifications at 100 Hz, 3 sensors); ``angles`` is published at 50 Hz here
  (every grid instant) so that every instant is measured. For a message stamped with grid time
  ``t``, the sample that "carries" it is, for each sensor, the first one at or after ``t`` (the
  rig interpolates between the samples around ``t``, so it needs that one), and the entry time is
  the moment the source handed out its notification, the latest over the sensors. The published
  angles are not low-pass filtered (the alert path's filter is in docs/pipeline.md), so the stated
  filter delay of this path is 0 ms. Target (issue 7): p99 ≤ 25 ms + filter delay.
- ``latency_ms_embedded_broker``: the same through the embedded amqtt broker (MQTT 3.1.1) running
  in the service's own process and event loop, as ``sensorhub demo`` runs it.
- ``cpu``: the service's CPU time (all threads: pipeline, posture, recorder, MQTT at the default
  10 Hz) per wall second, streaming in real time with 1, 2 and 3 sensors, in percent of one core,
  and per sensor. The wearer's notifications are made before the clock starts and handed out on
  time, so the simulator's physics is not counted.
- ``memory``: RSS of the process while the service runs an accelerated ``--hours`` session
  (default 8: the 2-hour ``long_sitting`` scenario four times over, back to back) with recording
  and MQTT on; sampled every 10 simulated minutes; growth after the first hour (warm-up) as a
  percentage. Target: ≤ 10 %.

Run: ``.venv/bin/python bench/service.py [--quick]`` (quick: shorter runs, a 2-hour session).
Needs mosquitto (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from sensorhub import __version__
from sensorhub.config import Config, parse_config
from sensorhub.guided import GuidedOptions, guided_calibration
from sensorhub.model import ImuBatch
from sensorhub.pipeline.calibration import RigCalibration
from sensorhub.runner import _start, make_source
from sensorhub.sim.wearer import SimulatedWearer
from sensorhub.sim.wearer import WearerConfig as SimWearerConfig
from sensorhub.sources.simulator import SimulatorSource, iter_batches

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _brokers import HOST, embedded, mosquitto

PLACEMENTS = ("upper_thoracic", "thoracolumbar", "sacral")

SUBSCRIBER = textwrap.dedent(
    """
    import sys, time
    import paho.mqtt.client as mqtt
    port, topic, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    out = open(path, "w", buffering=1)
    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(topic, qos=0)
    def on_subscribe(client, userdata, mid, reasons, properties):
        print("ready", flush=True)
    def on_message(client, userdata, msg):
        out.write(f"{time.time():.6f} {msg.payload.decode()}\\n")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port)
    client.loop_forever()
    """
)


def _config(
    directory: Path, port: int | None, placements: tuple[str, ...], publish_rate_hz: float = 10.0, protocol: str = "5"
) -> Config:
    raw: dict[str, object] = {
        "wearer": {"id": "bench"},
        "source": {"kind": "simulator", "scenario": "desk_session", "speed": 1.0},
        "sensors": [{"placement": p, "profile": "sensorhub_open"} for p in placements],
        "storage": {"path": str(directory / f"sessions-{time.monotonic_ns()}.db")},
    }
    if port is not None:
        raw["mqtt"] = {
            "url": f"mqtt://{HOST}:{port}",
            "publish_rate_hz": publish_rate_hz,
            "discovery": False,
            "protocol": protocol,
        }
    return parse_config(raw)


async def _calibration(config: Config) -> RigCalibration:
    """The calibration of the same simulated wearer (same seed: the same data), computed up front."""
    fast = replace(config, source=replace(config.source, speed=math.inf))
    options = GuidedOptions(countdown_s=0, save=False)
    result = await guided_calibration(fast, make_source(fast), options, out=io.StringIO())
    return result.calibration


class _TimedReplay:
    """Pre-made notifications of the simulated wearer handed out in real time, each stamped
    (wall clock, epoch s) as it leaves: the simulator's own physics is not the service's cost."""

    def __init__(self, config: Config, seconds: float) -> None:
        sim = SimWearerConfig(
            scenario=config.source.scenario,
            seed=config.source.seed,
            placements=tuple(s.placement for s in config.sensors),
            duration_s=seconds + 2.0,
        )
        self.notes = list(iter_batches(SimulatedWearer(sim)))
        self.stamps: dict[str, list[tuple[float, float]]] = {}

    async def __aiter__(self) -> AsyncIterator[ImuBatch]:
        start = time.monotonic()
        for arrival_t, batch in self.notes:
            delay = start + arrival_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.stamps.setdefault(batch.placement.value, []).append((float(batch.t[-1]), time.time()))
            yield batch


async def _run_for(config: Config, calibration: RigCalibration, seconds: float, source: object) -> tuple[object, float]:
    """Run a service on ``source`` for ``seconds`` of wall time; returns it and its CPU seconds."""
    async with contextlib.AsyncExitStack() as stack:
        service = await _start(config, stack, duration_s=None, calibrate=None, calibration=calibration)
        service.source = source  # type: ignore[assignment]
        cpu0 = time.process_time()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await service.run()
        cpu = time.process_time() - cpu0
    return service, cpu


async def _latency(directory: Path, port: int, seconds: float, protocol: str = "5") -> dict[str, object]:
    config = _config(directory, port, PLACEMENTS, publish_rate_hz=50.0, protocol=protocol)
    calibration = await _calibration(config)
    received = directory / "received.txt"
    sub = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBSCRIBER, str(port), "sensorhub/bench/angles", str(received), stdout=subprocess.PIPE
    )
    try:
        assert sub.stdout is not None
        if (await sub.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the subscriber did not start")
        source = _TimedReplay(config, seconds)
        service, _ = await _run_for(config, calibration, seconds, source)
        await asyncio.sleep(0.5)  # the last messages in flight
    finally:
        sub.terminate()
        await sub.wait()
    period_s = 1.0 / config.pipeline.output_rate_hz
    return _latencies(received, source, service.epoch_offset_s, period_s)  # type: ignore[attr-defined]


async def _cpu(directory: Path, port: int, seconds: float) -> dict[str, object]:
    """CPU of the service streaming in real time with 1, 2, 3 sensors (MQTT at its default 10 Hz, recording on)."""
    out: dict[str, object] = {}
    for n in (1, 2, 3):
        config = _config(directory, port, PLACEMENTS[:n])
        calibration = await _calibration(config)
        source = _TimedReplay(config, seconds)
        start = time.monotonic()
        _, cpu_s = await _run_for(config, calibration, seconds, source)
        share = cpu_s / (time.monotonic() - start)
        out[f"{n}_sensors"] = {
            "cpu_pct_of_one_core": round(100 * share, 2),
            "per_sensor_pct": round(100 * share / n, 2),
        }
    return out


def _latencies(received: Path, source: _TimedReplay, epoch_offset_s: float, period_s: float) -> dict[str, object]:
    stamps = {p: np.array(v) for p, v in source.stamps.items()}
    lat = []
    for line in received.read_text().splitlines():
        recv_s, payload = line.split(" ", 1)
        # The payload's t is epoch seconds rounded to 1 ms; the rig's grid instants are whole
        # multiples of its period on the session clock, so the exact instant is the nearest one.
        t = round((json.loads(payload)["t"] - epoch_offset_s) / period_s) * period_s
        entered = -math.inf
        for arr in stamps.values():
            # The first notification holding a sample at or after t: the rig emits t once every
            # sensor has reached it (a sample just before t does not do; see SpineRig.process).
            i = int(np.searchsorted(arr[:, 0], t - 1e-9))
            if i >= len(arr):
                entered = math.nan
                break
            entered = max(entered, arr[i, 1])
        if math.isfinite(entered):
            lat.append((float(recv_s) - entered) * 1e3)
    a = np.array(lat[50:])  # after the first second
    return {
        "messages": len(a),
        "min": round(float(a.min()), 2),  # < 0 would mean the instant was matched to the wrong samples
        "p50": round(float(np.percentile(a, 50)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "max": round(float(a.max()), 2),
        "filter_delay_ms": 0.0,
        "target_p99_ms": 25.0,
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _LongDay:
    """``long_sitting`` back to back until ``hours``, as fast as possible; RSS every 10 simulated minutes."""

    def __init__(self, config: Config, hours: float) -> None:
        self.config = config
        self.hours = hours
        self.rss: list[tuple[float, float]] = []

    async def __aiter__(self) -> AsyncIterator[ImuBatch]:
        placements = tuple(s.placement for s in self.config.sensors)
        offset, seq_offset, next_sample = 0.0, 0, 0.0
        while offset < self.hours * 3600:
            sim = SimWearerConfig(scenario="long_sitting", seed=int(offset), placements=placements)
            source = SimulatorSource(sim, speed=math.inf)
            end = 0.0
            top = 0
            async for b in source:
                t = b.t + offset
                seq = None if b.seq is None else b.seq + seq_offset
                if seq is not None:
                    top = max(top, int(seq[-1]))
                end = float(t[-1])
                if end >= next_sample:
                    self.rss.append((end / 3600, _rss_mb()))
                    next_sample += 600.0
                yield ImuBatch(b.sensor_id, b.placement, t, b.acc, b.gyro, seq)
            offset, seq_offset = end + 0.05, top + 5


async def _memory(directory: Path, port: int, hours: float) -> dict[str, object]:
    config = _config(directory, port, PLACEMENTS)
    calibration = await _calibration(replace(config, source=replace(config.source, scenario="long_sitting")))
    day = _LongDay(config, hours)
    start = time.monotonic()
    await _run_for(config, calibration, math.inf, day)
    wall = time.monotonic() - start
    after = [mb for h, mb in day.rss if h >= 1.0]
    base = after[0]
    return {
        "simulated_hours": round(day.rss[-1][0], 2),
        "wall_s": round(wall, 1),
        "rss_mb_at_1h": round(base, 1),
        "rss_mb_end": round(after[-1], 1),
        "rss_mb_max": round(max(after), 1),
        "growth_after_warmup_pct": round(100 * (max(after) - base) / base, 2),
        "target_growth_pct": 10.0,
        "samples": [[round(h, 2), round(mb, 1)] for h, mb in day.rss],
    }


async def _main(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {
        "benchmark": "service",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "sensorhub": __version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seconds = 10.0 if args.quick else args.seconds
        async with mosquitto(directory) as port:
            if args.only in (None, "latency"):
                out["latency_ms"] = await _latency(directory, port, seconds)
                out["cpu"] = await _cpu(directory, port, seconds)
            if args.only in (None, "memory"):
                out["memory"] = await _memory(directory, port, 2.0 if args.quick else args.hours)
        if args.only in (None, "latency"):
            # The out-of-the-box default: the embedded broker in the service's own process and loop.
            async with embedded() as port:
                out["latency_ms_embedded_broker"] = await _latency(directory, port, seconds, protocol="3.1.1")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s real-time runs and a 2-hour session")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each real-time run (default 30)")
    parser.add_argument("--hours", type=float, default=8.0, help="length of the accelerated session (default 8)")
    parser.add_argument("--only", choices=["latency", "memory"], help="run one part")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args)), indent=1))


if __name__ == "__main__":
    main()
