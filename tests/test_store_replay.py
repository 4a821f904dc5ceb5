"""Replay: the same settings reproduce the live angles exactly; other settings make a derived session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import numpy as np
import pytest

from sensorhub.config import AlertsConfig, QuietHours
from sensorhub.errors import InputError
from sensorhub.model import ImuBatch, Placement
from sensorhub.pipeline.calibration import calibrate_rig
from sensorhub.pipeline.rig import RigSettings
from sensorhub.pipeline.spine import SpinePipeline
from sensorhub.posture.engine import PostureEngine
from sensorhub.sim.wearer import WearerConfig
from sensorhub.store import SessionStore, stored_precision
from sensorhub.store.replay import ProcessingSettings, replay
from sensorhub.store.simulated import record_simulation
from tests.store_helpers import ALL, EPOCH, sim_batches, template

FIELDS = ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg", "spine_flexion_deg")


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    rec = template(tmp_path_factory.getbasetemp())
    with SessionStore(rec.copy_to(tmp_path)) as s:
        yield s


def _assert_same_angles(store: SessionStore, live_id: str, replay_id: str) -> None:
    live, live_labels = store.read_frame(live_id)
    again, labels = store.read_frame(replay_id)
    assert len(live) > 500
    np.testing.assert_array_equal(again.t, live.t)
    for name in FIELDS:
        a, b = getattr(live, name), getattr(again, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            ok = ~np.isnan(a)
            assert np.max(np.abs(a[ok] - b[ok])) <= 1e-9, name
    assert labels == live_labels


def test_replay_with_the_session_settings_reproduces_the_live_session(store):
    live = store.list_sessions()[0]
    result = replay(store, live.id, progress=False)
    derived = result.session
    assert derived is not None
    assert derived.parent_id == live.id
    assert not derived.record_raw
    _assert_same_angles(store, live.id, derived.id)
    live_events = [e.to_json() for e in store.read_events(live.id)]
    assert live_events
    assert [e.to_json() for e in store.read_events(derived.id)] == live_events
    assert [c.name for c in store.read_commands(derived.id)] == ["exercise", "exercise"]
    # The derived session exports its parent's raw data.
    assert sum(1 for _ in store.read_imu(derived.id)) == sum(1 for _ in store.read_imu(live.id))


def test_a_service_style_live_path_is_reproduced_too(tmp_path):
    """Ticks of several notifications through process_block, the calibration buffer processed at once."""
    placements = [Placement(p) for p in ALL]
    settings = ProcessingSettings(nominal_rate_hz=dict.fromkeys(ALL, 100.0))
    batches = sim_batches(70.0, seed=9)
    with SessionStore(tmp_path / "s.db") as store:
        rec = store.start_session(
            "alex", list(ALL), started_epoch=EPOCH, clock_offset_s=EPOCH, settings=settings.to_json()
        )
        engine = PostureEngine(AlertsConfig(), placements, epoch_offset_s=EPOCH)
        pipeline: SpinePipeline | None = None
        buffered: list[ImuBatch] = []
        first_index = rec.arrivals
        rng = random.Random(3)
        i = 0
        while i < len(batches):
            k = rng.randint(1, 12)
            tick = [stored_precision(b) for b in batches[i : i + k]]
            i += k
            for b in tick:
                rec.add_imu(b)
            if pipeline is None:
                buffered.extend(tick)
                if max(float(b.t[-1]) for b in buffered if b.placement == Placement.SACRAL) < 45.0:
                    continue
                data = {}
                for p in placements:
                    joined = ImuBatch.join([b for b in buffered if b.placement == p])
                    data[p.value] = (joined.t, joined.acc, joined.gyro)
                cal = calibrate_rig(data, neutral=(0.0, 10.0), functional="auto")
                pipeline = SpinePipeline(cal, nominal_rate_hz=100.0, rig_settings=RigSettings())
                rec.set_calibration(cal, from_batch=first_index)
                frame = pipeline.process_block(buffered)
            else:
                frame = pipeline.process_block(tick)
            if len(frame):
                out = engine.process(frame)
                rec.add_frame(frame, [p.value for p in out.labels])
        assert pipeline is not None
        frame = pipeline.flush()  # the service flushes at the end, as a replay does
        rec.add_frame(frame, [p.value for p in engine.process(frame).labels])
        rec.close()
        result = replay(store, rec.id, progress=False)
        assert result.session is not None
        _assert_same_angles(store, rec.id, result.session.id)


def test_replay_with_other_thresholds_is_stored_with_its_settings(store):
    live = store.list_sessions()[0]
    base = ProcessingSettings.from_json(live.settings)
    strict = dataclasses.replace(
        base,
        alerts=dataclasses.replace(
            base.alerts, thoracic_threshold_deg=0.5, lumbar_threshold_deg=0.5, hysteresis_deg=0.2, dwell_s=1.0
        ),
    )
    result = replay(store, live.id, settings=strict, progress=False)
    assert result.session is not None
    derived = store.get(result.session.id)
    assert derived.settings["alerts"]["thoracic_threshold_deg"] == 0.5
    assert derived.settings["replay"] == {"of": live.id, "calibration": "session"}
    live_frame, live_labels = store.read_frame(live.id)
    frame, labels = store.read_frame(derived.id)
    np.testing.assert_array_equal(frame.trunk_flexion_deg, live_frame.trunk_flexion_deg)  # angles unchanged
    assert labels.count("slouched") > live_labels.count("slouched")


def test_replay_with_a_recomputed_calibration_and_another_estimator(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        live = record_simulation(
            store, WearerConfig(scenario="desk_session", duration_s=24.0, seed=2), calibrate_at_s=14.0
        )
        base = ProcessingSettings.from_json(live.settings)
        result = replay(
            store,
            live.id,
            settings=dataclasses.replace(base, estimator="complementary"),
            calibration="recompute",
            neutral=(0.5, 10.0),
            functional=None,
            progress=False,
        )
        assert result.session is not None
        frame, _ = store.read_frame(result.session.id)
        assert len(frame) > len(store.read_frame(live.id)[0])  # angles from the first sample on
        assert result.calibrations[0][0] == 0
        assert result.calibrations[0][1].sensors["sacral"].axis_source == "nominal"
        assert result.session.settings["estimator"] == "complementary"
        assert result.session.settings["replay"] == {"of": live.id, "calibration": "recompute"}


def test_replay_without_saving_stores_nothing(store):
    live = store.list_sessions()[0]
    result = replay(store, live.id, record=False, progress=False)
    assert result.session is None
    assert result.frames > 500
    assert len(store.list_sessions()) == 1


def test_replay_needs_raw_data_and_a_calibration(tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        rec = store.start_session("a", ["sacral"], started_epoch=EPOCH, clock_offset_s=EPOCH)
        rec.close()
        with pytest.raises(InputError, match="no raw IMU data"):
            replay(store, rec.id, progress=False)
        rec = store.start_session("a", list(ALL), started_epoch=EPOCH, clock_offset_s=EPOCH)
        for b in sim_batches(12.0):
            rec.add_imu(b)
        rec.close()
        with pytest.raises(InputError, match="calibration recompute"):
            replay(store, rec.id, progress=False)
        # Without stored rates they are measured from the data.
        result = replay(store, rec.id, calibration="recompute", functional=None, record=False, progress=False)
        assert result.settings.nominal_rate_hz["sacral"] == pytest.approx(100.0, rel=0.05)  # the simulated clock drifts


def test_processing_settings_round_trip_through_json():
    settings = ProcessingSettings(
        estimator="complementary",
        nominal_rate_hz={"sacral": 52.0},
        rig=RigSettings(output_rate_hz=25.0, max_gap_s=0.5, sensor_timeout_s=3.0),
        alerts=dataclasses.replace(
            AlertsConfig(), dwell_s=12.0, quiet_hours=QuietHours(dt.time(22, 0), dt.time(7, 30)), buzz=False
        ),
    )
    assert ProcessingSettings.from_json(settings.to_json()) == settings
    assert ProcessingSettings.from_json({}) == ProcessingSettings()
    with pytest.raises(InputError):
        ProcessingSettings.from_json({"rig": 5})
