"""Benchmark of the firmware-profile decoders: samples decoded per second, per profile.

Prints one JSON object. For every profile in the registry that has a vector file
(``tests/vectors/<profile>.json``), each of its cases' payloads — real or documented notifications,
in arrival order, with the case's settings — is fed to a fresh decoder through ``Decoder.feed``
(the path a live sensor uses) and repeated until ``--samples`` samples have come out. Cases that
decode no IMU samples (battery or register replies only) are left out. A run's rate is samples per
second of wall time over all of a profile's cases; the figure is the median of ``--runs`` runs,
with the slowest and fastest run as the spread.

Decoders are stateful: repeating a case replays the same payloads, so delta frames, split packets
and counters see the same sequence again. A repeat that a decoder refuses (a counter going
backwards it checks, say) is counted in ``decode_errors`` — it still costs what a live error costs.

Run: ``.venv/bin/python bench/decode.py [--samples 20000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sensorhub.errors import DecodeError
from sensorhub.profiles.base import ImuSample, SettingValue
from sensorhub.profiles.cli import parse_hex
from sensorhub.profiles.registry import all_profiles, make_decoder

VECTOR_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors"

Case = tuple[dict[str, SettingValue], list[bytes]]


def _cases(name: str) -> list[Case]:
    path = VECTOR_DIR / f"{name}.json"
    if not path.is_file():
        return []
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for case in data["cases"]:
        if any("kind" not in item for item in case["expect"]):
            payloads = [parse_hex(h) for h in case["payloads"]]
            cases.append((dict(case.get("set", {})), payloads))
    return cases


def _run(name: str, cases: list[Case], samples_per_case: int) -> tuple[float, int, int]:
    """One run: (seconds, samples, decode errors) over every case."""
    total_s = 0.0
    samples = errors = 0
    for settings, payloads in cases:
        decoder = make_decoder(name, settings)
        got = 0
        start = time.perf_counter()
        while got < samples_per_case:
            for payload in payloads:
                try:
                    out = decoder.feed(payload)
                except DecodeError:
                    errors += 1
                    continue
                got += sum(1 for item in out if isinstance(item, ImuSample))
            if got == 0:
                break  # a case whose payloads decode nothing on replay: nothing to measure
        total_s += time.perf_counter() - start
        samples += got
    return total_s, samples, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20000, help="samples per case per run (default 20000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per profile; the median is reported (default 5)")
    args = parser.parse_args()
    out: dict[str, Any] = {
        "benchmark": "decode",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "samples_per_case": args.samples,
        "runs": args.runs,
        "profiles": {},
    }
    for profile in all_profiles():
        cases = _cases(profile.name)
        if not cases:
            out["profiles"][profile.name] = {"family": profile.family, "skipped": "no vector cases with IMU samples"}
            continue
        rates, errors, samples = [], 0, 0
        for _ in range(args.runs):
            seconds, samples, errors = _run(profile.name, cases, args.samples)
            rates.append(samples / seconds if seconds > 0 else 0.0)
        out["profiles"][profile.name] = {
            "family": profile.family,
            "cases": len(cases),
            "samples_per_run": samples,
            "samples_per_s": round(statistics.median(rates)),
            "spread_samples_per_s": [round(min(rates)), round(max(rates))],
            "us_per_sample": round(1e6 / statistics.median(rates), 3) if statistics.median(rates) else None,
            "decode_errors_per_run": errors,
        }
        print(f"{profile.name}: {out['profiles'][profile.name]['samples_per_s']} samples/s", file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
