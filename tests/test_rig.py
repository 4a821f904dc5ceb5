"""The rig: resampling onto a common grid, the angles each sensor set allows, gaps and timeouts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sensorhub.errors import InputError
from sensorhub.model import Placement, SensorAngles
from sensorhub.pipeline.rig import Rig, RigSettings, available_angles

pytestmark = pytest.mark.usefixtures("implementation")  # every test with the C kernel and in Python

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL


def angles(p: Placement, t: np.ndarray, v: np.ndarray) -> SensorAngles:
    return SensorAngles(f"s-{p.value}", p, np.asarray(t, float), np.asarray(v, float), np.zeros(len(t), bool))


def stream(p: Placement, rate: float, phase: float, duration: float, slope: float, offset: float):
    t = phase + np.arange(int(duration * rate)) / rate
    return t, offset + slope * t


def concat(frames, name):
    return np.concatenate([getattr(f, name) for f in frames])


@pytest.mark.parametrize(
    ("placements", "expected"),
    [
        ((UT,), ("trunk_flexion_deg",)),
        ((SA,), ("pelvis_tilt_deg",)),
        ((UT, SA), ("trunk_flexion_deg", "pelvis_tilt_deg", "spine_flexion_deg")),
        ((UT, TL), ("trunk_flexion_deg", "thoracic_flexion_deg")),
        (
            (UT, TL, SA),
            ("trunk_flexion_deg", "pelvis_tilt_deg", "thoracic_flexion_deg", "lumbar_flexion_deg", "spine_flexion_deg"),
        ),
    ],
)
def test_available_angles_never_guess(placements, expected):
    assert available_angles(placements) == expected
    rig = Rig(placements, start_t=0.0)
    for p in placements:
        t, v = stream(p, 100.0, 0.001, 2.0, 1.0, 0.0)
        rig.push(angles(p, t, v))
    frame = rig.flush()
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg"):
        assert (getattr(frame, name) is not None) == (name in expected)


def test_three_clocks_on_one_grid():
    """Sensors at 100, 104 and 52 Hz with their own phases; linear signals are resampled exactly."""
    rig = Rig((UT, TL, SA), RigSettings(output_rate_hz=50.0))
    ut = stream(UT, 100.0, 0.0031, 20.0, 2.0, 10.0)
    tl = stream(TL, 104.0, 0.0077, 20.0, 1.5, 4.0)
    sa = stream(SA, 52.0, 0.0123, 20.0, 0.5, 1.0)
    frames = []
    # Interleave ~40 ms notifications in time order, like a live rig.
    for k in range(500):
        lo, hi = k * 0.04, (k + 1) * 0.04
        for p, (t, v) in ((UT, ut), (TL, tl), (SA, sa)):
            m = (t >= lo) & (t < hi)
            frames.append(rig.process(angles(p, t[m], v[m])))
    frames.append(rig.flush())
    t = concat(frames, "t")
    assert np.all(np.diff(t) == pytest.approx(0.02))
    ok = np.isfinite(concat(frames, "thoracic_flexion_deg"))
    assert ok[1:-1].all()
    th = concat(frames, "thoracic_flexion_deg")[ok]
    lu = concat(frames, "lumbar_flexion_deg")[ok]
    tt = t[ok]
    np.testing.assert_allclose(th, (10.0 + 2.0 * tt) - (4.0 + 1.5 * tt), atol=1e-9)
    np.testing.assert_allclose(lu, (4.0 + 1.5 * tt) - (1.0 + 0.5 * tt), atol=1e-9)
    np.testing.assert_allclose(concat(frames, "trunk_flexion_deg")[ok], 10.0 + 2.0 * tt, atol=1e-9)
    np.testing.assert_allclose(concat(frames, "pelvis_tilt_deg")[ok], 1.0 + 0.5 * tt, atol=1e-9)


def test_batching_does_not_change_the_output():
    rng = np.random.default_rng(0)
    data = {p: stream(p, r, ph, 10.0, s, o) for p, r, ph, s, o in ((UT, 100, 0.002, 1, 0), (SA, 52, 0.01, -1, 3))}
    data = {p: (t, v + np.sin(7 * t)) for p, (t, v) in data.items()}

    def run(block_s: float) -> np.ndarray:
        rig = Rig((UT, SA))
        frames = []
        edges = np.append(np.arange(0.0, 10.5, block_s), 10.5)
        for lo, hi in itertools.pairwise(edges):
            for p, (t, v) in data.items():
                m = (t >= lo) & (t < hi)
                frames.append(rig.process(angles(p, t[m], v[m])))
        frames.append(rig.flush())
        return np.column_stack([concat(frames, "t"), concat(frames, "spine_flexion_deg")])

    # Any batching in which no sensor lags the others by more than the timeout (2 s).
    reference = run(0.01)
    assert np.isfinite(reference[1:-1, 1]).all()
    for block in (0.04, 0.37, float(rng.uniform(0.5, 1.9))):
        np.testing.assert_array_equal(run(block), reference)


def test_gap_becomes_nan_and_recovers():
    t, v = stream(UT, 100.0, 0.0, 10.0, 0.0, 5.0)
    keep = (t < 3.0) | (t > 4.0)  # one second lost
    rig = Rig((UT,), RigSettings(output_rate_hz=10.0, max_gap_s=0.25), start_t=0.0)
    frame = rig.process(angles(UT, t[keep], v[keep]))
    frame2 = rig.flush()
    ft = np.concatenate([frame.t, frame2.t])
    fv = np.concatenate([frame.trunk_flexion_deg, frame2.trunk_flexion_deg])
    # Samples at 2.99 s and 4.01 s bracket the instants 3.0 … 4.0: all eleven are a gap.
    gap = (ft > 2.995) & (ft < 4.005)
    assert np.isnan(fv[gap]).all()
    assert gap.sum() == 11
    assert np.isfinite(fv[~gap]).all()


def test_stopped_sensor_goes_empty_after_timeout_and_does_not_hold_the_rest():
    rig = Rig((UT, SA), RigSettings(output_rate_hz=10.0, sensor_timeout_s=2.0), start_t=0.0)
    t_ut, v_ut = stream(UT, 100.0, 0.0, 10.0, 0.0, 1.0)
    t_sa, v_sa = stream(SA, 100.0, 0.0, 3.0, 0.0, 2.0)  # stops at 3 s
    frames = []
    for lo in np.arange(0.0, 10.0, 0.1):
        for p, t, v in ((UT, t_ut, v_ut), (SA, t_sa, v_sa)):
            m = (t >= lo) & (t < lo + 0.1)
            frames.append(rig.process(angles(p, t[m], v[m])))
    t = concat(frames, "t")
    # Without flush, output reaches to within the timeout of the live sensor's data.
    assert t[-1] > 9.8
    pelvis = concat(frames, "pelvis_tilt_deg")
    trunk = concat(frames, "trunk_flexion_deg")
    assert np.isfinite(trunk).all()
    assert np.isnan(pelvis[t > 3.0]).all()
    assert np.isfinite(pelvis[t < 2.98]).all()


def test_a_silent_sensor_holds_the_start_for_at_most_the_timeout():
    rig = Rig((UT, TL), RigSettings(output_rate_hz=10.0, sensor_timeout_s=1.0))
    t, v = stream(UT, 100.0, 0.0, 5.0, 0.0, 1.0)
    early = rig.process(angles(UT, t[t < 0.5], v[t < 0.5]))
    assert len(early) == 0  # waiting for the thoracolumbar sensor
    late = rig.process(angles(UT, t[t >= 0.5], v[t >= 0.5]))
    assert len(late) > 30
    assert np.isnan(late.thoracic_flexion_deg).all()
    assert np.isfinite(late.trunk_flexion_deg).all()


def test_bad_rigs_are_refused():
    with pytest.raises(InputError):
        Rig(())
    with pytest.raises(InputError):
        Rig((UT, UT))
    rig = Rig((UT,))
    with pytest.raises(InputError, match="not part of this rig"):
        rig.push(angles(SA, np.array([0.0]), np.array([0.0])))
    with pytest.raises(InputError):
        RigSettings(output_rate_hz=0.0)


def test_a_sample_whose_time_goes_back_is_left_out():
    """A time that does not increase within a batch (the estimator gave it NaN) is dropped, so the
    interpolation around it is the one without it."""
    t = np.arange(0.0, 1.0, 0.01)
    v = 2.0 * t
    clean = Rig((UT,), RigSettings(output_rate_hz=50.0), start_t=0.0)
    want = clean.process(angles(UT, t, v))
    bad_t, bad_v = t.copy(), v.copy()
    bad_t[40], bad_v[40] = bad_t[30] - 0.001, np.nan  # back in time, no estimate
    rig = Rig((UT,), RigSettings(output_rate_hz=50.0), start_t=0.0)
    got = rig.process(angles(UT, bad_t, bad_v))
    np.testing.assert_array_equal(got.t, want.t)
    i = np.searchsorted(want.t, t[39])
    assert np.isfinite(got.trunk_flexion_deg[i : i + 2]).all()  # interpolated across the dropped sample
    np.testing.assert_allclose(got.trunk_flexion_deg, want.trunk_flexion_deg, rtol=0, atol=1e-12)
