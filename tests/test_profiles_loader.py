"""Profile loader and registry: a good profile loads normalised; every bad one names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from profiles_helpers import TOY_PROFILE, ToyDecoder, install_toy

import sensorhub
from sensorhub.errors import ConfigError, ProfileError
from sensorhub.profiles import registry as registry_module
from sensorhub.profiles.base import CommandStep, SettingValue
from sensorhub.profiles.loader import load_profile, normalize_uuid, placeholders, render_hex
from sensorhub.profiles.registry import Registry, make_decoder, render_command

BASE = "-0000-1000-8000-00805f9b34fb"


def _write(tmp_path: Path, text: str, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_profile_loads_normalised(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, TOY_PROFILE))
    assert (p.name, p.title, p.vendor, p.family, p.clock) == ("toy", "Toy IMU", "Nobody", "toy", "counter")
    assert p.path == str(tmp_path / "toy.toml")
    assert p.name_patterns == ("TOY-*",)
    assert p.service_uuids == ("0000ffe0" + BASE,)
    assert dict(p.gatt) == {"data": "0000ffe4" + BASE, "control": "0000ffe9" + BASE, "battery": "00002a19" + BASE}
    assert (p.default_rate_hz, p.rates_hz) == (100.0, (50.0, 100.0))
    assert {hz: dict(v) for hz, v in p.rate_values.items()} == {50.0: {"rate_code": "08"}, 100.0: {"rate_code": "09"}}
    assert dict(p.ranges) == {"acc_g": 16.0, "gyro_dps": 2000.0}
    # x <- +y, y <- -x, z <- +z: a 90° turn about z.
    assert p.axes == ((1, 1.0), (0, -1.0), (2, 1.0))
    assert p.map_axes((1.0, 2.0, 3.0)) == (2.0, -1.0, 3.0)
    assert dict(p.decoder_settings) == {"acc_range_g": 16}
    assert p.battery is not None
    assert (p.battery.char, p.battery.format, p.battery.request) == ("battery", "uint8_percent", ())
    assert set(p.commands) == {"configure", "start", "stop", "buzz"}
    assert p.commands["configure"][1] == CommandStep(
        char="control", hex="ff aa {acc_range_g} {rate_hz:u16le}", meaning="range and rate", delay_s=0.1
    )
    assert p.commands["start"][0].response
    assert not p.commands["stop"][0].with_response
    assert p.has_motor


def test_optional_tables_default_to_empty(tmp_path: Path) -> None:
    text = TOY_PROFILE.split("[ranges]")[0] + '[axes]\nx = "x"\ny = "y"\nz = "+z"\n'
    text = text.replace('[rates.values."50"]\nrate_code = "08"\n[rates.values."100.0"]\nrate_code = "09"\n', "")
    p = load_profile(_write(tmp_path, text))
    assert p.battery is None
    assert dict(p.ranges) == {}
    assert dict(p.decoder_settings) == {}
    assert dict(p.rate_values) == {}
    assert all(steps == () for steps in p.commands.values())
    assert not p.has_motor
    assert p.axes == ((0, 1.0), (1, 1.0), (2, 1.0))


# (what is wrong, text replaced, replacement, the dotted key the error must name)
BAD_PROFILES = [
    ("unknown top-level key", 'name = "toy"', 'colour = "red"\nname = "toy"', "colour"),
    ("name differs from the file", 'name = "toy"', 'name = "other"', "name"),
    ("name with capitals", 'name = "toy"', 'name = "Toy"', "name"),
    ("title missing", 'title = "Toy IMU"\n', "", "title"),
    ("title empty", 'title = "Toy IMU"', 'title = " "', "title"),
    ("vendor not a string", 'vendor = "Nobody"', "vendor = 3", "vendor"),
    ("family with a dot", 'family = "toy"', 'family = "toy.x"', "family"),
    ("unknown clock", 'clock = "counter"', 'clock = "ntp"', "clock"),
    ("match with nothing", 'name_patterns = ["TOY-*"]\nservice_uuids = ["FFE0"]', "", "match"),
    ("match unknown key", 'name_patterns = ["TOY-*"]', 'names = ["TOY-*"]', "match.names"),
    ("pattern not a string", 'name_patterns = ["TOY-*"]', "name_patterns = [1]", "match.name_patterns[0]"),
    ("bad service UUID", 'service_uuids = ["FFE0"]', 'service_uuids = ["FFE0x"]', "match.service_uuids[0]"),
    ("truncated 128-bit UUID", '"0000FFE9-0000-1000-8000-00805F9B34FB"', '"0000FFE9-0000-1000"', "gatt.control"),
    ("gatt without data", 'data = "0000ffe4-0000-1000-8000-00805f9b34fb"\n', "", "gatt.data"),
    ("gatt role with a dash", 'battery = "2a19"\n\n[rates]', 'bat-t = "2a19"\n\n[rates]', "gatt.bat-t"),
    ("rates missing", "[rates]\ndefault_hz = 100.0", "[rate]\ndefault_hz = 100.0", "rate"),
    ("default rate not an option", "default_hz = 100.0", "default_hz = 25.0", "rates.default_hz"),
    ("default rate a string", "default_hz = 100.0", 'default_hz = "100"', "rates.default_hz"),
    ("no rate options", "options_hz = [50, 100.0]", "options_hz = []", "rates.options_hz"),
    ("negative rate", "options_hz = [50, 100.0]", "options_hz = [-50, 100.0]", "rates.options_hz[0]"),
    ("rate listed twice", "options_hz = [50, 100.0]", "options_hz = [50, 100.0, 100]", "rates.options_hz"),
    ("values of a rate not offered", '[rates.values."50"]', '[rates.values."60"]', 'rates.values."60"'),
    ("rate value not hex", 'rate_code = "08"', 'rate_code = "0g"', 'rates.values."50".rate_code'),
    ("rate value a number", 'rate_code = "08"', "rate_code = 8", 'rates.values."50".rate_code'),
    ("rate value missing at one rate", 'rate_code = "09"\n', "", "commands.configure[0].hex"),
    ("unknown placeholder", "{rate_code}", "{rate_cod}", "commands.configure[0].hex"),
    ("unknown placeholder format", "{rate_hz:u16le}", "{rate_hz:u17}", "commands.configure[1].hex"),
    ("malformed placeholder", "{rate_hz:u16le}", "{rate hz}", "commands.configure[1].hex"),
    ("unbalanced brace", 'hex = "01"', 'hex = "01 {"', "commands.start[0].hex"),
    ("setting too big for one byte", "acc_range_g = 16", "acc_range_g = 300", "commands.configure[1].hex"),
    ("not a hex digit", 'hex = "01"', 'hex = "0z"', "commands.start[0].hex"),
    ("odd number of digits", 'hex = "01"', 'hex = "011"', "commands.start[0].hex"),
    ("empty hex", 'hex = "01"', 'hex = "  "', "commands.start[0].hex"),
    ("longer than one write", 'hex = "01"', f'hex = "{"00" * 513}"', "commands.start[0].hex"),
    ("step on an unknown role", 'char = "control", hex = "01"', 'char = "ctrl", hex = "01"', "commands.start[0].char"),
    ("step unknown key", 'meaning = "start"', 'meaning = "start", wait = true', "commands.start[0].wait"),
    ("step without meaning", ', meaning = "stop"', "", "commands.stop[0].meaning"),
    ("step response not a boolean", "response = true", 'response = "yes"', "commands.start[0].response"),
    ("negative delay", "delay_s = 0.1", "delay_s = -1", "commands.configure[1].delay_s"),
    ("delay too long", "delay_s = 0.1", "delay_s = 60", "commands.configure[1].delay_s"),
    ("step not a table", 'start = [{char = "control"', 'start = ["01", {char = "control"', "commands.start[0]"),
    (
        "sequence not an array",
        'stop = [{char = "control", hex = "00", meaning = "stop", with_response = false}]',
        'stop = "00"',
        "commands.stop",
    ),
    ("unknown command", "stop = [", "halt = [", "commands.halt"),
    ("axis used twice", 'y = "-x"', 'y = "-y"', "axes"),
    ("axes a mirror image", 'y = "-x"', 'y = "+x"', "axes"),
    ("axis not an axis", 'x = "+y"', 'x = "up"', "axes.x"),
    ("axis missing", 'z = "+z"\n', "", "axes.z"),
    ("axes unknown key", 'z = "+z"', 'z = "+z"\nw = "+x"', "axes.w"),
    ("range unknown key", "acc_g = 16", "acc_gs = 16", "ranges.acc_gs"),
    ("range negative", "gyro_dps = 2000", "gyro_dps = -5", "ranges.gyro_dps"),
    ("decoder setting a table", "acc_range_g = 16", "acc_range_g = {a = 1}", "decoder.acc_range_g"),
    ("decoder setting an array", "acc_range_g = 16", "acc_range_g = [16]", "decoder.acc_range_g"),
    ("decoder setting inf", "acc_range_g = 16", "acc_range_g = inf", "decoder.acc_range_g"),
    ("battery on an unknown role", 'char = "battery"', 'char = "batt"', "battery.char"),
    ("battery unknown format", 'format = "uint8_percent"', 'format = "uint16"', "battery.format"),
    (
        "battery request step bad",
        'format = "uint8_percent"',
        'format = "decoder"\nrequest = [{}]',
        "battery.request[0].char",
    ),
    ("invalid TOML", 'title = "Toy IMU"', 'title = "Toy IMU', ""),
]


@pytest.mark.parametrize(("old", "new", "key"), [pytest.param(*case[1:], id=case[0]) for case in BAD_PROFILES])
def test_bad_profile_names_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in TOY_PROFILE
    path = _write(tmp_path, TOY_PROFILE.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert str(info.value).startswith(f"{path}: {key}: " if key else f"{path}: ")
    assert info.value.exit_code == 2


def test_unreadable_profile_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"missing\.toml: cannot read the profile"):
        load_profile(tmp_path / "missing.toml")
    bad = tmp_path / "latin.toml"
    bad.write_bytes(b'title = "\xe9"\n')
    with pytest.raises(ProfileError, match=r"latin\.toml: not valid UTF-8"):
        load_profile(bad)


def test_placeholder_error_says_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"at 50 Hz: placeholder \{rate_cod\} has no value") as info:
        load_profile(_write(tmp_path, TOY_PROFILE.replace("{rate_code}", "{rate_cod}")))
    assert "acc_range_g, rate_code, rate_hz" in info.value.advice


@pytest.mark.parametrize(
    ("text", "uuid"),
    [
        ("2a19", "00002a19" + BASE),
        ("0x2A19", "00002a19" + BASE),
        ("FEE0ABCD", "fee0abcd" + BASE),
        (" 6E400001-B5A3-F393-E0A9-E50E24DCCA9E ", "6e400001-b5a3-f393-e0a9-e50e24dcca9e"),
        ("6e400001b5a3f393e0a9e50e24dcca9e", "6e400001-b5a3-f393-e0a9-e50e24dcca9e"),
    ],
)
def test_normalize_uuid(text: str, uuid: str) -> None:
    assert normalize_uuid(text) == uuid


@pytest.mark.parametrize("text", ["", "2a1", "2a19a", "xyzw", "6e400001-b5a3-f393-e0a9-e50e24dcca9", "0x"])
def test_normalize_uuid_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a UUID"):
        normalize_uuid(text)


def test_render_hex_formats() -> None:
    values: dict[str, SettingValue] = {
        "code": "0a 0B",
        "n": 3,
        "hz": 52.0,
        "big": 1000,
        "path": "/Meas/IMU6/52",
        "f": 1.5,
        "neg": -2,
    }
    assert render_hex("ff {code}", values) == bytes.fromhex("ff0a0b")
    assert render_hex("{n}{hz}", values) == bytes([3, 52])
    assert render_hex("{big:u16le} {big:u16be} {big:u32le}", values) == bytes.fromhex("e803 03e8 e8030000")
    assert render_hex("{neg:i8}{neg:i16le}", values) == bytes.fromhex("fe feff")
    assert render_hex("{hz:ascii}{path:ascii}", values) == b"52/Meas/IMU6/52"
    assert render_hex("{f:f32le}", values) == bytes.fromhex("0000c03f")
    assert placeholders("a{x}b{ y:u8 }") == [("x", None), ("y", "u8")]
    for template, message in [
        ("{big}", "not one byte"),
        ("{neg:u8}", "does not fit"),
        ("{f:u8}", "whole number"),
        ("{path}", "not hex bytes"),
        ("{path:u8}", "needs a number"),
        ("{missing}", "has no value"),
        ("0", "odd number"),
    ]:
        with pytest.raises(ValueError, match=message):
            render_hex(template, values)


# --- registry --------------------------------------------------------------------------------


def test_registry_lists_gets_and_refuses_unknown_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    _write(tmp_path / "profiles", TOY_PROFILE.replace('name = "toy"', 'name = "toy_two"'), "toy_two")
    assert registry.names() == ("toy", "toy_two")
    assert [p.name for p in registry.all()] == ["toy", "toy_two"]
    assert registry.get("toy") is registry.get("toy")
    with pytest.raises(ProfileError, match=r"unknown profile 'to' \(did you mean") as info:
        registry.get("to")
    assert "profiles: toy, toy_two" in str(info.value)
    with pytest.raises(ProfileError, match=r"unknown profile '\.\./toy'"):
        registry.get("../toy")


def test_registry_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="profile directory does not exist"):
        Registry(tmp_path / "nowhere").all()


def test_profile_dir_prefers_the_installed_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = tmp_path / "site" / "sensorhub"
    package.mkdir(parents=True)
    monkeypatch.setattr(registry_module, "_PACKAGE_DIR", package)
    assert registry_module.profile_dir() == tmp_path / "site" / "firmware_profiles"
    (package / "firmware_profiles").mkdir()
    assert registry_module.profile_dir() == package / "firmware_profiles"


def test_default_profile_dir_is_the_source_tree() -> None:
    root = Path(__file__).resolve().parent.parent
    if Path(sensorhub.__file__).resolve().parent != root / "sensorhub":
        pytest.skip("sensorhub is installed from a wheel, not run from this checkout")
    # An editable install or a checkout: no copy inside the package, the repo root's directory.
    assert registry_module.profile_dir() == Path(__file__).resolve().parent.parent / "firmware_profiles"


def test_make_decoder_merges_rate_profile_settings_and_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    decoder = make_decoder("toy", registry=registry)
    assert isinstance(decoder, ToyDecoder)
    assert decoder.settings == {"rate_hz": 100.0, "acc_range_g": 16}
    assert decoder.profile == "toy"
    decoder = make_decoder(registry.get("toy"), {"acc_range_g": 2, "rate_hz": 50})
    assert decoder.settings == {"rate_hz": 50, "acc_range_g": 2}
    with pytest.raises(ProfileError, match="acc_range_g must be"):
        make_decoder("toy", {"acc_range_g": 3}, registry=registry)


def test_make_decoder_without_a_decoder_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    path = _write(tmp_path / "profiles", TOY_PROFILE.replace('family = "toy"', 'family = "no_such_family"'))
    with pytest.raises(ProfileError, match=r"toy\.toml: family: no decoder module sensorhub\.profiles\.decoders\.no_"):
        make_decoder(load_profile(path), registry=registry)


def test_match_advertisement(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = install_toy(monkeypatch, tmp_path)
    assert [p.name for p in registry.match_advertisement("TOY-1234")] == ["toy"]
    assert registry.match_advertisement("toy-1234") == []  # advertised names are case-sensitive
    assert [p.name for p in registry.match_advertisement(None, ["0000FFE0" + BASE.upper()])] == ["toy"]
    assert [p.name for p in registry.match_advertisement("Other", ["ffe0", "not-a-uuid"])] == ["toy"]
    assert registry.match_advertisement("Other", ["180f"]) == []


def test_render_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = install_toy(monkeypatch, tmp_path).get("toy")
    configure = p.commands["configure"]
    assert render_command(p, configure[0], 50) == bytes.fromhex("ff aa 03 08 00")
    assert render_command(p, configure[0], 100.0) == bytes.fromhex("ff aa 03 09 00")
    assert render_command(p, configure[1], 50) == bytes.fromhex("ff aa 10 32 00")
    assert render_command(p, configure[1], 50, {"acc_range_g": 8}) == bytes.fromhex("ff aa 08 32 00")
    assert render_command(p, p.commands["buzz"][0], 100) == b"\xb2100"
    with pytest.raises(ConfigError, match=r"toy cannot run at 60 Hz \(choose one of: 50, 100\)"):
        render_command(p, configure[0], 60)
    with pytest.raises(ConfigError, match=r"range and rate: placeholder \{acc_range_g\}: value 'x'"):
        render_command(p, configure[1], 50, {"acc_range_g": "x"})
