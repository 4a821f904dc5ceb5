"""Posture classes from spine angles, pelvis tilt and movement (DESIGN §3), one per grid instant.

Which angles a rig gives depends on its sensors (DESIGN §3), and so does what the classifier can
tell apart. Every rule is a latch (a Schmitt trigger): it switches on when its condition is met,
off when the opposite condition (past a margin) is met, and holds in between and on NaN, so an
angle hovering at a threshold never makes the label flicker. Latch states carry from one frame
to the next, so a recording classified whole or in any chunks gives the same labels.

Order of precedence (the first that applies wins):

==================  =====================================================================  ================
label               rule                                                                   needs
==================  =====================================================================  ================
``uncalibrated``    the engine has no calibration yet                                      —
``exercising``      the cat/camel coach has a set open, or the exercise command is on      —
``unknown``         an angle the rules read is NaN (a sensor gap), or the sensors give     —
                    no angle the rules can use
``moving``          movement ≥ ``moving_on`` (off below ``moving_off``)                    movement
``standing``        pelvis ≥ ``standing_pelvis_deg`` forward **and** lumbar (or whole       sacral + lumbar
                    spine) ≤ −``standing_extension_deg``: the lordosis of standing          or spine
``leaning_forward``  pelvis ≥ ``hinge_pelvis_deg`` forward: a hip hinge                     sacral
``reclined``        trunk ≤ −``recline_trunk_deg`` (without the upper-thoracic sensor:      upper thoracic
                    pelvis ≤ −``recline_pelvis_deg`` and no segment flexed)                 (or sacral)
``slouched``        a slouch segment ≥ its threshold (off below threshold − hysteresis)    see below
``upright``         none of the above                                                      —
==================  =====================================================================  ================

Slouch segments and their thresholds (:func:`slouch_segments`, the ``[alerts]`` thresholds):
all three sensors: thoracic and lumbar flexion, and whole-spine flexion (upper thoracic − sacral,
i.e. thoracic + lumbar) against the trunk threshold; upper thoracic + thoracolumbar: thoracic
flexion, and trunk flexion in place of the unseen lumbar part; thoracolumbar + sacral: lumbar
flexion; upper thoracic + sacral: whole-spine flexion against the trunk threshold; upper thoracic
alone: trunk flexion. A slumped sitting posture flexes the thoracic and the lumbar spine together,
each by a moderate amount, so their sum is the robust measure of it; the regional thresholds catch
a slouch confined to one region (docs/posture.md).

What each set of sensors cannot tell apart is listed by :func:`ambiguities` (and in
docs/posture.md); the one-sensor case: slouched and leaning forward (both only tilt the upper
back forward), standing and sitting upright (same trunk angle), a lumbar slouch and a thoracic one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.model import FloatArray, Placement, Posture, SpineFrame

__all__ = [
    "SEGMENT_FIELDS",
    "Classification",
    "ClassifierSettings",
    "PostureClassifier",
    "ambiguities",
    "latch",
    "slouch_segments",
]

BoolArray = NDArray[np.bool_]

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL

#: SpineFrame field each slouch segment reads.
SEGMENT_FIELDS: Mapping[str, str] = {
    "thoracic": "thoracic_flexion_deg",
    "lumbar": "lumbar_flexion_deg",
    "trunk": "trunk_flexion_deg",
    "spine": "spine_flexion_deg",
}

#: Labels of the sitting postures (a break reminder counts their time).
SITTING: frozenset[Posture] = frozenset({Posture.UPRIGHT, Posture.SLOUCHED, Posture.LEANING_FORWARD, Posture.RECLINED})


def slouch_segments(placements: Iterable[Placement]) -> tuple[str, ...]:
    """The segments whose flexion counts as slouching with these sensors (see the module docs)."""
    have = set(placements)
    if {UT, TL, SA} <= have:
        return ("thoracic", "lumbar", "spine")
    if {UT, TL} <= have:
        return ("thoracic", "trunk")
    if {TL, SA} <= have:
        return ("lumbar",)
    if {UT, SA} <= have:
        return ("spine",)
    if UT in have:
        return ("trunk",)
    return ()


def ambiguities(placements: Iterable[Placement]) -> tuple[str, ...]:
    """Sentences naming the postures these sensors cannot tell apart (empty for all three)."""
    have = set(placements)
    out: list[str] = []
    if SA not in have:
        if UT in have:
            out.append(
                "slouched vs leaning_forward: without the sacral sensor a hip hinge and a flexed spine both "
                "only tilt the upper back forward, so a long lean towards the desk is treated as a slouch"
            )
        out.append("standing vs upright: standing is recognised by the pelvis tilt and lumbar lordosis")
    if SA in have and TL not in have and UT not in have:
        out.append("slouched vs reclined: the pelvis tilts backward in both; no slouch alerts without a spine angle")
        out.append("standing vs leaning_forward: the pelvis tilts forward in both")
    if have == {UT}:
        out.append("a thoracic slouch vs a lumbar one: only their sum (trunk flexion) is seen")
    if UT in have and SA in have and TL not in have:
        out.append("a thoracic slouch vs a lumbar one: only their sum (spine flexion) is seen")
    if UT not in have:
        out.append("reclined is read from the pelvis alone (no trunk angle)")
    if not slouch_segments(have):
        out.append("slouched: no segment angle to compare with a threshold, so no slouch alerts")
    return tuple(out)


def latch(on: BoolArray, off: BoolArray, state: bool) -> tuple[BoolArray, bool]:
    """A Schmitt trigger over a block: on where ``on``, off where ``off``, else the previous state.

    Args:
        on: (N,) instants that switch the latch on (wins over ``off`` where both hold).
        off: (N,) instants that switch it off.
        state: the state before the block.

    Returns:
        The state at each instant and the state after the block.
    """
    n = len(on)
    if n == 0:
        return np.zeros(0, dtype=bool), state
    decided = on | off
    if not decided.any():
        return np.full(n, state), state
    idx = np.where(decided, np.arange(n), -1)
    np.maximum.accumulate(idx, out=idx)
    out: BoolArray = np.where(idx >= 0, on[np.maximum(idx, 0)], state)
    return out, bool(out[-1])


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    """Thresholds of the classifier (degrees relative to the calibrated neutral; sources in docs/posture.md).

    Attributes:
        thresholds_deg: slouch threshold per segment ("thoracic", "lumbar", "trunk"; "spine" uses
            the trunk threshold unless given).
        hysteresis_deg: a slouch segment switches off this far below its threshold.
        hinge_pelvis_deg: anterior pelvic tilt of a hip hinge (leaning towards the desk).
        recline_trunk_deg: trunk behind neutral that counts as reclined.
        recline_pelvis_deg: posterior pelvic tilt that counts as reclined without a trunk angle.
        standing_pelvis_deg: anterior pelvic tilt of standing, relative to the seated neutral.
        standing_extension_deg: lumbar (or whole-spine) extension of standing.
        posture_margin_deg: the margin by which hinge, recline and standing rules switch off.
        moving_on: movement (dimensionless, SpineFrame.movement) that starts ``moving``.
        moving_off: movement below which ``moving`` ends.
    """

    thresholds_deg: Mapping[str, float]
    hysteresis_deg: float = 3.0
    hinge_pelvis_deg: float = 7.0
    recline_trunk_deg: float = 6.0
    recline_pelvis_deg: float = 10.0
    standing_pelvis_deg: float = 6.0
    standing_extension_deg: float = 5.0
    posture_margin_deg: float = 1.5
    moving_on: float = 0.4
    moving_off: float = 0.3

    def __post_init__(self) -> None:
        for name, value in self.thresholds_deg.items():
            if name not in SEGMENT_FIELDS:
                raise InputError(f"unknown slouch segment {name!r}; choose from {', '.join(SEGMENT_FIELDS)}")
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"slouch threshold for {name} must be a positive number of degrees, got {value!r}")
        if not (0 <= self.hysteresis_deg < min(self.thresholds_deg.values(), default=math.inf)):
            raise InputError("hysteresis_deg must be ≥ 0 and smaller than every slouch threshold")
        if not (0 <= self.moving_off <= self.moving_on):
            raise InputError("moving_off must be between 0 and moving_on")

    @classmethod
    def from_alerts(cls, alerts: AlertsConfig, **overrides: float) -> ClassifierSettings:
        """Slouch thresholds and hysteresis from the ``[alerts]`` config; other fields from ``overrides``."""
        thresholds = {
            "thoracic": alerts.thoracic_threshold_deg,
            "lumbar": alerts.lumbar_threshold_deg,
            "trunk": alerts.trunk_threshold_deg,
            "spine": alerts.trunk_threshold_deg,
        }
        return cls(thresholds, alerts.hysteresis_deg, **overrides)

    def threshold(self, segment: str) -> float:
        """Threshold of one slouch segment (deg)."""
        if segment in self.thresholds_deg:
            return float(self.thresholds_deg[segment])
        if segment == "spine" and "trunk" in self.thresholds_deg:
            return float(self.thresholds_deg["trunk"])
        raise InputError(f"no slouch threshold for segment {segment!r}")


@dataclass(frozen=True, slots=True)
class Classification:
    """Labels of one block of grid instants.

    Attributes:
        labels: (N,) posture per instant.
        flexed: (N,) per slouch segment, whether its latch is on (above threshold, not yet
            below threshold − hysteresis), whatever the label.
    """

    labels: list[Posture]
    flexed: dict[str, list[bool]]


class PostureClassifier:
    """Labels each grid instant of a stream of SpineFrames (stateful, chunk-invariant).

    Args:
        placements: the sensors worn.
        settings: thresholds.
    """

    def __init__(self, placements: Sequence[Placement], settings: ClassifierSettings) -> None:
        self.placements = tuple(placements)
        self.settings = settings
        self.segments = slouch_segments(self.placements)
        for seg in self.segments:
            settings.threshold(seg)  # fail early on a missing threshold
        have = set(self.placements)
        self._has_pelvis = SA in have
        self._has_trunk = UT in have
        self._ext_field = (
            "lumbar_flexion_deg" if {TL, SA} <= have else "spine_flexion_deg" if {UT, SA} <= have else None
        )
        self._state: dict[str, bool] = {
            "moving": False,
            "standing": False,
            "hinge": False,
            "recline": False,
            **{f"seg:{s}": False for s in self.segments},
        }

    def classify(
        self, frame: SpineFrame, *, exercising: BoolArray | None = None, calibrated: bool = True
    ) -> Classification:
        """Labels for ``frame`` (the next block of the stream).

        The rules run instant by instant on Python floats: a live block holds a handful of
        instants, where a dozen numpy calls per latch would cost more than the arithmetic, and a
        whole recording (360,000 instants for two hours) still takes about a second.

        Args:
            frame: spine angles (and movement) on the grid.
            exercising: (N,) instants when exercise mode is on, or None for none.
            calibrated: False labels everything ``uncalibrated`` (latches are not advanced).
        """
        n = len(frame.t)
        s = self.settings
        segments = self.segments
        if not calibrated:
            return Classification([Posture.UNCALIBRATED] * n, {seg: [False] * n for seg in segments})
        nan_column = [math.nan] * n

        def column(name: str | None) -> list[float]:
            values: FloatArray | None = None if name is None else getattr(frame, name)
            return nan_column if values is None else values.tolist()

        seg_values = [column(SEGMENT_FIELDS[seg]) for seg in segments]
        seg_on = [s.threshold(seg) for seg in segments]
        seg_off = [thr - s.hysteresis_deg for thr in seg_on]
        seg_state = [self._state[f"seg:{seg}"] for seg in segments]
        flexed: list[list[bool]] = [[False] * n for _ in segments]
        has_pelvis, has_trunk = self._has_pelvis, self._has_trunk
        pelvis = column("pelvis_tilt_deg") if has_pelvis else nan_column
        trunk = column("trunk_flexion_deg") if has_trunk else nan_column
        ext = column(self._ext_field) if has_pelvis and self._ext_field is not None else None
        movement = None if frame.movement is None else frame.movement.tolist()
        exercise = [False] * n if exercising is None else np.asarray(exercising, dtype=bool).tolist()
        no_rule = not segments and not has_pelvis
        m = s.posture_margin_deg
        move_on, move_off = s.moving_on, s.moving_off
        stand_p, stand_e = s.standing_pelvis_deg, -s.standing_extension_deg
        hinge_on, recline_t, recline_p = s.hinge_pelvis_deg, -s.recline_trunk_deg, -s.recline_pelvis_deg
        moving, standing = self._state["moving"], self._state["standing"]
        hinge, recline = self._state["hinge"], self._state["recline"]
        labels: list[Posture] = []
        for i in range(n):
            # Latches: on at the condition, off past the margin, held in between and on NaN
            # (every comparison with NaN is False).
            unknown = no_rule
            any_flexed = False
            for k in range(len(segments)):
                x = seg_values[k][i]
                if x >= seg_on[k]:
                    seg_state[k] = True
                elif x < seg_off[k]:
                    seg_state[k] = False
                elif x != x:
                    unknown = True
                flexed[k][i] = seg_state[k]
                any_flexed = any_flexed or seg_state[k]
            p = pelvis[i]
            if has_pelvis:
                if p != p:
                    unknown = True
                if ext is not None:
                    e = ext[i]
                    if e != e:
                        unknown = True
                    elif p >= stand_p and e <= stand_e:
                        standing = True
                    elif p < stand_p - m or e > stand_e + m:
                        standing = False
                if p >= hinge_on:
                    hinge = True
                elif p < hinge_on - m:
                    hinge = False
            if has_trunk:
                tr = trunk[i]
                if tr <= recline_t:
                    recline = True
                elif tr > recline_t + m:
                    recline = False
                elif tr != tr:
                    unknown = True
            elif has_pelvis:
                if p <= recline_p and not any_flexed:
                    recline = True
                elif p > recline_p + m or any_flexed:
                    recline = False
            if movement is not None:
                mv = movement[i]
                if mv >= move_on:
                    moving = True
                elif mv < move_off:
                    moving = False
            if exercise[i]:
                labels.append(Posture.EXERCISING)
            elif unknown:
                labels.append(Posture.UNKNOWN)
            elif moving:
                labels.append(Posture.MOVING)
            elif standing:
                labels.append(Posture.STANDING)
            elif hinge:
                labels.append(Posture.LEANING_FORWARD)
            elif recline:
                labels.append(Posture.RECLINED)
            elif any_flexed:
                labels.append(Posture.SLOUCHED)
            else:
                labels.append(Posture.UPRIGHT)
        for k, seg in enumerate(segments):
            self._state[f"seg:{seg}"] = seg_state[k]
        self._state.update(moving=moving, standing=standing, hinge=hinge, recline=recline)
        return Classification(labels, dict(zip(segments, flexed, strict=True)))
