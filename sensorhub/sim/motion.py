"""Keyframe motion scripts: posture keyframes joined by C2-smooth transitions, plus overlays.

A :class:`Script` is a list of segments (holds and moves) over the degrees of freedom in
:data:`DOFS`. Moves follow the minimum-jerk profile ``s(τ) = 10τ³ − 15τ⁴ + 6τ⁵`` (Flash & Hogan
1985), whose velocity and acceleration are zero at both ends, so the whole trajectory is C2 and
its second derivative (what accelerometers see) is continuous. Overlays add what a still-sitting
person really does: breathing, slow postural sway, typing micro-movement, gait oscillation while
walking. Every overlay is a deterministic function of time, so any chunking of the time axis
gives the same values.

Units: angles in radians, positions in metres, time in seconds. Scenario authors write degrees
(``Pose`` helpers convert).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from sensorhub.model import FloatArray

__all__ = ["DOFS", "Motion", "Pose", "Script", "Segment", "min_jerk"]

#: Degrees of freedom of the body model, all relative to the neutral seated posture.
#: Angles in rad (flexion +forward, lateral +left, axial +left turn), hip position in m (world).
DOFS = (
    "heading",  # chair swivel / walking direction, about world z
    "pelvis_tilt",  # sagittal, + = top of the pelvis forward (anterior tilt)
    "pelvis_lateral",
    "lumbar_flex",
    "lumbar_lateral",
    "lumbar_axial",
    "thoracic_flex",
    "thoracic_lateral",
    "thoracic_axial",
    "hip_x",
    "hip_y",
    "hip_z",
)
_DOF_INDEX = {name: i for i, name in enumerate(DOFS)}
_LINEAR = {"hip_x", "hip_y", "hip_z"}

#: Hip-joint height above the floor when seated (m); typical office chair seat height ~0.45 m.
SEATED_HIP_Z_M = 0.50
#: Hip-joint height when standing (m), for an adult of ~1.75 m.
STANDING_HIP_Z_M = 0.92


def min_jerk(tau: FloatArray) -> FloatArray:
    """Minimum-jerk blend 0→1 for τ in [0, 1] (clipped outside)."""
    x = np.clip(tau, 0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


@dataclass(frozen=True, slots=True)
class Pose:
    """A posture keyframe: values for some DOFs (angles in degrees, positions in metres)."""

    values: Mapping[str, float]

    def __post_init__(self) -> None:
        unknown = set(self.values) - set(DOFS)
        if unknown:
            raise ValueError(f"unknown DOFs {sorted(unknown)}; known: {DOFS}")

    def vector(self, base: FloatArray) -> FloatArray:
        """This pose applied over ``base`` (a full DOF vector in rad/m)."""
        out = base.copy()
        for name, value in self.values.items():
            out[_DOF_INDEX[name]] = value if name in _LINEAR else math.radians(value)
        return out


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a script: a hold (start == end) or a move between two DOF vectors."""

    t0: float
    t1: float
    start: FloatArray
    end: FloatArray
    label: str  # posture label after the midpoint of a move; the label of a hold
    label_before: str  # posture label before the midpoint of a move (== label for holds)
    typing: bool = False
    walking: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    """A ground-truth event window recorded by a script (slouch, rep, set, activity ...)."""

    type: str
    start_t: float
    end_t: float
    data: Mapping[str, object] = field(default_factory=dict)


class Script:
    """Builder of a motion script, used by the scenarios.

    Example:
        >>> s = Script()
        >>> s.hold(10.0, "upright")
        >>> s.move({"lumbar_flex": 15, "thoracic_flex": 10, "pelvis_tilt": -6}, 4.0, "slouched")
    """

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.marks: list[Mark] = []
        self.t = 0.0
        self.current = np.zeros(len(DOFS))
        self.current[_DOF_INDEX["hip_z"]] = SEATED_HIP_Z_M
        self.label = "upright"

    @property
    def seated_base(self) -> FloatArray:
        """The neutral seated DOF vector at the current heading and hip position."""
        base = np.zeros(len(DOFS))
        for name in ("heading", "hip_x", "hip_y"):
            base[_DOF_INDEX[name]] = self.current[_DOF_INDEX[name]]
        base[_DOF_INDEX["hip_z"]] = self.current[_DOF_INDEX["hip_z"]]
        return base

    def value(self, dof: str) -> float:
        """Current value of one DOF (rad or m)."""
        return float(self.current[_DOF_INDEX[dof]])

    def hold(self, duration_s: float, label: str | None = None, *, typing: bool = False) -> None:
        """Stay in the current pose."""
        if duration_s <= 0:
            return
        lab = label or self.label
        self.segments.append(Segment(self.t, self.t + duration_s, self.current, self.current, lab, lab, typing=typing))
        self.t += duration_s
        self.label = lab

    def move(
        self,
        pose: Mapping[str, float],
        duration_s: float,
        label: str | None = None,
        *,
        relative_to_current: bool = False,
        typing: bool = False,
        walking: bool = False,
    ) -> None:
        """Move with a minimum-jerk profile to ``pose``.

        Args:
            pose: DOF values (deg / m). Unnamed DOFs go back to neutral (0), except heading and the
                hip position, which are kept; with ``relative_to_current`` unnamed DOFs are kept.
            duration_s: transition time.
            label: posture label of the target (taken at the move's midpoint); default: unchanged.
            typing: typing micro-movement overlay during the move.
            walking: gait overlay during the move.
        """
        base = self.current if relative_to_current else self.seated_base
        target = Pose(pose).vector(base)
        lab = label or self.label
        self.segments.append(
            Segment(self.t, self.t + duration_s, self.current, target, lab, self.label, typing=typing, walking=walking)
        )
        self.t += duration_s
        self.current = target
        self.label = lab

    def mark(self, type_: str, start_t: float, end_t: float | None = None, **data: object) -> None:
        """Record a ground-truth event window (``end_t`` defaults to now)."""
        self.marks.append(Mark(type_, start_t, self.t if end_t is None else end_t, dict(data)))

    def build(self, seed: int, *, overlays: bool = True) -> Motion:
        """Freeze the script into an evaluable :class:`Motion` (``overlays``: breathing, sway, typing, gait)."""
        if not self.segments:
            raise ValueError("empty script")
        return Motion(tuple(self.segments), tuple(self.marks), seed, overlays=overlays)


@dataclass(frozen=True, slots=True)
class _Tone:
    """One sinusoid of an overlay: amplitude (rad or m), frequency (Hz), phase (rad)."""

    dof: int
    amplitude: float
    freq_hz: float
    phase: float


class Motion:
    """A frozen script, evaluable at any times: DOF values (N, len(DOFS)) and labels."""

    def __init__(
        self, segments: tuple[Segment, ...], marks: tuple[Mark, ...], seed: int, *, overlays: bool = True
    ) -> None:
        self.segments = segments
        self.marks = marks
        self.duration_s = segments[-1].t1
        self._t0 = np.array([s.t0 for s in segments])
        self._t1 = np.array([s.t1 for s in segments])
        self._start = np.stack([s.start for s in segments])
        self._end = np.stack([s.end for s in segments])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA7ED]))
        self._breathing, self._sway, self._typing = _overlay_tones(rng) if overlays else ((), (), ())
        self._typing_windows = _windows([(s.t0, s.t1) for s in segments if s.typing and overlays])
        self._walking_windows = _windows([(s.t0, s.t1) for s in segments if s.walking and overlays])

    def dofs(self, t: FloatArray) -> FloatArray:
        """DOF values at times ``t`` (s): (N, len(DOFS)), rad and m."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.clip(np.searchsorted(self._t1, t, side="right"), 0, len(self.segments) - 1)
        t0 = self._t0[idx]
        span = np.maximum(self._t1[idx] - t0, 1e-9)
        blend = min_jerk((t - t0) / span)[:, None]
        out = self._start[idx] + (self._end[idx] - self._start[idx]) * blend
        _add_tones(out, t, self._breathing, 1.0)
        _add_tones(out, t, self._sway, 1.0)
        if self._typing_windows.size:
            _add_tones(out, t, self._typing, _gate(t, self._typing_windows, ramp_s=0.5))
        if self._walking_windows.size:
            _add_gait(out, t, _gate(t, self._walking_windows, ramp_s=1.0))
        return out

    def labels(self, t: FloatArray) -> list[str]:
        """Posture label at each time (the target's label from a move's midpoint on)."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.clip(np.searchsorted(self._t1, t, side="right"), 0, len(self.segments) - 1)
        mid = (self._t0[idx] + self._t1[idx]) / 2.0
        return [
            self.segments[i].label if tt >= m else self.segments[i].label_before
            for i, tt, m in zip(idx.tolist(), t.tolist(), mid.tolist(), strict=True)
        ]


def _windows(pairs: list[tuple[float, float]]) -> FloatArray:
    """Merge touching [t0, t1] windows into an (M, 2) array."""
    merged: list[list[float]] = []
    for t0, t1 in sorted(pairs):
        if merged and t0 <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], t1)
        else:
            merged.append([t0, t1])
    return np.array(merged, dtype=np.float64).reshape(-1, 2)


def _gate(t: FloatArray, windows: FloatArray, ramp_s: float) -> FloatArray:
    """Smooth 0..1 gate: 1 inside the windows, minimum-jerk ramps of ``ramp_s`` inside their edges."""
    gate = np.zeros_like(t)
    for t0, t1 in windows:
        ramp = min(ramp_s, (t1 - t0) / 2.0)
        up = min_jerk((t - t0) / ramp)
        down = min_jerk((t1 - t) / ramp)
        gate = np.maximum(gate, np.minimum(up, down))
    return gate


def _add_tones(out: FloatArray, t: FloatArray, tones: tuple[_Tone, ...], gain: FloatArray | float) -> None:
    for tone in tones:
        out[:, tone.dof] += gain * tone.amplitude * np.sin(2.0 * np.pi * tone.freq_hz * t + tone.phase)


def _overlay_tones(rng: np.random.Generator) -> tuple[tuple[_Tone, ...], tuple[_Tone, ...], tuple[_Tone, ...]]:
    """Breathing, postural sway and typing micro-movement as sums of seeded sinusoids."""
    d = _DOF_INDEX
    deg = math.radians
    # Quiet breathing: 12–18 breaths/min; the thoracic spine extends slightly on inhalation
    # (~0.5–1° sagittal excursion of the upper trunk in seated subjects).
    f_breath = rng.uniform(0.2, 0.3)
    breathing = (
        _Tone(d["thoracic_flex"], deg(rng.uniform(0.3, 0.5)), f_breath, rng.uniform(0, 2 * np.pi)),
        _Tone(d["lumbar_flex"], deg(rng.uniform(0.05, 0.15)), f_breath, rng.uniform(0, 2 * np.pi)),
    )
    # Seated postural sway: slow (0.01–0.1 Hz), a few tenths of a degree.
    sway = tuple(
        _Tone(d[name], deg(rng.uniform(0.1, 0.3)), rng.uniform(0.01, 0.1), rng.uniform(0, 2 * np.pi))
        for name in ("pelvis_tilt", "thoracic_flex", "pelvis_lateral", "heading")
    )
    # Typing: small 0.5–3 Hz trunk jitter from arm work (tenths of a degree, ~1 mm).
    typing = tuple(
        _Tone(d[name], amp, rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi))
        for name, amp in (
            ("thoracic_flex", deg(0.3)),
            ("thoracic_axial", deg(0.5)),
            ("thoracic_lateral", deg(0.2)),
            ("thoracic_flex", deg(0.15)),
            ("hip_x", 0.001),
        )
    )
    return breathing, sway, typing


def _add_gait(out: FloatArray, t: FloatArray, gate: FloatArray) -> None:
    """Walking: step frequency ~1.8 Hz (stride 0.9 Hz), pelvis bounce, sway, rotation and obliquity.

    Amplitudes from normal-gait kinematics: vertical pelvic excursion ~2–5 cm per step, lateral
    ~2–4 cm per stride, pelvic rotation ±4°, obliquity ±3°, thoracic counter-rotation ±3°.
    """
    d = _DOF_INDEX
    stride = 2.0 * np.pi * 0.9 * t
    heading = out[:, d["heading"]]
    lateral = 0.02 * np.sin(stride) * gate
    out[:, d["hip_z"]] += 0.02 * np.cos(2.0 * stride) * gate
    out[:, d["hip_x"]] += -np.sin(heading) * lateral
    out[:, d["hip_y"]] += np.cos(heading) * lateral
    out[:, d["pelvis_lateral"]] += math.radians(3.0) * np.sin(stride) * gate
    out[:, d["lumbar_axial"]] += math.radians(4.0) * np.sin(stride + 0.3) * gate
    out[:, d["thoracic_axial"]] += -math.radians(7.0) * np.sin(stride + 0.3) * gate
    out[:, d["thoracic_flex"]] += math.radians(1.0) * np.sin(2.0 * stride) * gate
