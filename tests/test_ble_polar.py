"""The BLE source with a Polar Verity Sense (PMD) through REAL bleak and the fake BlueZ.

The sensor is :class:`~fakebluez.devices.PolarEmulator`: the PMD control point answers the
settings requests and the start/stop commands (the GYRO start reply carries a conversion factor),
ACC and GYRO stream in separate delta-compressed frames (some raw ACC and float GYRO frames among
them) stamped with the device time of their last sample, on the emulator's own clock (50 ppm
fast), and a disconnect stops both streams. The source pairs the two streams
(``sensorhub/sources/pairing.py``) and is compared sample by sample with what went on the air.
"""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest
from fakebluez import FakeBlueZ
from fakebluez.devices import (
    POLAR_ACC,
    POLAR_GYRO,
    POLAR_GYRO_FACTOR,
    PolarEmulator,
    encode_polar_frame,
    lsb,
    signals,
)
from test_ble_source import (
    ADDRESS,
    UT,
    Received,
    count_runs,
    drop_and_reconnect,
    empty_slots,
    running,
    sensor,
    start_sequence,
    wait_for,
)

from sensorhub.errors import DecodeError
from sensorhub.profiles.base import ImuSample
from sensorhub.profiles.registry import get_profile, make_decoder
from sensorhub.sources.ble import BleSource, timing_spec
from sensorhub.sources.timing import SampleTimer

PROFILE = "polar_verity_sense"
RATE_HZ = 52.0
PERIOD_S = 1.0 / RATE_HZ


def _align(t: np.ndarray, expected_t: np.ndarray) -> np.ndarray:
    """Index of each received sample among the samples sent: per run of received samples without a
    hole (split where they are more than 1.5 periods apart), the offset with the least median time error."""
    out = []
    for run in np.split(np.arange(len(t)), np.flatnonzero(np.diff(t) > 1.5 * PERIOD_S) + 1):
        mid = run[len(run) // 2]
        guess = int(np.argmin(np.abs(expected_t - t[mid]))) - (mid - run[0])
        offsets = [o for o in range(guess - 2, guess + 3) if o >= 0 and o + len(run) <= len(expected_t)]
        assert offsets, "received samples the device never sent"
        best = min(offsets, key=lambda o: float(np.median(np.abs(t[run] - expected_t[o : o + len(run)]))))
        out.append(best + np.arange(len(run)))
    return np.concatenate(out)


def check_paired_stream(emu: PolarEmulator, got: Received, unpaired: int, *, settle_s: float = 2.0) -> dict[str, float]:
    """``test_ble_source.check_stream`` for separate ACC and GYRO streams that the source pairs.

    Every sample sent (both its frames on the air) arrives once, in order, at the time the device took
    it, acc within half a count. What the pairing changes: an acc sample before a session's first gyro
    sample is dropped (the acc and gyro timers map the same device time a fraction of a millisecond
    apart), counted in ``unpaired``, which must account for every sample sent and not received but the
    tail; and gyro is interpolated onto the acc times, so it is compared within one count (half a
    count of quantisation plus the interpolation; the MetaMotion check in ``test_ble_source`` does
    the same).
    """
    log = emu.sample_arrays()
    sent = log["sent"]
    expected_t, expected_acc, expected_gyro = log["host_t"][sent], log["acc"][sent], log["gyro"][sent]
    t, acc, gyro = got.arrays(emu.placement)
    assert len(t) > 0
    assert np.all(np.diff(t) > 0), "sample times go back"
    match = _align(t, expected_t)
    assert np.all(np.diff(match) > 0), "a sample twice or out of order"
    not_received = match[0] + (match[-1] - match[0] + 1 - len(match))
    assert not_received == unpaired, (not_received, unpaired)
    tail = expected_t[match[-1] + 1 :]
    # in flight when the source stopped: at most the last frame and a sample held for the next gyro frame
    assert tail.size == 0 or tail[0] >= expected_t[-1] - (emu.samples_per_notification + 1) * PERIOD_S - 0.05
    acc_lsb, gyro_lsb = lsb(PROFILE)
    np.testing.assert_allclose(acc, expected_acc[match], rtol=0, atol=0.5 * acc_lsb * (1 + 1e-9))
    gyro_counts = np.abs(gyro - expected_gyro[match]) / gyro_lsb
    assert float(np.max(gyro_counts)) < 1.0, float(np.max(gyro_counts))
    error_ms = (t - expected_t[match]) * 1e3
    settled = expected_t[match] > expected_t[match[0]] + settle_s
    return {
        "median_ms": float(np.median(np.abs(error_ms[settled]))),
        "max_ms": float(np.max(np.abs(error_ms[settled]))),
        "first_ms": float(error_ms[0]),
        "gyro_max_counts": float(np.max(gyro_counts)),
    }


# -- the encoders against the decoder (no bus) ----------------------------------------------------


def test_polar_frames_decode_to_the_values_within_half_a_count() -> None:
    """decode(encode(x)) == x within quantisation for every frame type the emulator sends, with the
    timestamp on the last sample; the GYRO start reply's factor sets the gyro scale."""
    decoder = make_decoder(get_profile(PROFILE), {"rate_hz": RATE_HZ})
    reply = bytes.fromhex("f0020500000501") + struct.pack("<f", POLAR_GYRO_FACTOR)
    (info,) = decoder.feed(reply)
    assert info.kind == "start_response"
    assert info.values["factor"] == POLAR_GYRO_FACTOR
    sig = signals(UT)
    acc, gyro = sig.at(np.arange(1000, 1013))
    acc[3] = [80.0, -80.0, 0.0]  # beyond ±8 g: saturates
    gyro[5] = [9.0, -9.0, 0.0]  # a jump that needs wide deltas
    acc_lsb, gyro_lsb = lsb(PROFILE)
    t_ns = 789_004_800 * 10**9 + 123_456_789
    for measurement, values, frame_type, step in (
        (POLAR_ACC, acc, 0x81, acc_lsb),
        (POLAR_ACC, acc, 0x01, acc_lsb),
        (POLAR_GYRO, gyro, 0x80, gyro_lsb),
        (POLAR_GYRO, gyro, 0x81, gyro_lsb),
    ):
        out = decoder.feed(encode_polar_frame(measurement, t_ns, values, frame_type=frame_type))
        assert all(isinstance(s, ImuSample) for s in out)
        got = np.array([s.acc_mps2 if measurement == POLAR_ACC else s.gyro_radps for s in out])  # type: ignore[union-attr]
        want = np.clip(values, -8 * 9.80665, 8 * 9.80665) if measurement == POLAR_ACC else values
        np.testing.assert_allclose(got, want, rtol=0, atol=0.5 * step * (1 + 1e-9))
        times = [s.sensor_time_s for s in out if isinstance(s, ImuSample)]
        assert times[-1] == pytest.approx(t_ns / 1e9, abs=1e-6)
        np.testing.assert_allclose(np.diff(times), PERIOD_S, atol=1e-6)
    with pytest.raises(DecodeError):
        decoder.feed(encode_polar_frame(POLAR_ACC, t_ns, acc)[:-1])


# -- streaming ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_polar_streams_every_sample_in_order_with_correct_times(fake_bluez: FakeBlueZ) -> None:
    """52 Hz ACC + GYRO for 8 s: the start sequence as the TOML renders it, every sample once, in
    order, acc within half a count, host times within a few ms of when the device took them."""
    async with PolarEmulator(fake_bluez, ADDRESS[UT], UT) as emu:
        source = BleSource([sensor(UT, PROFILE, rate_hz=None)])
        state = source.links[UT].state
        async with running(source) as got:
            await wait_for(lambda: got.count(UT) > 0, 15, "the Polar sensor streaming")
            start = time.monotonic()
            await wait_for(lambda: time.monotonic() - start > 8.0, 10, "8 s of streaming")

    assert (state.decode_errors, state.gaps, state.missing_samples, state.dropped) == (0, 0, 0, 0)
    assert state.reconnects == 0
    assert state.unpaired <= 1
    assert state.battery_pct == 64.0
    figures = check_paired_stream(emu, got, state.unpaired)
    assert figures["median_ms"] < 3.0, figures
    assert figures["max_ms"] < 15.0, figures
    assert got.count(UT) >= 8 * RATE_HZ
    # every frame type went out (raw ACC every 5th, float GYRO every 7th frame); the factor was read
    assert min(emu.frames.values()) >= 30
    assert source.links[UT]._decoder.factors == {POLAR_ACC: 1.0, POLAR_GYRO: POLAR_GYRO_FACTOR}
    # configure + start exactly as the TOML renders them, each answered with success
    expected = start_sequence(emu)
    assert emu.writes()[: len(expected)] == expected
    assert [reply[:4] for _, reply in emu.replies[: len(expected)]] == [
        bytes.fromhex("f0010200"),
        bytes.fromhex("f0010500"),
        bytes.fromhex("f0020200"),
        bytes.fromhex("f0020500"),
    ]
    # stopping: stop ACC, stop GYRO (both acknowledged), then Disconnect
    assert emu.writes()[-2:] == [bytes.fromhex("0302"), bytes.fromhex("0305")]
    assert [reply for _, reply in emu.replies[-2:]] == [bytes.fromhex("f003020000"), bytes.fromhex("f003050000")]
    assert emu.device.calls[-1] == ("Disconnect", "")


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_polar_link_drops_restart_the_streams_with_exact_gaps(fake_bluez: FakeBlueZ) -> None:
    """The device stops its streams when the link goes: each reconnect sends the start commands
    again, streaming resumes, and the samples missing are counted exactly from the device time."""
    drops = 2
    async with PolarEmulator(fake_bluez, ADDRESS[UT], UT) as emu:
        source = BleSource([sensor(UT, PROFILE, rate_hz=None)])
        state = source.links[UT].state
        async with running(source) as got:
            await wait_for(lambda: got.count(UT) > 100, 15, "streaming")
            for drop in range(drops):
                await drop_and_reconnect(emu, state, got, drop, data_timeout=8)
            count = got.count(UT)
            await wait_for(lambda: got.count(UT) > count + 100, 5, "data after the last reconnect")

    missing = empty_slots(emu)  # the device does not sample while its streams are stopped
    assert state.reconnects == drops
    assert state.decode_errors == 0
    assert missing > 0
    assert state.missing_samples == missing  # exact, from the holes in device time
    assert state.gaps == drops
    assert count_runs(emu.writes(), start_sequence(emu)) == drops + 1
    assert emu.starts(POLAR_ACC) == emu.starts(POLAR_GYRO) == drops + 1
    check_paired_stream(emu, got, state.unpaired)


T_NS = 789_004_800 * 10**9  # 2025-01-01 on PMD's epoch
GOOD_ACC = encode_polar_frame(POLAR_ACC, T_NS, np.full((4, 3), 3.0))
MALFORMED = [
    b"",  # empty
    GOOD_ACC[:9],  # shorter than the header
    GOOD_ACC[:10],  # header, no content
    GOOD_ACC[:-1],  # delta block cut short
    GOOD_ACC[:9] + b"\x05" + GOOD_ACC[10:],  # unknown ACC frame type
    GOOD_ACC[:9] + b"\x01" + bytes(7),  # raw ACC: not whole samples
    GOOD_ACC[:16] + b"\x00\x01",  # zero-width delta block
    b"\x05" + GOOD_ACC[1:9] + b"\x00" + bytes(12),  # raw GYRO: no device sends it
    b"\x00" + GOOD_ACC[1:9] + b"\x00" + bytes(12),  # ECG is not an IMU stream
    b"\x05" + GOOD_ACC[1:9] + b"\x81" + bytes.fromhex("0000c07f") * 3,  # float GYRO: NaN
    b"\xf0\x02",  # a control point reply cut short, on the data characteristic
]


@pytest.mark.timeout(60)
async def test_malformed_pmd_frames_are_counted_and_skipped_without_a_hole(fake_bluez: FakeBlueZ) -> None:
    """Garbage between good frames: counted in decode_errors, skipped, no gap, no hole in the samples."""
    async with PolarEmulator(fake_bluez, ADDRESS[UT], UT) as emu:
        source = BleSource([sensor(UT, PROFILE, rate_hz=None)])
        state = source.links[UT].state
        async with running(source) as got:
            await wait_for(lambda: got.count(UT) > 50, 15, "streaming")
            injected = 0
            for _ in range(10):
                for payload in MALFORMED:
                    injected += emu.inject(payload)
                await asyncio.sleep(0.1)
            count = got.count(UT)
            await wait_for(lambda: got.count(UT) > count + 100, 5, "streaming on")

    assert state.decode_errors == injected == 10 * len(MALFORMED)
    assert (state.gaps, state.missing_samples, state.reconnects, state.stalls) == (0, 0, 0, 0)
    times = got.times(UT)
    assert np.max(np.diff(times)) < 1.5 * PERIOD_S  # no hole anywhere
    check_paired_stream(emu, got, state.unpaired)


# -- the timer: gaps of a stream with device time and no counter (sans-IO) ---------------------------


def test_device_time_without_counter_counts_gaps_from_the_device_time() -> None:
    """PMD has no counter: a lost frame, and the samples not taken while the link was down, are the
    whole sample periods in the hole of device time, counted exactly."""
    timer = SampleTimer(timing_spec(get_profile(PROFILE), RATE_HZ))
    origin_s = T_NS / 1e9

    def frame(k0: int) -> list[ImuSample]:
        return [ImuSample(origin_s + (k0 + i) / RATE_HZ, None, (0.0, 0.0, 9.8), None) for i in range(13)]

    def arrival(k0: int) -> float:
        return 5.0 + (k0 + 12) / RATE_HZ + 0.002

    for j in range(20):
        assert timer.process(frame(13 * j), arrival(13 * j)).gaps == ()
    gaps = timer.process(frame(13 * 21), arrival(13 * 21)).gaps  # frame 20 lost
    assert [(g.missing, g.exact, g.cause) for g in gaps] == [(13, True, "device_time")]
    timer.reset()  # a reconnect; the device restarts its streams 40 slots later
    gaps = timer.process(frame(13 * 22 + 40), arrival(13 * 22 + 40)).gaps
    assert [(g.missing, g.exact, g.cause) for g in gaps] == [(40, True, "reconnect")]
    assert timer.stats.missing_samples == 53
    # The device's clock set an hour ahead while one frame was lost: not 187,000 missing samples
    # but what host time allows, said to be an estimate.
    k = 13 * 24 + 40
    leapt = [ImuSample(s.sensor_time_s + 3600.0, None, s.acc_mps2, None) for s in frame(k)]  # type: ignore[operator]
    gaps = timer.process(leapt, arrival(k)).gaps
    assert [(g.exact, g.cause) for g in gaps] == [(False, "restart")]
    assert 10 <= gaps[0].missing <= 16
