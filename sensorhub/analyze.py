"""Offline analysis: raw IMU in, spine angles (+ events) out — ``sensorhub analyze``.

Runs exactly the live stages (calibration, then :class:`~sensorhub.pipeline.spine.SpinePipeline`
fed batch by batch), or, with ``offline=True``, VQF's forward–backward offline estimator in place of
the streaming one; then the :class:`~sensorhub.posture.engine.PostureEngine` over the angles
(posture labels, slouch and break events, exercise events), the same object the live service runs.

Quiet hours offline: they need the wall clock. When the file's times are Unix epoch seconds
(``t ≥ 1e9``, i.e. after September 2001, as exported sessions are) they are read as such, in the
machine's local time zone; on any other clock (e.g. seconds from the start of a recording) quiet
hours cannot be placed and do not apply (docs/posture.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.formats import AngleCsvWriter
from sensorhub.model import ANGLE_COLUMNS, Event, FloatArray, ImuBatch, JsonValue, Placement, SensorAngles, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration, calibrate_rig
from sensorhub.pipeline.orientation import offline_up
from sensorhub.pipeline.rig import Rig, RigSettings
from sensorhub.pipeline.spine import MovementMeter, SpinePipeline, concat_frames
from sensorhub.posture.engine import PostureEngine
from sensorhub.sources.csvfile import SensorSeries

__all__ = [
    "AnalysisResult",
    "analyze",
    "parse_functional",
    "parse_window",
    "write_angle_csv",
]

FunctionalArg = tuple[float, float] | Literal["auto"] | None

#: Default neutral window: the first 10 s of the recording (DESIGN §5).
DEFAULT_NEUTRAL_S = 10.0

#: Times at or above this (s) are taken for Unix epoch seconds (2001-09-09): quiet hours apply.
EPOCH_CLOCK_MIN_S = 1e9


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What ``analyze`` produced.

    Attributes:
        frame: the spine angles on the output grid.
        calibration: the rig calibration used.
        events: calibration windows (``neutral``, ``functional``), then the posture engine's
            events (slouch, break, rep, set, ...) in start order; open ones have ``end_t`` None.
        posture: posture label per instant of ``frame`` ("unknown" everywhere without the engine).
        stats: the posture engine's session statistics (None without the engine).
    """

    frame: SpineFrame
    calibration: RigCalibration
    events: list[Event]
    posture: list[str] | None = None
    stats: dict[str, JsonValue] | None = None


def parse_window(text: str, option: str) -> tuple[float, float]:
    """``"A:B"`` (seconds) → (A, B); InputError naming the option otherwise."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"{option} must be START:END in seconds (e.g. 0:10), got {text!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
        raise InputError(f"{option} must have START < END, got {text!r}")
    return a, b


def parse_functional(text: str) -> FunctionalArg:
    """``A:B`` | ``auto`` | ``none`` for ``--functional``."""
    if text == "auto":
        return "auto"
    if text == "none":
        return None
    return parse_window(text, "--functional")


def _series_from_batches(batches: Sequence[ImuBatch]) -> dict[Placement, SensorSeries]:
    grouped: dict[Placement, list[ImuBatch]] = {}
    for b in batches:
        grouped.setdefault(b.placement, []).append(b)
    joined = {p: ImuBatch.join(bs) for p, bs in grouped.items()}
    return {p: SensorSeries(p, b.t, b.acc, b.gyro) for p, b in joined.items()}


def analyze(
    series: Mapping[Placement, SensorSeries],
    batches: Iterable[ImuBatch],
    *,
    neutral: tuple[float, float] | None = None,
    functional: FunctionalArg = "auto",
    offline: bool = False,
    estimator: str = "vqf",
    nominal_rate_hz: float | Mapping[Placement, float] | None = None,
    rig_settings: RigSettings | None = None,
    posture: bool = True,
    alerts: AlertsConfig | None = None,
) -> AnalysisResult:
    """Calibrate on the windows, then run the pipeline over ``batches`` (the same data, in order).

    Args:
        series: each sensor's whole recording (for calibration and offline estimation).
        batches: the same samples as batches in time order (what a live source would deliver).
        neutral: still upright window (s); default the first 10 s.
        functional: window of forward bends / cat-camel reps, "auto" to find it, None for none.
        offline: use the forward–backward offline VQF instead of the streaming estimator.
        estimator: "vqf" or "complementary" (streaming only).
        nominal_rate_hz: nominal rate per sensor; default: measured from each sensor's timestamps.
        rig_settings: output grid and gap rules.
        posture: run the posture engine over the angles.
        alerts: the posture engine's ``[alerts]`` settings (default: the config defaults).
    """
    if not series:
        raise InputError("no sensor data")
    start = min(float(s.t[0]) for s in series.values())
    window = neutral if neutral is not None else (start, start + DEFAULT_NEUTRAL_S)
    data = {p.value: (s.t, s.acc, s.gyro) for p, s in series.items()}
    calibration = calibrate_rig(data, neutral=window, functional=functional)
    rates = nominal_rate_hz if nominal_rate_hz is not None else {p: _measured_rate(s.t) for p, s in series.items()}
    events = _calibration_events(window, calibration)
    if offline:
        frame = _offline(series, calibration, rates, rig_settings)
    else:
        pipeline = SpinePipeline(calibration, estimator=estimator, nominal_rate_hz=rates, rig_settings=rig_settings)
        frames = [pipeline.process(b) for b in batches]
        frames.append(pipeline.flush())
        frame = concat_frames(frames)
    if not posture:
        return AnalysisResult(frame, calibration, events)
    # The engine's output does not depend on how the frames are cut (tested), so it takes the
    # whole recording in one block.
    epoch_offset = 0.0 if start >= EPOCH_CLOCK_MIN_S else None
    engine = PostureEngine(alerts or AlertsConfig(), tuple(series), epoch_offset_s=epoch_offset)
    out = engine.process(frame)
    found = [*out.finished, *engine.finish()]
    found.sort(key=lambda e: e.start_t)
    return AnalysisResult(frame, calibration, events + found, [str(p) for p in out.labels], engine.stats_json())


def analyze_batches(batches: Sequence[ImuBatch], **kwargs: object) -> AnalysisResult:
    """:func:`analyze` on live-like batches (e.g. a simulator's notifications)."""
    return analyze(_series_from_batches(batches), batches, **kwargs)  # type: ignore[arg-type]


def _measured_rate(t: FloatArray) -> float:
    if len(t) < 2:
        raise InputError("a sensor has fewer than two samples")
    return float(1.0 / np.median(np.diff(t)))


def _offline(
    series: Mapping[Placement, SensorSeries],
    calibration: RigCalibration,
    rates: float | Mapping[Placement, float],
    rig_settings: RigSettings | None,
) -> SpineFrame:
    rig = Rig(tuple(series), rig_settings)
    for placement, s in series.items():
        cal = calibration.sensors[placement.value]
        rate = rates if isinstance(rates, float | int) else rates[placement]
        acc = cal.correct_acc(s.acc)
        bias = np.asarray(cal.gyro_bias_radps, dtype=np.float64)
        out = offline_up(s.t, acc, s.gyro, nominal_rate_hz=float(rate), gyro_bias_radps=bias)
        movement = MovementMeter(bias, float(rate)).process(acc, s.gyro, out.up)
        rig.push(
            SensorAngles(
                f"offline-{placement.value}", placement, out.t, cal.inclination_deg(out.up), out.rest, movement
            )
        )
    return rig.flush()


def _calibration_events(neutral: tuple[float, float], calibration: RigCalibration) -> list[Event]:
    events = [Event("neutral", neutral[0], neutral[1])]
    window = calibration.functional_window
    if window is not None:
        events.append(Event("functional", window[0], window[1]))
    return events


def write_angle_csv(path: Path, frame: SpineFrame, posture: Sequence[str] | None = None) -> None:
    """The DESIGN §6 angle CSV of a SpineFrame (plus ``spine_flexion_deg``)."""
    labels = list(posture) if posture is not None else ["unknown"] * len(frame.t)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        AngleCsvWriter(fh, ("spine_flexion_deg",)).write(
            frame.t,
            {name: getattr(frame, name) for name in ANGLE_COLUMNS[1:5]},
            labels,
            {"spine_flexion_deg": frame.spine_flexion_deg},
        )
