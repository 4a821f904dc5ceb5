"""The ``sensorhub`` command (DESIGN §5).

Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config or input (one clear line on stderr,
no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from sensorhub import __version__
from sensorhub.errors import SensorhubError

__all__ = ["main"]

log = logging.getLogger("sensorhub")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit 2 (its default code, kept)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _cmd_config_check(args: argparse.Namespace) -> int:
    from sensorhub.config import load_config

    config = load_config(Path(args.file))
    placements = ", ".join(f"{s.placement}:{s.profile}" for s in config.sensors)
    print(f"{args.file}: ok (wearer {config.wearer.id!r}; sensors {placements})")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sensorhub.sim.export import write_simulation

    paths = write_simulation(
        scenario=args.scenario,
        out_dir=Path(args.output),
        rate_hz=args.rate,
        seed=args.seed,
        sensors=args.sensors,
        duration_s=args.duration,
        functional=args.functional,
        nominal_mounting=args.nominal_mounting,
    )
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace) -> int:
    from sensorhub.analyze import analyze, parse_functional, parse_window, write_angle_csv
    from sensorhub.formats import write_events_json
    from sensorhub.pipeline.rig import RigSettings
    from sensorhub.progress import track
    from sensorhub.sources.csvfile import read_imu_csv

    neutral = parse_window(args.neutral, "--neutral") if args.neutral else None
    functional = parse_functional(args.functional)
    recording = read_imu_csv(Path(args.imu_csv))
    start = recording.start_t
    batches = track(recording.batches(), recording.end_t - start, lambda b: float(b.t[-1]) - start, "analysing")
    result = analyze(
        recording.series,
        batches,
        neutral=neutral,
        functional=functional,
        offline=args.offline,
        estimator=args.estimator,
        rig_settings=RigSettings(output_rate_hz=args.rate),
    )
    write_angle_csv(Path(args.output), result.frame, result.posture)
    if args.events:
        write_events_json(Path(args.events), result.events)
    verdict = result.calibration.verdict
    print(f"{args.output}: {len(result.frame)} rows; calibration {verdict}")
    return EXIT_OK


def _cmd_broker(args: argparse.Namespace) -> int:
    return asyncio.run(_serve_broker(args.host, args.port))


async def _serve_broker(host: str, port: int) -> int:
    """Run the embedded broker until SIGINT or SIGTERM."""
    from sensorhub.mqtt.broker import EmbeddedBroker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers; Ctrl-C then arrives as KeyboardInterrupt (exit 130).
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with EmbeddedBroker(host, port) as broker:
        fallback = f"; port {port} is in use" if port not in (0, broker.port) else ""
        print(f"MQTT broker listening on {broker.url}{fallback} (Ctrl-C to stop)", flush=True)
        await stop.wait()
    print("MQTT broker stopped", flush=True)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from sensorhub.config import load_config
    from sensorhub.runner import run_config, run_until_stopped

    config = load_config(Path(args.config))
    run_until_stopped(lambda: run_config(config, view=not args.no_view, dashboard=args.dashboard))
    return EXIT_OK


def _cmd_scan(args: argparse.Namespace) -> int:
    from sensorhub.sources.ble import scan

    found = asyncio.run(scan(args.timeout))
    if not found:
        print(f"no sensor that matches a profile seen in {args.timeout:g} s", file=sys.stderr)
        return EXIT_OK
    print(f"{'NAME':<20} {'ADDRESS':<18} {'RSSI':>5}  PROFILE")
    for r in found:
        rssi = "" if r.rssi is None else str(r.rssi)
        print(f"{(r.name or '-'):<20} {r.address:<18} {rssi:>5}  {', '.join(r.profiles)}")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from sensorhub.config import load_config
    from sensorhub.guided import GuidedOptions, run_guided
    from sensorhub.runner import run_until_stopped

    config = load_config(Path(args.config))
    functional = None if args.functional is None else 0.0 if args.functional == "none" else _seconds(args.functional)
    options = GuidedOptions(
        countdown_s=args.countdown,
        neutral_s=args.neutral,
        functional_s=functional,
        attempts=args.attempts,
        save=not args.no_save,
    )
    result = run_until_stopped(lambda: run_guided(config, options, out=sys.stdout))
    if result is None:
        print("sensorhub: calibration stopped; nothing saved", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _seconds(text: str) -> float:
    from sensorhub.errors import InputError

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise InputError(f"--functional: {text!r} is not a number of seconds or 'none'")
    return value


def _cmd_demo(args: argparse.Namespace) -> int:
    from sensorhub.runner import DemoOptions, run_demo, run_until_stopped

    options = DemoOptions(
        duration_s=args.duration,
        speed=args.speed,
        broker=args.broker,
        dashboard=not args.no_dashboard,
        out_dir=Path(args.out),
        db=Path(args.db) if args.db else None,
    )
    run_until_stopped(lambda: run_demo(options))
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import os
    from dataclasses import replace

    from sensorhub.dashboard import require
    from sensorhub.dashboard.security import TOKEN_ENV, check_bind

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    check_bind(args.host, token)  # before anything else: never start exposed
    require()
    from sensorhub.dashboard.server import Dashboard, DashboardSettings, broker_config, dashboard_client_id
    from sensorhub.runner import run_until_stopped
    from sensorhub.store.cli import db_path

    db = db_path(args)  # --db, else $SENSORHUB_DB, else the config's or the default store
    if args.config is not None:
        from sensorhub.config import load_config
        from sensorhub.errors import ConfigError

        config = load_config(Path(args.config))
        if config.mqtt is None:
            raise ConfigError(f"{args.config} has no [mqtt] section", advice="add one, or use --broker URL")
        mqtt = replace(config.mqtt, client_id=dashboard_client_id())
        db = db if db is not None else config.storage.path
    else:
        mqtt = broker_config(args.broker or "mqtt://127.0.0.1:1883")
    settings = DashboardSettings(mqtt=mqtt, host=args.host, port=args.port, db=db, token=token)

    async def serve() -> None:
        async with Dashboard(settings) as dashboard:
            hint = " (open it once with ?token=<token>)" if token is not None else ""
            print(f"dashboard on {dashboard.url}{hint}, MQTT {mqtt.url} (Ctrl-C to stop)", flush=True)
            await dashboard.serve_forever()

    run_until_stopped(serve)
    print("dashboard stopped", flush=True)
    return EXIT_OK


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535, 0 = any free port)")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sensorhub",
        description="Real-time thoracic and lumbar posture sensing from BLE IMUs.",
    )
    from sensorhub.pipeline import kernel  # a C module or nothing: cheap to import

    parser.add_argument(
        "--version", action="version", version=f"sensorhub {__version__} (streaming loops: {kernel.status()})"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: warning)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_config = sub.add_parser("config", help="work with configuration files")
    config_sub = p_config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    p_check = config_sub.add_parser("check", help="validate a TOML config file and print a summary")
    p_check.add_argument("file", help="path of the TOML config")
    p_check.set_defaults(handler=_cmd_config_check)

    from sensorhub.sim.scenarios import SCENARIOS

    p_sim = sub.add_parser(
        "simulate",
        help="simulate a wearer and write raw IMU CSV, truth angle CSV and events JSON",
        description="Simulate a seated wearer with 1-3 back sensors; writes imu.csv, truth.csv, events.json.",
    )
    p_sim.add_argument("scenario", choices=sorted(SCENARIOS), help="scenario to simulate")
    p_sim.add_argument("-o", "--output", required=True, help="output directory (created if missing)")
    p_sim.add_argument("--rate", type=float, default=100.0, help="sensor sample rate in Hz: 52, 100, 104 or 200")
    p_sim.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p_sim.add_argument(
        "--sensors",
        nargs="+",
        default=["upper_thoracic", "thoracolumbar", "sacral"],
        metavar="PLACEMENT",
        help="placements to simulate (default: all three)",
    )
    p_sim.add_argument("--duration", type=float, default=None, help="cut the scenario to this many seconds")
    p_sim.add_argument(
        "--functional",
        choices=["bends", "cat_camel", "none"],
        default="bends",
        help="functional movement after the neutral period (default: bends)",
    )
    p_sim.add_argument(
        "--nominal-mounting", action="store_true", help="mount sensors exactly as nominal (no misalignment)"
    )
    p_sim.set_defaults(handler=_cmd_simulate)

    p_an = sub.add_parser(
        "analyze",
        help="raw IMU CSV in, spine-angle CSV (+ events JSON) out",
        description="Calibrate on a neutral window (and a functional movement), then compute thoracic, lumbar, "
        "trunk and pelvis angles from a raw IMU CSV (DESIGN §6).",
    )
    p_an.add_argument("imu_csv", metavar="IMU.csv", help="raw IMU CSV: t,sensor,ax,ay,az,gx,gy,gz")
    p_an.add_argument("-o", "--output", required=True, metavar="ANGLES.csv", help="angle CSV to write")
    p_an.add_argument("--neutral", metavar="A:B", help="still upright window in seconds (default: the first 10 s)")
    p_an.add_argument(
        "--functional",
        default="auto",
        metavar="A:B|auto|none",
        help="window of slow forward bends or cat/camel reps; auto finds it after the neutral window (default)",
    )
    p_an.add_argument("--offline", action="store_true", help="forward-backward offline orientation (VQF offline)")
    p_an.add_argument("--events", metavar="EVENTS.json", help="also write the events JSON")
    p_an.add_argument("--estimator", choices=["vqf", "complementary"], default="vqf", help="orientation filter")
    p_an.add_argument("--rate", type=float, default=50.0, help="output rate in Hz (default 50)")
    p_an.set_defaults(handler=_cmd_analyze)

    p_broker = sub.add_parser(
        "broker",
        help="run the embedded MQTT broker alone (needs sensorhub[broker])",
        description="Run the embedded MQTT broker (MQTT 3.1.1, anonymous, loopback only) until Ctrl-C. "
        "When the port is in use it listens on a free port and prints it. For a network-facing broker "
        "use mosquitto (docs/mqtt-broker.md).",
    )
    p_broker.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default: 127.0.0.1)")
    p_broker.add_argument("--port", type=_port, default=1883, help="TCP port (default: 1883; 0 = any free port)")
    p_broker.set_defaults(handler=_cmd_broker)

    p_run = sub.add_parser(
        "run",
        help="run the service: sensors → angles → posture → alerts, MQTT and recording",
        description="Run sensorhub with the sources, sensors, MQTT broker and store of a config file until "
        "Ctrl-C or SIGTERM (a clean stop: the session is closed and 'offline' published).",
    )
    p_run.add_argument("--config", required=True, metavar="FILE", help="TOML config (docs/configuration.md)")
    p_run.add_argument("--no-view", action="store_true", help="no live terminal view (log lines only)")
    p_run.add_argument(
        "--dashboard", action="store_true", help="also serve the live dashboard on 127.0.0.1:8765 (needs [mqtt])"
    )
    p_run.set_defaults(handler=_cmd_run)

    p_scan = sub.add_parser(
        "scan",
        help="list nearby BLE sensors that match a firmware profile",
        description="Scan for BLE sensors and print those that match a firmware profile: name, address, RSSI, "
        "profile (for the [[sensors]] table of a config).",
    )
    p_scan.add_argument("--timeout", type=_positive, default=10.0, metavar="S", help="scan time (default 10 s)")
    p_scan.set_defaults(handler=_cmd_scan)

    p_cal = sub.add_parser(
        "calibrate",
        help="guided calibration: sit upright and still, then (optionally) slow cat/camel reps",
        description="Guided calibration of the configured sensors: a countdown, a still upright capture with a "
        "stillness check, an optional functional movement (cat/camel or slow forward bends) for each sensor's "
        "flexion axis, and a quality verdict. The result is saved where `sensorhub run` finds it.",
    )
    p_cal.add_argument("--config", required=True, metavar="FILE", help="TOML config (docs/configuration.md)")
    p_cal.add_argument("--countdown", type=int, default=3, metavar="S", help="countdown before each try (default 3)")
    p_cal.add_argument(
        "--neutral", type=_positive, default=None, metavar="S", help="still capture length (default: the config's)"
    )
    p_cal.add_argument(
        "--functional",
        default=None,
        metavar="S|none",
        help="seconds of slow cat/camel reps after the still capture; none = nominal axis "
        "(default: 30 s when the config's pipeline.functional is auto)",
    )
    p_cal.add_argument("--attempts", type=int, default=3, help="tries before giving up (default 3)")
    p_cal.add_argument("--no-save", action="store_true", help="only show the verdict, keep the stored calibration")
    p_cal.set_defaults(handler=_cmd_calibrate)

    p_demo = sub.add_parser(
        "demo",
        help="the whole product on a simulated wearer: no hardware, no broker to install",
        description="A simulated wearer (6 min at the desk with two slouches and a cat/camel set) through the "
        "pipeline, posture engine, MQTT (an embedded broker unless --broker) and the session store.",
    )
    p_demo.add_argument("--duration", type=_positive, default=None, help="simulated seconds (default: all 6 min)")
    p_demo.add_argument("--speed", type=_positive, default=20.0, help="simulated seconds per second (default 20)")
    p_demo.add_argument(
        "--broker", metavar="URL", help="use this MQTT broker (mqtt://host:port) instead of the embedded one"
    )
    p_demo.add_argument("--no-dashboard", action="store_true", help="do not start the web dashboard")
    p_demo.add_argument("--out", default="sensorhub-demo", help="directory for the export and the report")
    p_demo.add_argument("--db", help="session database (default: the store of the default config)")
    p_demo.set_defaults(handler=_cmd_demo)

    p_dash = sub.add_parser(
        "dashboard",
        help="the live web dashboard of every wearer on an MQTT broker (needs sensorhub[dashboard])",
        description="Serve the live dashboard (docs/dashboards.md): every wearer publishing on the broker, "
        "commands, stored sessions. Loopback only unless a token is given.",
    )
    source = p_dash.add_mutually_exclusive_group()
    source.add_argument("--broker", metavar="URL", help="MQTT broker (default: mqtt://127.0.0.1:1883)")
    source.add_argument(
        "--config", metavar="FILE", help="take the broker (with TLS and password) and the session store from a config"
    )
    p_dash.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; others need a token)"
    )
    p_dash.add_argument("--port", type=_port, default=8765, help="TCP port (default: 8765; 0 = any free port)")
    p_dash.add_argument(
        "--db", metavar="PATH", help="session database to list (default: $SENSORHUB_DB, else the default store)"
    )
    p_dash.add_argument(
        "--token", help="access token, 16 characters or more (default: $SENSORHUB_DASHBOARD_TOKEN); needed off loopback"
    )
    p_dash.set_defaults(handler=_cmd_dashboard)

    from sensorhub.store.cli import add_parser as add_sessions_parser

    add_sessions_parser(sub)
    from sensorhub.profiles.cli import add_parsers as add_profiles_parsers

    add_profiles_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except SensorhubError as exc:
        print(f"sensorhub: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sensorhub: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Files that cannot be read or written are the user's input problem, said in one line.
        print(f"sensorhub: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        user_side = FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError | NotADirectoryError
        return EXIT_USAGE if isinstance(exc, user_side) else EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
