"""BLE source: up to three sensors over bleak, decoded by their firmware profiles (DESIGN §2).

The only module that imports bleak. One :class:`SensorLink` per configured sensor, all under
the source's TaskGroup; :class:`BleSource` is an async iterable of :class:`ImuBatch` like the
simulator.

Per link, for ever (until cancelled):

1. **Find** the device by address or advertised name: among the devices BlueZ already holds a
   link to (a killed process's links survive it, bluez/bluez#89), else by a scan (``BleakScanner``,
   ``scan_timeout_s``).
   One scan for every link in the process (:class:`_SharedScanner`): BlueZ keeps one discovery
   session per D-Bus client, so links cannot scan side by side, and taking turns would make every
   link wait behind an absent sensor's whole scan timeout.
2. **Connect** through ``bleak_retry_connector.establish_connection``, one link at a time in the
   process (BlueZ answers ``InProgress`` to parallel connects).
3. **Start**: subscribe to every notifying characteristic of the profile (data first; a standard
   Battery Level characteristic is read, not subscribed), then
   write the profile's ``configure`` and ``start`` sequences (Movesense and MetaWear forget
   their subscriptions on disconnect, so this runs after every connect); a step marked
   ``response`` waits up to ``response_timeout_s`` for a reply, which the decoder reads (e.g.
   Polar's start response with its conversion factor).
4. **Stream**: the notification callback only stamps the arrival time and ``put_nowait`` s the
   bytes into the link's bounded queue (``notify_queue_max``; when full the notification is
   dropped and counted in ``dropped`` — the counters then show the gap). The link's consumer
   decodes (a corrupt payload is counted and skipped), times the samples
   (:class:`~sensorhub.sources.timing.SampleTimer`: device time or counters → host time, gaps
   exact from counters), pairs separate acc/gyro streams
   (:class:`~sensorhub.sources.pairing.StreamPairer`), maps device axes into the sensor frame and
   hands an :class:`ImuBatch` per notification to the source's output queue (``output_queue_max``;
   back-pressure: the consumer waits, the notify queue absorbs).
5. **Supervise**: a disconnect (bleak's callback), a **stall** (no notification for
   ``stall_timeout_s``: a vanished bluetoothd fires no callback) or any BLE error ends the
   connection: stop, unsubscribe and disconnect are attempted (each bounded by a timeout;
   ``disconnect_timeout_s`` = 2 s, as bleak otherwise waits 10 s for a ``Connected=False`` that a
   restarted bluetoothd never sends), the timer is told (``reset``: the next counter is unwrapped
   against host time), and the link reconnects after a full-jitter backoff (0.5 s doubling to 30 s;
   back to 0.5 s after a connection that delivered data).
   A failing sensor never stops the others.

Battery: polled every ``battery_poll_s`` (a read of the standard characteristic, or the profile's
request whose reply the decoder reads). Buzz: :meth:`BleSource.request_buzz` queues (at most one
pending per sensor) the profile's ``buzz`` sequence for sensors that have a motor.

Host time: ``time.monotonic()`` minus the source's start, the clock the service runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib
import itertools
import logging
import math
import random
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from sensorhub.config import SensorConfig
from sensorhub.errors import ConfigError, DecodeError, SourceError
from sensorhub.model import FloatArray, ImuBatch, Placement
from sensorhub.mqtt.backoff import backoff_delay
from sensorhub.profiles.base import CommandStep, DeviceInfo, ImuSample, Profile
from sensorhub.profiles.registry import Registry, get_profile, make_decoder, match_advertisement, render_command
from sensorhub.sources.pairing import StreamPairer
from sensorhub.sources.timing import SampleTimer, TimingSpec

__all__ = ["BleSettings", "BleSource", "LinkState", "ScanResult", "scan"]

log = logging.getLogger(__name__)

_DISCONNECTED: Final = object()  # queued by bleak's disconnected callback
_BUZZ: Final = object()  # queued by request_buzz


@dataclass(frozen=True, slots=True)
class BleSettings:
    """Timeouts, bounds and retry policy of the BLE links (defaults suit a desk)."""

    scan_timeout_s: float = 10.0
    connect_attempts: int = 3  # per establish_connection call (bleak_retry_connector)
    response_timeout_s: float = 3.0
    command_timeout_s: float = 5.0  # each write / read / stop
    # bleak waits 10 s for a Connected=False that never comes after bluetoothd restarted (fakebluez README, fact 10)
    disconnect_timeout_s: float = 2.0
    stall_timeout_s: float = 2.0  # no notification this long while streaming → reconnect
    notify_queue_max: int = 2000  # notifications per sensor (≈ 80 s at 25 notifications/s)
    output_queue_max: int = 256  # batches from all sensors waiting for the service
    battery_poll_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    pair_max_lag_s: float = 1.0


@dataclass(slots=True)
class LinkState:
    """One sensor's link as the live view, MQTT and the store see it."""

    placement: Placement
    profile: str
    address: str | None = None
    name: str | None = None
    connected: bool = False
    rssi: int | None = None
    battery_pct: float | None = None
    notifications: int = 0
    samples: int = 0
    dropped: int = 0  # notifications dropped because the link's queue was full
    decode_errors: int = 0
    gaps: int = 0
    missing_samples: int = 0
    unpaired: int = 0  # acc samples without gyro (separate streams)
    reconnects: int = 0
    stalls: int = 0
    last_error: str = ""
    events: list[str] = field(default_factory=list)  # recent link events, newest last (≤ 20)

    def note(self, text: str) -> None:
        self.events.append(text)
        del self.events[:-20]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A nearby device that matches a profile."""

    name: str | None
    address: str
    rssi: int | None
    profiles: tuple[str, ...]


async def scan(timeout_s: float = 10.0, *, registry: Registry | None = None) -> list[ScanResult]:
    """Devices seen within ``timeout_s`` that match a firmware profile, strongest first."""
    try:
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
    except (BleakError, OSError) as exc:
        raise SourceError(
            f"cannot scan: {exc}", advice="is Bluetooth on and BlueZ running? see docs/sensors.md"
        ) from exc
    out = []
    for device, adv in found.values():
        name = adv.local_name or device.name
        profiles = match_advertisement(name, adv.service_uuids, registry)
        if profiles:
            out.append(ScanResult(name, device.address, adv.rssi, tuple(p.name for p in profiles)))
    out.sort(key=lambda r: -(r.rssi if r.rssi is not None else -999))
    return out


Wanted = Callable[[BLEDevice, AdvertisementData], bool]


class _SharedScanner:
    """One BlueZ discovery for every link on an event loop, running while any link looks for its sensor.

    BlueZ keeps one discovery session per D-Bus client and bleak one client per event loop, so
    links cannot scan side by side; taking turns would make every link wait behind a sensor that
    is absent (its whole scan timeout, 10 s). Instead each link registers what it wants and waits
    on its own timeout; every advertisement is checked against all of them. Advertisements seen
    in the last ``fresh_s`` answer a new request at once (bleak reports a device when its
    properties change, and a steady sensor's may not change again right away). The memory of
    advertisements holds one entry per device in range and is cleared when the scan stops.
    """

    fresh_s: Final = 2.0

    def __init__(self) -> None:
        self._wants: dict[int, tuple[Wanted, asyncio.Future[tuple[BLEDevice, AdvertisementData]]]] = {}
        self._seen: dict[str, tuple[float, BLEDevice, AdvertisementData]] = {}
        self._keys = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def find(self, wanted: Wanted, timeout_s: float) -> tuple[BLEDevice, AdvertisementData] | None:
        """The first device ``wanted`` accepts within ``timeout_s``, or None.

        Raises:
            BleakError: when BlueZ refuses to start discovery (no adapter, powered off).
        """
        now = time.monotonic()
        for seen_at, device, adv in list(self._seen.values()):
            if now - seen_at <= self.fresh_s and wanted(device, adv):
                return device, adv
        future: asyncio.Future[tuple[BLEDevice, AdvertisementData]] = asyncio.get_running_loop().create_future()
        key = next(self._keys)
        self._wants[key] = (wanted, future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ble-scan")
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return None
        finally:
            del self._wants[key]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a scanner error that came with the timeout is not logged
            self._changed.set()

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        self._seen[device.address] = (time.monotonic(), device, adv)
        for wanted, future in list(self._wants.values()):
            if not future.done() and wanted(device, adv):
                future.set_result((device, adv))

    async def _run(self) -> None:
        try:
            while self._wants:  # a link may ask again while the scanner stops
                async with BleakScanner(detection_callback=self._on_advertisement):
                    while self._wants:
                        self._changed.clear()
                        await self._changed.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # BleakError, a lost D-Bus: the waiting links see it and retry
            for _, future in self._wants.values():
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._seen.clear()


@dataclass
class _Adapter:
    """What every link of every source on one event loop shares: the scan and the connect lock."""

    scanner: _SharedScanner = field(default_factory=_SharedScanner)
    connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_ADAPTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Adapter] = weakref.WeakKeyDictionary()


def _adapter() -> _Adapter:
    """The running loop's :class:`_Adapter`.

    Scans and connects are per adapter in BlueZ, not per source; bleak keeps one BlueZ manager
    (one D-Bus client) per event loop, so these are per loop too.
    """
    loop = asyncio.get_running_loop()
    adapter = _ADAPTERS.get(loop)
    if adapter is None:
        adapter = _ADAPTERS[loop] = _Adapter()
    return adapter


_BLUEZ_QUERY_TIMEOUT_S: Final = 2.0


async def _connected_devices() -> list[BLEDevice]:
    """The devices BlueZ holds a link to, from its ObjectManager (``Device1.Connected``).

    One ``GetManagedObjects`` call on its own system-bus connection (the bus bleak uses,
    ``DBUS_SYSTEM_BUS_ADDRESS`` included); an empty list off Linux, without BlueZ, or when the
    call fails or takes longer than 2 s: the caller then scans as usual.
    """
    if sys.platform != "linux":
        return []
    from dbus_fast import BusType, Message, MessageType, unpack_variants
    from dbus_fast.aio import MessageBus

    bus: MessageBus | None = None
    try:
        async with asyncio.timeout(_BLUEZ_QUERY_TIMEOUT_S):
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            reply = await bus.call(
                Message(
                    destination="org.bluez",
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            )
    except Exception as exc:  # any failure of this lookup only means: scan as usual
        log.debug("BlueZ's connected devices not read: %s", exc)
        return []
    finally:
        if bus is not None:
            bus.disconnect()
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        return []
    found = []
    for path, interfaces in unpack_variants(reply.body[0]).items():
        props = interfaces.get("org.bluez.Device1")
        if props and props.get("Connected") and "Address" in props:
            found.append(
                BLEDevice(props["Address"], props.get("Name") or props.get("Alias"), {"path": path, "props": props})
            )
    return found


def timing_spec(profile: Profile, rate_hz: float) -> TimingSpec:
    """How a profile's samples are timed: its clock kind, and the counter/timestamp widths its
    decoder module declares (``COUNTER_BITS``, ``SAMPLES_PER_COUNT``, ``TIME_WRAP_S``)."""
    module = importlib.import_module(f"sensorhub.profiles.decoders.{profile.family}")
    return TimingSpec(
        kind=profile.clock,
        nominal_rate_hz=rate_hz,
        counter_bits=getattr(module, "COUNTER_BITS", None),
        samples_per_count=getattr(module, "SAMPLES_PER_COUNT", 1),
        time_wrap_s=getattr(module, "TIME_WRAP_S", None),
    )


def _axis_matrix(profile: Profile) -> FloatArray:
    """(3, 3) M with sensor = device @ M.T (profile axes: (device index, sign) per sensor axis)."""
    m = np.zeros((3, 3))
    for row, (index, sign) in enumerate(profile.axes):
        m[row, index] = sign
    return m


class _LinkLostError(Exception):
    """The connection ended (disconnect, stall); the link reconnects."""


class SensorLink:
    """One sensor: find, connect, start, stream, supervise, reconnect. See the module docstring."""

    def __init__(
        self,
        sensor: SensorConfig,
        profile: Profile,
        *,
        settings: BleSettings,
        output: asyncio.Queue[ImuBatch],
        t0: float,
        registry: Registry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sensor = sensor
        self.profile = profile
        self.settings = settings
        self.rate_hz = sensor.rate_hz or profile.default_rate_hz
        if self.rate_hz not in profile.rates_hz:
            options = ", ".join(f"{r:g}" for r in profile.rates_hz)
            raise ConfigError(
                f"{profile.name} cannot stream at {self.rate_hz:g} Hz",
                key=f"sensors[{sensor.placement.value}].rate_hz",
                advice=f"choose one of: {options}",
            )
        self.state = LinkState(sensor.placement, profile.name, sensor.address, sensor.name)
        self.sensor_id = sensor.address or sensor.name or sensor.placement.value
        self._output = output
        self._t0 = t0
        self._rng = rng or random.Random()
        self._decoder = make_decoder(profile, {"rate_hz": self.rate_hz}, registry=registry)
        spec = timing_spec(profile, self.rate_hz)
        self._timers = {"imu": SampleTimer(spec), "acc": SampleTimer(spec), "gyro": SampleTimer(spec)}
        self._pairer = StreamPairer(max_lag_s=settings.pair_max_lag_s)
        self._axes = _axis_matrix(profile).T
        self._queue: asyncio.Queue[tuple[float, bytes] | object] = asyncio.Queue(settings.notify_queue_max)
        self._replies: asyncio.Queue[bytes] = asyncio.Queue(64)
        self._buzz_pending = False
        self._streamed = False  # this session has delivered data (the backoff starts again after it)
        self._client: BleakClient | None = None

    # -- public -------------------------------------------------------------------------------

    def request_buzz(self) -> bool:
        """Buzz at the next chance (at most one pending); False when the sensor has no motor."""
        if not self.profile.has_motor or not self.state.connected:
            return False
        if not self._buzz_pending:
            try:
                self._queue.put_nowait(_BUZZ)
            except asyncio.QueueFull:
                return False
            self._buzz_pending = True
        return True

    async def run(self) -> None:
        """Keep the sensor streaming until cancelled."""
        attempt = 0
        while True:
            self._streamed = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (_LinkLostError, BleakError, TimeoutError, OSError, EOFError, SourceError) as exc:
                self._lost(exc)
            except Exception as exc:  # a bug in a profile's decoder or bleak: keep the other sensors going
                log.exception("%s: unexpected error", self.sensor.placement.value)
                self._lost(exc)
            if self._streamed:
                attempt = 0  # a session that streamed: start the backoff again
            delay = backoff_delay(
                attempt, base_s=self.settings.backoff_base_s, cap_s=self.settings.backoff_cap_s, rng=self._rng
            )
            attempt += 1
            await asyncio.sleep(delay)

    # -- one connection -------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        was = self.state.connected
        self.state.connected = False
        self.state.last_error = str(exc) or type(exc).__name__
        if was:
            self.state.reconnects += 1
        self.state.note(f"link lost: {self.state.last_error}")
        log.warning("%s: %s; reconnecting", self.sensor.placement.value, self.state.last_error)
        for timer in self._timers.values():
            timer.reset()
        self._pairer.reset()
        self._decoder.reset()

    async def _find(self) -> BLEDevice:
        held = await self._held_link()
        if held is not None:
            return held
        return await self._scan()

    async def _held_link(self) -> BLEDevice | None:
        """The sensor, when BlueZ already holds a link to it; None otherwise.

        bluetoothd keeps the links of a client that died (a ``kill -9``, a crash) until the sensor
        or the supervision timeout ends them (bluez/bluez#89). A connected sensor does not
        advertise, so a scan would not find it until then; bleak then skips ``Connect`` for a
        device that is already connected and the start sequence runs as after any connect.
        """
        for device in await _connected_devices():
            if self._matches(device.address, device.name or ""):
                log.info(
                    "%s: %s is already connected (a link left by an earlier process)",
                    self.sensor.placement.value,
                    device.address,
                )
                return device
        return None

    def _matches(self, address: str, name: str) -> bool:
        if self.sensor.address is not None:
            return address.upper() == self.sensor.address.upper()
        pattern = self.sensor.name or ""
        return name == pattern or fnmatch.fnmatchcase(name, pattern)

    async def _scan(self) -> BLEDevice:
        timeout = self.settings.scan_timeout_s

        def wanted(d: BLEDevice, adv: AdvertisementData) -> bool:
            ok = self._matches(d.address, adv.local_name or d.name or "")
            if ok:
                self.state.rssi = adv.rssi  # the signal strength when it was found
            return ok

        found = await _adapter().scanner.find(wanted, timeout)
        if found is None:
            what = self.sensor.address or f"named {self.sensor.name!r}"
            raise SourceError(f"sensor {what} not found within {timeout:g} s")
        return found[0]

    async def _session(self) -> None:
        device = await self._find()
        async with _adapter().connect_lock:
            client = await establish_connection(
                BleakClient,
                device,
                self.sensor.name or device.address,
                disconnected_callback=self._on_disconnect,
                max_attempts=self.settings.connect_attempts,
            )
        self._client = client
        self._drain_queue()
        try:
            self.state.address = device.address
            self.state.connected = True
            self.state.note("connected")
            log.info("%s: connected to %s", self.sensor.placement.value, device.address)
            await self._start(client)
            await self._stream(client)
        finally:
            self._client = None
            await self._close(client)

    def _on_disconnect(self, _client: BleakClient) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_DISCONNECTED)

    def _on_notify(self, _char: Any, data: bytearray) -> None:
        """bleak's callback: stamp and enqueue, nothing else."""
        try:
            self._queue.put_nowait((time.monotonic(), bytes(data)))
        except asyncio.QueueFull:
            self.state.dropped += 1

    def _on_reply(self, _char: Any, data: bytearray) -> None:
        try:
            self._replies.put_nowait(bytes(data))
        except asyncio.QueueFull:
            self.state.dropped += 1

    def _drain_queue(self) -> None:
        self._buzz_pending = False
        while not self._queue.empty():
            self._queue.get_nowait()
        while not self._replies.empty():
            self._replies.get_nowait()

    def _notifying_roles(self, client: BleakClient) -> list[tuple[str, str]]:
        """(role, uuid) of the profile's characteristics that notify or indicate, data first.

        A standard Battery Level characteristic is left out: it is read (``_poll_battery``), and its
        one-byte notifications are not the decoder's to parse.
        """
        out = []
        battery = self.profile.battery
        plain_battery = battery.char if battery is not None and battery.format == "uint8_percent" else None
        for role, uuid in self.profile.gatt.items():
            if role == plain_battery and role != "data":
                continue
            char = client.services.get_characteristic(uuid)
            if char is None:
                if role == "data":
                    raise SourceError(f"{self.profile.name}: the device has no data characteristic {uuid}")
                continue
            if {"notify", "indicate"} & set(char.properties):
                out.append((role, uuid))
        out.sort(key=lambda item: item[0] != "data")
        return out

    async def _start(self, client: BleakClient) -> None:
        timeout = self.settings.command_timeout_s
        for role, uuid in self._notifying_roles(client):
            callback = self._on_notify if role == "data" else self._on_reply
            async with asyncio.timeout(timeout):
                await client.start_notify(uuid, callback)
        for name in ("configure", "start"):
            for step in self.profile.commands.get(name, ()):
                await self._write(client, step)
        await self._poll_battery(client)

    async def _write(self, client: BleakClient, step: CommandStep, overrides: Mapping[str, Any] | None = None) -> None:
        data = render_command(self.profile, step, self.rate_hz, overrides or {})
        async with asyncio.timeout(self.settings.command_timeout_s):
            await client.write_gatt_char(self.profile.gatt[step.char], data, response=step.with_response)
        if step.response:
            try:
                async with asyncio.timeout(self.settings.response_timeout_s):
                    reply = await self._replies.get()
            except TimeoutError:
                log.warning("%s: no reply to %r", self.sensor.placement.value, step.meaning)
            else:
                self._handle_payload(reply, time.monotonic())
        if step.delay_s > 0:
            await asyncio.sleep(step.delay_s)

    async def _poll_battery(self, client: BleakClient) -> None:
        spec = self.profile.battery
        if spec is None:
            return
        try:
            if spec.format == "uint8_percent":
                async with asyncio.timeout(self.settings.command_timeout_s):
                    value = await client.read_gatt_char(self.profile.gatt[spec.char])
                if value:
                    self.state.battery_pct = float(min(100, value[0]))
            else:
                for step in spec.request:
                    await self._write(client, step)
        except (BleakError, TimeoutError) as exc:  # a missing battery level never ends a session
            log.info("%s: battery not read: %s", self.sensor.placement.value, exc)

    async def _stream(self, client: BleakClient) -> None:
        next_battery = time.monotonic() + self.settings.battery_poll_s
        while True:
            try:
                async with asyncio.timeout(self.settings.stall_timeout_s):
                    item = await self._queue.get()
            except TimeoutError:
                self.state.stalls += 1
                raise _LinkLostError(f"no data for {self.settings.stall_timeout_s:g} s (stalled)") from None
            if item is _DISCONNECTED:
                raise _LinkLostError("disconnected")
            if item is _BUZZ:
                self._buzz_pending = False
                await self._do_buzz(client)
                continue
            assert isinstance(item, tuple)
            arrival, payload = item
            self._streamed = True
            await self._emit(self._handle_payload(payload, arrival))
            while not self._replies.empty():
                await self._emit(self._handle_payload(self._replies.get_nowait(), time.monotonic()))
            if time.monotonic() >= next_battery:
                next_battery = time.monotonic() + self.settings.battery_poll_s
                await self._poll_battery(client)

    async def _do_buzz(self, client: BleakClient) -> None:
        try:
            for step in self.profile.commands.get("buzz", ()):
                await self._write(client, step)
            self.state.note("buzz")
        except (BleakError, TimeoutError) as exc:
            log.warning("%s: buzz failed: %s", self.sensor.placement.value, exc)

    def _handle_payload(self, payload: bytes, arrival: float) -> list[ImuBatch]:
        """Decode, time, pair and map one payload; corrupt ones are counted and skipped."""
        try:
            items = self._decoder.feed(payload)
        except DecodeError as exc:
            self.state.decode_errors += 1
            log.debug("%s: %s", self.sensor.placement.value, exc)
            return []
        self.state.notifications += 1
        host_arrival = arrival - self._t0
        both: list[ImuSample] = []
        acc_only: list[ImuSample] = []
        gyro_only: list[ImuSample] = []
        for item in items:
            if isinstance(item, DeviceInfo):
                self._info(item)
            elif item.acc_mps2 is not None and item.gyro_radps is not None:
                both.append(item)
            elif item.acc_mps2 is not None:
                acc_only.append(item)
            elif item.gyro_radps is not None:
                gyro_only.append(item)
        out = []
        if both:
            timed = self._time("imu", both, host_arrival)
            acc = np.array([s.acc_mps2 for s in both], dtype=np.float64)
            gyro = np.array([s.gyro_radps for s in both], dtype=np.float64)
            out.append(self._batch(timed[0], acc, gyro, timed[1]))
        for kind, samples in (("acc", acc_only), ("gyro", gyro_only)):
            if not samples:
                continue
            t, _ = self._time(kind, samples, host_arrival)
            values = np.array([s.acc_mps2 if kind == "acc" else s.gyro_radps for s in samples], dtype=np.float64)
            before = self._pairer.dropped
            pt, pa, pg = self._pairer.add_acc(t, values) if kind == "acc" else self._pairer.add_gyro(t, values)
            self.state.unpaired += self._pairer.dropped - before
            if len(pt):
                out.append(self._batch(pt, pa, pg, None))
        return out

    def _time(self, kind: str, samples: list[ImuSample], arrival: float) -> tuple[FloatArray, Any]:
        timer = self._timers[kind]
        timed = timer.process(samples, arrival)
        if kind != "gyro":  # separate streams lose the same samples: count the accelerometer's (the output's)
            for gap in timed.gaps:
                self.state.gaps += 1
                self.state.missing_samples += gap.missing
        return timed.host_t, timed.seq

    def _batch(self, t: FloatArray, acc: FloatArray, gyro: FloatArray, seq: Any) -> ImuBatch:
        self.state.samples += len(t)
        return ImuBatch(self.sensor_id, self.sensor.placement, t, acc @ self._axes, gyro @ self._axes, seq)

    def _info(self, info: DeviceInfo) -> None:
        if info.kind == "battery":
            percent = info.values.get("percent")
            if isinstance(percent, int | float) and math.isfinite(percent):
                self.state.battery_pct = float(percent)

    async def _emit(self, batches: list[ImuBatch]) -> None:
        for batch in batches:
            if len(batch):
                await self._output.put(batch)

    async def _close(self, client: BleakClient) -> None:
        """Stop streaming, unsubscribe and disconnect; each step bounded, failures only logged."""
        timeout = self.settings.command_timeout_s
        if client.is_connected:
            for step in self.profile.commands.get("stop", ()):
                with contextlib.suppress(BleakError, TimeoutError, OSError, EOFError):
                    await self._write(client, step)
            for _, uuid in self._safe_roles(client):
                with contextlib.suppress(BleakError, TimeoutError, OSError, EOFError, ValueError):
                    async with asyncio.timeout(timeout):
                        await client.stop_notify(uuid)
        with contextlib.suppress(BleakError, TimeoutError, OSError, EOFError):
            async with asyncio.timeout(self.settings.disconnect_timeout_s):
                await client.disconnect()

    def _safe_roles(self, client: BleakClient) -> list[tuple[str, str]]:
        try:
            return self._notifying_roles(client)
        except (BleakError, SourceError):
            return []


class BleSource:
    """Async iterable of :class:`ImuBatch` from the configured BLE sensors.

    Args:
        sensors: the configured sensors (placement, profile, address or name, rate).
        settings: timeouts and bounds.
        registry: profile registry (tests pass their own directory).
    """

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        *,
        settings: BleSettings | None = None,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not sensors:
            raise ConfigError("no sensors configured", key="sensors")
        self.settings = settings or BleSettings()
        self.t0 = clock()
        self._output: asyncio.Queue[ImuBatch] = asyncio.Queue(self.settings.output_queue_max)
        self.links = {
            s.placement: SensorLink(
                s,
                get_profile(s.profile, registry),
                settings=self.settings,
                output=self._output,
                t0=self.t0,
                registry=registry,
            )
            for s in sensors
        }

    def request_buzz(self, placement: Placement | None = None) -> int:
        """Ask the sensors with a motor (or the one at ``placement``) to buzz; returns how many will."""
        links = self.links.values() if placement is None else [self.links[placement]]
        return sum(link.request_buzz() for link in links)

    async def __aiter__(self) -> AsyncIterator[ImuBatch]:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(link.run(), name=f"ble-{placement.value}") for placement, link in self.links.items()
            ]
            try:
                while True:
                    yield await self._output.get()
            finally:
                for task in tasks:
                    task.cancel()
