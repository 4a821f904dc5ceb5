"""Benchmark of the posture engine against the simulator's ground truth (issue 5's targets).

Prints one JSON object. For each sensor set (all three; upper thoracic + sacral; upper thoracic
alone) every scenario run goes through the real pipeline (``sensorhub.sim.evaluate`` →
``sensorhub.analyze``, which runs the posture engine with the ``[alerts]`` defaults):

- ``desk_session`` (5 seeds): recall on true slouch episodes longer than dwell + 2 s (exactly one
  alert each), the same for episodes whose true angle reaches a threshold at all, precision of
  alert starts (inside a true episode), the alert delay distribution (alert start − the instant
  the true angle crossed the alert threshold; target ≤ dwell + 0.5 s);
- ``confounders`` (5 seeds): false alerts per hour (target ≤ 0.5);
- posture label recall per true label on both scenarios (after calibration);
- for three sensors, a sweep of the thoracic and lumbar thresholds over the same angles (the engine
  re-run on the pipeline's output; nothing else changes);
- the engine's cost per 100 ms of angles and per instant.

Definitions: ``sensorhub/sim/evaluate_posture.py`` and docs/posture.md.

Run: ``.venv/bin/python bench/posture.py`` (about 10 minutes; ``--quick``: seeds 0–1, three sensors).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from sensorhub.config import AlertsConfig
from sensorhub.model import Event, Placement, SpineFrame
from sensorhub.posture.engine import PostureEngine
from sensorhub.sim.evaluate import Evaluation, evaluate
from sensorhub.sim.evaluate_posture import AlertScore, alert_score, label_confusion
from sensorhub.sim.wearer import WearerConfig

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL
SENSOR_SETS: dict[str, tuple[Placement, ...]] = {
    "three_sensors": (UT, TL, SA),
    "upper_thoracic+sacral": (UT, SA),
    "upper_thoracic": (UT,),
}
SWEEP_THORACIC = (5.0, 8.0, 10.0, 15.0)
SWEEP_LUMBAR = (6.0, 8.0, 10.0)


def _engine_events(
    frame: SpineFrame, alerts: AlertsConfig, placements: Sequence[Placement]
) -> tuple[list[Event], PostureEngine]:
    engine = PostureEngine(alerts, placements)
    out = engine.process(frame)
    return [e for e in (*out.finished, *engine.finish()) if e.type == "slouch"], engine


def _score(ev: Evaluation, slouches: list[Event], engine: PostureEngine, alerts: AlertsConfig) -> AlertScore:
    return alert_score(
        slouches,
        ev.wearer.events(),
        ev.truth,
        segments=engine.segments,
        thresholds_deg=engine.slouch.thresholds_deg,
        hysteresis_deg=alerts.hysteresis_deg,
        dwell_s=alerts.dwell_s,
    )


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _summary(scores: list[AlertScore], hours: float, dwell_s: float) -> dict[str, object]:
    tot = Counter[str]()
    delays: list[float] = []
    for s in scores:
        for k in ("episodes", "hits", "duplicates", "reachable", "reachable_hits", "alerts", "true_alerts"):
            tot[k] += getattr(s, k)
        delays += s.delays_s
    false_alerts = tot["alerts"] - tot["true_alerts"]
    out: dict[str, object] = {
        "recall": _ratio(tot["hits"], tot["episodes"]),
        "recall_reachable": _ratio(tot["reachable_hits"], tot["reachable"]),
        "precision": _ratio(tot["true_alerts"], tot["alerts"]),
        "episodes": tot["episodes"],
        "episodes_reaching_a_threshold": tot["reachable"],
        "hits": tot["hits"],
        "duplicates": tot["duplicates"],
        "alerts": tot["alerts"],
        "false_alerts": false_alerts,
        "hours": round(hours, 3),
        "false_alerts_per_hour": round(false_alerts / hours, 3) if hours else None,
    }
    if delays:
        out["delay_s"] = {
            "n": len(delays),
            "min": round(min(delays), 3),
            "median": round(statistics.median(delays), 3),
            "p90": round(float(np.percentile(delays, 90)), 3),
            "max": round(max(delays), 3),
            "target_max": dwell_s + 0.5,
            "all": sorted(round(d, 3) for d in delays),
        }
    return out


def _labels(conf: Counter[tuple[str, str]]) -> dict[str, object]:
    per_truth = Counter[str]()
    for (truth, _), n in conf.items():
        per_truth[truth] += n
    out: dict[str, object] = {}
    for truth in sorted(per_truth):
        n = per_truth[truth]
        confused = {b: c for (a, b), c in conf.items() if a == truth and b != truth}
        top = sorted(confused.items(), key=lambda kv: -kv[1])[:3]
        out[truth] = {
            "recall": round(conf[(truth, truth)] / n, 4),
            "seconds": round(n / 50.0, 1),
            "confused_with": {b: round(c / n, 4) for b, c in top},
        }
    total = sum(per_truth.values())
    out["overall"] = round(sum(conf[(t, t)] for t in per_truth) / total, 4) if total else None
    return out


def _run_set(name: str, placements: tuple[Placement, ...], seeds: Sequence[int]) -> dict[str, object]:
    alerts = AlertsConfig()
    sweep = name == "three_sensors"
    result: dict[str, object] = {}
    sweep_scores: dict[tuple[float, float], dict[str, list[AlertScore]]] = {}
    sweep_hours: dict[str, float] = {}
    for scenario in ("desk_session", "confounders"):
        scores: list[AlertScore] = []
        conf = Counter[tuple[str, str]]()
        per_seed: list[dict[str, object]] = []
        hours = 0.0
        for seed in seeds:
            start = time.perf_counter()
            ev = evaluate(WearerConfig(scenario=scenario, seed=seed, placements=placements), alerts=alerts)
            frame = ev.result.frame
            slouches = [e for e in ev.result.events if e.type == "slouch"]
            engine = PostureEngine(alerts, placements)  # for the segments and thresholds analyze used
            score = _score(ev, slouches, engine, alerts)
            scores.append(score)
            run_h = (float(frame.t[-1]) - float(frame.t[0])) / 3600.0
            hours += run_h
            assert ev.result.posture is not None
            conf += label_confusion(ev.truth.posture, ev.result.posture, (frame.t >= ev.compare_from_s).tolist())
            per_seed.append({"seed": seed, "hours": round(run_h, 3), **score.to_json()})
            if sweep:
                for th, lu in itertools.product(SWEEP_THORACIC, SWEEP_LUMBAR):
                    trial = replace(alerts, thoracic_threshold_deg=th, lumbar_threshold_deg=lu)
                    events, eng = _engine_events(frame, trial, placements)
                    sweep_scores.setdefault((th, lu), {}).setdefault(scenario, []).append(
                        _score(ev, events, eng, trial)
                    )
            print(
                f"# {name} {scenario} seed {seed}: {time.perf_counter() - start:.0f} s, alerts {score.alerts}, "
                f"hits {score.hits}/{score.episodes}, false {len(score.false_alert_t)}",
                file=sys.stderr,
                flush=True,
            )
        if sweep:
            sweep_hours[scenario] = hours
        result[scenario] = {**_summary(scores, hours, alerts.dwell_s), "per_seed": per_seed}
        result[f"labels_{scenario}"] = _labels(conf)
    if sweep:
        rows = []
        for (th, lu), by_scenario in sorted(sweep_scores.items()):
            desk = _summary(by_scenario["desk_session"], sweep_hours["desk_session"], alerts.dwell_s)
            conf_ = _summary(by_scenario["confounders"], sweep_hours["confounders"], alerts.dwell_s)
            delay = desk.get("delay_s")
            rows.append(
                {
                    "thoracic_threshold_deg": th,
                    "lumbar_threshold_deg": lu,
                    "recall": desk["recall"],
                    "precision": desk["precision"],
                    "delay_max_s": delay["max"] if isinstance(delay, dict) else None,
                    "false_alerts_per_hour_desk": desk["false_alerts_per_hour"],
                    "false_alerts_per_hour_confounders": conf_["false_alerts_per_hour"],
                }
            )
        result["threshold_sweep"] = rows
    return result


def _speed(seed: int = 0) -> dict[str, object]:
    """Engine cost on a 20-minute desk_session with three sensors (angles from the real pipeline)."""
    ev = evaluate(WearerConfig(scenario="desk_session", seed=seed), alerts=AlertsConfig())
    frame = ev.result.frame
    n = len(frame.t)
    engine = PostureEngine(AlertsConfig(), (UT, TL, SA))
    start = time.perf_counter()
    engine.process(frame)
    whole_s = time.perf_counter() - start
    engine = PostureEngine(AlertsConfig(), (UT, TL, SA))
    costs = []
    names = (
        "thoracic_flexion_deg",
        "lumbar_flexion_deg",
        "trunk_flexion_deg",
        "pelvis_tilt_deg",
        "spine_flexion_deg",
        "movement",
    )
    for i in range(0, n, 5):  # 100 ms of a 50 Hz grid
        fields = {k: None if (v := getattr(frame, k)) is None else v[i : i + 5] for k in names}
        block = SpineFrame(frame.t[i : i + 5], **fields)
        t0 = time.perf_counter()
        engine.process(block)
        costs.append((time.perf_counter() - t0) * 1e6)
    arr = np.array(costs[20:])
    return {
        "whole_recording_instants_per_s": round(n / whole_s),
        "per_100ms_block_us": {
            "median": round(float(np.median(arr)), 1),
            "p99": round(float(np.percentile(arr, 99)), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seeds 0–1, three sensors only")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1; default 5)")
    args = parser.parse_args()
    seeds = tuple(range(2 if args.quick else args.seeds))
    sets = {"three_sensors": SENSOR_SETS["three_sensors"]} if args.quick else SENSOR_SETS
    alerts = AlertsConfig()
    out: dict[str, object] = {
        "benchmark": "posture",
        "command": "bench/posture.py" + (" --quick" if args.quick else ""),
        "python": platform.python_version(),
        "seeds": list(seeds),
        "alerts": {
            "thoracic_threshold_deg": alerts.thoracic_threshold_deg,
            "lumbar_threshold_deg": alerts.lumbar_threshold_deg,
            "trunk_threshold_deg": alerts.trunk_threshold_deg,
            "dwell_s": alerts.dwell_s,
            "hysteresis_deg": alerts.hysteresis_deg,
        },
        "targets": {
            "desk_session_recall": 1.0,
            "desk_session_precision_min": 0.95,
            "delay_max_s": alerts.dwell_s + 0.5,
            "confounders_false_alerts_per_hour_max": 0.5,
        },
    }
    for name, placements in sets.items():
        out[name] = _run_set(name, placements, seeds)
    out["engine_speed"] = _speed()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
