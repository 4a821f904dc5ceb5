"""Firmware emulators on top of :class:`~fakebluez.bluez.FakeBlueZ`: what a real sensor does on the air.

Each :class:`DeviceEmulator` is one peripheral running one firmware profile:

- its GATT table is the profile's (UUIDs from the profile TOML through the registry, the flags the
  device page documents);
- it answers the profile's commands by parsing the bytes as the firmware would (the bytes
  ``render_command`` makes from the TOML), records every write (``FakeCharacteristic.writes``),
  and streams only when the real device does: the open profile after ``01``, MetaWear after the
  power-mode writes (and it forgets all of it on disconnect), Polar's ACC and GYRO each after its
  PMD start command (stopped on disconnect), WitMotion and Thingy:52 as soon as notifications on
  the data characteristic are on;
- it samples the :class:`~sensorhub.sim.wearer.SimulatedWearer`'s true signals (ideal sensors,
  nominal mounting, sensor frame; turned into the device's axes through the profile's ``[axes]``)
  on its own clock, ``drift_ppm`` (50 ppm) fast against the host's, and sends a notification when
  its last sample has been taken, paced on that absolute schedule;
- it packs the profile's packets with the encoders below: 4 samples per open-profile packet with
  counter and µs timestamp (starting 5 s before the uint32 µs clock wraps), one sample per Thingy
  notification, 3 packed samples per MetaWear acc and gyro notification, 13-sample PMD frames
  (delta-compressed, some raw ACC and float GYRO ones) per Polar stream, and WitMotion's 20-byte
  packets as a UART byte stream that is cut at a random place every ``split_every`` notifications
  (the tail goes out with the next one).

Every sample the device took is logged in :attr:`DeviceEmulator.log` (grid index, counter,
host time it was taken, sent or not), so a test can compare what the BLE source produced with
what went on the air — and what did not (a dropped link, a stall, a vanished bluetoothd, the
partial packet a restart discards).

Deviation from the open profile's reference firmware: a restart (``01``, or ``03`` while
streaming) continues on the device's sample grid (the next slot) instead of re-phasing the
schedule at ``micros()``, so every hole in device time is a whole number of sample periods and
the samples missing are countable exactly.

The encoders are test code written from the byte layouts in ``firmware_profiles/*.md``;
``tests/test_ble_encoders.py`` checks ``decode(encode(x)) == x`` within quantisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import numpy as np
from numpy.typing import NDArray

from fakebluez.bluez import FakeBlueZ, FakeCharacteristic, FakeDevice
from sensorhub.model import Placement
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Profile
from sensorhub.profiles.registry import Registry, get_profile
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig

__all__ = [
    "DeviceEmulator",
    "LoggedSample",
    "MetaMotionEmulator",
    "PolarEmulator",
    "SensorhubOpenEmulator",
    "Signals",
    "ThingyEmulator",
    "WitmotionEmulator",
    "emulator_for",
    "encode_metamotion",
    "encode_open_imu",
    "encode_open_status",
    "encode_pmd_reply",
    "encode_polar_frame",
    "encode_thingy_raw",
    "encode_witmotion_imu",
    "encode_witmotion_register",
    "lsb",
    "signals",
]

F64 = NDArray[np.float64]

#: The 16-bit Bluetooth base UUID.
BATTERY_LEVEL: Final = "00002a19-0000-1000-8000-00805f9b34fb"
_DRAIN_EVERY: Final = 32  # notifications sent back to back before waiting for a bus round trip


# ---- signals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signals:
    """True sensor-frame signals of one placement, one row per sample: acc m/s², gyro rad/s."""

    rate_hz: float
    acc_mps2: F64
    gyro_radps: F64

    def at(self, k: Sequence[int] | NDArray[np.int64]) -> tuple[F64, F64]:
        """(acc, gyro) of sample indices ``k`` (the recording repeats)."""
        index = np.asarray(k, dtype=np.int64) % len(self.acc_mps2)
        return self.acc_mps2[index], self.gyro_radps[index]


@functools.cache
def _wearer_signals(rate_hz: float, duration_s: float) -> dict[Placement, Signals]:
    wearer = SimulatedWearer(
        WearerConfig(
            scenario="desk_session",
            duration_s=duration_s,
            rate_hz=rate_hz,
            ideal_sensors=True,
            nominal_mounting=True,
        )
    )
    acc: dict[Placement, list[F64]] = {p: [] for p in wearer.imus}
    gyro: dict[Placement, list[F64]] = {p: [] for p in wearer.imus}
    for chunk in wearer.notifications():
        for placement, note in chunk:
            acc[placement].append(note.acc_mps2)
            gyro[placement].append(note.gyro_radps)
    return {p: Signals(rate_hz, np.concatenate(acc[p]), np.concatenate(gyro[p])) for p in wearer.imus}


def signals(placement: Placement, rate_hz: float = 100.0, duration_s: float = 60.0) -> Signals:
    """The simulated wearer's desk session at one placement (made once per process)."""
    return _wearer_signals(float(rate_hz), float(duration_s))[placement]


# ---- encoders (test code, from firmware_profiles/*.md) -----------------------------------------


def _counts(x: F64, lsb_value: float) -> NDArray[np.int64]:
    """Round to the nearest int16 count of ``lsb_value``, saturating as the firmwares do."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / lsb_value), -32768, 32767).astype(np.int64)


#: Open profile range codes (sensorhub_open.md §3).
_OPEN_ACC_G: Final = (2, 4, 8, 16, 32)
_OPEN_GYRO_DPS: Final = (125, 250, 500, 1000, 2000, 4000)


def lsb(profile: str, ranges: int = 0x43) -> tuple[float, float]:
    """One count of (acc m/s², gyro rad/s) on the wire for a profile (open profile: its range byte)."""
    if profile == "sensorhub_open":
        return (
            _OPEN_ACC_G[ranges & 0x0F] * G_MPS2 / 32768.0,
            _OPEN_GYRO_DPS[ranges >> 4] * DEG_TO_RAD / 32768.0,
        )
    if profile == "witmotion_bwt901blecl":
        return 16.0 * G_MPS2 / 32768.0, 2000.0 * DEG_TO_RAD / 32768.0
    if profile == "thingy52":
        return G_MPS2 / 1024.0, DEG_TO_RAD / 32.0
    if profile == "metamotion":
        return G_MPS2 / 4096.0, DEG_TO_RAD / 65.6
    if profile == "polar_verity_sense":
        return G_MPS2 / 1000.0, POLAR_GYRO_FACTOR * DEG_TO_RAD  # 1 mG; one gyro count × the start reply's factor
    raise KeyError(profile)


def encode_open_imu(ranges: int, seq0: int, t0_us: int, period_us: int, acc_mps2: F64, gyro_radps: F64) -> bytes:
    """Open-profile IMU packet ``0x11`` (sensorhub_open.md §3): header, then N × ax ay az gx gy gz int16."""
    acc_lsb, gyro_lsb = lsb("sensorhub_open", ranges)
    raw = np.concatenate([_counts(acc_mps2, acc_lsb), _counts(gyro_radps, gyro_lsb)], axis=1).ravel()
    header = struct.pack("<BBHIH", 0x11, ranges, seq0 % 2**16, t0_us % 2**32, period_us)
    return header + struct.pack(f"<{len(raw)}h", *raw.tolist())


def encode_open_status(percent: int, millivolts: int, flags: int) -> bytes:
    """Open-profile status packet ``0x12`` (sensorhub_open.md §4)."""
    return struct.pack("<BBHB", 0x12, percent, millivolts, flags)


def encode_witmotion_imu(acc_mps2: F64, gyro_radps: F64) -> bytes:
    """WitMotion ``55 61`` packet: acc, gyro, angle as int16 LE (angles sent as 0: unused)."""
    acc_lsb, gyro_lsb = lsb("witmotion_bwt901blecl")
    raw = [*_counts(acc_mps2, acc_lsb).tolist(), *_counts(gyro_radps, gyro_lsb).tolist(), 0, 0, 0]
    return b"\x55\x61" + struct.pack("<9h", *raw)


def encode_witmotion_register(register: int, values: Sequence[int]) -> bytes:
    """WitMotion ``55 71`` register reply: start register (uint16 LE) and 8 int16 values."""
    return b"\x55\x71" + struct.pack("<H8h", register, *values)


def encode_thingy_raw(acc_mps2: F64, gyro_radps: F64) -> bytes:
    """Thingy:52 raw motion data (18 bytes): acc Q6.10 g **negated** (thingy52.md), gyro Q11.5 °/s, compass 0."""
    acc_lsb, gyro_lsb = lsb("thingy52")
    acc = _counts(-np.clip(acc_mps2, -2.0 * G_MPS2, 2.0 * G_MPS2), acc_lsb)
    gyro = _counts(np.clip(gyro_radps, -1023 * DEG_TO_RAD, 1023 * DEG_TO_RAD), gyro_lsb)
    return struct.pack("<9h", *acc.tolist(), *gyro.tolist(), 0, 0, 0)


def encode_metamotion(stream: str, values: F64) -> bytes:
    """MetaWear packed BMI270 data: ``03 05`` (acc, ±8 g) or ``13 05`` (gyro, ±500 °/s) + 3 × x y z int16."""
    acc_lsb, gyro_lsb = lsb("metamotion")
    header = b"\x03\x05" if stream == "acc" else b"\x13\x05"
    raw = _counts(values, acc_lsb if stream == "acc" else gyro_lsb).ravel()
    return header + struct.pack(f"<{len(raw)}h", *raw.tolist())


# ---- the emulator ---------------------------------------------------------------------------------


@dataclass(slots=True)
class LoggedSample:
    """One sample the device took.

    Attributes:
        k: index into the wearer's signals (the device's sample grid).
        seq: the counter it carried (open profile), else None.
        host_t: host time (``time.monotonic``) at which the device took it.
        device_us: the device's clock at that instant, µs (not wrapped).
        sent: it went out in a notification that reached the bus.
    """

    k: int
    seq: int | None
    host_t: float
    device_us: float
    sent: bool = False


def _axis_matrix(profile: Profile) -> F64:
    m = np.zeros((3, 3))
    for row, (index, sign) in enumerate(profile.axes):
        m[row, index] = sign
    return m


class DeviceEmulator:
    """A peripheral running a firmware profile; see the module docstring. Use ``async with``."""

    profile_name: str = ""
    samples_per_notification: int = 1
    stream_on_subscribe = False  # streams whenever notifications on data are on (WitMotion, Thingy)
    forgets_on_disconnect = False  # MetaWear: subscriptions and power modes are gone after a disconnect

    def __init__(
        self,
        bluez: FakeBlueZ,
        address: str,
        placement: Placement,
        *,
        name: str | None = None,
        rate_hz: float | None = None,
        registry: Registry | None = None,
        drift_ppm: float = 50.0,
        seed: int = 0,
        split_every: int = 5,
    ) -> None:
        self.bluez = bluez
        self.profile = get_profile(self.profile_name, registry)
        self.rate_hz = rate_hz or self.profile.default_rate_hz
        self.placement = placement
        self.signals = signals(placement)
        self.drift_ppm = drift_ppm
        self.rng = random.Random(seed)
        self.split_every = split_every
        self._to_device = _axis_matrix(self.profile)  # device = sensor @ M (M orthogonal)
        self.gatt = dict(self.profile.gatt)
        self.device = bluez.add_device(
            FakeDevice(
                address,
                name or self._default_name(),
                self._services(),
                advertised_uuids=list(self.profile.service_uuids),
            )
        )
        self.log: list[LoggedSample] = []
        #: Notifications on the data characteristic: (host time, payload, went out).
        self.sent: list[tuple[float, bytes, bool]] = []
        self.streaming = False
        self.restarts = 0
        self._period_us = 1e6 / self.rate_hz
        self._grid_k0 = 0
        self._grid_us0 = 0.0
        self._next_k = 0
        self._epoch = 0
        self._host_origin = 0.0
        self._connects_seen = 0
        self._was_connected = False
        self._task: asyncio.Task[None] | None = None

    # -- set-up -------------------------------------------------------------------------------

    def _default_name(self) -> str:
        pattern = self.profile.name_patterns[0]
        return pattern.replace("*", f"-{self.placement.value[:2].upper()}")

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._host_origin = asyncio.get_running_loop().time()
        self._task = asyncio.get_running_loop().create_task(self._pace(), name=f"emulator-{self.device.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the device's clock and sample grid ---------------------------------------------------

    def _now_us(self) -> float:
        """The device clock now, µs since the emulator started (runs ``drift_ppm`` fast)."""
        elapsed = asyncio.get_running_loop().time() - self._host_origin
        return elapsed * (1.0 + self.drift_ppm * 1e-6) * 1e6

    def device_us(self, k: int) -> float:
        """Device time of grid sample ``k``, µs since the emulator started."""
        return self._grid_us0 + (k - self._grid_k0) * self._period_us

    def host_time(self, k: int) -> float:
        """Host (loop) time at which the device takes grid sample ``k``."""
        return self._host_origin + self.device_us(k) * 1e-6 / (1.0 + self.drift_ppm * 1e-6)

    def _restart(self, *, discard: bool = True) -> None:
        """Start (again) at the next slot of the sample grid; samples pending in a packet are lost."""
        now = self._now_us()
        nxt = self._grid_k0 + max(0, math.ceil((now - self._grid_us0) / self._period_us))
        nxt = max(nxt, self._next_k)
        if discard and self.streaming:
            for k in range(self._next_k, nxt):  # taken, never sent
                self.log.append(LoggedSample(k, self._seq(k), self.host_time(k), self.device_us(k)))
        self._next_k = nxt
        self._epoch += 1
        self.restarts += 1

    def _set_rate(self, rate_hz: float) -> None:
        """A new output rate: a new grid from the next slot of the old one."""
        now = self._now_us()
        nxt = max(self._next_k, self._grid_k0 + math.ceil((now - self._grid_us0) / self._period_us))
        self._grid_us0 = self.device_us(nxt)
        self._grid_k0 = nxt
        self._next_k = nxt
        self.rate_hz = rate_hz
        self._period_us = 1e6 / rate_hz
        self._epoch += 1

    def _seq(self, k: int) -> int | None:
        return None

    # -- the pacer ----------------------------------------------------------------------------

    def _data_notifying(self) -> bool:
        return self.device.connected and self.device.char(self.gatt["data"]).notifying

    def _watch_link(self) -> None:
        """Notice disconnects and new connections (MetaWear forgets its state on both)."""
        connects = sum(1 for call, _ in self.device.calls if call == "Connect")
        connected = self.device.connected
        lost = (self._was_connected and not connected) or connects != self._connects_seen
        self._connects_seen, self._was_connected = connects, connected
        if lost:
            self.on_link_lost()
        if self.stream_on_subscribe:
            on = self._data_notifying()
            if on and not self.streaming:
                self.streaming = True
                self._restart(discard=False)
            elif not on and self.streaming:
                self.streaming = False

    def on_link_lost(self) -> None:
        """The link went down or a new one came up."""

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        back_to_back = 0
        while True:
            self._watch_link()
            if not self.streaming:
                await asyncio.sleep(0.005)
                continue
            epoch = self._epoch
            k_last = self._next_k + self.samples_per_notification - 1
            delay = self.host_time(k_last) - loop.time()
            if delay > 0:
                back_to_back = 0
                await asyncio.sleep(min(delay, 0.05))
                continue  # re-check: a command or the link may have changed things meanwhile
            if epoch != self._epoch:
                continue
            back_to_back += 1
            if back_to_back % _DRAIN_EVERY == 0:
                await self.bluez.drain()
                continue
            ks = list(range(self._next_k, k_last + 1))
            self._next_k = k_last + 1
            self._emit(ks)

    def _values(self, ks: Sequence[int]) -> tuple[F64, F64]:
        """(acc, gyro) of samples ``ks`` in the device's axes."""
        acc, gyro = self.signals.at(ks)
        return acc @ self._to_device, gyro @ self._to_device

    def _take(self, ks: Sequence[int]) -> list[LoggedSample]:
        taken = [LoggedSample(k, self._seq(k), self.host_time(k), self.device_us(k)) for k in ks]
        self.log.extend(taken)
        return taken

    def _notify_data(self, payload: bytes) -> bool:
        ok = self.device.notify(self.gatt["data"], payload)
        self.sent.append((asyncio.get_running_loop().time(), payload, ok))
        return ok

    def _emit(self, ks: Sequence[int]) -> None:
        raise NotImplementedError

    # -- tests' helpers -----------------------------------------------------------------------

    def inject(self, payload: bytes) -> bool:
        """Send an arbitrary payload on the data characteristic now (a malformed packet, say)."""
        return self._notify_data(payload)

    def writes(self, role: str = "control") -> list[bytes]:
        """Every payload written to the characteristic of a gatt role, in order."""
        return [data for data, _ in self.device.char(self.gatt[role]).writes]

    def sample_arrays(self) -> dict[str, NDArray[np.float64] | NDArray[np.int64] | NDArray[np.bool_]]:
        """The log as arrays: k, host_t, sent, and the sensor-frame truth acc, gyro."""
        k = np.array([s.k for s in self.log], dtype=np.int64)
        acc, gyro = self.signals.at(k)
        return {
            "k": k,
            "host_t": np.array([s.host_t for s in self.log]),
            "sent": np.array([s.sent for s in self.log], dtype=bool),
            "acc": acc,
            "gyro": gyro,
        }


class SensorhubOpenEmulator(DeviceEmulator):
    """The open profile's reference firmware (sensorhub_open.md): commands, counter, µs clock, status."""

    profile_name = "sensorhub_open"
    samples_per_notification = 4  # 100 Hz / kNotificationsPerSecond (25)
    #: Start 5 s before the uint32 µs timestamp wraps, so every run crosses the wrap.
    CLOCK_OFFSET_US: Final = 2**32 - 5_000_000

    def __init__(self, *args: object, motor: bool = True, battery_pct: int = 87, **kwargs: object) -> None:
        self.motor = motor
        self.battery_pct = battery_pct
        self.ranges = 0x43
        self.flags = 0
        self.buzzes: list[int] = []
        self._seq0_k = 0
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        g = self.gatt
        return {
            self.profile.service_uuids[0]: [
                FakeCharacteristic(g["data"], ["notify"]),
                FakeCharacteristic(g["control"], ["write", "write-without-response"], on_write=self._command),
                FakeCharacteristic(g["status"], ["read", "notify"], on_read=lambda _d, _c: self._status_bytes()),
            ]
        }

    def _seq(self, k: int) -> int | None:
        return (k - self._seq0_k) % 2**16

    def _status_bytes(self) -> bytes:
        flags = self.flags | (0x01 if self.streaming else 0)
        return encode_open_status(self.battery_pct, 3980, flags)

    def _send_status(self) -> None:
        self.device.notify(self.gatt["status"], self._status_bytes())

    def _start(self) -> None:
        self._restart()
        self._seq0_k = self._next_k
        self.streaming = True

    def _command(self, _device: FakeDevice, _char: FakeCharacteristic, data: bytes, _with_response: bool) -> None:
        op, arg = data[0] if data else -1, data[1:]
        self.flags &= ~0x08
        if op == 0x01 and not arg:
            self._start()
            self._send_status()
        elif op == 0x02 and not arg:
            if self.streaming:
                taken_by_now = self._grid_k0 + int((self._now_us() - self._grid_us0) // self._period_us)
                pending = list(range(self._next_k, taken_by_now + 1))
                if pending:
                    self._next_k = pending[-1] + 1
                    self._emit(pending)
            self.streaming = False
            self._send_status()
        elif op == 0x03 and len(arg) == 2 and int.from_bytes(arg, "little") > 0:
            period_us = int.from_bytes(arg, "little")
            if period_us != self._period_us:
                self._set_rate(1e6 / period_us)
            if self.streaming:  # the new period needs a new packet (sensorhub_open.ino handle_command)
                self._start()
        elif op == 0x04 and len(arg) == 1 and (arg[0] & 0x0F) < 5 and (arg[0] >> 4) < 6:
            self.ranges = arg[0]
        elif op == 0x05 and len(arg) == 2 and 1 <= int.from_bytes(arg, "little") <= 5000 and self.motor:
            self.buzzes.append(int.from_bytes(arg, "little"))
        elif op == 0x06 and not arg:
            self._send_status()
        else:
            self.flags |= 0x08  # rejected
            self._send_status()

    def _emit(self, ks: Sequence[int]) -> None:
        taken = self._take(ks)
        acc, gyro = self._values(ks)
        t0_us = round(self.CLOCK_OFFSET_US + taken[0].device_us)
        seq0 = taken[0].seq
        assert seq0 is not None
        payload = encode_open_imu(self.ranges, seq0, t0_us, round(self._period_us), acc, gyro)
        ok = self._notify_data(payload)
        for s in taken:
            s.sent = ok


class WitmotionEmulator(DeviceEmulator):
    """WitMotion BWT901BLECL (BLE 5.0): a UART bridge streaming ``55 61`` packets while notifying."""

    profile_name = "witmotion_bwt901blecl"
    samples_per_notification = 2
    stream_on_subscribe = True

    def __init__(self, *args: object, centivolts: int = 395, **kwargs: object) -> None:
        self.centivolts = centivolts
        self.unlocked = False
        self.saved_rate_code: int | None = None
        self._buffer = bytearray()
        self._pending: list[tuple[int, LoggedSample]] = []  # (end offset in the buffer, sample)
        self._ticks = 0
        self.splits = 0
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    _RATE_CODES: Final = {0x06: 10.0, 0x08: 50.0, 0x09: 100.0, 0x0B: 200.0}

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        g = self.gatt
        return {
            self.profile.service_uuids[0]: [
                FakeCharacteristic(g["data"], ["notify"]),
                FakeCharacteristic(g["control"], ["write-without-response"], on_write=self._command),
            ]
        }

    def _command(self, _device: FakeDevice, _char: FakeCharacteristic, data: bytes, _with_response: bool) -> None:
        if len(data) != 5 or data[:2] != b"\xff\xaa":
            return
        register, value = data[2], int.from_bytes(data[3:5], "little")
        if register == 0x69 and value == 0xB588:
            self.unlocked = True
        elif register == 0x03 and self.unlocked and value in self._RATE_CODES:
            if self._RATE_CODES[value] != self.rate_hz:
                self._set_rate(self._RATE_CODES[value])
            self.samples_per_notification = max(1, round(self.rate_hz / 50))
        elif register == 0x00 and self.unlocked:
            self.saved_rate_code = {v: k for k, v in self._RATE_CODES.items()}.get(self.rate_hz)
        elif register == 0x27 and data[3] == 0x64:
            self._buffer += encode_witmotion_register(0x64, [self.centivolts, 0, 0, 0, 0, 0, 0, 0])

    def on_link_lost(self) -> None:
        self._drop_buffer()

    def _drop_buffer(self) -> None:
        self._buffer.clear()
        self._pending.clear()

    def _emit(self, ks: Sequence[int]) -> None:
        taken = self._take(ks)
        acc, gyro = self._values(ks)
        for i, sample in enumerate(taken):
            self._buffer += encode_witmotion_imu(acc[i], gyro[i])
            self._pending.append((len(self._buffer), sample))
        self._ticks += 1
        cut = len(self._buffer)
        if self.split_every and self._ticks % self.split_every == 0 and cut > 2:
            cut = self.rng.randrange(1, cut)  # the bridge sends what its UART buffer holds now
            self.splits += 1
        ok = self._notify_data(bytes(self._buffer[:cut]))
        if not ok:
            for _, sample in self._pending:
                sample.sent = False
            self._drop_buffer()
            return
        del self._buffer[:cut]
        still = []
        for end, sample in self._pending:
            if end <= cut:
                sample.sent = True
            else:
                still.append((end - cut, sample))
        self._pending = still


class ThingyEmulator(DeviceEmulator):
    """Nordic Thingy:52 stock firmware: raw motion data while notifying, 9-byte motion config, battery."""

    profile_name = "thingy52"
    samples_per_notification = 1
    stream_on_subscribe = True

    def __init__(self, *args: object, battery_pct: int = 76, **kwargs: object) -> None:
        self.battery_pct = battery_pct
        self.config = b""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # as stored in flash by an earlier session at this rate
        self.config = struct.pack("<HHHHB", 1000, 500, 500, round(self.rate_hz), 1)
        self.device.char(self.gatt["config"]).value = self.config

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        g = self.gatt
        return {
            "ef680400-9b35-4933-9b10-52ffa9740042": [
                FakeCharacteristic(g["config"], ["read", "write"], value=self.config, on_write=self._configure),
                FakeCharacteristic(g["data"], ["notify"]),
            ],
            "0000180f-0000-1000-8000-00805f9b34fb": [
                FakeCharacteristic(g["battery"], ["read", "notify"], on_read=lambda _d, _c: bytes([self.battery_pct])),
            ],
        }

    def _configure(self, _device: FakeDevice, char: FakeCharacteristic, data: bytes, _with_response: bool) -> None:
        from dbus_fast import DBusError

        fields = struct.unpack("<HHHHB", data) if len(data) == 9 else None
        if fields is None or not (
            100 <= fields[0] <= 5000 and 100 <= fields[1] <= 5000 and 100 <= fields[2] <= 1000 and 5 <= fields[3] <= 200
        ):
            raise DBusError("org.bluez.Error.Failed", "Operation failed with ATT error: 0x80")
        self.config = char.value = data
        if fields[3] != self.rate_hz:
            self._set_rate(float(fields[3]))

    def _emit(self, ks: Sequence[int]) -> None:
        taken = self._take(ks)
        acc, gyro = self._values(ks)
        ok = self._notify_data(encode_thingy_raw(acc[0], gyro[0]))
        taken[0].sent = ok


class MetaMotionEmulator(DeviceEmulator):
    """MetaWear firmware (BMI270): packed acc and gyro streams after the start writes; battery; haptic."""

    profile_name = "metamotion"
    samples_per_notification = 3
    forgets_on_disconnect = True

    def __init__(self, *args: object, battery_pct: int = 99, **kwargs: object) -> None:
        self.battery_pct = battery_pct
        self.buzzes: list[tuple[int, int]] = []
        self._state: dict[tuple[int, int], bytes] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        g = self.gatt
        return {
            self.profile.service_uuids[0]: [
                FakeCharacteristic(g["control"], ["write", "write-without-response"], on_write=self._command),
                FakeCharacteristic(g["data"], ["notify"]),
            ]
        }

    def _on(self, module: int) -> bool:
        # packed data subscribed, data interrupt enabled, power mode 1 (metamotion.md, start)
        return (
            self._state.get((module, 0x05)) == b"\x01"
            and self._state.get((module, 0x02)) == b"\x01\x00"
            and self._state.get((module, 0x01)) == b"\x01"
        )

    def _command(self, device: FakeDevice, _char: FakeCharacteristic, data: bytes, _with_response: bool) -> None:
        self._watch_link()  # a (re)connection since the pacer last looked wipes the state first
        if len(data) < 2:
            return
        module, register = data[0], data[1]
        if (module, register) == (0x11, 0x8C):
            device.notify(self.gatt["data"], bytes([0x11, 0x8C, self.battery_pct]) + (4012).to_bytes(2, "little"))
            return
        if (module, register) == (0x08, 0x01) and len(data) == 6:
            self.buzzes.append((data[2], int.from_bytes(data[3:5], "little")))
            return
        if module in (0x03, 0x13):
            self._state[(module, register)] = bytes(data[2:])
            if register == 0x03 and len(data) == 4:
                code = data[2] & 0x0F  # ODR code: 25 Hz = 6 … 200 Hz = 9
                rate = 25.0 * 2 ** (code - 6)
                if rate != self.rate_hz:
                    self._set_rate(rate)
        was = self.streaming
        self.streaming = self._on(0x03) or self._on(0x13)
        if self.streaming and not was:
            self._restart(discard=False)

    def on_link_lost(self) -> None:
        self._state.clear()
        self.streaming = False

    def _emit(self, ks: Sequence[int]) -> None:
        taken = self._take(ks)
        acc, gyro = self._values(ks)
        ok = True
        if self._on(0x03):
            ok &= self._notify_data(encode_metamotion("acc", acc))
        if self._on(0x13):
            ok &= self._notify_data(encode_metamotion("gyro", gyro))
        for s in taken:
            s.sent = ok


# ---- Polar Verity Sense (PMD) ---------------------------------------------------------------------
# Facts from polar_verity_sense.md / sensorhub/profiles/decoders/polar.py, which cite polarofficial/
# polar-ble-sdk, Android sources under .../api/ble/model/gatt/client/pmd/ ("pmd/" below).

#: PMD measurement types (pmd/PmdMeasurementType.kt).
POLAR_ACC: Final = 0x02
POLAR_GYRO: Final = 0x05
#: Control point ops and reply byte (pmd/PmdControlPointCommand.kt, pmd/PmdControlPointResponse.kt).
_PMD_GET_SETTINGS, _PMD_START, _PMD_STOP, _PMD_REPLY = 0x01, 0x02, 0x03, 0xF0
#: Reply status codes (PmdControlPointResponse.PmdControlPointResponseCode).
_PMD_OK, _PMD_INVALID_OP, _PMD_NOT_SUPPORTED, _PMD_INVALID_LENGTH, _PMD_ALREADY = 0, 1, 3, 4, 6
_PMD_INVALID_SETTING: Final = {0: 8, 1: 7, 2: 9, 4: 11}  # sample rate, resolution, range, channels
#: Setting record value sizes, bytes (pmd/PmdSetting.kt typeToFieldSize).
_PMD_SETTING_SIZES: Final = {0: 2, 1: 2, 2: 2, 3: 4, 4: 1, 5: 4, 6: 16}
_PMD_FACTOR: Final = 5
#: The gyro conversion factor the emulator's GYRO start reply carries (a FACTOR record ``05 01 <float32>``,
#: pmd/PmdSetting.kt; pmd/BlePmdClientTest.kt "startMeasurement - success response updates factor"). The
#: sources give no Verity Sense GYRO factor: this one (one 16-bit count of ±2000 °/s, exact in float32) is
#: the emulator's choice, so that the factor path of the decoder runs. The ACC reply has none (issue #443).
POLAR_GYRO_FACTOR: Final = 2000.0 / 32768.0
#: Samples per delta block: issue #443's Verity Sense ACC frame starts with a block of 10 samples.
_PMD_BLOCK: Final = 10


def _pmd_width(values: Sequence[int]) -> int:
    """Bits a two's-complement field needs for every one of ``values`` (at least 1)."""
    return max(1, *((v if v >= 0 else -v - 1).bit_length() + 1 for v in values))


def _pmd_compressed(samples: NDArray[np.int64], byte_width: int, *, wrap32: bool = False) -> bytes:
    """Delta-compressed content (pmd/BlePMDClient.kt parseDeltaFramesAll): the reference sample, x y z in
    ``byte_width`` signed LE bytes, then blocks ``<width bits> <count> <count × 3 deltas, bit-packed LSB
    first, two's complement, padded to a byte>``; each delta adds to the previous sample. ``wrap32``:
    the samples are float32 bit patterns, deltas taken modulo 2**32."""
    rows = [[int(v) for v in row] for row in samples]
    out = bytearray(b"".join(v.to_bytes(byte_width, "little", signed=True) for v in rows[0]))
    deltas = [[b - a for a, b in zip(prev, cur, strict=True)] for prev, cur in itertools.pairwise(rows)]
    if wrap32:
        deltas = [[(d + 2**31) % 2**32 - 2**31 for d in row] for row in deltas]
    for start in range(0, len(deltas), _PMD_BLOCK):
        block = deltas[start : start + _PMD_BLOCK]
        width = _pmd_width([d for row in block for d in row])
        bits, pos = 0, 0
        for row in block:
            for d in row:
                bits |= (d & ((1 << width) - 1)) << pos
                pos += width
        out += bytes([width, len(block)]) + bits.to_bytes((pos + 7) // 8, "little")
    return bytes(out)


def encode_polar_frame(measurement: int, timestamp_ns: int, values: F64, *, frame_type: int | None = None) -> bytes:
    """A PMD data frame (pmd/PmdDataFrame.kt): ``<type> <timestamp uint64 LE> <frame type> <content>``.

    ``timestamp_ns``: device time of the LAST sample, ns since 2000-01-01 (TimeSystemExplained.md,
    pmd/model/PmdTimeStampUtils.kt). ``values``: (n, 3) acc m/s² or gyro rad/s, device axes.
    Frame types (pmd/model/AccData.kt, GyrData.kt): ACC 0x81 (default: what the Verity Sense sends,
    issues #331/#443) delta-compressed 16-bit mG, ACC 0x01 raw int16 mG; GYRO 0x80 (default)
    delta-compressed 16-bit counts of :data:`POLAR_GYRO_FACTOR` °/s, GYRO 0x81 delta-compressed
    float32 bit patterns of °/s ÷ the factor.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    if measurement == POLAR_ACC:
        frame_type = 0x81 if frame_type is None else frame_type
        acc_lsb, _ = lsb("polar_verity_sense")
        counts = _counts(np.clip(values, -8.0 * G_MPS2, 8.0 * G_MPS2), acc_lsb)  # ±8 g range
        if frame_type == 0x01:
            content = struct.pack(f"<{counts.size}h", *counts.ravel().tolist())
        elif frame_type == 0x81:
            content = _pmd_compressed(counts, 2)
        else:
            raise ValueError(f"ACC frame type 0x{frame_type:02x} is not emulated")
    elif measurement == POLAR_GYRO:
        frame_type = 0x80 if frame_type is None else frame_type
        _, gyro_lsb = lsb("polar_verity_sense")
        if frame_type == 0x80:
            content = _pmd_compressed(_counts(values, gyro_lsb), 2)
        elif frame_type == 0x81:
            bits = (values / gyro_lsb).astype(np.float32).view(np.int32).astype(np.int64)
            content = _pmd_compressed(bits, 4, wrap32=True)
        else:
            raise ValueError(f"GYRO frame type 0x{frame_type:02x} is not emulated")
    else:
        raise ValueError(f"measurement type 0x{measurement:02x} is not emulated")
    return bytes([measurement]) + struct.pack("<Q", timestamp_ns) + bytes([frame_type]) + content


def encode_pmd_reply(op: int, measurement: int, status: int, params: bytes = b"") -> bytes:
    """Control point reply ``F0 <op> <measurement type> <status> <more = 0> <parameters>``
    (pmd/PmdControlPointResponse.kt)."""
    return bytes([_PMD_REPLY, op, measurement, status, 0]) + params


def _pmd_records(settings: dict[int, int]) -> bytes:
    """Setting records ``<type> <count = 1> <value LE>`` (pmd/PmdSetting.kt serializeSelected)."""
    return b"".join(
        bytes([kind, 1]) + value.to_bytes(_PMD_SETTING_SIZES[kind], "little") for kind, value in settings.items()
    )


class PolarEmulator(DeviceEmulator):
    """Polar Verity Sense PMD firmware: ACC and GYRO streams, each after its start command; battery.

    - PMD service: control point (write; replies by notification) and data (notify), Battery Level.
    - Control point: ``01 <type>`` → settings reply; ``02 <type> <records>`` → start reply (status 0
      only for the settings the Verity Sense offers outside SDK mode: 52 Hz, 16 bit, 8 g / 2000 °/s,
      3 channels; PolarVeritySense.md), GYRO's with a FACTOR record (:data:`POLAR_GYRO_FACTOR`),
      ACC's without (``F0 02 02 00 00``, issue #443); ``03 <type>`` → stop reply. Starting a running
      stream or stopping a stopped one answers ``already in state`` (6), other measurement types
      ``not supported`` (3): the emulator's choices of status code (PmdControlPointResponse.kt).
    - Data: while a measurement runs, one frame per ``samples_per_notification`` samples of it, ACC
      and GYRO in separate frames stamped with the device time of their last sample (ns since
      2000-01-01, on the emulator's 50 ppm-fast clock, from ``CLOCK_ORIGIN_NS``). ACC frames are
      delta-compressed (0x81), every ``raw_every``-th one raw (0x01); GYRO frames compressed 0x80,
      every ``float_gyro_every``-th one 0x81 (float bits) — the mix is the emulator's, so that every
      decoder path runs.
    - Both streams run on one sample grid: the first start restarts it at its next slot, the second
      joins at the frame being filled. A sample is logged ``sent`` when both its frames went out
      (the source pairs the streams; one alone gives no 6-axis sample).
    - A disconnect stops both streams (the source must send the start commands again).
    """

    profile_name = "polar_verity_sense"
    samples_per_notification = 13  # ¼ s at 52 Hz (the real device fills MTU-sized frames: 227 bytes in #443)
    forgets_on_disconnect = True
    #: Measurement settings outside SDK mode, {setting type: value} (PolarVeritySense.md; types pmd/PmdSetting.kt).
    SETTINGS: Final = {POLAR_ACC: {0: 52, 1: 16, 2: 8, 4: 3}, POLAR_GYRO: {0: 52, 1: 16, 2: 2000, 4: 3}}
    #: 2025-01-01T00:00:00Z on PMD's epoch (2000-01-01), ns: where the device clock starts.
    CLOCK_ORIGIN_NS: Final = (1_735_689_600 - 946_684_800) * 10**9

    def __init__(
        self, *args: object, battery_pct: int = 64, raw_every: int = 5, float_gyro_every: int = 7, **kwargs: object
    ) -> None:
        self.battery_pct = battery_pct
        self.raw_every = raw_every
        self.float_gyro_every = float_gyro_every
        self.active: set[int] = set()
        #: Every control point command answered: (command bytes, reply bytes).
        self.replies: list[tuple[bytes, bytes]] = []
        self.frames = {POLAR_ACC: 0, POLAR_GYRO: 0}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _services(self) -> dict[str, list[FakeCharacteristic]]:
        g = self.gatt
        return {
            self.profile.service_uuids[0]: [
                FakeCharacteristic(g["control"], ["write", "notify"], on_write=self._command),
                FakeCharacteristic(g["data"], ["notify"]),
            ],
            "0000180f-0000-1000-8000-00805f9b34fb": [
                FakeCharacteristic(g["battery"], ["read", "notify"], on_read=lambda _d, _c: bytes([self.battery_pct])),
            ],
        }

    def starts(self, measurement: int) -> int:
        """Start commands of ``measurement`` answered with success."""
        return sum(
            1 for cmd, reply in self.replies if cmd[:2] == bytes([_PMD_START, measurement]) and reply[3] == _PMD_OK
        )

    def _command(self, device: FakeDevice, _char: FakeCharacteristic, data: bytes, _with_response: bool) -> None:
        self._watch_link()  # a (re)connection since the pacer last looked stops the streams first
        op = data[0] if data else 0
        measurement = data[1] if len(data) > 1 else 0
        status, params = self._answer(op, measurement, data[2:])
        reply = encode_pmd_reply(op, measurement, status, params)
        self.replies.append((bytes(data), reply))
        device.notify(self.gatt["control"], reply)

    def _answer(self, op: int, measurement: int, args: bytes) -> tuple[int, bytes]:
        if op not in (_PMD_GET_SETTINGS, _PMD_START, _PMD_STOP):
            return _PMD_INVALID_OP, b""
        if measurement not in self.SETTINGS:
            return _PMD_NOT_SUPPORTED, b""  # the emulator streams ACC and GYRO only
        settings = self.SETTINGS[measurement]
        if op == _PMD_GET_SETTINGS:
            return (_PMD_INVALID_LENGTH, b"") if args else (_PMD_OK, _pmd_records(settings))
        if op == _PMD_STOP:
            if args:
                return _PMD_INVALID_LENGTH, b""
            if measurement not in self.active:
                return _PMD_ALREADY, b""
            self.active.discard(measurement)
            self.streaming = bool(self.active)
            return _PMD_OK, b""
        requested: dict[int, int] = {}
        offset = 0
        while offset < len(args):
            if offset + 2 > len(args):
                return _PMD_INVALID_LENGTH, b""
            kind, count = args[offset], args[offset + 1]
            size = _PMD_SETTING_SIZES.get(kind)
            if size is None or count != 1 or offset + 2 + size > len(args):
                return _PMD_INVALID_LENGTH, b""
            requested[kind] = int.from_bytes(args[offset + 2 : offset + 2 + size], "little")
            offset += 2 + size
        for kind, value in requested.items():
            if kind in settings and value != settings[kind]:
                return _PMD_INVALID_SETTING[kind], b""
        if measurement in self.active:
            return _PMD_ALREADY, b""
        if not self.active:
            self._restart(discard=False)  # sampling starts at the next slot of the grid
        self.active.add(measurement)
        self.streaming = True
        if measurement == POLAR_GYRO:
            return _PMD_OK, bytes([_PMD_FACTOR, 1]) + struct.pack("<f", POLAR_GYRO_FACTOR)
        return _PMD_OK, b""

    def on_link_lost(self) -> None:
        self.active.clear()
        self.streaming = False

    def _emit(self, ks: Sequence[int]) -> None:
        taken = self._take(ks)
        acc, gyro = self._values(ks)
        timestamp_ns = self.CLOCK_ORIGIN_NS + round(taken[-1].device_us * 1000)  # the LAST sample's time
        ok = {POLAR_ACC: False, POLAR_GYRO: False}
        for measurement, values in ((POLAR_ACC, acc), (POLAR_GYRO, gyro)):
            if measurement not in self.active:
                continue
            self.frames[measurement] += 1
            n = self.frames[measurement]
            if measurement == POLAR_ACC:
                frame_type = 0x01 if self.raw_every and n % self.raw_every == 0 else 0x81
            else:
                frame_type = 0x81 if self.float_gyro_every and n % self.float_gyro_every == 0 else 0x80
            ok[measurement] = self._notify_data(
                encode_polar_frame(measurement, timestamp_ns, values, frame_type=frame_type)
            )
        for s in taken:
            s.sent = ok[POLAR_ACC] and ok[POLAR_GYRO]


_EMULATORS: Final[dict[str, type[DeviceEmulator]]] = {
    cls.profile_name: cls
    for cls in (SensorhubOpenEmulator, WitmotionEmulator, ThingyEmulator, MetaMotionEmulator, PolarEmulator)
}


def emulator_for(profile: str) -> type[DeviceEmulator]:
    """The emulator class of a profile name."""
    return _EMULATORS[profile]
