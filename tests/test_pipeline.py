"""The spine pipeline end to end on the simulator: chunk invariance and accuracy on short runs.

The full accuracy figures come from ``bench/pipeline.py``; these short runs have tolerances with
headroom over what was measured, so that they fail on a real regression, not on noise.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sensorhub.analyze import analyze_batches
from sensorhub.model import ImuBatch, Placement
from sensorhub.pipeline.orientation import make_estimator
from sensorhub.pipeline.spine import SensorPipeline, SpinePipeline, concat_frames
from sensorhub.sim.evaluate import evaluate, max_error_during
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL


@pytest.fixture(scope="module")
def desk_60s() -> tuple[list[ImuBatch], object]:
    batches = [b for _, b in iter_batches(SimulatedWearer(WearerConfig(duration_s=60.0, seed=4)))]
    calibration = analyze_batches(batches, neutral=(0.0, 12.0), functional="auto").calibration
    return batches, calibration


def _per_sensor(batches: list[ImuBatch], placement: Placement) -> ImuBatch:
    return ImuBatch.join([b for b in batches if b.placement is placement])


def _split(batch: ImuBatch, sizes: list[int]) -> list[ImuBatch]:
    out, i = [], 0
    for n in sizes:
        if i >= len(batch):
            break
        j = min(len(batch), i + n)
        seq = None if batch.seq is None else batch.seq[i:j]
        out.append(ImuBatch(batch.sensor_id, batch.placement, batch.t[i:j], batch.acc[i:j], batch.gyro[i:j], seq))
        i = j
    return out


@pytest.mark.parametrize("estimator", ["vqf", "complementary"])
@pytest.mark.usefixtures("implementation")
def test_sensor_stage_is_chunk_invariant(desk_60s, estimator):
    """One sensor's whole recording at once == random chunks (including single samples), to 1e-9°."""
    batches, calibration = desk_60s
    whole = _per_sensor(batches, UT)
    cal = calibration.sensors[UT.value]
    ref = SensorPipeline(cal, make_estimator(estimator, 100.0)).process(whole)
    rng = np.random.default_rng(1)
    sizes = [1] * 50 + list(rng.integers(1, 300, 400))
    pipe = SensorPipeline(cal, make_estimator(estimator, 100.0))
    parts = [pipe.process(b) for b in _split(whole, sizes)]
    got = np.concatenate([p.inclination_deg for p in parts])
    np.testing.assert_allclose(got, ref.inclination_deg, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.concatenate([p.t for p in parts]), ref.t)


@pytest.mark.usefixtures("implementation")
def test_whole_pipeline_is_chunk_invariant(desk_60s):
    """Notifications as delivered == the same samples re-cut into random chunks (time order kept)."""
    batches, calibration = desk_60s
    ref_pipe = SpinePipeline(calibration)
    ref = concat_frames([*(ref_pipe.process(b) for b in batches), ref_pipe.flush()])
    rng = np.random.default_rng(2)
    recut: list[ImuBatch] = []
    for placement in (UT, TL, SA):
        whole = _per_sensor(batches, placement)
        recut.extend(_split(whole, [int(n) for n in rng.integers(1, 120, 10_000)]))
    recut.sort(key=lambda b: float(b.t[-1]))
    pipe = SpinePipeline(calibration)
    got = concat_frames([*(pipe.process(b) for b in recut), pipe.flush()])
    np.testing.assert_array_equal(got.t, ref.t)
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_desk_accuracy_three_sensors(seed):
    ev = evaluate(WearerConfig(scenario="desk_session", duration_s=240.0, seed=seed))
    acc = ev.accuracy
    assert ev.result.calibration.functional_window is not None
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg"):
        assert acc[name].rmse_deg < 0.6, (name, acc[name])
        assert acc[name].max_abs_deg < 4.0, (name, acc[name])
    assert acc["trunk_flexion_deg"].rmse_deg < 0.7
    assert acc["pelvis_tilt_deg"].rmse_deg < 0.7


def test_one_sensor_gives_trunk_only():
    ev = evaluate(WearerConfig(duration_s=180.0, seed=2, placements=(UT,)))
    frame = ev.result.frame
    assert frame.thoracic_flexion_deg is None
    assert frame.lumbar_flexion_deg is None
    assert frame.pelvis_tilt_deg is None
    assert ev.accuracy["trunk_flexion_deg"].rmse_deg < 0.8


def test_nominal_mounting_without_functional_movement():
    ev = evaluate(WearerConfig(duration_s=240.0, seed=3, functional="none", nominal_mounting=True), functional=None)
    assert ev.result.calibration.functional_window is None
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg"):
        assert ev.accuracy[name].rmse_deg < 0.8, (name, ev.accuracy[name])


def test_offline_mode_runs_the_same_calibration():
    ev = evaluate(WearerConfig(duration_s=120.0, seed=5), offline=True)
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg"):
        assert ev.accuracy[name].rmse_deg < 0.6, (name, ev.accuracy[name])


def test_chair_swivels_do_not_make_flexion_jump():
    """With 20 mg-class accelerometer offsets, a 20–70° swivel must not move any angle by > 1°
    (measured ≤ 0.8° with the swivel gate, 1.0–1.8° without it)."""
    ev = evaluate(WearerConfig(scenario="desk_session", duration_s=600.0, seed=1))
    swivels = [e for e in ev.wearer.events() if e.type == "activity" and e.data["activity"] == "swivel"]
    assert len(swivels) >= 2
    worst = max_error_during(ev, "swivel")
    for name, err in worst.items():
        assert err < 1.0, (name, err)
    gates = [p.swivel_gate for p in SpinePipeline(ev.result.calibration).sensors.values()]
    assert all(g is not None for g in gates)


def test_swivel_gate_leaves_flexion_rotations_alone():
    """Rotation about a horizontal axis (flexion) is never gated; rotation about the vertical is."""
    from sensorhub.pipeline.spine import SwivelGate

    gate = SwivelGate(np.zeros(3), 100.0)
    acc = np.tile([9.80665, 0.0, 0.0], (200, 1))  # sensor x is up
    flex = np.tile([0.0, 0.5, 0.0], (200, 1))  # 29 °/s about the left axis
    np.testing.assert_array_equal(gate.process(acc, flex), flex)
    swivel = np.tile([0.8, 0.05, 0.0], (200, 1))  # 46 °/s, 3.6° off the vertical
    out = gate.process(acc, swivel)
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 0], 0.8)
    assert gate.gated_samples == 200


@pytest.mark.usefixtures("implementation")
def test_per_tick_blocks_give_the_same_angles(desk_60s):
    """Feeding 100 ms ticks (notifications joined per sensor) == feeding notifications one by one."""
    batches, calibration = desk_60s
    one = SpinePipeline(calibration)
    ref = concat_frames([*(one.process(b) for b in batches), one.flush()])
    ticks: list[list[ImuBatch]] = []
    edge = -1.0
    for b in batches:
        if float(b.t[-1]) >= edge:
            ticks.append([])
            edge = (float(b.t[-1]) // 0.1 + 1) * 0.1
        ticks[-1].append(b)
    blk = SpinePipeline(calibration)
    got = concat_frames([*(blk.process_block(tick) for tick in ticks), blk.flush()])
    np.testing.assert_array_equal(got.t, ref.t)
    np.testing.assert_allclose(got.thoracic_flexion_deg, ref.thoracic_flexion_deg, rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(got.lumbar_flexion_deg, ref.lumbar_flexion_deg, rtol=0, atol=1e-9, equal_nan=True)


def test_swivel_gate_small_batches_match_large_ones():
    """The Python-float path for small batches gives the vectorised path's output to rounding."""
    from sensorhub.pipeline.spine import SwivelGate

    rng = np.random.default_rng(3)
    n = 3000
    t = np.arange(n) / 100.0
    tilt = 0.3 * np.sin(0.2 * t)  # the vertical wanders around sensor x
    acc = 9.80665 * np.stack([np.cos(tilt), np.sin(tilt), np.zeros(n)], axis=1) + rng.normal(0, 0.05, (n, 3))
    gyro = rng.normal(0, 0.02, (n, 3))
    turning = (t % 6.0) < 1.5  # swivels about the vertical now and then
    gyro[turning] += np.stack([np.cos(tilt), np.sin(tilt), np.zeros(n)], axis=1)[turning] * 0.9
    bias = np.array([0.002, -0.001, 0.003])
    whole_gate = SwivelGate(bias, 100.0)
    whole = whole_gate.process(acc, gyro)
    small_gate = SwivelGate(bias, 100.0)
    cuts = np.cumsum(rng.integers(1, 40, size=n))
    cuts = np.concatenate(([0], cuts[cuts < n], [n]))
    parts = [small_gate.process(acc[a:b], gyro[a:b]) for a, b in itertools.pairwise(cuts)]
    assert whole_gate.gated_samples > 500
    assert small_gate.gated_samples == whole_gate.gated_samples
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)
