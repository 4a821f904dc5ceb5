"""The C kernel of the streaming pipeline (sensorhub/pipeline/_kernel.c) against the Python code.

The Python loops are the reference: a SensorPipeline with ``_kernel = None`` runs them. Both must
give the same angles, movement, rest flags and counters on clean streams, on streams with faults
(lost samples, NaN rows, time going backwards, saturation, a rate change, long gaps) and on arrays
the kernel does not take (then the Python path runs).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorhub.analyze import analyze_batches
from sensorhub.model import ImuBatch, Placement
from sensorhub.pipeline import kernel
from sensorhub.pipeline.orientation import _StreamEstimator
from sensorhub.pipeline.spine import SpinePipeline, concat_frames
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL
FIELDS = ("trunk_flexion_deg", "thoracic_flexion_deg", "lumbar_flexion_deg", "pelvis_tilt_deg", "movement")

needs_kernel = pytest.mark.skipif(kernel.kernel is None, reason=f"the C kernel does not run: {kernel.status()}")


def _compiler_present() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc) is not None and headers.exists()


def test_kernel_is_built_where_a_compiler_is():
    """`make` installs with the kernel whenever a C compiler and the Python headers are there."""
    if os.environ.get("SENSORHUB_KERNEL") == "0":
        pytest.skip("turned off with SENSORHUB_KERNEL=0")
    if kernel.kernel is None and not _compiler_present():
        pytest.skip("no C compiler or Python headers on this machine: the pure-Python pipeline runs")
    assert kernel.kernel is not None, kernel.status()
    assert kernel.status() == "C kernel"


def _recording(scenario: str, seed: int, duration_s: float) -> tuple[list[ImuBatch], object]:
    batches = [
        b for _, b in iter_batches(SimulatedWearer(WearerConfig(scenario=scenario, seed=seed, duration_s=duration_s)))
    ]
    calibration = analyze_batches(batches, neutral=(0.0, 12.0), functional="auto").calibration
    return batches, calibration


@pytest.fixture(scope="module")
def desk() -> tuple[list[ImuBatch], object]:
    return _recording("desk_session", 5, 300.0)


def _pipelines(calibration: object, estimator: str = "vqf") -> tuple[SpinePipeline, SpinePipeline]:
    fast = SpinePipeline(calibration, estimator=estimator)  # type: ignore[arg-type]
    ref = SpinePipeline(calibration, estimator=estimator)  # type: ignore[arg-type]
    for sensor in ref.sensors.values():
        sensor._kernel = None
    ref.rig.kernel = None
    return fast, ref


def _run(pipe: SpinePipeline, batches: list[ImuBatch]) -> tuple[object, list[np.ndarray]]:
    rests: list[np.ndarray] = []
    frames = []
    for b in batches:
        sensor = pipe.sensors[b.placement]
        angles = sensor.process(b)
        rests.append(angles.rest)
        frames.append(pipe.rig.process(angles))
    frames.append(pipe.flush())
    return concat_frames(frames), rests


def _assert_same(fast: SpinePipeline, ref: SpinePipeline, batches: list[ImuBatch]) -> None:
    got, got_rest = _run(fast, batches)
    want, want_rest = _run(ref, batches)
    np.testing.assert_array_equal(got.t, want.t)  # type: ignore[attr-defined]
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=name)
    for a, b in zip(got_rest, want_rest, strict=True):
        np.testing.assert_array_equal(a, b)
    for placement, sensor in fast.sensors.items():
        other = ref.sensors[placement]
        est, est_ref = sensor.estimator, other.estimator
        assert isinstance(est, _StreamEstimator)
        assert isinstance(est_ref, _StreamEstimator)
        assert est._counts == est_ref._counts
        assert est.period_s == est_ref.period_s
        assert est.filter_period_s == est_ref.filter_period_s
        assert sensor.movement.count == other.movement.count
        assert sensor.movement.state == other.movement.state
        if sensor.swivel_gate is not None:
            assert other.swivel_gate is not None
            assert sensor.swivel_gate.gated_samples == other.swivel_gate.gated_samples
            np.testing.assert_array_equal(sensor.swivel_gate.zi, other.swivel_gate.zi)


@needs_kernel
@pytest.mark.parametrize("estimator", ["vqf", "complementary"])
def test_kernel_matches_python_on_a_desk_session(desk, estimator):
    """Notifications as delivered: every output and counter the same (angles to 1e-9°)."""
    batches, calibration = desk
    if estimator == "complementary":  # the slow one: its first 100 s
        batches = [b for b in batches if b.t[0] < 100.0]
    fast, ref = _pipelines(calibration, estimator)
    _assert_same(fast, ref, batches)
    if estimator == "vqf":
        gate = fast.sensors[UT].swivel_gate
        assert gate is not None
        assert gate.gated_samples > 0  # the session's swivels went through the kernel's gate


@needs_kernel
@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "seed"), [("confounders", 1), ("cat_camel", 2)])
def test_kernel_matches_python_on_other_scenarios(scenario, seed):
    batches, calibration = _recording(scenario, seed, 75.0)
    fast, ref = _pipelines(calibration)
    _assert_same(fast, ref, batches)


def _with_faults(batches: list[ImuBatch]) -> list[ImuBatch]:
    """The upper thoracic sensor's stream with faults; the other sensors as they were."""
    out = []
    for i, b in enumerate(batches):
        if b.placement is not UT or i < 400:
            out.append(b)
            continue
        t, acc, gyro = b.t.copy(), b.acc.copy(), b.gyro.copy()
        seq = None if b.seq is None else b.seq.copy()
        kind = i % 97
        if kind == 3:  # a NaN row
            acc[0, 1] = np.nan
        elif kind == 11 and len(t) > 1:  # time going backwards
            t[-1] = t[0] - 0.001
        elif kind == 23:  # a clipped gyro axis
            gyro[0, 2] = 40.0
        elif kind == 31:  # an accelerometer axis at full scale
            acc[-1, 0] = 16.0 * 9.80665
        elif kind == 47:  # lost notification: drop the batch
            continue
        elif kind == 61 and seq is not None:  # a counter reset
            seq = seq - seq[0]
        if 3000 <= i < 3400:  # 2 % faster clock for a while: a rate change
            t = t[0] + (t - t[0]) * 0.98
        out.append(ImuBatch(b.sensor_id, b.placement, t, acc, gyro, seq))
    # One 2.5 s hole in the middle sensor.
    t_hole = float(batches[len(batches) // 2].t[0])
    return [b for b in out if not (b.placement is TL and t_hole <= float(b.t[0]) < t_hole + 2.5)]


@needs_kernel
def test_kernel_matches_python_with_faults(desk):
    batches, calibration = desk
    faulty = _with_faults(batches)
    fast, ref = _pipelines(calibration)
    _assert_same(fast, ref, faulty)
    counts = fast.sensors[UT].estimator._counts  # type: ignore[attr-defined]
    assert counts["invalid"] > 0
    assert counts["saturated"] > 0
    assert counts["gaps"] > 0
    assert fast.sensors[TL].estimator._counts["gaps"] > 0  # type: ignore[attr-defined]


@needs_kernel
def test_arrays_the_kernel_does_not_take_go_through_python(desk):
    """Fortran-ordered arrays (not C-contiguous): the kernel declines, nothing changes, Python runs."""
    batches, calibration = desk
    odd = [
        ImuBatch(b.sensor_id, b.placement, b.t, np.asfortranarray(b.acc), np.asfortranarray(b.gyro), b.seq)
        if i % 3 == 0
        else b
        for i, b in enumerate(batches)
    ]
    assert not odd[3].acc.flags.c_contiguous
    fast, ref = _pipelines(calibration)
    _assert_same(fast, ref, odd)


@needs_kernel
def test_kernel_front_declines_what_it_cannot_read():
    k = kernel.kernel
    assert k is not None
    with pytest.raises(TypeError):
        k.front(1, 2)
    m = 4
    t = np.arange(m, dtype=np.float64)
    acc, gyro = np.zeros((m, 3)), np.zeros((m, 3))
    zi = np.zeros((1, 3))
    outs = (np.empty((m, 3)), np.empty((m, 3)), np.empty(m, dtype=bool))
    params = np.zeros(26)
    assert k.front(t.astype(np.float32), acc, gyro, None, None, -1.0, -1.0, [0.01] * 8, params, zi, *outs) is None
    assert k.front(t, acc[:3], gyro, None, None, -1.0, -1.0, [0.01] * 8, params, zi, *outs) is None
    assert k.front(t, acc, gyro, t, None, -1.0, -1.0, [0.01] * 8, params, zi, *outs) is None  # float seq
    assert k.front(t, acc, gyro, None, None, -1.0, -1.0, [0.01] * 8, np.zeros(25), zi, *outs) is None
    frozen = np.zeros((1, 3))
    frozen.flags.writeable = False
    assert k.front(t, acc, gyro, None, None, -1.0, -1.0, [0.01] * 8, params, frozen, *outs) is None
    with pytest.raises(TypeError):
        k.front(t, acc, gyro, None, None, -1.0, -1.0, (0.01,) * 8, params, zi, *outs)


_CALIBRATION: list[object] = []


def _sensor_calibration() -> object:
    """One sensor's calibration from a short simulated session (made once)."""
    if not _CALIBRATION:
        _, calibration = _recording("desk_session", 3, 40.0)
        _CALIBRATION.append(calibration.sensors[UT.value])  # type: ignore[attr-defined]
    return _CALIBRATION[0]


@needs_kernel
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_matches_python_on_random_streams(data):
    """Random small batches — steps that jitter, stop or go back, counter jumps, NaN and huge
    values — through a sensor with the kernel and one without: the same outputs and counters."""
    from sensorhub.pipeline.orientation import make_estimator
    from sensorhub.pipeline.spine import SensorPipeline

    cal = _sensor_calibration()
    fast = SensorPipeline(cal, make_estimator("vqf", 100.0))  # type: ignore[arg-type]
    ref = SensorPipeline(cal, make_estimator("vqf", 100.0))  # type: ignore[arg-type]
    ref._kernel = None
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    with_seq = data.draw(st.booleans())
    t, seq = 100.0, 0
    for _ in range(data.draw(st.integers(20, 60))):
        m = data.draw(st.integers(1, 70))
        jitter = data.draw(st.sampled_from([0.0, 0.002, 0.05]))
        steps = 0.01 * (1.0 + rng.normal(0.0, jitter, m))
        kind = data.draw(st.sampled_from(["plain"] * 6 + ["gap", "back", "nan", "huge", "jump"]))
        if kind == "gap":
            steps[0] += data.draw(st.sampled_from([0.03, 0.3, 3.0]))
        elif kind == "back":
            steps[rng.integers(m)] = -0.004
        times = t + np.cumsum(steps)
        acc = np.array([0.3, 9.6, 1.2]) + rng.normal(0.0, 0.2, (m, 3))
        gyro = rng.normal(0.0, data.draw(st.sampled_from([0.01, 0.5, 3.0])), (m, 3))
        if kind == "nan":
            acc[rng.integers(m), rng.integers(3)] = np.nan
        elif kind == "huge":
            gyro[rng.integers(m), rng.integers(3)] = 40.0
        counter = seq + 1 + np.arange(m) + (rng.integers(2, 9) if kind == "jump" else 0)
        batch = ImuBatch("s", UT, times, acc, gyro, counter if with_seq else None)
        a, b = fast.process(batch), ref.process(batch)
        np.testing.assert_allclose(a.inclination_deg, b.inclination_deg, rtol=0, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(a.rest, b.rest)
        assert a.movement is not None
        assert b.movement is not None
        np.testing.assert_allclose(a.movement, b.movement, rtol=0, atol=1e-12, equal_nan=True)
        t, seq = float(times.max()), int(counter[-1])
    assert fast.estimator._counts == ref.estimator._counts  # type: ignore[attr-defined]
    assert fast.movement.state == ref.movement.state
