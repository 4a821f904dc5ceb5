"""The service: source → calibration → pipeline → posture engine → sinks, under one TaskGroup (DESIGN §2).

Tasks (each named):

- ``source``: reads :class:`~sensorhub.model.ImuBatch` from the source into a bounded queue
  (:data:`QUEUE_MAX` batches). The simulator and replay sources wait when it is full
  (back-pressure, nothing lost); a BLE source keeps its own bounded queue and counts drops.
- ``pipeline``: takes whatever has arrived (one notification at real time, many when
  accelerated), records it, runs calibration or the spine pipeline and the posture engine on it,
  and hands the results to the sinks. Processing starts as soon as a batch arrives, so the only
  delay the service adds is the rig waiting for every sensor's next notification.
- ``mqtt`` (when configured): :class:`~sensorhub.mqtt.publisher.MqttPublisher`.
- ``view`` (when given): the live terminal view.

Start-up is ordered: the store and the MQTT publisher exist before the source starts (the publisher
connects in the background; alerts wait in its durable outbox). A failing sink never stops
recording: a store that fails (disk full, read-only) is logged once and recording stops while
alerts go on; MQTT failures are the publisher's to retry. Shutdown (the source ends, or the task is
cancelled on SIGINT/SIGTERM): the data path stops, the pipeline and posture engine are flushed,
open alert episodes are ended, the store is closed, the outbox gets up to
:data:`DRAIN_TIMEOUT_S` to empty, then the publisher says ``offline`` — within 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from sensorhub.config import Config
from sensorhub.errors import CalibrationError, SensorhubError
from sensorhub.model import Event, ImuBatch, JsonValue, Placement, Posture, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration, calibrate_rig
from sensorhub.pipeline.rig import RigSettings
from sensorhub.pipeline.spine import SpinePipeline
from sensorhub.posture.engine import PostureEngine, PostureOutput

__all__ = [
    "DRAIN_TIMEOUT_S",
    "QUEUE_MAX",
    "CalibrationPlan",
    "SensorStatus",
    "Service",
    "ServiceStatus",
]

log = logging.getLogger(__name__)

#: Batches between the source and the pipeline (≈ 13 s of 3 sensors at 25 notifications/s).
QUEUE_MAX = 1000
#: Longest the start-up waits for MQTT to connect before the source starts.
STARTUP_MQTT_WAIT_S = 5.0
#: Longest the shutdown waits for the MQTT outbox to empty before saying ``offline``.
DRAIN_TIMEOUT_S = 1.0
#: How often the retained ``sensors/<placement>`` and ``session`` states are refreshed (s, wall clock).
STATUS_PERIOD_S = 5.0
#: Calibration data kept while calibrating, per sensor (samples); a longer plan is refused.
CALIBRATION_MAX_SAMPLES = 120 * 400
_END = object()
_ANGLE_FIELDS = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg")


class Recorder(Protocol):
    """What the service needs of a session recorder (:mod:`sensorhub.store`)."""

    def add_imu(self, batch: ImuBatch) -> ImuBatch: ...

    def add_frame(self, frame: SpineFrame, posture: Sequence[str] | None) -> None: ...

    def add_events(self, events: Sequence[Event]) -> None: ...

    def set_calibration(self, calibration: RigCalibration, *, from_batch: int | None = None) -> None: ...

    def add_command(self, name: str, args: Mapping[str, JsonValue], *, at_batch: int | None = None) -> None: ...

    @property
    def arrivals(self) -> int: ...

    @property
    def error(self) -> SensorhubError | None: ...

    def close(self, status: Any = "complete") -> None: ...


class Publisher(Protocol):
    """What the service needs of the MQTT publisher."""

    async def run(self) -> None: ...

    def publish_angles(self, t: float, angles: Mapping[str, float | None], posture: str) -> None: ...

    def publish_posture(self, t: float, posture: str, since: float) -> None: ...

    def publish_sensor(
        self,
        placement: str,
        *,
        t: float,
        connected: bool,
        battery_pct: float | None,
        rssi: int | None,
        rate_hz: float | None,
        dropped: int,
    ) -> None: ...

    def publish_session(self, session_id: str, started: float, stats: Mapping[str, JsonValue]) -> None: ...

    def publish_alert(self, t: float, type: str, state: str, duration_s: float | None, **extra: JsonValue) -> str: ...

    def publish_exercise(self, t: float, event: Mapping[str, JsonValue]) -> str: ...

    @property
    def stats(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    """A calibration to run on the incoming data.

    Attributes:
        neutral_s: still, upright capture at its start (s).
        functional_s: time after it in which to look for forward bends or cat/camel reps (s); 0 = none.
    """

    neutral_s: float = 10.0
    functional_s: float = 0.0


@dataclass(slots=True)
class SensorStatus:
    """One sensor as the service sees it."""

    placement: Placement
    sensor_id: str = ""
    connected: bool = False
    samples: int = 0
    dropped: int = 0
    rate_hz: float | None = None
    battery_pct: float | None = None
    rssi: int | None = None
    last_t: float | None = None
    last_wall: float | None = None
    _rate_ref: tuple[float, int] | None = None


@dataclass(slots=True)
class ServiceStatus:
    """What the live view shows; updated by the pipeline task."""

    wearer: str
    started_epoch: float
    t: float | None = None
    calibrated: bool = False
    calibrating: str | None = None
    angles: dict[str, float | None] = field(default_factory=dict)
    posture: str = Posture.UNCALIBRATED.value
    posture_since: float | None = None
    alerts_started: int = 0
    last_alerts: list[str] = field(default_factory=list)
    exercise: list[str] = field(default_factory=list)
    sensors: dict[Placement, SensorStatus] = field(default_factory=dict)
    recording: str = "off"
    mqtt: str = "off"
    buzz_requests: int = 0
    errors: list[str] = field(default_factory=list)
    finished: bool = False


def nominal_rates(config: Config) -> dict[Placement, float]:
    """Each sensor's nominal sample rate: the simulator's rate, or the BLE sensor's configured rate
    (its profile's default when not set)."""
    from sensorhub.config import SourceKind

    if config.source.kind is not SourceKind.BLE:
        return {s.placement: config.source.rate_hz for s in config.sensors}
    from sensorhub.profiles.registry import get_profile

    return {s.placement: s.rate_hz or get_profile(s.profile).default_rate_hz for s in config.sensors}


class Service:
    """One wearer's sensorhub: runs until its source ends or the task is cancelled.

    Args:
        config: the whole configuration.
        source: async iterable of ImuBatch in arrival order (simulator, replay, BLE).
        calibration: a stored calibration to start with, or None to run ``calibrate`` first.
        calibrate: the calibration to run on the first data when ``calibration`` is None.
        recorder: session recorder, or None for no recording.
        publisher: the MQTT publisher, or None for no MQTT.
        epoch_offset_s: the source's clock + this = Unix time (for MQTT times and quiet hours).
        session_id: the recorded session's id (MQTT ``session`` topic), if any.
        wall_clock: monotonic clock for the status refresh.
        on_calibrated: called with every calibration the service completes (to keep it for the next run).
    """

    def __init__(
        self,
        config: Config,
        source: AsyncIterable[ImuBatch],
        *,
        calibration: RigCalibration | None = None,
        calibrate: CalibrationPlan | None = None,
        recorder: Recorder | None = None,
        publisher: Publisher | None = None,
        epoch_offset_s: float = 0.0,
        session_id: str | None = None,
        wall_clock: Callable[[], float] = time.monotonic,
        on_calibrated: Callable[[RigCalibration], None] | None = None,
    ) -> None:
        self.config = config
        self._on_calibrated = on_calibrated
        self.source = source
        self.placements = tuple(s.placement for s in config.sensors)
        self.recorder = recorder
        self.publisher = publisher
        self.epoch_offset_s = epoch_offset_s
        self.session_id = session_id
        self._wall = wall_clock
        self.status = ServiceStatus(config.wearer.id, started_epoch=time.time())
        self.status.sensors = {p: SensorStatus(p) for p in self.placements}
        self.status.recording = "recording" if recorder is not None else "off"
        self.status.mqtt = "connecting" if publisher is not None else "off"
        self.engine = PostureEngine(
            config.alerts, self.placements, epoch_offset_s=epoch_offset_s, calibrated=calibration is not None
        )
        self.pipeline: SpinePipeline | None = None
        self.calibration: RigCalibration | None = None
        self._plan: CalibrationPlan | None = None
        self._cal_batches: list[ImuBatch] = []
        self._cal_start: float | None = None
        self._cal_from_batch: int | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_MAX)
        self._last_status = -math.inf
        self._posture_published: tuple[str, float] | None = None
        self.frames: list[SpineFrame] = []  # kept only when keep_frames is set (tests, demo summary)
        self.keep_frames = False
        self.events: list[Event] = []
        self._scheduled: list[tuple[float, object]] = []
        self._publish_errors = 0
        self._episodes: dict[tuple[str, float], int] = {}
        self._episode_counter = 0
        self._links_seen: dict[Placement, tuple[bool, int]] = {}  # BLE link states last recorded
        if calibration is not None:
            self._use_calibration(calibration)
        else:
            self.request_calibration(calibrate or CalibrationPlan(config.pipeline.neutral_duration_s))

    # -- commands ----------------------------------------------------------------------------

    def request_calibration(self, plan: CalibrationPlan) -> None:
        """Calibrate again from the next data (``cmd/calibrate``, ``sensorhub calibrate``)."""
        if plan.neutral_s + plan.functional_s > 120.0:
            raise CalibrationError("a calibration longer than 120 s is not supported", advice="shorten it")
        self._plan = plan
        self._cal_batches = []
        self._cal_start = None
        self.engine.set_calibrated(False)
        self.status.calibrating = f"sit upright and still for {plan.neutral_s:g} s"
        log.info("calibration: sit upright and still for %g s", plan.neutral_s)

    def schedule(self, t: float, command: object) -> None:
        """Carry out ``command`` once the data reach time ``t`` (source clock): scripted demos and tests."""
        self._scheduled.append((t, command))
        self._scheduled.sort(key=lambda item: item[0])

    def on_command(self, command: object) -> None:
        """Carry out a command from MQTT (a parsed :mod:`sensorhub.mqtt.commands` command)."""
        from sensorhub.mqtt.commands import CalibrateCommand, ExerciseCommand, PainCommand, SnoozeCommand

        now = self.status.t if self.status.t is not None else 0.0
        if not isinstance(command, CalibrateCommand):
            self._record_command(command, now)
        if isinstance(command, CalibrateCommand):
            functional = 30.0 if command.functional else 0.0
            self.request_calibration(CalibrationPlan(command.neutral_s, functional))
        elif isinstance(command, SnoozeCommand):
            until = self.engine.snooze(command.minutes, now)
            log.info("alerts snoozed until t=%.0f s", until if until is not None else now)
        elif isinstance(command, ExerciseCommand):
            self.engine.set_exercising(command.action == "start")
        elif isinstance(command, PainCommand):
            # A pain stop ends the set (the coach records the limit); exercise mode ends with it.
            self.engine.pain(command.region)
            self.engine.set_exercising(False)
        else:  # pragma: no cover - the parser only makes the four
            raise TypeError(f"unknown command {command!r}")

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the source ends (then return) or the task is cancelled (then re-raise)."""
        async with asyncio.TaskGroup() as sinks:
            publisher_task = None
            if self.publisher is not None:
                publisher_task = sinks.create_task(self.publisher.run(), name="mqtt")
                await self._wait_connected()
            try:
                async with asyncio.TaskGroup() as data:
                    data.create_task(self._read_source(), name="source")
                    data.create_task(self._process(), name="pipeline")
            finally:
                self._finish()
                await self._close_recorder()
                if publisher_task is not None:
                    await self._drain_outbox()
                    publisher_task.cancel()

    async def _read_source(self) -> None:
        try:
            async for batch in self.source:
                await self._queue.put(batch)
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)

    async def _process(self) -> None:
        while True:
            item = await self._queue.get()
            batches: list[ImuBatch] = []
            done = False
            while True:
                if item is _END:
                    done = True
                    break
                assert isinstance(item, ImuBatch)
                batches.append(item)
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if batches:
                self.step(batches)
            if done:
                return
            await asyncio.sleep(0)

    async def _wait_connected(self) -> None:
        """Ordered start-up: give MQTT up to :data:`STARTUP_MQTT_WAIT_S` to connect before data flow
        (an absent broker does not hold the service up: alerts wait in the outbox)."""
        assert self.publisher is not None
        deadline = self._wall() + STARTUP_MQTT_WAIT_S
        # Polls the stats snapshot: the publisher has no public event (keeps the Publisher protocol small).
        while not self.publisher.stats.connected and self._wall() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if not self.publisher.stats.connected:
            log.warning("MQTT is not connected yet; starting anyway (alerts wait in the outbox)")

    async def _drain_outbox(self) -> None:
        assert self.publisher is not None
        deadline = self._wall() + DRAIN_TIMEOUT_S
        while self._wall() < deadline:
            stats = self.publisher.stats
            if not stats.connected or stats.outbox_depth == 0:
                return
            await asyncio.sleep(0.02)

    # -- one step (pure computation + sinks; also used by tests) --------------------------------

    def step(self, batches: Sequence[ImuBatch]) -> None:
        """Record, calibrate or process what arrived; publish and record the results."""
        batches = [b for b in batches if b.placement in self.status.sensors and len(b)]
        if self.recorder is not None and self.status.recording == "recording":
            # The pipeline gets the batches exactly as stored, so a replay reproduces its angles.
            batches = [self._record_imu(b) for b in batches]
        for b in batches:
            self._sensor_seen(b)
        if self._plan is not None:
            self._calibrate_step(batches)
        elif self.pipeline is not None and batches:
            self._handle(self.pipeline.process_block(batches))
        while self._scheduled and self.status.t is not None and self._scheduled[0][0] <= self.status.t:
            _, command = self._scheduled.pop(0)
            self.on_command(command)
        self._refresh_status()

    def _calibrate_step(self, batches: Sequence[ImuBatch]) -> None:
        plan = self._plan
        assert plan is not None
        if self._cal_start is None and batches:
            self._cal_start = min(float(b.t[0]) for b in batches)
            # Index of the first batch the new pipeline will see (recorded with the calibration).
            self._cal_from_batch = None if self.recorder is None else self.recorder.arrivals - len(batches)
        self._cal_batches.extend(batches)
        if self._cal_start is None:
            return
        latest = dict.fromkeys(self.placements, -math.inf)
        for b in self._cal_batches:
            latest[b.placement] = max(latest[b.placement], float(b.t[-1]))
        end = self._cal_start + plan.neutral_s + plan.functional_s
        elapsed = min(latest.values()) - self._cal_start
        if elapsed < plan.neutral_s:
            self.status.calibrating = f"sit upright and still: {max(0.0, plan.neutral_s - elapsed):.0f} s left"
        elif elapsed < plan.neutral_s + plan.functional_s:
            self.status.calibrating = "slowly bend forward and back up, or do cat/camel reps"
        if min(latest.values()) < end:
            if sum(len(b) for b in self._cal_batches) > CALIBRATION_MAX_SAMPLES * len(self.placements):
                self._calibration_failed("the sensors sent more data than a calibration can hold")
            return
        data = {}
        for placement in self.placements:
            mine = [b for b in self._cal_batches if b.placement == placement]
            joined = ImuBatch.join(mine)
            data[placement.value] = (joined.t, joined.acc, joined.gyro)
        neutral = (self._cal_start, self._cal_start + plan.neutral_s)
        try:
            calibration = calibrate_rig(data, neutral=neutral, functional="auto" if plan.functional_s > 0 else None)
        except CalibrationError as exc:
            self._calibration_failed(str(exc))
            return
        buffered = self._cal_batches
        self._use_calibration(calibration)
        log.info("calibration done: %s", calibration.verdict)
        if self._on_calibrated is not None:
            try:
                self._on_calibrated(calibration)
            except (OSError, SensorhubError) as exc:  # keeping it is a convenience; the run goes on
                log.warning("could not keep the calibration for the next run: %s", exc)
        assert self.pipeline is not None
        # The calibration data are the first angles: replaying the recording gives the same frames.
        self._handle(self.pipeline.process_block(buffered))

    def _calibration_failed(self, message: str) -> None:
        log.warning("calibration failed: %s; starting again", message)
        self.status.errors.append(f"calibration failed: {message}")
        del self.status.errors[:-5]
        assert self._plan is not None
        self.request_calibration(self._plan)

    def _use_calibration(self, calibration: RigCalibration) -> None:
        self.calibration = calibration
        self._plan = None
        self._cal_batches = []
        self.pipeline = SpinePipeline(
            calibration,
            estimator=self.config.pipeline.estimator.value,
            nominal_rate_hz=nominal_rates(self.config),
            rig_settings=RigSettings(
                output_rate_hz=self.config.pipeline.output_rate_hz,
                sensor_timeout_s=self.config.pipeline.sensor_timeout_s,
            ),
        )
        self.engine.set_calibrated(True)
        self.status.calibrated = True
        self.status.calibrating = None
        self._record("set_calibration", calibration, from_batch=self._cal_from_batch)

    def _handle(self, frame: SpineFrame) -> None:
        if len(frame.t) == 0:
            return
        out = self.engine.process(frame)
        if self.keep_frames:
            self.frames.append(frame)
        labels = [p.value for p in out.labels]
        self._record("add_frame", frame, labels)
        self._publish_angles(frame, labels)
        self._events(out)
        state = out.state
        self.status.t = float(frame.t[-1])
        self.status.posture = state.posture.value
        self.status.posture_since = state.since
        for name in (*_ANGLE_FIELDS, "spine_flexion_deg"):
            values = getattr(frame, name)
            self.status.angles[name] = None if values is None or math.isnan(values[-1]) else float(values[-1])

    def _publish_angles(self, frame: SpineFrame, labels: Sequence[str]) -> None:
        if self.publisher is None:
            return
        columns = {name: getattr(frame, name) for name in _ANGLE_FIELDS}
        if frame.spine_flexion_deg is not None:
            columns["spine_flexion_deg"] = frame.spine_flexion_deg
        present = {k: v for k, v in columns.items() if v is not None}
        for i, t in enumerate(frame.t.tolist()):
            angles: dict[str, float | None] = dict.fromkeys(columns)
            for name, values in present.items():
                v = float(values[i])
                angles[name] = None if math.isnan(v) else v
            self._publish("publish_angles", self.epoch_offset_s + t, angles, labels[i])

    def _events(self, out: PostureOutput) -> None:
        offset = self.epoch_offset_s
        for t, posture in out.changes:
            self._publish("publish_posture", offset + t, posture.value, offset + t)
        if out.started:
            self._record("add_events", list(out.started))  # open episodes survive a crash
        for e in out.started:
            if not _sent(e):
                log.info("%s alert held back (%s)", e.type, e.data.get("alert_state"))
                continue
            self.status.alerts_started += 1
            self._note_alert(f"{e.type} started at {e.start_t:.0f} s")
            self._publish_alert(e, "start")
        finished = list(out.finished)
        if finished:
            self.events.extend(finished)
            self._record("add_events", finished)
        for e in finished:
            if e.type in ("rep", "set", "pain_stop"):
                self.status.exercise.append(_exercise_line(e))
                del self.status.exercise[:-4]
                self._publish("publish_exercise", offset + (e.end_t or e.start_t), _epoch_event(e, offset))
            elif _sent(e):
                self._note_alert(f"{e.type} ended after {(e.end_t or e.start_t) - e.start_t:.0f} s")
                self._publish_alert(e, "end")
        self.status.buzz_requests += len(out.buzz)
        request_buzz = getattr(self.source, "request_buzz", None)  # sources with motors (BLE)
        for request in out.buzz:
            sent = request_buzz() if request_buzz is not None else 0
            log.info("buzz request: %s (%d sensor(s) will buzz)", request, sent)

    def _publish_alert(self, e: Event, state: str) -> None:
        if self.publisher is None:
            return
        offset = self.epoch_offset_s
        t = e.start_t if state == "start" or e.end_t is None else e.end_t
        duration = 0.0 if state == "start" or e.end_t is None else e.end_t - e.start_t
        extra = _alert_fields(e)
        key = (e.type, e.start_t)
        if key not in self._episodes:
            self._episode_counter += 1
            self._episodes[key] = self._episode_counter
            if len(self._episodes) > 64:  # only open episodes need their number; keep a few
                self._episodes.pop(next(iter(self._episodes)))
        extra["episode"] = self._episodes[key]
        extra["start_t"] = round(offset + e.start_t, 3)
        onset = extra.get("onset_t")
        if isinstance(onset, int | float):
            extra["onset_t"] = round(offset + onset, 3)
        self._publish("publish_alert", offset + t, e.type, state, duration, **extra)

    def _publish(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call a publisher method; a payload it refuses is logged, never fatal (a sink never stops the service)."""
        if self.publisher is None:
            return
        try:
            getattr(self.publisher, method)(*args, **kwargs)
        except (ValueError, SensorhubError) as exc:
            self._publish_errors += 1
            if self._publish_errors <= 10:
                log.warning("MQTT %s refused: %s", method.removeprefix("publish_"), exc)

    def _note_alert(self, text: str) -> None:
        log.info("alert: %s", text)
        self.status.last_alerts.append(text)
        del self.status.last_alerts[:-4]

    def _finish(self) -> None:
        """End of the stream: flush the pipeline and the engine, end open episodes, close the session."""
        if self.pipeline is not None:
            with _logged("flushing the pipeline"):
                self._handle(self.pipeline.flush())
        with _logged("closing the posture engine"):
            last = self.engine.finish()
            closed = []
            end_t = self.status.t
            for e in last:
                if e.end_t is None and end_t is not None:
                    e = replace(e, end_t=end_t)
                closed.append(e)
            if closed:
                self._events(
                    PostureOutput(
                        t=np.empty(0),
                        labels=[],
                        started=[],
                        finished=closed,
                        buzz=[],
                        changes=[],
                        state=self.engine.state,
                    )
                )
        self._publish_status(force=True)
        self.status.finished = True

    async def _close_recorder(self) -> None:
        if self.recorder is None:
            return
        with _logged("closing the session"):
            await asyncio.to_thread(self.recorder.close, "complete")  # waits for the last commit
        if self.status.recording == "recording":
            self.status.recording = "closed"

    # -- sensors, status -------------------------------------------------------------------------

    def _sensor_seen(self, batch: ImuBatch) -> None:
        s = self.status.sensors[batch.placement]
        s.sensor_id = batch.sensor_id
        s.connected = True
        s.samples += len(batch)
        s.last_t = float(batch.t[-1])
        s.last_wall = self._wall()
        if s._rate_ref is None:
            s._rate_ref = (float(batch.t[0]), 0)
        t0, n0 = s._rate_ref
        span = s.last_t - t0
        if span >= 2.0:
            s.rate_hz = (s.samples - n0 - 1) / span if s.samples - n0 > 1 else None
            s._rate_ref = (s.last_t, s.samples - 1)

    def _refresh_status(self) -> None:
        now = self._wall()
        if self.recorder is not None and self.status.recording == "recording" and self.recorder.error is not None:
            self._recording_failed(self.recorder.error)
        timeout = self.config.pipeline.sensor_timeout_s
        for s in self.status.sensors.values():
            if s.connected and s.last_wall is not None and now - s.last_wall > timeout * 5:
                s.connected = False
        links = getattr(self.source, "links", None)  # a BLE source knows more than the data show
        if isinstance(links, dict):
            for placement, link in links.items():
                known = self.status.sensors.get(placement)
                if known is not None:
                    state = link.state
                    known.connected, known.rssi, known.battery_pct = state.connected, state.rssi, state.battery_pct
                    known.dropped = state.missing_samples + state.unpaired  # samples lost, counted from counters
            self._note_links(links)
        if self.publisher is not None:
            stats = self.publisher.stats
            if stats.connected:
                self.status.mqtt = "connected"
            elif self.status.mqtt != "connecting":
                self.status.mqtt = "reconnecting"
        self._publish_status(force=False)

    def _note_links(self, links: Mapping[Placement, Any]) -> None:
        """Record a ``sensor_links`` event in the session when a BLE link connects or is lost.

        The event holds every link's state (so two changes at the same instant, which share the
        store's event key, lose nothing): per placement connected, reconnects, missing samples,
        decode errors, battery, RSSI and why it was lost.
        """
        seen = {p: (bool(link.state.connected), int(link.state.reconnects)) for p, link in links.items()}
        if seen == self._links_seen:
            return
        self._links_seen = seen
        t = self.status.t if self.status.t is not None else 0.0
        states: dict[str, JsonValue] = {}
        for placement, link in links.items():
            state = link.state
            states[placement.value] = {
                "connected": bool(state.connected),
                "reconnects": int(state.reconnects),
                "missing_samples": int(state.missing_samples),
                "decode_errors": int(state.decode_errors),
                "battery_pct": state.battery_pct,
                "rssi": state.rssi,
                "reason": "" if state.connected else str(state.last_error),
            }
        self._record("add_events", [Event("sensor_links", t, t, {"sensors": states})])

    def _publish_status(self, *, force: bool) -> None:
        now = self._wall()
        if self.publisher is None or (not force and now - self._last_status < STATUS_PERIOD_S):
            return
        self._last_status = now
        t = time.time()
        for s in self.status.sensors.values():
            self._publish(
                "publish_sensor",
                s.placement.value,
                t=t,
                connected=s.connected,
                battery_pct=s.battery_pct,
                rssi=s.rssi,
                rate_hz=s.rate_hz,
                dropped=s.dropped,
            )
        if self.session_id is not None:
            self._publish("publish_session", self.session_id, self.status.started_epoch, self.engine.stats_json())

    def _record_command(self, command: object, now: float) -> None:
        """Record what a command does to the posture engine, so a replay does the same."""
        from sensorhub.mqtt.commands import ExerciseCommand, PainCommand, SnoozeCommand

        if isinstance(command, SnoozeCommand):
            self._record("add_command", "snooze", {"minutes": command.minutes, "now_t": now})
        elif isinstance(command, ExerciseCommand):
            self._record("add_command", "exercise", {"active": command.action == "start", "t": None})
        elif isinstance(command, PainCommand):
            self._record("add_command", "pain", {"region": command.region, "t": None})
            self._record("add_command", "exercise", {"active": False, "t": None})

    def _record_imu(self, batch: ImuBatch) -> ImuBatch:
        assert self.recorder is not None
        try:
            return self.recorder.add_imu(batch)
        except SensorhubError as exc:
            self._recording_failed(exc)
            return batch

    def _recording_failed(self, exc: SensorhubError) -> None:
        self.status.recording = "failed"
        self.status.errors.append(f"recording stopped: {exc}")
        log.error("recording stopped: %s (alerts and MQTT go on)", exc)

    def _record(self, method: str, *args: object, **kwargs: object) -> None:
        """Call a recorder method; a failure stops recording, never the service."""
        if self.recorder is None or self.status.recording in ("failed", "closed"):
            return
        try:
            getattr(self.recorder, method)(*args, **kwargs)
        except SensorhubError as exc:
            self._recording_failed(exc)


def _alert_fields(e: Event) -> dict[str, JsonValue]:
    """The ``alerts`` payload's fields of an alert event (DESIGN §7): for a slouch, the segment that
    is furthest past its threshold as ``segment``, ``angle_deg`` (its peak) and ``threshold_deg``,
    plus every segment's peak and threshold."""
    data = e.data
    out: dict[str, JsonValue] = {}
    peaks = data.get("peak_deg")
    thresholds = data.get("threshold_deg")
    if isinstance(peaks, dict) and isinstance(thresholds, dict):
        over = {
            seg: float(peak) - float(limit)
            for seg, peak in peaks.items()
            if isinstance(peak, int | float) and isinstance(limit := thresholds.get(seg), int | float)
        }
        if over:
            segment = max(over, key=lambda name: over[name])
            out["segment"] = segment
            out["angle_deg"] = peaks[segment]
            out["threshold_deg"] = thresholds[segment]
        out["peaks_deg"] = peaks
        out["thresholds_deg"] = thresholds
    for key in ("segments", "onset_t", "sitting_s"):
        if key in data:
            out[key] = data[key]
    return out


def _sent(e: Event) -> bool:
    """Whether an alert event went out (not held back by snooze, quiet hours or the cap)."""
    return e.data.get("alert_state", "sent") == "sent"


def _epoch_event(e: Event, offset: float) -> dict[str, JsonValue]:
    out = e.to_json()
    out["start_t"] = round(offset + e.start_t, 3)
    out["end_t"] = None if e.end_t is None else round(offset + e.end_t, 3)
    return out


def _exercise_line(e: Event) -> str:
    if e.type == "rep":
        rom = e.data.get("rom_deg")
        parts = []
        if isinstance(rom, dict):
            parts = [f"{k} {v:.0f}°" for k, v in rom.items() if isinstance(v, int | float)]
        fast = " (too fast)" if e.data.get("too_fast") else ""
        return f"rep {e.data.get('rep', '')}: " + ", ".join(parts) + fast
    if e.type == "set":
        return f"set done: {e.data.get('reps', '?')} reps"
    return f"pain stop ({e.data.get('region') or 'all regions'})"


@contextlib.contextmanager
def _logged(what: str) -> Any:
    try:
        yield
    except Exception:  # the shutdown goes on whatever one step does
        log.exception("error while %s", what)
