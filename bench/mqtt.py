"""Benchmark of the MQTT publisher through mosquitto and through the embedded amqtt broker, side by side.

Prints one JSON object with, per broker:
- ``angles_throughput_msgs_per_s``: angle messages (QoS 0) a subscriber receives per second when
  the producer offers them as fast as the publisher takes them (decimation off);
- ``alerts_throughput_msgs_per_s``: alerts (QoS 1, through the durable SQLite outbox, one in
  flight, each removed after the broker's PUBACK) received per second;
- ``angles_latency_ms`` / ``alerts_latency_ms``: from the ``publish_*`` call in the service to the
  subscriber's receipt (p50, p99, max), at the live rates (10 angle messages/s; alerts 1/s);
each a median of ``--repeats`` runs with the spread (min–max). The pipeline's own cost from a
notification to an angle is in ``bench/pipeline.py``; add the two for notification-to-subscriber.

Run: ``.venv/bin/python bench/mqtt.py [--quick]``. Needs mosquitto (Debian package) and amqtt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import numpy as np

from sensorhub.config import MqttConfig, MqttProtocol
from sensorhub.mqtt.outbox import Outbox
from sensorhub.mqtt.publisher import MqttPublisher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _brokers import HOST, embedded
from _brokers import mosquitto as _mosquitto

ANGLES = {"thoracic_flexion_deg": 12.3, "lumbar_flexion_deg": 4.5, "trunk_flexion_deg": 15.0, "pelvis_tilt_deg": -2.0}


@contextlib.asynccontextmanager
async def _amqtt(directory: Path) -> AsyncIterator[int]:
    async with embedded() as port:
        yield port


@contextlib.asynccontextmanager
async def _publisher(
    port: int, directory: Path, *, rate_hz: float, protocol: MqttProtocol
) -> AsyncIterator[MqttPublisher]:
    config = MqttConfig(
        url=f"mqtt://{HOST}:{port}",
        client_id=f"bench-{port}-{time.monotonic_ns()}",
        publish_rate_hz=rate_hz,
        discovery=False,
        protocol=protocol,
    )
    outbox = Outbox(directory / f"outbox-{time.monotonic_ns()}.db", max_messages=100_000)
    publisher = MqttPublisher(config, "bench", outbox=outbox, placements=("upper_thoracic",), sw_version="bench")
    task = asyncio.create_task(publisher.run(), name="bench-publisher")
    try:
        for _ in range(1000):
            if publisher.stats.connected:
                break
            await asyncio.sleep(0.01)
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()


class _Receiver:
    """Subscribes to the wearer's topics and stamps every arrival with perf_counter."""

    def __init__(self, port: int) -> None:
        self.client = aiomqtt.Client(HOST, port, timeout=10)
        self.arrivals: dict[str, list[tuple[float, bytes]]] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Receiver:
        await self.client.__aenter__()
        await self.client.subscribe("sensorhub/bench/#", qos=1)
        self._task = asyncio.create_task(self._collect(), name="bench-receiver")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.arrivals.setdefault(message.topic.value.rsplit("/", 1)[-1], []).append((time.perf_counter(), payload))
            self.changed.set()

    async def wait_count(self, kind: str, count: int, within_s: float = 60.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.arrivals.get(kind, [])) < count:
                self.changed.clear()
                await self.changed.wait()


async def _angles_throughput(port: int, directory: Path, n: int, protocol: MqttProtocol) -> float:
    async with _Receiver(port) as rx, _publisher(port, directory, rate_hz=1e6, protocol=protocol) as pub:
        start = time.perf_counter()
        offered = 0
        while offered < n:
            # Offer as fast as the publisher sends, never overflowing its queue (drops would be counted).
            while offered < n and offered - pub.stats.angles_sent < 40:
                pub.publish_angles(offered * 1e-3, ANGLES, "upright")
                offered += 1
            await asyncio.sleep(0)
        await rx.wait_count("angles", n)
        return n / (rx.arrivals["angles"][-1][0] - start)


async def _alerts_throughput(port: int, directory: Path, n: int, protocol: MqttProtocol) -> float:
    async with _Receiver(port) as rx, _publisher(port, directory, rate_hz=10.0, protocol=protocol) as pub:
        start = time.perf_counter()
        for i in range(n):
            pub.publish_alert(float(i), "slouch", "start", 0.0, episode=i)
        await rx.wait_count("alerts", n)
        return n / (rx.arrivals["alerts"][-1][0] - start)


async def _latency(
    port: int, directory: Path, kind: str, n: int, period_s: float, protocol: MqttProtocol
) -> list[float]:
    sent: dict[int, float] = {}
    async with _Receiver(port) as rx, _publisher(port, directory, rate_hz=10.0, protocol=protocol) as pub:
        for i in range(n):
            sent[i] = time.perf_counter()
            if kind == "angles":
                pub.publish_angles(i * 0.1, ANGLES, "upright")
            else:
                pub.publish_alert(float(i), "slouch", "start", 0.0, episode=i)
            await asyncio.sleep(period_s)
        await rx.wait_count(kind, n)
    out = []
    for arrived, payload in rx.arrivals[kind]:
        data = json.loads(payload)
        i = round(data["t"] * 10) if kind == "angles" else int(data["episode"])
        out.append((arrived - sent[i]) * 1e3)
    return out


def _spread(values: list[float], ndigits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), ndigits),
        "min": round(min(values), ndigits),
        "max": round(max(values), ndigits),
    }


def _percentiles(runs: list[list[float]]) -> dict[str, object]:
    return {
        "p50": _spread([float(np.percentile(r, 50)) for r in runs], 2),
        "p99": _spread([float(np.percentile(r, 99)) for r in runs], 2),
        "max": _spread([max(r) for r in runs], 2),
    }


async def _bench_broker(
    start_broker: Callable[[Path], contextlib.AbstractAsyncContextManager[int]],
    protocol: MqttProtocol,
    args: argparse.Namespace,
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        async with start_broker(directory) as port:
            angles_tp, alerts_tp, angles_lat, alerts_lat = [], [], [], []
            for _ in range(args.repeats):
                angles_tp.append(await _angles_throughput(port, directory, args.angles, protocol))
                alerts_tp.append(await _alerts_throughput(port, directory, args.alerts, protocol))
                angles_lat.append(await _latency(port, directory, "angles", args.latency_n, 0.1, protocol))
                alerts_lat.append(
                    await _latency(port, directory, "alerts", max(10, args.latency_n // 10), 0.1, protocol)
                )
    return {
        "protocol": f"MQTT {'5' if protocol is MqttProtocol.V5 else '3.1.1'}",
        "angles_throughput_msgs_per_s": _spread(angles_tp, 0),
        "alerts_throughput_msgs_per_s": _spread(alerts_tp, 0),
        "angles_latency_ms": _percentiles(angles_lat),
        "alerts_latency_ms": _percentiles(alerts_lat),
    }


async def _main(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {
        "benchmark": "mqtt",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "angles_messages": args.angles,
        "alert_messages": args.alerts,
    }
    out["mosquitto"] = await _bench_broker(_mosquitto, MqttProtocol.V5, args)
    out["amqtt_embedded"] = await _bench_broker(_amqtt, MqttProtocol.V311, args)
    ratio = (
        out["mosquitto"]["angles_throughput_msgs_per_s"]["median"]
        / out["amqtt_embedded"][  # type: ignore[index]
            "angles_throughput_msgs_per_s"
        ]["median"]
    )
    out["angles_throughput_ratio_mosquitto_over_amqtt"] = round(ratio, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.angles, args.alerts, args.latency_n = 1, 2000, 200, 50
    else:
        args.angles, args.alerts, args.latency_n = 10_000, 500, 200
    json.dump(asyncio.run(_main(args)), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
