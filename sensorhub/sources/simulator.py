"""The simulated wearer as a source: ImuBatch per notification, in real time or accelerated.

The simulator delivers what a BLE sensor would: notifications with device timestamps and sample
counters, arriving in bursts. This source maps each sensor's device clock to host time with the
same :class:`~sensorhub.sources.clock.DeviceClockMapper` the BLE source uses, so everything
downstream sees exactly what it would see from hardware.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from sensorhub.model import ImuBatch, Placement
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.clock import DeviceClockMapper

__all__ = ["SimulatorSource", "iter_batches", "sensor_id"]


def sensor_id(placement: Placement) -> str:
    """The id a simulated sensor reports (stable across runs)."""
    return f"sim-{placement.value}"


def iter_batches(wearer: SimulatedWearer) -> Iterator[tuple[float, ImuBatch]]:
    """All of a wearer's notifications as ``(arrival_t, ImuBatch)`` in arrival order (host seconds)."""
    mappers = {placement: DeviceClockMapper() for placement in wearer.imus}
    for chunk in wearer.notifications():
        for placement, note in chunk:
            t = mappers[placement].map(note.device_t, note.arrival_t)
            yield note.arrival_t, ImuBatch(sensor_id(placement), placement, t, note.acc_mps2, note.gyro_radps, note.seq)


class SimulatorSource:
    """Async iterator of :class:`ImuBatch` from a simulated wearer.

    Args:
        config: what to simulate.
        speed: simulated seconds per wall-clock second; ``math.inf`` = as fast as possible.
        clock: monotonic wall clock (seconds), injectable for tests.
        sleep: the coroutine that waits, injectable for tests.
    """

    def __init__(
        self,
        config: WearerConfig,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.wearer = SimulatedWearer(config)
        self.speed = speed
        self._clock = clock
        self._sleep = sleep

    async def __aiter__(self) -> AsyncIterator[ImuBatch]:
        start = self._clock()
        next_yield = -math.inf
        for arrival_t, batch in iter_batches(self.wearer):
            if not math.isinf(self.speed):
                delay = start + arrival_t / self.speed - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            elif arrival_t >= next_yield:
                # As fast as possible, but let the consumer run once per 100 ms of data: it then
                # processes a service tick's worth of notifications at once, as it would live.
                next_yield = arrival_t + 0.1
                await self._sleep(0)
            yield batch
