"""Device clock → host clock mapping against a simulated BLE IMU whose true clock is known."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from sensorhub.errors import InputError
from sensorhub.sources.clock import ClockParams, DeviceClockMapper

RATE_HZ = 100.0
SAMPLES_PER_PACKET = 4
PACKET_S = SAMPLES_PER_PACKET / RATE_HZ


@dataclass(frozen=True)
class Stream:
    """Simulated notifications, one row per notification that reached the host."""

    device_t: NDArray[np.float64]  # (P, 4) device seconds, as the device reports them
    arrival_t: NDArray[np.float64]  # (P,) host seconds the notification arrived
    true_t: NDArray[np.float64]  # (P, 4) true host seconds each sample was taken
    elapsed_s: NDArray[np.float64]  # (P,) true seconds since the stream began, first sample

    def select(self, keep: NDArray[np.bool_]) -> Stream:
        return Stream(self.device_t[keep], self.arrival_t[keep], self.true_t[keep], self.elapsed_s[keep])


def simulate(seed: int, drift_ppm: float, duration_s: float) -> Stream:
    """A 100 Hz counter device sending 4 samples per notification over a BLE link.

    Device time is ``seq / 100 Hz`` on a random device epoch; host time runs ``1 + drift`` host
    seconds per device second from a random epoch-sized start. Latency is uniform 0–30 ms, 1 % of
    notifications wait 100–400 ms more (retransmissions); BLE delivers in order, so notifications
    queued behind a late one arrive right after it. 0.5 % of notifications are lost.
    """
    rng = np.random.default_rng(seed)
    n_packets = round(duration_s / PACKET_S)
    seq = np.arange(n_packets * SAMPLES_PER_PACKET, dtype=np.float64).reshape(n_packets, SAMPLES_PER_PACKET)
    since_start_device_s = seq / RATE_HZ
    host_start_s = 1.7e9 + rng.uniform(0.0, 1e6)
    true_t = host_start_s + (1.0 + drift_ppm * 1e-6) * since_start_device_s
    latency_s = rng.uniform(0.0, 0.030, n_packets)
    late = rng.random(n_packets) < 0.01
    latency_s[late] += rng.uniform(0.1, 0.4, int(late.sum()))
    arrival_t = np.maximum.accumulate(true_t[:, -1] + latency_s)
    stream = Stream(rng.uniform(0.0, 1e5) + since_start_device_s, arrival_t, true_t, true_t[:, 0] - host_start_s)
    return stream.select(rng.random(n_packets) >= 0.005)


def run(stream: Stream, mapper: DeviceClockMapper | None = None) -> tuple[DeviceClockMapper, NDArray[np.float64]]:
    """Feed every notification to one mapper, in order; returns it and the (P, 4) host times."""
    mapper = mapper if mapper is not None else DeviceClockMapper()
    map_notification = mapper.map
    mapped = [map_notification(d, a) for d, a in zip(stream.device_t, stream.arrival_t.tolist(), strict=True)]
    return mapper, np.stack(mapped)


def max_error_s(stream: Stream, mapped: NDArray[np.float64], after_s: float) -> float:
    rows = stream.elapsed_s >= after_s
    assert rows.any()
    return float(np.max(np.abs(mapped[rows] - stream.true_t[rows])))


@pytest.mark.parametrize(("drift_ppm", "seed"), [(-300.0, 1), (-100.0, 2), (0.0, 3), (100.0, 4), (300.0, 5)])
def test_thirty_minutes_within_3ms_drift_within_5ppm(drift_ppm: float, seed: int) -> None:
    stream = simulate(seed, drift_ppm, 1800.0)
    first_10_min = stream.elapsed_s < 600.0
    mapper, head = run(stream.select(first_10_min))
    assert mapper.drift_ppm == pytest.approx(drift_ppm, abs=5.0)
    assert mapper.rate_scale == pytest.approx(1.0 + drift_ppm * 1e-6, abs=5e-6)
    mapper, tail = run(stream.select(~first_10_min), mapper)
    mapped = np.vstack([head, tail])

    assert max_error_s(stream, mapped, after_s=60.0) < 0.003
    assert np.all(np.diff(mapped.ravel()) > 0), "host times must increase sample by sample"
    assert mapper.n_packets == len(stream.arrival_t)
    assert mapper.resets == 0


@pytest.mark.parametrize("seed", [6, 7])
def test_reconnect_gap_keeps_the_mapping(seed: int) -> None:
    """20 s without notifications while the device keeps counting (a reconnect)."""
    stream = simulate(seed, 300.0, 180.0)
    stream = stream.select((stream.elapsed_s < 120.0) | (stream.elapsed_s >= 140.0))
    mapper, mapped = run(stream)
    assert max_error_s(stream, mapped, after_s=150.0) < 0.005
    assert np.all(np.diff(mapped.ravel()) > 0)
    assert mapper.resets == 0


def test_device_reset_reanchors_once() -> None:
    """The device reboots: its counter restarts at 0 while host time runs on."""
    stream = simulate(8, -300.0, 180.0)
    rebooted = stream.elapsed_s >= 120.0
    device_t = stream.device_t.copy()
    device_t[rebooted] -= device_t[rebooted][0, 0]
    stream = replace(stream, device_t=device_t)
    mapper, mapped = run(stream)
    assert mapper.resets == 1
    assert max_error_s(stream, mapped, after_s=130.0) < 0.050
    assert np.all(np.diff(mapped.ravel()) >= 0)


def test_counter_paused_while_disconnected_reanchors() -> None:
    """A counter that stops while disconnected: device time says 0 s passed, the host says 20 s."""
    stream = simulate(9, 100.0, 180.0)
    stream = stream.select((stream.elapsed_s < 120.0) | (stream.elapsed_s >= 140.0))
    device_t = stream.device_t.copy()
    device_t[stream.elapsed_s >= 140.0] -= 20.0
    stream = replace(stream, device_t=device_t)
    mapper, mapped = run(stream)
    assert mapper.resets == 1
    assert max_error_s(stream, mapped, after_s=150.0) < 0.005


def test_device_time_jump_forward_reanchors() -> None:
    stream = simulate(10, 0.0, 180.0)
    device_t = stream.device_t.copy()
    device_t[stream.elapsed_s >= 120.0] += 1e6
    mapper, mapped = run(replace(stream, device_t=device_t))
    assert mapper.resets == 1
    assert max_error_s(stream, mapped, after_s=130.0) < 0.005
    assert np.all(np.diff(mapped.ravel()) >= 0)


def test_one_second_late_notification_does_not_pull_the_mapping() -> None:
    stream = simulate(12, 200.0, 120.0)
    arrival_t = stream.arrival_t.copy()
    late = int(np.searchsorted(stream.elapsed_s, 90.0))
    arrival_t[late] += 1.0
    arrival_t = np.maximum.accumulate(arrival_t)  # the notifications queued behind it wait too
    stream = replace(stream, arrival_t=arrival_t)
    mapper, mapped = run(stream)
    assert max_error_s(stream, mapped, after_s=60.0) < 0.003
    assert mapper.resets == 0


def test_link_stall_backlog_does_not_reanchor() -> None:
    """The link stalls for 3 s; the notifications queued meanwhile arrive in one burst after it."""
    stream = simulate(16, -150.0, 120.0)
    stalled = (stream.elapsed_s >= 90.0) & (stream.elapsed_s < 93.0)
    arrival_t = stream.arrival_t.copy()
    arrival_t[stalled] = stream.true_t[stalled][-1, -1] + 0.002 * np.arange(1, int(stalled.sum()) + 1)
    mapper, mapped = run(replace(stream, arrival_t=np.maximum.accumulate(arrival_t)))
    assert mapper.resets == 0
    assert max_error_s(stream, mapped, after_s=60.0) < 0.003


@pytest.mark.parametrize("first_delay_s", [0.4, 1.5])
def test_late_first_notification_is_acquired_without_a_jump(first_delay_s: float) -> None:
    stream = simulate(13, -200.0, 90.0)
    arrival_t = stream.arrival_t.copy()
    arrival_t[0] += first_delay_s
    stream = replace(stream, arrival_t=np.maximum.accumulate(arrival_t))
    mapper, mapped = run(stream)
    assert max_error_s(stream, mapped, after_s=60.0) < 0.003
    assert np.all(np.diff(mapped.ravel()) > 0)
    assert mapper.resets == 0


def test_known_latency_floor_is_removed() -> None:
    stream = simulate(14, 50.0, 90.0)
    stream = replace(stream, arrival_t=stream.arrival_t + 0.007)
    _, mapped = run(stream, DeviceClockMapper(ClockParams(latency_floor_s=0.007)))
    assert max_error_s(stream, mapped, after_s=60.0) < 0.003


def test_single_sample_notifications() -> None:
    stream = simulate(15, 80.0, 90.0)
    mapper = DeviceClockMapper()
    mapped = [mapper.map(stream.device_t[i, -1:], float(t)) for i, t in enumerate(stream.arrival_t)]
    errors_s = np.concatenate(mapped) - stream.true_t[:, -1]
    assert np.max(np.abs(errors_s[stream.elapsed_s >= 60.0])) < 0.003


@pytest.mark.parametrize(
    ("device_t", "arrival_t"),
    [
        (np.array([]), 1.0),
        (np.zeros((2, 2)), 1.0),
        (np.array([0.0, np.nan, 0.02]), 1.0),
        (np.array([0.0, np.inf]), 1.0),
        (np.array([0.02, 0.01]), 1.0),
        (np.array([0.0, 0.01]), float("nan")),
    ],
)
def test_bad_input_is_refused(device_t: NDArray[np.float64], arrival_t: float) -> None:
    mapper = DeviceClockMapper()
    with pytest.raises(InputError):
        mapper.map(device_t, arrival_t)
    assert mapper.n_packets == 0


@pytest.mark.parametrize(
    "params",
    [{"block_s": 0.0}, {"n_blocks": 1}, {"acquire_slew": 0.9}, {"slew_ppm": float("nan")}, {"max_rate_error": 1.0}],
)
def test_bad_params_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        ClockParams(**params)


_notification = st.tuples(
    st.floats(min_value=1e-6, max_value=1e6),  # device time since the previous notification, s
    st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=0, max_size=5),  # sample spacings, s
    st.floats(min_value=0.0, max_value=1e6),  # arrival time since the previous notification, s
)


@settings(max_examples=60, deadline=None)
@given(
    start=st.tuples(st.floats(min_value=1e-9, max_value=1e9), st.floats(min_value=1e-9, max_value=1e9)),
    notifications=st.lists(_notification, min_size=1, max_size=40),
)
def test_increasing_inputs_never_give_nan_or_decreasing_output(
    start: tuple[float, float], notifications: list[tuple[float, list[float], float]]
) -> None:
    device_s, arrival_s = start
    mapper = DeviceClockMapper()
    outputs = []
    for step_s, spacings_s, wait_s in notifications:
        device_s += step_s
        arrival_s += wait_s
        device_t = device_s + np.concatenate([[0.0], np.cumsum(spacings_s)])
        device_s = float(device_t[-1])
        out = mapper.map(device_t, arrival_s)
        assert out.shape == device_t.shape
        outputs.append(out)
    flat = np.concatenate(outputs)
    assert np.all(np.isfinite(flat))
    assert np.all(np.diff(flat) >= 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=1e9), st.floats(min_value=0.0, max_value=1e9)),
        min_size=1,
        max_size=30,
    )
)
def test_arbitrary_device_times_never_give_nan_or_decreasing_output(packets: list[tuple[float, float]]) -> None:
    """Device times that jump anywhere (resets, garbage) still give a usable monotonic clock."""
    mapper = DeviceClockMapper()
    arrival_s = 0.0
    previous_s = -np.inf
    for device_s, wait_s in packets:
        arrival_s += wait_s
        out = mapper.map(np.array([device_s, device_s + 0.01]), arrival_s)
        assert np.all(np.isfinite(out))
        assert out[0] >= previous_s
        assert out[1] >= out[0]
        previous_s = float(out[1])
