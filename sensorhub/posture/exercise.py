"""The seated cat/camel coach: reps, per-region range of motion, tempo, pain stops, sets, trends.

:class:`ExerciseCoach` is a pure, stateful stage (no I/O, time only from the frames): feed it
:class:`~sensorhub.model.SpineFrame` blocks with :meth:`~ExerciseCoach.process` and it returns a
``"rep"`` event as each rep completes; :meth:`~ExerciseCoach.start` / :meth:`~ExerciseCoach.stop`
open and close a set (``stop`` returns the ``"set"`` event); :meth:`~ExerciseCoach.pain` records a
pain stop, which ends the set and sets the per-region target range of the following sets.
:func:`progress` turns stored :class:`SetSummary` records into per-region trends across days.

How a rep is found (docs/exercise.md has the reasons and the numbers):

1. One *rep signal* carries the bending of the back: ``spine_flexion_deg`` (thoracic + lumbar)
   when the sensors give it, else thoracic + lumbar, else trunk flexion (one sensor).
2. A zigzag with hysteresis turns that signal into turning points: a maximum is confirmed once the
   signal has fallen ``hysteresis_deg`` below it, a minimum once it has risen that much above it.
   Breathing (about 1°), typing jitter and sensor noise never move it that far, so they make no
   turning points. The first turning point after a start is the posture the set starts from.
3. A rep is two consecutive opposite turning points, an arch (minimum) and a round (maximum), in
   either order, at least ``min_rom_deg`` apart and at most ``max_rep_s`` apart. A smaller opposite
   swing between them is a wobble inside the same end position and is skipped.
4. Its window runs from where the signal leaves the starting position to where it gets back:
   the crossings, before the first and after the second turning point, of a level near neutral
   (0°, kept at least a quarter of the rep's span inside its extremes) widened by a tenth of the
   span. That is "start to finish" for a rep from rest and the mid-swing point for reps done back
   to back. The rep is emitted at its end crossing. Range of motion per region is
   max − min of that region's angle over the window; the duration is the window's length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from sensorhub.errors import ConfigError, InputError
from sensorhub.model import Event, FloatArray, JsonValue, SpineFrame

__all__ = [
    "REGIONS",
    "REGION_ALIASES",
    "ExerciseCoach",
    "ExerciseSettings",
    "RegionDeg",
    "SetSummary",
    "progress",
    "resolve_region",
]

#: Regions of the back with a range of motion, as named in the events JSON (DESIGN §6).
REGIONS: Final = ("thoracic", "lumbar", "trunk", "pelvis")

#: SpineFrame field of each region.
REGION_FIELDS: Final = {
    "thoracic": "thoracic_flexion_deg",
    "lumbar": "lumbar_flexion_deg",
    "trunk": "trunk_flexion_deg",
    "pelvis": "pelvis_tilt_deg",
}

#: Other names a pain command may use for a region (docs/exercise.md, "Regions"); ``upper``,
#: ``mid`` and ``lower`` are the values of the MQTT ``cmd/pain`` command.
REGION_ALIASES: Final = {
    "upper": "thoracic",  # near the shoulder blades: the thoracic curve between T2–T4 and T12
    "upper_back": "thoracic",
    "mid": "thoracic",  # T5–T12 lies inside the same sensor pair
    "mid_back": "thoracic",
    "lower": "lumbar",
    "lower_back": "lumbar",
    "upper_thoracic": "trunk",  # the upper-thoracic sensor's own inclination (issue 5's region name)
}

#: The rep's boundary level is 0° (neutral) but never closer than this fraction of the rep's span
#: to either extreme, so reps that never reach neutral still get a mid-swing boundary.
_SPLIT_FRACTION = 0.25
#: The boundary is crossed once the signal is this fraction of the span past the level, so a rest
#: posture a few tenths of a degree off neutral still counts as "back".
_BOUNDARY_FRACTION = 0.10

Mode = Literal["command", "auto"]
SetState = Literal["idle", "command", "auto"]
#: Why a set ended: a stop command, a pain stop, its rep goal, or (auto sets) a pause.
EndedBy = Literal["stop", "pain", "goal", "idle"]


def resolve_region(region: str) -> str:
    """A region key of :data:`REGIONS` for a region name or alias (InputError when unknown)."""
    key = region.strip().lower().replace("-", "_").replace(" ", "_")
    if key in REGIONS:
        return key
    if key in REGION_ALIASES:
        return REGION_ALIASES[key]
    names = ", ".join((*REGIONS, *REGION_ALIASES))
    raise InputError(f"unknown back region {region!r}", advice=f"use one of {names}")


@dataclass(frozen=True, slots=True)
class ExerciseSettings:
    """Settings of the cat/camel coach (units in the names; reasons in docs/exercise.md).

    Attributes:
        min_rep_s: a rep shorter than this is ``too_fast``. 5 s leaves under 1.7 s for each of
            the three phases (into the first end position, across, back): a swing, not the slow,
            attentive movement the stretch asks for; the often-quoted 4 s per cycle of the
            quadruped cat-camel is the floor. Measured as the rep's window (see the module
            docstring), about 0.5–2.5 s shorter than a stopwatch from rest to rest.
        min_rom_deg: smallest swing of the rep signal, arch to round, that counts as a rep.
        hysteresis_deg: reversal of the rep signal that confirms a turning point; above breathing
            (≈ 1°), typing jitter and sensor noise.
        max_rep_s: arch and round further apart than this are not one rep; also the longest a rep
            may wait at its second end position before it is closed.
        target_fraction: after a pain stop, the region's target range = this × the range at which
            it hurt.
        auto_detect: find sets of reps without a start command.
        auto_min_reps: consecutive arch-first reps that open an automatic set.
        auto_min_arch_deg: in auto-detection, the arch must go this far past neutral (extension)...
        auto_min_round_deg: ...and the round this far past neutral (flexion); forward bends, slouches
            and reaches only flex and so never open a set.
        auto_idle_s: an automatic set closes once its last rep has ended and the rep signal has
            not moved ``hysteresis_deg`` from where it stood for this long (a pause to catch breath
            inside a set is shorter, a rest between sets longer); also the longest pause between
            reps that open a set.
    """

    min_rep_s: float = 5.0
    min_rom_deg: float = 10.0
    hysteresis_deg: float = 5.0
    max_rep_s: float = 60.0
    target_fraction: float = 0.9
    auto_detect: bool = False
    auto_min_reps: int = 3
    auto_min_arch_deg: float = 3.0
    auto_min_round_deg: float = 3.0
    auto_idle_s: float = 20.0

    def __post_init__(self) -> None:
        positive = ("min_rep_s", "min_rom_deg", "hysteresis_deg", "max_rep_s", "auto_idle_s")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"must be a positive number, got {value!r}", key=f"exercise.{name}")
        for name in ("auto_min_arch_deg", "auto_min_round_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"must be ≥ 0, got {value!r}", key=f"exercise.{name}")
        if not (0.0 < self.target_fraction <= 1.0):
            raise ConfigError(
                f"must be in (0, 1], got {self.target_fraction!r}",
                key="exercise.target_fraction",
                advice="the target after a pain stop is a fraction of the range that hurt",
            )
        if self.hysteresis_deg > self.min_rom_deg:
            raise ConfigError(
                f"hysteresis_deg ({self.hysteresis_deg:g}) must not exceed min_rom_deg ({self.min_rom_deg:g})",
                key="exercise.hysteresis_deg",
            )
        if self.auto_min_reps < 1:
            raise ConfigError(f"must be ≥ 1, got {self.auto_min_reps!r}", key="exercise.auto_min_reps")


@dataclass(frozen=True, slots=True)
class RegionDeg:
    """One value in degrees per region; None where the sensors cannot give it (or nothing was set)."""

    thoracic: float | None = None
    lumbar: float | None = None
    trunk: float | None = None
    pelvis: float | None = None

    def get(self, region: str) -> float | None:
        """The value of ``region`` (a key of :data:`REGIONS`)."""
        value: float | None = getattr(self, region)
        return value

    def items(self) -> list[tuple[str, float | None]]:
        """(region, value) pairs in :data:`REGIONS` order."""
        return [(r, self.get(r)) for r in REGIONS]

    def to_json(self, ndigits: int = 3) -> dict[str, JsonValue]:
        """``{"thoracic": .., "lumbar": .., "trunk": .., "pelvis": ..}`` with nulls."""
        return {r: None if v is None else round(v, ndigits) for r, v in self.items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, float | None]) -> RegionDeg:
        """From a region → value mapping (missing regions are None)."""
        return cls(**{r: _opt_float(values.get(r)) for r in REGIONS})

    @classmethod
    def from_json(cls, obj: JsonValue) -> RegionDeg:
        """Inverse of :meth:`to_json` (InputError when ``obj`` is not such an object)."""
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise InputError(f"expected a per-region object, got {obj!r}")
        out: dict[str, float | None] = {}
        for r in REGIONS:
            value = obj.get(r)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InputError(f"region {r!r} must be a number or null, got {value!r}")
            out[r] = None if value is None else float(value)
        return cls(**out)


@dataclass(frozen=True, slots=True)
class SetSummary:
    """One finished set, as the session store keeps it and :func:`progress` reads it.

    Attributes:
        start_t: start of the set (s, on the frames' clock; epoch seconds once stored).
        end_t: end of the set (s).
        number: the set's number in its session, from 1.
        mode: "command" (started and stopped by command) or "auto" (detected).
        reps: reps counted.
        too_fast: reps shorter than ``min_rep_s``.
        rom_mean_deg: mean range of motion per region over the reps.
        rom_max_deg: largest range of motion per region.
        rep_s_mean: mean rep duration (s), None without reps; likewise min and max.
        rep_s_min: shortest rep (s).
        rep_s_max: longest rep (s).
        target_deg: target range per region during the set (from earlier pain stops).
        pain_deg: range per region at which a pain stop was made during the set.
        signal: which angle counted the reps ("spine", "thoracic+lumbar", "trunk", ...).
        goal_reps: the rep goal given with the start command, or None.
        ended_by: "stop", "pain", "goal" or "idle" (an automatic set after a pause).
    """

    start_t: float
    end_t: float
    number: int
    mode: str
    reps: int
    too_fast: int
    rom_mean_deg: RegionDeg = field(default_factory=RegionDeg)
    rom_max_deg: RegionDeg = field(default_factory=RegionDeg)
    rep_s_mean: float | None = None
    rep_s_min: float | None = None
    rep_s_max: float | None = None
    target_deg: RegionDeg = field(default_factory=RegionDeg)
    pain_deg: RegionDeg = field(default_factory=RegionDeg)
    signal: str = ""
    goal_reps: int | None = None
    ended_by: str = "stop"

    def event_data(self) -> dict[str, JsonValue]:
        """The ``data`` of this set's ``"set"`` event (everything but the times)."""
        return {
            "set": self.number,
            "mode": self.mode,
            "reps": self.reps,
            # A count here; in a rep event "too_fast" is that rep's flag (DESIGN §6), so another name.
            "too_fast_reps": self.too_fast,
            "rom_mean_deg": self.rom_mean_deg.to_json(),
            "rom_max_deg": self.rom_max_deg.to_json(),
            "rep_s": {"mean": _round(self.rep_s_mean), "min": _round(self.rep_s_min), "max": _round(self.rep_s_max)},
            "target_deg": self.target_deg.to_json(),
            "pain_deg": self.pain_deg.to_json(),
            "signal": self.signal,
            "goal_reps": self.goal_reps,
            "ended_by": self.ended_by,
        }

    def to_json(self) -> dict[str, JsonValue]:
        """JSON object; the same as the set event's events-JSON object without ``"type"``."""
        return {"start_t": round(self.start_t, 4), "end_t": round(self.end_t, 4), **self.event_data()}

    @classmethod
    def from_json(cls, obj: Mapping[str, JsonValue]) -> SetSummary:
        """Inverse of :meth:`to_json`; also reads a set event's events-JSON object."""
        try:
            tempo = obj.get("rep_s") or {}
            if not isinstance(tempo, dict):
                raise TypeError("rep_s must be an object")
            return cls(
                start_t=_req_float(obj["start_t"]),
                end_t=_req_float(obj["end_t"]),
                number=int(_req_float(obj["set"])),
                mode=str(obj.get("mode", "command")),
                reps=int(_req_float(obj["reps"])),
                too_fast=int(_req_float(obj.get("too_fast_reps", 0))),
                rom_mean_deg=RegionDeg.from_json(obj.get("rom_mean_deg")),
                rom_max_deg=RegionDeg.from_json(obj.get("rom_max_deg")),
                rep_s_mean=_opt_float(tempo.get("mean")),
                rep_s_min=_opt_float(tempo.get("min")),
                rep_s_max=_opt_float(tempo.get("max")),
                target_deg=RegionDeg.from_json(obj.get("target_deg")),
                pain_deg=RegionDeg.from_json(obj.get("pain_deg")),
                signal=str(obj.get("signal", "")),
                goal_reps=None if (goal := _opt_float(obj.get("goal_reps"))) is None else int(goal),
                ended_by=str(obj.get("ended_by", "stop")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a cat/camel set summary: {exc}") from exc

    @classmethod
    def from_event(cls, event: Event) -> SetSummary:
        """From a ``"set"`` :class:`~sensorhub.model.Event` of the coach."""
        if event.type != "set" or event.end_t is None:
            raise InputError(f"expected a closed set event, got a {event.type!r} event")
        return cls.from_json(event.to_json())


# -- the rep tracker -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Turn:
    """A confirmed turning point of the rep signal: +1 = round (maximum), −1 = arch (minimum)."""

    kind: int
    value: float
    t: float
    index: int  # absolute sample index in the tracker's buffer


@dataclass(frozen=True, slots=True)
class _Rep:
    """A rep as the tracker found it, before it is numbered inside a set."""

    start_t: float
    end_t: float
    first: int  # kind of the first end position (−1 arch, +1 round)
    rom: RegionDeg
    arch: RegionDeg
    round: RegionDeg
    signal_arch_deg: float
    signal_round_deg: float
    gap_s: float

    @property
    def duration_s(self) -> float:
        return self.end_t - self.start_t


class _RepTracker:
    """Zigzag turning points of the rep signal → reps with windows and per-region ranges.

    Samples are pushed one at a time in time order, so any chunking of the input gives the same
    reps. ``first_kind`` forces the first end position of every rep (auto-detection: arch first).
    """

    def __init__(self, settings: ExerciseSettings, *, first_kind: int | None, keep_s: float) -> None:
        self._h = settings.hysteresis_deg
        self._min_rom = settings.min_rom_deg
        self._max_rep_s = settings.max_rep_s
        self._first_kind = first_kind
        self._keep_s = keep_s
        # Buffer of samples: time, rep signal, region angles (NaN where absent).
        self._t: list[float] = []
        self._x: list[float] = []
        self._r: list[tuple[float, float, float, float]] = []
        self._base = 0  # absolute index of self._t[0]
        self._dir = 0  # 0 = no turning point yet, +1 = rising (tracking a max), −1 = falling
        self._ext_v = math.nan
        self._ext_t = math.nan
        self._ext_i = -1
        self._lo: tuple[float, float, int] | None = None  # running min / max before the first turn
        self._hi: tuple[float, float, int] | None = None
        self._has_start = False
        self._e1: _Turn | None = None
        self._pending: tuple[_Turn, _Turn] | None = None
        self._bound_t = -math.inf  # a rep window never starts before the previous rep's end
        self.last_t = -math.inf

    # -- state queries used by the coach --

    def set_bound(self, t: float) -> None:
        self._bound_t = t

    def in_rep_since(self, t: float, within_s: float) -> bool:
        """Whether a rep has reached its first end position within ``within_s`` before ``t``."""
        first = self._pending[0] if self._pending is not None else self._e1
        return first is not None and t - first.t <= within_s

    def push(self, t: float, x: float, regions: tuple[float, float, float, float]) -> list[_Rep]:
        """Add one sample; return the reps it completes (usually none)."""
        self._t.append(t)
        self._x.append(x)
        self._r.append(regions)
        self.last_t = t
        i = self._base + len(self._t) - 1
        out: list[_Rep] = []
        if x == x:  # not NaN: a gap sample moves nothing
            turn = self._zigzag(t, x, i)
            if turn is not None:
                self._on_turn(turn, out)
            if self._pending is not None:
                e1, e2 = self._pending
                if self._crossed(e1, e2, x):
                    out.append(self._finish(e1, e2, t))
        if self._pending is not None and t - self._pending[1].t > self._max_rep_s:
            e1, e2 = self._pending
            out.append(self._finish(e1, e2, t))
        if len(self._t) >= 512 and t - self._t[0] > 2.0 * self._keep_s:
            self._trim(t - self._keep_s)
        return out

    def flush(self, t_end: float) -> _Rep | None:
        """Close what is open at a stop: a rep waiting for its return, or one held at its second end."""
        if self._pending is not None:
            e1, e2 = self._pending
            return self._finish(e1, e2, min(t_end, self.last_t))
        if self._e1 is None or self._dir != -self._e1.kind or self._ext_i < 0:
            return None
        e2 = _Turn(-self._e1.kind, self._ext_v, self._ext_t, self._ext_i)
        if abs(e2.value - self._e1.value) < self._min_rom:
            return None
        e1, self._e1 = self._e1, None
        return self._finish(e1, e2, min(t_end, self.last_t))

    def partial_window(self, t_end: float) -> tuple[float, float, RegionDeg] | None:
        """Signal span, window start and per-region range since the last rep ended, up to ``t_end``."""
        i0, i1 = self._index_range(self._bound_t, t_end)
        if i1 <= i0:
            return None
        x = np.asarray(self._x[i0:i1], dtype=np.float64)
        if not np.isfinite(x).any():
            return None
        span = float(np.nanmax(x) - np.nanmin(x))
        return span, self._t[i0], self._ranges(i0, i1)

    # -- internals --

    def _zigzag(self, t: float, x: float, i: int) -> _Turn | None:
        h = self._h
        if self._dir == 0:
            if self._hi is None or x > self._hi[0]:
                self._hi = (x, t, i)
            if self._lo is None or x < self._lo[0]:
                self._lo = (x, t, i)
            if x <= self._hi[0] - h:
                turn = _Turn(+1, *self._hi)
            elif x >= self._lo[0] + h:
                turn = _Turn(-1, *self._lo)
            else:
                return None
            self._dir = -turn.kind
            self._ext_v, self._ext_t, self._ext_i = x, t, i
            return turn
        if self._dir > 0:
            if x > self._ext_v:
                self._ext_v, self._ext_t, self._ext_i = x, t, i
                return None
            if x > self._ext_v - h:
                return None
        else:
            if x < self._ext_v:
                self._ext_v, self._ext_t, self._ext_i = x, t, i
                return None
            if x < self._ext_v + h:
                return None
        turn = _Turn(self._dir, self._ext_v, self._ext_t, self._ext_i)
        self._dir = -self._dir
        self._ext_v, self._ext_t, self._ext_i = x, t, i
        return turn

    def _on_turn(self, turn: _Turn, out: list[_Rep]) -> None:
        if not self._has_start:
            self._has_start = True  # the posture the set starts from, not an end position
            return
        if self._pending is not None:
            # The signal turned back before it got home: the rep ends where it turned.
            p1, p2 = self._pending
            out.append(self._finish(p1, p2, turn.t))
        e1 = self._e1
        if e1 is None:
            if self._first_kind is None or turn.kind == self._first_kind:
                self._e1 = turn
            return
        if turn.kind == e1.kind:
            # A small opposite swing was skipped: keep the further of the two end positions
            # (or the newer one when the older is too old to belong to the same rep).
            if turn.t - e1.t > self._max_rep_s or turn.kind * (turn.value - e1.value) > 0:
                self._e1 = turn
            return
        if abs(turn.value - e1.value) < self._min_rom:
            return  # a wobble inside the end position
        if turn.t - e1.t > self._max_rep_s:
            self._e1 = None
            if self._first_kind is None or turn.kind == self._first_kind:
                self._e1 = turn
            return
        self._e1 = None
        self._pending = (e1, turn)
        # The return may already be in the buffer (it can precede the turn's confirmation).
        j0 = turn.index - self._base + 1
        for j in range(j0, len(self._x)):
            xj = self._x[j]
            if xj == xj and self._crossed(e1, turn, xj):
                out.append(self._finish(e1, turn, self._t[j]))
                return

    @staticmethod
    def _level(e1: _Turn, e2: _Turn) -> tuple[float, float]:
        lo, hi = min(e1.value, e2.value), max(e1.value, e2.value)
        span = hi - lo
        level = min(max(0.0, lo + _SPLIT_FRACTION * span), hi - _SPLIT_FRACTION * span)
        return level, _BOUNDARY_FRACTION * span

    def _crossed(self, e1: _Turn, e2: _Turn, x: float) -> bool:
        """Whether ``x`` (after e2) is back on e1's side of the boundary."""
        level, tol = self._level(e1, e2)
        return e2.kind * (x - level) <= tol

    def _finish(self, e1: _Turn, e2: _Turn, end_t: float) -> _Rep:
        self._pending = None
        level, tol = self._level(e1, e2)
        # Start: the last sample before e1 still on e2's side of the boundary, not before the bound.
        i_e1 = e1.index - self._base
        start_t = None
        j_start = 0
        for j in range(i_e1 - 1, -1, -1):
            tj = self._t[j]
            if tj < self._bound_t:
                j_start = j + 1
                break
            xj = self._x[j]
            if xj == xj and e1.kind * (xj - level) <= tol:
                start_t, j_start = tj, j
                break
        if start_t is None:
            j_start = min(j_start, max(i_e1, 0))
            start_t = self._t[j_start] if j_start < len(self._t) else e1.t
        i0, i1 = self._index_range(start_t, end_t)
        arch, rnd = (e1, e2) if e1.kind < 0 else (e2, e1)
        x = np.asarray(self._x[i0:i1], dtype=np.float64)
        dt = np.diff(np.asarray(self._t[i0:i1], dtype=np.float64))
        gap_s = float(np.sum(dt[~(np.isfinite(x[1:]) & np.isfinite(x[:-1]))])) if len(dt) else 0.0
        rep = _Rep(
            start_t=start_t,
            end_t=end_t,
            first=e1.kind,
            rom=self._ranges(i0, i1),
            arch=self._at(arch.index),
            round=self._at(rnd.index),
            signal_arch_deg=arch.value,
            signal_round_deg=rnd.value,
            gap_s=gap_s,
        )
        self._bound_t = end_t
        return rep

    def _index_range(self, t0: float, t1: float) -> tuple[int, int]:
        ts = self._t
        i0 = int(np.searchsorted(ts, t0, side="left")) if ts else 0
        i1 = int(np.searchsorted(ts, t1, side="right")) if ts else 0
        return i0, i1

    def _ranges(self, i0: int, i1: int) -> RegionDeg:
        block = np.asarray(self._r[i0:i1], dtype=np.float64).reshape(-1, len(REGIONS))
        out: dict[str, float | None] = {}
        for k, region in enumerate(REGIONS):
            col = block[:, k]
            col = col[np.isfinite(col)]
            out[region] = float(col.max() - col.min()) if len(col) else None
        return RegionDeg.from_mapping(out)

    def _at(self, index: int) -> RegionDeg:
        j = index - self._base
        if not 0 <= j < len(self._r):
            return RegionDeg()
        values = self._r[j]
        return RegionDeg.from_mapping({r: (v if v == v else None) for r, v in zip(REGIONS, values, strict=True)})

    def _trim(self, keep_from_t: float) -> None:
        # Keep the open rep's samples and everything after the bound a start may need.
        limits = [keep_from_t]
        if self._e1 is not None:
            limits.append(self._e1.t - self._max_rep_s)
        if self._pending is not None:
            limits.append(self._pending[0].t - self._max_rep_s)
        cut_t = min(limits)
        k = int(np.searchsorted(self._t, cut_t, side="left"))
        if k <= 0:
            return
        del self._t[:k], self._x[:k], self._r[:k]
        self._base += k


# -- the coach -------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenSet:
    number: int
    mode: Mode
    start_t: float
    signal: str
    targets: RegionDeg
    goal_reps: int | None = None
    reps: list[_Rep] = field(default_factory=list)
    pain: dict[str, float] = field(default_factory=dict)


class ExerciseCoach:
    """Counts cat/camel reps and measures each region's range of motion (pure, stateful, no I/O).

    Args:
        settings: thresholds and tempo (defaults documented in docs/exercise.md).
        targets: per-region target ranges (deg) carried over from earlier sessions, e.g. from the
            session store; region names or aliases as keys.

    Events (``sensorhub.model.Event``, times on the frames' clock):

    - ``"rep"``: ``rep``, ``set``, ``rom_deg`` (per region, null where the sensors cannot give it),
      ``too_fast``, ``duration_s``, ``arch_deg`` / ``round_deg`` (each region's angle at the arch
      and at the round), ``target_deg`` (per region, null where no pain stop set one),
      ``over_target`` (regions whose range exceeded their target), ``first`` ("arch" | "round"),
      ``gap_s`` (seconds without the rep signal inside the rep), ``signal``.
    - ``"set"``: the :class:`SetSummary` fields (see :meth:`SetSummary.event_data`).
    - ``"pain_stop"``: ``region`` (as asked, or null = all), ``regions`` (where the limit was set),
      ``rom_deg`` (range at the pain stop), ``target_deg`` (the next sets' targets), ``level``
      (0–10 as reported, or null), ``set``, ``rep`` (the rep it belongs to).
    """

    def __init__(self, settings: ExerciseSettings | None = None, *, targets: Mapping[str, float] | None = None) -> None:
        self.settings = settings or ExerciseSettings()
        self._keep_s = 3.0 * self.settings.max_rep_s
        self._targets: dict[str, float] = {}
        for name, value in (targets or {}).items():
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"target for {name!r} must be a positive number of degrees, got {value!r}")
            self._targets[resolve_region(name)] = float(value)
        self._state: SetState = "idle"
        self._set: _OpenSet | None = None
        self._sets_done = 0
        self._summaries: list[SetSummary] = []
        self._available: tuple[str, ...] = ()
        self._signal = ""
        self._tracker = self._new_tracker(first_kind=-1)
        self._start_t = -math.inf
        self._last_rep: _Rep | None = None
        self._candidates: list[_Rep] = []
        # The idle clock of an automatic set runs from the last time the rep signal moved
        # hysteresis_deg away from where it last stood (breathing and sway never do).
        self._anchor_x = math.nan
        self._moved_t = -math.inf

    # -- public state --

    @property
    def active(self) -> bool:
        """Whether a set is open (started by command or detected)."""
        return self._state != "idle"

    @property
    def targets(self) -> RegionDeg:
        """Target range per region for the next set (deg; None = no limit set)."""
        return RegionDeg.from_mapping(self._targets)

    @property
    def sets(self) -> tuple[SetSummary, ...]:
        """Summaries of the sets closed so far, oldest first."""
        return tuple(self._summaries)

    # -- commands --

    def start(self, t: float, *, goal_reps: int | None = None) -> list[Event]:
        """Open a set at ``t`` (the ``cmd/exercise`` start command). Returns no events.

        Frames before ``t`` are not part of the set. With ``goal_reps`` the set closes by itself
        after that many reps. If an automatically detected set is open, it goes on as a commanded
        set (only a command, a pain stop or the goal closes it then); a start while a commanded
        set is open only updates the goal.
        """
        if goal_reps is not None and goal_reps < 1:
            raise InputError(f"a rep goal must be at least 1, got {goal_reps}")
        if self._set is not None:
            self._state = "command"
            self._set.mode = "command"
            self._set.goal_reps = goal_reps if goal_reps is not None else self._set.goal_reps
            return []
        self._tracker = self._new_tracker(first_kind=None)
        self._tracker.set_bound(t)
        self._start_t = t
        self._candidates = []
        self._open_set("command", t).goal_reps = goal_reps
        return []

    def stop(self, t: float) -> list[Event]:
        """Close the open set at ``t``: the last rep if it is still open, then the ``"set"`` event."""
        if self._set is None:
            return []
        out = self._flush(self._set, t)
        out.append(self._close_set(self._set, t, "stop"))
        return out

    def pain(self, region: str | None, t: float, *, level: int | None = None) -> list[Event]:
        """A pain stop at ``t``: the current rep's range (or the last rep's) becomes the user's limit.

        ``region`` names the region that hurt (:data:`REGIONS` or :data:`REGION_ALIASES`, e.g. the
        ``cmd/pain`` values ``upper``, ``mid``, ``lower``); None means all regions; a region the
        sensors cannot measure falls back to all measured regions. From the next set on, the target
        range of each of those regions is ``target_fraction`` × that range. An open set ends here
        (as the ``cmd/pain`` contract says): the rep in progress is closed at ``t`` and counts if it
        reached both ends. Returns ``[rep?, "pain_stop", "set"?]``.
        """
        key = None if region is None else resolve_region(region)
        open_set = self._set
        out = self._flush(open_set, t) if open_set is not None else []
        window = self._pain_window(t)
        regions = [key] if key is not None and key in self._available else list(self._available)
        rom: dict[str, float | None] = {}
        start_t = t
        rep_no: int | None = None
        if window is not None:
            start_t, ranges, rep_no = window
            for r in regions:
                value = ranges.get(r)
                rom[r] = value
                if value is not None and value > 0:
                    self._targets[r] = self.settings.target_fraction * value
                    if open_set is not None:
                        open_set.pain[r] = value
        data: dict[str, JsonValue] = {
            "region": region,
            "regions": list(regions),
            "rom_deg": RegionDeg.from_mapping(rom).to_json(),
            "target_deg": self.targets.to_json(),
            "level": level,
            "set": None if open_set is None else open_set.number,
            "rep": rep_no,
        }
        out.append(Event("pain_stop", start_t, t, data))
        if open_set is not None:
            out.append(self._close_set(open_set, t, "pain"))
        return out

    # -- frames --

    def process(self, frame: SpineFrame) -> list[Event]:
        """Feed a block of spine angles (in time order); returns the rep and set events it completes."""
        if self._state == "idle" and not self.settings.auto_detect:
            return []
        signal = _rep_signal(frame)
        if signal is None or len(frame) == 0:
            return []
        self._signal, x = signal
        self._available = tuple(r for r in REGIONS if getattr(frame, REGION_FIELDS[r]) is not None)
        columns = [_column(frame, r) for r in REGIONS]
        regions = list(zip(*(c.tolist() for c in columns), strict=True))
        out: list[Event] = []
        for t, xi, ri in zip(frame.t.tolist(), x.tolist(), regions, strict=True):
            if t < self._start_t:
                continue
            if self._state == "idle" and not self.settings.auto_detect:
                break  # a rep goal closed the set inside this block
            reps = self._tracker.push(t, xi, ri)
            for rep in reps:
                self._on_rep(rep, out)
            if self._state == "auto":
                if xi == xi and not abs(xi - self._anchor_x) < self.settings.hysteresis_deg:
                    self._anchor_x, self._moved_t = xi, t
                self._maybe_close_auto(t, out)
        return out

    # -- internals --

    def _flush(self, open_set: _OpenSet, t: float) -> list[Event]:
        out: list[Event] = []
        rep = self._tracker.flush(t)
        if rep is not None:
            self._add_rep(open_set, rep, out)
        return out

    def _new_tracker(self, *, first_kind: int | None) -> _RepTracker:
        return _RepTracker(self.settings, first_kind=first_kind, keep_s=self._keep_s)

    def _open_set(self, mode: Mode, start_t: float) -> _OpenSet:
        self._sets_done += 1
        self._state = mode
        self._set = _OpenSet(self._sets_done, mode, start_t, self._signal, self.targets)
        return self._set

    def _on_rep(self, rep: _Rep, out: list[Event]) -> None:
        open_set = self._set
        if open_set is not None:
            self._add_rep(open_set, rep, out)
            if open_set.goal_reps is not None and len(open_set.reps) >= open_set.goal_reps:
                out.append(self._close_set(open_set, rep.end_t, "goal"))
            return
        # Auto-detection: consecutive arch-first reps that go past neutral both ways.
        s = self.settings
        qualifies = rep.signal_arch_deg <= -s.auto_min_arch_deg and rep.signal_round_deg >= s.auto_min_round_deg
        if not qualifies:
            self._candidates = []
            return
        if self._candidates and rep.start_t - self._candidates[-1].end_t > s.auto_idle_s:
            self._candidates = []
        self._candidates.append(rep)
        if len(self._candidates) >= s.auto_min_reps:
            open_set = self._open_set("auto", self._candidates[0].start_t)
            self._anchor_x, self._moved_t = math.nan, -math.inf
            for r in self._candidates:
                self._add_rep(open_set, r, out)
            self._candidates = []

    def _add_rep(self, open_set: _OpenSet, rep: _Rep, out: list[Event]) -> None:
        self._last_rep = rep
        open_set.reps.append(rep)
        if not open_set.signal:
            open_set.signal = self._signal
        targets = open_set.targets
        over = [r for r, v in rep.rom.items() if v is not None and (tgt := targets.get(r)) is not None and v > tgt]
        data: dict[str, JsonValue] = {
            "rep": len(open_set.reps),
            "set": open_set.number,
            "rom_deg": rep.rom.to_json(),
            "too_fast": rep.duration_s < self.settings.min_rep_s,
            "duration_s": round(rep.duration_s, 3),
            "arch_deg": rep.arch.to_json(),
            "round_deg": rep.round.to_json(),
            "target_deg": targets.to_json(),
            "over_target": list(over),
            "first": "arch" if rep.first < 0 else "round",
            "gap_s": round(rep.gap_s, 3),
            "signal": self._signal,
        }
        out.append(Event("rep", rep.start_t, rep.end_t, data))

    def _maybe_close_auto(self, t: float, out: list[Event]) -> None:
        open_set = self._set
        if open_set is None or not open_set.reps or self._tracker.in_rep_since(t, self.settings.max_rep_s):
            return
        last_end = open_set.reps[-1].end_t
        if t - max(last_end, self._moved_t) > self.settings.auto_idle_s:
            out.append(self._close_set(open_set, last_end, "idle"))

    def _close_set(self, open_set: _OpenSet, end_t: float, ended_by: EndedBy) -> Event:
        summary = _summarise(open_set, end_t, self.settings.min_rep_s, ended_by)
        self._summaries.append(summary)
        self._set = None
        self._state = "idle"
        self._start_t = -math.inf
        if self.settings.auto_detect and ended_by != "idle":
            # Watch for the next set from here; what the closed set saw is not a candidate.
            self._tracker = self._new_tracker(first_kind=-1)
            self._tracker.set_bound(end_t)
            self._start_t = end_t
        return Event("set", summary.start_t, summary.end_t, summary.event_data())

    def _pain_window(self, t: float) -> tuple[float, RegionDeg, int | None] | None:
        """(start, per-region range, rep number or None) of the movement the pain stop belongs to.

        The movement since the last rep if it went beyond the hysteresis (a rep that never reached
        its second end), else the last rep.
        """
        open_set = self._set
        done = len(open_set.reps) if open_set is not None else 0
        watching = self._state != "idle" or self.settings.auto_detect
        partial = self._tracker.partial_window(t) if watching else None
        if partial is not None and partial[0] >= self.settings.hysteresis_deg:
            return partial[1], partial[2], None
        last = self._last_rep
        if last is not None and last.end_t <= t:
            return last.start_t, last.rom, (done if open_set is not None and done else None)
        if partial is not None:
            return partial[1], partial[2], None
        return None


def _summarise(open_set: _OpenSet, end_t: float, min_rep_s: float, ended_by: EndedBy) -> SetSummary:
    reps = open_set.reps
    durations = [r.duration_s for r in reps]
    mean: dict[str, float | None] = {}
    best: dict[str, float | None] = {}
    for region in REGIONS:
        values = [v for r in reps if (v := r.rom.get(region)) is not None]
        mean[region] = sum(values) / len(values) if values else None
        best[region] = max(values) if values else None
    return SetSummary(
        start_t=open_set.start_t,
        end_t=max(end_t, open_set.start_t),
        number=open_set.number,
        mode=open_set.mode,
        reps=len(reps),
        too_fast=sum(d < min_rep_s for d in durations),
        rom_mean_deg=RegionDeg.from_mapping(mean),
        rom_max_deg=RegionDeg.from_mapping(best),
        rep_s_mean=sum(durations) / len(durations) if durations else None,
        rep_s_min=min(durations) if durations else None,
        rep_s_max=max(durations) if durations else None,
        target_deg=open_set.targets,
        pain_deg=RegionDeg.from_mapping(open_set.pain),
        signal=open_set.signal,
        goal_reps=open_set.goal_reps,
        ended_by=ended_by,
    )


def _rep_signal(frame: SpineFrame) -> tuple[str, FloatArray] | None:
    """The angle that carries the bending of the back, most direct first."""
    if frame.spine_flexion_deg is not None:
        return "spine", frame.spine_flexion_deg
    if frame.thoracic_flexion_deg is not None and frame.lumbar_flexion_deg is not None:
        return "thoracic+lumbar", frame.thoracic_flexion_deg + frame.lumbar_flexion_deg
    for name in ("trunk", "lumbar", "thoracic"):
        values: FloatArray | None = getattr(frame, REGION_FIELDS[name])
        if values is not None:
            return name, values
    if frame.pelvis_tilt_deg is not None:
        # The pelvis tilts the other way: forward (anterior) in the arch, backward in the round.
        return "-pelvis", -frame.pelvis_tilt_deg
    return None


def _column(frame: SpineFrame, region: str) -> FloatArray:
    values: FloatArray | None = getattr(frame, REGION_FIELDS[region])
    if values is None:
        return np.full(len(frame.t), np.nan)
    return values


# -- trends across sessions ------------------------------------------------------------------


def progress(sets: Sequence[SetSummary], *, utc_offset_s: float = 0.0) -> dict[str, JsonValue]:
    """Per-region range-of-motion trend over days, JSON-ready.

    Reads each set's mean range per region (sets without reps are skipped) and groups sets by
    calendar day (``start_t`` as epoch seconds, shifted by ``utc_offset_s`` for the local day).

    Returns:
        ``{"sets", "reps", "days", "first_t", "last_t", "too_fast_fraction", "regions": {region:
        null | {"first_deg", "last_deg", "change_deg", "best_deg", "best_t", "slope_deg_per_week",
        "sets", "days", "target_deg"}}}`` where first/last are the means of the first and last day,
        best is the best set mean, and the slope is the least-squares line through the daily means
        (null with fewer than two days).
    """
    done = sorted((s for s in sets if s.reps > 0), key=lambda s: s.start_t)
    reps = sum(s.reps for s in done)
    days_all = {_day(s.start_t, utc_offset_s) for s in done}
    out: dict[str, JsonValue] = {
        "sets": len(done),
        "reps": reps,
        "days": len(days_all),
        "first_t": _round(done[0].start_t, 4) if done else None,
        "last_t": _round(done[-1].start_t, 4) if done else None,
        "too_fast_fraction": _round(sum(s.too_fast for s in done) / reps, 4) if reps else None,
    }
    regions: dict[str, JsonValue] = {}
    for region in REGIONS:
        points = [(s, v) for s in done if (v := s.rom_mean_deg.get(region)) is not None]
        if not points:
            regions[region] = None
            continue
        by_day: dict[int, list[float]] = {}
        for s, v in points:
            by_day.setdefault(_day(s.start_t, utc_offset_s), []).append(v)
        days = sorted(by_day)
        daily = [sum(by_day[d]) / len(by_day[d]) for d in days]
        best_set, best = max(points, key=lambda p: p[1])
        slope = None
        if len(days) >= 2:
            slope = float(np.polyfit(np.asarray(days, dtype=np.float64), np.asarray(daily), 1)[0]) * 7.0
        targets = [tgt for s in done if (tgt := s.target_deg.get(region)) is not None]
        regions[region] = {
            "first_deg": _round(daily[0]),
            "last_deg": _round(daily[-1]),
            "change_deg": _round(daily[-1] - daily[0]),
            "best_deg": _round(best),
            "best_t": _round(best_set.start_t, 4),
            "slope_deg_per_week": _round(slope),
            "sets": len(points),
            "days": len(days),
            "target_deg": _round(targets[-1]) if targets else None,
        }
    out["regions"] = regions
    return out


def _day(t: float, utc_offset_s: float) -> int:
    return math.floor((t + utc_offset_s) / 86400.0)


def _round(value: float | None, ndigits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, ndigits)


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number or null, got {value!r}")
    return float(value)


def _req_float(value: object) -> float:
    out = _opt_float(value)
    if out is None:
        raise TypeError("expected a number, got null")
    return out
