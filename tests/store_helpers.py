"""Recorded sessions for the store tests: a simulated wearer through the live path, recorded once and copied."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorhub.model import Event, ImuBatch, Placement, SpineFrame
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches
from sensorhub.store import SessionStore
from sensorhub.store.simulated import record_simulation

EPOCH = 1_767_258_000.0  # 2026-01-01 09:00:00 UTC
ALL = ("upper_thoracic", "thoracolumbar", "sacral")


@dataclass(frozen=True)
class Recorded:
    """A template store holding one simulated live session (copy it before writing)."""

    path: Path
    session_id: str

    def copy_to(self, directory: Path) -> Path:
        target = directory / "sessions.db"
        shutil.copy(self.path, target)
        return target


def record_template(directory: Path, *, duration_s: float = 75.0, seed: int = 4) -> Recorded:
    """Record ``duration_s`` of desk_session (calibrated at 45 s, an exercise command at 60–70 s)."""
    path = directory / "template.db"
    with SessionStore(path) as store:
        info = record_simulation(
            store,
            WearerConfig(scenario="desk_session", duration_s=duration_s, seed=seed),
            wearer="alex",
            started_epoch=EPOCH,
            exercise=[(60.0, 70.0)],
        )
    return Recorded(path, info.id)


def sim_batches(duration_s: float = 20.0, seed: int = 1) -> list[ImuBatch]:
    """A simulated wearer's notifications (three sensors, with device counters)."""
    wearer = SimulatedWearer(WearerConfig(scenario="desk_session", duration_s=duration_s, seed=seed))
    return [b for _, b in iter_batches(wearer)]


def synthetic_batch(placement: str, t0: float, n: int = 4, rate_hz: float = 100.0, seq0: int = 0) -> ImuBatch:
    """A small synthetic batch (no simulator): noise around gravity."""
    rng = np.random.default_rng(int(t0 * 1000) % 2**32)
    t = t0 + np.arange(n) / rate_hz
    acc = np.array([9.80665, 0.0, 0.0]) + rng.normal(0, 0.05, (n, 3))
    gyro = rng.normal(0, 0.01, (n, 3))
    return ImuBatch(f"syn-{placement}", Placement(placement), t, acc, gyro, np.arange(seq0, seq0 + n))


def synthetic_frame(t0: float, n: int = 25, rate_hz: float = 50.0) -> tuple[SpineFrame, list[str]]:
    t = t0 + np.arange(n) / rate_hz
    frame = SpineFrame(
        t=t,
        thoracic_flexion_deg=5.0 + np.sin(t),
        lumbar_flexion_deg=np.where(np.arange(n) % 7 == 0, np.nan, 3.0 + np.cos(t)),
        trunk_flexion_deg=8.0 + 0.5 * np.sin(t),
        pelvis_tilt_deg=None,
        spine_flexion_deg=None,
        movement=np.full(n, 0.12),
    )
    return frame, ["upright" if i % 10 else "slouched" for i in range(n)]


def slouch(start_t: float, end_t: float | None) -> Event:
    return Event("slouch", start_t, end_t, {"onset_t": start_t - 30.0, "alert_state": "sent"})


_TEMPLATES: dict[tuple[float, int], Recorded] = {}


def template(base: Path, *, duration_s: float = 75.0, seed: int = 4) -> Recorded:
    """The template recording, made once per test run (pass ``tmp_path_factory.getbasetemp()``)."""
    key = (duration_s, seed)
    if key not in _TEMPLATES:
        directory = base / f"store-template-{int(duration_s)}-{seed}"
        directory.mkdir(parents=True, exist_ok=True)
        _TEMPLATES[key] = record_template(directory, duration_s=duration_s, seed=seed)
    return _TEMPLATES[key]
