"""Benchmark of the per-sensor orientation estimators: cost per call and per sample.

Prints one JSON object with, for ``VqfEstimator`` and ``ComplementaryEstimator``:

- µs per ``process`` call for 4-sample (one BLE notification) and 10-sample (100 ms) batches,
  median and p99 over every call after a warm-up of 15 s of stream,
- µs per sample for 6000-sample (1 min) batches,

and µs per sample of ``offline_up`` on the same 6000-sample pieces and on the whole recording.

The data is one simulated sensor (upper thoracic, ``desk_session`` seed 0, default error model)
as ``sources.simulator.iter_batches`` delivers it: clock-mapped host times, ``seq``, the stream's
own lost notifications included. Lost samples make a few calls take the special path; the median
is the clean-batch cost.

Run: ``.venv/bin/python bench/orientation.py [--duration-s 600] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import numpy as np

from sensorhub.model import Placement
from sensorhub.pipeline.orientation import ComplementaryEstimator, VqfEstimator, offline_up
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

WARMUP_S = 15.0
Stream = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _stream(duration_s: float) -> Stream:
    """t, acc, gyro, seq of the upper-thoracic sensor."""
    wearer = SimulatedWearer(WearerConfig(duration_s=duration_s, seed=0, placements=(Placement.UPPER_THORACIC,)))
    batches = [b for _, b in iter_batches(wearer)]
    seqs = [b.seq for b in batches if b.seq is not None]
    return (
        np.concatenate([b.t for b in batches]),
        np.concatenate([b.acc for b in batches]),
        np.concatenate([b.gyro for b in batches]),
        np.concatenate(seqs),
    )


def _seed(s: Stream) -> np.ndarray:
    t, _, gyro, _ = s
    seed: np.ndarray = gyro[(t > 1.0) & (t < 11.0)].mean(axis=0)
    return seed


def _per_call(make: Callable[[], VqfEstimator | ComplementaryEstimator], s: Stream, n: int) -> dict[str, float]:
    t, acc, gyro, seq = s
    est = make()
    est.set_gyro_bias(_seed(s))
    warm = int(np.searchsorted(t, WARMUP_S))
    costs = []
    for i in range(0, len(t) - n + 1, n):
        args = (t[i : i + n], acc[i : i + n], gyro[i : i + n], seq[i : i + n])
        start = time.perf_counter_ns()
        est.process(*args)
        if i >= warm:
            costs.append((time.perf_counter_ns() - start) / 1e3)
    arr = np.array(costs)
    return {
        "median_us": round(float(np.median(arr)), 1),
        "p99_us": round(float(np.percentile(arr, 99)), 1),
        "calls": len(arr),
    }


def _per_sample(fn: Callable[[], int], repeats: int) -> float:
    """Best of ``repeats``: µs per sample of ``fn`` (which returns the samples it processed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        samples = fn()
        best = min(best, (time.perf_counter() - start) / samples * 1e6)
    return round(best, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=600.0, help="simulated seconds (≥ 240 for 2000 calls)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many for the per-sample figures")
    args = parser.parse_args()
    s = _stream(args.duration_s)
    t, acc, gyro, seq = s
    makers: dict[str, Callable[[], VqfEstimator | ComplementaryEstimator]] = {
        "vqf": lambda: VqfEstimator(100.0),
        "complementary": lambda: ComplementaryEstimator(100.0),
    }
    big = 6000
    out: dict[str, object] = {
        "benchmark": "orientation",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "samples": len(t),
    }
    for name, make in makers.items():

        def run_big(make: Callable[[], VqfEstimator | ComplementaryEstimator] = make) -> int:
            est = make()
            est.set_gyro_bias(_seed(s))
            for i in range(0, len(t), big):
                est.process(t[i : i + big], acc[i : i + big], gyro[i : i + big], seq[i : i + big])
            return len(t)

        out[name] = {
            "per_call_4": _per_call(make, s, 4),
            "per_call_10": _per_call(make, s, 10),
            "us_per_sample_6000": _per_sample(run_big, args.repeats),
        }

    def offline_pieces() -> int:
        for i in range(0, len(t), big):
            sl = slice(i, i + big)
            offline_up(t[sl], acc[sl], gyro[sl], nominal_rate_hz=100.0, gyro_bias_radps=_seed(s), seq=seq[sl])
        return len(t)

    def offline_whole() -> int:
        offline_up(t, acc, gyro, nominal_rate_hz=100.0, gyro_bias_radps=_seed(s), seq=seq)
        return len(t)

    out["offline_up"] = {
        "us_per_sample_6000": _per_sample(offline_pieces, args.repeats),
        "us_per_sample_whole": _per_sample(offline_whole, args.repeats),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
