"""The rig: 1–3 sensors' inclinations on a common output grid → spine angles (DESIGN §3).

Each sensor arrives with its own clock and rate. The rig resamples every sensor's sagittal
inclination change onto one uniform grid (``output_rate_hz``) by linear interpolation between the
sensor's two samples that bracket a grid instant, then forms the angles the present sensors allow:

=====================  ===========================================  =========================
angle                  formula                                      needs
=====================  ===========================================  =========================
trunk_flexion_deg      upper_thoracic                               upper_thoracic
pelvis_tilt_deg        sacral                                       sacral
thoracic_flexion_deg   upper_thoracic − thoracolumbar               upper_thoracic, thoracolumbar
lumbar_flexion_deg     thoracolumbar − sacral                       thoracolumbar, sacral
spine_flexion_deg      upper_thoracic − sacral                      upper_thoracic, sacral
=====================  ===========================================  =========================

An angle the sensor set cannot give is ``None`` in the :class:`SpineFrame` (empty in files, null
on MQTT), never a guess. Each sensor's movement (when its pipeline measures it) is resampled the
same way; the frame's ``movement`` is the largest of them (NaN-skipping), None when no sensor
measures it. Within a stream, a grid instant gets NaN for a sensor when:

- the two bracketing samples are more than ``max_gap_s`` apart (a gap: lost notifications, a
  reconnect), or
- the sensor has gone quiet: it has no sample at or after the instant while another sensor is
  already ``sensor_timeout_s`` past it (a stopped sensor never holds the others up longer than
  that).

A grid instant is emitted as soon as every sensor has data at or after it, or has timed out, so
the rig adds no delay beyond waiting for the slowest sensor's next notification. Output depends
only on the samples, not on how they were cut into batches, as long as no sensor lags the others
by more than the timeout.

Memory: per sensor the rig keeps only samples newer than the last emitted instant (bounded by
the timeout), plus one sample before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from sensorhub.errors import InputError
from sensorhub.model import FloatArray, Placement, SensorAngles, SpineFrame
from sensorhub.pipeline import kernel

__all__ = ["Rig", "RigSettings", "available_angles"]

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL


def available_angles(placements: Sequence[Placement]) -> tuple[str, ...]:
    """Names of the angles a set of placements can give (DESIGN §3)."""
    have = set(placements)
    out = []
    if UT in have:
        out.append("trunk_flexion_deg")
    if SA in have:
        out.append("pelvis_tilt_deg")
    if {UT, TL} <= have:
        out.append("thoracic_flexion_deg")
    if {TL, SA} <= have:
        out.append("lumbar_flexion_deg")
    if {UT, SA} <= have:
        out.append("spine_flexion_deg")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RigSettings:
    """How the rig resamples.

    Attributes:
        output_rate_hz: rate of the common grid.
        max_gap_s: bracketing samples further apart than this make the instant a gap (NaN).
        sensor_timeout_s: a sensor that many seconds behind the others is treated as absent.
    """

    output_rate_hz: float = 50.0
    max_gap_s: float = 0.25
    sensor_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.output_rate_hz <= 1000):
            raise InputError(f"output_rate_hz must be in (0, 1000], got {self.output_rate_hz}")
        if not self.max_gap_s > 0 or not self.sensor_timeout_s > 0:
            raise InputError("max_gap_s and sensor_timeout_s must be positive")


class _Track:
    """One sensor's pending samples (times increasing): inclination, and movement (NaN where the
    sensor's pipeline did not measure it)."""

    __slots__ = ("has_movement", "inclination", "movement", "t")

    def __init__(self) -> None:
        self.t = np.empty(0)
        self.inclination = np.empty(0)
        self.movement = np.empty(0)
        self.has_movement = False

    def append(self, t: FloatArray, value: FloatArray, movement: FloatArray | None) -> None:
        last = self.t[-1] if len(self.t) else -math.inf
        if len(t) and (t[0] <= last or (len(t) > 1 and not (t[1:] > t[:-1]).all())):
            # A repeated or out-of-order sample (the estimator gave it NaN) adds nothing new, and
            # interpolation needs increasing times.
            keep = t > np.maximum.accumulate(np.concatenate(([last], t[:-1])))
            t, value = t[keep], value[keep]
            movement = None if movement is None else movement[keep]
        if movement is None:
            movement = np.full(len(t), np.nan)
        else:
            self.has_movement = True
        self.t = np.concatenate((self.t, t))
        self.inclination = np.concatenate((self.inclination, value))
        self.movement = np.concatenate((self.movement, movement))

    @property
    def latest(self) -> float:
        return float(self.t[-1]) if len(self.t) else -math.inf

    def sample(
        self, grid: FloatArray, max_gap_s: float, k: ModuleType | None = None
    ) -> tuple[FloatArray, FloatArray | None]:
        """Linear interpolation of the inclination (and movement) at ``grid``; NaN outside the data
        and across gaps. Then forgets the samples older than the last one before ``grid[-1]`` (it is
        still needed to interpolate). ``k``: the C kernel, which does the same in one call."""
        if k is not None:
            inclination = np.empty(len(grid))
            movement = np.empty(len(grid)) if self.has_movement else None
            drop = k.resample(
                self.t, self.inclination, self.movement if self.has_movement else None, grid, max_gap_s,
                inclination, movement,
            )  # fmt: skip
            if drop is not None:
                self._drop(drop)
                return inclination, movement
        n = len(self.t)
        if n == 0:
            empty = np.full(len(grid), np.nan)
            return empty, empty.copy() if self.has_movement else None
        values = [np.interp(grid, self.t, self.inclination, left=np.nan, right=np.nan)]
        if self.has_movement:
            values.append(np.interp(grid, self.t, self.movement, left=np.nan, right=np.nan))
        if n > 1 and (self.t[-1] - self.t[0] > max_gap_s) and float(np.diff(self.t).max()) > max_gap_s:
            i = np.clip(np.searchsorted(self.t, grid, side="right"), 1, n - 1)
            t0 = self.t[i - 1]
            gap = (self.t[i] - t0 > max_gap_s) & (grid != t0)
            for v in values:
                v[gap] = np.nan
        if len(grid):
            self._drop(int(np.searchsorted(self.t, grid[-1], side="left")) - 1)
        return values[0], values[1] if self.has_movement else None

    def _drop(self, i: int) -> None:
        if i > 0:
            self.t = self.t[i:]
            self.inclination = self.inclination[i:]
            self.movement = self.movement[i:]


class Rig:
    """Streams per-sensor :class:`SensorAngles` into :class:`SpineFrame` blocks on a common grid.

    Args:
        placements: the sensors the wearer has on (1–3, distinct).
        settings: grid rate, gap and timeout rules.
        start_t: first grid instant (s); default: the first sample time seen, rounded up to the grid.
    """

    def __init__(
        self, placements: Sequence[Placement], settings: RigSettings | None = None, *, start_t: float | None = None
    ) -> None:
        if not placements or len(set(placements)) != len(placements) or len(placements) > 3:
            raise InputError("a rig needs 1–3 distinct placements")
        self.placements = tuple(placements)
        self.settings = settings or RigSettings()
        self.angles = available_angles(self.placements)
        self._tracks = {p: _Track() for p in self.placements}
        self._period = 1.0 / self.settings.output_rate_hz
        self._start_t = start_t
        self._first_t = math.inf  # first sample time of any sensor: silent sensors count from there
        self._next_k = 0  # index of the next grid instant to emit
        self._empty = self._frame(np.empty(0), {})
        self.kernel = kernel.kernel  # the C kernel's resampling (sensorhub/pipeline/kernel.py), or None

    def _grid_t(self, k: FloatArray) -> FloatArray:
        assert self._start_t is not None  # set by the first push; internal invariant
        grid: FloatArray = self._start_t + k * self._period
        return grid

    def push(self, angles: SensorAngles) -> None:
        """Add one sensor's new samples (its times must increase)."""
        if angles.placement not in self._tracks:
            raise InputError(f"sensor placement {angles.placement} is not part of this rig {self.placements}")
        if len(angles) == 0:
            return
        if self._start_t is None:
            self._start_t = math.ceil(float(angles.t[0]) / self._period) * self._period
        self._first_t = min(self._first_t, float(angles.t[0]))
        self._tracks[angles.placement].append(angles.t, angles.inclination_deg, angles.movement)

    def process(self, angles: SensorAngles | None = None) -> SpineFrame:
        """Push ``angles`` (if given) and return every grid instant that is now complete."""
        if angles is not None:
            self.push(angles)
        if self._start_t is None:
            return self._empty
        # A sensor that has sent nothing yet counts as just before the first sample of any sensor.
        latest = [max(tr.latest, self._first_t - 1e-9) for tr in self._tracks.values()]
        front = max(latest)
        # An instant is ready when each sensor has reached it, or has fallen a timeout behind.
        timeout = self.settings.sensor_timeout_s
        ready_until = min((lat if front - lat <= timeout else front) for lat in latest)
        if ready_until < self._start_t + self._next_k * self._period:
            return self._empty
        return self._emit_until(ready_until)

    def flush(self) -> SpineFrame:
        """Emit everything up to the newest sample of any sensor (end of a recording)."""
        if self._start_t is None:
            return self._empty
        return self._emit_until(max(tr.latest for tr in self._tracks.values()))

    def _emit_until(self, until_t: float) -> SpineFrame:
        assert self._start_t is not None
        k_last = math.floor((until_t - self._start_t) / self._period) + 1
        while k_last >= self._next_k and self._start_t + k_last * self._period > until_t:
            k_last -= 1  # rounding: never emit an instant after the data that decides it
        if k_last < self._next_k:
            return self._empty
        grid = self._grid_t(np.arange(self._next_k, k_last + 1, dtype=np.float64))
        self._next_k = k_last + 1
        values: dict[Placement, FloatArray] = {}
        movement: FloatArray | None = None
        for p, tr in self._tracks.items():
            values[p], move = tr.sample(grid, self.settings.max_gap_s, self.kernel)
            if move is not None:
                movement = move if movement is None else np.fmax(movement, move)
        return self._frame(grid, values, movement)

    def _frame(
        self, grid: FloatArray, v: dict[Placement, FloatArray], movement: FloatArray | None = None
    ) -> SpineFrame:
        if not v:
            v = {p: np.full(len(grid), np.nan) for p in self.placements}
        ut, tl, sa = v.get(UT), v.get(TL), v.get(SA)
        return SpineFrame(
            t=grid,
            thoracic_flexion_deg=None if ut is None or tl is None else ut - tl,
            lumbar_flexion_deg=None if tl is None or sa is None else tl - sa,
            trunk_flexion_deg=ut,
            pelvis_tilt_deg=sa,
            spine_flexion_deg=None if ut is None or sa is None else ut - sa,
            movement=movement,
        )
