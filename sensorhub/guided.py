"""``sensorhub calibrate``: a guided neutral (+ optional cat/camel) calibration in the terminal.

The flow: say what is about to happen, count down, "sit upright and still" while the sensors
stream (a line per second with the seconds left and how still each sensor is), then, when a
functional movement is wanted, "slowly round and arch your back" for its window; then the same
calibration the service runs (:func:`~sensorhub.pipeline.calibration.calibrate_rig`), its quality
verdict with the figures behind it, and the result saved where ``sensorhub run`` finds it
(:mod:`sensorhub.calibration_store`). A capture with motion in it is refused with what moved and
the wearer gets another attempt (``attempts`` in all) on the data that follow.

The same calibration is available while the service runs, through ``cmd/calibrate``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from sensorhub.calibration_store import calibration_path, save_calibration
from sensorhub.config import Config, FunctionalMode
from sensorhub.errors import CalibrationError, ConfigError, SensorhubError
from sensorhub.model import ImuBatch
from sensorhub.pipeline.calibration import STILL_GYRO_RMS_MAX_DPS, RigCalibration, calibrate_rig

__all__ = ["GuidedOptions", "GuidedResult", "format_verdict", "guided_calibration"]

#: Longest capture (neutral + functional) the flow accepts, as the service (s).
MAX_CAPTURE_S = 120.0
#: Shortest still capture: calibration needs 3 s of samples inside it (as ``pipeline.neutral_duration_s``).
MIN_NEUTRAL_S = 4.0
#: Functional window when the config asks for one (``pipeline.functional = "auto"``) and no
#: length is given: time for three to five slow reps.
DEFAULT_FUNCTIONAL_S = 30.0


@dataclass(frozen=True, slots=True)
class GuidedOptions:
    """Options of ``sensorhub calibrate``.

    Attributes:
        countdown_s: seconds counted down (wall clock) before each attempt.
        neutral_s: still capture length; None = ``pipeline.neutral_duration_s`` of the config.
        functional_s: functional window after it; None = 30 s when the config's ``pipeline.functional``
            is ``auto``, else 0; 0 = none (the nominal mounting axis is used).
        attempts: tries before giving up.
        save: write the result where ``sensorhub run`` loads it.
    """

    countdown_s: int = 3
    neutral_s: float | None = None
    functional_s: float | None = None
    attempts: int = 3
    save: bool = True


@dataclass(frozen=True, slots=True)
class GuidedResult:
    """A finished guided calibration."""

    calibration: RigCalibration
    attempts: int
    path: Path | None


Sleep = Callable[[float], Awaitable[None]]


async def guided_calibration(
    config: Config,
    source: AsyncIterable[ImuBatch],
    options: GuidedOptions,
    *,
    out: TextIO,
    sleep: Sleep = asyncio.sleep,
) -> GuidedResult:
    """Run the guided flow on ``source`` (the config's sensors) and return the calibration.

    Raises:
        ConfigError: impossible options (negative or too long windows, no attempts).
        SensorhubError: every attempt failed (the last reason is in the message), or the source
            ended first.
    """
    neutral_s = config.pipeline.neutral_duration_s if options.neutral_s is None else options.neutral_s
    functional_s = options.functional_s
    if functional_s is None:
        functional_s = DEFAULT_FUNCTIONAL_S if config.pipeline.functional is FunctionalMode.AUTO else 0.0
    if not (neutral_s >= MIN_NEUTRAL_S and functional_s >= 0 and neutral_s + functional_s <= MAX_CAPTURE_S):
        raise ConfigError(
            f"calibration windows must be neutral >= {MIN_NEUTRAL_S:g} s, functional >= 0 s, together at most "
            f"{MAX_CAPTURE_S:g} s; got {neutral_s:g} s and {functional_s:g} s"
        )
    if options.attempts < 1:
        raise ConfigError(f"--attempts must be at least 1, got {options.attempts}")
    placements = [s.placement.value for s in config.sensors]

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(f"Calibrating {config.wearer.id!r}: sensors {', '.join(placements)}.")
    say(
        f"You will sit upright and still for {neutral_s:g} s"
        + (f", then slowly round and arch your back (cat/camel) for {functional_s:g} s." if functional_s else ".")
    )
    stream = aiter(source)
    try:
        return await _flow(config, stream, options, neutral_s, functional_s, say, sleep)
    finally:
        closer = getattr(stream, "aclose", None)  # an async generator: stop the sensors' stream
        if closer is not None:
            await closer()


async def _flow(
    config: Config,
    stream: AsyncIterator[ImuBatch],
    options: GuidedOptions,
    neutral_s: float,
    functional_s: float,
    say: Callable[[str], None],
    sleep: Sleep = asyncio.sleep,
) -> GuidedResult:
    placements = [s.placement.value for s in config.sensors]
    last_error = ""
    for attempt in range(1, options.attempts + 1):
        if attempt > 1:
            say(f"Attempt {attempt} of {options.attempts}.")
        say("Sit upright: back tall, feet flat, hands on your thighs, eyes ahead; breathe normally.")
        for left in range(options.countdown_s, 0, -1):
            say(f"  starting in {left} ...")
            await sleep(1.0)
        try:
            calibration = await _attempt(stream, placements, neutral_s, functional_s, say)
        except CalibrationError as exc:
            last_error = str(exc)
            say(f"✗ {last_error}")
            continue
        say(format_verdict(calibration))
        path = None
        if options.save:
            path = calibration_path(config)
            save_calibration(path, calibration, wearer=config.wearer.id)
            say(f"Saved to {path}; sensorhub run --config starts with it.")
        return GuidedResult(calibration, attempt, path)
    raise SensorhubError(
        f"calibration failed {options.attempts} times; last: {last_error}",
        advice="sit still during the countdown's capture, check the sensors are clipped firmly, then try again",
    )


async def _attempt(
    stream: AsyncIterator[ImuBatch],
    placements: list[str],
    neutral_s: float,
    functional_s: float,
    say: Callable[[str], None],
) -> RigCalibration:
    """Collect one capture from the stream and calibrate on it."""
    batches: dict[str, list[ImuBatch]] = {p: [] for p in placements}
    start: float | None = None
    end = math.inf
    next_report = 0.0
    told_functional = functional_s == 0
    while True:
        try:
            batch = await anext(stream)
        except StopAsyncIteration:
            raise SensorhubError("the sensors stopped streaming before the calibration was complete") from None
        if batch.placement.value not in batches or len(batch) == 0:
            continue
        if start is None:
            start = float(batch.t[0])
            end = start + neutral_s + functional_s
            say("  Now: sit still.")
        batches[batch.placement.value].append(batch)
        reached = min((float(b[-1].t[-1]) if b else -math.inf) for b in batches.values())
        elapsed = reached - start
        if elapsed >= next_report and elapsed < neutral_s:
            moving = _movement_dps(batches, reached - 1.0)
            shown = ", ".join(f"{p} {v:.1f}°/s" for p, v in moving.items())
            flag = "" if max(moving.values(), default=0.0) <= STILL_GYRO_RMS_MAX_DPS else "  ← too much movement"
            say(f"  still: {max(0.0, neutral_s - elapsed):4.0f} s left   motion {shown}{flag}")
            next_report = math.floor(elapsed) + 1.0
        if not told_functional and elapsed >= neutral_s:
            say(f"  Now slowly round your back (cat) and arch it (camel), 3 to 5 times, over {functional_s:g} s.")
            told_functional = True
        if reached >= end:
            break
    assert start is not None
    data = {}
    for placement, parts in batches.items():
        joined = ImuBatch.join(parts)
        data[placement] = (joined.t, joined.acc, joined.gyro)
    neutral = (start, start + neutral_s)
    return calibrate_rig(data, neutral=neutral, functional="auto" if functional_s > 0 else None)


def _movement_dps(batches: dict[str, list[ImuBatch]], since: float) -> dict[str, float]:
    """RMS angular rate of each sensor since ``since`` (°/s, the mean rate removed as a bias)."""
    out: dict[str, float] = {}
    for placement, parts in batches.items():
        recent = [b.gyro[b.t >= since] for b in parts[-50:]]
        gyro = np.concatenate(recent) if recent else np.empty((0, 3))
        if len(gyro) < 2:
            out[placement] = 0.0
            continue
        w = gyro - gyro.mean(axis=0)
        out[placement] = math.degrees(math.sqrt(float(np.mean(np.sum(w * w, axis=1)))))
    return out


def format_verdict(calibration: RigCalibration) -> str:
    """The verdict and the figures behind it, a few lines for the terminal."""
    mark = {"good": "✓", "fair": "~", "poor": "✗"}[calibration.verdict]
    lines = [f"{mark} calibration {calibration.verdict}"]
    for name, cal in calibration.sensors.items():
        q = cal.quality
        parts = [f"still {q.still_gyro_rms_dps:.2f}°/s rms", f"axis {cal.axis_source}"]
        if q.axis_to_nominal_deg is not None:
            parts.append(f"{q.axis_to_nominal_deg:.1f}° from nominal")
        if q.residual_deg is not None:
            parts.append(f"residual {q.residual_deg:.2f}°")
        lines.append(f"  {name}: " + ", ".join(parts))
    if calibration.axis_consistency_deg is not None:
        lines.append(f"  flexion axes agree within {calibration.axis_consistency_deg:.1f}°")
    lines.extend(f"  note: {reason}" for reason in calibration.reasons)
    if calibration.verdict == "poor":
        lines.append("  A poor calibration works but angles will be less accurate; consider calibrating again.")
    return "\n".join(lines)


async def run_guided(config: Config, options: GuidedOptions, *, out: TextIO) -> GuidedResult:
    """``sensorhub calibrate --config``: the configured source, the flow, the source closed after."""
    from sensorhub.runner import make_source

    return await guided_calibration(config, make_source(config), options, out=out)
