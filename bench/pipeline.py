"""Benchmark of the spine-angle pipeline: speed, delay and accuracy, VQF and the fallback side by side.

Prints one JSON object:
- offline throughput of the whole pipeline (samples/s, 3 sensors at 100 Hz, streaming stages fed
  one large batch per sensor per minute, and VQF's offline estimator),
- streaming cost per 100 ms block of 3 sensors (µs, median, p90 and p99), with the C kernel when it
  is built (sensorhub/pipeline/kernel.py) and, for VQF, with the pure-Python loops too,
- group delay of the display/alert filter,
- accuracy against the simulator's truth on each scenario and seed (RMSE, max, excluding the
  calibration period), for each estimator.

Run: ``.venv/bin/python bench/pipeline.py [--quick]`` (quick: shorter scenarios, one seed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from sensorhub.model import ImuBatch, Placement
from sensorhub.pipeline import kernel
from sensorhub.pipeline.filters import LowPass
from sensorhub.pipeline.spine import SpinePipeline
from sensorhub.sim.evaluate import Evaluation, evaluate, max_error_during, rmse_between
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

ESTIMATORS = ("vqf", "complementary")


def _median_spread(values: list[float], ndigits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), ndigits),
        "min": round(min(values), ndigits),
        "max": round(max(values), ndigits),
    }


def _recording(duration_s: float) -> tuple[list[ImuBatch], object]:
    wearer = SimulatedWearer(WearerConfig(duration_s=duration_s, seed=0))
    batches = [b for _, b in iter_batches(wearer)]
    result = evaluate(WearerConfig(duration_s=60.0, seed=0), functional="auto")
    return batches, result.result.calibration


def _blocks(batches: list[ImuBatch], block_s: float) -> list[list[ImuBatch]]:
    """Group batches into blocks of ``block_s`` seconds of arrival (all sensors)."""
    out: list[list[ImuBatch]] = []
    edge = None
    for b in batches:
        t_end = float(b.t[-1])
        if edge is None or t_end >= edge:
            out.append([])
            edge = (t_end // block_s + 1) * block_s
        out[-1].append(b)
    return out


def _merge_per_sensor(batches: list[ImuBatch], span_s: float) -> list[ImuBatch]:
    """Large batches: each sensor's samples in ``span_s`` pieces."""
    by: dict[Placement, list[ImuBatch]] = {}
    for b in batches:
        by.setdefault(b.placement, []).append(b)
    out = []
    for whole in (ImuBatch.join(bs) for bs in by.values()):
        edges = np.searchsorted(whole.t, np.arange(whole.t[0], whole.t[-1] + span_s, span_s))
        for i0, i1 in itertools.pairwise(edges):
            if i1 > i0:
                seq = None if whole.seq is None else whole.seq[i0:i1]
                piece = ImuBatch(
                    whole.sensor_id, whole.placement, whole.t[i0:i1], whole.acc[i0:i1], whole.gyro[i0:i1], seq
                )
                out.append(piece)
    out.sort(key=lambda b: float(b.t[0]))
    return out


def _time(fn: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _row(ev: Evaluation) -> dict[str, object]:
    return {
        k.removesuffix("_deg"): {"rmse": round(v.rmse_deg, 3), "max": round(v.max_abs_deg, 3)}
        for k, v in ev.accuracy.items()
    }


def _rep_rom_errors(ev: Evaluation) -> dict[str, float]:
    """Max |estimated − true| range of motion per region over the slow and fast reps (deg)."""
    frame = ev.result.frame
    worst: dict[str, float] = {}
    for e in ev.wearer.events():
        if e.type != "rep" or e.end_t is None:
            continue
        m = (frame.t >= e.start_t) & (frame.t <= e.end_t)
        rom = e.data["rom_deg"]
        assert isinstance(rom, dict)
        for region, name in (("thoracic", "thoracic_flexion_deg"), ("lumbar", "lumbar_flexion_deg")):
            est = getattr(frame, name)[m]
            err = abs(float(np.nanmax(est) - np.nanmin(est)) - float(rom[region]))  # type: ignore[arg-type]
            worst[region] = round(max(worst.get(region, 0.0), err), 3)
    return worst


def _accuracy(*, quick: bool) -> dict[str, object]:
    """Accuracy per scenario, seed and estimator (truth of the simulator; calibration period excluded)."""
    seeds = (0,) if quick else (0, 1, 2)
    res: dict[str, object] = {}

    def runs(name: str, config_for_seed: Callable[[int], WearerConfig], estimators=ESTIMATORS, **kw: object):
        for est in estimators:
            rows = []
            for seed in seeds:
                ev = evaluate(config_for_seed(seed), estimator=est, **kw)  # type: ignore[arg-type]
                row = _row(ev)
                if name.startswith("desk_session"):
                    row["max_during_swivels"] = {
                        k.removesuffix("_deg"): round(v, 3) for k, v in max_error_during(ev, "swivel").items()
                    }
                if name == "cat_camel":
                    row["rep_rom_max_error"] = _rep_rom_errors(ev)
                if name == "long_sitting":
                    first = rmse_between(ev, 0.0, 1200.0)
                    last = rmse_between(ev, ev.wearer.duration_s - 1200.0, ev.wearer.duration_s)
                    row["rmse_first_20_min"] = {k.removesuffix("_deg"): round(v, 3) for k, v in first.items()}
                    row["rmse_last_20_min"] = {k.removesuffix("_deg"): round(v, 3) for k, v in last.items()}
                rows.append({"seed": seed, **row})
                print(f"# {name}/{est} seed {seed}: {row}", file=sys.stderr, flush=True)
            res[f"{name}/{est}"] = rows

    short = 300.0 if quick else None
    runs("desk_session", lambda s: WearerConfig(scenario="desk_session", seed=s, duration_s=short))
    runs(
        "desk_session_nominal_mounting_no_functional",
        lambda s: WearerConfig(
            scenario="desk_session", seed=s, duration_s=short, functional="none", nominal_mounting=True
        ),
        ("vqf",),
        functional=None,
    )
    runs(
        "desk_session_one_sensor",
        lambda s: WearerConfig(
            scenario="desk_session", seed=s, duration_s=short, placements=(Placement.UPPER_THORACIC,)
        ),
        ("vqf",),
    )
    runs("cat_camel", lambda s: WearerConfig(scenario="cat_camel", seed=s))
    runs("confounders", lambda s: WearerConfig(scenario="confounders", seed=s))
    if not quick:
        runs("long_sitting", lambda s: WearerConfig(scenario="long_sitting", seed=s), ("vqf",))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short scenarios, one seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["speed", "accuracy"], help="run one half of the benchmark")
    args = parser.parse_args()
    out: dict[str, object] = {
        "benchmark": "pipeline",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    if args.only != "accuracy":
        out.update(_speed(args))
    if args.only != "speed":
        out["accuracy"] = _accuracy(quick=args.quick)
    print(json.dumps(out, indent=1))


def _speed(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    batches, calibration = _recording(300.0 if args.quick else 600.0)
    n_samples = sum(len(b) for b in batches)
    large = _merge_per_sensor(batches, 60.0)

    throughput: dict[str, object] = {}
    for est in ESTIMATORS:

        def run_large(est: str = est) -> None:
            pipe = SpinePipeline(calibration, estimator=est)  # type: ignore[arg-type]
            for b in large:
                pipe.process(b)
            pipe.flush()

        times = _time(run_large, args.repeats)
        throughput[est] = _median_spread([n_samples / t for t in times], 0)
    out["offline_throughput_samples_per_s"] = throughput

    streaming: dict[str, object] = {}
    blocks = _blocks(batches, 0.1)
    built = kernel.kernel
    out["streaming_implementation"] = kernel.status()
    # The default (the C kernel when built) for both estimators; the pure-Python loops for VQF.
    runs = [(est, mode, built, "") for est in ESTIMATORS for mode in ("per_notification", "per_100ms_tick")]
    if built is not None:
        runs.append(("vqf", "per_100ms_tick", None, "/python"))
    try:
        for est, mode, impl, suffix in runs:
            kernel.kernel = impl  # read by the pipeline objects when they are made
            pipe = SpinePipeline(calibration, estimator=est)  # type: ignore[arg-type]
            costs = []
            for block in blocks:
                start = time.perf_counter()
                if mode == "per_notification":
                    for b in block:
                        pipe.process(b)
                else:
                    pipe.process_block(block)
                costs.append((time.perf_counter() - start) * 1e6)
            arr = np.array(costs[50:])  # after warm-up
            streaming[f"{est}/{mode}{suffix}"] = {
                "median_us": round(float(np.median(arr)), 1),
                "p90_us": round(float(np.percentile(arr, 90)), 1),
                "p99_us": round(float(np.percentile(arr, 99)), 1),
                "blocks": len(arr),
            }
    finally:
        kernel.kernel = built
    out["streaming_cost_per_100ms_block_3_sensors"] = streaming

    lp = LowPass(2.0, 50.0, order=2)
    out["display_filter"] = {"cutoff_hz": 2.0, "order": 2, "rate_hz": 50.0, "group_delay_ms": lp.group_delay_s * 1e3}

    return out


if __name__ == "__main__":
    main()
