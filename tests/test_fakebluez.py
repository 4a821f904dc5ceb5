"""The fake BlueZ against REAL bleak (BlueZ D-Bus backend, unmodified) on a private system bus.

These pin the behaviour the BLE source relies on: discovery, GATT, notification order, and what
bleak does (or does not do) when the link drops, a connect is refused, a sensor stalls or
bluetoothd vanishes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.bluezdbus.version import _get_bluetoothctl_version
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDBusError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection
from fakebluez import ERROR_FAILED, ERROR_IN_PROGRESS, FakeBlueZ, FakeCharacteristic, FakeDevice
from fakebluez.bus import BLUETOOTHCTL_VERSION, DBusDaemon, running_system_bus

SERVICE = "0000feed-0000-1000-8000-00805f9b34fb"
DATA = "0000fee1-0000-1000-8000-00805f9b34fb"
CONTROL = "0000fee2-0000-1000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"


def _answer_control(device: FakeDevice, char: FakeCharacteristic, data: bytes, with_response: bool) -> None:
    """A control point that acknowledges each command by notification: 0x80, the opcode, 0x00."""
    device.notify(char.uuid, bytes([0x80, data[0], 0x00]))


def make_sensor(
    address: str = "AA:BB:CC:DD:EE:01", name: str = "Sensor-1", *, rssi: int = -60, connect_delay_s: float = 0.0
) -> FakeDevice:
    """A sensor with a data stream, a control point and a battery level."""
    return FakeDevice(
        address,
        name,
        {
            SERVICE: [
                FakeCharacteristic(DATA, ["notify"]),
                FakeCharacteristic(CONTROL, ["write", "write-without-response", "notify"], on_write=_answer_control),
                FakeCharacteristic(BATTERY, ["read", "notify"], value=b"\x57"),
            ]
        },
        manufacturer_data={0x0059: b"\x01\x02"},
        rssi=rssi,
        connect_delay_s=connect_delay_s,
    )


def counter(index: int) -> bytes:
    return index.to_bytes(4, "little")


async def find(address: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout=5.0)
    assert device is not None, f"{address} not found"
    return device


class Recorder:
    """Notification and disconnect sink for one client."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.arrivals: list[float] = []
        self.disconnects = 0
        self._changed = asyncio.Event()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def on_notify(self, _char: object, data: bytearray) -> None:
        self.values.append(bytes(data))
        self.arrivals.append(asyncio.get_running_loop().time())
        self._touch()

    def on_disconnect(self, _client: BleakClient) -> None:
        self.disconnects += 1
        self._touch()

    async def wait_for(self, count: int, *, disconnects: int = 0, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait for ``count`` notifications and ``disconnects`` disconnected callbacks in all."""
        async with asyncio.timeout(timeout):
            while len(self.values) < count or self.disconnects < disconnects:
                await self._changed.wait()


async def connected_client(sensor: FakeDevice, recorder: Recorder) -> BleakClient:
    client = BleakClient(await find(sensor.address), disconnected_callback=recorder.on_disconnect)
    await client.connect()
    return client


def linked(client: BleakClient) -> bool:
    """``client.is_connected``, read through a call so mypy does not narrow it across awaits."""
    return client.is_connected


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_running_system_bus_restores_env_and_leaks_nothing() -> None:
    before_env = (os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"), os.environ.get("PATH"))
    before_fds = open_fds()
    with running_system_bus() as daemon:
        pid = daemon.pid
        directory = daemon.directory
        assert daemon.running
        assert os.environ["DBUS_SYSTEM_BUS_ADDRESS"] == daemon.address
        assert daemon.address.startswith(f"unix:path={daemon.socket_path},guid=")
        shim = subprocess.run(["bluetoothctl", "--version"], capture_output=True, check=True, text=True)
        assert shim.stdout.strip() == f"bluetoothctl: {BLUETOOTHCTL_VERSION}"
    assert (os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"), os.environ.get("PATH")) == before_env
    assert open_fds() == before_fds
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()
    assert not directory.exists()


async def test_bleak_reads_the_bluetoothctl_shim(private_system_bus: DBusDaemon) -> None:
    """bleak's one-off version probe (version.py _get_bluetoothctl_version) sees 5.66, so no warning."""
    version = await _get_bluetoothctl_version()
    assert version is not None
    assert version.groups() == (b"5", b"66")


async def test_scanner_finds_device_with_name_and_rssi(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor(rssi=-58))
    fake_bluez.add_device(make_sensor("AA:BB:CC:DD:EE:02", "Other"))

    seen = await BleakScanner.discover(timeout=0.4, return_adv=True)

    device, adv = seen[sensor.address]
    assert device.name == "Sensor-1"
    assert adv.local_name == "Sensor-1"
    assert adv.rssi in (-58, -59)  # the fake wiggles RSSI by 1 dB so bleak sees a change
    assert adv.service_uuids == [SERVICE]
    assert adv.manufacturer_data == {0x0059: b"\x01\x02"}
    assert device.details["path"] == "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01"
    assert "AA:BB:CC:DD:EE:02" in seen
    assert fake_bluez.discovery_filters == [{"Transport": "le", "DuplicateData": False}, {}]
    assert not fake_bluez.discovering

    found = await BleakScanner.find_device_by_address(sensor.address.lower(), timeout=2.0)
    assert found is not None
    assert found.name == "Sensor-1"


async def test_client_lists_reads_writes_notifies_and_disconnects(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    assert linked(client)
    assert sensor.calls[:1] == [("Connect", "")]

    service = client.services.get_service(SERVICE)
    assert service is not None
    assert service.handle == 0x0010
    chars = {c.uuid: c for c in service.characteristics}
    assert set(chars) == {DATA, CONTROL, BATTERY}
    assert chars[CONTROL].properties == ["write", "write-without-response", "notify"]
    assert chars[DATA].obj[0] == "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01/service0010/char0011"
    assert [d.uuid for d in chars[DATA].descriptors] == ["00002902-0000-1000-8000-00805f9b34fb"]
    assert chars[CONTROL].max_write_without_response_size == 244  # MTU 247 - 3

    assert await client.read_gatt_char(BATTERY) == b"\x57"
    with pytest.raises(BleakGATTProtocolError):
        await client.read_gatt_char(DATA)  # notify-only

    await client.start_notify(CONTROL, recorder.on_notify)
    await client.write_gatt_char(CONTROL, b"\x01\xaa", response=True)
    await client.write_gatt_char(CONTROL, b"\x02", response=False)
    assert sensor.char(CONTROL).writes == [(b"\x01\xaa", True), (b"\x02", False)]
    await recorder.wait_for(2)
    assert recorder.values == [b"\x80\x01\x00", b"\x80\x02\x00"]

    await client.start_notify(DATA, recorder.on_notify)
    assert sensor.char(DATA).notifying
    assert sensor.notify(DATA, b"\x10")
    await recorder.wait_for(3)
    await client.stop_notify(DATA)
    assert not sensor.char(DATA).notifying
    assert not sensor.notify(DATA, b"\x11")

    await client.disconnect()
    assert not linked(client)
    assert not sensor.connected
    assert recorder.disconnects == 1  # bleak calls the callback on a requested disconnect too
    assert ("Disconnect", "") in sensor.calls


async def test_notifications_at_100hz_arrive_in_order(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(DATA, recorder.on_notify)

    sent = await sensor.stream(DATA, (counter(i) for i in range(200)), rate_hz=100.0)
    await recorder.wait_for(200)

    assert sent == 200
    assert recorder.values == [counter(i) for i in range(200)]
    span_s = recorder.arrivals[-1] - recorder.arrivals[0]
    assert 1.5 < span_s < 3.0  # 199 intervals of 10 ms on an absolute schedule; loose for loaded CI
    await client.disconnect()


async def test_burst_of_1000_notifications_arrives_complete_and_in_order(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(DATA, recorder.on_notify)

    sensor.hold()
    for i in range(1000):
        sensor.notify(DATA, counter(i))
    assert recorder.values == []
    assert await sensor.release() == 1000
    await recorder.wait_for(1000)
    await asyncio.sleep(0.05)

    assert recorder.values == [counter(i) for i in range(1000)]
    assert sensor.notifications_sent == 1000
    await client.disconnect()


async def test_reading_a_subscribed_characteristic_also_notifies(fake_bluez: FakeBlueZ) -> None:
    """bluetoothd puts a read value into Value, so a subscriber sees the read as a notification."""
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(BATTERY, recorder.on_notify)

    assert await client.read_gatt_char(BATTERY) == b"\x57"
    await recorder.wait_for(1)
    assert recorder.values == [b"\x57"]
    await client.disconnect()


async def test_dropped_link_fires_disconnected_callback(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(DATA, recorder.on_notify)

    sensor.drop_link()
    await recorder.wait_for(0, disconnects=1, timeout=2.0)
    assert not linked(client)
    assert not sensor.char(DATA).notifying

    # Reconnecting restores GATT, but the subscription is gone until start_notify runs again.
    again = Recorder()
    client = await connected_client(sensor, again)
    assert not sensor.notify(DATA, b"\x01")
    await client.start_notify(DATA, again.on_notify)
    assert sensor.notify(DATA, b"\x02")
    await again.wait_for(1)
    assert again.values == [b"\x02"]
    assert recorder.disconnects == 1
    await client.disconnect()


@pytest.mark.parametrize("error", [ERROR_FAILED, ERROR_IN_PROGRESS])
async def test_refused_connect_raises_bleak_dbus_error(fake_bluez: FakeBlueZ, error: str) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    sensor.refuse_connects(1, error=error)
    client = BleakClient(await find(sensor.address))

    with pytest.raises(BleakDBusError) as caught:
        await client.connect()
    assert caught.value.dbus_error == error
    assert not linked(client)

    await client.connect()
    assert linked(client)
    await client.disconnect()


async def test_parallel_connects_get_in_progress(fake_bluez: FakeBlueZ) -> None:
    slow = fake_bluez.add_device(make_sensor(connect_delay_s=1.0))
    other = fake_bluez.add_device(make_sensor("AA:BB:CC:DD:EE:02", "Sensor-2"))
    first = BleakClient(await find(slow.address))
    second = BleakClient(await find(other.address))

    first_connect = asyncio.create_task(first.connect(), name="first-connect")
    await slow.wait_until(lambda: slow._connecting)
    with pytest.raises(BleakDBusError) as caught:
        await second.connect()
    assert caught.value.dbus_error == ERROR_IN_PROGRESS
    await first_connect
    await second.connect()

    assert linked(first)
    assert linked(second)
    await first.disconnect()
    await second.disconnect()


async def test_establish_connection_retries_refused_connects(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    sensor.refuse_connects(2)

    client = await establish_connection(BleakClient, await find(sensor.address), "sensor-1", max_attempts=4)

    assert linked(client)
    assert [c for c in sensor.calls if c[0] == "Connect"] == [("Connect", "")] * 3
    await client.disconnect()


async def test_stall_keeps_the_link_and_stops_notifications(fake_bluez: FakeBlueZ) -> None:
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(DATA, recorder.on_notify)

    sensor.stall()
    assert not sensor.notify(DATA, b"\x01")
    await asyncio.sleep(0.2)
    assert recorder.values == []
    assert linked(client)
    assert recorder.disconnects == 0

    sensor.unstall()
    assert sensor.notify(DATA, b"\x02")
    await recorder.wait_for(1)
    assert recorder.values == [b"\x02"]
    await client.disconnect()


async def test_vanished_bluetoothd_is_silent_until_the_client_disconnects(fake_bluez: FakeBlueZ) -> None:
    """No callback, ``is_connected`` stays True; only a watchdog (no data) can tell.

    While bluetoothd is away, Disconnect fails at once with ServiceUnknown, and bleak still tears the
    client down (client.py disconnect: ``finally`` runs ``_on_disconnected``), callback included.
    """
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)
    await client.start_notify(DATA, recorder.on_notify)
    assert sensor.notify(DATA, b"\x01")
    await recorder.wait_for(1)

    await fake_bluez.vanish()
    await asyncio.sleep(0.3)
    assert linked(client)
    assert recorder.disconnects == 0
    assert not sensor.notify(DATA, b"\x02")

    # The trap: bleak's cache still says Connected and ServicesResolved, so a new client skips
    # Connect (client.py connect: manager.is_connected) and "connects" to nothing at all.
    probe = BleakClient(device_of(sensor))
    await probe.connect()
    assert linked(probe)
    with pytest.raises(BleakDBusError) as caught:
        await probe.read_gatt_char(BATTERY)
    assert caught.value.dbus_error == "org.freedesktop.DBus.Error.ServiceUnknown"

    for stale in (probe, client):
        with pytest.raises(BleakDBusError):
            await stale.disconnect()
        assert not linked(stale)
    assert recorder.disconnects == 1

    await fake_bluez.come_back()
    again = Recorder()
    client = await connected_client(sensor, again)
    await client.start_notify(DATA, again.on_notify)
    assert sensor.notify(DATA, b"\x03")
    await again.wait_for(1)
    assert again.values == [b"\x03"]
    await client.disconnect()


async def test_disconnect_after_bluetoothd_came_back_needs_a_timeout(fake_bluez: FakeBlueZ) -> None:
    """After a restart the old link is unknown: Disconnect succeeds but no Connected=False follows.

    bleak then waits 10 s for the signal (client.py disconnect), so a watchdog bounds it itself;
    the client is torn down either way.
    """
    sensor = fake_bluez.add_device(make_sensor())
    recorder = Recorder()
    client = await connected_client(sensor, recorder)

    await fake_bluez.vanish()
    await fake_bluez.come_back()
    assert linked(client)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await client.disconnect()
    assert not linked(client)
    assert recorder.disconnects == 1

    client = await connected_client(sensor, Recorder())
    assert sensor.connected
    await client.disconnect()


def device_of(sensor: FakeDevice) -> BLEDevice:
    """The BLEDevice bleak would hand out for ``sensor`` (scanning needs bluetoothd)."""
    return BLEDevice(sensor.address, sensor.name, {"path": sensor.path, "props": {}})
