"""Benchmark of the simulated wearer: simulated seconds per wall second, and peak memory.

Prints one JSON object. Each figure is the median of ``--repeats`` runs with its min and max.
Run: ``.venv/bin/python bench/simulator.py [--duration 120] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
import tracemalloc

import numpy as np

from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches


def _run(config: WearerConfig) -> tuple[float, int]:
    start = time.perf_counter()
    samples = 0
    for _, batch in iter_batches(SimulatedWearer(config)):
        samples += len(batch)
    return time.perf_counter() - start, samples


def _figure(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0, help="simulated seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {
        "benchmark": "simulator",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "duration_s": args.duration,
    }
    cases = {
        "desk_session_3_sensors_100hz": WearerConfig(duration_s=args.duration),
        "desk_session_3_sensors_200hz": WearerConfig(duration_s=args.duration, rate_hz=200.0),
        "desk_session_1_sensor_52hz": WearerConfig(
            duration_s=args.duration, rate_hz=52.0, placements=WearerConfig().placements[:1]
        ),
        "confounders_3_sensors_100hz": WearerConfig(scenario="confounders", duration_s=args.duration),
    }
    for name, config in cases.items():
        speeds, rates = [], []
        for _ in range(args.repeats):
            wall, samples = _run(config)
            speeds.append(args.duration / wall)
            rates.append(samples / wall)
        results[name] = {"realtime_factor": _figure(speeds), "samples_per_s": _figure(rates)}
    tracemalloc.start()
    _run(WearerConfig(duration_s=args.duration))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    results["peak_traced_memory_mb"] = round(peak / 2**20, 1)
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
