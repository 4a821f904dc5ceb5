"""``sensorhub profiles list | show`` and ``sensorhub decode`` (DESIGN §5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from profiles_helpers import (
    RAW_1,
    RAW_2,
    ToyDecoder,
    assert_output,
    install_toy,
    load_vectors,
    toy_packet,
    toy_sample,
    vector_files,
)

from sensorhub.cli import main
from sensorhub.profiles import registry as registry_module
from sensorhub.profiles.base import Decoded
from sensorhub.profiles.cli import parse_hex, parse_setting
from sensorhub.profiles.registry import all_profiles

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The toy profile as the CLI's (only) profile."""
    monkeypatch.setattr(registry_module, "_default", install_toy(monkeypatch, tmp_path))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command that must fail as bad usage: exit 2, nothing on stdout, one line on stderr."""
    try:
        code, out, err = _run(capsys, *argv)
    except SystemExit as exc:  # argparse's own usage errors
        captured = capsys.readouterr()
        code, out, err = int(exc.code or 0), captured.out.splitlines(), captured.err.splitlines()
    assert code == 2
    assert out == []
    assert len(err) == 1, err
    return err[0]


def test_profiles_list_names_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "profiles", "list")
    assert code == 0
    assert out[0].split()[:3] == ["NAME", "DEVICE", "FAMILY"]
    assert [line.split()[0] for line in out[1:]] == [p.name for p in all_profiles()]
    code, out, _ = _run(capsys, "profiles", "list", "--json")
    listed = json.loads("\n".join(out))
    assert [entry["name"] for entry in listed] == [p.name for p in all_profiles()]


@pytest.mark.parametrize("name", [p.name for p in all_profiles()])
def test_profiles_show_every_profile(capsys: pytest.CaptureFixture[str], name: str) -> None:
    profile = registry_module.get_profile(name)
    code, out, _ = _run(capsys, "profiles", "show", name)
    assert code == 0
    assert out[0].startswith(f"{name}: {profile.title}")
    assert any(profile.gatt["data"] in line for line in out)
    code, out, _ = _run(capsys, "profiles", "show", name, "--json")
    shown = json.loads("\n".join(out))
    assert shown["gatt"] == dict(profile.gatt)
    assert set(shown["commands"]) == set(profile.commands)


def test_profiles_show_renders_commands(toy: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "profiles", "show", "toy")
    assert code == 0
    text = "\n".join(out)
    assert "control    ff aa 03 09 00  # set output rate" in text
    assert "control    ff aa 10 64 00  # range and rate" in text
    assert "control    01  # start (waits for a reply)" in text
    assert "axes          x=+y, y=-x, z=+z" in text
    code, out, _ = _run(capsys, "profiles", "show", "toy", "--json")
    shown: dict[str, Any] = json.loads("\n".join(out))
    assert shown["commands"]["buzz"][0]["hex"] == "b2 31 30 30"
    assert shown["commands"]["buzz"][0]["template"] == "b2 {rate_hz:ascii}"


def test_profiles_usage_errors(toy: None, capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(capsys, "profiles", "show", "tyo")
    assert line == "sensorhub: error: unknown profile 'tyo' (did you mean 'toy'? profiles: toy)"
    code = main(["profiles"])
    assert code == 2
    assert "list" in capsys.readouterr().err


def _set_args(settings: dict[str, Any]) -> list[str]:
    args = []
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if parse_setting(f"{key}={text}")[1] != value:
            pytest.skip(f"--set {key}={text} does not give back {value!r}")
        args += ["--set", f"{key}={text}"]
    return args


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_decode_a_real_vector(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    """The first case of each vector file through the command line gives the whole expected output."""
    data = load_vectors(path)
    if data["profile"] not in registry_module.default_registry().names():
        pytest.fail(f"{path.name}: no profile {data['profile']!r} (the meta-test says more)")
    case = data["cases"][0]
    code, out, err = _run(
        capsys, "decode", "--profile", data["profile"], *_set_args(case.get("set", {})), *case["payloads"]
    )
    assert (code, err) == (0, [])
    assert_output([json.loads(line) for line in out], case["expect"], float(data["tolerance"]), case["name"])


def test_decode_toy_with_settings_split_and_battery(toy: None, capsys: pytest.CaptureFixture[str]) -> None:
    p1 = toy_packet(1, RAW_1)
    code, out, err = _run(
        capsys, "decode", "--profile", "toy", "--set", "acc_range_g=2", p1[:6].hex(" "), "0x" + p1[6:].hex(), "B0:57"
    )
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [toy_sample(1, RAW_1, 2), {"kind": "battery", "percent": 87}]
    assert list(json.loads(out[0])) == ["sensor_time_s", "seq", "acc_mps2", "gyro_radps"]


def test_decode_skips_a_corrupt_payload_and_goes_on(toy: None, capsys: pytest.CaptureFixture[str]) -> None:
    p1, p2 = toy_packet(1, RAW_1), toy_packet(2, RAW_2)
    bad = p2[:-1] + bytes([p2[-1] ^ 1])
    code, out, err = _run(capsys, "decode", "--profile", "toy", p1.hex(), bad.hex(), p2.hex())
    assert code == 0
    assert [json.loads(line)["seq"] for line in out] == [1, 2]
    assert err == ["sensorhub: payload 2: toy: bad checksum"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["decode", "--profile", "toy", "a5 0g"], "argument HEX: 'a5 0g' is not hex ('g' is not a hex digit)"),
        (["decode", "--profile", "toy", "a50"], "argument HEX: 'a50' has an odd number of hex digits (3)"),
        (["decode", "--profile", "toy"], "the following arguments are required: HEX"),
        (["decode", "b0"], "the following arguments are required: --profile"),
        (
            ["decode", "--profile", "toy", "--set", "acc_range_g", "b0"],
            "argument --set: 'acc_range_g' is not KEY=VALUE",
        ),
        (["decode", "--profile", "toy", "--set", "=3", "b0"], "argument --set: '=3' is not KEY=VALUE"),
        (["decode", "--profile", "toy", "--set", "acc_range_g=3", "b0"], "acc_range_g must be 2, 4, 8 or 16, got 3"),
        (["decode", "--profile", "toy", "--set", "colour=red", "b0"], "decoder.colour: unknown decoder setting"),
        (["decode", "--profile", "nope", "b0"], "unknown profile 'nope' (profiles: toy)"),
    ],
)
def test_decode_bad_usage_exits_2_with_one_line(
    toy: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _usage_error(capsys, *argv)


def test_decode_refuses_bad_hex_before_decoding_anything(toy: None, capsys: pytest.CaptureFixture[str]) -> None:
    _usage_error(capsys, "decode", "--profile", "toy", toy_packet(1, RAW_1).hex(), "zz")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("acc_range_g=8", 8),
        ("rate_hz=52.5", 52.5),
        ("rate_hz=1e2", 100.0),
        ("flag=true", True),
        ("flag=False", False),
        ("path=/Meas/IMU6/52", "/Meas/IMU6/52"),
        ("x=nan", "nan"),
        ("x=", ""),
        (" key = 3 ", 3),
    ],
)
def test_parse_setting(text: str, value: object) -> None:
    key, parsed = parse_setting(text)
    assert key == text.split("=")[0].strip()
    assert parsed == value
    assert type(parsed) is type(value)


def test_parse_hex_separators() -> None:
    assert parse_hex("0xA5:01-02 03\t04") == bytes.fromhex("a501020304")
    assert parse_hex("") == b""


def test_decode_in_a_subprocess_never_shows_a_traceback() -> None:
    """The installed entry point: exit codes and one-line errors, no traceback."""
    cmd = [sys.executable, "-m", "sensorhub"]
    done = subprocess.run(
        [*cmd, "decode", "--profile", "no_such_profile", "00"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("sensorhub: error: unknown profile 'no_such_profile'")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    done = subprocess.run([*cmd, "profiles", "list"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].startswith("NAME")


def test_decode_reports_a_decoder_bug_in_one_line(
    toy: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(self: ToyDecoder, payload: bytes) -> list[Decoded]:
        raise TypeError("oops")

    monkeypatch.setattr(ToyDecoder, "_decode", broken)
    code, out, err = _run(capsys, "decode", "--profile", "toy", "b0 57", "b0 58")
    assert code == 1
    assert out == []
    assert err == [
        f"sensorhub: payload {i}: internal error in the toy decoder, please report it: TypeError: oops" for i in (1, 2)
    ]
