"""``sensorhub run`` and ``sensorhub demo``: build a :class:`~sensorhub.service.Service` from a config,
run it with the live view until the source ends or SIGINT/SIGTERM, then say where things are."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sensorhub import __version__
from sensorhub.config import Config, FunctionalMode, MqttProtocol, SourceKind, parse_config
from sensorhub.errors import CalibrationError, ConfigError, SourceError
from sensorhub.guided import DEFAULT_FUNCTIONAL_S
from sensorhub.model import JsonValue, Placement
from sensorhub.mqtt.commands import Command, ExerciseCommand
from sensorhub.pipeline.calibration import RigCalibration
from sensorhub.service import CalibrationPlan, Service, nominal_rates
from sensorhub.sources.simulator import SimulatorSource
from sensorhub.view import LiveView

__all__ = ["DemoOptions", "demo_config", "run_demo", "run_service", "run_until_stopped"]

if TYPE_CHECKING:
    from sensorhub.sources.ble import BleSource
    from sensorhub.sources.replay import ReplaySource

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What ``sensorhub demo`` calibrates on: the scenario's still start and its slow forward bends.
DEMO_CALIBRATION = CalibrationPlan(neutral_s=10.0, functional_s=30.0)


def run_until_stopped(main: Callable[[], Awaitable[T]]) -> T | None:
    """``asyncio.run(main())``; SIGINT/SIGTERM cancel it (a clean stop): returns None then."""

    async def guarded() -> T | None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        stopped = False

        def stop() -> None:
            nonlocal stopped
            if not stopped:
                stopped = True
                log.warning("stopping (signal received)")
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
                loop.add_signal_handler(signum, stop)
        try:
            return await main()
        except asyncio.CancelledError:
            if not stopped:
                raise
            task.uncancel()
            return None

    return asyncio.run(guarded())


async def run_service(service: Service, view: LiveView | None) -> None:
    """Run a service with its live view (the view stops with the service)."""
    async with asyncio.TaskGroup() as tg:
        view_task = tg.create_task(view.run(), name="view") if view is not None else None
        try:
            await service.run()
        finally:
            if view_task is not None:
                view_task.cancel()


def make_source(config: Config, *, duration_s: float | None = None) -> SimulatorSource | BleSource | ReplaySource:
    """The configured source: the simulator, the BLE sensors, or a recorded session."""
    from sensorhub.sim.wearer import WearerConfig as SimWearerConfig

    src = config.source
    if src.kind is SourceKind.SIMULATOR:
        sim = SimWearerConfig(
            scenario=src.scenario,
            seed=src.seed,
            rate_hz=src.rate_hz,
            placements=tuple(s.placement for s in config.sensors),
            duration_s=duration_s,
        )
        return SimulatorSource(sim, speed=src.speed)
    if src.kind is SourceKind.BLE:
        from sensorhub.sources.ble import BleSource

        return BleSource(config.sensors)
    if src.kind is SourceKind.REPLAY and src.session is not None:
        from sensorhub.sources.replay import ReplaySource
        from sensorhub.store import SessionStore

        return ReplaySource(SessionStore.from_config(config.storage), src.session, speed=src.speed)
    raise SourceError(
        f"source kind {src.kind.value!r} is not available yet",
        advice='use [source] kind = "ble" or "simulator"',
    )


def session_epoch_offset(source: object, *, wall: Callable[[], float] = time.time) -> float:
    """Epoch seconds at the session clock's 0 (the session's ``clock_offset_s``).

    A BLE source's sample times are ``time.monotonic()`` − its ``t0``, taken when it was made,
    so its epoch is read against that same instant (reading the wall clock before making the
    source would put every stored time behind by the time bleak takes to import, a few hundred
    ms). The other sources start their clock when they start streaming, just after this.
    """
    t0 = getattr(source, "t0", None)
    if isinstance(t0, float):
        return wall() - (time.monotonic() - t0)
    return wall()


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Options of ``sensorhub demo``."""

    duration_s: float | None = None
    speed: float = 20.0
    broker: str | None = None
    dashboard: bool = True
    dashboard_port: int = 8765  # a free port instead when it is taken; 0 = any free port
    out_dir: Path = Path("sensorhub-demo")
    db: Path | None = None
    seed: int = 0


def demo_config(options: DemoOptions, broker_url: str, protocol: MqttProtocol) -> Config:
    """The configuration the demo runs: three simulated sensors, the demo scenario, MQTT to ``broker_url``."""
    base = parse_config(
        {
            "wearer": {"id": "demo", "name": "Demo wearer"},
            "source": {"kind": "simulator", "scenario": "demo", "seed": options.seed},
            "sensors": [
                {"placement": p.value, "profile": "sensorhub_open", "name": f"demo-{p.value}"} for p in Placement
            ],
            "mqtt": {"url": broker_url},
        }
    )
    assert base.mqtt is not None
    mqtt = replace(base.mqtt, protocol=protocol, client_id=f"sensorhub-demo-{int(time.time())}")
    source = replace(base.source, speed=options.speed)
    storage = base.storage if options.db is None else replace(base.storage, path=options.db)
    return replace(base, mqtt=mqtt, source=source, storage=storage)


async def run_demo(options: DemoOptions, *, view: LiveView | None = None) -> Service:
    """The demo: embedded broker (unless ``options.broker``), simulated wearer, everything wired."""
    from sensorhub.mqtt.broker import EmbeddedBroker

    if not options.speed > 0 or math.isnan(options.speed):
        raise ConfigError(f"--speed must be a positive number, got {options.speed}")
    async with contextlib.AsyncExitStack() as stack:
        if options.broker is None:
            broker = await stack.enter_async_context(EmbeddedBroker())
            url, protocol = broker.url, broker.protocol
        else:
            url, protocol = options.broker, MqttProtocol.V5
        config = demo_config(options, url, protocol)
        dashboard = await _start_dashboard(config, stack, options.dashboard_port) if options.dashboard else None
        service = await _start(config, stack, duration_s=options.duration_s, calibrate=DEMO_CALIBRATION)
        _schedule_demo_exercise(service)
        print(f"sensorhub demo: simulated wearer at {options.speed:g}× on {url} (MQTT topics sensorhub/demo/#)")
        if dashboard is not None:
            print(f"dashboard: {dashboard}w/{config.wearer.id} (all wearers: {dashboard})", flush=True)
        await run_service(service, view if view is not None else LiveView(service.status))
    if service.session_id is not None:
        _demo_outputs(service, config, options.out_dir)
    return service


async def _start_dashboard(config: Config, stack: contextlib.AsyncExitStack, port: int) -> str | None:
    """The dashboard on 127.0.0.1 (``port``, or a free one when taken); its URL, or None without aiohttp."""
    from sensorhub.dashboard import require
    from sensorhub.errors import DependencyError

    try:
        require()
    except DependencyError as exc:
        print(f"dashboard: not started: {exc}")
        return None
    from sensorhub.dashboard.server import Dashboard, DashboardSettings, dashboard_client_id

    assert config.mqtt is not None
    settings = DashboardSettings(
        mqtt=replace(config.mqtt, client_id=dashboard_client_id()),
        port=port,
        db=config.storage.path,
        fallback_port=True,
    )
    dashboard = await stack.enter_async_context(Dashboard(settings))
    return dashboard.url


def _json_safe(value: JsonValue) -> JsonValue:
    """A config snapshot for JSON: non-finite numbers (``speed = inf`` in tests) become their names."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _demo_outputs(service: Service, config: Config, out_dir: Path) -> None:
    """Export the demo's session and write its report; say where everything is."""
    from sensorhub.store import SessionStore
    from sensorhub.store.export import export_session
    from sensorhub.store.report import write_report

    assert service.session_id is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    store = SessionStore.from_config(config.storage)
    files = export_session(store, service.session_id, "csv", out_dir / "demo-angles.csv", progress=False)
    report = write_report(store, service.session_id, out_dir / "demo-report.html", progress=False)
    png = write_report(store, service.session_id, out_dir / "demo-report.png", progress=False)
    print(
        f"session:  {service.session_id} in {config.storage.path} (sensorhub sessions --db {config.storage.path} list)"
    )
    print("export:   " + ", ".join(str(f) for f in files))
    print(f"report:   {report} and {png}")
    print(f"alerts:   {service.status.alerts_started}; exercise: {sum(e.type == 'rep' for e in service.events)} reps")


async def _start(
    config: Config,
    stack: contextlib.AsyncExitStack,
    *,
    duration_s: float | None,
    calibrate: CalibrationPlan | None,
    record: bool = True,
    calibration: RigCalibration | None = None,
    on_calibrated: Callable[[RigCalibration], None] | None = None,
) -> Service:
    from sensorhub.mqtt.outbox import Outbox
    from sensorhub.mqtt.publisher import MqttPublisher

    source = make_source(config, duration_s=duration_s)
    epoch_offset = session_epoch_offset(source)
    service: Service | None = None

    def on_command(command: Command) -> None:
        if service is not None:
            service.on_command(command)

    publisher = None
    if config.mqtt is not None:
        outbox_path = config.storage.path.with_name(config.storage.path.stem + "-outbox.db")
        outbox_path.parent.mkdir(parents=True, exist_ok=True)
        outbox = stack.enter_context(Outbox(outbox_path, max_messages=config.mqtt.outbox_max_messages))
        publisher = MqttPublisher(
            config.mqtt,
            config.wearer.id,
            outbox=outbox,
            placements=[s.placement.value for s in config.sensors],
            sw_version=__version__,
            on_command=on_command,
        )
    recorder = None
    session_id = None
    if record:
        from sensorhub.store import SessionStore
        from sensorhub.store.replay import ProcessingSettings

        store = SessionStore.from_config(config.storage)
        rates = {p.value: hz for p, hz in nominal_rates(config).items()}
        recorder = store.start_session(
            config.wearer.id,
            [s.placement.value for s in config.sensors],
            config_json={k: _json_safe(v) for k, v in config.as_dict().items()},
            started_epoch=epoch_offset,
            clock_offset_s=epoch_offset,
            settings=ProcessingSettings.from_config(config, nominal_rate_hz=rates).to_json(),
            record_raw=config.storage.record_raw,
            # A live source (BLE) must never wait for the disk: a stalled store drops, with a gap
            # marker. The simulator and replays produce on demand, often faster than real time, so
            # they wait for the store instead of losing what it could not take in time.
            on_full="drop" if config.source.kind == "ble" else "block",
        )
        session_id = recorder.id
        stack.callback(recorder.close, "interrupted")  # a no-op after the service closed it
    service = Service(
        config,
        source,
        calibration=calibration,
        calibrate=calibrate,
        recorder=recorder,
        publisher=publisher,
        epoch_offset_s=epoch_offset,
        session_id=session_id,
        on_calibrated=on_calibrated,
    )
    return service


def _schedule_demo_exercise(service: Service) -> None:
    """The demo wearer presses "start exercise" 2 s before each cat/camel set and "stop" 2 s after it."""
    if not isinstance(service.source, SimulatorSource):
        return
    for event in service.source.wearer.events():
        if event.type == "set" and event.end_t is not None:
            service.schedule(event.start_t - 2.0, ExerciseCommand("start"))
            service.schedule(event.end_t + 2.0, ExerciseCommand("stop"))


async def run_config(config: Config, *, view: bool = True, dashboard: bool = False) -> Service:
    """``sensorhub run --config``: the configured source until it ends or the process is stopped.

    With ``dashboard`` the built-in dashboard runs too (127.0.0.1:8765, or a free port), on the
    config's broker; it needs ``[mqtt]``.
    """
    if dashboard and config.mqtt is None:
        raise ConfigError("--dashboard needs an [mqtt] section: the dashboard reads what sensorhub publishes")
    from sensorhub.calibration_store import calibration_path, load_calibration, save_calibration

    path = calibration_path(config)
    try:
        stored = load_calibration(path, [s.placement.value for s in config.sensors])
    except CalibrationError as exc:
        log.warning("not using the stored calibration: %s", exc)
        stored = None
    if stored is not None:
        log.info(
            "using the calibration in %s (%s); cmd/calibrate or sensorhub calibrate renews it", path, stored.verdict
        )
    else:
        log.info("no stored calibration: calibrating on the first data (sit upright and still)")
    plan = CalibrationPlan(
        config.pipeline.neutral_duration_s,
        DEFAULT_FUNCTIONAL_S if config.pipeline.functional is FunctionalMode.AUTO else 0.0,
    )

    def keep(calibration: RigCalibration) -> None:
        save_calibration(path, calibration, wearer=config.wearer.id)

    async with contextlib.AsyncExitStack() as stack:
        service = await _start(config, stack, duration_s=None, calibrate=plan, calibration=stored, on_calibrated=keep)
        if dashboard:
            url = await _start_dashboard(config, stack, 8765)
            if url is not None:
                print(f"dashboard: {url}w/{config.wearer.id}", flush=True)
        await run_service(service, LiveView(service.status) if view else None)
        return service
