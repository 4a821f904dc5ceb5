"""Fuzzing at scale: the hypothesis fuzz tests with thousands of examples each, as one benchmark.

Runs ``tests/test_fuzz.py`` (config loader, IMU CSV importer, command payloads) and
``tests/test_profiles_fuzz.py`` (every decoder family) in a pytest child with ``FUZZ_EXAMPLES``
set, reads hypothesis' own statistics (cases actually run per test, not the requested number)
and prints one JSON object: tests, cases, failing tests, wall time. The test suite runs the same
tests with 100–150 examples each; this is the long run the bench asks for.

Run: ``.venv/bin/python bench/fuzz.py [--examples 5000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("tests/test_fuzz.py", "tests/test_profiles_fuzz.py")
_TEST = re.compile(r"^(tests/\S+::\S+):\s*$")
_CASES = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")


def parse_statistics(text: str) -> dict[str, dict[str, int]]:
    """Per test id: passing / failing / invalid cases summed over hypothesis' phases."""
    out: dict[str, dict[str, int]] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := _TEST.match(line):
            current = m.group(1)
            out.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0})
        elif current and (m := _CASES.search(line)):
            for key, value in zip(("passing", "failing", "invalid"), m.groups(), strict=True):
                out[current][key] += int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=5000, help="hypothesis examples per test (default 5000)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    args = parser.parse_args()

    env = dict(os.environ, FUZZ_EXAMPLES=str(args.examples))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", *FILES]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
    wall = time.monotonic() - t0
    stats = parse_statistics(done.stdout)
    summary = re.findall(r"(\d+) (passed|failed|error)", done.stdout.splitlines()[-1] if done.stdout else "")
    counts = {kind: int(n) for n, kind in summary}
    result = {
        "examples_requested_per_test": args.examples,
        "tests": len(stats),
        "cases": sum(s["passing"] + s["failing"] for s in stats.values()),
        "failing_tests": counts.get("failed", 0) + counts.get("error", 0),
        "pytest_exit": done.returncode,
        "wall_s": round(wall, 1),
        "per_test": stats,
    }
    print(json.dumps(result, indent=1))
    if done.returncode != 0:  # a failure found is a result (failing_tests > 0), shown with its report
        print(done.stdout[-3000:], file=sys.stderr)
    if not stats:
        sys.exit("bench/fuzz.py: no hypothesis statistics in pytest's output")


if __name__ == "__main__":
    main()
