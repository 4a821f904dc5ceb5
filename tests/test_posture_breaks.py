"""Movement breaks: a reminder after sitting too long; standing up or moving resets it."""

from __future__ import annotations

import pytest

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.posture.breaks import BreakSettings
from sensorhub.posture.engine import PostureEngine
from tests.posture_helpers import ALL, run, timeline

STAND = {"pelvis": 12.0, "lumbar": -10.0}
MOVE = {"movement": 1.0}
RATE = 10.0  # coarse grid: minutes of sitting stay cheap


def engine(minutes: float = 2.0) -> PostureEngine:
    return PostureEngine(AlertsConfig(break_after_min=minutes), ALL)


def test_reminder_after_sitting_and_standing_up_ends_it():
    eng = engine()
    out = run(eng, timeline([(150, {}), (20, STAND), (130, {})], rate_hz=RATE, ramp_s=0.0))
    reminders = [e for e in out.started if e.type == "break"]
    assert [e.start_t for e in reminders] == [pytest.approx(120.0, abs=0.15), pytest.approx(290.0, abs=0.15)]
    assert reminders[0].data["alert_state"] == "sent"
    (ended,) = out.of("break")
    assert ended.start_t == reminders[0].start_t
    assert ended.end_t == pytest.approx(150.0, abs=0.11)  # when the wearer got up
    assert [b.reason for b in out.buzz] == ["break", "break"]
    assert out.buzz[0].pulses == 3
    assert eng.breaks.breaks_taken == 1
    assert eng.stats_json()["breaks_taken"] == 1
    assert eng.open_events() == [reminders[1]]


def test_a_short_movement_pauses_but_does_not_reset():
    out = run(engine(), timeline([(100, {}), (3, MOVE), (40, {})], rate_hz=RATE, ramp_s=0.0))
    (reminder,) = [e for e in out.started if e.type == "break"]
    # 100 s of sitting, 3 s away (paused, movement settles within the 3 s), then 20 more seconds.
    assert reminder.start_t == pytest.approx(123.0, abs=1.0)


def test_walking_about_resets_and_counts_a_break():
    eng = engine()
    out = run(eng, timeline([(100, {}), (15, MOVE), (100, {})], rate_hz=RATE, ramp_s=0.0))
    assert [e for e in out.started if e.type == "break"] == []
    assert eng.breaks.breaks_taken == 1


def test_changing_sitting_posture_is_not_a_break_and_one_reminder_per_bout():
    steps = [(100, {}), (100, {"pelvis": -16.0, "lumbar": 4.0}), (100, {"pelvis": 20.0}), (300, {})]
    out = run(engine(), timeline(steps, rate_hz=RATE))
    assert len([e for e in out.started if e.type == "break"]) == 1


def test_no_reminders_when_off():
    out = run(engine(0.0), timeline([(400, {})], rate_hz=RATE))
    assert out.started == []


def test_bad_break_settings_are_refused():
    with pytest.raises(InputError):
        BreakSettings(break_after_s=-1.0)
    with pytest.raises(InputError):
        BreakSettings(reset_s=0.0)
