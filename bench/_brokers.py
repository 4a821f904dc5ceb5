"""Brokers for the benchmarks: a private mosquitto on a free loopback port (never the system one), and the
embedded amqtt broker in this process, as ``sensorhub demo`` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def mosquitto(directory: Path) -> AsyncIterator[int]:
    """A mosquitto of our own (no persistence, anonymous, loopback only); yields its port."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = directory / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"persistence false\nlog_dest none\n{user}listener {port} {HOST}\nallow_anonymous true\n")
    proc = await asyncio.create_subprocess_exec(
        exe, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(500):
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            await asyncio.sleep(0.01)
        yield port
    finally:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def embedded() -> AsyncIterator[int]:
    """The embedded broker (amqtt, MQTT 3.1.1) on a free loopback port in this process; yields its port."""
    from sensorhub.mqtt.broker import EmbeddedBroker

    async with EmbeddedBroker(HOST, free_port(), fallback_to_free_port=False) as broker:
        yield broker.port
