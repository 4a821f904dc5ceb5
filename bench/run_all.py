"""``make bench``: run every benchmark in ``bench/``, write one JSON file and ``docs/performance.md``.

Each benchmark script runs as its own process (a fresh interpreter, as a user would run it),
``--repeats`` times (the long memory and store runs once); from each run's JSON the headline
figures are taken, and every figure is reported as the median over the runs with its spread
(min–max). Ratios (VQF vs the fallback estimator, mosquitto vs the embedded broker) are taken
within one run and then summarised the same way, so both sides of a ratio always come from the
same moment on the machine.

Writes ``bench/results.json`` (every run's full JSON and the summary; its path printed) and the
table in ``docs/performance.md`` between the markers ``<!-- bench:begin -->`` / ``<!-- bench:end -->``
(the rest of that page is prose kept by hand).

Run: ``make bench`` or ``.venv/bin/python bench/run_all.py [--repeats 3] [--quick] [--only NAME ...]``.
``--quick`` shortens every benchmark (for a smoke run; the published figures come from a full run).
``--only`` re-runs some benchmarks and keeps the other figures of ``bench/results.json``; the page
names what was measured again and when.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
PAGE = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

Json = Any
Figures = dict[str, float]


@dataclass(frozen=True)
class Figure:
    """How one figure is shown: label, unit, target (text) and whether bigger is better."""

    label: str
    unit: str
    target: str = ""
    decimals: int = 1


@dataclass(frozen=True)
class Bench:
    name: str
    args: list[str]
    quick_args: list[str]
    extract: Callable[[Json], Figures]
    figures: Mapping[str, Figure]
    runs: int | None = None  # fixed number of runs (long benchmarks), else --repeats
    needs: tuple[str, ...] = field(default_factory=tuple)  # files that must exist (e.g. bench/ble.py)


def _get(d: Json, *path: str) -> Any:
    for key in path:
        d = d[key]
    return d


def _pipeline(d: Json) -> Figures:
    thr = d["offline_throughput_samples_per_s"]
    stream = d["streaming_cost_per_100ms_block_3_sensors"]
    return {
        "offline_vqf": thr["vqf"]["median"],
        "offline_complementary": thr["complementary"]["median"],
        "offline_ratio": thr["vqf"]["median"] / thr["complementary"]["median"],
        "tick_median": stream["vqf/per_100ms_tick"]["median_us"],
        "tick_p90": stream["vqf/per_100ms_tick"].get("p90_us", float("nan")),
        "tick_p99": stream["vqf/per_100ms_tick"]["p99_us"],
        "notification_median": stream["vqf/per_notification"]["median_us"],
        **(
            {"tick_median_python": stream["vqf/per_100ms_tick/python"]["median_us"]}
            if "vqf/per_100ms_tick/python" in stream
            else {}
        ),
    }


def _decode(d: Json) -> Figures:
    return {name: r["samples_per_s"] for name, r in d["profiles"].items()}


def _mqtt(d: Json) -> Figures:
    out: Figures = {}
    for broker in ("mosquitto", "amqtt_embedded"):
        b = d[broker]
        out[f"{broker}_angles_msgs"] = b["angles_throughput_msgs_per_s"]["median"]
        out[f"{broker}_alerts_msgs"] = b["alerts_throughput_msgs_per_s"]["median"]
        out[f"{broker}_angles_p50"] = b["angles_latency_ms"]["p50"]["median"]
        out[f"{broker}_angles_p99"] = b["angles_latency_ms"]["p99"]["median"]
    out["ratio"] = d["angles_throughput_ratio_mosquitto_over_amqtt"]
    return out


def _service(d: Json) -> Figures:
    out: Figures = {}
    if "latency_ms" in d:
        out["e2e_p50"] = d["latency_ms"]["p50"]
        out["e2e_p99"] = d["latency_ms"]["p99"]
        if "latency_ms_embedded_broker" in d:
            out["e2e_embedded_p50"] = d["latency_ms_embedded_broker"]["p50"]
            out["e2e_embedded_p99"] = d["latency_ms_embedded_broker"]["p99"]
        out["cpu_3"] = d["cpu"]["3_sensors"]["cpu_pct_of_one_core"]
        out["cpu_per_sensor"] = d["cpu"]["3_sensors"]["per_sensor_pct"]
    if "memory" in d:
        out["rss_growth"] = d["memory"]["growth_after_warmup_pct"]
        out["rss_max"] = d["memory"]["rss_mb_max"]
        out["hours"] = d["memory"]["simulated_hours"]
    return out


def _store(d: Json) -> Figures:
    return {
        "write": d["write"]["samples_per_s"],
        "mb_per_hour": d["db_mb_per_hour"],
        "export_csv_raw_8h": d.get("export_csv_raw_s_8h_est", d.get("export_csv_raw_s")),
        "report_png_8h": d.get("report_png_s_8h_est", d.get("report_png_s")),
    }


def _ble(d: Json) -> Figures:
    out: Figures = {}
    for profile, r in d["results"].items():
        out[f"{profile}_ms_per_1000"] = r["median_ms_per_1000_notifications"]
        out[f"{profile}_sensors"] = r["extrapolated_within_50pct"]
    return out


def _fuzz(d: Json) -> Figures:
    return {"cases": d["cases"], "tests": d["tests"], "failing": d["failing_tests"], "wall": d["wall_s"]}


def _simulator(d: Json) -> Figures:
    out: Figures = {}
    for key in ("sim_seconds_per_wall_second", "realtime_factor"):
        if key in d and isinstance(d[key], dict) and "median" in d[key]:
            out["speed"] = d[key]["median"]
    return out


BENCHES = [
    Bench(
        "pipeline",
        ["--only", "speed", "--repeats", "3"],
        ["--only", "speed", "--quick", "--repeats", "1"],
        _pipeline,
        {
            "offline_vqf": Figure(
                "pipeline offline throughput, VQF, 3 sensors at 100 Hz", "samples/s", "≥ 1,000,000", 0
            ),
            "offline_complementary": Figure("… with the complementary fallback", "samples/s", "", 0),
            "offline_ratio": Figure("VQF / complementary throughput (same run)", "×", "", 2),
            "tick_median": Figure("streaming cost per 100 ms tick of 3 sensors, median (C kernel)", "µs", "≤ 200"),
            "tick_p90": Figure("… p90", "µs"),
            "tick_p99": Figure("… p99", "µs"),
            "tick_median_python": Figure("… median with the pure-Python loops (no compiler)", "µs"),
            "notification_median": Figure("streaming cost per 100 ms, one call per notification, median", "µs"),
        },
    ),
    Bench(
        "decode",
        ["--runs", "5"],
        ["--runs", "1", "--samples", "5000"],
        _decode,
        {},  # one row per profile, made below
    ),
    Bench(
        "mqtt",
        [],
        ["--quick"],
        _mqtt,
        {
            "mosquitto_angles_msgs": Figure("MQTT angles publish throughput, mosquitto", "msg/s", "", 0),
            "amqtt_embedded_angles_msgs": Figure("… embedded broker (amqtt)", "msg/s", "", 0),
            "ratio": Figure("mosquitto / embedded throughput (same run)", "×", "", 2),
            "mosquitto_alerts_msgs": Figure("alerts (QoS 1 through the outbox), mosquitto", "msg/s", "", 0),
            "amqtt_embedded_alerts_msgs": Figure("… embedded broker", "msg/s", "", 0),
            "mosquitto_angles_p50": Figure("publish → subscriber latency p50, mosquitto", "ms", "", 2),
            "mosquitto_angles_p99": Figure("… p99, mosquitto", "ms", "", 2),
            "amqtt_embedded_angles_p50": Figure("… p50, embedded broker", "ms", "", 2),
            "amqtt_embedded_angles_p99": Figure("… p99, embedded broker", "ms", "", 2),
        },
    ),
    Bench(
        "service",
        ["--only", "latency", "--seconds", "20"],
        ["--only", "latency", "--seconds", "8"],
        _service,
        {
            "e2e_p50": Figure("end-to-end latency, sample in → `angles` at a subscriber, mosquitto, p50", "ms", "", 2),
            "e2e_p99": Figure("… p99", "ms", "≤ 25 + 0 filter delay", 2),
            "e2e_embedded_p50": Figure("… p50 through the embedded broker (in the service's process)", "ms", "", 2),
            "e2e_embedded_p99": Figure("… p99 through the embedded broker", "ms", "≤ 25 + 0 filter delay", 2),
            "cpu_3": Figure("service CPU, 3 sensors streaming in real time", "% of a core", "", 2),
            "cpu_per_sensor": Figure("… per sensor", "% of a core", "", 2),
        },
    ),
    Bench(
        "service_memory",
        ["--only", "memory", "--hours", "8"],
        ["--only", "memory", "--hours", "2"],
        _service,
        {
            "rss_growth": Figure("RSS growth after the first hour, accelerated 8-hour session", "%", "≤ 10", 2),
            "rss_max": Figure("… largest RSS", "MB", ""),
        },
        runs=1,
    ),
    Bench(
        "store",
        [],
        ["--quick"],
        _store,
        {
            "write": Figure("session store write rate", "samples/s", "", 0),
            "mb_per_hour": Figure("database size per hour (3 sensors raw + angles)", "MB/h", "≤ 60"),
            "export_csv_raw_8h": Figure("export of an 8-hour session to raw CSV", "s", "≤ 30"),
            "report_png_8h": Figure("PNG report of an 8-hour session", "s", "≤ 10"),
        },
        runs=1,
    ),
    Bench(
        "ble",
        [],
        ["--quick"],
        _ble,
        {
            "sensorhub_open_ms_per_1000": Figure(
                "BLE source CPU per 1000 notifications, open profile (4 samples each)", "ms", "", 0
            ),
            "thingy52_ms_per_1000": Figure("… Thingy:52 (1 sample each)", "ms", "", 0),
            "sensorhub_open_sensors": Figure(
                "100 Hz sensors one process carries within 50 % of a core, open profile (extrapolated)",
                "sensors",
                "",
                0,
            ),
            "thingy52_sensors": Figure("… Thingy:52 (extrapolated)", "sensors", "", 0),
        },
        needs=("bench/ble.py",),
    ),
    Bench(
        "fuzz",
        ["--examples", "5000"],
        ["--examples", "300"],
        _fuzz,
        {
            "cases": Figure(
                "fuzz cases run (decoders, config loader, CSV importer, command payloads)", "cases", "thousands", 0
            ),
            "tests": Figure("… in hypothesis tests", "tests", "", 0),
            "failing": Figure("… tests that found a crash, hang or NaN", "tests", "0", 0),
            "wall": Figure("… wall time", "s", "", 0),
        },
        runs=1,
    ),
]


def _script(bench: Bench) -> Path:
    return ROOT / "bench" / f"{bench.name.split('_')[0]}.py"


def _run_once(bench: Bench, args: list[str]) -> Json:
    cmd = [sys.executable, str(_script(bench)), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    text = done.stdout
    start = text.find("\n{") + 1 if not text.startswith("{") else 0  # some print comment lines first
    return json.loads(text[start:])


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def _fmt(x: float, decimals: int) -> str:
    return f"{x:,.{decimals}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each short benchmark (default 3)")
    parser.add_argument("--quick", action="store_true", help="shortened benchmarks (smoke run)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--no-page", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()

    raw: dict[str, list[Json]] = {}
    summary: dict[str, dict[str, dict[str, float]]] = {}
    started = time.monotonic()
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        if any(not (ROOT / need).exists() for need in bench.needs):
            print(f"{bench.name}: skipped ({', '.join(bench.needs)} missing)", file=sys.stderr)
            continue
        runs = bench.runs or args.repeats
        per_run: list[Figures] = []
        raw[bench.name] = []
        for i in range(runs):
            t0 = time.monotonic()
            data = _run_once(bench, bench.quick_args if args.quick else bench.args)
            raw[bench.name].append(data)
            per_run.append(bench.extract(data))
            print(f"{bench.name}: run {i + 1}/{runs} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        keys = sorted(set().union(*per_run))
        summary[bench.name] = {k: _summary([r[k] for r in per_run if k in r]) for k in keys}

    doc = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "versions": _versions(),
        "quick": args.quick,
        "wall_s": round(time.monotonic() - started, 1),
        "summary": summary,
        "runs": raw,
    }
    if args.only and not args.quick and RESULTS.exists():
        # Re-running some benchmarks: the others keep their figures, and the page says which
        # ones were measured again, and when.
        old = json.loads(RESULTS.read_text())
        if not old.get("quick"):
            updated = {**old.get("updated", {}), **dict.fromkeys(raw, doc["date"])}
            doc = {
                **old,
                "versions": doc["versions"],
                "summary": {**old["summary"], **summary},
                "runs": {**old["runs"], **raw},
                "updated": updated,
            }
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    if not args.no_page:
        _write_page(doc)
        print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("sensorhub", "numpy", "scipy", "vqf", "bleak", "aiomqtt", "paho-mqtt", "amqtt"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    first = (mosquitto.stdout or mosquitto.stderr).splitlines()
    if first:
        out["mosquitto"] = first[0].strip()
    return out


def _table(doc: Json) -> str:
    rows = ["| figure | median | spread (min–max) | unit | target |", "|---|---|---|---|---|"]
    for bench in BENCHES:
        figures = doc["summary"].get(bench.name)
        if not figures:
            continue
        specs = dict(bench.figures)
        if bench.name == "decode":
            specs = {k: Figure(f"decoder throughput, {k}", "samples/s", "", 0) for k in figures}
        for key, spec in specs.items():
            s = figures.get(key)
            if s is None:
                continue
            spread = "—" if s["runs"] < 2 else f"{_fmt(s['min'], spec.decimals)}–{_fmt(s['max'], spec.decimals)}"
            runs = f" ({int(s['runs'])} run{'s' if s['runs'] != 1 else ''})"
            rows.append(
                f"| {spec.label} | {_fmt(s['median'], spec.decimals)} | {spread}{runs} | {spec.unit} | {spec.target} |"
            )
    m = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in doc["versions"].items())
    head = (
        f"Measured {doc['date']} on {m['platform']}, {m['cpus']} CPUs, Python {m['python']}"
        f"{' (quick run)' if doc['quick'] else ''}; {versions}. `make bench` took {doc['wall_s']:.0f} s."
    )
    updated = doc.get("updated", {})
    if updated:
        again = "; ".join(f"`{name}` on {when}" for name, when in sorted(updated.items()))
        head += f" Measured again since (`bench/run_all.py --only NAME`): {again}."
    return head + "\n\n" + "\n".join(rows)


def _write_page(doc: Json) -> None:
    block = f"{BEGIN}\n{_table(doc)}\n{END}"
    if PAGE.exists():
        text = PAGE.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = (
            "# Performance\n\nWritten by `make bench` (bench/run_all.py); the table between the markers is "
            "regenerated, the rest is kept.\n\n" + block + "\n"
        )
    PAGE.write_text(text)


if __name__ == "__main__":
    main()
