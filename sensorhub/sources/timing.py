"""Per-sample host times and gap records for one sensor stream (DESIGN §3).

A :class:`SampleTimer` (one per sensor) is fed every notification's decoded samples with the host
time the notification arrived. It turns what the profile's clock kind gives into one *device
time* per sample, maps those onto the host clock with :class:`~sensorhub.sources.clock.DeviceClockMapper`
(drift-corrected lower envelope), and reports the samples that never arrived as
:class:`SampleGap` records — counted from the counter, never guessed from arrival times, except
where the profile has no counter (then the estimate says so: ``exact=False``).

Clock kinds (``Profile.clock``):

``device_time``
    Device time = the sample's ``sensor_time_s``, unwrapped when the device's timestamp wraps
    (``time_wrap_s``, e.g. a uint32 µs clock: 4294.967296 s). The counter, where the profile
    has one, only finds gaps. Without a counter (Polar PMD, Movesense) a gap is a hole in device
    time: the whole sample periods in it, ``round(hole · rate) − 1``, cause ``device_time`` (or
    ``reconnect``), exact while the device's rate error adds up to less than half a period over the
    hole. A hole longer than the host time that passed (the device's clock was set or reset) is
    estimated from host time instead (cause ``restart``, not exact).
``counter``
    Device time = unwrapped counter / ``nominal_rate_hz``. The real rate differs from the
    nominal one by the crystal's error; the mapper's rate estimate absorbs it, so the counter
    needs no calibration.
``host_rate_model``
    No counter, no time. Device time = running sample index / ``nominal_rate_hz``, the index
    counting samples *received*. The mapper's rate estimate absorbs the real rate error (up to
    its ±20 % clamp). Limits: a lost notification is invisible in the data and shifts every
    later sample's device time by the samples it held. It is detected from the residual
    ``arrival − mapped time`` of the stream's notifications: lost samples make every later
    notification arrive ``k / rate`` later than the model expects, a step in the *lower envelope*
    of the residual. The timer keeps the residual's minimum per 2 s block (blocks of device
    time, as the mapper does); when two consecutive blocks both sit more than
    ``max(0.5 / rate, 3 ms)`` above the block before them and agree within half that threshold,
    it reports ``SampleGap(cause="rate_model", exact=False, missing=round(step · rate))`` and
    advances the index, so the samples after the detection are on time again. Bounds: detection
    after 2–3 blocks (4–6 s), during which samples are mapped up to ``k / rate`` late (less as
    the mapper's envelope absorbs the step); only after the mapper's acquisition
    (``acquire_s`` + 2 blocks); a step smaller than the threshold (e.g. one sample at > 300 Hz)
    or one coinciding with a lasting change in link latency is not seen. Losses longer than
    ``reanchor_s`` (0.5 s) make the mapper re-anchor instead: the time base is right again after
    the re-anchor, the gap is reported as an estimate.

Counters (``counter_bits`` = 8, 16, 32 …, ``samples_per_count`` > 1 for a packet counter
expanded by the decoder into ``count · samples_per_count + index``) wrap at
``M = 2**counter_bits · samples_per_count``. Unwrapping:

* within a connection, when less than a quarter of a wrap has passed on the host since the
  previous notification: the forward distance ``(seq − expected) mod M``; below ``M / 2`` it is
  an exact gap (cause ``"counter"``), above it the counter went back: a device restart;
* after :meth:`SampleTimer.reset` (a reconnect) or a long silence: the value ≡ seq (mod M)
  nearest to where host time says the counter should be. Within ``reanchor_s + 1 % · silence``
  of it the gap is exact (cause ``"reconnect"``/``"counter"``); further away the device
  restarted (cause ``"restart"``, the number of missing samples estimated from host time —
  or counted exactly from device time when a ``device_time`` stream's clock ran on across the
  restart, as the open profile's does when a start command restarts its counter). When
  that tolerance reaches ``M / 2`` (a narrow counter after a long silence) the counter cannot
  tell and the gap is estimated (``exact=False``).

A restart starts a new counter *epoch*: the device time of a ``counter`` stream is placed
:data:`RESTART_STEP_S` before the previous one, which the mapper takes as a device reset and
re-anchors on, keeping its rate estimate (``DeviceClockMapper`` step 4). Gap and restart counts
are in :attr:`SampleTimer.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from sensorhub.errors import InputError
from sensorhub.profiles.base import ImuSample
from sensorhub.sources.clock import ClockParams, DeviceClockMapper

__all__ = [
    "RESTART_STEP_S",
    "ClockKind",
    "SampleGap",
    "SampleTimer",
    "TimedSamples",
    "TimerStats",
    "TimingSpec",
]

ClockKind = Literal["device_time", "counter", "host_rate_model"]
GapCause = Literal["counter", "reconnect", "restart", "rate_model", "device_time"]

#: Device-time step that starts a new counter epoch (far beyond the mapper's ``reanchor_s``).
RESTART_STEP_S: Final = 1.0e6
#: Relative error allowed when host time predicts where a counter should be after a silence.
_SILENCE_RATE_TOLERANCE: Final = 0.01
#: Rate-model drop detection: residual-block threshold floor, seconds.
_DROP_THRESHOLD_FLOOR_S: Final = 0.003


@dataclass(frozen=True, slots=True)
class TimingSpec:
    """How one sensor's samples are timed.

    Attributes:
        kind: the profile's clock kind.
        nominal_rate_hz: the configured sample rate.
        counter_bits: width of the device's counter (8, 16, 32 …), None when it has none or it
            never wraps (reported unwrapped).
        samples_per_count: samples per counter step (a packet counter), 1 for a sample counter.
        time_wrap_s: period of the device's timestamp (uint32 µs: ``2**32 / 1e6``), None when it
            does not wrap.
    """

    kind: ClockKind
    nominal_rate_hz: float
    counter_bits: int | None = None
    samples_per_count: int = 1
    time_wrap_s: float | None = None

    def __post_init__(self) -> None:
        problems = {
            "kind": self.kind in ("device_time", "counter", "host_rate_model"),
            "nominal_rate_hz": math.isfinite(self.nominal_rate_hz) and self.nominal_rate_hz > 0,
            "counter_bits": self.counter_bits is None or 1 <= self.counter_bits <= 64,
            "samples_per_count": self.samples_per_count >= 1,
            "time_wrap_s": self.time_wrap_s is None or (math.isfinite(self.time_wrap_s) and self.time_wrap_s > 0),
        }
        for name, ok in problems.items():
            if not ok:
                raise InputError(
                    f"timing parameter {name}={getattr(self, name)!r} is out of range",
                    advice="see TimingSpec in sensorhub/sources/timing.py",
                )

    @property
    def counter_modulus(self) -> int | None:
        """Where the per-sample counter wraps, or None."""
        if self.counter_bits is None:
            return None
        return (1 << self.counter_bits) * self.samples_per_count


@dataclass(frozen=True, slots=True)
class SampleGap:
    """Samples the device took that never reached the host.

    Attributes:
        missing: number of missing samples.
        exact: counted from the device's counter (True) or estimated from host time (False).
        cause: ``counter`` (lost in a connection), ``reconnect`` (while disconnected),
            ``restart`` (the device restarted its counter; count estimated, or exact from a
            device clock that ran on), ``device_time`` (no counter: a hole in device time within
            a connection) or ``rate_model``
            (no counter: inferred from the arrival residual, see the module docstring).
        first_seq: unwrapped counter of the first missing sample, None without a counter.
        host_t_before: host time of the last sample before the gap (None: nothing before).
        host_t_after: host time of the first sample after the gap.
    """

    missing: int
    exact: bool
    cause: GapCause
    first_seq: int | None
    host_t_before: float | None
    host_t_after: float


@dataclass(frozen=True, slots=True)
class TimedSamples:
    """One notification's samples, timed.

    Attributes:
        host_t: (N,) float64 host time of each sample, seconds.
        device_t: (N,) float64 device time used for the mapping, seconds (unwrapped).
        seq: (N,) int64 unwrapped counter, or None without a counter.
        gaps: gaps that end at this notification (and rate-model drops detected at it).
    """

    host_t: NDArray[np.float64]
    device_t: NDArray[np.float64]
    seq: NDArray[np.int64] | None
    gaps: tuple[SampleGap, ...] = ()


@dataclass(slots=True)
class TimerStats:
    """What a timer has seen."""

    notifications: int = 0
    samples: int = 0
    gaps: int = 0
    missing_samples: int = 0  # exact and estimated
    restarts: int = 0  # counter epochs started after the first
    glitches: int = 0  # a counter or time going back inside one notification (clamped)
    reconnects: int = 0


@dataclass(slots=True)
class _DropMonitor:
    """Lower envelope of arrival − mapped time per device-time block (host_rate_model only)."""

    block_s: float
    start_x_s: float
    block: int = -1
    cur_min_s: float = math.inf
    closed: list[float] = field(default_factory=list)  # last three block minima


class SampleTimer:
    """Host times and gap records for one sensor stream; see the module docstring."""

    def __init__(self, spec: TimingSpec, clock: ClockParams | DeviceClockMapper | None = None) -> None:
        """Create a timer with no stream yet.

        Args:
            spec: the clock kind, nominal rate and counter/timestamp widths.
            clock: mapper tuning, or a mapper to use (e.g. to share its statistics).
        """
        self.spec = spec
        self.mapper = clock if isinstance(clock, DeviceClockMapper) else DeviceClockMapper(clock)
        self.stats = TimerStats()
        self._modulus = spec.counter_modulus
        self._rate = spec.nominal_rate_hz
        self._period_s = 1.0 / spec.nominal_rate_hz
        self._started = False
        self._reconnected = False
        self._last_arrival_s = 0.0
        self._last_host_s: float | None = None
        self._last_seq: int | None = None  # unwrapped counter of the last sample (this epoch)
        self._epoch_offset_s = 0.0  # counter kind: device-time offset of the current epoch
        self._time_wraps = 0
        self._last_device_s = 0.0
        self._index = 0  # host_rate_model: index of the next sample
        threshold_s = max(0.5 * self._period_s, _DROP_THRESHOLD_FLOOR_S)
        self._drop_threshold_s = threshold_s
        p = self.mapper.params
        self._monitor = _DropMonitor(block_s=p.block_s, start_x_s=p.acquire_s + 2 * p.block_s)
        self._monitor_origin_s: float | None = None
        self._mapper_resets_seen = 0

    # -- public -------------------------------------------------------------------------------

    def reset(self) -> None:
        """The link was lost and is back: the next notification is unwrapped against host time.

        The mapper (its offset and rate) is kept: the device clock usually ran on meanwhile.
        """
        if self._started:
            self._reconnected = True
            self.stats.reconnects += 1

    def process(self, samples: Sequence[ImuSample], arrival_t: float) -> TimedSamples:
        """Time one notification's IMU samples (in the order the decoder gave them).

        Raises:
            InputError: no samples, or a sample lacks what the clock kind needs.
        """
        times = [s.sensor_time_s for s in samples]
        seqs = [s.seq for s in samples]
        need_time = self.spec.kind == "device_time"
        need_seq = self.spec.kind == "counter"
        if (need_time and None in times) or (need_seq and None in seqs):
            raise InputError(
                f"a {self.spec.kind} stream needs {'sensor_time_s' if need_time else 'seq'} on every sample",
                advice="check the profile's clock kind against its decoder",
            )
        time_arr = np.array(times, dtype=np.float64) if need_time else None
        seq_arr = np.array(seqs, dtype=np.int64) if self._modulus is not None and None not in seqs and seqs else None
        if need_seq and seq_arr is None:
            seq_arr = np.array(seqs, dtype=np.int64)
        return self.process_arrays(len(samples), arrival_t, sensor_time_s=time_arr, seq=seq_arr)

    def process_arrays(
        self,
        n: int,
        arrival_t: float,
        *,
        sensor_time_s: NDArray[np.float64] | None = None,
        seq: NDArray[np.int64] | None = None,
    ) -> TimedSamples:
        """Time one notification of ``n`` samples given as arrays (the fast path of :meth:`process`).

        Args:
            n: number of samples in the notification.
            arrival_t: host time the notification arrived, seconds.
            sensor_time_s: (n,) device times as decoded (wrapping), required for ``device_time``.
            seq: (n,) counters as decoded (wrapping), required for ``counter``; optional for
                ``device_time`` (gap detection); ignored for ``host_rate_model``.

        Raises:
            InputError: ``n < 1``, arrays of the wrong length, a missing array or arrival time.
        """
        kind = self.spec.kind
        if n < 1 or not math.isfinite(arrival_t):
            raise InputError("a notification needs at least one sample and a finite arrival time")
        if kind == "device_time" and sensor_time_s is None:
            raise InputError("a device_time stream needs sensor_time_s")
        if kind == "counter" and seq is None:
            raise InputError("a counter stream needs seq")
        for name, arr in (("sensor_time_s", sensor_time_s), ("seq", seq)):
            if arr is not None and len(arr) != n:
                raise InputError(f"{name} has {len(arr)} values for {n} samples")

        elapsed_s = arrival_t - self._last_arrival_s if self._started else 0.0
        host_before = self._last_host_s
        gaps: list[tuple[int, bool, GapCause, int | None]] = []  # missing, exact, cause, first_seq
        device_t: NDArray[np.float64] | None = None
        if sensor_time_s is not None and kind == "device_time":
            device_t = self._unwrap_time(sensor_time_s.tolist(), elapsed_s)
        unwrapped: list[int] | None = None
        if seq is not None and self._modulus is not None and kind != "host_rate_model":
            first_t = float(device_t[0]) if device_t is not None else None
            unwrapped = self._unwrap_counter(seq.tolist(), elapsed_s, gaps, first_t)
        elif seq is not None and self._modulus is None and kind != "host_rate_model":
            unwrapped = [int(v) for v in seq.tolist()]
            if self._last_seq is not None and unwrapped[0] > self._last_seq + 1:
                gaps.append((unwrapped[0] - self._last_seq - 1, True, self._gap_cause(), self._last_seq + 1))
            self._last_seq = unwrapped[-1]
        elif device_t is not None and self._started:
            # No counter: the samples missing are the whole sample periods in the hole of device
            # time, when host time agrees the device could have run that long; a device clock that
            # leapt forward (set, or reset) instead leaves host time to estimate the count.
            hole_s = float(device_t[0]) - self._last_device_s
            missing = round(hole_s * self._rate) - 1
            tolerance_s = self.mapper.params.reanchor_s + _SILENCE_RATE_TOLERANCE * elapsed_s
            if missing > 0 and hole_s <= elapsed_s / self.mapper.rate_scale + tolerance_s:
                gaps.append((missing, True, "reconnect" if self._reconnected else "device_time", None))
            elif missing > 0:
                gaps.append((round(self._expected_missing(elapsed_s, n)), False, "restart", None))

        if device_t is None and unwrapped is not None and kind == "counter":
            device_t = np.array(unwrapped, dtype=np.float64) * self._period_s + self._epoch_offset_s
        elif device_t is None:
            device_t = self._rate_model_times(n, elapsed_s, gaps)
        self._last_device_s = float(device_t[-1])

        host_t = self.mapper.map(device_t, arrival_t)
        if kind == "host_rate_model":
            self._watch_residual(float(device_t[-1]), arrival_t - float(host_t[-1]), gaps)

        self._started = True
        self._reconnected = False
        self._last_arrival_s = arrival_t
        self._last_host_s = float(host_t[-1])
        self.stats.notifications += 1
        self.stats.samples += n
        records = tuple(
            SampleGap(missing, exact, cause, first, host_before, float(host_t[0]))
            for missing, exact, cause, first in gaps
            if missing > 0
        )
        self.stats.gaps += len(records)
        self.stats.missing_samples += sum(g.missing for g in records)
        seq_out = np.array(unwrapped, dtype=np.int64) if unwrapped is not None else None
        return TimedSamples(host_t=host_t, device_t=device_t, seq=seq_out, gaps=records)

    # -- counters -----------------------------------------------------------------------------

    def _gap_cause(self) -> GapCause:
        return "reconnect" if self._reconnected else "counter"

    def _expected_missing(self, elapsed_s: float, n: int) -> float:
        """Samples host time says were taken between the last notification and this one's first."""
        return max(0.0, elapsed_s / self.mapper.rate_scale * self._rate - n)

    def _unwrap_counter(
        self,
        raw: list[int],
        elapsed_s: float,
        gaps: list[tuple[int, bool, GapCause, int | None]],
        first_t: float | None = None,
    ) -> list[int]:
        modulus = self._modulus or 1 << 64
        first = raw[0] % modulus
        last = self._last_seq
        if last is None:
            u0 = first
        elif not (self._reconnected or elapsed_s * self._rate >= modulus / 4):
            # Within a connection: the forward distance; BLE delivers in order, so a counter
            # more than half a wrap ahead went back (a restart), it did not leap forward.
            expected = last + 1
            forward = (first - expected) % modulus
            if forward < modulus / 2:
                u0 = expected + forward
                gaps.append((forward, True, "counter", expected))
            else:
                u0 = self._restart(first, elapsed_s, len(raw), gaps, first_t)
        else:
            # After a reconnect or a long silence: the wrap count host time points at.
            expected = last + 1
            predicted = expected + self._expected_missing(elapsed_s, len(raw))
            tolerance = (self.mapper.params.reanchor_s + _SILENCE_RATE_TOLERANCE * elapsed_s) * self._rate
            u0 = first + round((predicted - first) / modulus) * modulus
            if tolerance >= modulus / 2:
                # The counter cannot tell how many wraps passed: the host's estimate, on the
                # counter's residue, and said to be an estimate.
                while u0 < expected:
                    u0 += modulus
                gaps.append((u0 - expected, False, self._gap_cause(), expected))
            elif u0 < expected or abs(u0 - predicted) > tolerance:
                u0 = self._restart(first, elapsed_s, len(raw), gaps, first_t)
            else:
                gaps.append((u0 - expected, True, self._gap_cause(), expected))
        out = [u0]
        for value in raw[1:]:
            step = (value - out[-1]) % modulus
            if 0 < step < modulus / 2:
                if step > 1:
                    gaps.append((step - 1, True, "counter", out[-1] + 1))
                out.append(out[-1] + step)
            else:
                self.stats.glitches += 1
                out.append(out[-1] + 1)
        self._last_seq = out[-1]
        return out

    def _restart(
        self,
        first: int,
        elapsed_s: float,
        n: int,
        gaps: list[tuple[int, bool, GapCause, int | None]],
        first_t: float | None = None,
    ) -> int:
        """A new counter epoch starting at ``first``; returns its unwrapped value.

        The samples missed are counted from device time where the device's clock ran on across
        the restart (a ``device_time`` stream whose counter restarts on a start command, e.g. the
        open profile after a reconnect): the hole in device time is a whole number of sample
        periods, exact. Otherwise (the clock restarted too, or the stream has none) host time
        estimates it.
        """
        self.stats.restarts += 1
        if first_t is not None and self._started:
            hole_s = first_t - self._last_device_s
            tolerance_s = self.mapper.params.reanchor_s + _SILENCE_RATE_TOLERANCE * elapsed_s
            if hole_s > 0 and abs(hole_s - elapsed_s / self.mapper.rate_scale) <= tolerance_s:
                gaps.append((max(0, round(hole_s * self._rate) - 1), True, "restart", None))
                return first
        gaps.append((round(self._expected_missing(elapsed_s, n)), False, "restart", None))
        if self.spec.kind == "counter":
            # Device time steps far back, which the mapper re-anchors on (keeping its rate).
            self._epoch_offset_s = self._last_device_s - RESTART_STEP_S - first * self._period_s
        return first

    # -- device time --------------------------------------------------------------------------

    def _unwrap_time(self, raw: list[float], elapsed_s: float) -> NDArray[np.float64]:
        wrap = self.spec.time_wrap_s
        if wrap is None:
            out = np.array(raw, dtype=np.float64)
        else:
            if self._started:
                # The wrap count nearest to where host time says the device clock is; host time
                # is off by the latency (< 1 s) against a wrap of minutes to days.
                predicted = self._last_device_s + elapsed_s / self.mapper.rate_scale
                self._time_wraps = round((predicted - raw[0]) / wrap)
            else:
                self._time_wraps = 0
            base = self._time_wraps * wrap
            values = [base + raw[0]]
            for value in raw[1:]:
                step = (value - values[-1]) % wrap
                values.append(values[-1] + (step if step < wrap / 2 else step - wrap))
            out = np.array(values, dtype=np.float64)
        if not bool(np.all(out[1:] >= out[:-1])):
            self.stats.glitches += 1
            np.maximum.accumulate(out, out=out)
        return out

    # -- rate model ---------------------------------------------------------------------------

    def _rate_model_times(
        self, n: int, elapsed_s: float, gaps: list[tuple[int, bool, GapCause, int | None]]
    ) -> NDArray[np.float64]:
        if self._reconnected:
            missing = round(self._expected_missing(elapsed_s, n))
            gaps.append((missing, False, "reconnect", None))
            self._index += missing
            self._reset_monitor()
        device_t = (self._index + np.arange(n, dtype=np.float64)) * self._period_s
        self._index += n
        return device_t

    def _reset_monitor(self) -> None:
        m = self._monitor
        m.block = -1
        m.cur_min_s = math.inf
        m.closed.clear()
        self._monitor_origin_s = None

    def _watch_residual(
        self, device_last_s: float, residual_s: float, gaps: list[tuple[int, bool, GapCause, int | None]]
    ) -> None:
        """Lower envelope of the arrival residual per block; a lasting step is a lost notification."""
        m = self._monitor
        if self.mapper.resets != self._mapper_resets_seen:
            # The mapper re-anchored (e.g. on a loss longer than reanchor_s): a new baseline.
            self._mapper_resets_seen = self.mapper.resets
            self._reset_monitor()
        if self._monitor_origin_s is None:
            self._monitor_origin_s = device_last_s
        x_s = device_last_s - self._monitor_origin_s
        if x_s < m.start_x_s:
            return
        block = int(x_s // m.block_s)
        if block == m.block:
            m.cur_min_s = min(m.cur_min_s, residual_s)
            return
        if m.block >= 0:
            m.closed.append(m.cur_min_s)
            del m.closed[:-3]
        m.block = block
        m.cur_min_s = residual_s
        if len(m.closed) < 3:
            return
        before, first, second = m.closed
        threshold = self._drop_threshold_s
        step_s = 0.5 * (first + second) - before
        if first - before > threshold and second - before > threshold and abs(second - first) < 0.5 * threshold:
            missing = round(step_s * self._rate)
            if missing > 0:
                gaps.append((missing, False, "rate_model", None))
                self._index += missing
                m.closed = [before]  # the advanced index brings the residual back to `before`
