"""Typed records and the decoder interface shared by every firmware profile.

A *profile* (``firmware_profiles/<name>.toml``, loaded into :class:`Profile`) says how to find,
configure and start one sensor firmware. A *decoder* (one module per device family in
``sensorhub/profiles/decoders/``) turns that firmware's notification payloads into
:class:`ImuSample` records. Decoders are sans-IO: bytes in, records out, no asyncio, no clock
reads. They keep the little state a stream needs (a byte stream split across notifications,
Polar's conversion factor from the start response, Movesense continuation packets, the last
sample of a delta-compressed frame) and count what they drop.

Decoded values are in the device's own axes (before :attr:`Profile.axes` maps them into the
sensor frame of DESIGN §3), SI units: m/s² with g = 9.80665 m/s², rad/s.

The profile file schema (every key validated by ``sensorhub.profiles.loader``; an error names the
file and the dotted key)::

    name = "witmotion_bwt901blecl"        # = file stem, one of config.PROFILE_NAMES
    title = "WitMotion BWT901BLECL"       # shown by `sensorhub profiles list`
    vendor = "WitMotion"
    family = "witmotion"                  # decoder module sensorhub/profiles/decoders/<family>.py
    clock = "device_time"                 # device_time | counter | host_rate_model
    source = "https://…"                  # the vendor document or SDK the facts come from

    [match]                               # how `scan` recognises the device (either may match)
    name_patterns = ["WT901BLE*"]         # fnmatch patterns on the advertised name
    service_uuids = ["0000ffe5-0000-1000-8000-00805f9a34fb"]

    [gatt]                                # role -> characteristic UUID (lower case, 128-bit)
    data = "…"                            # required: notifications with IMU data
    control = "…"                         # optional: where commands are written
    # any other role, e.g. battery = "00002a19-…", config = "…"

    [rates]
    default_hz = 100.0
    options_hz = [50.0, 100.0, 200.0]
    # optional per-rate template values: [rates.values."100.0"] rate_code = "09"

    [ranges]                              # defaults; `--set` / device state may override
    acc_g = 16
    gyro_dps = 2000

    [axes]                                # sensor frame axis <- signed device axis
    x = "+x"
    y = "+y"
    z = "+z"

    [decoder]                             # decoder settings (family-specific, documented there)
    # e.g. acc_range_g = 16

    [battery]                             # optional
    char = "battery"                      # a gatt role, read (and notified where supported)
    format = "uint8_percent"              # uint8_percent | decoder (reply parsed by the decoder)
    # request = [{char = "control", hex = "ff aa 27 64 00", meaning = "read register 0x64"}]

    [commands]                            # sequences of steps, in order; hex may hold {placeholders}
    configure = [{char = "control", hex = "ff aa 03 {rate_code} 00", meaning = "set output rate"}]
    start = [{char = "control", hex = "…", meaning = "…", response = true}]   # response: wait for a reply
    stop = []
    buzz = []                             # present and non-empty only for devices with a motor

Placeholders in ``hex`` are filled from the rate's template values, then ``rate_hz``, then the
decoder settings; an unknown placeholder is a profile error. ``{name}`` inserts a string as hex
and an integer 0–255 as one byte; ``{name:fmt}`` chooses the encoding (``u8``, ``i8``,
``u16le``/``be``, ``i16le``/``be``, ``u32le``/``be``, ``i32le``, ``f32le``, ``ascii``). The
loader renders every step at every rate, so a profile that loads always gives valid bytes.
``[axes]`` must be a rotation (a signed permutation with determinant +1).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

__all__ = [
    "AXIS_NAMES",
    "DEG_TO_RAD",
    "G_MPS2",
    "BatterySpec",
    "CommandStep",
    "Decoded",
    "Decoder",
    "DecoderStats",
    "DeviceInfo",
    "ImuSample",
    "Profile",
    "SettingValue",
]

#: Standard gravity, used for every g → m/s² conversion (DESIGN §5).
G_MPS2: Final = 9.80665
DEG_TO_RAD: Final = math.pi / 180.0
AXIS_NAMES: Final = ("x", "y", "z")

#: A decoder setting: from the profile's ``[decoder]`` table or ``sensorhub decode --set``.
SettingValue = int | float | str | bool

Vec3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One decoded IMU sample, device axes.

    Attributes:
        sensor_time_s: the device's clock for this sample, seconds on the device's own epoch
            (Polar: since 2000-01-01); None where the device sends no time.
        seq: the device's sample counter for this sample (packet counter × samples per packet +
            index where the device counts packets), None where it sends none.
        acc_mps2: specific force, m/s², or None when the payload carried no accelerometer.
        gyro_radps: angular rate, rad/s, or None when the payload carried no gyroscope.
    """

    sensor_time_s: float | None
    seq: int | None
    acc_mps2: Vec3 | None
    gyro_radps: Vec3 | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A non-IMU payload: battery level, a register reply, a start response ...

    Attributes:
        kind: what it is, e.g. ``battery``, ``register``, ``start_response``, ``settings``.
        values: its decoded fields (plain JSON-able scalars), e.g. ``{"percent": 87}``.
    """

    kind: str
    values: Mapping[str, SettingValue | None] = field(default_factory=dict)


Decoded = ImuSample | DeviceInfo


@dataclass(slots=True)
class DecoderStats:
    """What a decoder has seen; every dropped byte or payload is counted here."""

    payloads: int = 0
    samples: int = 0
    errors: int = 0  # payloads refused with DecodeError
    bytes_skipped: int = 0  # stream decoders: bytes dropped while resynchronising


class Decoder(abc.ABC):
    """Stateful decoder of one device stream. Subclass one per family.

    Subclasses set :attr:`family` and implement :meth:`_decode`. Construction validates the
    settings and raises :class:`~sensorhub.errors.ProfileError` naming the bad one.
    """

    family: ClassVar[str]

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        self.profile = profile
        self.settings = dict(settings)
        self.stats = DecoderStats()

    def feed(self, payload: bytes) -> list[Decoded]:
        """Decode one notification (or control-point reply), in arrival order.

        Raises:
            DecodeError: the payload is corrupt; nothing from it is returned, it is counted in
                ``stats.errors`` and the decoder is ready for the next payload.
        """
        from sensorhub.errors import DecodeError

        self.stats.payloads += 1
        try:
            out = self._decode(bytes(payload))
        except DecodeError:
            self.stats.errors += 1
            raise
        self.stats.samples += sum(1 for item in out if isinstance(item, ImuSample))
        return out

    @abc.abstractmethod
    def _decode(self, payload: bytes) -> list[Decoded]:
        """Decode one payload; raise DecodeError (never anything else) when it is corrupt."""

    def reset(self) -> None:  # noqa: B027 - optional hook, most decoders keep no stream state
        """Forget stream state (called after a reconnect); settings and stats are kept."""


@dataclass(frozen=True, slots=True)
class CommandStep:
    """One write in a command sequence.

    Attributes:
        char: the gatt role written to (a key of :attr:`Profile.gatt`).
        hex: payload as hex, possibly with ``{placeholders}``.
        meaning: what it does, for `profiles show` and the logs.
        response: wait for a reply (indication/notification) before the next step.
        with_response: GATT write-with-response (True) or write-command (False).
        delay_s: wait this long after the write.
    """

    char: str
    hex: str
    meaning: str
    response: bool = False
    with_response: bool = True
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """How to read the battery: a characteristic role and a format, optionally a request first."""

    char: str
    format: Literal["uint8_percent", "decoder"]
    request: tuple[CommandStep, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """A loaded, validated firmware profile (see the module docstring for the file schema)."""

    name: str
    title: str
    vendor: str
    family: str
    clock: Literal["device_time", "counter", "host_rate_model"]
    source: str
    name_patterns: tuple[str, ...]
    service_uuids: tuple[str, ...]
    gatt: Mapping[str, str]
    default_rate_hz: float
    rates_hz: tuple[float, ...]
    rate_values: Mapping[float, Mapping[str, str]]
    ranges: Mapping[str, float]
    axes: tuple[tuple[int, float], tuple[int, float], tuple[int, float]]  # (device axis index, sign) per sensor axis
    decoder_settings: Mapping[str, SettingValue]
    battery: BatterySpec | None
    commands: Mapping[str, tuple[CommandStep, ...]]
    path: str = ""

    @property
    def has_motor(self) -> bool:
        return bool(self.commands.get("buzz"))

    def map_axes(self, v: Sequence[float]) -> Vec3:
        """Device-axis vector → sensor frame (DESIGN §3)."""
        (i0, s0), (i1, s1), (i2, s2) = self.axes
        return (s0 * v[i0], s1 * v[i1], s2 * v[i2])
