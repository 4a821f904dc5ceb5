"""Helpers of the profile tests: reading and comparing byte-vector files, and a throwaway ``toy`` family.

The toy decoder and profile test the machinery (loader, registry, CLI, vector runner), not a device.
The ``toy`` packet: ``a5 <seq u8> <ax ay az gx gy gz int16 LE> <xor of the previous bytes>`` (15
bytes), acc scaled by the ``acc_range_g`` setting, gyro ±2000 °/s; ``b0 <percent>`` is a battery
reply. Payloads may arrive split: a packet that starts with ``a5`` but is shorter than 15 bytes is
kept and completed by the next payload.
"""

from __future__ import annotations

import json
import struct
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sensorhub.errors import DecodeError, ProfileError
from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, Decoded, Decoder, DeviceInfo, ImuSample, SettingValue
from sensorhub.profiles.cli import format_decoded
from sensorhub.profiles.registry import DECODERS_PACKAGE, Registry

VECTOR_DIR = Path(__file__).parent / "vectors"


def vector_files(directory: Path = VECTOR_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load_vectors(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: the top level must be an object"
    for key in ("profile", "tolerance", "cases", "corrupt"):
        assert key in data, f"{path.name}: missing key {key!r}"
    unknown = set(data) - {"profile", "tolerance", "cases", "corrupt", "notes"}
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    return data


def as_json(items: Iterable[Decoded]) -> list[dict[str, Any]]:
    """Decoded items as ``sensorhub decode`` prints them (which also proves them JSON-able and finite)."""
    return [json.loads(format_decoded(item)) for item in items]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(got: Any, want: Any, tol: float) -> bool:
    if _is_int(got) and _is_int(want):
        return bool(got == want)
    if _is_number(got) and _is_number(want):
        return abs(float(got) - float(want)) <= tol
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same(g, w, tol) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


def assert_output(got: Sequence[dict[str, Any]], want: Sequence[dict[str, Any]], tol: float, where: str) -> None:
    """The whole decoded output equals the expected one, item by item, key by key."""
    shown = "\n".join(json.dumps(item) for item in got)
    assert len(got) == len(want), f"{where}: {len(got)} items decoded, {len(want)} expected; decoded:\n{shown}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert set(g) == set(w), f"{where}: item {i} has keys {sorted(g)}, expected {sorted(w)}"
        for key in w:
            assert _same(g[key], w[key], tol), f"{where}: item {i} {key}: decoded {g[key]!r}, expected {w[key]!r}"


TOY_PROFILE = """\
name = "toy"
title = "Toy IMU"
vendor = "Nobody"
family = "toy"
clock = "counter"
source = "tests/profiles_helpers.py"

[match]
name_patterns = ["TOY-*"]
service_uuids = ["FFE0"]

[gatt]
data = "0000ffe4-0000-1000-8000-00805f9b34fb"
control = "0000FFE9-0000-1000-8000-00805F9B34FB"
battery = "2a19"

[rates]
default_hz = 100.0
options_hz = [50, 100.0]
[rates.values."50"]
rate_code = "08"
[rates.values."100.0"]
rate_code = "09"

[ranges]
acc_g = 16
gyro_dps = 2000

[axes]
x = "+y"
y = "-x"
z = "+z"

[decoder]
acc_range_g = 16

[battery]
char = "battery"
format = "uint8_percent"

[commands]
configure = [
  {char = "control", hex = "ff aa 03 {rate_code} 00", meaning = "set output rate"},
  {char = "control", hex = "ff aa {acc_range_g} {rate_hz:u16le}", meaning = "range and rate", delay_s = 0.1},
]
start = [{char = "control", hex = "01", meaning = "start", response = true}]
stop = [{char = "control", hex = "00", meaning = "stop", with_response = false}]
buzz = [{char = "control", hex = "b2 {rate_hz:ascii}", meaning = "buzz"}]
"""


class ToyDecoder(Decoder):
    family: ClassVar[str] = "toy"

    def __init__(self, settings: Mapping[str, SettingValue], *, profile: str) -> None:
        super().__init__(settings, profile=profile)
        for key in self.settings:
            if key not in ("rate_hz", "acc_range_g"):
                raise ProfileError("unknown decoder setting", key=f"decoder.{key}")
        acc_range = self.settings.get("acc_range_g", 16)
        if not isinstance(acc_range, int) or isinstance(acc_range, bool) or acc_range not in (2, 4, 8, 16):
            raise ProfileError(f"acc_range_g must be 2, 4, 8 or 16, got {acc_range!r}", key="decoder.acc_range_g")
        self.acc_scale = acc_range * G_MPS2 / 32768
        self.pending = b""

    def reset(self) -> None:
        self.pending = b""

    def _decode(self, payload: bytes) -> list[Decoded]:
        if payload[:1] == b"\xb0":
            if len(payload) != 2:
                raise DecodeError("battery reply is 2 bytes", profile=self.profile, payload=payload)
            return [DeviceInfo("battery", {"percent": payload[1]})]
        data = self.pending + payload
        self.pending = b""
        if data[:1] != b"\xa5":
            raise DecodeError("bad header", profile=self.profile, payload=payload)
        if len(data) < 15:
            self.pending = data
            return []
        if len(data) > 15:
            raise DecodeError("too long", profile=self.profile, payload=payload)
        check = 0
        for byte in data[:14]:
            check ^= byte
        if check != data[14]:
            raise DecodeError("bad checksum", profile=self.profile, payload=payload)
        seq = data[1]
        raw = struct.unpack_from("<6h", data, 2)
        if -32768 in raw:
            raise DecodeError("saturated", profile=self.profile, payload=payload)
        gyro_scale = 2000 * DEG_TO_RAD / 32768
        acc = (raw[0] * self.acc_scale, raw[1] * self.acc_scale, raw[2] * self.acc_scale)
        gyro = (raw[3] * gyro_scale, raw[4] * gyro_scale, raw[5] * gyro_scale)
        return [ImuSample(sensor_time_s=None, seq=seq, acc_mps2=acc, gyro_radps=gyro)]


def toy_packet(seq: int, raw: tuple[int, int, int, int, int, int]) -> bytes:
    body = b"\xa5" + bytes([seq]) + struct.pack("<6h", *raw)
    check = 0
    for byte in body:
        check ^= byte
    return body + bytes([check])


def toy_sample(seq: int, raw: tuple[int, int, int, int, int, int], acc_range_g: int = 16) -> dict[str, object]:
    acc = acc_range_g * G_MPS2 / 32768
    gyro = 2000 * DEG_TO_RAD / 32768
    return {
        "sensor_time_s": None,
        "seq": seq,
        "acc_mps2": [raw[0] * acc, raw[1] * acc, raw[2] * acc],
        "gyro_radps": [raw[3] * gyro, raw[4] * gyro, raw[5] * gyro],
    }


RAW_1 = (2048, -2048, 1, 16384, -1, 0)
RAW_2 = (0, 0, 32767, -32767, 100, -100)


def toy_vectors() -> dict[str, object]:
    p1, p2 = toy_packet(1, RAW_1), toy_packet(2, RAW_2)
    bad_check = p1[:-1] + bytes([p1[-1] ^ 0xFF])
    return {
        "profile": "toy",
        "tolerance": 1e-9,
        "cases": [
            {
                "name": "two packets",
                "source": "tests/profiles_helpers.py",
                "set": {},
                "payloads": [p1.hex(), p2.hex()],
                "expect": [toy_sample(1, RAW_1), toy_sample(2, RAW_2)],
            },
            {
                "name": "range 2 g, split packet and battery",
                "source": "tests/profiles_helpers.py",
                "set": {"acc_range_g": 2},
                "payloads": [p1[:5].hex(" "), p1[5:].hex(), "b0 57"],
                "expect": [toy_sample(1, RAW_1, 2), {"kind": "battery", "percent": 87}],
            },
            {
                "name": "saturation at full scale",
                "source": "tests/profiles_helpers.py",
                "set": {},
                "payloads": [p2.hex()],
                "expect": [toy_sample(2, RAW_2)],
            },
        ],
        "corrupt": [
            {"name": "short battery", "why": "1 byte", "bad": "b0", "after": [p1.hex()]},
            {
                "name": "long",
                "why": "a byte too many",
                "set": {},
                "before": [],
                "bad": (p1 + b"\x00").hex(),
                "after": [p2.hex()],
                "expect_after": [toy_sample(2, RAW_2)],
            },
            {"name": "bad header", "why": "not a5", "bad": "c3" + p1[1:].hex(), "after": [p1.hex()]},
            {
                "name": "bad checksum",
                "why": "xor flipped",
                "bad": bad_check.hex(),
                "after": [p2.hex()],
                "expect_after": [toy_sample(2, RAW_2)],
            },
            {
                "name": "split then garbage",
                "why": "the second half of a split packet is lost",
                "before": [p1[:4].hex()],
                "bad": "ff" * 12,
                "after": [p1.hex()],
                "expect_after": [toy_sample(1, RAW_1)],
            },
        ],
    }


def install_toy(monkeypatch: pytest.MonkeyPatch, root: Path) -> Registry:
    """The toy decoder module importable as ``sensorhub.profiles.decoders.toy`` and a registry of root/profiles."""
    module = types.ModuleType(f"{DECODERS_PACKAGE}.toy")
    module.DECODER = ToyDecoder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    profiles = root / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "toy.toml").write_text(TOY_PROFILE, encoding="utf-8")
    vectors = root / "vectors"
    vectors.mkdir(exist_ok=True)
    (vectors / "toy.json").write_text(json.dumps(toy_vectors(), indent=1), encoding="utf-8")
    return Registry(profiles)
