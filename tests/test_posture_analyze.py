"""`sensorhub analyze` runs the posture engine: the angle CSV's posture column and the events JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sensorhub.analyze import analyze
from sensorhub.cli import main
from sensorhub.config import AlertsConfig
from sensorhub.model import Posture
from sensorhub.sim.export import write_simulation
from sensorhub.sources.csvfile import read_imu_csv


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    """170 s of desk_session seed 2 with one sensor: neutral, bends, typing, a mild slouch from 87 to 159 s."""
    out = tmp_path_factory.mktemp("sim") / "desk"
    write_simulation(scenario="desk_session", out_dir=out, duration_s=170.0, seed=2, sensors=["upper_thoracic"])
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_analyze_writes_the_posture_column_and_events(sim_dir, tmp_path):
    out, events = tmp_path / "angles.csv", tmp_path / "events.json"
    rc = main(["analyze", str(sim_dir / "imu.csv"), "-o", str(out), "--neutral", "0:12", "--events", str(events)])
    assert rc == 0
    rows = _rows(out)
    labels = [r["posture"] for r in rows]
    assert set(labels) <= {p.value for p in Posture}
    truth = {round(float(r["t"]), 2): r["posture"] for r in _rows(sim_dir / "truth.csv")}
    upright = [r["posture"] for r in rows if truth.get(round(float(r["t"]), 2)) == "upright" and float(r["t"]) > 45]
    assert len(upright) > 1000
    assert upright.count("upright") / len(upright) > 0.9
    assert "moving" in labels  # the calibration bends
    doc = json.loads(events.read_text())
    assert [e["type"] for e in doc["events"]][:2] == ["neutral", "functional"]


def test_analyze_finds_the_slouch_with_alert_settings(sim_dir):
    """The mild slouch bends the trunk 14.4° at most: above the default 10°, below a threshold of 15°."""
    recording = read_imu_csv(sim_dir / "imu.csv")
    kwargs = {"neutral": (0.0, 12.0)}
    strict = analyze(
        recording.series,
        recording.batches(),
        alerts=AlertsConfig(trunk_threshold_deg=15.0),
        **kwargs,  # type: ignore[arg-type]
    )
    assert [e for e in strict.events if e.type == "slouch"] == []
    result = analyze(recording.series, recording.batches(), **kwargs)  # type: ignore[arg-type]
    (slouch,) = [e for e in result.events if e.type == "slouch"]
    assert 87.1 < slouch.start_t < 158.8  # the true episode
    assert slouch.end_t is not None
    assert abs(slouch.end_t - 158.8) < 2.0
    assert slouch.data["alert_state"] == "sent"
    assert result.posture is not None
    assert len(result.posture) == len(result.frame.t)
    assert result.stats is not None
    assert result.stats["slouch_episodes"]["count"] == 1
