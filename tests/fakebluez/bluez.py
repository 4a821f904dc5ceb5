"""A fake ``bluetoothd``: the BlueZ D-Bus API served with dbus-fast, for real bleak to talk to.

Object tree (bluez ``doc/org.bluez.*.rst``; bleak depends on the exact path shapes, see README)::

    /                                                    org.freedesktop.DBus.ObjectManager
    /org/bluez/hci0                                      org.bluez.Adapter1
    /org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF                org.bluez.Device1
    …/dev_AA_BB_CC_DD_EE_FF/service0010                  org.bluez.GattService1
    …/dev_AA_BB_CC_DD_EE_FF/service0010/char0011         org.bluez.GattCharacteristic1
    …/dev_AA_BB_CC_DD_EE_FF/service0010/char0011/desc0013  org.bluez.GattDescriptor1 (CCCD)

The GATT objects exist only while a device is connected, as bluetoothd does for unbonded devices.
ObjectManager is dbus-fast's built-in one (``dbus_fast/message_bus.py``
``_default_get_managed_objects_handler``, ``_emit_interface_added``): ``export`` sends
InterfacesAdded and ``unexport`` InterfacesRemoved.

Test code builds :class:`FakeDevice` models, adds them with :meth:`FakeBlueZ.add_device`, and
drives them: :meth:`FakeDevice.notify`, :meth:`FakeDevice.stream`, write hooks, and the faults
:meth:`FakeDevice.refuse_connects`, :meth:`FakeDevice.drop_link`, :meth:`FakeDevice.stall`,
:meth:`FakeDevice.hold` / :meth:`FakeDevice.release` (bursts), :meth:`FakeBlueZ.vanish` /
:meth:`FakeBlueZ.come_back`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Annotated, Any, Final, Self

from dbus_fast import BusType, DBusError, Message, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

__all__ = [
    "CCCD_UUID",
    "ERROR_ALREADY_CONNECTED",
    "ERROR_DOES_NOT_EXIST",
    "ERROR_FAILED",
    "ERROR_IN_PROGRESS",
    "ERROR_NOT_PERMITTED",
    "ERROR_NOT_READY",
    "ERROR_NOT_SUPPORTED",
    "FakeBlueZ",
    "FakeCharacteristic",
    "FakeDevice",
    "ReadHook",
    "WriteHook",
]

_LOGGER = logging.getLogger(__name__)

BLUEZ_SERVICE: Final = "org.bluez"
CCCD_UUID: Final = "00002902-0000-1000-8000-00805f9b34fb"

# Error names and messages as bluetoothd sends them (bluez src/error.c, src/gatt-client.c).
ERROR_FAILED: Final = "org.bluez.Error.Failed"
ERROR_IN_PROGRESS: Final = "org.bluez.Error.InProgress"
ERROR_ALREADY_CONNECTED: Final = "org.bluez.Error.AlreadyConnected"
ERROR_NOT_PERMITTED: Final = "org.bluez.Error.NotPermitted"
ERROR_NOT_SUPPORTED: Final = "org.bluez.Error.NotSupported"
ERROR_NOT_READY: Final = "org.bluez.Error.NotReady"
ERROR_DOES_NOT_EXIST: Final = "org.bluez.Error.DoesNotExist"
_DEFAULT_MESSAGES: Final = {
    ERROR_FAILED: "Software caused connection abort",
    ERROR_IN_PROGRESS: "Operation already in progress",
}

# dbus-fast 5.2 writes to its non-blocking socket directly while its queue is empty and treats
# EAGAIN as fatal (dbus_fast/aio/message_bus.py _MessageWriter.write_callback -> _finalize), so a
# long run of signals without yielding kills the connection. Senders of many notifications wait for
# a bus round trip (FakeBlueZ.drain) after this many, which empties the socket buffer (~200 kB).
_DRAIN_EVERY: Final = 64

# Signatures dbus_fast.annotations has no alias for.
StrList = Annotated[list[str], DBusSignature("as")]
ManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
# A method without out-arguments: dbus-fast reads ``-> None`` as a missing signature.
NoReturnValue = Annotated[None, DBusSignature("")]

WriteHook = Callable[["FakeDevice", "FakeCharacteristic", bytes, bool], None]
"""Called on every accepted WriteValue: ``(device, characteristic, data, with_response)``.

May raise :class:`dbus_fast.DBusError` to answer the write with an error. Notifications sent from
the hook go out after the write's reply, as a real peripheral's answer would.
"""

ReadHook = Callable[["FakeDevice", "FakeCharacteristic"], bytes]
"""Called on ReadValue; returns the value (default: the characteristic's current ``value``)."""


def _device_path(adapter_path: str, address: str) -> str:
    return f"{adapter_path}/dev_{address.upper().replace(':', '_')}"


class FakeCharacteristic:
    """One GATT characteristic of a :class:`FakeDevice`.

    ``flags`` are BlueZ's strings (``read``, ``write``, ``write-without-response``, ``notify``,
    ``indicate``, …). ``writes`` records ``(data, with_response)`` of every accepted write.
    """

    def __init__(
        self,
        uuid: str,
        flags: Sequence[str] = ("read",),
        *,
        value: bytes = b"",
        on_write: WriteHook | None = None,
        on_read: ReadHook | None = None,
    ) -> None:
        self.uuid = uuid.lower()
        self.flags = list(flags)
        self.value = value
        self.on_write = on_write
        self.on_read = on_read
        self.notifying = False
        self.writes: list[tuple[bytes, bool]] = []
        self.handle = 0
        self.path = ""
        self.service_path = ""
        self._interface: _GattCharacteristic1 | None = None

    @property
    def can_notify(self) -> bool:
        """True if the characteristic notifies or indicates (and so has a CCCD)."""
        return "notify" in self.flags or "indicate" in self.flags


class FakeDevice:
    """A peripheral: advertising data, a GATT table and the fault switches.

    ``services`` maps a service UUID to its characteristics, in handle order. Handles are assigned
    like a real GATT table (service, characteristic declaration + value, CCCD), starting at 0x0010.
    """

    def __init__(
        self,
        address: str,
        name: str,
        services: Mapping[str, Sequence[FakeCharacteristic]],
        *,
        rssi: int = -60,
        address_type: str = "public",
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        advertised_uuids: Sequence[str] | None = None,
        connect_delay_s: float = 0.0,
        mtu: int = 247,
    ) -> None:
        self.address = address.upper()
        self.name = name
        self.rssi = rssi
        self.address_type = address_type
        self.manufacturer_data = dict(manufacturer_data or {})
        self.service_data = dict(service_data or {})
        self.advertised_uuids = [u.lower() for u in (advertised_uuids if advertised_uuids is not None else services)]
        self.connect_delay_s = connect_delay_s
        self.mtu = mtu
        self.services = {uuid.lower(): list(chars) for uuid, chars in services.items()}

        self.connected = False
        self.services_resolved = False
        self.paired = False
        self.trusted = False
        self.stalled = False
        #: Method calls received, e.g. ``("Connect", "")`` or ``("StartNotify", char_uuid)``.
        self.calls: list[tuple[str, str]] = []
        #: Notifications put on the bus / swallowed (not connected, not subscribed or stalled).
        self.notifications_sent = 0
        self.notifications_dropped = 0

        self.path = ""
        self._server: FakeBlueZ | None = None
        self._interface: _Device1 | None = None
        self._gatt_interfaces: list[tuple[str, ServiceInterface]] = []
        self._refusals: deque[tuple[str, str]] = deque()
        self._connecting = False
        self._held: list[tuple[FakeCharacteristic, bytes]] | None = None
        self._deferred: list[tuple[FakeCharacteristic, bytes]] | None = None
        self._changed = asyncio.Event()
        self._assign_handles()

    def _assign_handles(self) -> None:
        handle = itertools.count(0x0010)
        self._service_handles: dict[str, int] = {}
        for service_uuid, chars in self.services.items():
            self._service_handles[service_uuid] = next(handle)
            for char in chars:
                char.handle = next(handle)
                next(handle)  # the value handle follows the declaration
                if char.can_notify:
                    next(handle)  # CCCD

    # ---- lookup -------------------------------------------------------------------------------

    def char(self, uuid: str) -> FakeCharacteristic:
        """The characteristic with ``uuid`` (first match over all services)."""
        wanted = uuid.lower()
        for chars in self.services.values():
            for char in chars:
                if char.uuid == wanted:
                    return char
        raise KeyError(f"{self.address} has no characteristic {uuid}")

    @property
    def alias(self) -> str:
        """BlueZ's Alias: the name, or the address with dashes when there is none."""
        return self.name or self.address.replace(":", "-")

    @property
    def advertising(self) -> bool:
        """A connected peripheral stops advertising; bluetoothd then stops RSSI updates."""
        return not self.connected

    # ---- waiting ------------------------------------------------------------------------------

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds after some state change of this device."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_subscribed(self, char_uuid: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the client has called StartNotify on ``char_uuid``."""
        char = self.char(char_uuid)
        await self.wait_until(lambda: char.notifying, timeout)

    # ---- notifications ------------------------------------------------------------------------

    def notify(self, char_uuid: str, payload: bytes) -> bool:
        """Send one notification; False (and counted as dropped) if nobody can receive it."""
        char = self.char(char_uuid)
        if not (self.connected and char.notifying and char._interface is not None) or self.stalled:
            self.notifications_dropped += 1
            return False
        if self._held is not None:
            self._held.append((char, payload))
        elif self._deferred is not None:
            self._deferred.append((char, payload))
        else:
            self._emit_value(char, payload)
        return True

    def _emit_value(self, char: FakeCharacteristic, payload: bytes) -> None:
        # bleak delivers a notification when PropertiesChanged carries "Value" for a characteristic
        # it has a callback for (bleak/backends/bluezdbus/manager.py BlueZManager._parse_msg).
        char.value = payload
        if char._interface is not None and self.connected:
            char._interface.emit_properties_changed({"Value": payload})
            self.notifications_sent += 1
        else:
            self.notifications_dropped += 1

    async def stream(self, char_uuid: str, payloads: Iterable[bytes], rate_hz: float) -> int:
        """Notify ``payloads`` at ``rate_hz`` on an absolute schedule (no drift); return how many went out."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for index, payload in enumerate(payloads):
            delay = start + index / rate_hz - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif index % _DRAIN_EVERY == _DRAIN_EVERY - 1:
                await self._drain()
            sent += self.notify(char_uuid, payload)
        return sent

    async def _drain(self) -> None:
        if self._server is not None:
            await self._server.drain()

    def hold(self) -> None:
        """Burst mode: queue notifications instead of sending them, until :meth:`release`."""
        if self._held is None:
            self._held = []

    async def release(self) -> int:
        """Send every held notification back to back (one burst); return how many.

        Between windows of 64 signals the fake waits for one bus round trip (see ``_DRAIN_EVERY``);
        bleak still receives them back to back, faster than any BLE link delivers.
        """
        held, self._held = self._held or [], None
        for index, (char, payload) in enumerate(held):
            if index % _DRAIN_EVERY == _DRAIN_EVERY - 1:
                await self._drain()
            if char.notifying and not self.stalled and self.connected:
                self._emit_value(char, payload)
            else:
                self.notifications_dropped += 1
        return len(held)

    # ---- faults -------------------------------------------------------------------------------

    def refuse_connects(self, count: int = 1, error: str = ERROR_FAILED, message: str | None = None) -> None:
        """Answer the next ``count`` Connect calls with ``error`` (e.g. :data:`ERROR_IN_PROGRESS`)."""
        text = message if message is not None else _DEFAULT_MESSAGES.get(error, "Failed")
        self._refusals.extend([(error, text)] * count)

    def drop_link(self) -> None:
        """The link is lost (supervision timeout): Connected and ServicesResolved go False, GATT goes."""
        self._disconnect(reason="link lost")

    def connect_orphaned(self) -> None:
        """Connected with no client, as bluetoothd leaves the link of a client that was killed
        (bluez/bluez#89): Connected and ServicesResolved True, GATT exported, nobody subscribed,
        no advertising."""
        for chars in self.services.values():
            for char in chars:
                char.notifying = False
        self._connect_done()

    def stall(self) -> None:
        """Keep the link but stop delivering notifications (firmware hang, RF deaf spot)."""
        self.stalled = True
        self._touch()

    def unstall(self) -> None:
        """Deliver notifications again after :meth:`stall`."""
        self.stalled = False
        self._touch()

    # ---- state transitions (called by the D-Bus interfaces) -----------------------------------

    def _connect_done(self) -> None:
        if self._interface is None or self._server is None:
            return
        self.connected = True
        self._interface.emit_properties_changed({"Connected": True})
        self._server._export_gatt(self)
        self.services_resolved = True
        self._interface.emit_properties_changed({"ServicesResolved": True})
        self._touch()

    def _disconnect(self, reason: str) -> None:
        if not self.connected:
            return
        _LOGGER.debug("%s disconnected: %s", self.address, reason)
        self.connected = False
        self.services_resolved = False
        for chars in self.services.values():
            for char in chars:
                char.notifying = False
        self._held = None
        if self._interface is not None:
            # one PropertiesChanged, as bluetoothd's batched property emission sends it
            self._interface.emit_properties_changed({"ServicesResolved": False, "Connected": False})
        if self._server is not None:
            self._server._unexport_gatt(self)
        self._touch()

    def _forget_connection(self) -> None:
        """bluetoothd died: state is gone without a signal."""
        self.connected = False
        self.services_resolved = False
        self._connecting = False
        for chars in self.services.values():
            for char in chars:
                char.notifying = False
                char._interface = None
        self._held = None
        self._interface = None
        self._gatt_interfaces = []
        self._touch()

    def _flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred or [], None
        for char, payload in deferred:
            if char.notifying:
                self._emit_value(char, payload)


class FakeBlueZ:
    """The fake bluetoothd: owns ``org.bluez`` on the (private) system bus.

    Use as ``async with FakeBlueZ() as bluez:`` or ``await start()`` / ``await stop()``. With
    ``bus_address=None`` it connects to ``DBUS_SYSTEM_BUS_ADDRESS``, like bleak.
    ``serialize_connects`` makes Connect answer ``InProgress`` while another device's Connect is
    pending, as BlueZ does for parallel LE connects.
    """

    def __init__(
        self,
        *,
        bus_address: str | None = None,
        adapter: str = "hci0",
        adapter_address: str = "00:1A:7D:DA:71:13",
        rssi_interval_s: float = 0.1,
        serialize_connects: bool = True,
    ) -> None:
        self.bus_address = bus_address
        self.adapter_path = f"/org/bluez/{adapter}"
        self.adapter_address = adapter_address
        self.rssi_interval_s = rssi_interval_s
        self.serialize_connects = serialize_connects
        self.discovering = False
        self.discovery_filter: dict[str, Any] = {}
        #: Every SetDiscoveryFilter argument, in order (bleak resets the filter to {} after a scan).
        self.discovery_filters: list[dict[str, Any]] = []
        self.devices: dict[str, FakeDevice] = {}
        self._bus: MessageBus | None = None
        self._adapter: _Adapter1 | None = None
        self._rssi_task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def present(self) -> bool:
        """True while bluetoothd is on the bus (between start/come_back and vanish/stop)."""
        return self._bus is not None

    async def start(self) -> None:
        """Connect, export the adapter and the devices, then own ``org.bluez``."""
        if self._bus is not None:
            raise RuntimeError("fake BlueZ already running")
        if self.bus_address is None:
            bus = MessageBus(bus_type=BusType.SYSTEM)
        else:
            bus = MessageBus(bus_address=self.bus_address)
        await bus.connect()
        self._bus = bus
        self._adapter = _Adapter1(self)
        bus.export(self.adapter_path, self._adapter)
        for device in self.devices.values():
            self._export_device(device)
        reply = await bus.request_name(BLUEZ_SERVICE)
        if reply is not RequestNameReply.PRIMARY_OWNER:
            raise RuntimeError(f"could not own {BLUEZ_SERVICE}: {reply}")

    async def stop(self) -> None:
        """Disconnect from the bus (idempotent)."""
        await self._close_bus()

    async def drain(self) -> None:
        """Wait until dbus-daemon has read every signal sent so far (a round trip to the bus driver)."""
        if self._bus is not None:
            await self._bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="GetId",
                )
            )

    async def vanish(self) -> None:
        """bluetoothd dies: its connection closes, every object vanishes without a signal.

        No PropertiesChanged, no InterfacesRemoved, so bleak fires no disconnected callback and
        keeps reporting ``is_connected``; only NameOwnerChanged for ``org.bluez`` is broadcast.
        """
        await self._close_bus()
        for device in self.devices.values():
            device._forget_connection()

    async def come_back(self) -> None:
        """bluetoothd restarts: adapter and known devices reappear (InterfacesAdded), all disconnected."""
        for device in self.devices.values():
            device._forget_connection()
        await self.start()

    async def _close_bus(self) -> None:
        task, self._rssi_task = self._rssi_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        bus, self._bus = self._bus, None
        self.discovering = False
        self._adapter = None
        if bus is not None:
            bus.disconnect()
            # a bus that already died (daemon gone, write error) re-raises its error here
            with contextlib.suppress(Exception):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    # ---- devices ------------------------------------------------------------------------------

    def add_device(self, device: FakeDevice) -> FakeDevice:
        """Make ``device`` known to the adapter (Device1 appears at once, as a cached device does)."""
        device._server = self
        device.path = _device_path(self.adapter_path, device.address)
        self.devices[device.address] = device
        if self._bus is not None:
            self._export_device(device)
        return device

    def remove_device(self, address: str) -> None:
        """Forget a device (like ``RemoveDevice``): disconnect it, then its objects are removed."""
        device = self.devices.pop(address.upper())
        device._disconnect(reason="removed")
        if self._bus is not None and device._interface is not None:
            self._bus.unexport(device.path)
        device._interface = None

    def _export_device(self, device: FakeDevice) -> None:
        assert self._bus is not None  # callers check
        device._interface = _Device1(device, self.adapter_path)
        self._bus.export(device.path, device._interface)

    def _export_gatt(self, device: FakeDevice) -> None:
        if self._bus is None:
            return
        exported: list[tuple[str, ServiceInterface]] = []
        for service_uuid, chars in device.services.items():
            service_path = f"{device.path}/service{device._service_handles[service_uuid]:04x}"
            exported.append((service_path, _GattService1(service_uuid, device.path)))
            for char in chars:
                char.path = f"{service_path}/char{char.handle:04x}"
                char.service_path = service_path
                char._interface = _GattCharacteristic1(device, char)
                exported.append((char.path, char._interface))
                if char.can_notify:
                    exported.append((f"{char.path}/desc{char.handle + 2:04x}", _GattDescriptor1(device, char)))
        for path, interface in exported:
            self._bus.export(path, interface)
        device._gatt_interfaces = exported

    def _unexport_gatt(self, device: FakeDevice) -> None:
        exported, device._gatt_interfaces = device._gatt_interfaces, []
        for chars in device.services.values():
            for char in chars:
                char._interface = None
        if self._bus is None:
            return
        for path, interface in reversed(exported):
            self._bus.unexport(path, interface)

    # ---- discovery ----------------------------------------------------------------------------

    def _set_discovering(self, discovering: bool) -> None:
        self.discovering = discovering
        if self._adapter is not None:
            self._adapter.emit_properties_changed({"Discovering": discovering})
        if discovering and self._rssi_task is None:
            self._rssi_task = asyncio.get_running_loop().create_task(self._advertise(), name="fakebluez-rssi")
        elif not discovering and self._rssi_task is not None:
            self._rssi_task.cancel()
            self._rssi_task = None

    async def _advertise(self) -> None:
        # bleak reports a device only when its properties change during a scan (manager.py
        # _parse_msg runs the advertisement callbacks on InterfacesAdded/PropertiesChanged of
        # Device1), so every advertising device's RSSI wiggles by 1 dB each interval.
        for tick in itertools.count():
            for device in list(self.devices.values()):
                if device.advertising and device._interface is not None:
                    device._interface.emit_properties_changed({"RSSI": device.rssi - tick % 2})
            await asyncio.sleep(self.rssi_interval_s)

    def _connect_slot_busy(self, device: FakeDevice) -> bool:
        return self.serialize_connects and any(d._connecting for d in self.devices.values() if d is not device)


# ---- D-Bus interfaces ---------------------------------------------------------------------------
# Thin views over the models above. Property and method names are BlueZ's; the Python names are
# snake_case (dbus-fast's ``name=`` maps them).


class _Adapter1(ServiceInterface):
    def __init__(self, server: FakeBlueZ) -> None:
        super().__init__("org.bluez.Adapter1")
        self._server = server

    @dbus_property(PropertyAccess.READ, name="Address")
    def address(self) -> DBusStr:
        return self._server.adapter_address

    @dbus_property(PropertyAccess.READ, name="AddressType")
    def address_type(self) -> DBusStr:
        return "public"

    @dbus_property(PropertyAccess.READ, name="Name")
    def name(self) -> DBusStr:
        return "fakebluez"

    @dbus_property(PropertyAccess.READ, name="Alias")
    def alias(self) -> DBusStr:
        return "fakebluez"

    @dbus_property(PropertyAccess.READ, name="Class")
    def class_(self) -> DBusUInt32:
        return 0

    @dbus_property(PropertyAccess.READ, name="Powered")
    def powered(self) -> DBusBool:
        return True

    @dbus_property(PropertyAccess.READ, name="Discoverable")
    def discoverable(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ, name="Pairable")
    def pairable(self) -> DBusBool:
        return True

    @dbus_property(PropertyAccess.READ, name="Discovering")
    def discovering(self) -> DBusBool:
        return self._server.discovering

    @dbus_property(PropertyAccess.READ, name="UUIDs")
    def uuids(self) -> StrList:
        return []

    @dbus_property(PropertyAccess.READ, name="Roles")
    def roles(self) -> StrList:
        # bleak's get_default_adapter only considers adapters with the "central" role
        return ["central", "peripheral"]

    @dbus_method(name="StartDiscovery")
    def start_discovery(self) -> NoReturnValue:
        if not self._server.discovering:
            self._server._set_discovering(True)

    @dbus_method(name="StopDiscovery")
    def stop_discovery(self) -> NoReturnValue:
        if not self._server.discovering:
            raise DBusError(ERROR_NOT_READY, "No discovery started")
        self._server._set_discovering(False)

    @dbus_method(name="SetDiscoveryFilter")
    def set_discovery_filter(self, properties: DBusDict) -> NoReturnValue:
        self._server.discovery_filter = {key: variant.value for key, variant in properties.items()}
        self._server.discovery_filters.append(self._server.discovery_filter)

    @dbus_method(name="GetDiscoveryFilters")
    def get_discovery_filters(self) -> StrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"]

    @dbus_method(name="RemoveDevice")
    def remove_device(self, device: DBusObjectPath) -> NoReturnValue:
        for candidate in self._server.devices.values():
            if candidate.path == device:
                self._server.remove_device(candidate.address)
                return
        raise DBusError(ERROR_DOES_NOT_EXIST, "Does Not Exist")


class _Device1(ServiceInterface):
    def __init__(self, device: FakeDevice, adapter_path: str) -> None:
        super().__init__("org.bluez.Device1")
        self._device = device
        self._adapter_path = adapter_path

    @dbus_property(PropertyAccess.READ, name="Address")
    def address(self) -> DBusStr:
        return self._device.address

    @dbus_property(PropertyAccess.READ, name="AddressType")
    def address_type(self) -> DBusStr:
        return self._device.address_type

    @dbus_property(PropertyAccess.READ, name="Name")
    def name(self) -> DBusStr:
        return self._device.name

    @dbus_property(PropertyAccess.READ, name="Alias")
    def alias(self) -> DBusStr:
        return self._device.alias

    @dbus_property(PropertyAccess.READ, name="Adapter")
    def adapter(self) -> DBusObjectPath:
        return self._adapter_path

    @dbus_property(PropertyAccess.READ, name="RSSI")
    def rssi(self) -> DBusInt16:
        return self._device.rssi

    @dbus_property(PropertyAccess.READ, name="UUIDs")
    def uuids(self) -> StrList:
        return self._device.advertised_uuids

    @dbus_property(PropertyAccess.READ, name="ServiceData")
    def service_data(self) -> DBusDict:
        return {uuid: Variant("ay", data) for uuid, data in self._device.service_data.items()}

    @dbus_property(PropertyAccess.READ, name="ManufacturerData")
    def manufacturer_data(self) -> ManufacturerData:
        return {company: Variant("ay", data) for company, data in self._device.manufacturer_data.items()}

    @dbus_property(PropertyAccess.READ, name="Connected")
    def connected(self) -> DBusBool:
        return self._device.connected

    @dbus_property(PropertyAccess.READ, name="ServicesResolved")
    def services_resolved(self) -> DBusBool:
        return self._device.services_resolved

    @dbus_property(PropertyAccess.READ, name="Paired")
    def paired(self) -> DBusBool:
        return self._device.paired

    @dbus_property(PropertyAccess.READ, name="Bonded")
    def bonded(self) -> DBusBool:
        return self._device.paired

    @dbus_property(PropertyAccess.READWRITE, name="Trusted")
    def trusted(self) -> DBusBool:
        return self._device.trusted

    @trusted.setter  # type: ignore[no-redef]
    def trusted(self, value: DBusBool) -> None:
        self._device.trusted = value

    @dbus_property(PropertyAccess.READ, name="Blocked")
    def blocked(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ, name="LegacyPairing")
    def legacy_pairing(self) -> DBusBool:
        return False

    @dbus_method(name="Connect")
    async def connect(self) -> NoReturnValue:
        device = self._device
        device.calls.append(("Connect", ""))
        server = device._server
        if device.connected:
            raise DBusError(ERROR_ALREADY_CONNECTED, "Already Connected")
        if device._connecting or (server is not None and server._connect_slot_busy(device)):
            raise DBusError(ERROR_IN_PROGRESS, "In Progress")
        if device._refusals:
            error, message = device._refusals.popleft()
            raise DBusError(error, message)
        device._connecting = True
        device._touch()
        try:
            if device.connect_delay_s > 0:
                await asyncio.sleep(device.connect_delay_s)
        finally:
            device._connecting = False
        device._connect_done()

    @dbus_method(name="Disconnect")
    def disconnect(self) -> NoReturnValue:
        # bluetoothd answers at once when there is no link (src/device.c dev_disconnect)
        self._device.calls.append(("Disconnect", ""))
        self._device._disconnect(reason="Disconnect called")

    @dbus_method(name="Pair")
    def pair(self) -> NoReturnValue:
        self._device.calls.append(("Pair", ""))
        if not self._device.paired:
            self._device.paired = True
            self.emit_properties_changed({"Paired": True, "Bonded": True})


class _GattService1(ServiceInterface):
    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__("org.bluez.GattService1")
        self._uuid = uuid
        self._device_path = device_path

    @dbus_property(PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return self._uuid

    @dbus_property(PropertyAccess.READ, name="Primary")
    def primary(self) -> DBusBool:
        return True

    @dbus_property(PropertyAccess.READ, name="Device")
    def device(self) -> DBusObjectPath:
        return self._device_path

    @dbus_property(PropertyAccess.READ, name="Includes")
    def includes(self) -> Annotated[list[str], DBusSignature("ao")]:
        return []


class _GattCharacteristic1(ServiceInterface):
    def __init__(self, device: FakeDevice, char: FakeCharacteristic) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self._device = device
        self._char = char

    @dbus_property(PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return self._char.uuid

    @dbus_property(PropertyAccess.READ, name="Service")
    def service(self) -> DBusObjectPath:
        return self._char.service_path

    @dbus_property(PropertyAccess.READ, name="Value")
    def value(self) -> DBusBytes:
        return self._char.value

    @dbus_property(PropertyAccess.READ, name="Notifying")
    def notifying(self) -> DBusBool:
        return self._char.notifying

    @dbus_property(PropertyAccess.READ, name="Flags")
    def flags(self) -> StrList:
        return self._char.flags

    @dbus_property(PropertyAccess.READ, name="MTU")
    def mtu(self) -> DBusUInt16:
        return self._device.mtu

    # No NotifyAcquired/WriteAcquired properties: bleak then never tries AcquireNotify
    # (client.py BleakClientBlueZDBus.start_notify checks for "NotifyAcquired").

    @dbus_method(name="ReadValue")
    def read_value(self, options: DBusDict) -> DBusBytes:
        char = self._char
        self._device.calls.append(("ReadValue", char.uuid))
        if "read" not in char.flags:
            raise DBusError(ERROR_NOT_PERMITTED, "Read not permitted")
        if char.on_read is not None:
            char.value = char.on_read(self._device, char)
        # bluetoothd stores what it read in Value and emits PropertiesChanged, so a read of a
        # characteristic the client is subscribed to also arrives as a notification in bleak.
        self.emit_properties_changed({"Value": char.value})
        return char.value

    @dbus_method(name="WriteValue")
    def write_value(self, value: DBusBytes, options: DBusDict) -> NoReturnValue:
        char = self._char
        device = self._device
        write_type = options["type"].value if "type" in options else "request"
        device.calls.append(("WriteValue", char.uuid))
        needed = "write-without-response" if write_type == "command" else "write"
        if needed not in char.flags:
            raise DBusError(ERROR_NOT_PERMITTED, "Write not permitted")
        with_response = write_type != "command"
        data = bytes(value)
        char.writes.append((data, with_response))
        if char.on_write is None:
            char.value = data
            return
        device._deferred = []
        try:
            char.on_write(device, char, data, with_response)
        finally:
            if device._deferred:
                asyncio.get_running_loop().call_soon(device._flush_deferred)
            else:
                device._deferred = None

    @dbus_method(name="StartNotify")
    def start_notify(self) -> NoReturnValue:
        char = self._char
        self._device.calls.append(("StartNotify", char.uuid))
        if not char.can_notify:
            raise DBusError(ERROR_NOT_SUPPORTED, "Operation is not supported")
        if not char.notifying:
            char.notifying = True
            self.emit_properties_changed({"Notifying": True})
            self._device._touch()

    @dbus_method(name="StopNotify")
    def stop_notify(self) -> NoReturnValue:
        char = self._char
        self._device.calls.append(("StopNotify", char.uuid))
        if char.notifying:
            char.notifying = False
            self.emit_properties_changed({"Notifying": False})
            self._device._touch()

    @dbus_method(name="AcquireNotify")
    def acquire_notify(self, options: DBusDict) -> Annotated[tuple[int, int], DBusSignature("hq")]:
        raise DBusError(ERROR_NOT_SUPPORTED, "Operation is not supported")

    @dbus_method(name="AcquireWrite")
    def acquire_write(self, options: DBusDict) -> Annotated[tuple[int, int], DBusSignature("hq")]:
        raise DBusError(ERROR_NOT_SUPPORTED, "Operation is not supported")


class _GattDescriptor1(ServiceInterface):
    """The Client Characteristic Configuration descriptor; bluetoothd owns it, clients may only read."""

    def __init__(self, device: FakeDevice, char: FakeCharacteristic) -> None:
        super().__init__("org.bluez.GattDescriptor1")
        self._device = device
        self._char = char

    def _cccd(self) -> bytes:
        if not self._char.notifying:
            return b"\x00\x00"
        return b"\x01\x00" if "notify" in self._char.flags else b"\x02\x00"

    @dbus_property(PropertyAccess.READ, name="UUID")
    def uuid(self) -> DBusStr:
        return CCCD_UUID

    @dbus_property(PropertyAccess.READ, name="Characteristic")
    def characteristic(self) -> DBusObjectPath:
        return self._char.path

    @dbus_property(PropertyAccess.READ, name="Value")
    def value(self) -> DBusBytes:
        return self._cccd()

    @dbus_property(PropertyAccess.READ, name="Flags")
    def flags(self) -> StrList:
        return ["read"]

    @dbus_method(name="ReadValue")
    def read_value(self, options: DBusDict) -> DBusBytes:
        return self._cccd()

    @dbus_method(name="WriteValue")
    def write_value(self, value: DBusBytes, options: DBusDict) -> NoReturnValue:
        raise DBusError(ERROR_NOT_PERMITTED, "Write not permitted")
