"""Load and validate one firmware profile file (``firmware_profiles/<name>.toml``) into a :class:`Profile`.

The schema is drawn in :mod:`sensorhub.profiles.base`. Validation is strict: an unknown key, a
value of the wrong type, a malformed UUID or hex string, a placeholder no rate or decoder setting
fills, or an axis mapping that is not a rotation is a :class:`~sensorhub.errors.ProfileError`
naming the file and the dotted key (``commands.start[1].hex``), so a profile author sees the
mistake when the file is loaded, not when a sensor first connects.

Normalisation:

- UUIDs become lower-case 128-bit strings; 16-bit (``"2a19"``, ``"0x2A19"``) and 32-bit short
  forms expand on the Bluetooth base UUID ``0000xxxx-0000-1000-8000-00805f9b34fb`` (Core Spec
  Vol 3 Part B §2.5.1).
- Hex payloads are kept as written (spaces allowed) and checked by rendering every command at
  every rate option, so :func:`render_hex` cannot fail later for a loaded profile.

Placeholders in hex (``{rate_code}``, ``{acc_range_g:u8}``) are filled from, in order of
precedence, the rate's template values (``[rates.values."<hz>"]``), ``rate_hz`` itself (the rate
being set up) and the decoder settings (``[decoder]``, or ``--set`` overrides). A placeholder may carry a format
(:data:`PLACEHOLDER_FORMATS`); without one a string value is inserted as hex as it stands and an
integer 0–255 as one byte.
"""

from __future__ import annotations

import math
import re
import struct
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, cast

from sensorhub.errors import ProfileError
from sensorhub.profiles.base import AXIS_NAMES, BatterySpec, CommandStep, Profile, SettingValue

__all__ = [
    "BLUETOOTH_BASE_UUID",
    "COMMAND_NAMES",
    "PLACEHOLDER_FORMATS",
    "load_profile",
    "normalize_uuid",
    "parse_profile",
    "placeholders",
    "render_hex",
    "template_values",
]

#: The Bluetooth base UUID that 16- and 32-bit UUIDs are short for (Core Spec Vol 3 Part B §2.5.1).
BLUETOOTH_BASE_UUID: Final = "00000000-0000-1000-8000-00805f9b34fb"

#: Command sequences a profile may define; every loaded profile has all of them (empty when absent).
COMMAND_NAMES: Final = ("configure", "start", "stop", "buzz")

#: ATT_MTU 517 minus the 3-byte write header: the longest value one GATT write can carry.
MAX_WRITE_BYTES: Final = 512
#: Longest sensible pause between two writes of a command sequence.
MAX_DELAY_S: Final = 10.0

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_UUID128_RE: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UUID_SHORT_RE: Final = re.compile(r"^(?:0x)?([0-9a-f]{4}|[0-9a-f]{8})$")
_HEX_DIGITS_RE: Final = re.compile(r"^[0-9a-fA-F]*$")
_PLACEHOLDER_RE: Final = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER_BODY_RE: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::([a-z0-9]+))?$")
_AXIS_RE: Final = re.compile(r"^([+-]?)([xyz])$")


def _pack(fmt: str) -> Callable[[SettingValue], bytes]:
    def pack(value: SettingValue) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"needs a number, got {value!r}")
        if fmt[-1] not in "fd":
            if not float(value).is_integer():
                raise ValueError(f"needs a whole number, got {value!r}")
            value = int(value)
        try:
            return struct.pack(fmt, value)
        except struct.error:
            raise ValueError(f"{value!r} does not fit") from None

    return pack


def _ascii(value: SettingValue) -> bytes:
    text = str(value).lower() if isinstance(value, bool) else _plain_number(value)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{value!r} is not ASCII") from None


def _plain_number(value: SettingValue) -> str:
    # rate_hz = 52.0 renders as "52" in ASCII paths such as Movesense's /Meas/IMU6/52.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: Placeholder formats, ``{name:fmt}``: how a setting value becomes bytes.
PLACEHOLDER_FORMATS: Final[Mapping[str, Callable[[SettingValue], bytes]]] = MappingProxyType(
    {
        "u8": _pack("<B"),
        "i8": _pack("<b"),
        "u16le": _pack("<H"),
        "u16be": _pack(">H"),
        "i16le": _pack("<h"),
        "i16be": _pack(">h"),
        "u32le": _pack("<I"),
        "u32be": _pack(">I"),
        "i32le": _pack("<i"),
        "f32le": _pack("<f"),
        "ascii": _ascii,
    }
)


def normalize_uuid(text: str) -> str:
    """A GATT UUID as lower-case 128-bit text; 16/32-bit short forms expand on the Bluetooth base.

    Raises:
        ValueError: ``text`` is no UUID.
    """
    value = text.strip().lower()
    if _UUID128_RE.match(value):
        return value
    if re.fullmatch(r"[0-9a-f]{32}", value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    short = _UUID_SHORT_RE.match(value)
    if short:
        return short.group(1).rjust(8, "0") + BLUETOOTH_BASE_UUID[8:]
    raise ValueError(f"{text!r} is not a UUID (128-bit 8-4-4-4-12 hex, or a 16-bit short form such as '2a19')")


def placeholders(hex_text: str) -> list[tuple[str, str | None]]:
    """The ``(name, format)`` of every ``{placeholder}`` in a hex template, in order.

    Raises:
        ValueError: a malformed placeholder or an unknown format.
    """
    found: list[tuple[str, str | None]] = []
    for match in _PLACEHOLDER_RE.finditer(hex_text):
        body = _PLACEHOLDER_BODY_RE.match(match.group(1).strip())
        if body is None:
            raise ValueError(f"malformed placeholder {match.group(0)!r}; write {{name}} or {{name:format}}")
        name, fmt = body.group(1), body.group(2)
        if fmt is not None and fmt not in PLACEHOLDER_FORMATS:
            raise ValueError(f"unknown placeholder format {fmt!r} in {match.group(0)!r}; formats: {_formats()}")
        found.append((name, fmt))
    rest = _PLACEHOLDER_RE.sub("", hex_text)
    if "{" in rest or "}" in rest:
        raise ValueError("unbalanced { or } in the hex string")
    return found


def _formats() -> str:
    return ", ".join(PLACEHOLDER_FORMATS)


def _render_value(value: SettingValue, fmt: str | None) -> str:
    """One placeholder's value as hex digits."""
    if fmt is not None:
        return PLACEHOLDER_FORMATS[fmt](value).hex()
    if isinstance(value, str):
        digits = "".join(value.split())
        if not _HEX_DIGITS_RE.match(digits) or len(digits) % 2:
            raise ValueError(f"value {value!r} is not hex bytes; give a format such as {{name:ascii}}")
        return digits.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return f"{value:02x}"
    if isinstance(value, float) and value.is_integer() and 0 <= value <= 0xFF:
        return f"{int(value):02x}"
    raise ValueError(f"value {value!r} is not one byte; give a format such as {{name:u16le}}")


def render_hex(hex_text: str, values: Mapping[str, SettingValue]) -> bytes:
    """Fill the placeholders of a hex template and return its bytes.

    Raises:
        ValueError: a placeholder with no value or a value its format cannot hold, or the result
            is not whole bytes of hex.
    """
    parts: list[str] = []
    pos = 0
    for match in _PLACEHOLDER_RE.finditer(hex_text):
        parts.append(hex_text[pos : match.start()])
        name, fmt = placeholders(match.group(0))[0]
        if name not in values:
            raise ValueError(f"placeholder {{{name}}} has no value")
        try:
            parts.append(_render_value(values[name], fmt))
        except ValueError as exc:
            raise ValueError(f"placeholder {match.group(0)}: {exc}") from None
        pos = match.end()
    parts.append(hex_text[pos:])
    digits = "".join("".join(parts).split())
    if not _HEX_DIGITS_RE.match(digits):
        bad = next(ch for ch in digits if ch not in "0123456789abcdefABCDEF")
        raise ValueError(f"{bad!r} is not a hex digit")
    if len(digits) % 2:
        raise ValueError(f"odd number of hex digits ({len(digits)}): bytes are two digits each")
    return bytes.fromhex(digits)


def load_profile(path: Path | str) -> Profile:
    """Read and validate one profile file.

    Raises:
        ProfileError: the file cannot be read, is not TOML, or breaks the schema (naming the key).
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ProfileError(f"cannot read the profile: {exc.strerror or exc}", path=name) from exc
    except UnicodeDecodeError as exc:
        raise ProfileError("not valid UTF-8", path=name, advice="TOML files must be UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"invalid TOML: {exc}", path=name) from exc
    return parse_profile(data, path=name, stem=Path(path).stem)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_TOP_KEYS: Final = (
    "name",
    "title",
    "vendor",
    "family",
    "clock",
    "source",
    "match",
    "gatt",
    "rates",
    "ranges",
    "axes",
    "decoder",
    "battery",
    "commands",
)
_CLOCKS: Final = ("device_time", "counter", "host_rate_model")
_BATTERY_FORMATS: Final = ("uint8_percent", "decoder")
_RANGE_KEYS: Final = ("acc_g", "gyro_dps")
_STEP_KEYS: Final = ("char", "hex", "meaning", "response", "with_response", "delay_s")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class _Reader:
    """Typed getters over one profile document; every error names the file and the dotted key."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def error(self, key: str, message: str, advice: str = "") -> ProfileError:
        return ProfileError(message, path=self.path, key=key, advice=advice)

    def table(self, data: Mapping[str, object], key: str, dotted: str, *, required: bool) -> Mapping[str, object]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.error(dotted, "required table is missing")
            return {}
        if not isinstance(value, Mapping):
            raise self.error(dotted, f"expected a table, got {_kind(value)}")
        return cast("Mapping[str, object]", value)

    def only(self, data: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
        for key in data:
            if key not in allowed:
                dotted = f"{where}.{key}" if where else key
                raise self.error(dotted, "unknown key", f"allowed here: {', '.join(allowed)}")

    def string(self, data: Mapping[str, object], key: str, dotted: str, *, required: bool = True) -> str:
        value = data.get(key)
        if value is None:
            if required:
                raise self.error(dotted, "required key is missing")
            return ""
        if not isinstance(value, str):
            raise self.error(dotted, f"expected a string, got {_kind(value)}")
        if required and not value.strip():
            raise self.error(dotted, "must not be empty")
        return value

    def boolean(self, data: Mapping[str, object], key: str, dotted: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(dotted, f"expected true or false, got {_kind(value)}")
        return value

    def number(self, value: object, dotted: str, *, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(dotted, f"expected a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(dotted, f"must be finite, got {value}")
        if positive and number <= 0:
            raise self.error(dotted, f"must be greater than 0, got {value}")
        return number

    def strings(self, data: Mapping[str, object], key: str, dotted: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.error(dotted, f"expected an array of strings, got {_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{dotted}[{i}]", f"expected a non-empty string, got {_kind(item)}")
        return cast("list[str]", value)

    def uuid(self, value: object, dotted: str) -> str:
        if not isinstance(value, str):
            raise self.error(dotted, f"expected a UUID string, got {_kind(value)}")
        try:
            return normalize_uuid(value)
        except ValueError as exc:
            raise self.error(dotted, str(exc)) from None


def parse_profile(data: Mapping[str, object], *, path: str | None = None, stem: str | None = None) -> Profile:
    """Validate already-parsed TOML data of one profile.

    Args:
        data: the document as ``tomllib`` returns it.
        path: the file it came from, named in errors and kept in :attr:`Profile.path`.
        stem: the file's stem, which ``name`` must equal; None to skip that check.

    Raises:
        ProfileError: naming the file and the dotted key.
    """
    r = _Reader(path)
    r.only(data, _TOP_KEYS, "")

    name = r.string(data, "name", "name")
    if not _NAME_RE.match(name):
        raise r.error("name", f"{name!r} is not a profile name", "lower case letters, digits and _, e.g. 'movesense'")
    if stem is not None and name != stem:
        raise r.error("name", f"{name!r} differs from the file name {stem!r}", f"name the file {name}.toml")
    title = r.string(data, "title", "title")
    vendor = r.string(data, "vendor", "vendor")
    family = r.string(data, "family", "family")
    if not _NAME_RE.match(family):
        raise r.error("family", f"{family!r} is not a decoder module name", "lower case letters, digits and _")
    clock = r.string(data, "clock", "clock")
    if clock not in _CLOCKS:
        raise r.error("clock", f"{clock!r} is not allowed", f"choose one of: {', '.join(_CLOCKS)}")
    source = r.string(data, "source", "source")

    name_patterns, service_uuids = _parse_match(r, data)
    gatt = _parse_gatt(r, data)
    default_rate_hz, rates_hz, rate_values = _parse_rates(r, data)
    ranges = _parse_ranges(r, data)
    axes = _parse_axes(r, data)
    decoder_settings = _parse_decoder(r, data)

    steps = _StepReader(r, gatt, rates_hz, rate_values, decoder_settings)
    battery = _parse_battery(r, data, gatt, steps)
    commands_table = r.table(data, "commands", "commands", required=False)
    r.only(commands_table, COMMAND_NAMES, "commands")
    commands = {cmd: steps.sequence(commands_table.get(cmd, []), f"commands.{cmd}") for cmd in COMMAND_NAMES}

    return Profile(
        name=name,
        title=title,
        vendor=vendor,
        family=family,
        clock=cast("Literal['device_time', 'counter', 'host_rate_model']", clock),
        source=source,
        name_patterns=tuple(name_patterns),
        service_uuids=tuple(service_uuids),
        gatt=MappingProxyType(gatt),
        default_rate_hz=default_rate_hz,
        rates_hz=rates_hz,
        rate_values=MappingProxyType({hz: MappingProxyType(v) for hz, v in rate_values.items()}),
        ranges=MappingProxyType(ranges),
        axes=axes,
        decoder_settings=MappingProxyType(decoder_settings),
        battery=battery,
        commands=MappingProxyType(commands),
        path=path or "",
    )


def _parse_match(r: _Reader, data: Mapping[str, object]) -> tuple[list[str], list[str]]:
    table = r.table(data, "match", "match", required=True)
    r.only(table, ("name_patterns", "service_uuids"), "match")
    patterns = r.strings(table, "name_patterns", "match.name_patterns")
    raw_uuids = table.get("service_uuids", [])
    if not isinstance(raw_uuids, list):
        raise r.error("match.service_uuids", f"expected an array of UUIDs, got {_kind(raw_uuids)}")
    uuids = [r.uuid(u, f"match.service_uuids[{i}]") for i, u in enumerate(raw_uuids)]
    if not patterns and not uuids:
        raise r.error("match", "needs name_patterns or service_uuids", "scan recognises a device by either")
    return patterns, uuids


def _parse_gatt(r: _Reader, data: Mapping[str, object]) -> dict[str, str]:
    table = r.table(data, "gatt", "gatt", required=True)
    if "data" not in table:
        raise r.error("gatt.data", "required key is missing", "the characteristic that notifies IMU data")
    gatt: dict[str, str] = {}
    for role, value in table.items():
        if not _NAME_RE.match(role):
            raise r.error(f"gatt.{role}", "a role is lower case letters, digits and _")
        gatt[role] = r.uuid(value, f"gatt.{role}")
    return gatt


def _parse_rates(
    r: _Reader, data: Mapping[str, object]
) -> tuple[float, tuple[float, ...], dict[float, dict[str, str]]]:
    table = r.table(data, "rates", "rates", required=True)
    r.only(table, ("default_hz", "options_hz", "values"), "rates")
    if "default_hz" not in table:
        raise r.error("rates.default_hz", "required key is missing")
    default_hz = r.number(table["default_hz"], "rates.default_hz")
    raw_options = table.get("options_hz")
    if not isinstance(raw_options, list) or not raw_options:
        raise r.error("rates.options_hz", "expected a non-empty array of rates in Hz")
    options = [r.number(v, f"rates.options_hz[{i}]") for i, v in enumerate(raw_options)]
    if len(set(options)) != len(options):
        raise r.error("rates.options_hz", "a rate is listed twice")
    if default_hz not in options:
        raise r.error("rates.default_hz", f"{default_hz:g} Hz is not one of options_hz", "add it to options_hz")

    values: dict[float, dict[str, str]] = {}
    raw_values = r.table(table, "values", "rates.values", required=False)
    for key, per_rate in raw_values.items():
        dotted = f'rates.values."{key}"'
        try:
            hz = float(key)
        except ValueError:
            hz = math.nan
        if hz not in options:
            listed = ", ".join(f"{v:g}" for v in options)
            raise r.error(dotted, f"{key!r} is not one of options_hz", f"options: {listed}")
        if hz in values:
            raise r.error(dotted, f"{hz:g} Hz is given twice")
        if not isinstance(per_rate, Mapping):
            raise r.error(dotted, f"expected a table of template values, got {_kind(per_rate)}")
        entry: dict[str, str] = {}
        for name, value in per_rate.items():
            if not _NAME_RE.match(name):
                raise r.error(f"{dotted}.{name}", "a template value name is lower case letters, digits and _")
            if not isinstance(value, str):
                raise r.error(f"{dotted}.{name}", f"expected a hex string, got {_kind(value)}")
            try:
                render_hex(value, {})
            except ValueError as exc:
                raise r.error(f"{dotted}.{name}", f"not hex bytes: {exc}") from None
            entry[name] = value
        values[hz] = entry
    return default_hz, tuple(options), values


def _parse_ranges(r: _Reader, data: Mapping[str, object]) -> dict[str, float]:
    table = r.table(data, "ranges", "ranges", required=False)
    r.only(table, _RANGE_KEYS, "ranges")
    return {key: r.number(value, f"ranges.{key}") for key, value in table.items()}


_Axis = tuple[int, float]


def _parse_axes(r: _Reader, data: Mapping[str, object]) -> tuple[_Axis, _Axis, _Axis]:
    table = r.table(data, "axes", "axes", required=True)
    r.only(table, AXIS_NAMES, "axes")
    mapping: list[_Axis] = []
    for axis in AXIS_NAMES:
        value = table.get(axis)
        if value is None:
            raise r.error(f"axes.{axis}", "required key is missing", 'a signed device axis such as "+x" or "-z"')
        match = _AXIS_RE.match(value.strip().lower()) if isinstance(value, str) else None
        if match is None:
            raise r.error(f"axes.{axis}", f'expected a signed device axis such as "-y", got {value!r}')
        mapping.append((AXIS_NAMES.index(match.group(2)), -1.0 if match.group(1) == "-" else 1.0))
    if sorted(index for index, _ in mapping) != [0, 1, 2]:
        raise r.error("axes", "must use each device axis x, y, z exactly once (a signed permutation)")
    # The determinant of a signed permutation matrix is sign(permutation) × product of signs; −1 is
    # a mirror, which would turn right-handed device axes into a left-handed frame and flip the
    # sense of every rotation the gyroscope reports.
    (i0, s0), (i1, s1), (i2, s2) = mapping
    parity = 1.0 if (i0, i1, i2) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    if parity * s0 * s1 * s2 < 0:
        raise r.error(
            "axes",
            "the mapping is a mirror image (determinant −1), not a rotation",
            "flip the sign of one axis: the sensor frame is right-handed (DESIGN §3)",
        )
    return mapping[0], mapping[1], mapping[2]


def _parse_decoder(r: _Reader, data: Mapping[str, object]) -> dict[str, SettingValue]:
    table = r.table(data, "decoder", "decoder", required=False)
    settings: dict[str, SettingValue] = {}
    for key, value in table.items():
        dotted = f"decoder.{key}"
        if not _NAME_RE.match(key):
            raise r.error(dotted, "a setting name is lower case letters, digits and _")
        if isinstance(value, float) and not math.isfinite(value):
            raise r.error(dotted, f"must be finite, got {value}")
        if not isinstance(value, bool | int | float | str):
            raise r.error(dotted, f"expected a number, string or boolean, got {_kind(value)}")
        settings[key] = value
    return settings


class _StepReader:
    """Reads command steps and checks each renders at every rate option."""

    def __init__(
        self,
        r: _Reader,
        gatt: Mapping[str, str],
        rates_hz: Sequence[float],
        rate_values: Mapping[float, Mapping[str, str]],
        decoder_settings: Mapping[str, SettingValue],
    ) -> None:
        self.r = r
        self.gatt = gatt
        self.rates_hz = rates_hz
        self.rate_values = rate_values
        self.decoder_settings = decoder_settings

    def sequence(self, raw: object, dotted: str) -> tuple[CommandStep, ...]:
        if not isinstance(raw, list):
            raise self.r.error(dotted, f"expected an array of steps ({{char, hex, meaning}}), got {_kind(raw)}")
        return tuple(self.step(item, f"{dotted}[{i}]") for i, item in enumerate(raw))

    def step(self, raw: object, dotted: str) -> CommandStep:
        r = self.r
        if not isinstance(raw, Mapping):
            raise r.error(dotted, f"expected a table {{char, hex, meaning}}, got {_kind(raw)}")
        table = cast("Mapping[str, object]", raw)
        r.only(table, _STEP_KEYS, dotted)
        char = r.string(table, "char", f"{dotted}.char")
        if char not in self.gatt:
            raise r.error(f"{dotted}.char", f"{char!r} is not a [gatt] role", f"roles: {', '.join(self.gatt)}")
        hex_text = r.string(table, "hex", f"{dotted}.hex")
        self.check_hex(hex_text, f"{dotted}.hex")
        meaning = r.string(table, "meaning", f"{dotted}.meaning")
        delay_s = r.number(table.get("delay_s", 0.0), f"{dotted}.delay_s", positive=False)
        if not 0.0 <= delay_s <= MAX_DELAY_S:
            raise r.error(f"{dotted}.delay_s", f"must be between 0 and {MAX_DELAY_S:g} s, got {delay_s:g}")
        return CommandStep(
            char=char,
            hex=hex_text,
            meaning=meaning,
            response=r.boolean(table, "response", f"{dotted}.response", False),
            with_response=r.boolean(table, "with_response", f"{dotted}.with_response", True),
            delay_s=delay_s,
        )

    def check_hex(self, hex_text: str, dotted: str) -> None:
        try:
            placeholders(hex_text)
        except ValueError as exc:
            raise self.r.error(dotted, str(exc)) from None
        for hz in self.rates_hz:
            try:
                payload = render_hex(hex_text, template_values(hz, self.rate_values, self.decoder_settings))
            except ValueError as exc:
                known = sorted(template_values(hz, self.rate_values, self.decoder_settings))
                raise self.r.error(
                    dotted, f"at {hz:g} Hz: {exc}", f"values known at that rate: {', '.join(known)}"
                ) from None
            if not payload:
                raise self.r.error(dotted, "empty payload")
            if len(payload) > MAX_WRITE_BYTES:
                raise self.r.error(dotted, f"{len(payload)} bytes is longer than one GATT write ({MAX_WRITE_BYTES})")


def template_values(
    rate_hz: float,
    rate_values: Mapping[float, Mapping[str, str]],
    settings: Mapping[str, SettingValue],
) -> dict[str, SettingValue]:
    """Everything a placeholder may name at ``rate_hz``: the rate's values, ``rate_hz``, then the settings."""
    return {**settings, "rate_hz": rate_hz, **rate_values.get(rate_hz, {})}


def _parse_battery(
    r: _Reader, data: Mapping[str, object], gatt: Mapping[str, str], steps: _StepReader
) -> BatterySpec | None:
    if data.get("battery") is None:
        return None
    table = r.table(data, "battery", "battery", required=True)
    r.only(table, ("char", "format", "request"), "battery")
    char = r.string(table, "char", "battery.char")
    if char not in gatt:
        raise r.error("battery.char", f"{char!r} is not a [gatt] role", f"roles: {', '.join(gatt)}")
    fmt = r.string(table, "format", "battery.format")
    if fmt not in _BATTERY_FORMATS:
        raise r.error("battery.format", f"{fmt!r} is not allowed", f"choose one of: {', '.join(_BATTERY_FORMATS)}")
    request = steps.sequence(table.get("request", []), "battery.request")
    return BatterySpec(char=char, format=cast("Literal['uint8_percent', 'decoder']", fmt), request=request)
