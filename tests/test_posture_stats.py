"""Session statistics: time per posture, upright share per hour and session, episodes, alerts, breaks."""

from __future__ import annotations

import json

import pytest

from sensorhub.config import AlertsConfig
from sensorhub.model import Event, Posture
from sensorhub.posture.engine import PostureEngine
from sensorhub.posture.stats import SessionStats
from tests.posture_helpers import ALL, run, timeline

SLOUCH = {"thoracic": 6.0, "lumbar": 14.0, "pelvis": -8.0}
RECLINE = {"pelvis": -16.0, "lumbar": 4.0}
STAND = {"pelvis": 12.0, "lumbar": -10.0}


def test_numbers_of_a_scripted_session():
    """1 h 10 min at 5 Hz: upright, a 60 s slouch, reclined, standing; the second hour is all upright."""
    eng = PostureEngine(AlertsConfig(break_after_min=30.0), ALL)
    steps = [(600, {}), (60, SLOUCH), (300, RECLINE), (1000, {}), (60, STAND), (1580, {}), (600, {})]
    run(eng, timeline(steps, rate_hz=5.0, ramp_s=0.0))
    stats = eng.stats_json()
    json.dumps(stats)  # JSON-ready
    time_s = stats["time_s"]
    assert isinstance(time_s, dict)
    assert time_s["slouched"] == pytest.approx(60.0, abs=0.3)
    assert time_s["reclined"] == pytest.approx(300.0, abs=0.3)
    assert time_s["standing"] == pytest.approx(60.0, abs=0.3)
    assert time_s["upright"] == pytest.approx(3780.0, abs=0.5)
    assert stats["sitting_s"] == pytest.approx(4140.0, abs=0.5)
    assert stats["upright_pct"] == pytest.approx(100 * 3780 / 4140, abs=0.1)
    hours = stats["upright_pct_by_hour"]
    assert isinstance(hours, list)
    assert len(hours) == 2
    assert hours[0]["upright_pct"] == pytest.approx(100 * (3600 - 60 - 60 - 300) / 3540, abs=0.1)  # type: ignore[index]
    assert hours[1]["upright_pct"] == 100.0  # type: ignore[index]
    assert stats["slouch_episodes"] == {"count": 1, "longest_s": 60.0, "total_s": 60.0}
    assert stats["alerts_sent"] == {
        "break": 2,
        "slouch": 1,
    }  # reminders at 30 min of sitting, before and after standing
    assert stats["breaks_taken"] == 1  # standing for 60 s


def test_open_episode_counts_up_to_the_last_instant():
    eng = PostureEngine(AlertsConfig(), ALL)
    run(eng, timeline([(10, {}), (100, SLOUCH)], rate_hz=10.0, ramp_s=0.0))
    episodes = eng.stats_json()["slouch_episodes"]
    assert episodes == {"count": 1, "longest_s": pytest.approx(99.9, abs=0.2), "total_s": pytest.approx(99.9, abs=0.2)}


def test_gaps_count_no_time_and_empty_stats_are_null():
    stats = SessionStats()
    assert stats.to_json()["upright_pct"] is None
    stats.add(0.0, 0.0, Posture.UPRIGHT)
    stats.add(0.02, 0.02, Posture.UPRIGHT)
    stats.add(30.0, 0.0, Posture.UPRIGHT)  # after a gap
    stats.alert_started(Event("slouch", 1.0, None, {"alert_state": "quiet_hours"}))
    out = stats.to_json()
    assert out["time_s"]["upright"] == pytest.approx(0.0, abs=0.05)  # type: ignore[index]
    assert out["alerts_held"] == {"quiet_hours": 1}
    assert out["end_t"] == 30.0
