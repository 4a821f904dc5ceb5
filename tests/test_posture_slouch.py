"""Slouch alerts: one start and one end per episode, dwell, hysteresis, snooze, quiet hours, cap,
suppression while standing, moving or exercising."""

from __future__ import annotations

import datetime as dt

import pytest

from sensorhub.config import AlertsConfig, QuietHours
from sensorhub.posture.engine import PostureEngine
from tests.posture_helpers import ALL, UT, run, timeline

UPRIGHT: dict[str, float] = {}
THORACIC = {"thoracic": 20.0, "lumbar": 3.0, "pelvis": -4.0}  # thoracic ≥ 15, spine 23 ≥ 10
LUMBAR = {"thoracic": 6.0, "lumbar": 14.0, "pelvis": -8.0}  # lumbar ≥ 10, spine 20 ≥ 10
MILD = {"thoracic": 6.0, "lumbar": 7.0, "pelvis": -4.0}  # below both regional thresholds, spine 13 ≥ 10


def engine(**alerts: object) -> PostureEngine:
    return PostureEngine(AlertsConfig(**alerts), ALL)  # type: ignore[arg-type]


def test_one_start_and_one_end_per_episode_after_the_dwell():
    """Thoracic ramps 0 → 20° and the whole spine 0 → 23° over 1 s from 10 s: the spine reaches its
    10° at 10.43 s (before the thoracic 15° at 10.75 s), so the alert is due at 40.43 s."""
    eng = engine()
    out = run(eng, timeline([(10, UPRIGHT), (60, THORACIC), (10, UPRIGHT), (50, LUMBAR), (10, UPRIGHT)]))
    assert [e.type for e in out.started] == ["slouch", "slouch"]
    first, second = out.of("slouch")
    assert out.started[0].start_t == pytest.approx(40.44, abs=0.021)
    assert out.started[0].end_t is None
    assert first.start_t == out.started[0].start_t
    # Ends when every latch is off: thoracic below 15 − 3 = 12° at 70.4 s, spine below 10 − 3 = 7° at 70.7 s.
    assert first.end_t == pytest.approx(70.70, abs=0.021)
    assert first.data["segments"] == ["thoracic", "spine"]
    assert first.data["peak_deg"] == {"thoracic": 20.0, "lumbar": 3.0, "spine": 23.0}
    assert first.data["threshold_deg"] == {"thoracic": 15.0, "lumbar": 10.0, "spine": 10.0}
    assert first.data["alert_state"] == "sent"
    assert first.data["onset_t"] == pytest.approx(10.44, abs=0.021)
    assert first.data["duration_s"] == pytest.approx(60.26, abs=0.05)
    assert second.data["segments"] == ["lumbar", "spine"]
    assert [b.reason for b in out.buzz] == ["slouch", "slouch"]
    assert out.buzz[0].t == out.started[0].start_t
    assert not eng.state.slouch_alert


def test_an_episode_shorter_than_the_dwell_does_not_alert():
    out = run(engine(), timeline([(10, UPRIGHT), (25, LUMBAR), (20, UPRIGHT), (31.5, LUMBAR), (5, UPRIGHT)]))
    assert len(out.started) == 1
    assert out.started[0].start_t > 55.0


def test_dwell_is_the_setting():
    out = run(engine(dwell_s=5.0), timeline([(10, UPRIGHT), (8, LUMBAR), (5, UPRIGHT)], ramp_s=0.0))
    assert out.started[0].start_t == pytest.approx(15.0, abs=0.021)


def test_hysteresis_stops_chatter_at_the_threshold():
    """Lumbar wobbling 8.5–12.5° around the 10° threshold for two minutes: one episode, one alert."""
    steps = [(10, UPRIGHT)]
    for _ in range(30):
        steps += [(2, {"lumbar": 12.5}), (2, {"lumbar": 8.5})]
    steps.append((10, UPRIGHT))
    out = run(engine(), timeline(steps, ramp_s=0.5))
    assert len(out.started) == 1
    assert len(out.of("slouch")) == 1
    assert out.of("slouch")[0].end_t == pytest.approx(130.0, abs=0.5)


def test_snooze_holds_alerts_back_then_lets_them_out():
    eng = engine()
    until = eng.snooze(10, 0.0)
    assert until == 600.0
    assert eng.state.snoozed_until == 600.0
    out = run(eng, timeline([(10, UPRIGHT), (60, LUMBAR), (600, UPRIGHT), (60, LUMBAR), (10, UPRIGHT)]))
    assert [e.data["alert_state"] for e in out.of("slouch")] == ["snoozed", "sent"]
    assert len(out.buzz) == 1
    assert out.buzz[0].t > 600.0
    assert eng.stats_json()["alerts_held"] == {"snoozed": 1}
    assert eng.snooze(None, 700.0) == 700.0 + 30 * 60  # [alerts] snooze_min
    assert eng.snooze(0, 700.0) is None


@pytest.mark.parametrize(
    ("offset_hour", "state"),
    [(23, "quiet_hours"), (3, "quiet_hours"), (12, "sent"), (None, "sent")],
)
def test_quiet_hours_follow_the_wall_clock_offset(offset_hour, state):
    quiet = QuietHours(start=dt.time(22, 0), end=dt.time(7, 0))
    offset = None
    if offset_hour is not None:
        offset = dt.datetime(2024, 3, 1, offset_hour, 0, tzinfo=dt.UTC).timestamp()
    eng = PostureEngine(AlertsConfig(quiet_hours=quiet), ALL, epoch_offset_s=offset, tz=dt.UTC)
    out = run(eng, timeline([(10, UPRIGHT), (60, LUMBAR), (10, UPRIGHT)]))
    assert [e.data["alert_state"] for e in out.of("slouch")] == [state]
    assert len(out.buzz) == (state == "sent")


def test_cap_per_rolling_hour():
    eng = engine(max_per_hour=2, break_after_min=0.0)
    episode = [(60, LUMBAR), (60, UPRIGHT)]
    out = run(eng, timeline([(10, UPRIGHT), *episode * 3, (3600, UPRIGHT), *episode], rate_hz=10.0))
    assert [e.data["alert_state"] for e in out.of("slouch")] == ["sent", "sent", "rate_limited", "sent"]
    assert len(out.buzz) == 3
    stats = eng.stats_json()
    assert stats["alerts_sent"] == {"slouch": 3}
    assert stats["alerts_held"] == {"rate_limited": 1}


@pytest.mark.parametrize(
    ("pose", "label"),
    [
        ({"pelvis": 12.0, "lumbar": -10.0, "thoracic": 20.0}, "standing"),
        ({**THORACIC, "movement": 1.0}, "moving"),
        ({"pelvis": 15.0, "lumbar": 12.0, "thoracic": 16.0}, "leaning_forward"),  # on the elbows
    ],
)
def test_no_alert_while_standing_moving_or_leaning_on_the_desk(pose, label):
    out = run(engine(), timeline([(10, UPRIGHT), (90, pose), (10, UPRIGHT)]))
    assert out.started == []
    assert out.labels[50 * 60] == label


def test_no_alert_while_exercising_and_dwell_restarts_after():
    eng = engine()
    eng.set_exercising(True, 5.0)
    eng.set_exercising(False, 80.0)
    out = run(eng, timeline([(10, UPRIGHT), (120, THORACIC), (10, UPRIGHT)]))
    assert set(out.labels[300:3950]) == {"exercising"}
    # Exercise mode ended the pending episode; slouched again from 80 s, the alert is due at 110 s.
    assert [e.start_t for e in out.started] == [pytest.approx(110.0, abs=0.021)]


def test_a_short_movement_neither_splits_nor_restarts_an_episode_but_a_long_one_ends_it():
    eng = engine()
    moving = {**THORACIC, "movement": 1.0}
    steps = [(10, UPRIGHT), (10, THORACIC), (2, moving), (40, THORACIC), (2, moving), (20, THORACIC)]
    steps += [(12, moving), (10, UPRIGHT)]
    out = run(eng, timeline(steps, ramp_s=0.2))
    assert len(out.started) == 1
    assert out.started[0].start_t == pytest.approx(40.1, abs=0.1)  # onset ≈ 10.09 s (spine at 10°) + 30 s
    (episode,) = out.of("slouch")
    # It ends where the 12 s of movement began (longer than hold_max_s = 5 s).
    assert episode.end_t == pytest.approx(84.0, abs=0.5)


def test_disabled_alerts_and_no_buzz():
    off = run(engine(enabled=False), timeline([(10, UPRIGHT), (60, LUMBAR), (10, UPRIGHT)]))
    assert off.of("slouch")[0].data["alert_state"] == "disabled"
    assert off.buzz == []
    quiet = run(engine(buzz=False), timeline([(10, UPRIGHT), (60, LUMBAR), (10, UPRIGHT)]))
    assert quiet.of("slouch")[0].data["alert_state"] == "sent"
    assert quiet.buzz == []


def test_three_sensors_alert_a_mild_slouch_through_the_whole_spine():
    """Thoracic 6° + lumbar 7° reach neither regional threshold; their sum, 13°, passes the 10° whole-spine one."""
    out = run(engine(), timeline([(10, UPRIGHT), (60, MILD), (10, UPRIGHT)]))
    (episode,) = out.of("slouch")
    assert episode.data["segments"] == ["spine"]
    assert episode.data["peak_deg"] == {"thoracic": 6.0, "lumbar": 7.0, "spine": 13.0}
    assert episode.start_t == pytest.approx(10.0 + 10.0 / 13.0 + 30.0, abs=0.021)


def test_a_slouch_confined_to_one_region_alerts_through_its_threshold():
    """A rounded upper back over a hollow lower back: thoracic 17° ≥ 15°, but spine 17 − 8 = 9° < 10°."""
    out = run(engine(), timeline([(10, UPRIGHT), (60, {"thoracic": 17.0, "lumbar": -8.0}), (10, UPRIGHT)]))
    (episode,) = out.of("slouch")
    assert episode.data["segments"] == ["thoracic"]


def test_single_sensor_uses_the_trunk_threshold():
    eng = PostureEngine(AlertsConfig(), (UT,))
    mild = run(eng, timeline([(10, UPRIGHT), (60, MILD), (10, UPRIGHT)], placements=(UT,)))
    # trunk = 6 + 7 − 4 = 9° < 10°: the pelvis tilting back hides part of the spine's flexion from one sensor.
    assert mild.started == []
    out = run(eng, timeline([(10, UPRIGHT), (60, THORACIC), (10, UPRIGHT)], placements=(UT,), start_t=80.0))
    (episode,) = out.of("slouch")
    assert episode.data["segments"] == ["trunk"]
    assert episode.data["threshold_deg"] == {"trunk": 10.0}
    assert episode.data["peak_deg"] == {"trunk": 19.0}  # 20 + 3 − 4
