"""The reference firmware's packet code, compiled on the host, against the Python decoder and the profile.

``firmware_profiles/reference/sensorhub_open/sensorhub_open_packet.cpp`` is the code the Arduino
sketch runs; ``host_vectors.cpp`` drives it from stdin (see its header comment). Every sample must
come back through :class:`SensorhubOpenDecoder` as the int16 the firmware quantised it to, with the
counter and the µs timestamp wrapping, and every command of ``sensorhub_open.toml`` must parse in
the firmware as what its ``meaning`` says.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sensorhub.profiles.base import DEG_TO_RAD, G_MPS2, DeviceInfo, ImuSample
from sensorhub.profiles.decoders.sensorhub_open import SensorhubOpenDecoder
from sensorhub.profiles.loader import load_profile, render_hex

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware_profiles" / "reference" / "sensorhub_open"
PROFILE = ROOT / "firmware_profiles" / "sensorhub_open.toml"
CXX = shutil.which("g++")


@pytest.fixture(scope="module")
def host_vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CXX is None:
        pytest.skip("g++ is not installed: cannot compile the reference firmware's packet code")
    exe = tmp_path_factory.mktemp("firmware") / "host_vectors"
    sources = [FIRMWARE / "host_vectors.cpp", FIRMWARE / "sensorhub_open_packet.cpp"]
    cmd = [CXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror", "-o", str(exe)]
    subprocess.run([*cmd, *map(str, sources)], check=True, capture_output=True, text=True, timeout=60)
    return exe


def run(exe: Path, *args: str | int, stdin: str = "") -> list[str]:
    done = subprocess.run(
        [str(exe), *map(str, args)], input=stdin, check=True, capture_output=True, text=True, timeout=30
    )
    return done.stdout.split()


def quantise(value: float, full_scale: float) -> int:
    """The firmware's rule: float32 input, round half away from zero, saturate to int16."""
    scaled = float(np.float32(value)) * 32768.0 / full_scale
    if scaled >= 32767.0:
        return 32767
    if scaled <= -32768.0:
        return -32768
    return int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))


def as_float32(values: np.ndarray) -> np.ndarray:
    """The firmware's float inputs (scanf "%f" of the printed value)."""
    return values.astype(np.float32).astype(np.float64)


def decode(payloads: list[str]) -> list[ImuSample]:
    decoder = SensorhubOpenDecoder({"rate_hz": 100.0}, profile="sensorhub_open")
    out = [item for hex_ in payloads for item in decoder.feed(bytes.fromhex(hex_))]
    assert all(isinstance(item, ImuSample) for item in out)
    return [item for item in out if isinstance(item, ImuSample)]


def test_samples_round_trip_with_counter_and_timestamp_wrap(host_vectors: Path) -> None:
    rng = np.random.default_rng(8)
    n = 203
    acc_g = rng.uniform(-18.0, 18.0, (n, 3))  # ±16 g range: some saturate
    gyro_dps = rng.uniform(-2200.0, 2200.0, (n, 3))  # ±2000 °/s range: some saturate
    acc_g[:5] = [[0, 0, 1], [16, -16, 0], [1e-4, -1e-4, 0.5], [15.9995, -15.9995, 0], [40, -40, 0]]
    rows = np.round(np.hstack([acc_g, gyro_dps]), 6)  # exactly what the text below says
    stdin = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in rows)
    first_seq, t0_us, period_us = 65530, 2**32 - 25_000, 10_000
    packets = run(host_vectors, "packets", 3, 4, period_us, 4, first_seq, t0_us, stdin=stdin)

    assert [len(p) // 2 for p in packets] == [10 + 12 * 4] * (n // 4) + [10 + 12 * (n % 4)]
    samples = decode(packets)
    assert len(samples) == n
    acc_lsb, gyro_lsb = 16 * G_MPS2 / 32768, 2000 * DEG_TO_RAD / 32768
    for k, (sample, row) in enumerate(zip(samples, rows, strict=True)):
        assert sample.seq == (first_seq + k) % 2**16
        assert sample.sensor_time_s == ((t0_us + k * period_us) % 2**32) / 1e6
        assert sample.acc_mps2 is not None
        assert sample.gyro_radps is not None
        raw_acc = [round(v / acc_lsb) for v in sample.acc_mps2]
        raw_gyro = [round(v / gyro_lsb) for v in sample.gyro_radps]
        assert raw_acc == [quantise(v, 16.0) for v in row[:3]], k
        assert raw_gyro == [quantise(v, 2000.0) for v in row[3:]], k
        checks = [(got, want, acc_lsb) for got, want in zip(sample.acc_mps2, as_float32(row[:3]) * G_MPS2, strict=True)]
        checks += [
            (got, want, gyro_lsb) for got, want in zip(sample.gyro_radps, as_float32(row[3:]) * DEG_TO_RAD, strict=True)
        ]
        for got, want, lsb in checks:
            full_scale = 32768 * lsb
            if abs(want) < full_scale - lsb:
                assert abs(got - want) <= 0.5 * lsb * (1 + 1e-9), k  # the int16 quantisation
            else:  # saturated at the rail of its sign
                assert abs(got) >= full_scale - lsb, k
                assert math.copysign(1, got) == math.copysign(1, want), k
    # Counter and timestamp both wrapped inside the stream.
    assert [samples[5].seq, samples[6].seq] == [65535, 0]
    assert samples[2].sensor_time_s == pytest.approx(4294.962296, abs=1e-9)
    assert samples[3].sensor_time_s == pytest.approx(0.005, abs=1e-9)


def test_skipped_samples_leave_an_exact_counter_gap(host_vectors: Path) -> None:
    stdin = "0 0 1 0 0 0\n" * 6 + "skip 7\n" + "0 0 1 0 0 0\n" * 3
    packets = run(host_vectors, "packets", 1, 3, 5000, 4, 65533, 1000, stdin=stdin)
    samples = decode(packets)
    assert [len(p) // 2 for p in packets] == [58, 34, 46]  # 4, then the partial 2 flushed by the skip, then 3
    assert [s.seq for s in samples] == [65533, 65534, 65535, 0, 1, 2, 10, 11, 12]
    assert [s.sensor_time_s for s in samples] == [(1000 + 5000 * k) / 1e6 for k in (0, 1, 2, 3, 4, 5, 13, 14, 15)]
    assert all(s.acc_mps2 == (0.0, 0.0, G_MPS2) for s in samples)


def test_status_packet_decodes(host_vectors: Path) -> None:
    (packet,) = run(host_vectors, "status", 80, 3900, 1 | 2)
    decoder = SensorhubOpenDecoder({}, profile="sensorhub_open")
    assert decoder.feed(bytes.fromhex(packet)) == [
        DeviceInfo(
            "battery",
            {
                "percent": 80,
                "millivolts": 3900,
                "streaming": True,
                "charging": True,
                "imu_error": False,
                "command_rejected": False,
            },
        )
    ]


def test_profile_commands_parse_in_the_firmware_as_documented(host_vectors: Path) -> None:
    profile = load_profile(PROFILE)
    assert profile.has_motor
    wanted: list[tuple[bytes, str]] = []
    for rate_hz in profile.rates_hz:
        values = {"rate_hz": rate_hz, **profile.decoder_settings, **profile.rate_values.get(rate_hz, {})}
        ranges_step, rate_step = profile.commands["configure"]
        wanted.append((render_hex(ranges_step.hex, values), "set_ranges 3 4"))
        wanted.append((render_hex(rate_step.hex, values), f"set_rate {round(1e6 / rate_hz)}"))
    for name, meaning in [("start", "start"), ("stop", "stop"), ("buzz", "buzz 200")]:
        (step,) = profile.commands[name]
        wanted.append((render_hex(step.hex, {}), meaning))
    assert profile.battery is not None
    (request,) = profile.battery.request
    wanted.append((render_hex(request.hex, {}), "read_status"))

    assert run(host_vectors, "parse", *(payload.hex() for payload, _ in wanted)) == [
        word for _, meaning in wanted for word in meaning.split()
    ]
    # The configured ranges are the profile's [ranges] (acc code 3 = ±16 g, gyro code 4 = ±2000 °/s).
    assert (profile.ranges["acc_g"], profile.ranges["gyro_dps"]) == (2 << 3, 125 << 4)


@pytest.mark.parametrize("bad", ["", "07", "0101", "030000", "0310", "0445", "050000", "058913", "0600"])
def test_malformed_commands_are_rejected(host_vectors: Path, bad: str) -> None:
    assert run(host_vectors, "parse", bad or "zz") == ["rejected"]
