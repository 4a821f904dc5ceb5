"""Accuracy of the spine-angle pipeline against the simulator's ground truth.

Used by the tests (short runs, stated tolerances) and by ``bench/pipeline.py`` (full scenarios).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.analyze import AnalysisResult, FunctionalArg, analyze_batches
from sensorhub.config import AlertsConfig
from sensorhub.model import FloatArray, ImuBatch, SpineFrame
from sensorhub.sim.wearer import SimulatedWearer, Truth, WearerConfig
from sensorhub.sources.simulator import iter_batches

__all__ = ["ANGLES", "AngleAccuracy", "Evaluation", "accuracy", "evaluate"]

ANGLES = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg")


@dataclass(frozen=True, slots=True)
class AngleAccuracy:
    """Error statistics of one angle (degrees) over the compared samples."""

    rmse_deg: float
    max_abs_deg: float
    bias_deg: float
    n: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A simulated run through the pipeline, with its truth and accuracy."""

    wearer: SimulatedWearer
    result: AnalysisResult
    truth: Truth
    compare_from_s: float
    accuracy: dict[str, AngleAccuracy]


def accuracy(frame: SpineFrame, truth: Truth, mask: np.ndarray) -> dict[str, AngleAccuracy]:
    """Per-angle RMSE, max |error| and mean error where ``mask`` and both values are finite."""
    out: dict[str, AngleAccuracy] = {}
    for name in ANGLES:
        est: FloatArray | None = getattr(frame, name)
        if est is None:
            continue
        err = est - getattr(truth, name)
        ok = mask & np.isfinite(err)
        e = err[ok]
        if len(e) == 0:
            out[name] = AngleAccuracy(math.nan, math.nan, math.nan, 0)
            continue
        out[name] = AngleAccuracy(float(np.sqrt(np.mean(e * e))), float(np.max(np.abs(e))), float(np.mean(e)), len(e))
    return out


def evaluate(
    config: WearerConfig,
    *,
    functional: FunctionalArg = "auto",
    estimator: str = "vqf",
    offline: bool = False,
    settle_s: float = 5.0,
    alerts: AlertsConfig | None = None,
) -> Evaluation:
    """Simulate ``config``, analyse it like ``sensorhub analyze`` and compare with the truth.

    The comparison starts ``settle_s`` after the calibration period (neutral + functional movement),
    as the targets of issue 3 exclude the calibration period. ``alerts`` configures the posture
    engine that ``analyze`` runs (default: the config defaults).
    """
    wearer = SimulatedWearer(config)
    batches: list[ImuBatch] = [b for _, b in iter_batches(wearer)]
    events = wearer.events()
    neutral = next(e for e in events if e.type == "neutral")
    func = next((e for e in events if e.type == "functional"), None)
    result = analyze_batches(
        batches,
        neutral=(neutral.start_t, float(neutral.end_t or 10.0)),
        functional=functional,
        offline=offline,
        estimator=estimator,
        alerts=alerts,
    )
    truth = wearer.truth(result.frame.t)
    calib_end = float(func.end_t) if func is not None and func.end_t is not None else float(neutral.end_t or 10.0)
    compare_from = calib_end + settle_s
    mask = result.frame.t >= compare_from
    return Evaluation(wearer, result, truth, compare_from, accuracy(result.frame, truth, mask))


def max_error_during(ev: Evaluation, activity: str, *, margin_s: float = 2.0) -> dict[str, float]:
    """Max |error| (deg) per angle inside every ``activity`` window (± margin), e.g. "swivel"."""
    t = ev.result.frame.t
    mask = np.zeros(len(t), dtype=bool)
    for e in ev.wearer.events():
        if e.type == "activity" and e.data.get("activity") == activity and e.end_t is not None:
            mask |= (t >= e.start_t - margin_s) & (t <= e.end_t + margin_s)
    mask &= t >= ev.compare_from_s
    return {name: acc.max_abs_deg for name, acc in accuracy(ev.result.frame, ev.truth, mask).items()}


def rmse_between(ev: Evaluation, start_s: float, end_s: float) -> dict[str, float]:
    """RMSE (deg) per angle between two times (e.g. first vs last 20 minutes)."""
    t = ev.result.frame.t
    mask = (t >= max(start_s, ev.compare_from_s)) & (t < end_s)
    return {name: acc.rmse_deg for name, acc in accuracy(ev.result.frame, ev.truth, mask).items()}
