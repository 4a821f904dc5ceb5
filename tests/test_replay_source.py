"""``[source] kind = "replay"``: ``sensorhub run`` on a recorded session's raw batches."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensorhub.config import Config, parse_config
from sensorhub.errors import InputError
from sensorhub.runner import make_source, run_config
from sensorhub.sources.replay import ReplaySource
from sensorhub.store import SessionStore


def _config(tmp_path: Path, source: dict[str, object]) -> Config:
    config = parse_config(
        {
            "wearer": {"id": "rp"},
            "source": source,
            "sensors": [{"placement": p, "profile": "sensorhub_open"} for p in ("upper_thoracic", "sacral")],
            "storage": {"path": str(tmp_path / "s.db")},
        }
    )
    return replace(config, source=replace(config.source, speed=math.inf))


async def test_run_replays_a_recorded_session_batch_for_batch(tmp_path: Path) -> None:
    live = _config(tmp_path, {"kind": "simulator", "scenario": "desk_session"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2.0):
            await run_config(live, view=False)
    store = SessionStore.from_config(live.storage)
    (original,) = store.list_sessions()
    recorded = list(store.read_imu(original.id))
    assert len(recorded) > 500

    again = _config(tmp_path, {"kind": "replay", "session": original.id})
    source = make_source(again)
    assert isinstance(source, ReplaySource)
    service = await run_config(again, view=False)  # ends with the recording
    assert service.status.finished
    assert service.status.calibrated  # the calibration the first run kept
    copy = next(s for s in store.list_sessions() if s.id != original.id)
    replayed = list(store.read_imu(copy.id))
    assert len(replayed) == len(recorded)
    for a, b in zip(recorded, replayed, strict=True):
        assert a.placement == b.placement
        np.testing.assert_array_equal(a.acc, b.acc)
        np.testing.assert_array_equal(a.gyro, b.gyro)
    assert any(v is not None for v in service.status.angles.values())


async def test_replay_paces_on_sample_time_and_refuses_unknown_sessions(tmp_path: Path) -> None:
    live = _config(tmp_path, {"kind": "simulator", "scenario": "desk_session"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await run_config(live, view=False)
    store = SessionStore.from_config(live.storage)
    (session,) = store.list_sessions()
    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    source = ReplaySource(store, session.id, speed=10.0, clock=lambda: now[0], sleep=sleep)
    ends = [float(b.t[-1]) async for b in source]
    # The wall time spent is the recording's span over the speed. Batches of different
    # sensors interleave, so the last batch need not end last.
    assert now[0] == pytest.approx((max(ends) - ends[0]) / 10.0, abs=1e-9)
    assert slept
    assert min(slept) > 0
    with pytest.raises(InputError):
        ReplaySource(store, "no-such-session")
