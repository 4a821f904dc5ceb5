"""Write a simulation to the DESIGN §6 files: raw IMU CSV, truth angle CSV, events JSON.

- ``imu.csv``: ``t,sensor,ax,ay,az,gx,gy,gz`` — host seconds (device clocks mapped as the live
  source maps them), placement name, m/s², rad/s; rows in arrival order, sensors interleaved.
- ``truth.csv``: the angle CSV (``t,thoracic_flexion_deg,lumbar_flexion_deg,trunk_flexion_deg,
  pelvis_tilt_deg,posture``, then ``spine_flexion_deg,heading_deg,slouch``) on a uniform grid.
- ``events.json``: ``{"events": [...]}`` — neutral and functional windows, slouch episodes, reps,
  sets and activities, on the same clock.
- ``simulation.json``: what was simulated — config, per-sensor mounting and drawn errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sensorhub.errors import SimulationError
from sensorhub.formats import AngleCsvWriter, write_events_json
from sensorhub.model import ANGLE_COLUMNS, FloatArray, Placement
from sensorhub.progress import track
from sensorhub.sim.scenarios import Functional
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

__all__ = ["IMU_HEADER", "TRUTH_EXTRA_COLUMNS", "write_simulation"]

IMU_HEADER = ("t", "sensor", "ax", "ay", "az", "gx", "gy", "gz")
TRUTH_EXTRA_COLUMNS = ("spine_flexion_deg", "heading_deg", "slouch")


def _placements(names: Sequence[str]) -> tuple[Placement, ...]:
    allowed = [p.value for p in Placement]
    out = []
    for name in names:
        if name not in allowed:
            raise SimulationError(f"unknown sensor placement {name!r}; choose from {', '.join(allowed)}")
        out.append(Placement(name))
    if len(set(out)) != len(out):
        raise SimulationError("each placement may be given once")
    return tuple(out)


def write_simulation(
    *,
    scenario: str,
    out_dir: Path,
    rate_hz: float = 100.0,
    seed: int = 0,
    sensors: Sequence[str] = ("upper_thoracic", "thoracolumbar", "sacral"),
    duration_s: float | None = None,
    functional: Functional = "bends",
    nominal_mounting: bool = False,
    truth_rate_hz: float = 50.0,
) -> dict[str, Path]:
    """Simulate and write imu.csv, truth.csv, events.json and simulation.json into ``out_dir``."""
    config = WearerConfig(
        scenario=scenario,
        seed=seed,
        rate_hz=rate_hz,
        placements=_placements(sensors),
        functional=functional,
        nominal_mounting=nominal_mounting,
        duration_s=duration_s,
    )
    wearer = SimulatedWearer(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "imu": out_dir / "imu.csv",
        "truth": out_dir / "truth.csv",
        "events": out_dir / "events.json",
        "simulation": out_dir / "simulation.json",
    }
    _write_imu(wearer, paths["imu"])
    _write_truth(wearer, paths["truth"], truth_rate_hz)
    write_events_json(paths["events"], wearer.events())
    paths["simulation"].write_text(json.dumps(_describe(wearer), indent=1) + "\n", encoding="utf-8")
    return paths


def _write_imu(wearer: SimulatedWearer, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(IMU_HEADER) + "\n")
        for _, batch in track(iter_batches(wearer), wearer.duration_s, lambda item: item[0], "simulating"):
            name = batch.placement.value
            rows = np.column_stack([batch.t, batch.acc, batch.gyro])
            fh.writelines(
                f"{r[0]:.6f},{name},{r[1]:.5f},{r[2]:.5f},{r[3]:.5f},{r[4]:.6f},{r[5]:.6f},{r[6]:.6f}\n" for r in rows
            )


def _write_truth(wearer: SimulatedWearer, path: Path, rate_hz: float) -> None:
    n = math.floor(wearer.duration_s * rate_hz) + 1
    slouch = [(e.start_t, e.end_t if e.end_t is not None else math.inf) for e in wearer.events() if e.type == "slouch"]
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        writer = AngleCsvWriter(fh, TRUTH_EXTRA_COLUMNS, decimals=4)
        block = 60 * int(rate_hz)  # one minute at a time: bounded memory for 2 h sessions
        for i0 in range(0, n, block):
            t = np.arange(i0, min(n, i0 + block)) / rate_hz
            tr = wearer.truth(t)
            in_slouch = np.zeros(len(t), dtype=bool)
            for a, b in slouch:
                in_slouch |= (t >= a) & (t < b)
            angles = {name: getattr(tr, name) for name in ANGLE_COLUMNS[1:5]}
            extra: dict[str, FloatArray | list[str] | None] = {
                "spine_flexion_deg": tr.spine_flexion_deg,
                "heading_deg": np.round(tr.heading_deg, 3),
                "slouch": [str(int(x)) for x in in_slouch],
            }
            writer.write(t, angles, tr.posture, extra)


def _describe(wearer: SimulatedWearer) -> dict[str, object]:
    c = wearer.config
    sensors: dict[str, object] = {}
    for placement, imu in wearer.imus.items():
        e = imu.errors
        M = wearer.mounting[placement]
        sensors[placement.value] = {
            "mounting_yaw_deg": round(math.degrees(math.atan2(M[1, 0], M[0, 0])), 3),
            "mounting_matrix": np.round(M, 6).tolist(),
            "acc_offset_mps2": np.round(e.acc_offset_mps2, 6).tolist(),
            "gyro_offset_radps": np.round(e.gyro_offset_radps, 7).tolist(),
            "clock_drift_ppm": round(e.clock_drift_ppm, 3),
            "odr_error_pct": round(e.odr_error * 100.0, 4),
            "sample_period_s": imu.period_s,
        }
    return {
        "scenario": c.scenario,
        "seed": c.seed,
        "rate_hz": c.rate_hz,
        "duration_s": round(wearer.duration_s, 4),
        "functional": c.functional,
        "imu": c.spec.name,
        "nominal_mounting": c.nominal_mounting,
        "sensors": sensors,
    }
