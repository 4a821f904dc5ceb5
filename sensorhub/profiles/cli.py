"""``sensorhub profiles list | show NAME`` and ``sensorhub decode`` (DESIGN §5).

``decode`` prints JSON Lines on stdout, one object per decoded item in arrival order::

    {"sensor_time_s": float|null, "seq": int|null, "acc_mps2": [x, y, z]|null, "gyro_radps": [x, y, z]|null}
    {"kind": "battery", "percent": 87, ...}

in the device's own axes. A corrupt payload prints no samples and one line on stderr, and decoding
goes on with the next payload (exit 0); a decoder bug (any other exception) is one line too, and
exit 1. Bad usage — a malformed hex string or ``--set``, an unknown profile, a setting the decoder
refuses — exits 2 with one line on stderr before anything is decoded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from sensorhub.errors import DecodeError

if TYPE_CHECKING:
    from sensorhub.profiles.base import Decoded, Profile, SettingValue

__all__ = ["add_parsers", "format_decoded", "parse_hex", "parse_setting"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

_HEX_SEPARATORS: Final = str.maketrans("", "", " \t\n:-_")


def parse_hex(text: str) -> bytes:
    """One payload as hex: spaces, ``:`` and ``-`` between bytes and a ``0x`` prefix are allowed.

    Raises:
        argparse.ArgumentTypeError: not whole bytes of hex.
    """
    digits = text.translate(_HEX_SEPARATORS)
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    bad = next((ch for ch in digits if ch not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"{_short(text)} is not hex ({bad!r} is not a hex digit)")
    if len(digits) % 2:
        raise argparse.ArgumentTypeError(f"{_short(text)} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_setting(text: str) -> tuple[str, SettingValue]:
    """``KEY=VALUE``; the value is an int, else a finite float, else true/false, else the string.

    Raises:
        argparse.ArgumentTypeError: no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{_short(text)} is not KEY=VALUE (e.g. acc_range_g=8)")
    return key, _setting_value(raw.strip())


def _setting_value(raw: str) -> SettingValue:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def format_decoded(item: Decoded) -> str:
    """One decoded item as a JSON line (DESIGN §5).

    Raises:
        ValueError: a non-finite number (a decoder bug: decoders never emit NaN or inf).
    """
    from sensorhub.profiles.base import ImuSample

    obj: dict[str, Any]
    if isinstance(item, ImuSample):
        obj = {
            "sensor_time_s": item.sensor_time_s,
            "seq": item.seq,
            "acc_mps2": None if item.acc_mps2 is None else list(item.acc_mps2),
            "gyro_radps": None if item.gyro_radps is None else list(item.gyro_radps),
        }
    else:
        obj = {"kind": item.kind, **item.values}
    return json.dumps(obj, allow_nan=False)


def add_parsers(subparsers: Any) -> None:
    """Add ``profiles`` (list, show) and ``decode`` to the ``sensorhub`` subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "profiles",
        help="the supported sensor firmwares (list, show NAME)",
        description="Firmware profiles: how sensorhub finds, configures and decodes each supported sensor "
        "(docs/profiles.md).",
    )
    parser.set_defaults(handler=_cmd_profiles_help, profiles_parser=parser)
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION", parser_class=type(parser))
    p = sub.add_parser("list", help="every profile: name, device, decoder family, rates")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=_cmd_profiles_list)
    p = sub.add_parser("show", help="one profile in detail: UUIDs, commands with their bytes, settings")
    p.add_argument("name", metavar="NAME", help="profile name, e.g. polar_verity_sense")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_profiles_show)

    p = subparsers.add_parser(
        "decode",
        help="decode notification payloads (hex) to JSON Lines",
        description="Decode notification payloads of a sensor, in arrival order, to JSON Lines on stdout: one "
        '{"sensor_time_s", "seq", "acc_mps2", "gyro_radps"} object per sample in the device\'s own axes '
        '(m/s², rad/s), one {"kind": ...} object per non-IMU packet. A corrupt payload is reported on stderr '
        "and skipped.",
    )
    p.add_argument("--profile", required=True, metavar="NAME", help="profile name (sensorhub profiles list)")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=parse_setting,
        default=[],
        metavar="KEY=VALUE",
        help="device state the payloads do not carry, e.g. acc_range_g=8, rate_hz=52 (repeatable)",
    )
    p.add_argument("payloads", nargs="+", type=parse_hex, metavar="HEX", help="one payload per argument")
    p.set_defaults(handler=_cmd_decode)


def _cmd_profiles_help(args: argparse.Namespace) -> int:
    args.profiles_parser.print_help(sys.stderr)
    return EXIT_USAGE


def _cmd_profiles_list(args: argparse.Namespace) -> int:
    from sensorhub.profiles.registry import all_profiles

    profiles = all_profiles()
    if args.json:
        print(json.dumps([_summary(p) for p in profiles], indent=1))
        return EXIT_OK
    rows = [("NAME", "DEVICE", "FAMILY", "CLOCK", "RATES (Hz)", "MOTOR")]
    rows += [
        (p.name, p.title, p.family, p.clock, ", ".join(_hz(r) for r in p.rates_hz), "yes" if p.has_motor else "-")
        for p in profiles
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _hz(rate: float) -> str:
    return f"{rate:g}"


def _summary(p: Profile) -> dict[str, object]:
    return {
        "name": p.name,
        "title": p.title,
        "vendor": p.vendor,
        "family": p.family,
        "clock": p.clock,
        "default_rate_hz": p.default_rate_hz,
        "rates_hz": list(p.rates_hz),
        "has_motor": p.has_motor,
    }


def _cmd_profiles_show(args: argparse.Namespace) -> int:
    from sensorhub.profiles.base import AXIS_NAMES
    from sensorhub.profiles.registry import get_profile, render_command

    p = get_profile(args.name)
    commands = {
        name: [
            {
                "char": step.char,
                "hex": render_command(p, step, p.default_rate_hz).hex(" "),
                "template": step.hex,
                "meaning": step.meaning,
                "response": step.response,
                "with_response": step.with_response,
                "delay_s": step.delay_s,
            }
            for step in steps
        ]
        for name, steps in p.commands.items()
    }
    axes = {AXIS_NAMES[i]: f"{'-' if sign < 0 else '+'}{AXIS_NAMES[axis]}" for i, (axis, sign) in enumerate(p.axes)}
    detail: dict[str, object] = {
        **_summary(p),
        "source": p.source,
        "file": p.path,
        "match": {"name_patterns": list(p.name_patterns), "service_uuids": list(p.service_uuids)},
        "gatt": dict(p.gatt),
        "ranges": dict(p.ranges),
        "axes": axes,
        "decoder": dict(p.decoder_settings),
        "battery": None if p.battery is None else {"char": p.battery.char, "format": p.battery.format},
        "commands": commands,
    }
    if args.json:
        print(json.dumps(detail, indent=1))
        return EXIT_OK
    lines = [
        f"{p.name}: {p.title} ({p.vendor})",
        f"  file          {p.path}",
        f"  source        {p.source}",
        f"  family        {p.family} (sensorhub.profiles.decoders.{p.family})",
        f"  clock         {p.clock}",
        f"  rates         {', '.join(_hz(r) for r in p.rates_hz)} Hz (default {_hz(p.default_rate_hz)})",
        f"  ranges        {_pairs(p.ranges) or '-'}",
        f"  axes          {_pairs(axes)} (sensor axis = device axis)",
        f"  decoder       {_pairs(p.decoder_settings) or '-'}",
        f"  name patterns {', '.join(p.name_patterns) or '-'}",
        f"  services      {', '.join(p.service_uuids) or '-'}",
        "  gatt",
        *(f"    {role:<12}{uuid}" for role, uuid in p.gatt.items()),
        f"  battery       {f'{p.battery.char} ({p.battery.format})' if p.battery else '-'}",
    ]
    for name, steps in commands.items():
        lines.append(f"  {name}{':' if steps else ' -'}")
        for step in steps:
            reply = " (waits for a reply)" if step["response"] else ""
            lines.append(f"    {step['char']:<10} {step['hex']}  # {step['meaning']}{reply}")
    print("\n".join(lines))
    return EXIT_OK


def _pairs(mapping: Any) -> str:
    return ", ".join(f"{key}={_hz(value) if isinstance(value, float) else value}" for key, value in mapping.items())


def _cmd_decode(args: argparse.Namespace) -> int:
    from sensorhub.profiles.registry import make_decoder

    payloads: Sequence[bytes] = args.payloads
    decoder = make_decoder(args.profile, dict(args.settings))
    status = EXIT_OK
    out = sys.stdout
    for index, payload in enumerate(payloads, start=1):
        try:
            items = decoder.feed(payload)
        except DecodeError as exc:
            print(f"sensorhub: payload {index}: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # a decoder bug: one line and exit 1, never a traceback (DESIGN §5)
            print(
                f"sensorhub: payload {index}: internal error in the {args.profile} decoder, please report it: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            status = EXIT_FAILURE
            continue
        try:
            lines = [format_decoded(item) for item in items]
        except ValueError as exc:
            print(f"sensorhub: payload {index}: the decoder produced a non-finite value: {exc}", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        for line in lines:
            out.write(line + "\n")
    out.flush()
    return status
