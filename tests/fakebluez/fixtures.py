"""pytest fixtures for the fake BlueZ (registered in ``tests/conftest.py``).

- ``private_system_bus``: a private ``dbus-daemon`` per test, ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at
  it and a ``bluetoothctl`` shim on ``PATH``; the environment is restored afterwards.
- ``fake_bluez``: a started :class:`~fakebluez.bluez.FakeBlueZ` owning ``org.bluez`` on that bus,
  with no devices yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from fakebluez.bluez import FakeBlueZ
from fakebluez.bus import DBusDaemon, running_system_bus

__all__ = ["fake_bluez", "private_system_bus", "stop_bus_in_loop"]


@pytest.fixture
def private_system_bus() -> Iterator[DBusDaemon]:
    """A private system bus for one test."""
    with running_system_bus() as daemon:
        yield daemon


async def stop_bus_in_loop(daemon: DBusDaemon) -> None:
    """Stop the daemon while the test's event loop still runs, so every D-Bus client closes.

    bleak keeps one BlueZManager connection per event loop (``manager.py`` ``_global_instances``)
    and one more per connected BleakClient. When the daemon goes, dbus-fast's reader sees EOF and
    closes each socket (``dbus_fast/aio/message_bus.py`` ``MessageBus._finalize``), but only while
    the loop runs; a socket left for the garbage collector is a ResourceWarning, an error here.
    """
    daemon.stop()
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake_bluez(private_system_bus: DBusDaemon) -> AsyncIterator[FakeBlueZ]:
    """A running fake bluetoothd on the test's private system bus."""
    bluez = FakeBlueZ(bus_address=private_system_bus.address)
    await bluez.start()
    try:
        yield bluez
    finally:
        try:
            await bluez.stop()
        finally:
            await stop_bus_in_loop(private_system_bus)
