"""``sensorhub calibrate`` (the guided flow), the stored calibration, and ``run`` starting with it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensorhub.calibration_store import calibration_path, load_calibration, save_calibration
from sensorhub.config import Config, parse_config
from sensorhub.errors import CalibrationError, ConfigError, SensorhubError
from sensorhub.guided import GuidedOptions, guided_calibration, run_guided
from sensorhub.model import ImuBatch, Placement
from sensorhub.runner import run_config
from sensorhub.store import SessionStore

PLACEMENTS = ("upper_thoracic", "thoracolumbar", "sacral")


def _config(
    tmp_path: Path, *, wearer: str = "alex", placements: tuple[str, ...] = PLACEMENTS, **source: object
) -> Config:
    config = parse_config(
        {
            "wearer": {"id": wearer},
            "source": {"kind": "simulator", "scenario": "desk_session", **source},
            "sensors": [{"placement": p, "profile": "sensorhub_open"} for p in placements],
            "storage": {"path": str(tmp_path / "store" / "sessions.db")},
        }
    )
    return replace(config, source=replace(config.source, speed=math.inf))  # as fast as possible


async def _no_sleep(_: float) -> None:
    return None


async def test_guided_flow_on_the_simulated_wearer_saves_a_good_calibration(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = io.StringIO()
    result = await run_guided(config, GuidedOptions(countdown_s=0), out=out)
    text = out.getvalue()
    assert result.attempts == 1
    assert result.calibration.verdict == "good", text
    assert all(cal.axis_source == "functional" for cal in result.calibration.sensors.values())
    # The terminal flow: the instructions, a line a second during the still capture, the verdict.
    assert "sit still" in text
    assert "round your back" in text
    assert text.count("s left") == 10
    assert "✓ calibration good" in text
    assert "flexion axes agree within" in text
    assert result.path == calibration_path(config)
    loaded = load_calibration(result.path, PLACEMENTS)
    assert loaded is not None
    assert loaded.to_json() == result.calibration.to_json()


def _still_then_moving(rate_hz: float = 100.0) -> AsyncIterator[ImuBatch]:
    """Three sensors: 10 s of waving (a 20°/s sway), then still sitting, 0.1 s per batch."""

    async def gen() -> AsyncIterator[ImuBatch]:
        rng = np.random.default_rng(3)
        n = int(rate_hz / 10)
        for k in range(400):
            t = (k * n + np.arange(n)) / rate_hz
            for p in Placement:
                acc = np.tile([9.80665, 0.0, 0.0], (n, 1)) + rng.normal(0, 0.02, (n, 3))
                gyro = rng.normal(0, 0.002, (n, 3))
                if t[0] < 10.0:
                    gyro[:, 1] += math.radians(20.0) * np.sin(2 * math.pi * 0.5 * t)
                yield ImuBatch(f"sim-{p.value}", p, t, acc, gyro)

    return gen()


async def test_motion_in_the_capture_is_refused_and_the_next_attempt_used(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = io.StringIO()
    options = GuidedOptions(countdown_s=2, neutral_s=5.0, functional_s=0.0, save=False)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    result = await guided_calibration(config, _still_then_moving(), options, out=out, sleep=sleep)
    text = out.getvalue()
    assert result.attempts == 3, text  # 0-5 s and 5-10 s sway; 10-15 s is still
    assert text.count("✗ ") == 2
    assert "moved" in text
    assert "too much movement" in text
    assert slept == [1.0, 1.0] * 3
    # No functional movement: the nominal axis, said in the verdict.
    assert result.calibration.verdict == "fair"
    assert "nominal axis" in text
    assert result.path is None
    assert not calibration_path(config).exists()


async def test_every_attempt_failing_is_one_error(tmp_path: Path) -> None:
    options = GuidedOptions(countdown_s=0, neutral_s=4.0, functional_s=0.0, attempts=2)
    with pytest.raises(SensorhubError, match=r"calibration failed 2 times; last: .*moved"):
        await guided_calibration(_config(tmp_path), _still_then_moving(), options, out=io.StringIO(), sleep=_no_sleep)


async def test_source_ending_early_is_one_error(tmp_path: Path) -> None:
    async def short() -> AsyncIterator[ImuBatch]:
        yield ImuBatch("x", Placement.UPPER_THORACIC, np.arange(10) / 100, np.zeros((10, 3)), np.zeros((10, 3)))

    options = GuidedOptions(countdown_s=0, neutral_s=4.0, functional_s=0.0)
    with pytest.raises(SensorhubError, match="stopped streaming"):
        await guided_calibration(_config(tmp_path), short(), options, out=io.StringIO(), sleep=_no_sleep)


@pytest.mark.parametrize(
    "options",
    [
        GuidedOptions(neutral_s=0.0),
        GuidedOptions(functional_s=-1.0),
        GuidedOptions(neutral_s=100.0, functional_s=30.0),
        GuidedOptions(attempts=0),
    ],
)
async def test_impossible_options_are_refused(tmp_path: Path, options: GuidedOptions) -> None:
    with pytest.raises(ConfigError):
        await guided_calibration(_config(tmp_path), _still_then_moving(), options, out=io.StringIO(), sleep=_no_sleep)


# -- the stored calibration ---------------------------------------------------------------------------


async def _calibration(tmp_path: Path) -> object:
    result = await run_guided(_config(tmp_path), GuidedOptions(countdown_s=0, save=False), out=io.StringIO())
    return result.calibration


async def test_stored_calibration_round_trip_and_refusals(tmp_path: Path) -> None:
    from sensorhub.pipeline.calibration import RigCalibration

    cal = await _calibration(tmp_path)
    assert isinstance(cal, RigCalibration)
    path = tmp_path / "c" / "alex.json"
    assert load_calibration(path, PLACEMENTS) is None  # none yet
    save_calibration(path, cal, wearer="alex")
    assert [p.name for p in path.parent.iterdir()] == ["alex.json"]  # no temporary file left
    loaded = load_calibration(path, reversed(PLACEMENTS))
    assert loaded is not None
    assert loaded.to_json() == cal.to_json()
    with pytest.raises(
        CalibrationError, match="calibrates sacral, thoracolumbar, upper_thoracic, the config has sacral"
    ):
        load_calibration(path, ["sacral"])
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot be read"):
        load_calibration(path, PLACEMENTS)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(CalibrationError, match="not a sensorhub calibration file"):
        load_calibration(path, PLACEMENTS)


def test_calibration_path_is_file_name_safe(tmp_path: Path) -> None:
    assert calibration_path(_config(tmp_path)).name == "alex.json"
    odd = calibration_path(_config(tmp_path, wearer="anna maria ü"))
    other = calibration_path(_config(tmp_path, wearer="anna maria ä"))
    assert odd.parent == tmp_path / "store" / "calibrations"
    assert odd.name.startswith("anna_maria__-")
    assert odd != other


async def test_run_starts_with_the_stored_calibration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With a stored calibration, ``run`` produces angles from the first data (recorded from batch 0)."""
    config = _config(tmp_path)
    await run_guided(config, GuidedOptions(countdown_s=0), out=io.StringIO())
    caplog.set_level(logging.INFO, logger="sensorhub.runner")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2.0):
            await run_config(config, view=False)
    assert "using the calibration in" in caplog.text
    store = SessionStore.from_config(config.storage)
    (session,) = store.list_sessions()
    (stored,) = store.read_calibrations(session.id)
    assert stored.from_batch == 0
    saved = load_calibration(calibration_path(config), PLACEMENTS)
    assert saved is not None
    assert stored.calibration.to_json() == saved.to_json()


async def test_run_without_one_calibrates_and_keeps_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(3.0):
            await run_config(config, view=False)
    saved = load_calibration(calibration_path(config), PLACEMENTS)
    assert saved is not None
    assert saved.verdict == "good"


def test_cli_calibrate(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        f"""
[wearer]
id = "sam"
[source]
kind = "simulator"
speed = 1000.0
[[sensors]]
placement = "upper_thoracic"
profile = "sensorhub_open"
[storage]
path = "{tmp_path / "s.db"}"
"""
    )
    cmd = [sys.executable, "-m", "sensorhub", "calibrate", "--config", str(toml), "--countdown", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "calibration good" in done.stdout
    assert f"Saved to {tmp_path / 'calibrations' / 'sam.json'}" in done.stdout
    bad = subprocess.run([*cmd, "--functional", "soon"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "sensorhub: error: --functional: 'soon' is not a number of seconds or 'none'"
    ]
