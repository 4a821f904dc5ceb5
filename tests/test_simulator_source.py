"""The simulated wearer as an async source of ImuBatch, with device clocks mapped to host time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorhub.model import ImuBatch, Placement
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import SimulatorSource, iter_batches, sensor_id


async def test_source_yields_batches_per_sensor_in_arrival_order():
    source = SimulatorSource(WearerConfig(duration_s=30.0, seed=1), speed=math.inf)
    batches: list[ImuBatch] = [b async for b in source]
    assert {b.placement for b in batches} == set(Placement)
    for placement in Placement:
        mine = [b for b in batches if b.placement is placement]
        assert all(b.sensor_id == sensor_id(placement) for b in mine)
        t = np.concatenate([b.t for b in mine])
        seq = np.concatenate([b.seq for b in mine if b.seq is not None])
        assert np.all(np.diff(t) > 0)
        assert np.all(np.diff(seq) >= 1)
        assert 29.0 < t[-1] < 30.2
        for b in mine:
            assert b.acc.shape == (len(b), 3)
            assert b.gyro.shape == (len(b), 3)


def test_mapped_host_times_track_the_true_sample_times():
    """After a minute, mapped times sit a steady few ms after the true sample times, whatever the
    device clock's offset (up to an hour), drift (±50 ppm) and ODR error.

    The steady part is the latency floor no host can see: 1 ms of firmware packing plus the wait
    for the first connection event (with 40 ms notifications on a 30 ms interval the wait takes
    only three values, 10 ms apart, so its minimum is up to 10 ms).
    """
    for seed in (0, 1, 2):
        wearer = SimulatedWearer(WearerConfig(duration_s=180.0, seed=seed))
        true_t = {p: [] for p in wearer.imus}
        for chunk in wearer.notifications():
            for placement, note in chunk:
                true_t[placement].append(note.true_t)
        mapped = {p: [] for p in wearer.imus}
        for _, batch in iter_batches(SimulatedWearer(WearerConfig(duration_s=180.0, seed=seed))):
            mapped[batch.placement].append(batch.t)
        for placement in wearer.imus:
            tt = np.concatenate(true_t[placement])
            mt = np.concatenate(mapped[placement])
            late = tt > 60.0
            err = mt[late] - tt[late]
            assert err.min() > -0.001, (seed, placement, err.min())
            assert err.max() < 0.015, (seed, placement, err.max())
            assert np.ptp(err) < 0.003, (seed, placement, np.ptp(err))


async def test_real_time_pacing_follows_speed():
    """With a fake clock, the source sleeps so that each batch is released at arrival_t / speed."""
    now = [0.0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    source = SimulatorSource(WearerConfig(duration_s=5.0), speed=10.0, clock=lambda: now[0], sleep=fake_sleep)
    released = []
    arrivals = [a for a, _ in iter_batches(SimulatedWearer(WearerConfig(duration_s=5.0)))]
    async for _ in source:
        released.append(now[0])
    assert len(released) == len(arrivals) > 100
    np.testing.assert_allclose(released, np.array(arrivals) / 10.0, atol=1e-9)


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed must be > 0"):
        SimulatorSource(WearerConfig(duration_s=1.0), speed=0.0)
