"""``sensorhub sessions``: list, show, export, report, replay and delete recorded sessions (DESIGN §5).

The store is ``--db PATH`` (accepted before or after the action), else ``$SENSORHUB_DB``, else the
default ``<user data dir>/sensorhub/sessions.db``. A session is named by its id or any unique
prefix of it (``sensorhub sessions show 20260101T09``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sensorhub.errors import InputError

if TYPE_CHECKING:
    from sensorhub.store.store import SessionStore

__all__ = ["DB_ENV", "add_parser", "run"]

#: Environment variable naming the store when ``--db`` is not given.
DB_ENV: Final = "SENSORHUB_DB"

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sessions`` and its actions to the ``sensorhub`` subparsers; returns its parser."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"session database (default: ${DB_ENV}, else <user data dir>/sensorhub/sessions.db)",
    )
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sessions",
        parents=[db],
        help="list, show, export, report, replay or delete recorded sessions",
        description="Recorded sessions in the local store (docs/sessions.md). A session is named by its id "
        "or a unique prefix of it.",
    )
    parser.set_defaults(handler=run, sessions_parser=parser)
    sub = parser.add_subparsers(dest="sessions_command", metavar="ACTION", parser_class=type(parser))

    p = sub.add_parser("list", parents=[db], help="all sessions, newest first")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")

    p = sub.add_parser("show", parents=[db], help="one session in detail")
    p.add_argument("id", metavar="ID", help="session id or unique prefix")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "export",
        parents=[db],
        help="write a session's angles (+ events JSON) or raw IMU data to a file",
        description="Angles: CSV (DESIGN §6, with time_utc), Parquet or JSON Lines, plus NAME.events.json beside "
        "the file. --raw: the raw IMU samples (t,sensor,ax,ay,az,gx,gy,gz), the input of 'sensorhub analyze'. "
        "Times are Unix epoch seconds.",
    )
    p.add_argument("id", metavar="ID", help="session id or unique prefix")
    p.add_argument("--format", required=True, choices=["csv", "parquet", "jsonl"], help="file format")
    p.add_argument("--raw", action="store_true", help="export the raw IMU samples instead of the angles")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="file to write")

    p = sub.add_parser(
        "report",
        parents=[db],
        help="a picture (.png) or a self-contained web page (.html) of a session",
    )
    p.add_argument("id", metavar="ID", help="session id or unique prefix")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="report file: .png or .html")

    p = sub.add_parser(
        "replay",
        parents=[db],
        help="rerun the pipeline and posture engine on a recording with other settings; stores a derived session",
        description="Rerun a recorded session's raw data through the same pipeline and posture engine, with the "
        "session's settings or the ones given here, and store the result as a new session derived from it. "
        "With no options the result reproduces the recorded angles exactly.",
    )
    p.add_argument("id", metavar="ID", help="session id or unique prefix")
    p.add_argument("--estimator", choices=["vqf", "complementary"], help="orientation filter")
    p.add_argument("--thoracic-threshold", type=float, metavar="DEG", help="slouch threshold, upper back")
    p.add_argument("--lumbar-threshold", type=float, metavar="DEG", help="slouch threshold, lower back")
    p.add_argument("--trunk-threshold", type=float, metavar="DEG", help="slouch threshold, trunk (one sensor)")
    p.add_argument("--dwell", type=float, metavar="S", help="seconds slouched before an alert")
    p.add_argument("--hysteresis", type=float, metavar="DEG", help="how far below the threshold an alert ends")
    p.add_argument("--max-per-hour", type=int, metavar="N", help="alerts per hour at most (0 = no limit)")
    p.add_argument("--rate", type=float, metavar="HZ", help="output rate of the angles")
    p.add_argument(
        "--calibration",
        choices=["session", "recompute"],
        default="session",
        help="use the session's calibrations (default) or recompute one from the raw data",
    )
    p.add_argument("--neutral", metavar="A:B", help="recompute: upright window, seconds from the session's start")
    p.add_argument(
        "--functional",
        default="auto",
        metavar="A:B|auto|none",
        help="recompute: forward-bend or cat/camel window (default: auto)",
    )
    p.add_argument("--no-save", action="store_true", help="do not store the result, only print what changed")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("delete", parents=[db], help="delete a session and its data")
    p.add_argument("id", metavar="ID", help="session id or unique prefix")
    return parser


def db_path(args: argparse.Namespace) -> Path | None:
    """The store path from ``--db`` or ``$SENSORHUB_DB`` (None = the default)."""
    value = getattr(args, "db", None) or os.environ.get(DB_ENV)
    return Path(value).expanduser() if value else None


def run(args: argparse.Namespace) -> int:
    """Run a ``sessions`` action; SensorhubErrors propagate to the CLI (one line, exit 1 or 2)."""
    action = getattr(args, "sessions_command", None)
    if action is None:
        args.sessions_parser.print_help(sys.stderr)
        return EXIT_USAGE
    from sensorhub.store.store import SessionStore

    path = db_path(args)
    if action == "list":
        from sensorhub.config import default_store_path

        if not (path or default_store_path()).exists():
            print("[]" if args.json else "no sessions recorded yet")
            return EXIT_OK
    handler = {
        "list": _list,
        "show": _show,
        "export": _export,
        "report": _report,
        "replay": _replay,
        "delete": _delete,
    }[action]
    with SessionStore(path, create=False) as store:
        return handler(store, args)


def _list(store: SessionStore, args: argparse.Namespace) -> int:
    sessions = store.list_sessions()
    if args.json:
        print(json.dumps([s.to_json() for s in sessions], indent=1))
        return EXIT_OK
    if not sessions:
        print("no sessions recorded yet")
        return EXIT_OK
    rows = [("ID", "WEARER", "STARTED", "LENGTH", "STATUS", "SENSORS", "ALERTS", "SIZE", "FROM")]
    for s in sessions:
        rows.append(
            (
                s.id,
                s.wearer,
                f"{_local(s.started):%Y-%m-%d %H:%M}",
                _length(s.duration_s),
                s.status,
                str(len(s.placements)),
                str(_alerts(store, s.id)),
                _size(s.bytes),
                f"replay of {s.parent_id}" if s.parent_id else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def _show(store: SessionStore, args: argparse.Namespace) -> int:
    info = store.get(args.id)
    events = store.read_events(info.id)
    counts: dict[str, int] = {}
    for e in events:
        counts[e.type] = counts.get(e.type, 0) + 1
    cals = store.read_calibrations(info.id)
    gaps = store.read_gaps(info.id)
    if args.json:
        doc = info.to_json()
        doc.update(
            {
                "settings": info.settings,
                "config": info.config,
                "event_counts": dict(counts),
                "calibrations": [{"from_batch": c.from_batch, "verdict": c.calibration.verdict} for c in cals],
                "gap_list": [dataclasses.asdict(g) for g in gaps],
            }
        )
        print(json.dumps(doc, indent=1))
        return EXIT_OK
    lines = [
        ("session", info.id),
        ("wearer", info.wearer),
        ("status", info.status + (f" ({info.error})" if info.error else "")),
        ("started", f"{_local(info.started):%Y-%m-%d %H:%M:%S %Z}"),
        ("ended", "-" if info.ended is None else f"{_local(info.ended):%Y-%m-%d %H:%M:%S %Z}"),
        ("length", _length(info.duration_s)),
        ("sensors", ", ".join(f"{p} ({s})" for s, p in info.sensors) or ", ".join(info.placements) or "-"),
        ("raw samples", f"{info.samples}" + ("" if info.record_raw else " (raw data not recorded)")),
        ("angle rows", str(info.frames)),
        ("events", ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) or "none"),
        ("calibration", ", ".join(c.calibration.verdict for c in cals) or "none recorded"),
        ("stored size", _size(info.bytes)),
        ("dropped", f"{info.dropped} in {len(gaps)} gap(s)" if info.dropped else "nothing"),
    ]
    if info.parent_id:
        lines.append(("derived from", info.parent_id))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")
    return EXIT_OK


def _export(store: SessionStore, args: argparse.Namespace) -> int:
    from sensorhub.store.export import export_session

    written = export_session(store, args.id, args.format, Path(args.output), raw=args.raw)
    for path in written:
        print(path)
    return EXIT_OK


def _report(store: SessionStore, args: argparse.Namespace) -> int:
    from sensorhub.store.report import write_report

    print(write_report(store, args.id, Path(args.output)))
    return EXIT_OK


def _replay(store: SessionStore, args: argparse.Namespace) -> int:
    from sensorhub.analyze import parse_functional, parse_window
    from sensorhub.pipeline.rig import RigSettings
    from sensorhub.store.replay import ProcessingSettings, replay

    info = store.get(args.id)
    base = ProcessingSettings.from_json(info.settings)
    alerts = base.alerts
    changes = {
        "thoracic_threshold_deg": args.thoracic_threshold,
        "lumbar_threshold_deg": args.lumbar_threshold,
        "trunk_threshold_deg": args.trunk_threshold,
        "dwell_s": args.dwell,
        "hysteresis_deg": args.hysteresis,
        "max_per_hour": args.max_per_hour,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    if any(v < 0 for v in given.values()):
        raise InputError("thresholds, dwell, hysteresis and max-per-hour must be ≥ 0")
    settings = dataclasses.replace(
        base,
        estimator=args.estimator or base.estimator,
        rig=base.rig if args.rate is None else dataclasses.replace(base.rig, output_rate_hz=args.rate),
        alerts=dataclasses.replace(alerts, **given),
    )
    if args.rate is not None:
        RigSettings(output_rate_hz=args.rate)  # InputError on a bad rate
    neutral = parse_window(args.neutral, "--neutral") if args.neutral else None
    functional = parse_functional(args.functional)
    if args.calibration == "session" and (args.neutral or args.functional != "auto"):
        raise InputError("--neutral and --functional need --calibration recompute")
    result = replay(
        store,
        info.id,
        settings=settings,
        calibration=args.calibration,
        neutral=neutral,
        functional=functional,
        record=not args.no_save,
    )
    before = _alerts(store, info.id)
    after = sum(1 for e in result.events if e.type == "slouch")
    if args.json:
        print(
            json.dumps(
                {
                    "of": info.id,
                    "session": None if result.session is None else result.session.to_json(),
                    "frames": result.frames,
                    "slouch_alerts": {"recorded": before, "replayed": after},
                    "settings": settings.to_json(),
                },
                indent=1,
            )
        )
        return EXIT_OK
    target = "not saved" if result.session is None else f"saved as {result.session.id}"
    print(f"replayed {info.id}: {result.frames} angle rows, slouch alerts {before} → {after}; {target}")
    return EXIT_OK


def _delete(store: SessionStore, args: argparse.Namespace) -> int:
    info = store.get(args.id)
    store.delete(info.id)
    print(f"deleted {info.id} ({_size(info.bytes)})")
    return EXIT_OK


def _alerts(store: SessionStore, session_id: str) -> int:
    return sum(1 for e in store.read_events(session_id) if e.type == "slouch")


def _local(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).astimezone()


def _length(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _size(nbytes: int) -> str:
    if nbytes < 1024 * 1024:
        return f"{nbytes / 1024:.0f} kB"
    return f"{nbytes / (1024 * 1024):.1f} MB"
