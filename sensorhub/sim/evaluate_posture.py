"""Scores of the posture engine against the simulator's ground truth (issue 5's targets).

Used by ``bench/posture.py`` (5 seeds, full scenarios) and the tests (short runs). Definitions:

- A **true episode** is a ``slouch`` mark of the scenario (``SimulatedWearer.events()``): from the
  middle of the drift into the slouch to the middle of the correction.
- An **alert** is a ``slouch`` event of the engine, whatever its ``alert_state`` (snooze, quiet
  hours and the hourly cap decide whether the wearer hears it, not whether it was detected); it
  belongs to a true episode when it starts inside it.
- **Recall**: among true episodes longer than dwell + 2 s, the fraction with exactly one alert.
  Also reported for those whose true angle reaches an alert threshold at all.
- **Precision**: the fraction of alerts that start inside a true episode.
- **Delay**: alert start − the instant the *true* angle crossed the alert threshold, i.e. when a
  latch with the engine's thresholds and hysteresis, run on the true angles, switched on last
  before the alert.
- **Labels**: per true posture label, the fraction of its instants the classifier gave the same
  label (recall per label), from ``compare_from`` on (after calibration).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorhub.model import Event, FloatArray, JsonValue
from sensorhub.posture.classifier import SEGMENT_FIELDS, latch
from sensorhub.sim.wearer import Truth

__all__ = ["AlertScore", "alert_score", "label_confusion", "true_onsets"]


@dataclass(slots=True)
class AlertScore:
    """Alert scores of one run (see the module docs)."""

    episodes: int = 0  # true episodes longer than dwell + 2 s
    hits: int = 0  # ... with exactly one alert
    duplicates: int = 0  # ... with more than one
    reachable: int = 0  # ... whose true angle reaches a threshold
    reachable_hits: int = 0
    alerts: int = 0
    true_alerts: int = 0
    delays_s: list[float] = field(default_factory=list)
    missed: list[dict[str, JsonValue]] = field(default_factory=list)
    false_alert_t: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, JsonValue]:
        """JSON-ready summary."""
        return {
            "episodes": self.episodes,
            "hits": self.hits,
            "duplicates": self.duplicates,
            "reachable": self.reachable,
            "reachable_hits": self.reachable_hits,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "delays_s": [round(d, 3) for d in self.delays_s],
            "missed": list(self.missed),
            "false_alert_t": [round(t, 2) for t in self.false_alert_t],
        }


def true_onsets(
    truth: Truth, segments: Sequence[str], thresholds_deg: Mapping[str, float], hysteresis_deg: float
) -> FloatArray:
    """Times at which the latch of any slouch segment, run on the true angles, switched on."""
    on_any = np.zeros(len(truth.t), dtype=bool)
    for seg in segments:
        x: FloatArray = getattr(truth, SEGMENT_FIELDS[seg])
        thr = thresholds_deg[seg]
        state, _ = latch(x >= thr, x < thr - hysteresis_deg, False)
        on_any |= state
    rising = np.flatnonzero(on_any[1:] & ~on_any[:-1]) + 1
    if len(on_any) and on_any[0]:
        rising = np.concatenate(([0], rising))
    out: FloatArray = truth.t[rising]
    return out


def alert_score(
    alerts: Sequence[Event],
    true_events: Sequence[Event],
    truth: Truth,
    *,
    segments: Sequence[str],
    thresholds_deg: Mapping[str, float],
    hysteresis_deg: float,
    dwell_s: float,
) -> AlertScore:
    """Recall, precision and delay of ``alerts`` (engine slouch events) against the true episodes."""
    score = AlertScore()
    episodes = [e for e in true_events if e.type == "slouch" and e.end_t is not None]
    starts = [a.start_t for a in alerts if a.type == "slouch"]
    score.alerts = len(starts)
    onsets = true_onsets(truth, segments, thresholds_deg, hysteresis_deg)
    for a in starts:
        inside = [e for e in episodes if e.start_t <= a <= float(e.end_t or 0.0)]
        if not inside:
            score.false_alert_t.append(a)
            continue
        score.true_alerts += 1
        before = onsets[onsets <= a]
        if len(before):
            score.delays_s.append(a - float(before[-1]))
    for e in episodes:
        end = float(e.end_t or 0.0)
        if end - e.start_t <= dwell_s + 2.0:
            continue
        score.episodes += 1
        n = sum(e.start_t <= a <= end for a in starts)
        m = (truth.t >= e.start_t) & (truth.t <= end)
        reach = any(
            bool(np.any(np.asarray(getattr(truth, SEGMENT_FIELDS[s]))[m] >= thresholds_deg[s])) for s in segments
        )
        score.reachable += reach
        if n == 1:
            score.hits += 1
            score.reachable_hits += reach
        else:
            score.duplicates += n > 1
            peak = e.data.get("peak_deg")
            score.missed.append(
                {
                    "start_t": round(e.start_t, 2),
                    "duration_s": round(end - e.start_t, 1),
                    "depth": e.data.get("depth"),
                    "alerts": n,
                    "true_peak_deg": peak if isinstance(peak, dict) else None,
                    "reaches_threshold": reach,
                }
            )
    return score


def label_confusion(
    truth_labels: Sequence[str], labels: Sequence[str], mask: Sequence[bool]
) -> Counter[tuple[str, str]]:
    """Counts of (true label, engine label) over the instants where ``mask`` holds."""
    return Counter((str(a), str(b)) for a, b, m in zip(truth_labels, labels, mask, strict=True) if m)
