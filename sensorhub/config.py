"""Configuration: one TOML file, parsed once into frozen, typed records (DESIGN §6).

Nothing else in the program reads TOML or passes configuration dictionaries around:
:func:`load_config` turns a file into a :class:`Config`, and every problem becomes a
:class:`~sensorhub.errors.ConfigError` that names the file, the dotted key (``sensors[1].placement``)
and what is allowed. Unknown sections and keys are errors, because a misspelt key silently falling
back to its default is the hardest configuration bug to see.

The user reference is ``docs/configuration.md``; ``sensorhub.example.toml`` shows every key. Each
default lives in exactly one place: the field default of its dataclass below.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import ipaddress
import math
import os
import re
import sys
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeVar
from urllib.parse import SplitResult, urlsplit

from sensorhub.errors import ConfigError
from sensorhub.model import JsonValue, Placement

__all__ = [
    "MAX_SENSORS",
    "PROFILE_NAMES",
    "SCENARIO_NAMES",
    "SECTIONS",
    "SIMULATOR_RATES_HZ",
    "AlertsConfig",
    "Config",
    "Estimator",
    "FunctionalMode",
    "MqttConfig",
    "MqttProtocol",
    "MqttTransport",
    "PipelineConfig",
    "QuietHours",
    "SensorConfig",
    "SourceConfig",
    "SourceKind",
    "StorageConfig",
    "WearerConfig",
    "default_store_path",
    "load_config",
    "parse_config",
    "user_data_dir",
]

#: Firmware profile names usable in ``sensors[].profile`` (DESIGN §5). The profile registry
#: (``sensorhub.profiles``) is the authority once it exists; this list keeps the config layer
#: free of decoder imports.
PROFILE_NAMES: Final = (
    "witmotion_bwt901blecl",
    "polar_verity_sense",
    "movesense",
    "metamotion",
    "thingy52",
    "sensorhub_open",
)

#: Simulator scenarios usable in ``source.scenario`` (mirrors ``sensorhub.sim.scenarios``).
SCENARIO_NAMES: Final = ("desk_session", "cat_camel", "long_sitting", "confounders", "demo")

#: Sample rates the simulator produces: the native rates of the supported IMUs (LSM6DS3 family
#: 52/104 Hz, BMI160/BMI270 100/200 Hz).
SIMULATOR_RATES_HZ: Final = (52.0, 100.0, 104.0, 200.0)

#: One sensor per placement at most.
MAX_SENSORS: Final = len(Placement)

#: MQTT topic levels must stay short enough for dashboards and the topic contract (DESIGN §7).
WEARER_ID_MAX_BYTES: Final = 64

# Default ports per URL scheme: IANA 1883/8883 for MQTT (MQTT 5.0 §4.8.2 note); WebSocket URLs
# default to their HTTP ports as RFC 6455 §3 says.
_MQTT_DEFAULT_PORTS: Final = MappingProxyType({"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443})
_MQTT_TLS_SCHEMES: Final = frozenset({"mqtts", "wss"})
_MQTT_WS_SCHEMES: Final = frozenset({"ws", "wss"})
# The path brokers serve MQTT over WebSocket on by convention (mosquitto, EMQX, HiveMQ, paho).
_MQTT_DEFAULT_WS_PATH: Final = "/mqtt"

_MAC_RE: Final = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_UUID_RE: Final = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_HOSTNAME_RE: Final = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUIET_HOURS_RE: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_TOML_POSITION_RE: Final = re.compile(
    r"^(?P<what>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


# --------------------------------------------------------------------------------------------
# Typed records
# --------------------------------------------------------------------------------------------


class SourceKind(enum.StrEnum):
    """Where IMU samples come from."""

    BLE = "ble"
    SIMULATOR = "simulator"
    REPLAY = "replay"


class Estimator(enum.StrEnum):
    """Orientation estimator of each sensor pipeline."""

    VQF = "vqf"
    COMPLEMENTARY = "complementary"


class FunctionalMode(enum.StrEnum):
    """Whether calibration looks for a functional movement after the neutral capture (DESIGN §3)."""

    AUTO = "auto"
    NONE = "none"


class MqttProtocol(enum.StrEnum):
    """MQTT protocol version spoken to the broker."""

    V5 = "5"
    V311 = "3.1.1"


class MqttTransport(enum.StrEnum):
    """Transport under MQTT, named as aiomqtt names it."""

    TCP = "tcp"
    WEBSOCKETS = "websockets"


@dataclass(frozen=True, slots=True, kw_only=True)
class WearerConfig:
    """Who wears the sensors.

    Attributes:
        id: wearer id, used in MQTT topics (``sensorhub/<id>/…``) and session records;
            1–64 UTF-8 bytes without ``+``, ``#``, ``/`` or control characters.
        name: display name, free text.
    """

    id: str = "default"
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    """Where IMU samples come from.

    Attributes:
        kind: BLE sensors, the simulator, or a recorded session.
        scenario: simulator scenario, one of :data:`SCENARIO_NAMES`.
        seed: simulator random seed (same seed, same samples).
        speed: simulator speed relative to real time.
        rate_hz: simulator sample rate, one of :data:`SIMULATOR_RATES_HZ`.
        session: id of the recorded session to replay; required when ``kind`` is replay.
    """

    kind: SourceKind = SourceKind.BLE
    scenario: str = "desk_session"
    seed: int = 0
    speed: float = 1.0
    rate_hz: float = 100.0
    session: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorConfig:
    """One sensor on the back.

    Attributes:
        placement: where it sits (unique across sensors).
        profile: firmware profile name, one of :data:`PROFILE_NAMES`.
        address: BLE MAC (``AA:BB:CC:DD:EE:FF``) or CoreBluetooth UUID, upper-cased; or None.
        name: advertised BLE name; or None. With a BLE source exactly one of address and name is set.
        rate_hz: requested sample rate, or None for the profile's default.
    """

    placement: Placement
    profile: str
    address: str | None = None
    name: str | None = None
    rate_hz: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """Signal-processing settings shared by every sensor pipeline.

    Attributes:
        estimator: orientation estimator.
        output_rate_hz: rate of the common grid the rig aligns sensors on.
        neutral_duration_s: length of the static neutral capture.
        functional: look for a functional movement after the neutral capture, or not.
        sensor_timeout_s: a sensor silent this long counts as disconnected.
    """

    estimator: Estimator = Estimator.VQF
    output_rate_hz: float = 50.0
    neutral_duration_s: float = 10.0
    functional: FunctionalMode = FunctionalMode.AUTO
    sensor_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window without alerts; ``end`` before ``start`` wraps past midnight.

    Attributes:
        start: first minute of the window (inclusive).
        end: end of the window (exclusive).
    """

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        """Whether the local wall-clock time ``moment`` falls inside the window."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """When and how the wearer is alerted.

    The thresholds are flexion beyond the calibrated neutral, in degrees; an alert starts after
    ``dwell_s`` above a threshold and ends when the angle drops ``hysteresis_deg`` below it.

    Attributes:
        enabled: alert at all.
        thoracic_threshold_deg: thoracic flexion that counts as slouching.
        lumbar_threshold_deg: lumbar flexion that counts as slouching.
        trunk_threshold_deg: flexion that counts as slouching for the whole spine (upper thoracic −
            sacral) and, with one sensor, for the trunk.
        dwell_s: how long a posture must last before an alert.
        hysteresis_deg: how far below the threshold the angle must drop to end an alert.
        max_per_hour: alerts per rolling hour at most; 0 = no limit.
        snooze_min: length of a snooze (``cmd/snooze``).
        quiet_hours: daily window without alerts, or None.
        buzz: buzz the sensor's motor where it has one.
        break_after_min: sitting time before a break reminder; 0 = no reminders.
    """

    enabled: bool = True
    thoracic_threshold_deg: float = 15.0
    lumbar_threshold_deg: float = 10.0
    trunk_threshold_deg: float = 10.0
    dwell_s: float = 30.0
    hysteresis_deg: float = 3.0
    max_per_hour: int = 4
    snooze_min: float = 30.0
    quiet_hours: QuietHours | None = None
    buzz: bool = True
    break_after_min: float = 45.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttConfig:
    """Connection to an MQTT broker.

    The password itself is never stored here: only where to read it (:meth:`read_password`), so
    a repr, a log line or ``config check`` output cannot leak it.

    Attributes:
        url: broker URL, normalised to ``scheme://host:port[/path]``; schemes mqtt, mqtts (TLS),
            ws, wss (TLS).
        client_id: MQTT client identifier.
        username: user name, or None.
        password_file: file whose content (minus one trailing newline) is the password, or None.
        password_env: environment variable holding the password, or None.
        ca_file: CA bundle to verify the broker with, or None for the system store.
        client_cert: client certificate (PEM) for mutual TLS, or None.
        client_key: private key of ``client_cert`` when not in the same file, or None.
        keepalive_s: MQTT keep-alive interval; 0 disables it.
        publish_rate_hz: rate of the ``angles`` topic.
        discovery: publish Home Assistant MQTT discovery.
        discovery_prefix: Home Assistant discovery prefix.
        outbox_max_messages: messages kept for the broker while it is unreachable.
        protocol: MQTT protocol version.
    """

    url: str
    client_id: str
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    keepalive_s: int = 30
    publish_rate_hz: float = 10.0
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    outbox_max_messages: int = 10_000
    protocol: MqttProtocol = MqttProtocol.V5

    @property
    def _parts(self) -> SplitResult:
        return urlsplit(self.url)

    @property
    def host(self) -> str:
        """Broker host name or IP address (IPv6 without brackets)."""
        return self._parts.hostname or ""

    @property
    def port(self) -> int:
        """Broker port, the scheme's default when the URL has none."""
        parts = self._parts
        return parts.port if parts.port is not None else _MQTT_DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (mqtts://, wss://)."""
        return self._parts.scheme in _MQTT_TLS_SCHEMES

    @property
    def transport(self) -> MqttTransport:
        """TCP for mqtt(s)://, WebSockets for ws(s)://."""
        return MqttTransport.WEBSOCKETS if self._parts.scheme in _MQTT_WS_SCHEMES else MqttTransport.TCP

    @property
    def websocket_path(self) -> str | None:
        """HTTP path of the WebSocket endpoint, or None over TCP."""
        if self.transport is MqttTransport.TCP:
            return None
        return self._parts.path or _MQTT_DEFAULT_WS_PATH

    def read_password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """Read the password from its file or environment variable, at connect time.

        Args:
            environ: environment to read ``password_env`` from; ``os.environ`` when None.

        Returns:
            The password, or None when no password source is configured.

        Raises:
            ConfigError: the password file cannot be read or the variable is not set.
        """
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(
                    f"cannot read the password file {str(self.password_file)!r}: {reason}",
                    key="mqtt.password_file",
                ) from exc
            # Secret files made with `echo` or an editor end in a newline that is not part of the password.
            return text.removesuffix("\n").removesuffix("\r")
        if self.password_env is not None:
            env = os.environ if environ is None else environ
            value = env.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"environment variable {self.password_env} is not set",
                    key="mqtt.password_env",
                    advice="export it before starting sensorhub, or use mqtt.password_file",
                )
            return value
        return None


def user_data_dir(platform: str | None = None) -> Path:
    """The per-user data directory of the platform, without a dependency such as platformdirs.

    Linux and other Unixes follow the XDG Base Directory spec (``$XDG_DATA_HOME`` when set to an
    absolute path, else ``~/.local/share``); macOS uses ``~/Library/Application Support``;
    Windows uses ``%LOCALAPPDATA%`` (else ``~/AppData/Local``).

    Args:
        platform: a ``sys.platform`` value; the running platform when None.
    """
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if platform in ("win32", "cygwin"):
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says relative paths in its variables are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".local" / "share"


def default_store_path() -> Path:
    """Default session database: ``<user data dir>/sensorhub/sessions.db``."""
    return user_data_dir() / "sensorhub" / "sessions.db"


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    """The local session store.

    Attributes:
        path: SQLite database file.
        record_raw: keep raw IMU samples, not only angles and events.
        retention_days: delete sessions older than this; 0 = keep forever.
        max_size_mb: delete the oldest sessions beyond this size; 0 = unlimited.
    """

    path: Path = field(default_factory=default_store_path)
    record_raw: bool = True
    retention_days: int = 90
    max_size_mb: int = 2048


#: Sections and their keys, in file order. Each key is also the name of its dataclass field.
SECTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "wearer": ("id", "name"),
        "source": ("kind", "scenario", "seed", "speed", "rate_hz", "session"),
        "sensors": ("placement", "profile", "address", "name", "rate_hz"),
        "pipeline": ("estimator", "output_rate_hz", "neutral_duration_s", "functional", "sensor_timeout_s"),
        "alerts": (
            "enabled",
            "thoracic_threshold_deg",
            "lumbar_threshold_deg",
            "trunk_threshold_deg",
            "dwell_s",
            "hysteresis_deg",
            "max_per_hour",
            "snooze_min",
            "quiet_hours",
            "buzz",
            "break_after_min",
        ),
        "mqtt": (
            "url",
            "username",
            "password_file",
            "password_env",
            "client_id",
            "ca_file",
            "client_cert",
            "client_key",
            "keepalive_s",
            "publish_rate_hz",
            "discovery",
            "discovery_prefix",
            "outbox_max_messages",
            "protocol",
        ),
        "storage": ("path", "record_raw", "retention_days", "max_size_mb"),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration of one sensorhub instance.

    Attributes:
        sensors: 1–3 sensors, in file order, placements unique.
        wearer: who wears them.
        source: where samples come from.
        pipeline: signal processing.
        alerts: alerting.
        mqtt: broker connection, or None for no MQTT.
        storage: session store.
    """

    sensors: tuple[SensorConfig, ...]
    wearer: WearerConfig = field(default_factory=WearerConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    mqtt: MqttConfig | None = None
    storage: StorageConfig = field(default_factory=StorageConfig)

    def as_dict(self) -> dict[str, JsonValue]:
        """The configuration as TOML-shaped plain data, for display (``sensorhub config check``).

        Keys are the config file's keys; unset optional values are left out, so the result parses
        back into an equal :class:`Config` with :func:`parse_config`.
        """
        out: dict[str, JsonValue] = {}
        for section in SECTIONS:
            if section == "sensors":
                out[section] = [_section_dict(sensor, SECTIONS[section]) for sensor in self.sensors]
                continue
            value: object = getattr(self, section)
            if value is not None:
                out[section] = _section_dict(value, SECTIONS[section])
        return out


def _plain(value: object) -> JsonValue:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Path | QuietHours):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"no plain form for {type(value).__name__}")  # pragma: no cover - programming error


def _section_dict(record: object, keys: Sequence[str]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for key in keys:
        value: object = getattr(record, key)
        if value is not None:
            out[key] = _plain(value)
    return out


# Each parser reads its defaults from these, so the numbers above stay the only copy.
_SOURCE_DEFAULTS: Final = SourceConfig()
_WEARER_DEFAULTS: Final = WearerConfig()
_PIPELINE_DEFAULTS: Final = PipelineConfig()
_ALERTS_DEFAULTS: Final = AlertsConfig()
_MQTT_DEFAULTS: Final = MqttConfig(url="mqtt://127.0.0.1:1883", client_id="sensorhub-default")
# A placeholder path keeps the platform lookup of the real default out of import time.
_STORAGE_DEFAULTS: Final = StorageConfig(path=Path("sessions.db"))


# --------------------------------------------------------------------------------------------
# Loading and parsing
# --------------------------------------------------------------------------------------------


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML config file.

    Args:
        path: the config file. Relative paths inside it are resolved against its directory.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file cannot be read, is not valid UTF-8 TOML, or has a wrong value.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        advice = (
            "check the path; sensorhub.example.toml is a starting point" if isinstance(exc, FileNotFoundError) else ""
        )
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}", path=name, advice=advice) from exc
    try:
        # utf-8-sig: tolerate the byte-order mark some Windows editors still write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 at line {line}", path=name, advice="TOML files must be UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_toml_error(exc, text), path=name) from exc
    return parse_config(data, path=name)


def _describe_toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    # Python 3.11's TOMLDecodeError carries its position only inside the message text.
    match = _TOML_POSITION_RE.match(str(exc))
    if match is None:
        return f"invalid TOML: {exc}"
    what = match["what"]
    what = what[:1].lower() + what[1:]
    if match["line"] is None:
        return f"invalid TOML at the end of the file (line {max(1, len(text.splitlines()))}): {what}"
    return f"invalid TOML at line {match['line']}, column {match['col']}: {what}"


def parse_config(data: Mapping[str, object], path: str | None = None) -> Config:
    """Validate already-parsed TOML data.

    Args:
        data: the TOML document as ``tomllib`` returns it.
        path: the file it came from, named in error messages and used as the base of relative
            paths; None for data that has no file (relative paths then stay relative).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: naming the file, the dotted key and what is allowed.
    """
    ctx = _Context(path)
    for section in data:
        if section not in SECTIONS:
            raise ctx.unknown(str(section), str(section), tuple(SECTIONS), kind="section")
    wearer = _parse_wearer(ctx.table(data, "wearer"))
    source = _parse_source(ctx.table(data, "source"))
    sensors = _parse_sensors(ctx, data.get("sensors"), source.kind)
    pipeline = _parse_pipeline(ctx.table(data, "pipeline"))
    alerts = _parse_alerts(ctx.table(data, "alerts"))
    mqtt = _parse_mqtt(ctx.table(data, "mqtt"), wearer) if "mqtt" in data else None
    storage = _parse_storage(ctx.table(data, "storage"))
    return Config(
        sensors=sensors,
        wearer=wearer,
        source=source,
        pipeline=pipeline,
        alerts=alerts,
        mqtt=mqtt,
        storage=storage,
    )


_E = TypeVar("_E", bound=enum.StrEnum)


def _type_name(value: object) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dt.datetime):
        return "date-time"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    return type(value).__name__


def _shown(value: object) -> str:
    """A value as a message shows it: short, quoted when a string."""
    if isinstance(value, Mapping | list | tuple):
        return _type_name(value)
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{_type_name(value)} {text}"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else repr(number)


def _choices(names: Sequence[str]) -> str:
    return ", ".join(names)


def _suggest(value: str, allowed: Sequence[str]) -> str | None:
    # Abbreviations ("witmotion" for "witmotion_bwt901blecl") score low on similarity but are
    # unambiguous, so they come first.
    prefixed = [name for name in allowed if value and name.startswith(value)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def _bad_character(value: str) -> str | None:
    """The first control or surrogate character in ``value``, as U+XXXX, or None."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X}"
    return None


# Hints for keys people write by habit that sensorhub deliberately does not have.
_KEY_HINTS: Final = MappingProxyType(
    {
        "mqtt.password": "the password is never written in the config: put it in a file and set "
        "password_file, or in an environment variable and set password_env",
        "mqtt.host": 'write the host and port into url, e.g. url = "mqtt://127.0.0.1:1883"',
        "mqtt.port": 'write the host and port into url, e.g. url = "mqtt://127.0.0.1:1883"',
        "mqtt.tls": "use an mqtts:// or wss:// url for TLS",
    }
)


class _Context:
    """Where a document came from: named in errors and the base of relative paths."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.base_dir = Path(os.path.abspath(path)).parent if path is not None else None

    def error(self, key: str, message: str, advice: str = "") -> ConfigError:
        return ConfigError(message, path=self.path, key=key, advice=advice)

    def unknown(self, dotted: str, name: str, allowed: Sequence[str], *, kind: str, where: str = "") -> ConfigError:
        hint = _KEY_HINTS.get(dotted)
        if hint is not None:
            return self.error(dotted, f"unknown {kind}", hint)
        suggestion = _suggest(name, allowed)
        listing = f"allowed {kind}s{' in ' + where if where else ''}: {_choices(allowed)}"
        advice = f"did you mean {suggestion!r}? {listing}" if suggestion else listing
        return self.error(dotted, f"unknown {kind}", advice)

    def table(self, data: Mapping[str, object], section: str) -> _Table:
        value = data.get(section)
        if value is None:
            return _Table({}, section, self)
        if not isinstance(value, Mapping):
            raise self.error(section, f"expected a table ([{section}]), got {_shown(value)}")
        return _Table(value, section, self)


class _Table:
    """One TOML table being read, with typed getters that raise ConfigError naming the key.

    Unknown keys are rejected on construction, before any value is looked at: a misspelt key is
    usually the real problem.
    """

    def __init__(self, data: Mapping[str, object], where: str, ctx: _Context, section: str | None = None) -> None:
        self._data = data
        self.where = where
        self.ctx = ctx
        section = where if section is None else section
        allowed = SECTIONS[section]
        header = f"[[{section}]]" if section == "sensors" else f"[{section}]"
        for key in data:
            if key not in allowed:
                raise ctx.unknown(self.dotted(str(key)), str(key), allowed, kind="key", where=header)

    def __contains__(self, key: str) -> bool:
        return self._data.get(key) is not None

    def dotted(self, key: str) -> str:
        return f"{self.where}.{key}"

    def error(self, key: str, message: str, advice: str = "") -> ConfigError:
        return self.ctx.error(self.dotted(key), message, advice)

    def _check_range(
        self,
        key: str,
        value: float,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
    ) -> None:
        ok = (
            (gt is None or value > gt)
            and (ge is None or value >= ge)
            and (lt is None or value < lt)
            and (le is None or value <= le)
        )
        if ok:
            return
        bounds = [
            f"{label} {_fmt(bound)}"
            for label, bound in (("greater than", gt), ("at least", ge), ("less than", lt), ("at most", le))
            if bound is not None
        ]
        raise self.error(key, f"must be {' and '.join(bounds)}, got {_fmt(value)}")

    def optional_string(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_shown(value)}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_shown(value)}")
        return value

    def integer(self, key: str, default: int, *, ge: int | None = None, le: int | None = None) -> int:
        value = self._data.get(key)
        if value is None:
            return default
        # bool is an int subclass in Python; `true` is not a count.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {_shown(value)}")
        self._check_range(key, value, ge=ge, le=le)
        return value

    def optional_number(
        self,
        key: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
    ) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise self.error(key, f"number out of range: {value}") from None
        if not math.isfinite(number):
            raise self.error(key, f"must be a finite number, got {value}")
        self._check_range(key, number, gt=gt, ge=ge, lt=lt, le=le)
        return number

    def number(
        self,
        key: str,
        default: float,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
    ) -> float:
        value = self.optional_number(key, gt=gt, ge=ge, lt=lt, le=le)
        return default if value is None else value

    def name_choice(self, key: str, allowed: Sequence[str], default: str | None) -> str:
        """A string that must be one of ``allowed``; required when ``default`` is None."""
        value = self._data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "required", f"choose one of: {_choices(allowed)}")
            return default
        if not isinstance(value, str):
            quoted = ", ".join(repr(name) for name in allowed)
            raise self.error(key, f"expected a string, one of: {quoted}; got {_shown(value)}")
        if value not in allowed:
            suggestion = _suggest(value, allowed)
            advice = f"did you mean {suggestion!r}?" if suggestion else ""
            raise self.error(key, f"{value!r} is not allowed; choose one of: {_choices(allowed)}", advice)
        return value

    def choice(self, key: str, enum_type: type[_E], default: _E | None) -> _E:
        """A string that must be a value of ``enum_type``; required when ``default`` is None."""
        names = [member.value for member in enum_type]
        return enum_type(self.name_choice(key, names, None if default is None else default.value))

    def path(self, key: str) -> Path | None:
        """A file path: ``~`` expanded, relative paths taken from the config file's directory."""
        value = self.optional_string(key)
        if value is None:
            return None
        if not value.strip():
            raise self.error(key, "must not be empty")
        bad = _bad_character(value)
        if bad is not None:
            raise self.error(key, f"must not contain control characters (found {bad})")
        resolved = Path(os.path.expanduser(value))
        if not resolved.is_absolute() and self.ctx.base_dir is not None:
            resolved = self.ctx.base_dir / resolved
        return resolved


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _wearer_id_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    bad = _bad_character(value)
    if bad is not None:
        return f"must not contain control characters (found {bad})"
    forbidden = [char for char in "+#/" if char in value]
    if forbidden:
        shown = ", ".join(repr(char) for char in forbidden)
        return f"must not contain {shown}: '+', '#' and '/' are MQTT topic wildcards and separators"
    size = len(value.encode("utf-8"))
    if size > WEARER_ID_MAX_BYTES:
        return f"is {size} UTF-8 bytes long; {WEARER_ID_MAX_BYTES} at most"
    return None


def _parse_wearer(table: _Table) -> WearerConfig:
    wearer_id = table.string("id", _WEARER_DEFAULTS.id)
    problem = _wearer_id_problem(wearer_id)
    if problem is not None:
        raise table.error("id", f"{wearer_id!r} {problem}", 'use letters, digits, "-" or "_", e.g. id = "alex"')
    return WearerConfig(id=wearer_id, name=table.string("name", _WEARER_DEFAULTS.name))


def _parse_source(table: _Table) -> SourceConfig:
    kind = table.choice("kind", SourceKind, _SOURCE_DEFAULTS.kind)
    scenario = table.name_choice("scenario", SCENARIO_NAMES, _SOURCE_DEFAULTS.scenario)
    # numpy's SeedSequence rejects negative seeds.
    seed = table.integer("seed", _SOURCE_DEFAULTS.seed, ge=0)
    speed = table.number("speed", _SOURCE_DEFAULTS.speed, gt=0, le=1000)
    rate_hz = table.number("rate_hz", _SOURCE_DEFAULTS.rate_hz)
    if rate_hz not in SIMULATOR_RATES_HZ:
        rates = _choices([_fmt(rate) for rate in SIMULATOR_RATES_HZ])
        raise table.error("rate_hz", f"{_fmt(rate_hz)} Hz is not a simulator rate; choose one of: {rates}")
    session = table.optional_string("session")
    if session is not None and (not session.strip() or _bad_character(session) is not None):
        raise table.error("session", f"{session!r} is not a session id", "list sessions with `sensorhub sessions list`")
    if kind is SourceKind.REPLAY and session is None:
        raise table.error(
            "session", "required when source.kind = 'replay'", "list sessions with `sensorhub sessions list`"
        )
    return SourceConfig(kind=kind, scenario=scenario, seed=seed, speed=speed, rate_hz=rate_hz, session=session)


def _parse_sensors(ctx: _Context, raw: object, kind: SourceKind) -> tuple[SensorConfig, ...]:
    example = "add a [[sensors]] table with placement and profile; see sensorhub.example.toml"
    if raw is None or (isinstance(raw, list | tuple) and not raw):
        raise ctx.error("sensors", "at least one sensor is required", example)
    if isinstance(raw, Mapping):
        raise ctx.error(
            "sensors", "expected an array of tables", "write [[sensors]] with double brackets, once per sensor"
        )
    if not isinstance(raw, list | tuple) or not all(isinstance(item, Mapping) for item in raw):
        raise ctx.error("sensors", f"expected an array of tables ([[sensors]]), got {_shown(raw)}", example)
    if len(raw) > MAX_SENSORS:
        raise ctx.error(
            "sensors",
            f"{MAX_SENSORS} sensors at most (one per placement), got {len(raw)}",
            f"placements: {_choices(list(Placement))}",
        )
    sensors: list[SensorConfig] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        sensor = _parse_sensor(_Table(item, f"sensors[{index}]", ctx, section="sensors"), kind)
        for key, value in (("placement", str(sensor.placement)), ("address", sensor.address), ("name", sensor.name)):
            if value is None:
                continue
            other = seen.get(f"{key}={value}")
            if other is not None:
                advice = "each placement at most once" if key == "placement" else "each physical sensor at most once"
                if key == "name":
                    advice = "sensors of one model often advertise the same name; use address to tell them apart"
                raise ctx.error(f"sensors[{index}].{key}", f"{value!r} is already used by {other}", advice)
            seen[f"{key}={value}"] = f"sensors[{index}]"
        sensors.append(sensor)
    return tuple(sensors)


def _parse_sensor(table: _Table, kind: SourceKind) -> SensorConfig:
    placement = table.choice("placement", Placement, None)
    profile = table.name_choice("profile", PROFILE_NAMES, None)
    address = table.optional_string("address")
    if address is not None:
        if not (_MAC_RE.match(address) or _UUID_RE.match(address)):
            raise table.error(
                "address",
                f"{address!r} is not a BLE address",
                "use a MAC like AA:BB:CC:DD:EE:FF, or on macOS the CoreBluetooth UUID; `sensorhub scan` lists them",
            )
        # BlueZ and CoreBluetooth both report upper case; comparing normalised strings is then exact.
        address = address.upper()
    name = table.optional_string("name")
    if name is not None and (not name.strip() or _bad_character(name) is not None):
        raise table.error("name", f"{name!r} is not a BLE device name", "`sensorhub scan` lists nearby sensors")
    if address is not None and name is not None:
        raise table.error("name", "give either address or name, not both", "address is the more exact of the two")
    if kind is SourceKind.BLE and address is None and name is None:
        raise table.error(
            "address", "required when source.kind = 'ble'", "or set name; `sensorhub scan` lists nearby sensors"
        )
    rate_hz = table.optional_number("rate_hz", gt=0, le=1000)
    return SensorConfig(placement=placement, profile=profile, address=address, name=name, rate_hz=rate_hz)


def _parse_pipeline(table: _Table) -> PipelineConfig:
    d = _PIPELINE_DEFAULTS
    return PipelineConfig(
        estimator=table.choice("estimator", Estimator, d.estimator),
        output_rate_hz=table.number("output_rate_hz", d.output_rate_hz, gt=0, le=1000),
        # Under 3 s the neutral average is dominated by breathing and sway.
        neutral_duration_s=table.number("neutral_duration_s", d.neutral_duration_s, ge=4, le=120),
        functional=table.choice("functional", FunctionalMode, d.functional),
        sensor_timeout_s=table.number("sensor_timeout_s", d.sensor_timeout_s, ge=0.1, le=60),
    )


def _parse_quiet_hours(table: _Table) -> QuietHours | None:
    text = table.string("quiet_hours", "")
    if text == "":
        return None
    advice = 'write "HH:MM-HH:MM" in 24-hour time, e.g. "22:00-07:00", or "" for none'
    match = _QUIET_HOURS_RE.match(text)
    if match is None:
        raise table.error("quiet_hours", f"{text!r} is not a time range", advice)
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
        raise table.error("quiet_hours", f"{text!r} has an impossible time", advice)
    quiet = QuietHours(start=dt.time(h1, m1), end=dt.time(h2, m2))
    if quiet.start == quiet.end:
        raise table.error("quiet_hours", f"{text!r} starts and ends at the same time", advice)
    return quiet


def _parse_alerts(table: _Table) -> AlertsConfig:
    d = _ALERTS_DEFAULTS
    thresholds = {
        "thoracic_threshold_deg": table.number("thoracic_threshold_deg", d.thoracic_threshold_deg, gt=0, le=90),
        "lumbar_threshold_deg": table.number("lumbar_threshold_deg", d.lumbar_threshold_deg, gt=0, le=90),
        "trunk_threshold_deg": table.number("trunk_threshold_deg", d.trunk_threshold_deg, gt=0, le=90),
    }
    hysteresis_deg = table.number("hysteresis_deg", d.hysteresis_deg, ge=0, le=30)
    smallest = min(thresholds, key=lambda key: thresholds[key])
    if hysteresis_deg >= thresholds[smallest]:
        # An alert ends below threshold − hysteresis; at or below zero it could end only in extension.
        limit = f"{smallest} = {_fmt(thresholds[smallest])}"
        raise table.error(
            "hysteresis_deg", f"must be smaller than every threshold, got {_fmt(hysteresis_deg)} ≥ {limit}"
        )
    return AlertsConfig(
        enabled=table.boolean("enabled", d.enabled),
        thoracic_threshold_deg=thresholds["thoracic_threshold_deg"],
        lumbar_threshold_deg=thresholds["lumbar_threshold_deg"],
        trunk_threshold_deg=thresholds["trunk_threshold_deg"],
        dwell_s=table.number("dwell_s", d.dwell_s, ge=0, le=3600),
        hysteresis_deg=hysteresis_deg,
        max_per_hour=table.integer("max_per_hour", d.max_per_hour, ge=0, le=60),
        snooze_min=table.number("snooze_min", d.snooze_min, gt=0, le=1440),
        quiet_hours=_parse_quiet_hours(table),
        buzz=table.boolean("buzz", d.buzz),
        break_after_min=table.number("break_after_min", d.break_after_min, ge=0, le=480),
    )


def _parse_mqtt_url(table: _Table) -> str:
    """Validate the broker URL and normalise it to ``scheme://host:port[/path]``."""
    url = table.optional_string("url")
    schemes = "mqtt://, mqtts:// (TLS), ws:// or wss:// (TLS)"
    if url is None:
        raise table.error("url", "required in [mqtt]", 'e.g. url = "mqtt://127.0.0.1:1883"; remove [mqtt] for no MQTT')
    if "://" not in url:
        raise table.error("url", f"{url!r} has no scheme", f"start it with {schemes}, e.g. mqtt://127.0.0.1:1883")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise table.error("url", f"{url!r} is not a valid URL: {exc}", "ports go from 1 to 65535") from None
    scheme = parts.scheme.lower()
    if scheme not in _MQTT_DEFAULT_PORTS:
        raise table.error("url", f"scheme {parts.scheme + '://'!r} is not supported", f"use {schemes}")
    if parts.username is not None or parts.password is not None:
        raise table.error(
            "url",
            "must not contain a user name or password",
            "set mqtt.username and mqtt.password_file or mqtt.password_env",
        )
    host = parts.hostname or ""
    if not host:
        raise table.error("url", f"{url!r} has no host", "e.g. mqtt://127.0.0.1:1883")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise table.error("url", f"{host!r} is not a valid IPv6 address") from None
        host_text = f"[{host}]"
    elif _HOSTNAME_RE.match(host):
        host_text = host
    else:
        raise table.error("url", f"{host!r} is not a valid host name")
    if port == 0:
        raise table.error("url", "port 0 is not a broker port", "ports go from 1 to 65535")
    if parts.query or parts.fragment:
        raise table.error("url", "must not have a query (?…) or fragment (#…)")
    path = parts.path
    if scheme in _MQTT_WS_SCHEMES:
        path = path or _MQTT_DEFAULT_WS_PATH
    elif path not in ("", "/"):
        raise table.error(
            "url", f"{scheme}:// URLs have no path, got {path!r}", "paths exist only for ws:// and wss://"
        )
    else:
        path = ""
    return f"{scheme}://{host_text}:{port if port is not None else _MQTT_DEFAULT_PORTS[scheme]}{path}"


def _parse_mqtt(table: _Table, wearer: WearerConfig) -> MqttConfig:
    d = _MQTT_DEFAULTS
    url = _parse_mqtt_url(table)
    tls = urlsplit(url).scheme in _MQTT_TLS_SCHEMES

    client_id = table.string("client_id", f"sensorhub-{wearer.id}")
    if not client_id or _bad_character(client_id) is not None or len(client_id.encode("utf-8")) > 65535:
        # MQTT 5.0 §1.5.4: a UTF-8 string of at most 65535 bytes; empty ids get a random one from the broker.
        raise table.error(
            "client_id", f"{client_id!r} is not a usable client id", "leave it out for sensorhub-<wearer id>"
        )

    protocol = table.choice("protocol", MqttProtocol, d.protocol)
    username = table.optional_string("username")
    password_file = table.path("password_file")
    password_env = table.optional_string("password_env")
    if password_env is not None and not _ENV_NAME_RE.match(password_env):
        raise table.error(
            "password_env", f"{password_env!r} is not an environment variable name", "e.g. SENSORHUB_MQTT_PASSWORD"
        )
    if password_file is not None and password_env is not None:
        raise table.error("password_env", "give either password_file or password_env, not both")
    if protocol is MqttProtocol.V311 and username is None and (password_file or password_env):
        # MQTT 3.1.1 §3.1.2.9: a password without a user name is a protocol violation.
        raise table.error("username", "required with a password when protocol = '3.1.1'")

    ca_file = table.path("ca_file")
    client_cert = table.path("client_cert")
    client_key = table.path("client_key")
    for key, value in (("ca_file", ca_file), ("client_cert", client_cert), ("client_key", client_key)):
        if value is not None and not tls:
            raise table.error(key, "needs a TLS url", "use mqtts:// or wss://")
    if client_key is not None and client_cert is None:
        raise table.error("client_key", "needs client_cert", "set client_cert to the certificate of this key")

    prefix = table.string("discovery_prefix", d.discovery_prefix)
    if (
        not prefix
        or _bad_character(prefix) is not None
        or any(char in prefix for char in "+#")
        or prefix.startswith(("/", "$"))
        or prefix.endswith("/")
    ):
        raise table.error(
            "discovery_prefix",
            f"{prefix!r} is not a topic prefix",
            "no '+', '#', leading '$' or leading/trailing '/'; Home Assistant expects 'homeassistant'",
        )

    return MqttConfig(
        url=url,
        client_id=client_id,
        username=username,
        password_file=password_file,
        password_env=password_env,
        ca_file=ca_file,
        client_cert=client_cert,
        client_key=client_key,
        # MQTT's keep-alive is a two-byte number of seconds (MQTT 5.0 §3.1.2.10); 0 turns it off.
        keepalive_s=table.integer("keepalive_s", d.keepalive_s, ge=0, le=65535),
        publish_rate_hz=table.number("publish_rate_hz", d.publish_rate_hz, gt=0, le=100),
        discovery=table.boolean("discovery", d.discovery),
        discovery_prefix=prefix,
        outbox_max_messages=table.integer("outbox_max_messages", d.outbox_max_messages, ge=100, le=10_000_000),
        protocol=protocol,
    )


def _parse_storage(table: _Table) -> StorageConfig:
    d = _STORAGE_DEFAULTS
    return StorageConfig(
        path=table.path("path") or default_store_path(),
        record_raw=table.boolean("record_raw", d.record_raw),
        retention_days=table.integer("retention_days", d.retention_days, ge=0, le=36_500),
        max_size_mb=table.integer("max_size_mb", d.max_size_mb, ge=0, le=100_000_000),
    )
