"""A fake BlueZ on a private D-Bus for testing against real bleak (see README.md in this folder)."""

from fakebluez.bluez import (
    CCCD_UUID,
    ERROR_FAILED,
    ERROR_IN_PROGRESS,
    FakeBlueZ,
    FakeCharacteristic,
    FakeDevice,
)
from fakebluez.bus import DBusDaemon, running_system_bus

__all__ = [
    "CCCD_UUID",
    "ERROR_FAILED",
    "ERROR_IN_PROGRESS",
    "DBusDaemon",
    "FakeBlueZ",
    "FakeCharacteristic",
    "FakeDevice",
    "running_system_bus",
]
