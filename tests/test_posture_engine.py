"""The posture engine as a whole: chunk invariance, exercise coach and commands, state, finish."""

from __future__ import annotations

import numpy as np
import pytest

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.model import Posture
from sensorhub.posture.engine import PostureEngine
from sensorhub.posture.exercise import ExerciseCoach, ExerciseSettings
from tests.posture_helpers import ALL, RATE_HZ, UT, chunks, random_sizes, run, timeline

SLOUCH = {"thoracic": 18.0, "lumbar": 14.0, "pelvis": -8.0}
STAND = {"pelvis": 12.0, "lumbar": -10.0}

DAY = [
    (20, {}),
    (70, SLOUCH),
    (15, {}),
    (40, {"pelvis": 20.0}),
    (35, SLOUCH),
    (3, {**SLOUCH, "movement": 1.0}),
    (40, SLOUCH),
    (30, {"pelvis": -16.0, "lumbar": 4.0}),
    (12, STAND),
    (8, {"movement": 1.2}),
    (60, {}),
    (80, SLOUCH),
    (50, {}),
    (90, {"thoracic": 16.0, "lumbar": 9.0}),
    (20, {}),
]


def _engine(**kw: object) -> PostureEngine:
    eng = PostureEngine(AlertsConfig(max_per_hour=2, break_after_min=3.0), ALL, **kw)  # type: ignore[arg-type]
    eng.snooze(1.0, 170.0)  # commands issued at fixed frame times behave the same for any cut
    eng.set_exercising(True, 420.0)
    eng.set_exercising(False, 450.0)
    return eng


@pytest.mark.parametrize("seed", [1, 2])
def test_whole_equals_random_chunks(seed):
    frame = timeline(DAY, ramp_s=2.0)
    whole_engine = _engine()
    whole = run(whole_engine, frame)
    assert len(whole.started) >= 4  # slouches, a snoozed one, a break reminder
    assert {"snoozed", "sent", "rate_limited"} <= {e.data["alert_state"] for e in whole.started}
    assert "exercising" in whole.labels
    parts_engine = _engine()
    parts = run(parts_engine, chunks(frame, random_sizes(len(frame.t), seed)))
    assert parts.labels == whole.labels
    assert parts.started == whole.started
    assert parts.finished == whole.finished
    assert parts.buzz == whole.buzz
    assert parts.changes == whole.changes
    assert parts_engine.stats_json() == whole_engine.stats_json()
    assert parts_engine.state == whole_engine.state


def _cat_camel(reps: int, period_s: float = 10.0, amplitude: float = 20.0) -> list[tuple[float, dict[str, float]]]:
    """Reps as a staircase of arch and round holds (x = spine flexion; pelvis tilts the other way)."""
    steps: list[tuple[float, dict[str, float]]] = []
    for _ in range(reps):
        for x in (-amplitude, amplitude, 0.0):
            steps.append((period_s / 3, {"thoracic": 0.45 * x, "lumbar": 0.55 * x, "pelvis": -0.3 * x}))
    return steps


def test_auto_detected_exercise_is_chunk_invariant():
    frame = timeline([(20, {}), *_cat_camel(5), (40, {})], ramp_s=2.5)

    def engine() -> PostureEngine:
        coach = ExerciseCoach(ExerciseSettings(auto_detect=True, auto_idle_s=10.0))
        return PostureEngine(AlertsConfig(), ALL, coach=coach)

    whole = run(engine(), frame)
    parts = run(engine(), chunks(frame, random_sizes(len(frame.t), 5)))
    assert "exercising" in whole.labels
    assert [e.type for e in whole.finished].count("rep") >= 3
    assert parts.labels == whole.labels
    assert parts.finished == whole.finished


def test_exercise_command_runs_the_coach_and_its_events_come_out():
    eng = PostureEngine(AlertsConfig(), ALL)
    first = eng.process(timeline([(10, {})]))
    assert first.state.posture is Posture.UPRIGHT
    assert not first.state.exercising
    eng.set_exercising(True)  # from the next instant
    out = run(eng, timeline(_cat_camel(4), ramp_s=2.5, start_t=10.0))
    assert set(out.labels) == {"exercising"}
    assert eng.state.exercising
    reps = out.of("rep")
    assert len(reps) >= 3
    assert all("rom_deg" in e.data and "too_fast" in e.data for e in reps)
    eng.pain("lower_back")
    eng.set_exercising(False)
    after = eng.process(timeline([(5, {})], start_t=50.0))
    assert [e.type for e in after.finished] == ["pain_stop", "set"]
    assert not after.state.exercising
    assert set(after.labels) == {Posture.UPRIGHT}


def test_engine_without_a_coach_still_has_exercise_mode():
    eng = PostureEngine(AlertsConfig(), ALL, exercise_coach=False)
    assert eng.coach is None
    eng.set_exercising(True, 2.0)
    out = run(eng, timeline([(4, {})]))
    assert out.labels[0] == "upright"
    assert out.labels[-1] == "exercising"
    eng.pain("lumbar", 4.0)  # nothing to record without a coach
    assert eng.finish() == []


def test_state_changes_open_events_and_finish():
    eng = PostureEngine(AlertsConfig(), ALL)
    out = eng.process(timeline([(10, {}), (50, SLOUCH)], ramp_s=0.0))
    assert [(round(t, 2), str(p)) for t, p in out.changes] == [(0.0, "upright"), (10.0, "slouched")]
    state = out.state
    assert state.posture is Posture.SLOUCHED
    assert state.since == pytest.approx(10.0)
    assert state.slouch_alert
    assert state.t == pytest.approx(60.0 - 1 / RATE_HZ)
    (open_alert,) = eng.open_events()
    assert open_alert.end_t is None
    assert eng.finish() == [open_alert]


def test_uncalibrated_labels_and_no_alerts():
    eng = PostureEngine(AlertsConfig(), ALL, calibrated=False)
    out = run(eng, timeline([(60, SLOUCH)]))
    assert set(out.labels) == {"uncalibrated"}
    assert out.started == []
    eng.set_calibrated(True)
    assert eng.process(timeline([(1, {})], start_t=60.0)).labels[0] is Posture.UPRIGHT


def test_empty_frames_and_bad_input():
    eng = PostureEngine(AlertsConfig(), (UT,))
    out = eng.process(timeline([(1, {})], placements=(UT,)).__class__(np.empty(0)))
    assert out.labels == []
    assert out.state.t is None
    with pytest.raises(InputError):
        PostureEngine(AlertsConfig(), ())
    with pytest.raises(InputError):
        eng.snooze(float("nan"), 0.0)
