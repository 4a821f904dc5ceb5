"""Movement intensity for the posture classifier: per-sensor meter, rig resampling, chunk invariance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sensorhub.analyze import analyze_batches
from sensorhub.model import GRAVITY_MPS2, ImuBatch, Placement, SensorAngles
from sensorhub.pipeline.rig import Rig
from sensorhub.pipeline.spine import MovementMeter, SpinePipeline, concat_frames
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL


def _signals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(n) / 100.0
    tilt = 0.3 * np.sin(0.4 * t)
    up = np.stack([np.cos(tilt), np.zeros(n), np.sin(tilt)], axis=1)
    acc = GRAVITY_MPS2 * up + rng.normal(0, 0.3, (n, 3))
    gyro = rng.normal(0, 0.1, (n, 3))
    return acc, gyro, up


def test_meter_small_batches_match_large_ones():
    """The Python-float path for small batches equals the array path to rounding, NaN rows included;
    which samples feed the meter (every 4th at 100 Hz) follows the stream, not the cuts."""
    rng = np.random.default_rng(5)
    n = 3000
    acc, gyro, up = _signals(n, rng)
    up[1000:1010] = np.nan  # samples the orientation filter dropped
    bias = np.array([0.01, -0.02, 0.005])
    whole = MovementMeter(bias, 100.0).process(acc, gyro, up)
    meter = MovementMeter(bias, 100.0)
    cuts = np.cumsum(rng.integers(1, 90, size=n))
    cuts = np.concatenate(([0], cuts[cuts < n], [n]))
    parts = np.concatenate([meter.process(acc[a:b], gyro[a:b], up[a:b]) for a, b in itertools.pairwise(cuts)])
    assert (whole[996:1012] == whole[996]).all()  # rows without an orientation hold the value
    assert np.isfinite(whole).all()  # and do not poison the filter
    assert whole[1012] != whole[996]
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_meter_ignores_rotation_about_the_vertical_and_sees_tilting():
    """A chair swivel (rotation about world up) is no movement; the same rate about a horizontal axis is."""
    n = 500
    up = np.tile([1.0, 0.0, 0.0], (n, 1))  # sensor x points up
    acc = GRAVITY_MPS2 * up
    rate = np.radians(60.0)
    swivel = MovementMeter(np.zeros(3), 100.0).process(acc, np.tile([rate, 0.0, 0.0], (n, 1)), up)
    tilting = MovementMeter(np.zeros(3), 100.0).process(acc, np.tile([0.0, rate, 0.0], (n, 1)), up)
    assert swivel[-1] == pytest.approx(0.0, abs=1e-12)
    # RMS of 60 °/s ÷ 30 °/s once the low-pass has settled.
    assert tilting[-1] == pytest.approx(2.0, rel=1e-6)


def test_rig_takes_the_largest_sensor_movement_and_none_without_meters():
    t = np.arange(0.0, 2.0, 0.01)
    zeros = np.zeros(len(t), dtype=bool)
    rig = Rig((UT, SA))
    rig.push(SensorAngles("a", UT, t, np.zeros(len(t)), zeros, np.full(len(t), 0.25)))
    rig.push(SensorAngles("b", SA, t, np.zeros(len(t)), zeros, np.full(len(t), 1.0)))
    frame = rig.flush()
    assert frame.movement is not None
    np.testing.assert_allclose(frame.movement, 1.0)  # the larger of the two
    bare = Rig((UT,))
    bare.push(SensorAngles("a", UT, t, np.zeros(len(t)), zeros))
    assert bare.flush().movement is None


def test_rig_keeps_the_inclination_where_movement_is_unknown():
    """A sample whose movement is NaN (the meter has no value yet) still has its inclination."""
    t = np.arange(0.0, 1.0, 0.01)
    movement = np.full(len(t), 0.1)
    movement[:30] = np.nan
    rig = Rig((UT,))
    rig.push(SensorAngles("a", UT, t, np.full(len(t), 5.0), np.zeros(len(t), dtype=bool), movement))
    frame = rig.flush()
    assert frame.trunk_flexion_deg is not None
    assert frame.movement is not None
    np.testing.assert_allclose(frame.trunk_flexion_deg, 5.0)
    assert np.isnan(frame.movement[frame.t < 0.28]).all()
    np.testing.assert_allclose(frame.movement[frame.t > 0.3], 0.1)


def test_rig_movement_is_nan_across_a_gap():
    t = np.concatenate([np.arange(0.0, 1.0, 0.01), np.arange(2.0, 3.0, 0.01)])
    rig = Rig((UT,))
    rig.push(SensorAngles("a", UT, t, np.zeros(len(t)), np.zeros(len(t), dtype=bool), np.full(len(t), 0.04)))
    frame = rig.flush()
    assert frame.movement is not None
    gap = (frame.t > 0.995) & (frame.t < 2.0)
    assert np.isnan(frame.movement[gap]).all()
    np.testing.assert_allclose(frame.movement[~gap], 0.04)


@pytest.fixture(scope="module")
def desk_50s() -> tuple[list[ImuBatch], object]:
    batches = [b for _, b in iter_batches(SimulatedWearer(WearerConfig(duration_s=50.0, seed=3)))]
    calibration = analyze_batches(batches, neutral=(0.0, 12.0), functional="auto", posture=False).calibration
    return batches, calibration


def test_pipeline_movement_is_chunk_invariant(desk_50s):
    """Notifications as delivered == samples re-cut into random chunks, for movement as for the angles."""
    batches, calibration = desk_50s
    ref_pipe = SpinePipeline(calibration)
    ref = concat_frames([*(ref_pipe.process(b) for b in batches), ref_pipe.flush()])
    rng = np.random.default_rng(7)
    recut: list[ImuBatch] = []
    for placement in (UT, TL, SA):
        whole = ImuBatch.join([b for b in batches if b.placement is placement])
        i = 0
        for n in rng.integers(1, 150, 10_000):
            if i >= len(whole):
                break
            j = min(len(whole), i + int(n))
            seq = None if whole.seq is None else whole.seq[i:j]
            recut.append(ImuBatch(whole.sensor_id, placement, whole.t[i:j], whole.acc[i:j], whole.gyro[i:j], seq))
            i = j
    recut.sort(key=lambda b: float(b.t[-1]))
    pipe = SpinePipeline(calibration)
    got = concat_frames([*(pipe.process(b) for b in recut), pipe.flush()])
    assert ref.movement is not None
    assert got.movement is not None
    np.testing.assert_array_equal(got.t, ref.t)
    np.testing.assert_allclose(got.movement, ref.movement, rtol=0, atol=1e-9, equal_nan=True)
    # Still typing at a desk stays well below the "moving" level; the bends of the calibration do not.
    typing = (ref.t > 43.0) & (ref.t < 50.0)  # the bends end at 37.3 s, then 3 s still, then typing
    assert np.nanmax(ref.movement[typing]) < 0.3
    assert np.nanmax(ref.movement[(ref.t > 12.0) & (ref.t < 37.0)]) > 0.4
