"""Named scenarios of the simulated wearer, as motion scripts with ground-truth marks.

Every scenario starts with a still, upright neutral period (the calibration capture) and, unless
``functional="none"``, a functional movement: slow seated forward bends or cat/camel reps, from
which calibration finds each sensor's left–right axis. Parameters (depths, durations, angles) are
drawn from the seed, so several seeds give several different people and days; the order of
activities is fixed so that each scenario always contains what it promises.

Poses are in degrees relative to the neutral seated posture (see ``sensorhub.sim.motion.DOFS``).
Typical seated values: slouching = posterior pelvic tilt 5–10° with lumbar flexion 10–20° and
thoracic flexion 5–15° (e.g. O'Sullivan et al. 2006, Caneiro et al. 2010); a hip hinge towards the
desk = pelvis 15–25° forward with the spine near neutral.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from sensorhub.sim.motion import SEATED_HIP_Z_M, STANDING_HIP_Z_M, Script

__all__ = ["SCENARIOS", "Functional", "build_script"]

Functional = Literal["bends", "cat_camel", "none"]
ScenarioBuilder = Callable[[Script, np.random.Generator], None]

NEUTRAL_S = 12.0

#: Full-range seated cat/camel poses (deg): arch = extension ("C"), round = flexion ("reverse C").
ARCH = {"pelvis_tilt": 12.0, "lumbar_flex": -15.0, "thoracic_flex": -12.0}
ROUND = {"pelvis_tilt": -12.0, "lumbar_flex": 25.0, "thoracic_flex": 22.0}


def _scaled(pose: dict[str, float], k: float) -> dict[str, float]:
    return {name: value * k for name, value in pose.items()}


def _neutral(s: Script) -> None:
    s.hold(NEUTRAL_S, "upright")
    s.mark("neutral", 0.0)


def _functional(s: Script, rng: np.random.Generator, kind: Functional) -> None:
    if kind == "none":
        return
    t0 = s.t
    if kind == "bends":
        for _ in range(3):
            depth = rng.uniform(0.8, 1.2)
            s.move(
                {"pelvis_tilt": 15 * depth, "lumbar_flex": 18 * depth, "thoracic_flex": 12 * depth},
                rng.uniform(2.5, 3.5),
                "moving",
            )
            s.hold(rng.uniform(0.5, 1.5))
            s.move({}, rng.uniform(2.5, 3.5), "upright")
            s.hold(rng.uniform(1.0, 2.0))
    else:
        for _ in range(3):
            _rep(s, rng, 0.6, mark=False)
    s.mark("functional", t0, movement=kind)
    s.hold(3.0, "upright")


def _rep(s: Script, rng: np.random.Generator, scale: float, *, fast: bool = False, mark: bool = True) -> None:
    """One cat/camel rep: neutral → arch → round → neutral (slow unless ``fast``)."""
    t0 = s.t
    k = 0.25 if fast else 1.0
    s.move(_scaled(ARCH, scale * rng.uniform(0.9, 1.1)), k * rng.uniform(3.0, 4.0), "exercising")
    s.hold(k * rng.uniform(0.8, 1.5))
    s.move(_scaled(ROUND, scale * rng.uniform(0.9, 1.1)), k * rng.uniform(4.5, 5.5))
    s.hold(k * rng.uniform(0.8, 1.5))
    s.move({}, k * rng.uniform(3.0, 4.0))
    if mark:
        s.mark("rep", t0, too_fast=fast)


def _slouch(s: Script, rng: np.random.Generator, depth: str, hold_s: float, *, typing: bool = True) -> None:
    """A slouch episode: slow drift into it, a hold (typing), a quick correction."""
    depth_k = {"mild": 0.5, "moderate": 0.8, "deep": 1.1}[depth]
    pose = {
        "pelvis_tilt": -9.0 * depth_k * rng.uniform(0.8, 1.2),
        "lumbar_flex": 18.0 * depth_k * rng.uniform(0.8, 1.2),
        "thoracic_flex": 14.0 * depth_k * rng.uniform(0.8, 1.2),
        "heading": np.degrees(s.value("heading")),
    }
    onset = rng.uniform(5.0, 20.0)
    start = s.t + onset / 2.0
    s.move(pose, onset, "slouched", typing=typing)
    s.hold(hold_s, typing=typing)
    correction = rng.uniform(1.5, 3.5)
    s.move({"heading": np.degrees(s.value("heading"))}, correction, "upright", typing=typing)
    s.mark("slouch", start, s.t - correction / 2.0, depth=depth)


def _type(s: Script, rng: np.random.Generator, lo: float, hi: float) -> None:
    s.hold(rng.uniform(lo, hi), "upright", typing=True)


def _swivel(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    turn = rng.choice([-1.0, 1.0]) * rng.uniform(20.0, 70.0)
    heading = np.degrees(s.value("heading")) + turn
    s.move({"heading": heading}, rng.uniform(1.2, 3.0))
    s.hold(rng.uniform(3.0, 10.0))
    s.mark("activity", t0, activity="swivel", turn_deg=round(float(turn), 1))


def _lean_forward(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    heading = np.degrees(s.value("heading"))
    pose = {"pelvis_tilt": rng.uniform(15.0, 25.0), "lumbar_flex": rng.uniform(0.0, 3.0), "heading": heading}
    s.move(pose, rng.uniform(1.5, 3.0), "leaning_forward")
    s.hold(rng.uniform(20.0, 60.0), typing=True)
    s.move({"heading": heading}, rng.uniform(1.5, 3.0), "upright")
    s.mark("activity", t0, activity="lean_forward")


def _recline(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    heading = np.degrees(s.value("heading"))
    pose = {"pelvis_tilt": -rng.uniform(12.0, 20.0), "lumbar_flex": rng.uniform(2.0, 5.0), "heading": heading}
    s.move(pose, rng.uniform(2.0, 4.0), "reclined")
    s.hold(rng.uniform(30.0, 90.0))
    s.move({"heading": heading}, rng.uniform(2.0, 3.0), "upright")
    s.mark("activity", t0, activity="recline")


def _reach(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    side = float(rng.choice([-1.0, 1.0]))
    heading = np.degrees(s.value("heading"))
    pose = {
        "pelvis_lateral": 5.0 * side,
        "lumbar_lateral": 6.0 * side,
        "thoracic_lateral": 14.0 * side,
        "thoracic_axial": 25.0 * side,
        "thoracic_flex": 5.0,
        "heading": heading,
    }
    s.move(pose, rng.uniform(1.2, 2.0), "moving")
    s.hold(rng.uniform(0.5, 1.5))
    s.move({"heading": heading}, rng.uniform(1.2, 2.0), "upright")
    s.mark("activity", t0, activity="reach")


def _stand_up(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    x, y = s.value("hip_x"), s.value("hip_y")
    h = s.value("heading")
    fwd = np.array([np.cos(h), np.sin(h)])
    lean = {"pelvis_tilt": 35.0, "lumbar_flex": 10.0, "thoracic_flex": 5.0, "heading": np.degrees(h)}
    s.move({**lean, "hip_x": x + 0.06 * fwd[0], "hip_y": y + 0.06 * fwd[1], "hip_z": SEATED_HIP_Z_M}, 1.2, "moving")
    standing = {
        "pelvis_tilt": 12.0,
        "lumbar_flex": -10.0,
        "heading": np.degrees(h),
        "hip_x": x + 0.15 * fwd[0],
        "hip_y": y + 0.15 * fwd[1],
        "hip_z": STANDING_HIP_Z_M,
    }
    s.move(standing, rng.uniform(1.3, 1.8), "standing")
    s.mark("activity", t0, activity="stand_up")


def _sit_down(s: Script, rng: np.random.Generator, seat_xy: tuple[float, float]) -> None:
    t0 = s.t
    h = s.value("heading")
    fwd = np.array([np.cos(h), np.sin(h)])
    x, y = seat_xy
    lean = {
        "pelvis_tilt": 35.0,
        "lumbar_flex": 10.0,
        "thoracic_flex": 5.0,
        "heading": np.degrees(h),
        "hip_x": x + 0.06 * fwd[0],
        "hip_y": y + 0.06 * fwd[1],
        "hip_z": SEATED_HIP_Z_M + 0.05,
    }
    s.move(lean, rng.uniform(1.3, 1.8), "moving")
    s.move({"heading": np.degrees(h), "hip_x": x, "hip_y": y, "hip_z": SEATED_HIP_Z_M}, 1.2, "upright")
    s.mark("activity", t0, activity="sit_down")


def _walk(s: Script, rng: np.random.Generator, distance_m: float) -> None:
    t0 = s.t
    h = s.value("heading")
    x, y = s.value("hip_x"), s.value("hip_y")
    duration = distance_m / rng.uniform(0.9, 1.2) * 1.3  # min-jerk peak speed is 1.875× the mean
    pose = {
        "pelvis_tilt": 12.0,
        "lumbar_flex": -10.0,
        "heading": np.degrees(h),
        "hip_x": x + distance_m * np.cos(h),
        "hip_y": y + distance_m * np.sin(h),
        "hip_z": STANDING_HIP_Z_M,
    }
    s.move(pose, duration, "moving", walking=True)
    s.mark("activity", t0, activity="walk")


def _turn_standing(s: Script, degrees: float, duration_s: float) -> None:
    pose = {
        "pelvis_tilt": 12.0,
        "lumbar_flex": -10.0,
        "heading": np.degrees(s.value("heading")) + degrees,
        "hip_x": s.value("hip_x"),
        "hip_y": s.value("hip_y"),
        "hip_z": STANDING_HIP_Z_M,
    }
    s.move(pose, duration_s, "moving", walking=True)


def _pick_up(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    heading = np.degrees(s.value("heading"))
    side = float(rng.choice([-1.0, 1.0]))
    pose = {
        "pelvis_tilt": rng.uniform(40.0, 50.0),
        "lumbar_flex": rng.uniform(30.0, 40.0),
        "thoracic_flex": rng.uniform(15.0, 25.0),
        "thoracic_lateral": 8.0 * side,
        "thoracic_axial": 10.0 * side,
        "heading": heading,
    }
    s.move(pose, rng.uniform(1.8, 2.5), "moving")
    s.hold(rng.uniform(0.8, 1.5))
    s.move({"heading": heading}, rng.uniform(1.8, 2.5), "upright")
    s.mark("activity", t0, activity="pick_up")


def _elbows(s: Script, rng: np.random.Generator) -> None:
    t0 = s.t
    heading = np.degrees(s.value("heading"))
    pose = {"pelvis_tilt": 15.0, "lumbar_flex": rng.uniform(8.0, 14.0), "thoracic_flex": rng.uniform(10.0, 18.0)}
    s.move({**pose, "heading": heading}, rng.uniform(1.5, 2.5), "leaning_forward")
    s.hold(rng.uniform(20.0, 40.0))
    s.move({"heading": heading}, rng.uniform(1.5, 2.5), "upright")
    s.mark("activity", t0, activity="elbows")


def desk_session(s: Script, rng: np.random.Generator) -> None:
    """20 min at the desk: typing, five slouches (one too short to alert), swivels, hinges, recline, reach."""
    plan: list[Callable[[], None]] = [
        lambda: _type(s, rng, 40, 80),
        lambda: _slouch(s, rng, "mild", rng.uniform(60, 120)),
        lambda: _swivel(s, rng),
        lambda: _type(s, rng, 30, 60),
        lambda: _lean_forward(s, rng),
        lambda: _type(s, rng, 20, 40),
        lambda: _slouch(s, rng, "moderate", rng.uniform(10, 15)),  # shorter than any sensible dwell
        lambda: _reach(s, rng),
        lambda: _type(s, rng, 30, 60),
        lambda: _slouch(s, rng, "deep", rng.uniform(90, 180)),
        lambda: _swivel(s, rng),
        lambda: _recline(s, rng),
        lambda: _type(s, rng, 30, 60),
        lambda: _swivel(s, rng),
        lambda: _slouch(s, rng, "moderate", rng.uniform(60, 120)),
        lambda: _reach(s, rng),
        lambda: _type(s, rng, 20, 40),
        lambda: _lean_forward(s, rng),
        lambda: _slouch(s, rng, "deep", rng.uniform(40, 90)),
        lambda: _swivel(s, rng),
    ]
    for step in plan:
        step()
    while s.t < 1200.0:
        _type(s, rng, 20, 40)
        if s.t < 1180.0:
            _swivel(s, rng)


def cat_camel(s: Script, rng: np.random.Generator) -> None:
    """Two seated cat/camel sets, slow with growing range, one pause inside the first set, one fast rep."""
    _type(s, rng, 20, 30)
    t_set = s.t
    scales = np.linspace(0.5, 0.8, 5)
    for i, k in enumerate(scales):
        _rep(s, rng, float(k))
        if i == 2:
            s.hold(rng.uniform(10.0, 15.0), "exercising")  # the pause: catching breath mid-set
    s.mark("set", t_set, reps=len(scales))
    s.hold(rng.uniform(20.0, 30.0), "upright")
    t_set = s.t
    scales2 = np.linspace(0.8, 1.0, 5)
    for i, k in enumerate(scales2):
        _rep(s, rng, float(k), fast=(i == 3))
    s.mark("set", t_set, reps=len(scales2))
    _type(s, rng, 30, 40)


def long_sitting(s: Script, rng: np.random.Generator) -> None:
    """2 h mostly still typing, an occasional slouch and swivel: exposes gyro bias drift."""
    end = 7200.0
    while end - s.t > 900.0:
        s.hold(rng.uniform(400.0, min(900.0, end - s.t - 500.0)), "upright", typing=True)
        choice = rng.integers(0, 3)
        if choice == 0:
            _slouch(s, rng, str(rng.choice(["mild", "moderate", "deep"])), rng.uniform(60, 180))
        elif choice == 1:
            _swivel(s, rng)
        else:
            _slouch(s, rng, "moderate", rng.uniform(120, 240))
    s.hold(end - s.t, "upright", typing=True)


def confounders(s: Script, rng: np.random.Generator) -> None:
    """Standing up, walking, sitting down, leaning on elbows, picking something off the floor."""
    _type(s, rng, 20, 30)
    seat = (s.value("hip_x"), s.value("hip_y"))
    _stand_up(s, rng)
    s.hold(rng.uniform(5.0, 10.0), "standing")
    _walk(s, rng, rng.uniform(4.0, 6.0))
    t_turn = s.t
    _turn_standing(s, 180.0, rng.uniform(2.0, 3.0))
    s.mark("activity", t_turn, activity="turn")
    s.hold(rng.uniform(2.0, 4.0), "standing")
    back = float(np.hypot(s.value("hip_x") - seat[0], s.value("hip_y") - seat[1])) - 0.15
    _walk(s, rng, back)
    _turn_standing(s, 180.0, rng.uniform(2.0, 3.0))
    s.hold(rng.uniform(2.0, 4.0), "standing")
    _sit_down(s, rng, seat)
    _type(s, rng, 20, 40)
    _elbows(s, rng)
    _type(s, rng, 20, 30)
    _pick_up(s, rng)
    _type(s, rng, 20, 30)
    _swivel(s, rng)
    _pick_up(s, rng)
    _type(s, rng, 20, 30)
    seat = (s.value("hip_x"), s.value("hip_y"))
    _stand_up(s, rng)
    s.hold(rng.uniform(20.0, 40.0), "standing")
    _sit_down(s, rng, seat)
    _type(s, rng, 30, 40)


def demo(s: Script, rng: np.random.Generator) -> None:
    """6 min of ``desk_session`` condensed for ``sensorhub demo``: two slouches long enough to alert,
    the confounders that must not (swivel, leaning to the desk, reaching), and one cat/camel set
    with a rushed rep."""
    _type(s, rng, 20, 30)
    _slouch(s, rng, "moderate", rng.uniform(50, 60))
    _swivel(s, rng)
    _type(s, rng, 15, 20)
    _lean_forward(s, rng)
    _type(s, rng, 10, 15)
    t_set = s.t
    scales = np.linspace(0.6, 0.9, 5)
    for i, k in enumerate(scales):
        _rep(s, rng, float(k), fast=(i == 3))
    s.mark("set", t_set, reps=len(scales))
    _type(s, rng, 15, 20)
    _reach(s, rng)
    _slouch(s, rng, "deep", rng.uniform(40, 50))
    while s.t < 360.0:
        _type(s, rng, 10, 20)


SCENARIOS: dict[str, ScenarioBuilder] = {
    "desk_session": desk_session,
    "cat_camel": cat_camel,
    "long_sitting": long_sitting,
    "confounders": confounders,
    "demo": demo,
}


def build_script(name: str, seed: int, functional: Functional = "bends") -> Script:
    """The script of scenario ``name`` for ``seed`` (neutral, functional movement, body)."""
    builder = SCENARIOS[name]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C3A]))
    s = Script()
    _neutral(s)
    _functional(s, rng, functional)
    builder(s, rng)
    return s
