"""Record a simulated wearer through the live path into the store (demo, tests, docs, benchmarks).

The batches go through :class:`~sensorhub.store.replay.SessionProcessor` exactly as a live service
sends them: recorded raw from the first notification; after ``calibrate_at_s`` seconds the rig is
calibrated on what was recorded (the neutral window, then a functional movement found
automatically) and the pipeline starts with the next batch; exercise commands are given through
the processor (so they are recorded and a replay gives them again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sensorhub.model import ImuBatch, JsonValue, Placement
from sensorhub.pipeline.calibration import calibrate_rig
from sensorhub.sim.motion import Script
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches
from sensorhub.store.codec import stored_precision
from sensorhub.store.records import SessionInfo
from sensorhub.store.replay import ProcessingSettings, SessionProcessor
from sensorhub.store.store import SessionStore

__all__ = ["record_simulation"]


def record_simulation(
    store: SessionStore,
    config: WearerConfig,
    *,
    script: Script | None = None,
    wearer: str = "sim",
    started_epoch: float = 1_767_258_000.0,  # 2026-01-01 09:00 UTC
    settings: ProcessingSettings | None = None,
    neutral: tuple[float, float] = (0.0, 10.0),
    calibrate_at_s: float = 45.0,
    config_json: Mapping[str, JsonValue] | None = None,
    exercise: Sequence[tuple[float, float]] = (),
) -> SessionInfo:
    """Simulate ``config`` and record it as a live session would be; returns the stored session.

    Args:
        store: where to record.
        config: the simulated wearer.
        script: a motion script replacing the named scenario.
        wearer: wearer id stored with the session.
        started_epoch: the session's start (epoch s); session clock 0 = this instant.
        settings: processing settings (default: 100 Hz nominal rate per placement, default rig/alerts).
        neutral: still upright window for the calibration (s, session clock).
        calibrate_at_s: when the calibration runs (after the functional movement).
        config_json: the configuration snapshot to store.
        exercise: (start, end) windows (s) of commanded cat/camel sets, as a dashboard's
            ``cmd/exercise`` start and stop would give them (the coach finds no set by itself
            unless auto-detection is on).
    """
    placements = tuple(Placement(p) for p in config.placements)
    used = settings or ProcessingSettings(nominal_rate_hz={p.value: float(config.rate_hz) for p in placements})
    recorder = store.start_session(
        wearer,
        [p.value for p in placements],
        config_json=config_json or {"simulation": {"scenario": config.scenario, "seed": config.seed}},
        started_epoch=started_epoch,
        clock_offset_s=started_epoch,
        settings=used.to_json(),
    )
    processor = SessionProcessor(used, placements, epoch_offset_s=started_epoch, recorder=recorder)
    seen: dict[Placement, list[ImuBatch]] = {p: [] for p in placements}
    commands = sorted([(a, True) for a, _ in exercise] + [(b, False) for _, b in exercise])
    try:
        for _, batch in iter_batches(SimulatedWearer(config, script=script)):
            if processor.pipeline is None:
                if len(batch) and batch.t[-1] >= calibrate_at_s:
                    data = {
                        p.value: (
                            np.concatenate([b.t for b in bs]),
                            np.concatenate([b.acc for b in bs]),
                            np.concatenate([b.gyro for b in bs]),
                        )
                        for p, bs in seen.items()
                    }
                    processor.set_calibration(calibrate_rig(data, neutral=neutral, functional="auto"))
                    seen.clear()
                else:
                    seen[batch.placement].append(stored_precision(batch))
            while commands and len(batch) and batch.t[-1] >= commands[0][0]:
                at, active = commands.pop(0)
                processor.set_exercising(active, at)
            processor.process(batch)
        processor.finish()
    except BaseException:
        recorder.close("interrupted")
        raise
    recorder.close()
    if recorder.error is not None:
        raise recorder.error
    return store.get(recorder.id)
