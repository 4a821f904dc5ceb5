"""The cat/camel coach: rep counting, range of motion, tempo, pain stops, sets and trends.

Synthetic frames build the back from one "rep signal" x (deg, spine flexion = thoracic + lumbar):
thoracic = 0.45·x, lumbar = 0.55·x, pelvis = −0.3·x (the pelvis tilts the other way), trunk =
pelvis + thoracic + lumbar = 0.7·x. A rep of amplitude A therefore has ranges 0.9·A (thoracic),
1.1·A (lumbar), 1.4·A (trunk) and 0.6·A (pelvis).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sensorhub.errors import ConfigError, InputError
from sensorhub.model import Event, SpineFrame
from sensorhub.posture.exercise import (
    REGIONS,
    ExerciseCoach,
    ExerciseSettings,
    RegionDeg,
    SetSummary,
    progress,
    resolve_region,
)

RATE_HZ = 50.0
SHARE = {"thoracic": 0.45, "lumbar": 0.55, "trunk": 0.7, "pelvis": -0.3}
#: A rep's duration runs between the crossings of ±10 % of its span around neutral: for a sine
#: cycle of period P that is P·(1 − asin(0.2)/π).
SINE_DURATION_FRACTION = 1.0 - math.asin(0.2) / math.pi


def back_frame(t: np.ndarray, x: np.ndarray, *, sensors: int = 3) -> SpineFrame:
    """A SpineFrame from the rep signal x, with what 3, 2 (upper thoracic + sacral) or 1 sensor give."""
    th, lu, pe = SHARE["thoracic"] * x, SHARE["lumbar"] * x, SHARE["pelvis"] * x
    trunk = pe + th + lu
    if sensors == 3:
        return SpineFrame(t, th, lu, trunk, pe, th + lu)
    if sensors == 2:
        return SpineFrame(t, trunk_flexion_deg=trunk, pelvis_tilt_deg=pe, spine_flexion_deg=th + lu)
    return SpineFrame(t, trunk_flexion_deg=trunk)


def reps_signal(
    periods: list[float], amplitude: float = 20.0, *, rest_s: float = 5.0, sign: float = -1.0
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Rest, then back-to-back sine cycles (arch first for sign −1), then rest. Returns t, x, rep starts."""
    total = rest_s + sum(periods) + rest_s
    t = np.arange(0.0, total, 1.0 / RATE_HZ)
    x = np.zeros_like(t)
    t0 = rest_s
    starts = []
    for p in periods:
        m = (t >= t0) & (t < t0 + p)
        x[m] = sign * amplitude * np.sin(2 * np.pi * (t[m] - t0) / p)
        starts.append(t0)
        t0 += p
    return t, x, starts


def chunks(frame: SpineFrame, sizes: list[int]) -> list[SpineFrame]:
    out = []
    i = 0
    for n in sizes:
        sl = slice(i, i + n)
        out.append(
            SpineFrame(
                frame.t[sl],
                *(
                    None if (v := getattr(frame, f)) is None else v[sl]
                    for f in (
                        "thoracic_flexion_deg",
                        "lumbar_flexion_deg",
                        "trunk_flexion_deg",
                        "pelvis_tilt_deg",
                        "spine_flexion_deg",
                    )
                ),
            )
        )
        i += n
        if i >= len(frame):
            break
    return out


def run_set(coach: ExerciseCoach, frame: SpineFrame, *, start: float | None = None, stop: bool = True) -> list[Event]:
    events = coach.start(float(frame.t[0]) if start is None else start)
    events += coach.process(frame)
    if stop:
        events += coach.stop(float(frame.t[-1]))
    return events


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


def d(event: Event) -> dict[str, Any]:
    """An event's data, for reading JSON values in asserts."""
    return dict(event.data)


def end(event: Event) -> float:
    assert event.end_t is not None
    return event.end_t


# -- counting, range, tempo --------------------------------------------------------------------


def test_sine_reps_exact_count_rom_and_duration() -> None:
    t, x, starts = reps_signal([10.0, 12.0, 9.0, 11.0, 10.0], amplitude=20.0)
    events = run_set(ExerciseCoach(), back_frame(t, x))
    reps = of_type(events, "rep")
    assert [d(r)["rep"] for r in reps] == [1, 2, 3, 4, 5]
    for rep, t0, period in zip(reps, starts, [10.0, 12.0, 9.0, 11.0, 10.0], strict=True):
        rom = d(rep)["rom_deg"]
        for region in REGIONS:
            assert rom[region] == pytest.approx(abs(SHARE[region]) * 40.0, abs=0.02)
        assert d(rep)["duration_s"] == pytest.approx(SINE_DURATION_FRACTION * period, abs=0.05)
        assert rep.start_t == pytest.approx(t0 + period * math.asin(0.2) / (2 * math.pi), abs=0.03)
        assert d(rep)["too_fast"] is False
        assert d(rep)["first"] == "arch"
        assert d(rep)["arch_deg"]["lumbar"] == pytest.approx(-0.55 * 20.0, abs=0.01)
        assert d(rep)["round_deg"]["pelvis"] == pytest.approx(-0.3 * 20.0, abs=0.01)
        assert d(rep)["signal"] == "spine"
    (summary,) = of_type(events, "set")
    assert d(summary)["reps"] == 5
    assert d(summary)["too_fast_reps"] == 0
    assert d(summary)["rom_mean_deg"]["trunk"] == pytest.approx(0.7 * 40.0, abs=0.02)
    assert d(summary)["rep_s"]["max"] == pytest.approx(SINE_DURATION_FRACTION * 12.0, abs=0.05)


def test_reps_starting_from_the_round_count_the_same() -> None:
    t, x, _ = reps_signal([10.0] * 4, sign=+1.0)
    reps = of_type(run_set(ExerciseCoach(), back_frame(t, x)), "rep")
    assert len(reps) == 4
    assert {d(r)["first"] for r in reps} == {"round"}
    assert all(d(r)["rom_deg"]["lumbar"] == pytest.approx(22.0, abs=0.02) for r in reps)


def test_fast_reps_are_flagged_by_tempo() -> None:
    periods = [10.0, 10.0, 4.0, 10.0, 3.0, 12.0, 5.5]  # 5.5 s cycles: 5.15 s between the boundaries
    t, x, _ = reps_signal(periods)
    events = run_set(ExerciseCoach(), back_frame(t, x))
    assert ExerciseSettings().min_rep_s == 5.0
    assert [d(r)["too_fast"] for r in of_type(events, "rep")] == [False, False, True, False, True, False, False]
    assert d(of_type(events, "set")[0])["too_fast_reps"] == 2
    slower = ExerciseCoach(ExerciseSettings(min_rep_s=2.0))
    assert not any(d(r)["too_fast"] for r in of_type(run_set(slower, back_frame(t, x)), "rep"))


def test_reps_from_rest_with_pauses_inside_the_set() -> None:
    """Neutral → arch → round → neutral with holds and a pause, like the simulator's reps."""
    t = np.arange(0.0, 90.0, 1.0 / RATE_HZ)
    keys = [(0, 0), (5, 0), (8, -12), (9, -12), (14, 22), (15, 22), (18, 0), (19, 0), (22, -10), (23, -10)]
    keys += [(28, 25), (29, 25), (32, 0), (50, 0), (53, -14), (54, -14), (59, 20), (60, 20), (63, 0), (90, 0)]
    kt, kx = zip(*keys, strict=True)
    x = np.interp(t, kt, kx)
    reps = of_type(run_set(ExerciseCoach(), back_frame(t, x)), "rep")
    assert len(reps) == 3
    assert [d(r)["rom_deg"]["thoracic"] for r in reps] == pytest.approx([0.45 * 34, 0.45 * 35, 0.45 * 34], abs=0.01)
    # The pause at neutral (32–50 s) belongs to no rep.
    assert end(reps[1]) < 33.0
    assert reps[2].start_t > 50.0


def test_breathing_and_small_movements_never_count() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 180.0, 1.0 / RATE_HZ)
    breathing = 1.0 * np.sin(2 * np.pi * 0.25 * t) + 0.3 * np.sin(2 * np.pi * 0.05 * t)
    noise = rng.normal(0.0, 0.2, len(t))
    fidget = np.where(t > 90.0, 2.5 * np.sin(2 * np.pi * 0.1 * t), 0.0)  # ±2.5° shifts on top: < min_rom
    events = run_set(ExerciseCoach(), back_frame(t, breathing + noise + fidget))
    assert of_type(events, "rep") == []
    (summary,) = of_type(events, "set")
    assert d(summary)["reps"] == 0
    assert d(summary)["rom_mean_deg"] == dict.fromkeys(REGIONS)


def test_wobble_inside_an_end_position_is_one_rep() -> None:
    t = np.arange(0.0, 40.0, 1.0 / RATE_HZ)
    kt = [0, 5, 8, 9, 10, 11, 16, 17, 20, 40]
    kx = [0, 0, -15, -8, -14, -14, 20, 20, 0, 0]  # a 7° wobble back and forth in the arch
    x = np.interp(t, kt, kx)
    (rep,) = of_type(run_set(ExerciseCoach(), back_frame(t, x)), "rep")
    assert d(rep)["rom_deg"]["lumbar"] == pytest.approx(0.55 * 35, abs=0.01)
    assert d(rep)["arch_deg"]["lumbar"] == pytest.approx(-0.55 * 15, abs=0.01)


# -- sensors, gaps, chunks ------------------------------------------------------------------------


@pytest.mark.parametrize(("sensors", "present", "signal"), [(1, {"trunk"}, "trunk"), (2, {"trunk", "pelvis"}, "spine")])
def test_missing_angles_are_null(sensors: int, present: set[str], signal: str) -> None:
    t, x, _ = reps_signal([10.0] * 3)
    events = run_set(ExerciseCoach(), back_frame(t, x, sensors=sensors))
    reps = of_type(events, "rep")
    assert len(reps) == 3
    for rep in reps:
        rom = d(rep)["rom_deg"]
        assert {r for r, v in rom.items() if v is not None} == present
        assert rom["trunk"] == pytest.approx(0.7 * 40.0, abs=0.02)
        assert d(rep)["signal"] == signal
    assert d(of_type(events, "set")[0])["rom_mean_deg"]["lumbar"] is None


def test_nan_gaps_inside_reps() -> None:
    t, x, starts = reps_signal([10.0] * 4)
    frame = back_frame(t, x)
    clean = of_type(run_set(ExerciseCoach(), frame), "rep")
    holes = np.zeros(len(t), dtype=bool)
    for t0 in starts:
        holes |= (t >= t0 + 1.0) & (t < t0 + 1.5)  # mid-swing into the arch
        holes |= (t >= t0 + 4.6) & (t < t0 + 5.4)  # mid-swing across
    gappy = back_frame(t, np.where(holes, np.nan, x))
    reps = of_type(run_set(ExerciseCoach(), gappy), "rep")
    assert len(reps) == len(clean) == 4
    for a, b in zip(reps, clean, strict=True):
        assert d(a)["rom_deg"] == pytest.approx(d(b)["rom_deg"], abs=1e-9)
        assert d(a)["gap_s"] == pytest.approx(1.3, abs=0.05)
        assert d(b)["gap_s"] == 0.0


@pytest.mark.parametrize("auto_detect", [False, True])
def test_chunked_input_gives_the_same_events(auto_detect: bool) -> None:
    rng = np.random.default_rng(11)
    t, x, starts = reps_signal([10.0, 4.0, 12.0, 9.0, 11.0, 3.5, 10.0, 10.0, 10.0])
    x = x + 0.8 * np.sin(2 * np.pi * 0.23 * t) + rng.normal(0.0, 0.3, len(t))
    frame = back_frame(t, x)
    # Set 1: reps 1–3, ended by a pain stop at rep 3's round; set 2: reps 4–5; then, with
    # auto-detection, reps 6–9 open a set of their own.
    commands = [(0.5, "start"), (starts[2] + 9.0, "pain"), (starts[3] - 0.5, "start"), (starts[5], "stop")]

    def run(sizes: list[int]) -> list[dict[str, Any]]:
        coach = ExerciseCoach(ExerciseSettings(auto_detect=auto_detect))
        return [e.to_json() for e in feed(coach, chunks(frame, sizes), commands)]

    whole = run([len(t)])
    assert run(rng.integers(1, 200, size=len(t)).tolist()) == whole
    assert run([1] * len(t)) == whole
    kinds = [e["type"] for e in whole]
    assert kinds.count("rep") == (9 if auto_detect else 5)
    assert kinds.count("pain_stop") == 1
    assert [e["reps"] for e in whole if e["type"] == "set"] == [3, 2]
    assert [e["too_fast"] for e in whole if e["type"] == "rep"][:5] == [False, True, False, False, False]


def feed(coach: ExerciseCoach, parts: list[SpineFrame], commands: list[tuple[float, str]]) -> list[Event]:
    """Process ``parts`` in order, giving each command (pain = lumbar) just before its time."""
    events: list[Event] = []
    queue = sorted(commands)
    for part in parts:
        while queue and len(part) and part.t[-1] >= queue[0][0]:
            at, name = queue.pop(0)
            head = part.t < at
            events += coach.process(SpineFrame(part.t[head], *_f(part, head)))
            part = SpineFrame(part.t[~head], *_f(part, ~head))
            if name == "pain":
                events += coach.pain("lumbar", at)
            elif name == "start":
                events += coach.start(at)
            else:
                events += coach.stop(at)
        events += coach.process(part)
    return events


def _f(frame: SpineFrame, m: np.ndarray) -> list[np.ndarray | None]:
    names = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg", "spine_flexion_deg")
    return [None if (v := getattr(frame, n)) is None else v[m] for n in names]


# -- commands -------------------------------------------------------------------------------------


def test_pain_stop_sets_the_next_sets_target() -> None:
    t, x, starts = reps_signal([10.0] * 4)
    frame = back_frame(t, x)
    coach = ExerciseCoach()
    coach.start(0.0)
    at = starts[1] + 7.5  # deepest round of rep 2 (sine peak at 3/4 of the period)
    head = frame.t <= at
    events = coach.process(SpineFrame(frame.t[head], *_f(frame, head)))
    assert len(of_type(events, "rep")) == 1
    stop = coach.pain("lower", at, level=6)
    # The pain stop ends the set: rep 2, held at its round, counts and closes at the pain stop.
    assert [e.type for e in stop] == ["rep", "pain_stop", "set"]
    rep2, pain, set1 = stop
    assert not coach.active
    assert coach.process(SpineFrame(frame.t[~head], *_f(frame, ~head))) == []
    assert rep2.end_t == at
    assert d(rep2)["rom_deg"]["lumbar"] == pytest.approx(22.0, abs=0.05)
    assert d(pain)["region"] == "lower"
    assert d(pain)["regions"] == ["lumbar"]
    assert d(pain)["level"] == 6
    assert d(pain)["rep"] == 2
    assert d(pain)["set"] == 1
    assert d(pain)["rom_deg"]["lumbar"] == pytest.approx(22.0, abs=0.05)
    assert d(pain)["target_deg"]["lumbar"] == pytest.approx(0.9 * 22.0, abs=0.05)
    assert d(pain)["target_deg"]["thoracic"] is None
    # The set in progress kept its targets; the next set gets the new one.
    assert all(d(r)["target_deg"]["lumbar"] is None for r in [*of_type(events, "rep"), rep2])
    assert d(set1)["reps"] == 2
    assert d(set1)["ended_by"] == "pain"
    assert d(set1)["pain_deg"]["lumbar"] == pytest.approx(22.0, abs=0.05)
    assert coach.targets.lumbar == pytest.approx(19.8, abs=0.05)

    t2 = t + t[-1] + 10.0
    events2 = run_set(coach, back_frame(t2, x))
    reps2 = of_type(events2, "rep")
    assert len(reps2) == 4
    assert all(d(r)["set"] == 2 for r in reps2)
    assert all(d(r)["target_deg"]["lumbar"] == pytest.approx(19.8, abs=0.05) for r in reps2)
    assert all(d(r)["over_target"] == ["lumbar"] for r in reps2)  # 22° > 19.8°
    assert d(of_type(events2, "set")[0])["target_deg"]["lumbar"] == pytest.approx(19.8, abs=0.05)

    # A later pain stop at a smaller range, for all regions, after the set: the last rep's range.
    t3, small, _ = reps_signal([10.0] * 2, amplitude=10.0)
    t3 = t3 + t2[-1] + 10.0
    run_set(coach, back_frame(t3, small))
    (pain2,) = coach.pain(None, float(t3[-1]) + 1.0)  # no set open: nothing else to close
    assert d(pain2)["rep"] is None  # no set open
    assert set(d(pain2)["regions"]) == set(REGIONS)
    assert coach.targets.lumbar == pytest.approx(0.9 * 11.0, abs=0.05)
    assert coach.targets.pelvis == pytest.approx(0.9 * 6.0, abs=0.05)


def test_pain_during_the_first_swing_is_no_rep() -> None:
    t = np.arange(0.0, 20.0, 1.0 / RATE_HZ)
    x = np.interp(t, [0, 3, 7, 20], [0, 0, -14, -14])  # arching, then pain before any round
    coach = ExerciseCoach()
    coach.start(0.0)
    coach.process(back_frame(t, x))
    events = coach.pain("mid", 20.0)
    assert [e.type for e in events] == ["pain_stop", "set"]
    assert d(events[0])["rep"] is None
    assert d(events[0])["rom_deg"]["thoracic"] == pytest.approx(0.45 * 14, abs=0.01)
    assert coach.targets.thoracic == pytest.approx(0.9 * 0.45 * 14, abs=0.01)


def test_a_rep_goal_closes_the_set() -> None:
    t, x, _ = reps_signal([10.0] * 5)
    coach = ExerciseCoach()
    coach.start(0.0, goal_reps=3)
    events = coach.process(back_frame(t, x))
    assert [e.type for e in events] == ["rep"] * 3 + ["set"]
    assert d(events[-1])["goal_reps"] == 3
    assert d(events[-1])["ended_by"] == "goal"
    assert events[-1].end_t == events[-2].end_t
    assert not coach.active
    with pytest.raises(InputError):
        coach.start(0.0, goal_reps=0)


def test_pain_for_a_region_the_sensors_cannot_see_limits_what_they_see() -> None:
    t, x, _ = reps_signal([10.0] * 2)
    coach = ExerciseCoach()
    run_set(coach, back_frame(t, x, sensors=1))
    (pain,) = coach.pain("upper_back", float(t[-1]))
    assert d(pain)["regions"] == ["trunk"]
    assert coach.targets.trunk == pytest.approx(0.9 * 28.0, abs=0.05)
    assert coach.targets.thoracic is None


def test_targets_from_an_earlier_session_and_validation() -> None:
    coach = ExerciseCoach(targets={"lower_back": 15.0, "upper_thoracic": 30.0})
    assert coach.targets == RegionDeg(lumbar=15.0, trunk=30.0)
    with pytest.raises(InputError):
        ExerciseCoach(targets={"neck": 10.0})
    with pytest.raises(InputError):
        resolve_region("knee")
    with pytest.raises(ConfigError):
        ExerciseSettings(min_rep_s=0.0)
    with pytest.raises(ConfigError):
        ExerciseSettings(target_fraction=1.5)
    with pytest.raises(ConfigError):
        ExerciseSettings(hysteresis_deg=12.0, min_rom_deg=10.0)


def test_inactive_coach_ignores_frames_and_stop_closes_a_held_rep() -> None:
    t, x, _ = reps_signal([10.0] * 2)
    coach = ExerciseCoach()
    assert not coach.active
    assert coach.process(back_frame(t, x)) == []
    assert coach.stop(1.0) == []
    # Arch, round, and stop while still rounded: that rep counts.
    t2 = np.arange(0.0, 20.0, 1.0 / RATE_HZ)
    x2 = np.interp(t2, [0, 3, 6, 7, 12, 20], [0, 0, -12, -12, 20, 20])
    held = ExerciseCoach()
    held.start(0.0)
    assert held.active
    assert of_type(held.process(back_frame(t2, x2)), "rep") == []
    events = held.stop(20.0)
    assert [e.type for e in events] == ["rep", "set"]
    assert d(events[0])["rom_deg"]["lumbar"] == pytest.approx(0.55 * 32, abs=0.01)
    assert held.sets[0].reps == 1
    assert held.stop(21.0) == []


def test_frames_before_the_start_command_are_not_part_of_the_set() -> None:
    t, x, starts = reps_signal([10.0] * 4)
    coach = ExerciseCoach()
    events = coach.start(starts[2] - 0.5)
    events += coach.process(back_frame(t, x))
    events += coach.stop(float(t[-1]))
    assert len(of_type(events, "rep")) == 2
    assert of_type(events, "set")[0].start_t == starts[2] - 0.5


def test_auto_detection_opens_and_closes_a_set() -> None:
    t = np.arange(0.0, 200.0, 1.0 / RATE_HZ)
    x = np.zeros_like(t)
    # Three forward bends (flexion only) never open a set ...
    for t0 in (10.0, 20.0, 30.0):
        m = (t >= t0) & (t < t0 + 8.0)
        x[m] = 25.0 * np.sin(np.pi * (t[m] - t0) / 8.0) ** 2
    # ... four cat/camel reps do; the set closes auto_idle_s after the last one.
    for k in range(4):
        t0 = 60.0 + 10.0 * k
        m = (t >= t0) & (t < t0 + 10.0)
        x[m] = -20.0 * np.sin(2 * np.pi * (t[m] - t0) / 10.0)
    coach = ExerciseCoach(ExerciseSettings(auto_detect=True))
    events = coach.process(back_frame(t, x))
    assert [e.type for e in events] == ["rep"] * 4 + ["set"]
    assert d(events[-1])["mode"] == "auto"
    assert d(events[-1])["reps"] == 4
    assert events[-1].start_t == pytest.approx(60.0, abs=0.5)
    assert events[-1].end_t == events[-2].end_t
    assert not coach.active
    assert ExerciseCoach().process(back_frame(t, x)) == []  # off by default


def test_start_during_an_auto_set_keeps_it() -> None:
    t, x, starts = reps_signal([10.0] * 5)
    frame = back_frame(t, x)
    coach = ExerciseCoach(ExerciseSettings(auto_detect=True))
    head = frame.t < starts[4]
    events = coach.process(SpineFrame(frame.t[head], *_f(frame, head)))
    assert coach.active
    coach.start(float(starts[4]))
    events += coach.process(SpineFrame(frame.t[~head], *_f(frame, ~head)))
    events += coach.process(back_frame(t + t[-1] + 0.02, np.zeros_like(t)))  # 60 s rest: a commanded set stays open
    assert coach.active
    events += coach.stop(200.0)
    (summary,) = of_type(events, "set")
    assert d(summary)["mode"] == "command"
    assert d(summary)["reps"] == 5


# -- summaries and trends ----------------------------------------------------------------------


def _summary(day: float, lumbar: float | None, *, reps: int = 5, thoracic: float | None = 20.0) -> SetSummary:
    return SetSummary(
        start_t=day * 86400.0 + 36000.0,
        end_t=day * 86400.0 + 36100.0,
        number=1,
        mode="command",
        reps=reps,
        too_fast=1,
        rom_mean_deg=RegionDeg(thoracic=thoracic, lumbar=lumbar),
        rom_max_deg=RegionDeg(thoracic=thoracic, lumbar=lumbar),
        rep_s_mean=10.0,
        rep_s_min=5.0,
        rep_s_max=12.0,
        target_deg=RegionDeg(lumbar=18.0 if day >= 7 else None),
        signal="spine",
    )


def test_set_summary_json_round_trip() -> None:
    s = _summary(3.0, 21.5)
    assert SetSummary.from_json(s.to_json()) == s
    event = Event("set", s.start_t, s.end_t, s.event_data())
    assert SetSummary.from_event(event) == s
    with pytest.raises(InputError):
        SetSummary.from_json({"start_t": 1.0})
    with pytest.raises(InputError):
        SetSummary.from_event(Event("rep", 0.0, 1.0))


def test_coach_set_events_rebuild_its_summaries() -> None:
    t, x, _ = reps_signal([10.0] * 3)
    coach = ExerciseCoach()
    (set_event,) = of_type(run_set(coach, back_frame(t, x)), "set")
    assert SetSummary.from_event(set_event) == SetSummary.from_json(coach.sets[0].to_json())


def test_progress_math() -> None:
    sets = [
        _summary(0.0, 19.0),
        _summary(0.1, 21.0),  # same day: the day's mean is 20
        _summary(7.0, 27.0),
        _summary(14.0, 34.0, thoracic=None),
        _summary(15.0, 99.0, reps=0),  # no reps: skipped
    ]
    out: dict[str, Any] = progress(list(reversed(sets)))
    assert out["sets"] == 4
    assert out["reps"] == 20
    assert out["days"] == 3
    assert out["too_fast_fraction"] == pytest.approx(4 / 20)
    lumbar = out["regions"]["lumbar"]
    assert lumbar["first_deg"] == pytest.approx(20.0)
    assert lumbar["last_deg"] == pytest.approx(34.0)
    assert lumbar["change_deg"] == pytest.approx(14.0)
    assert lumbar["best_deg"] == pytest.approx(34.0)
    assert lumbar["best_t"] == pytest.approx(14 * 86400.0 + 36000.0)
    assert lumbar["slope_deg_per_week"] == pytest.approx(7.0)
    assert lumbar["sets"] == 4
    assert lumbar["days"] == 3
    assert lumbar["target_deg"] == 18.0
    thoracic = out["regions"]["thoracic"]
    assert thoracic["sets"] == 3
    assert thoracic["slope_deg_per_week"] == pytest.approx(0.0, abs=1e-9)
    assert out["regions"]["trunk"] is None
    one_day: dict[str, Any] = progress([_summary(0.0, 19.0)])
    assert one_day["regions"]["lumbar"]["slope_deg_per_week"] is None
    assert progress([])["regions"] == dict.fromkeys(REGIONS)
    # Local days: 23:00 UTC and 01:00 UTC the next day are one day at UTC−2.
    late = [_summary(0.0, 10.0), _summary(0.0, 20.0)]
    late = [
        SetSummary.from_json({**late[0].to_json(), "start_t": 23 * 3600.0}),
        SetSummary.from_json({**late[1].to_json(), "start_t": 25 * 3600.0}),
    ]
    assert progress(late)["days"] == 2
    assert progress(late, utc_offset_s=-7200.0)["days"] == 1


# -- through the real pipeline ------------------------------------------------------------------


def test_simulated_cat_camel_set_through_the_pipeline() -> None:
    """Set 1 of the cat_camel scenario, simulated, calibrated and run through SpinePipeline."""
    from sensorhub.sim.evaluate import evaluate
    from sensorhub.sim.wearer import WearerConfig

    ev = evaluate(WearerConfig(scenario="cat_camel", seed=3, duration_s=160.0))
    truth = ev.wearer.events()
    (true_set,) = [e for e in truth if e.type == "set" and e.end_t is not None]
    true_reps = [e for e in truth if e.type == "rep" and e.end_t is not None]
    frame = ev.result.frame
    coach = ExerciseCoach()
    coach.start(true_set.start_t - 2.0)
    events: list[Event] = []
    for part in chunks(frame, [5] * len(frame)):  # 100 ms ticks
        events += coach.process(part)
    events += coach.stop(end(true_set) + 2.0)
    reps = of_type(events, "rep")
    assert len(reps) == len(true_reps) == 5
    for est, tru in zip(reps, true_reps, strict=True):
        assert est.start_t < end(tru)
        assert tru.start_t < end(est)
        for region in REGIONS:
            assert d(est)["rom_deg"][region] == pytest.approx(d(tru)["rom_deg"][region], abs=2.0)
        assert d(est)["too_fast"] is d(tru)["too_fast"] is False
