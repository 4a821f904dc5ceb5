"""The emulators' packet encoders (tests/fakebluez/devices.py) against the decoders: decode(encode(x)) == x
within quantisation, so the BLE tests compare the source's output with the right truth."""

from __future__ import annotations

import numpy as np
import pytest
from fakebluez.devices import (
    encode_metamotion,
    encode_open_imu,
    encode_open_status,
    encode_thingy_raw,
    encode_witmotion_imu,
    encode_witmotion_register,
    lsb,
)

from sensorhub.model import Placement
from sensorhub.profiles.base import DeviceInfo, ImuSample
from sensorhub.profiles.registry import make_decoder

RNG = np.random.default_rng(7)
ACC = RNG.uniform(-1.9 * 9.80665, 1.9 * 9.80665, (6, 3))  # inside every profile's range (Thingy: ±2 g)
GYRO = np.radians(RNG.uniform(-450.0, 450.0, (6, 3)))  # inside ±500 °/s (MetaMotion)


def samples(items: list[ImuSample | DeviceInfo]) -> list[ImuSample]:
    out = [i for i in items if isinstance(i, ImuSample)]
    assert len(out) == len(items)
    return out


def assert_within_half_count(profile: str, got: np.ndarray, want: np.ndarray, stream: str) -> None:
    acc_lsb, gyro_lsb = lsb(profile)
    step = acc_lsb if stream == "acc" else gyro_lsb
    np.testing.assert_allclose(got, want, rtol=0, atol=0.5 * step * (1 + 1e-9))


def test_open_profile_imu_and_status() -> None:
    payload = encode_open_imu(0x43, 65534, 2**32 - 5000, 10_000, ACC[:4], GYRO[:4])
    out = samples(make_decoder("sensorhub_open").feed(payload))
    assert [s.seq for s in out] == [65534, 65535, 0, 1]  # the counter wraps inside the packet
    assert [round(s.sensor_time_s or 0, 6) for s in out] == [4294.962296, 0.005, 0.015, 0.025]
    assert_within_half_count("sensorhub_open", np.array([s.acc_mps2 for s in out]), ACC[:4], "acc")
    assert_within_half_count("sensorhub_open", np.array([s.gyro_radps for s in out]), GYRO[:4], "gyro")
    info = make_decoder("sensorhub_open").feed(encode_open_status(87, 3980, 0x01))
    assert info == [
        DeviceInfo(
            "battery",
            {
                "percent": 87,
                "millivolts": 3980,
                "streaming": True,
                "charging": False,
                "imu_error": False,
                "command_rejected": False,
            },
        )
    ]


def test_witmotion_stream_split_anywhere() -> None:
    stream = b"".join(encode_witmotion_imu(a, g) for a, g in zip(ACC, GYRO, strict=True))
    stream += encode_witmotion_register(0x64, [395, 0, 0, 0, 0, 0, 0, 0])
    decoder = make_decoder("witmotion_bwt901blecl")
    out = []
    for start, stop in ((0, 13), (13, 40), (40, 41), (41, 100), (100, len(stream))):
        out.extend(decoder.feed(stream[start:stop]))
    imu = [i for i in out if isinstance(i, ImuSample)]
    assert len(imu) == 6
    assert_within_half_count("witmotion_bwt901blecl", np.array([s.acc_mps2 for s in imu]), ACC, "acc")
    assert_within_half_count("witmotion_bwt901blecl", np.array([s.gyro_radps for s in imu]), GYRO, "gyro")
    battery = [i for i in out if isinstance(i, DeviceInfo)]
    assert battery[0].kind == "battery"
    assert battery[0].values["percent"] == 90


def test_thingy_raw() -> None:
    decoder = make_decoder("thingy52")
    for a, g in zip(ACC, GYRO, strict=True):
        (s,) = samples(decoder.feed(encode_thingy_raw(a, g)))
        assert_within_half_count("thingy52", np.array(s.acc_mps2), a, "acc")
        assert_within_half_count("thingy52", np.array(s.gyro_radps), g, "gyro")


@pytest.mark.parametrize("stream", ["acc", "gyro"])
def test_metamotion_packed(stream: str) -> None:
    values = ACC[:3] if stream == "acc" else GYRO[:3]
    out = samples(make_decoder("metamotion").feed(encode_metamotion(stream, values)))
    got = np.array([s.acc_mps2 if stream == "acc" else s.gyro_radps for s in out])
    assert all((s.gyro_radps if stream == "acc" else s.acc_mps2) is None for s in out)
    assert_within_half_count("metamotion", got, values, stream)


def test_wearer_signals_fit_every_profile_range() -> None:
    """The desk session stays inside the smallest ranges (Thingy ±2 g, MetaMotion ±500 °/s): no saturation."""
    from fakebluez.devices import signals

    for placement in Placement:
        sig = signals(placement)
        assert np.max(np.abs(sig.acc_mps2)) < 2 * 9.80665
        assert np.max(np.abs(np.degrees(sig.gyro_radps))) < 500
