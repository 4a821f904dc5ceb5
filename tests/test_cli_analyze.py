"""`sensorhub analyze`: raw IMU CSV in, angle CSV (+ events JSON) out; bad input exits 2 naming the row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sensorhub.cli import main
from sensorhub.model import ANGLE_COLUMNS
from sensorhub.sim.export import write_simulation
from tests.test_cli_simulate import run_cli


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "desk"
    write_simulation(scenario="desk_session", out_dir=out, duration_s=90.0, seed=6)
    return out


@pytest.fixture(scope="module")
def sim_dir_one_sensor(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim1") / "desk1"
    write_simulation(scenario="desk_session", out_dir=out, duration_s=60.0, seed=7, sensors=["upper_thoracic"])
    return out


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_analyze_writes_angles_close_to_truth(sim_dir, tmp_path):
    out = tmp_path / "angles.csv"
    events = tmp_path / "events.json"
    rc = main(["analyze", str(sim_dir / "imu.csv"), "-o", str(out), "--neutral", "0:12", "--events", str(events)])
    assert rc == 0
    rows = _read(out)
    assert tuple(rows[0].keys())[: len(ANGLE_COLUMNS)] == ANGLE_COLUMNS
    truth = {round(float(r["t"]), 2): r for r in _read(sim_dir / "truth.csv")}
    errs = []
    for r in rows:
        t = round(float(r["t"]), 2)
        if t < 45.0 or t not in truth or r["thoracic_flexion_deg"] == "":
            continue
        errs.append(float(r["thoracic_flexion_deg"]) - float(truth[t]["thoracic_flexion_deg"]))
    assert len(errs) > 1000
    assert np.sqrt(np.mean(np.square(errs))) < 0.8
    doc = json.loads(events.read_text())
    types = [e["type"] for e in doc["events"]]
    assert types[:2] == ["neutral", "functional"]
    functional = doc["events"][1]
    assert 10.0 < functional["start_t"] < 16.0  # the simulated bends start at 12 s


def test_one_sensor_leaves_the_other_angles_empty(sim_dir_one_sensor, tmp_path):
    out = tmp_path / "a.csv"
    assert main(["analyze", str(sim_dir_one_sensor / "imu.csv"), "-o", str(out), "--functional", "none"]) == 0
    rows = _read(out)
    assert all(r["thoracic_flexion_deg"] == "" and r["lumbar_flexion_deg"] == "" for r in rows)
    assert all(r["pelvis_tilt_deg"] == "" for r in rows)
    assert sum(r["trunk_flexion_deg"] != "" for r in rows) > 0.95 * len(rows)


def test_offline_and_complementary_options(sim_dir, tmp_path):
    for extra in (["--offline"], ["--estimator", "complementary"], ["--rate", "25"]):
        out = tmp_path / f"a{len(extra)}{extra[-1]}.csv"
        assert main(["analyze", str(sim_dir / "imu.csv"), "-o", str(out), *extra]) == 0
        rows = _read(out)
        dt = np.diff([float(r["t"]) for r in rows])
        assert np.allclose(dt, 0.04 if "25" in extra else 0.02, atol=1e-6)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD_ROW = "0.00,upper_thoracic,9.8,0,0,0,0,0\n"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("t,sensor,ax,ay,az,gx,gy\n" + GOOD_ROW, "missing column(s) gz"),
        ("t,sensor,ax,ay,az,gx,gy,gz\n" + GOOD_ROW + "0.01,upper_thoracic,9.8,nan,0,0,0,0\n", ":3: NaN"),
        ("t,sensor,ax,ay,az,gx,gy,gz\n" + GOOD_ROW + "0.01,neck,9.8,0,0,0,0,0\n", ":3: unknown sensor 'neck'"),
        (
            "t,sensor,ax,ay,az,gx,gy,gz\n" + "0.02,upper_thoracic,9.8,0,0,0,0,0\n" + GOOD_ROW,
            ":3: time goes backwards for sensor upper_thoracic",
        ),
        (
            "t,sensor,ax,ay,az,gx,gy,gz\n" + GOOD_ROW + "0.01,upper_thoracic,abc,0,0,0,0,0\n",
            ":3: a value is not a number",
        ),
        ("", ":1: empty file"),
    ],
)
def test_bad_csv_exits_2_naming_the_row(tmp_path, content, needle):
    path = _write(tmp_path / "bad.csv", content)
    proc = run_cli("analyze", str(path), "-o", str(tmp_path / "out.csv"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_neutral_window_with_motion_exits_2_naming_the_window(sim_dir, tmp_path):
    proc = run_cli("analyze", str(sim_dir / "imu.csv"), "-o", str(tmp_path / "o.csv"), "--neutral", "12:30")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line
    assert "neutral window" in line
    assert "12.0" in line


@pytest.mark.parametrize("arg", ["--neutral=5", "--neutral=3:1", "--functional=soon"])
def test_bad_windows_exit_2(sim_dir, tmp_path, arg):
    proc = run_cli("analyze", str(sim_dir / "imu.csv"), "-o", str(tmp_path / "o.csv"), arg)
    assert proc.returncode == 2
    assert "START" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_file_exits_2(tmp_path):
    proc = run_cli("analyze", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv"))
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr
