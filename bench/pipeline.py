"""Benchmark of the spine-angle pipeline: speed, delay and accuracy, VQF and the fallback side by side.

Prints one JSON object:
- offline throughput of the whole pipeline (samples/s, 3 sensors at 100 Hz, streaming stages fed
  one large batch per sensor per minute, and VQF's offline estimator),
- streaming cost per 100 ms block of 3 sensors (µs, median and p99),
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
import time
from collections.abc import Callable

import numpy as np

from sensorhub.model import ImuBatch, Placement
from sensorhub.pipeline.filters import LowPass
from sensorhub.pipeline.spine import SpinePipeline
from sensorhub.sim.evaluate import evaluate
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
    for p, bs in by.items():
        t = np.concatenate([b.t for b in bs])
        acc = np.concatenate([b.acc for b in bs])
        gyro = np.concatenate([b.gyro for b in bs])
        seq = np.concatenate([b.seq for b in bs if b.seq is not None])
        edges = np.searchsorted(t, np.arange(t[0], t[-1] + span_s, span_s))
        for i0, i1 in itertools.pairwise(edges):
            if i1 > i0:
                out.append(ImuBatch(bs[0].sensor_id, p, t[i0:i1], acc[i0:i1], gyro[i0:i1], seq[i0:i1]))
    out.sort(key=lambda b: float(b.t[0]))
    return out


def _time(fn: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short scenarios, one seed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out: dict[str, object] = {
        "benchmark": "pipeline",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
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
    for est in ESTIMATORS:
        pipe = SpinePipeline(calibration, estimator=est)  # type: ignore[arg-type]
        costs = []
        for block in blocks:
            start = time.perf_counter()
            for b in block:
                pipe.process(b)
            costs.append((time.perf_counter() - start) * 1e6)
        arr = np.array(costs[50:])  # after warm-up
        streaming[est] = {
            "median_us": round(float(np.median(arr)), 1),
            "p99_us": round(float(np.percentile(arr, 99)), 1),
            "blocks": len(arr),
        }
    out["streaming_cost_per_100ms_block_3_sensors"] = streaming

    lp = LowPass(2.0, 50.0, order=2)
    out["display_filter"] = {"cutoff_hz": 2.0, "order": 2, "rate_hz": 50.0, "group_delay_ms": lp.group_delay_s * 1e3}

    scenarios = {
        "desk_session": {"functional": "auto"},
        "cat_camel": {"functional": "auto"},
        "confounders": {"functional": "auto"},
        "long_sitting": {"functional": "auto"},
    }
    seeds = (0,) if args.quick else (0, 1, 2)
    accuracy: dict[str, object] = {}
    for name, opts in scenarios.items():
        duration = None
        if args.quick:
            duration = 600.0 if name in ("desk_session", "long_sitting") else None
        for est in ESTIMATORS:
            rows = []
            for seed in seeds:
                ev = evaluate(
                    WearerConfig(scenario=name, seed=seed, duration_s=duration),
                    functional=opts["functional"],
                    estimator=est,
                )
                rows.append(
                    {k: {"rmse": round(v.rmse_deg, 3), "max": round(v.max_abs_deg, 3)} for k, v in ev.accuracy.items()}
                )
            accuracy[f"{name}/{est}"] = rows
    out["accuracy_deg"] = accuracy
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
