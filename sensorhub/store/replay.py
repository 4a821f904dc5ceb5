"""Replay: rerun the pipeline and the posture engine on a recorded session, with the same or other settings.

One object, :class:`SessionProcessor`, is the whole live path after the source — calibration
switches, :class:`~sensorhub.pipeline.spine.SpinePipeline` fed batch by batch,
:class:`~sensorhub.posture.engine.PostureEngine`, and the recorder — so the live service and
:func:`replay` run the same code (DESIGN §2, "one code path"). What makes a replay with the
session's own settings reproduce the live angles bit for bit:

- the pipeline is fed the batches at the store's precision (acc/gyro rounded to float32,
  :func:`~sensorhub.store.codec.stored_precision`), the same batches in the same order (the
  store keeps each received batch's arrival index and length);
- each calibration is stored with the arrival index of the first batch it processed, and the
  pipeline is rebuilt from it at that batch, as live;
- the pipeline and alert settings are stored with the session (:class:`ProcessingSettings`).

What a replay cannot reproduce: dashboard commands (snooze, exercise mode, pain) that changed
the live events, and samples the recorder dropped (gap markers).

The result is stored as a *derived* session (``parent_id`` = the recording; no copy of the raw
data: its raw export reads the parent's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sensorhub.config import AlertsConfig, Config, QuietHours
from sensorhub.errors import InputError
from sensorhub.model import Event, ImuBatch, JsonValue, Placement, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration, calibrate_rig
from sensorhub.pipeline.rig import RigSettings
from sensorhub.pipeline.spine import SpinePipeline
from sensorhub.posture.engine import PostureEngine, PostureOutput
from sensorhub.store.codec import stored_precision
from sensorhub.store.recorder import SessionRecorder
from sensorhub.store.records import SessionInfo, StoredCommand
from sensorhub.store.store import SessionStore

__all__ = [
    "CalibrationMode",
    "ProcessingSettings",
    "ReplayResult",
    "SessionProcessor",
    "Step",
    "replay",
]

CalibrationMode = Literal["session", "recompute"]
_Action = tuple[int, int, RigCalibration | StoredCommand]  # (arrival index, order, what)

#: Default neutral window for a recomputed calibration without a stored one: the first 10 s.
DEFAULT_NEUTRAL_S = 10.0


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    """Everything the live path's output depends on besides the data and the calibration.

    Attributes:
        estimator: orientation estimator, "vqf" or "complementary".
        nominal_rate_hz: nominal sample rate per placement, exactly as the live SpinePipeline got it;
            a placement without one is measured from its data (median sample interval).
        rig: output grid, gap and timeout rules.
        alerts: the posture engine's ``[alerts]`` settings.
    """

    estimator: str = "vqf"
    nominal_rate_hz: Mapping[str, float] = field(default_factory=dict)
    rig: RigSettings = field(default_factory=RigSettings)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    @classmethod
    def from_config(cls, config: Config, nominal_rate_hz: Mapping[str, float] | None = None) -> ProcessingSettings:
        """The settings a service running ``config`` uses (rates: the ones it gave its pipeline)."""
        rates = dict(nominal_rate_hz or {})
        for sensor in config.sensors:
            if sensor.rate_hz is not None:
                rates.setdefault(sensor.placement.value, float(sensor.rate_hz))
        rig = RigSettings(
            output_rate_hz=config.pipeline.output_rate_hz, sensor_timeout_s=config.pipeline.sensor_timeout_s
        )
        return cls(str(config.pipeline.estimator), rates, rig, config.alerts)

    def to_json(self) -> dict[str, JsonValue]:
        """JSON object stored as the session's ``settings``."""
        alerts: dict[str, JsonValue] = {}
        for f in dataclasses.fields(AlertsConfig):
            value = getattr(self.alerts, f.name)
            alerts[f.name] = str(value) if isinstance(value, QuietHours) else value
        return {
            "version": 1,
            "estimator": self.estimator,
            "nominal_rate_hz": {k: float(v) for k, v in self.nominal_rate_hz.items()},
            "rig": {f.name: getattr(self.rig, f.name) for f in dataclasses.fields(RigSettings)},
            "alerts": alerts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> ProcessingSettings:
        """Inverse of :meth:`to_json`; missing keys take their defaults (older or partial settings).

        Raises:
            InputError: a value has the wrong type.
        """
        try:
            rates = data.get("nominal_rate_hz") or {}
            rig = data.get("rig") or {}
            alerts = data.get("alerts") or {}
            if not isinstance(rates, Mapping) or not isinstance(rig, Mapping) or not isinstance(alerts, Mapping):
                raise TypeError("nominal_rate_hz, rig and alerts must be objects")
            rig_fields = {f.name for f in dataclasses.fields(RigSettings)}
            alert_fields = {f.name for f in dataclasses.fields(AlertsConfig)}
            alert_values: dict[str, object] = {k: v for k, v in alerts.items() if k in alert_fields}
            quiet = alert_values.get("quiet_hours")
            if isinstance(quiet, str):
                alert_values["quiet_hours"] = _quiet_hours(quiet)
            return cls(
                estimator=str(data.get("estimator", "vqf")),
                nominal_rate_hz={str(k): float(v) for k, v in rates.items() if isinstance(v, int | float)},
                rig=RigSettings(
                    **{k: float(v) for k, v in rig.items() if k in rig_fields and isinstance(v, int | float)}
                ),
                alerts=dataclasses.replace(AlertsConfig(), **alert_values),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"stored processing settings cannot be read: {exc}") from exc


def _quiet_hours(text: str) -> QuietHours:
    start, end = text.split("-")
    return QuietHours(dt.time.fromisoformat(start), dt.time.fromisoformat(end))


@dataclass(frozen=True, slots=True)
class Step:
    """What one :class:`SessionProcessor` call produced.

    Attributes:
        frame: the spine angles that became complete (often none).
        posture: the posture engine's output for them, or None when there were none.
    """

    frame: SpineFrame
    posture: PostureOutput | None = None


_EMPTY = SpineFrame(t=np.empty(0))


class SessionProcessor:
    """The live path after the source: calibration → SpinePipeline → PostureEngine → recorder.

    Args:
        settings: pipeline and alert settings (store ``settings.to_json()`` with the session).
        placements: the placements worn, in the configuration's order.
        epoch_offset_s: epoch seconds − session clock seconds (quiet hours need the wall clock).
        recorder: where raw batches, angles, events and calibrations go; None = record nothing.
        engine: the posture engine to use (default: a new one from ``settings.alerts``).
    """

    def __init__(
        self,
        settings: ProcessingSettings,
        placements: Sequence[Placement],
        *,
        epoch_offset_s: float | None,
        recorder: SessionRecorder | None = None,
        engine: PostureEngine | None = None,
    ) -> None:
        self.settings = settings
        self.placements = tuple(placements)
        self.recorder = recorder
        self.engine = engine or PostureEngine(settings.alerts, self.placements, epoch_offset_s=epoch_offset_s)
        self.pipeline: SpinePipeline | None = None
        self.calibration: RigCalibration | None = None

    def set_calibration(self, calibration: RigCalibration, *, from_batch: int | None = None) -> Step:
        """Switch to a new calibration: flushes the old pipeline (its last angles come out) and starts a new one.

        Args:
            calibration: the new rig calibration.
            from_batch: arrival index of the first batch it processes (replays; live: the next one).
        """
        step = self._flush_pipeline()
        rates = {Placement(name): self._rate(Placement(name)) for name in calibration.sensors}
        self.pipeline = SpinePipeline(
            calibration, estimator=self.settings.estimator, nominal_rate_hz=rates, rig_settings=self.settings.rig
        )
        self.calibration = calibration
        if self.recorder is not None:
            self.recorder.set_calibration(calibration, from_batch=from_batch)
        return step

    # -- commands (recorded, so a replay gives them again at the same place in the stream) --

    def snooze(self, minutes: float | None, now_t: float) -> float | None:
        """``cmd/snooze``: :meth:`PostureEngine.snooze`; returns the end of the snooze (or None)."""
        self._record("snooze", {"minutes": minutes, "now_t": now_t})
        return self.engine.snooze(minutes, now_t)

    def set_exercising(self, active: bool, t: float | None = None) -> None:
        """``cmd/exercise``: :meth:`PostureEngine.set_exercising`."""
        self._record("exercise", {"active": active, "t": t})
        self.engine.set_exercising(active, t)

    def pain(self, region: str | None, t: float | None = None) -> None:
        """``cmd/pain``: :meth:`PostureEngine.pain`."""
        self._record("pain", {"region": region, "t": t})
        self.engine.pain(region, t)

    def set_calibrated(self, calibrated: bool) -> None:
        """Calibration state: :meth:`PostureEngine.set_calibrated`."""
        self._record("calibrated", {"calibrated": calibrated})
        self.engine.set_calibrated(calibrated)

    def apply(self, name: str, args: Mapping[str, JsonValue], *, at_batch: int | None = None) -> None:
        """Give a recorded command again (replay)."""
        if name == "snooze":
            minutes, now_t = args.get("minutes"), args.get("now_t")
            self._record(name, args, at_batch)
            self.engine.snooze(None if minutes is None else _num(minutes), _num(now_t))
        elif name == "exercise":
            t = args.get("t")
            self._record(name, args, at_batch)
            self.engine.set_exercising(bool(args.get("active")), None if t is None else _num(t))
        elif name == "pain":
            region, t = args.get("region"), args.get("t")
            self._record(name, args, at_batch)
            self.engine.pain(None if region is None else str(region), None if t is None else _num(t))
        elif name == "calibrated":
            self._record(name, args, at_batch)
            self.engine.set_calibrated(bool(args.get("calibrated")))
        else:
            raise InputError(f"unknown recorded command {name!r}")

    def _record(self, name: str, args: Mapping[str, JsonValue], at_batch: int | None = None) -> None:
        if self.recorder is not None:
            self.recorder.add_command(name, args, at_batch=at_batch)

    def process(self, batch: ImuBatch) -> Step:
        """One received batch: recorded, rounded to the store's precision, then through the pipeline."""
        stored = self.recorder.add_imu(batch) if self.recorder is not None else stored_precision(batch)
        if self.pipeline is None:
            return Step(_EMPTY)
        return self._posture(self.pipeline.process(stored))

    def finish(self) -> tuple[Step, list[Event]]:
        """End of the session: the pipeline's last angles, then the engine's closing events (recorded)."""
        step = self._flush_pipeline()
        closing = self.engine.finish()
        if self.recorder is not None and closing:
            self.recorder.add_events(closing)
        return step, closing

    def _rate(self, placement: Placement) -> float:
        rate = self.settings.nominal_rate_hz.get(placement.value)
        if rate is None:
            raise InputError(f"no nominal sample rate for {placement.value}", advice="put it in the settings")
        return float(rate)

    def _flush_pipeline(self) -> Step:
        if self.pipeline is None:
            return Step(_EMPTY)
        return self._posture(self.pipeline.flush())

    def _posture(self, frame: SpineFrame) -> Step:
        if len(frame) == 0:
            return Step(frame)
        out = self.engine.process(frame)
        if self.recorder is not None:
            self.recorder.add_frame(frame, [str(p) for p in out.labels])
            events = [*out.started, *out.finished]
            if events:
                self.recorder.add_events(events)
        return Step(frame, out)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """A finished replay.

    Attributes:
        session: the derived session (None when not stored).
        settings: the settings used.
        calibrations: the calibrations used, with the arrival index each began at.
        frames: angle instants produced.
        events: events found (closing events included).
    """

    session: SessionInfo | None
    settings: ProcessingSettings
    calibrations: list[tuple[int, RigCalibration]]
    frames: int
    events: list[Event]


def replay(
    store: SessionStore,
    session_id: str,
    *,
    settings: ProcessingSettings | None = None,
    calibration: CalibrationMode = "session",
    neutral: tuple[float, float] | None = None,
    functional: tuple[float, float] | Literal["auto"] | None = "auto",
    record: bool = True,
    progress: bool = True,
) -> ReplayResult:
    """Rerun a recorded session and (by default) store the result as a derived session.

    Args:
        store: the session store.
        session_id: the recording (id or unique prefix).
        settings: settings to use; default: the session's own.
        calibration: "session" (the calibrations the session used, switched where it switched) or
            "recompute" (one calibration from the raw data, used from the first batch).
        neutral: recompute only: still upright window, seconds from the session's first sample;
            default: the stored calibration's neutral window, else the first 10 s.
        functional: recompute only: functional-movement window (seconds from the first sample),
            "auto" or None.
        record: store the result as a derived session.
        progress: a progress bar on a terminal.

    Raises:
        InputError: unknown session, no raw data, no calibration to use, or bad windows.
    """
    info = store.get(session_id)
    raw_info = _raw_session(store, info)
    if raw_info.samples == 0:
        raise InputError(f"session {info.id} has no raw IMU data to replay")
    used = settings or ProcessingSettings.from_json(info.settings)
    placements = tuple(Placement(p) for p in info.placements) or tuple(Placement(p) for _, p in raw_info.sensors)
    used = dataclasses.replace(used, nominal_rate_hz=_complete_rates(store, raw_info, used.nominal_rate_hz))
    if calibration == "session":
        stored = store.read_calibrations(info.id)
        if not stored:
            raise InputError(
                f"session {info.id} has no stored calibration", advice="replay with --calibration recompute"
            )
        calibrations = [(c.from_batch, c.calibration) for c in stored]
        actions: list[_Action] = [(c.from_batch, c.seq, c.calibration) for c in stored]
    else:
        recomputed = _recompute(store, info, raw_info, neutral, functional)
        calibrations = [(0, recomputed)]
        actions = [(0, -1, recomputed)]
    actions.extend((c.at_batch, c.seq, c) for c in store.read_commands(info.id))
    actions.sort(key=lambda a: (a[0], a[1]))

    recorder: SessionRecorder | None = None
    if record:
        replay_note: dict[str, JsonValue] = {"of": info.id, "calibration": calibration}
        recorder = store.start_session(
            info.wearer,
            [p.value for p in placements],
            config_json=info.config,
            started_epoch=info.started,
            clock_offset_s=info.clock_offset_s,
            parent_id=info.id,
            settings={**used.to_json(), "replay": replay_note},
            record_raw=False,
            on_full="block",
        )
    processor = SessionProcessor(used, placements, epoch_offset_s=info.clock_offset_s, recorder=recorder)
    events: list[Event] = []
    frames = 0
    pending = list(actions)
    try:
        batches: Iterable[tuple[int, ImuBatch]] = store.read_imu_indexed(raw_info.id)
        if progress:
            from sensorhub.progress import track

            first = raw_info.first_t or 0.0
            total = max((raw_info.last_t or 0.0) - first, 1e-9)
            batches = track(
                batches, total, lambda item: float(item[1].t[-1]) - first if len(item[1]) else 0.0, "replaying"
            )
        for index, batch in batches:
            while pending and pending[0][0] <= index:
                at, _, action = pending.pop(0)
                if isinstance(action, RigCalibration):
                    step = processor.set_calibration(action, from_batch=at)
                    frames += len(step.frame)
                    events.extend(_events(step))
                else:
                    processor.apply(action.name, action.args, at_batch=at)
            step = processor.process(batch)
            frames += len(step.frame)
            events.extend(_events(step))
        step, closing = processor.finish()
        frames += len(step.frame)
        events.extend(_events(step))
        events.extend(closing)
    except BaseException:
        if recorder is not None:
            recorder.close("interrupted")
        raise
    session = None
    if recorder is not None:
        recorder.close("complete")
        if recorder.error is not None:
            raise recorder.error
        session = store.get(recorder.id)
    events.sort(key=lambda e: e.start_t)
    return ReplayResult(session, used, calibrations, frames, events)


def _num(value: JsonValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"a recorded command has a bad number: {value!r}")
    return float(value)


def _events(step: Step) -> list[Event]:
    return [] if step.posture is None else list(step.posture.finished)


def _raw_session(store: SessionStore, info: SessionInfo) -> SessionInfo:
    seen = {info.id}
    while not info.record_raw and info.parent_id is not None and info.parent_id not in seen:
        info = store.get(info.parent_id)
        seen.add(info.id)
    return info


def _complete_rates(store: SessionStore, raw: SessionInfo, rates: Mapping[str, float]) -> dict[str, float]:
    out = dict(rates)
    missing = {p for _, p in raw.sensors} - set(out)
    if not missing:
        return out
    intervals: dict[str, list[float]] = {}
    for chunk in store.read_imu_chunks(raw.id):
        name = chunk.placement.value
        if name in missing and len(chunk) > 1:
            intervals.setdefault(name, []).extend(np.diff(chunk.t).tolist())
        if all(len(intervals.get(p, [])) >= 500 for p in missing):
            break
    for name in missing:
        values = intervals.get(name)
        if not values:
            raise InputError(f"cannot measure the sample rate of {name}: too few samples")
        out[name] = float(1.0 / np.median(values))
    return out


def _recompute(
    store: SessionStore,
    info: SessionInfo,
    raw: SessionInfo,
    neutral: tuple[float, float] | None,
    functional: tuple[float, float] | Literal["auto"] | None,
) -> RigCalibration:
    series: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for chunk in store.read_imu_chunks(raw.id):
        series.setdefault(chunk.placement.value, []).append(
            (chunk.t, chunk.acc.astype(np.float64), chunk.gyro.astype(np.float64))
        )
    data = {
        p: (np.concatenate([c[0] for c in cs]), np.concatenate([c[1] for c in cs]), np.concatenate([c[2] for c in cs]))
        for p, cs in series.items()
    }
    start = min(float(d[0][0]) for d in data.values())
    if neutral is not None:
        window = (start + neutral[0], start + neutral[1])
    else:
        stored = store.read_calibrations(info.id) if info.record_raw else store.read_calibrations(raw.id)
        if stored:
            first = next(iter(stored[0].calibration.sensors.values()))
            window = first.window
        else:
            window = (start, start + DEFAULT_NEUTRAL_S)
    func: tuple[float, float] | Literal["auto"] | None = functional
    if isinstance(functional, tuple):
        func = (start + functional[0], start + functional[1])
    if not all(math.isfinite(x) for x in window):
        raise InputError("the neutral window must be finite")
    return calibrate_rig(data, neutral=window, functional=func)
