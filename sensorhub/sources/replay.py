"""Replay source: a recorded session's raw batches, in the order they arrived (``[source] kind = "replay"``).

The batches come back exactly as the recorder stored them (float32-exact samples, the same
batch boundaries, the device counters), paced on their own sample times: ``speed`` simulated
seconds per wall second, ``math.inf`` = as fast as possible (then the consumer gets to run once
per 100 ms of data, as with the simulator). The store is read a page of chunks at a time, so
memory stays bounded whatever the session's length.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from sensorhub.model import ImuBatch
from sensorhub.store import SessionStore

__all__ = ["ReplaySource"]


class ReplaySource:
    """Async iterator of a stored session's :class:`ImuBatch` es.

    Args:
        store: the session store.
        session_id: the session to replay (must have raw samples recorded).
        speed: recorded seconds per wall-clock second; ``math.inf`` = as fast as possible.
    """

    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.store = store
        self.session_id = store.get(session_id).id  # raises InputError for an unknown id
        self.speed = speed
        self._clock = clock
        self._sleep = sleep

    async def __aiter__(self) -> AsyncIterator[ImuBatch]:
        start_wall = self._clock()
        first_t: float | None = None
        next_yield = -math.inf
        for batch in self.store.read_imu(self.session_id):
            end_t = float(batch.t[-1])
            if first_t is None:
                first_t = end_t
            if not math.isinf(self.speed):
                delay = start_wall + (end_t - first_t) / self.speed - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            elif end_t >= next_yield:
                next_yield = end_t + 0.1
                await self._sleep(0)
            yield batch
