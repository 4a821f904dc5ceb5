"""Benchmark of the cat/camel coach against the simulator's ground truth (issue 5, item 4).

Each run simulates the ``cat_camel`` scenario, analyses it through the real pipeline
(``sensorhub.sim.evaluate``: calibration, then the streaming SpinePipeline batch by batch) and
feeds the resulting SpineFrame to an :class:`ExerciseCoach` in 100 ms ticks, the way the service
does. The commands a user would give are placed from the scenario's marks: ``start`` 2 s before
each set's first rep, ``stop`` 2 s after its last, and a lumbar pain stop at the deepest round of
the third rep of the first set.

Prints one JSON object: per sensor set-up (three sensors, upper-thoracic + sacral, upper-thoracic
alone) and seed, the rep count error per set, the per-rep range-of-motion error per region (max
|error| and RMSE, degrees, reps matched to the truth by time overlap), too-fast precision/recall,
the pain-stop check (the next set's lumbar target), the duration error, and the same on the truth
angles as a reference; then the worst values over seeds against the issue's targets, and an
auto-detection run (no commands) for information.

Run: ``.venv/bin/python bench/exercise.py [--quick] [--seeds 0 1 2 3 4]`` (quick: seeds 0–1,
three sensors and one sensor only).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sensorhub.model import Event, FloatArray, Placement, SpineFrame
from sensorhub.posture.exercise import REGIONS, ExerciseCoach, ExerciseSettings
from sensorhub.sim.evaluate import evaluate
from sensorhub.sim.wearer import Truth, WearerConfig

SETUPS: dict[str, tuple[Placement, ...]] = {
    "three_sensors": (Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL),
    "upper_thoracic_sacral": (Placement.UPPER_THORACIC, Placement.SACRAL),
    "upper_thoracic_only": (Placement.UPPER_THORACIC,),
}
#: Every per-sample field of a SpineFrame besides ``t`` (angles, and whatever else it carries).
FRAME_FIELDS = tuple(f.name for f in fields(SpineFrame) if f.name != "t")
TICK_S = 0.1
PAIN_REGION = "lumbar"
ROM_TOLERANCE_DEG = 2.0


def end_of(event: Event) -> float:
    """The end time of a closed event."""
    if event.end_t is None:
        raise ValueError(f"{event.type} event at {event.start_t} is still open")
    return event.end_t


def data(event: Event) -> dict[str, Any]:
    """An event's data, for reading JSON values without narrowing each one."""
    return dict(event.data)


@dataclass(frozen=True, slots=True)
class Command:
    t: float
    name: str  # "start" | "stop" | "pain"
    region: str | None = None


def slice_frame(frame: SpineFrame, mask: np.ndarray | slice) -> SpineFrame:
    """The samples of ``frame`` where ``mask`` holds (None angles stay None)."""
    parts: dict[str, FloatArray | None] = {}
    for name in FRAME_FIELDS:
        values: FloatArray | None = getattr(frame, name)
        parts[name] = None if values is None else values[mask]
    return SpineFrame(frame.t[mask], **parts)


def run_coach(coach: ExerciseCoach, frame: SpineFrame, commands: Sequence[Command], tick_s: float) -> list[Event]:
    """Feed ``frame`` in ``tick_s`` blocks, giving each command between the blocks at its time."""
    events: list[Event] = []
    queue = sorted(commands, key=lambda c: c.t)
    t = frame.t
    edges = np.arange(t[0], t[-1] + tick_s, tick_s) if len(t) else np.array([])
    k = 0
    lo = 0
    for edge in [*edges[1:].tolist(), math.inf]:
        while k < len(queue) and queue[k].t <= edge:
            cmd = queue[k]
            hi = int(np.searchsorted(t, cmd.t, side="left"))
            if hi > lo:
                events += coach.process(slice_frame(frame, slice(lo, hi)))
                lo = hi
            if cmd.name == "start":
                events += coach.start(cmd.t)
            elif cmd.name == "stop":
                events += coach.stop(cmd.t)
            else:
                events += coach.pain(cmd.region, cmd.t)
            k += 1
        hi = int(np.searchsorted(t, edge, side="left"))
        if hi > lo:
            events += coach.process(slice_frame(frame, slice(lo, hi)))
            lo = hi
    return events


def truth_frame(truth: Truth, placements: Sequence[Placement]) -> SpineFrame:
    """The truth angles as the rig would give them for ``placements`` (None where it cannot)."""
    has = set(placements)
    ut, tl, sa = (Placement.UPPER_THORACIC in has, Placement.THORACOLUMBAR in has, Placement.SACRAL in has)
    return SpineFrame(
        truth.t,
        thoracic_flexion_deg=truth.thoracic_flexion_deg if ut and tl else None,
        lumbar_flexion_deg=truth.lumbar_flexion_deg if tl and sa else None,
        trunk_flexion_deg=truth.trunk_flexion_deg if ut else None,
        pelvis_tilt_deg=truth.pelvis_tilt_deg if sa else None,
        spine_flexion_deg=truth.spine_flexion_deg if ut and sa else None,
    )


def commands_for(events: Sequence[Event], truth_at: Truth) -> list[Command]:
    """start/stop around each true set; a pain stop at the deepest round of set 1's third rep.

    The pain stop ends the coach's set, so the user starts again 2 s after that rep (inside the
    scenario's pause): the scenario's first set becomes the coach's sets 1 (reps 1–3) and 2
    (reps 4–5), and reps 4–5 are the first to carry the lowered target.
    """
    sets = [e for e in events if e.type == "set" and e.end_t is not None]
    reps = [e for e in events if e.type == "rep" and e.end_t is not None]
    out: list[Command] = []
    for s in sets:
        out += [Command(s.start_t - 2.0, "start"), Command(end_of(s) + 2.0, "stop")]
    first_set = sets[0]
    in_first = [r for r in reps if first_set.start_t <= r.start_t < end_of(first_set)]
    rep3 = in_first[2]
    m = (truth_at.t >= rep3.start_t) & (truth_at.t <= end_of(rep3))
    t_round = float(truth_at.t[m][np.argmax(truth_at.spine_flexion_deg[m])])
    out.append(Command(t_round, "pain", PAIN_REGION))
    out.append(Command(end_of(rep3) + 2.0, "start"))
    return out


def score(events: Sequence[Event], truth_events: Sequence[Event], settings: ExerciseSettings) -> dict[str, Any]:
    """Count, ROM, tempo and pain-stop scores of the coach's events against the truth."""
    true_sets = [e for e in truth_events if e.type == "set"]
    true_reps = [e for e in truth_events if e.type == "rep"]
    reps = [e for e in events if e.type == "rep"]
    count_errors = []
    for s in true_sets:
        end = end_of(s)
        n_true = sum(1 for r in true_reps if s.start_t <= r.start_t < end)
        n_est = sum(1 for r in reps if s.start_t - 2.0 <= r.start_t < end + 2.0)
        count_errors.append(n_est - n_true)
    errors: dict[str, list[float]] = {r: [] for r in REGIONS}
    duration_errors: list[float] = []
    measured: dict[bool, list[float]] = {True: [], False: []}  # measured durations by the truth's too_fast
    tp = fp = fn = 0
    matched: set[int] = set()
    for tr in true_reps:
        t0, t1 = tr.start_t, end_of(tr)
        overlaps = [max(0.0, min(t1, end_of(e)) - max(t0, e.start_t)) for e in reps]
        j = int(np.argmax(overlaps)) if overlaps else -1
        true_fast = bool(tr.data["too_fast"])
        if j < 0 or overlaps[j] <= 0.0 or j in matched:
            fn += int(true_fast)
            continue
        matched.add(j)
        est = reps[j]
        rom_true = data(tr)["rom_deg"]
        rom_est = data(est)["rom_deg"]
        for region in REGIONS:
            value = rom_est[region]
            if value is not None:
                errors[region].append(float(value) - float(rom_true[region]))
        duration_errors.append(float(data(est)["duration_s"]) - float(data(tr)["duration_s"]))
        measured[true_fast].append(float(data(est)["duration_s"]))
        est_fast = bool(est.data["too_fast"])
        tp += int(est_fast and true_fast)
        fp += int(est_fast and not true_fast)
        fn += int(true_fast and not est_fast)
    fp += sum(1 for j, e in enumerate(reps) if j not in matched and e.data["too_fast"])
    rom: dict[str, Any] = {}
    for region, errs in errors.items():
        e = np.asarray(errs)
        rom[region] = (
            None
            if len(e) == 0
            else {
                "max_abs": round(float(np.max(np.abs(e))), 3),
                "rmse": round(float(np.sqrt(np.mean(e * e))), 3),
                "bias": round(float(np.mean(e)), 3),
            }
        )
    return {
        "count_error_per_set": count_errors,
        "reps_detected": len(reps),
        "reps_true": len(true_reps),
        "rom_error_deg": rom,
        "too_fast": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        },
        "duration_error_s": {
            "mean": round(float(np.mean(duration_errors)), 3) if duration_errors else None,
            "min": round(float(np.min(duration_errors)), 3) if duration_errors else None,
            "max": round(float(np.max(duration_errors)), 3) if duration_errors else None,
        },
        "tempo_s": {
            "min_rep_s": settings.min_rep_s,
            "slow_reps_shortest": round(min(measured[False]), 3) if measured[False] else None,
            "fast_reps_longest": round(max(measured[True]), 3) if measured[True] else None,
        },
    }


def pain_check(events: Sequence[Event], truth_events: Sequence[Event], settings: ExerciseSettings) -> dict[str, Any]:
    """Did the pain stop end its set and lower the region's target from the next set on (only then)?"""
    pains = [e for e in events if e.type == "pain_stop"]
    reps = [e for e in events if e.type == "rep"]
    if not pains:
        return {"ok": False, "why": "no pain_stop event"}
    pain = pains[0]
    rom = data(pain)["rom_deg"]
    region = next((r for r in (PAIN_REGION, "trunk") if rom.get(r) is not None), None)
    if region is None:
        return {"ok": False, "why": "no range at the pain stop"}
    limit = float(rom[region])
    expected = settings.target_fraction * limit

    def target(rep: Event) -> float | None:
        value = data(rep)["target_deg"][region]
        return None if value is None else float(value)

    pain_set = data(pain)["set"]
    ended = [e for e in events if e.type == "set" and data(e)["set"] == pain_set]
    ended_by_pain = bool(ended) and data(ended[0])["ended_by"] == "pain" and ended[0].end_t == pain.end_t
    earlier = [r for r in reps if data(r)["set"] <= pain_set]
    later = [r for r in reps if data(r)["set"] > pain_set]
    true_rep3 = [e for e in truth_events if e.type == "rep"][2]
    true_rom = data(true_rep3)["rom_deg"]
    before = [target(r) for r in earlier]
    after = [target(r) for r in later]
    lowered = bool(after) and all(v is not None and abs(v - expected) < 0.01 for v in after)
    ok = ended_by_pain and all(v is None for v in before) and lowered
    return {
        "ok": ok,
        "region": region,
        "set_ended_by_pain": ended_by_pain,
        "pain_rom_deg": round(limit, 3),
        "pain_rom_error_vs_rep3_truth_deg": round(limit - float(true_rom[region]), 3),
        "target_after_deg": after[0] if after else None,
        "reps_before_without_target": sum(v is None for v in before),
        "reps_after_with_target": sum(v is not None for v in after),
        "reps_after_over_target": sum(1 for r in later if region in data(r)["over_target"]),
    }


def run_seed(setup: str, seed: int, settings: ExerciseSettings) -> dict[str, Any]:
    placements = SETUPS[setup]
    t0 = time.perf_counter()
    ev = evaluate(WearerConfig(scenario="cat_camel", seed=seed, placements=placements))
    sim_s = time.perf_counter() - t0
    truth_events = ev.wearer.events()
    frame = ev.result.frame
    commands = commands_for(truth_events, ev.truth)
    t1 = time.perf_counter()
    events = run_coach(ExerciseCoach(settings), frame, commands, TICK_S)
    coach_s = time.perf_counter() - t1
    reference = run_coach(ExerciseCoach(settings), truth_frame(ev.truth, placements), commands, TICK_S)
    auto = run_coach(ExerciseCoach(ExerciseSettings(auto_detect=True)), frame, [], TICK_S)
    auto_sets = [e for e in auto if e.type == "set"]
    return {
        "seed": seed,
        "pipeline": score(events, truth_events, settings),
        "pain_stop": pain_check(events, truth_events, settings),
        "truth_angles": score(reference, truth_events, settings),
        "auto_detect": {
            "reps": sum(1 for e in auto if e.type == "rep"),
            "reps_true": sum(1 for e in truth_events if e.type == "rep"),
            "sets": len(auto_sets),
            "reps_per_set": [e.data["reps"] for e in auto_sets],
        },
        "seconds": {"simulate_and_pipeline": round(sim_s, 2), "coach": round(coach_s, 3), "frames": len(frame)},
    }


def worst(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst values over seeds, with the issue's targets."""
    count_ok = all(all(e == 0 for e in r["pipeline"]["count_error_per_set"]) for r in rows)
    rom_max: dict[str, float | None] = {}
    rom_rmse: dict[str, float | None] = {}
    for region in REGIONS:
        cells = [r["pipeline"]["rom_error_deg"][region] for r in rows]
        cells = [c for c in cells if c is not None]
        rom_max[region] = max(c["max_abs"] for c in cells) if cells else None
        rom_rmse[region] = max(c["rmse"] for c in cells) if cells else None
    fast = [r["pipeline"]["too_fast"] for r in rows]
    tp = sum(f["tp"] for f in fast)
    fp = sum(f["fp"] for f in fast)
    fn = sum(f["fn"] for f in fast)
    pain_ok = all(r["pain_stop"]["ok"] for r in rows)
    slow = [r["pipeline"]["tempo_s"]["slow_reps_shortest"] for r in rows]
    quick = [r["pipeline"]["tempo_s"]["fast_reps_longest"] for r in rows]
    present = [v for v in rom_max.values() if v is not None]
    return {
        "seeds": [r["seed"] for r in rows],
        "rep_count_exact": count_ok,
        "count_errors": [r["pipeline"]["count_error_per_set"] for r in rows],
        "rom_error_max_abs_deg": rom_max,
        "rom_error_rmse_deg": rom_rmse,
        "rom_within_2_deg": bool(present) and max(present) <= ROM_TOLERANCE_DEG,
        "too_fast": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        },
        "pain_stop_lowers_next_set_target": pain_ok,
        "pain_rom_error_max_abs_deg": max(abs(r["pain_stop"]["pain_rom_error_vs_rep3_truth_deg"]) for r in rows),
        "tempo_s": {
            "slow_reps_shortest": min(v for v in slow if v is not None),
            "fast_reps_longest": max(v for v in quick if v is not None),
        },
        "truth_angles_rom_error_max_abs_deg": max(
            c["max_abs"] for r in rows for c in r["truth_angles"]["rom_error_deg"].values() if c is not None
        ),
        "auto_detect": {
            "reps": [r["auto_detect"]["reps"] for r in rows],
            "reps_true": [r["auto_detect"]["reps_true"] for r in rows],
            "reps_per_set": [r["auto_detect"]["reps_per_set"] for r in rows],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seeds 0–1; three sensors and one sensor")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default 0–4)")
    args = parser.parse_args()
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    setups = ["three_sensors", "upper_thoracic_only"] if args.quick else list(SETUPS)
    settings = ExerciseSettings()
    out: dict[str, Any] = {
        "benchmark": "exercise",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "settings": {
            "min_rep_s": settings.min_rep_s,
            "min_rom_deg": settings.min_rom_deg,
            "hysteresis_deg": settings.hysteresis_deg,
            "target_fraction": settings.target_fraction,
        },
        "targets": {
            "rep_count": "exact",
            "rom_error_deg": ROM_TOLERANCE_DEG,
            "too_fast": "flagged",
            "pain_stop": "lowers the region's target in the next set",
        },
    }
    results: dict[str, Any] = {}
    for setup in setups:
        rows = []
        for seed in seeds:
            row = run_seed(setup, seed, settings)
            print(f"# {setup} seed {seed}: {json.dumps(row['pipeline'])}", file=sys.stderr, flush=True)
            rows.append(row)
        results[setup] = {"worst_over_seeds": worst(rows), "per_seed": rows}
    out["results"] = results
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
