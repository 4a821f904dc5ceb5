"""Synthetic SpineFrames and engine runs for the posture tests.

A back is described by a few regional angles (deg, relative to neutral): ``thoracic``, ``lumbar``
and ``pelvis``; trunk = pelvis + lumbar + thoracic and spine = thoracic + lumbar, as the rig forms
them from three sensor inclinations. ``movement`` is SpineFrame's dimensionless movement (0.1 =
sitting still and typing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorhub.model import Event, Placement, SpineFrame
from sensorhub.posture.alerting import BuzzRequest
from sensorhub.posture.engine import PostureEngine

RATE_HZ = 50.0
UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL
ALL = (UT, TL, SA)
REST = {"thoracic": 0.0, "lumbar": 0.0, "pelvis": 0.0, "movement": 0.1}
FIELDS = (
    "thoracic_flexion_deg",
    "lumbar_flexion_deg",
    "trunk_flexion_deg",
    "pelvis_tilt_deg",
    "spine_flexion_deg",
    "movement",
)


def timeline(
    steps: Sequence[tuple[float, dict[str, float]]],
    *,
    ramp_s: float = 1.0,
    placements: Sequence[Placement] = ALL,
    start_t: float = 0.0,
    rate_hz: float = RATE_HZ,
) -> SpineFrame:
    """Hold each step's values (missing keys: the resting back) for its duration, ramping linearly
    into them over ``ramp_s`` at the step's start."""
    total = sum(d for d, _ in steps)
    t = start_t + np.arange(0.0, total - 1e-9, 1.0 / rate_hz)
    values = {k: np.zeros(len(t)) for k in REST}
    prev = dict(REST)
    t0 = start_t
    for duration, target in steps:
        goal = {**REST, **target}
        m = (t >= t0) & (t < t0 + duration)
        w = np.clip((t[m] - t0) / ramp_s, 0.0, 1.0) if ramp_s > 0 else np.ones(m.sum())
        for k in REST:
            values[k][m] = prev[k] + (goal[k] - prev[k]) * w
        prev = goal
        t0 += duration
    th, lu, pe = values["thoracic"], values["lumbar"], values["pelvis"]
    have = set(placements)
    return SpineFrame(
        t,
        thoracic_flexion_deg=th if {UT, TL} <= have else None,
        lumbar_flexion_deg=lu if {TL, SA} <= have else None,
        trunk_flexion_deg=pe + lu + th if UT in have else None,
        pelvis_tilt_deg=pe if SA in have else None,
        spine_flexion_deg=th + lu if {UT, SA} <= have else None,
        movement=values["movement"],
    )


def chunks(frame: SpineFrame, sizes: Sequence[int]) -> list[SpineFrame]:
    """``frame`` cut into consecutive pieces of the given sizes (the rest in the last piece)."""
    out: list[SpineFrame] = []
    i = 0
    for n in [*sizes, len(frame.t)]:
        if i >= len(frame.t):
            break
        sl = slice(i, i + int(n))
        out.append(SpineFrame(frame.t[sl], *(None if (v := getattr(frame, f)) is None else v[sl] for f in FIELDS)))
        i += int(n)
    return out


def random_sizes(n: int, seed: int) -> list[int]:
    """Chunk sizes from single instants up to a few hundred."""
    rng = np.random.default_rng(seed)
    return [1] * 30 + [int(k) for k in rng.integers(1, 400, n // 10 + 10)]


@dataclass
class Run:
    """Everything an engine produced over a run."""

    labels: list[str] = field(default_factory=list)
    started: list[Event] = field(default_factory=list)
    finished: list[Event] = field(default_factory=list)
    buzz: list[BuzzRequest] = field(default_factory=list)
    changes: list[tuple[float, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[Event]:
        """Finished events of one type."""
        return [e for e in self.finished if e.type == kind]


def run(engine: PostureEngine, frames: SpineFrame | Sequence[SpineFrame]) -> Run:
    """Feed frames in order and collect the outputs."""
    out = Run()
    for f in [frames] if isinstance(frames, SpineFrame) else frames:
        o = engine.process(f)
        out.labels.extend(str(p) for p in o.labels)
        out.started.extend(o.started)
        out.finished.extend(o.finished)
        out.buzz.extend(o.buzz)
        out.changes.extend((t, str(p)) for t, p in o.changes)
    return out
