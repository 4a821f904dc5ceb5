"""Per-sample timing (SampleTimer) against a simulated BLE link whose true sample times are known.

The link model (``simulate``): the device samples at 100 Hz on its own crystal (50 ppm off the
host), packs 4 samples per notification (0.5 ms) and queues each for the next BLE connection
event (7.5 ms interval, as the reference firmware asks for; random phase). 5 % of connection
events fail (interference), so queued notifications wait and then go out in a burst, 0.4 ms
apart. The host stamps arrival with scheduling jitter (exponential, 0.5 ms mean) and, for 0.5 %
of notifications, a 5–50 ms stall; delivery stays in order. 0.2 % of notifications are lost.

Errors are measured against the true sampling instant, so they include the latency the mapper
cannot see: the constant 0.5 ms of packing, and the smallest wait for a connection event, which
*beats* between 0 and gcd(notification period, connection interval) — 2.5 ms for 40 ms and
7.5 ms, 5 ms for 40 ms and 15 ms (``test_connection_interval_beat_bounds_the_error``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from sensorhub.errors import InputError
from sensorhub.profiles.base import ImuSample
from sensorhub.profiles.decoders.sensorhub_open import COUNTER_BITS, TIME_WRAP_S, SensorhubOpenDecoder
from sensorhub.sources.clock import ClockParams
from sensorhub.sources.timing import SampleGap, SampleTimer, TimingSpec

RATE_HZ = 100.0
PER_PACKET = 4
ACQUISITION_S = 60.0
#: The firmware's packing time, a constant latency the mapper cannot observe, told to it as
#: ``latency_floor_s`` (docs/clock.md, caveats). Without it the 1 h errors are 2.1–2.3 ms.
PACKING = ClockParams(latency_floor_s=0.0005)


@dataclass(frozen=True)
class Link:
    """Notifications that reached the host, one row each, plus what was lost."""

    index: NDArray[np.int64]  # (P, n) sample number since the device started, 0, 1, 2 ...
    true_t: NDArray[np.float64]  # (P, n) true host time each sample was taken
    arrival_t: NDArray[np.float64]  # (P,)
    elapsed_s: NDArray[np.float64]  # (P,) true seconds since the first sample, per notification

    def select(self, keep: NDArray[np.bool_]) -> Link:
        return Link(self.index[keep], self.true_t[keep], self.arrival_t[keep], self.elapsed_s[keep])


def simulate(
    seed: int,
    duration_s: float,
    drift_ppm: float,
    *,
    per_packet: int = PER_PACKET,
    rate_hz: float = RATE_HZ,
    drop: float = 0.002,
    interval_s: float = 0.0075,
) -> Link:
    """Burst delivery over a BLE link (see the module docstring); vectorised, 1 h in ~0.1 s."""
    rng = np.random.default_rng(seed)
    n_packets = round(duration_s * rate_hz / per_packet)
    index = np.arange(n_packets * per_packet, dtype=np.int64).reshape(n_packets, per_packet)
    host_start = 1.7e9 + rng.uniform(0.0, 1e6)
    true_t = host_start + (1.0 + drift_ppm * 1e-6) * (index / rate_hz)
    ready = true_t[:, -1] + 0.0005  # packing and queueing on the device
    phase = rng.uniform(0.0, interval_s)
    first_event = np.ceil((ready - host_start - phase) / interval_s).astype(np.int64)
    n_events = int(first_event[-1]) + 1000
    ok = rng.random(n_events) >= 0.05
    events = np.arange(n_events)
    # next successful event at or after each event (reverse running minimum)
    next_ok = np.minimum.accumulate(np.where(ok, events, n_events)[::-1])[::-1]
    event = next_ok[first_event]
    event_t = host_start + phase + event * interval_s
    starts = np.r_[0, np.flatnonzero(np.diff(event)) + 1]
    position = np.arange(n_packets) - np.repeat(starts, np.diff(np.r_[starts, n_packets]))
    arrival = event_t + 0.0004 * position + rng.exponential(0.0005, n_packets)
    stalled = rng.random(n_packets) < 0.005
    arrival[stalled] += rng.uniform(0.005, 0.05, int(stalled.sum()))
    arrival = np.maximum.accumulate(arrival)
    link = Link(index, true_t, arrival, true_t[:, 0] - host_start)
    return link.select(rng.random(n_packets) >= drop)


def run(
    timer: SampleTimer,
    link: Link,
    *,
    seq_modulus: int | None = None,
    first_seq: int = 0,
    time_us: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float64], list[SampleGap]]:
    """Feed every notification; returns the (P, n) host times and all gap records.

    ``seq_modulus``: send a counter ``(first_seq + index) mod seq_modulus``; ``time_us``:
    send a device timestamp ``((t0_us + index * period_us) mod 2³²) / 1e6`` for (t0_us, period_us).
    """
    seq = None if seq_modulus is None else (first_seq + link.index) % seq_modulus
    times = None if time_us is None else ((time_us[0] + link.index * time_us[1]) % 2**32) / 1e6
    n = link.index.shape[1]
    out = np.empty(link.true_t.shape)
    gaps: list[SampleGap] = []
    for p, arrival in enumerate(link.arrival_t.tolist()):
        timed = timer.process_arrays(
            n,
            arrival,
            seq=None if seq is None else seq[p],
            sensor_time_s=None if times is None else times[p],
        )
        out[p] = timed.host_t
        gaps.extend(timed.gaps)
    return out, gaps


def max_error_s(link: Link, host_t: NDArray[np.float64], after_s: float) -> float:
    rows = link.elapsed_s >= after_s
    return float(np.max(np.abs(host_t[rows] - link.true_t[rows])))


def lost_runs(link: Link) -> list[tuple[int, int]]:
    """(first missing sample index, missing samples) between consecutive delivered notifications."""
    first = link.index[:, 0]
    last = link.index[:, -1]
    holes = np.flatnonzero(first[1:] != last[:-1] + 1)
    return [(int(last[i] + 1), int(first[i + 1] - last[i] - 1)) for i in holes]


# -- the figure: 1 h, burst delivery, 50 ppm --------------------------------------------


def test_one_hour_counter_kind_within_2ms() -> None:
    """uint16 sample counter (wraps every 655 s), 50 ppm fast host: ≤ 2 ms after 60 s, every gap exact."""
    link = simulate(seed=1, duration_s=3600.0, drift_ppm=50.0)
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=16), PACKING)
    host_t, gaps = run(timer, link, seq_modulus=2**16, first_seq=65000)

    error_s = max_error_s(link, host_t, ACQUISITION_S)
    assert error_s <= 0.002, f"max error {error_s * 1e3:.2f} ms"
    assert timer.mapper.drift_ppm == pytest.approx(50.0, abs=2.0)
    assert np.all(np.diff(host_t.ravel()) > 0)
    assert [(g.first_seq, g.missing) for g in gaps] == [(65000 + i, k) for i, k in lost_runs(link)]
    assert all(g.exact and g.cause == "counter" for g in gaps)
    assert len(gaps) > 50
    assert (timer.stats.restarts, timer.stats.glitches, timer.mapper.resets) == (0, 0, 0)


def test_one_hour_device_time_kind_within_2ms() -> None:
    """The open profile's clock: uint32 µs timestamps (wrap after 71.6 min, here at 10 min) and a uint16 counter."""
    link = simulate(seed=2, duration_s=3600.0, drift_ppm=-50.0)
    spec = TimingSpec("device_time", RATE_HZ, counter_bits=COUNTER_BITS, time_wrap_s=TIME_WRAP_S)
    timer = SampleTimer(spec, PACKING)
    t0_us = 2**32 - 600_000_000
    host_t, gaps = run(timer, link, seq_modulus=2**16, time_us=(t0_us, 10_000))

    error_s = max_error_s(link, host_t, ACQUISITION_S)
    assert error_s <= 0.002, f"max error {error_s * 1e3:.2f} ms"
    assert timer.mapper.drift_ppm == pytest.approx(-50.0, abs=2.0)
    assert [(g.first_seq, g.missing) for g in gaps] == lost_runs(link)
    assert (timer.stats.restarts, timer.mapper.resets) == (0, 0)


def test_connection_interval_beat_bounds_the_error() -> None:
    """15 ms connection interval: the smallest wait for an event beats over 0–5 ms (100 s period
    at 50 ppm); the mapper's fit sits on the mean of that floor. Bounded by floor + beat, not 2 ms."""
    link = simulate(seed=9, duration_s=600.0, drift_ppm=50.0, interval_s=0.015)
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=16))
    host_t, _ = run(timer, link, seq_modulus=2**16)
    rows = link.elapsed_s >= ACQUISITION_S
    error_s = host_t[rows] - link.true_t[rows]
    assert float(np.max(np.abs(error_s))) <= 0.0005 + 0.005
    assert float(np.min(error_s)) > 0.0  # late, never early: the latency is one-sided


# -- gaps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_counter_widths_unwrap_and_count_gaps_exactly(bits: int) -> None:
    link = simulate(seed=3, duration_s=120.0, drift_ppm=20.0, drop=0.02)
    first_seq = 2**bits - 37
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=bits))
    host_t, gaps = run(timer, link, seq_modulus=2**bits, first_seq=first_seq)
    assert [(g.first_seq, g.missing) for g in gaps] == [(first_seq + i, k) for i, k in lost_runs(link)]
    assert all(g.exact for g in gaps)
    assert max_error_s(link, host_t, 30.0) < 0.005
    assert timer.stats.missing_samples == sum(k for _, k in lost_runs(link))


def test_packet_counter_with_samples_per_count() -> None:
    """A uint8 *packet* counter the decoder expands to count · 4 + index: wraps at 1024 samples."""
    link = simulate(seed=4, duration_s=60.0, drift_ppm=0.0, drop=0.02)
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=8, samples_per_count=PER_PACKET))
    _, gaps = run(timer, link, seq_modulus=256 * PER_PACKET)
    assert [(g.first_seq, g.missing) for g in gaps] == lost_runs(link)


def test_gap_inside_one_notification_is_counted() -> None:
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=16))
    timer.process_arrays(4, 100.0, seq=np.array([65532, 65533, 65534, 65535]))
    timed = timer.process_arrays(4, 100.04, seq=np.array([0, 1, 5, 6]))
    assert timed.seq is not None
    assert timed.seq.tolist() == [65536, 65537, 65541, 65542]
    assert [(g.first_seq, g.missing, g.exact, g.cause) for g in timed.gaps] == [(65538, 3, True, "counter")]


@pytest.mark.parametrize(("bits", "silence_s"), [(8, 20.0), (16, 20.0), (16, 400.0)])
def test_reconnect_with_a_running_counter_gives_an_exact_gap(bits: int, silence_s: float) -> None:
    """The link drops for `silence_s`, the device counts on; uint16 at 100 Hz wraps every 655 s."""
    link = simulate(seed=5, duration_s=120.0 + silence_s + 60.0, drift_ppm=50.0, drop=0.0)
    before = link.elapsed_s < 120.0
    after = link.elapsed_s >= 120.0 + silence_s
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=bits))
    run(timer, link.select(before), seq_modulus=2**bits)
    timer.reset()
    host_t, gaps = run(timer, link.select(after), seq_modulus=2**bits)

    first_missing = int(link.index[before][-1, -1]) + 1
    missing = int(link.index[after][0, 0]) - first_missing
    assert [(g.first_seq, g.missing, g.exact, g.cause) for g in gaps] == [(first_missing, missing, True, "reconnect")]
    assert max_error_s(link.select(after), host_t, 0.0) < 0.003
    assert (timer.stats.reconnects, timer.mapper.resets) == (1, 0)


def test_reconnect_after_a_device_restart_starts_a_new_epoch() -> None:
    """The device rebooted while disconnected: its counter starts again at 0."""
    link = simulate(seed=6, duration_s=200.0, drift_ppm=-50.0, drop=0.0)
    before = link.elapsed_s < 120.0
    after = link.elapsed_s >= 140.0
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=16))
    run(timer, link.select(before), seq_modulus=2**16)
    timer.reset()
    rebooted = link.select(after)
    restart_at = int(rebooted.index[0, 0])
    host_t, gaps = run(timer, rebooted, seq_modulus=2**16, first_seq=-restart_at)

    assert len(gaps) == 1
    assert (gaps[0].cause, gaps[0].exact, gaps[0].first_seq) == ("restart", False, None)
    assert gaps[0].missing == pytest.approx(20.0 * RATE_HZ, abs=10)
    assert (timer.stats.restarts, timer.mapper.resets) == (1, 1)
    assert max_error_s(rebooted, host_t, 150.0) < 0.003
    assert np.all(np.diff(host_t.ravel()) >= 0)


def test_counter_going_back_within_a_connection_is_a_restart() -> None:
    timer = SampleTimer(TimingSpec("counter", RATE_HZ, counter_bits=16))
    for k in range(100):
        timer.process_arrays(4, 10.0 + 0.04 * k, seq=np.arange(4 * k, 4 * k + 4) + 30000)
    timed = timer.process_arrays(4, 14.0, seq=np.arange(4))
    assert [(g.cause, g.exact) for g in timed.gaps] == []  # nothing was missed by the clock
    assert timer.stats.restarts == 1


# -- host rate model ----------------------------------------------------------------------------


def test_rate_model_tracks_a_wrong_nominal_rate_and_detects_a_lost_notification() -> None:
    """No counter, no time (WitMotion): 1 sample per notification, the real rate 0.3 % off nominal."""
    link = simulate(seed=7, duration_s=300.0, drift_ppm=3000.0, per_packet=1, rate_hz=50.0, drop=0.0)
    lost = (link.elapsed_s >= 150.0) & (link.elapsed_s < 150.0 + 3 / 50.0)
    assert int(lost.sum()) == 3
    kept = link.select(~lost)
    timer = SampleTimer(TimingSpec("host_rate_model", 50.0))
    host_t, gaps = run(timer, kept)

    assert [(g.cause, g.exact, g.missing) for g in gaps] == [("rate_model", False, 3)]
    assert gaps[0].host_t_after - 150.0 - kept.true_t[0, 0] < 8.0  # detected within 8 s
    assert max_error_s(kept.select(kept.elapsed_s < 150.0), host_t[kept.elapsed_s < 150.0], ACQUISITION_S) < 0.002
    assert max_error_s(kept, host_t, 170.0) < 0.002
    assert timer.mapper.drift_ppm == pytest.approx(3000.0, abs=5.0)


def test_rate_model_reconnect_estimates_the_gap_from_host_time() -> None:
    link = simulate(seed=8, duration_s=200.0, drift_ppm=0.0, per_packet=1, rate_hz=50.0, drop=0.0)
    before, after = link.elapsed_s < 100.0, link.elapsed_s >= 110.0
    timer = SampleTimer(TimingSpec("host_rate_model", 50.0))
    run(timer, link.select(before))
    timer.reset()
    host_t, gaps = run(timer, link.select(after))
    assert [(g.cause, g.exact) for g in gaps] == [("reconnect", False)]
    assert gaps[0].missing == pytest.approx(500, abs=3)
    assert max_error_s(link.select(after), host_t, 120.0) < 0.005


# -- records and errors -------------------------------------------------------------------------


def test_process_takes_the_open_profile_decoder_output() -> None:
    """Two open-profile packets, 10 ms period, counter wrapping: host times 10 ms apart, no gap."""
    decoder = SensorhubOpenDecoder({}, profile="sensorhub_open")
    timer = SampleTimer(TimingSpec("device_time", 100.0, counter_bits=COUNTER_BITS, time_wrap_s=TIME_WRAP_S))
    header = bytes.fromhex("1143")
    first = (
        header + (65534).to_bytes(2, "little") + (2**32 - 20_000).to_bytes(4, "little") + (10_000).to_bytes(2, "little")
    )
    second = header + (0).to_bytes(2, "little") + (0).to_bytes(4, "little") + (10_000).to_bytes(2, "little")
    samples_a = [s for s in decoder.feed(first + bytes(24)) if isinstance(s, ImuSample)]
    samples_b = [s for s in decoder.feed(second + bytes(24)) if isinstance(s, ImuSample)]
    a = timer.process(samples_a, 500.0)
    b = timer.process(samples_b, 500.02)
    assert b.gaps == ()
    assert b.seq is not None
    assert b.seq.tolist() == [65536, 65537]
    assert np.diff(np.r_[a.device_t, b.device_t]) == pytest.approx([0.01, 0.01, 0.01])
    assert np.diff(np.r_[a.host_t, b.host_t]) == pytest.approx([0.01, 0.01, 0.01], abs=1e-6)


def test_missing_fields_are_input_errors() -> None:
    sample = ImuSample(sensor_time_s=None, seq=None, acc_mps2=(0.0, 0.0, 9.8), gyro_radps=(0.0, 0.0, 0.0))
    with pytest.raises(InputError):
        SampleTimer(TimingSpec("counter", 100.0, counter_bits=16)).process([sample], 1.0)
    with pytest.raises(InputError):
        SampleTimer(TimingSpec("device_time", 100.0)).process([sample], 1.0)
    with pytest.raises(InputError):
        SampleTimer(TimingSpec("host_rate_model", 100.0)).process([], 1.0)
    with pytest.raises(InputError):
        TimingSpec("counter", 0.0)
