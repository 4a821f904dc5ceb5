"""Calibration against the simulator's ground truth (sensorhub.pipeline.calibration).

Tolerances and where they come from (measured over seeds 0–7, yaw up to ±25°, docs/pipeline.md):
- up0: the accelerometer offset (20 mg, 1σ per axis) tilts it by atan(|offset|/g); plus ≤ 1° for
  scale and cross-axis errors.
- functional axis: ≤ 4° (measured ≤ 3.7°; the lateral accelerometer offset tilts up0, and the
  axis is kept ⊥ up0).
- nominal axis ẑ × up0: exact for a pure yaw on the skin; otherwise within the skin tilt.
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

from sensorhub.errors import CalibrationError
from sensorhub.model import GRAVITY_MPS2, FloatArray, Placement
from sensorhub.pipeline import calibration as cal
from sensorhub.sim.body import rot_x, rot_y, rot_z
from sensorhub.sim.imu import LSM6DSO, LinkSpec, SensorErrors, SimulatedImu
from sensorhub.sim.scenarios import Functional
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.simulator import iter_batches

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL
NEUTRAL = (0.0, 11.5)
Data = dict[Placement, tuple[FloatArray, FloatArray, FloatArray]]


#: Enough for the functional movement and a few seconds after it (bends end by ≈ 39 s, cat/camel ≈ 56 s).
DURATION_S: dict[str, float] = {"bends": 45.0, "cat_camel": 60.0, "none": 30.0}


@cache
def simulate(
    seed: int, functional: Functional = "bends", duration_s: float | None = None, *, ideal: bool = False
) -> tuple[SimulatedWearer, Data]:
    """A short desk session (neutral 0–12 s, functional movement, typing), yaw up to ±25°."""
    if duration_s is None:
        duration_s = DURATION_S[functional]
    wearer = SimulatedWearer(
        WearerConfig(
            scenario="desk_session",
            seed=seed,
            functional=functional,
            duration_s=duration_s,
            misalignment_yaw_max_deg=25.0,
            ideal_sensors=ideal,
        )
    )
    parts: dict[Placement, list[tuple[FloatArray, FloatArray, FloatArray]]] = {p: [] for p in wearer.imus}
    for _, batch in iter_batches(wearer):
        parts[batch.placement].append((batch.t, batch.acc, batch.gyro))
    data = {p: tuple(np.concatenate([x[i] for x in rows]) for i in range(3)) for p, rows in parts.items()}
    return wearer, data  # type: ignore[return-value]


def angle_deg(a: FloatArray, b: FloatArray) -> float:
    c = float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def true_up(wearer: SimulatedWearer, p: Placement, t: FloatArray) -> FloatArray:
    """World up in sensor axes: row 2 of the sensor → world rotation."""
    up: FloatArray = wearer.sensor_rotation(p, t)[:, 2, :]
    return up


def true_axis(wearer: SimulatedWearer, p: Placement) -> FloatArray:
    axis: FloatArray = wearer.mounting[p].T @ np.array([0.0, 1.0, 0.0])
    return axis


def true_inclination_deg(wearer: SimulatedWearer, p: Placement, t: FloatArray) -> FloatArray:
    tr = wearer.truth(t)
    out: FloatArray = {
        UT: tr.trunk_flexion_deg,
        SA: tr.pelvis_tilt_deg,
        TL: tr.lumbar_flexion_deg + tr.pelvis_tilt_deg,
    }[p]
    return out


def functional_event(wearer: SimulatedWearer) -> tuple[float, float]:
    (event,) = [e for e in wearer.events() if e.type == "functional"]
    assert event.end_t is not None
    return event.start_t, event.end_t


# -- neutral capture ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_up0_matches_truth_within_the_accelerometer_offset(seed: int) -> None:
    wearer, data = simulate(seed)
    for p, (t, acc, gyro) in data.items():
        cap = cal.capture_neutral(t, acc, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1], sensor=p.value)
        up = true_up(wearer, p, np.linspace(*NEUTRAL, 50)).mean(axis=0)
        offset = wearer.imus[p].errors.acc_offset_mps2
        limit = math.degrees(math.atan(float(np.linalg.norm(offset)) / GRAVITY_MPS2)) + 1.0
        assert angle_deg(cap.up0, up) < limit, p
        # Breathing and sway are still: well inside every stillness limit.
        assert cap.gyro_rms_dps < cal.STILL_GYRO_RMS_MAX_DPS / 2
        assert cap.rotation_deg < cal.STILL_ROTATION_MAX_DEG / 2
        assert cap.tilt_deg < cal.STILL_TILT_MAX_DEG / 2
        assert cap.acc_std_mps2 < cal.STILL_ACC_STD_MAX_MPS2 / 2
        assert cap.duration_s == pytest.approx(11.5, abs=0.1)


def test_gyro_bias_from_the_neutral_capture() -> None:
    """Bias ⊥ up within 0.015 °/s of the drawn offset; along up (heading sway) within 0.05 °/s."""
    wearer, data = simulate(1)
    for p, (t, acc, gyro) in data.items():
        cap = cal.capture_neutral(t, acc, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1])
        err = np.degrees(cap.gyro_bias_radps - wearer.imus[p].errors.gyro_offset_radps)
        along = float(err @ cap.up0)
        assert abs(along) < 0.05
        assert float(np.linalg.norm(err - along * cap.up0)) < 0.015


def test_neutral_window_with_motion_is_refused_naming_sensor_and_motion() -> None:
    wearer, data = simulate(0)
    start, end = functional_event(wearer)
    t, acc, gyro = data[TL]
    with pytest.raises(CalibrationError) as info:
        cal.capture_neutral(t, acc, gyro, start_s=0.0, end_s=end, sensor="thoracolumbar")
    err = info.value
    assert err.sensor == "thoracolumbar"
    assert err.window == (0.0, end)
    text = str(err)
    assert text.startswith("thoracolumbar: moved during the neutral window")
    assert "rotated" in text
    assert "°/s" in text
    assert "t = " in text
    assert "sit upright and still" in text
    # The time named is inside the bends.
    when = float(text.split("fastest at t = ")[1].split(" s")[0])
    assert start <= when <= end


def test_too_short_neutral_window_is_refused() -> None:
    _, data = simulate(0)
    t, acc, gyro = data[UT]
    with pytest.raises(
        CalibrationError, match=r"upper_thoracic: neutral window 0\.0–2\.0 s has 2\.0 s of data"
    ) as info:
        cal.capture_neutral(t, acc, gyro, start_s=0.0, end_s=2.0, sensor="upper_thoracic")
    assert "at least 3 s" in str(info.value)


def test_a_shaking_sensor_is_refused_for_its_acceleration() -> None:
    _, data = simulate(0)
    t, acc, gyro = data[SA]
    shaken = acc.copy()
    bump = (t > 5.0) & (t < 5.5)
    shaken[bump, 0] += 3.0
    with pytest.raises(CalibrationError, match=r"sacral: .*acceleration varied by .* m/s² at t = 5\.\d s"):
        cal.capture_neutral(t, shaken, gyro, start_s=0.0, end_s=11.5, sensor="sacral")


# -- axes and sign ------------------------------------------------------------------------------------


@pytest.mark.parametrize("functional", ["bends", "cat_camel"])
@pytest.mark.parametrize("seed", [0, 3])
def test_functional_axis_matches_true_left_axis(functional: Functional, seed: int) -> None:
    wearer, data = simulate(seed, functional)
    rig = cal.calibrate_rig({p.value: v for p, v in data.items()}, neutral=NEUTRAL, functional="auto")
    for p in data:
        c = rig.sensors[p.value]
        assert c.axis_source == "functional"
        assert abs(float(c.flexion_axis @ c.up0)) < 1e-12
        assert angle_deg(c.flexion_axis, true_axis(wearer, p)) < 4.0, p
        assert c.quality.functional_variance_fraction is not None
        assert c.quality.functional_variance_fraction > 0.99
        assert c.quality.functional_rotation_deg is not None
        assert c.quality.functional_rotation_deg > 8.0
    assert rig.verdict == "good", rig.reasons
    assert rig.axis_consistency_deg is not None
    assert rig.axis_consistency_deg < 15.0


def test_nominal_axis_is_exact_for_any_yaw_on_the_skin() -> None:
    """A sensor yawed on the skin: ẑ × up0 is still the segment's left axis (to 1e-12)."""
    incl = math.radians(8.0)
    up_segment = np.array([math.cos(incl), 0.0, math.sin(incl)])
    for yaw_deg in (-25.0, -10.0, 0.0, 17.0, 25.0, 180.0):
        mounting = rot_z(np.array([math.radians(yaw_deg)]))[0]  # sensor axes in segment axes
        up0 = mounting.T @ up_segment
        np.testing.assert_allclose(cal.nominal_axis(up0), mounting.T @ np.array([0.0, 1.0, 0.0]), atol=1e-12)


def test_nominal_axis_error_is_the_skin_tilt() -> None:
    incl = math.radians(-22.0)
    up_segment = np.array([math.cos(incl), 0.0, math.sin(incl)])
    for tilt_deg in (-5.0, 2.0, 5.0):
        tilt = math.radians(tilt_deg)
        mounting = rot_z(np.array([0.3]))[0] @ rot_y(np.array([tilt]))[0] @ rot_x(np.array([tilt]))[0]
        err = angle_deg(cal.nominal_axis(mounting.T @ up_segment), mounting.T @ np.array([0.0, 1.0, 0.0]))
        assert err <= abs(tilt_deg) * math.sqrt(2) + 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_nominal_axis_from_simulated_up0_is_within_the_skin_tilt(seed: int) -> None:
    wearer, data = simulate(seed, "none")
    for p, (t, acc, gyro) in data.items():
        c = cal.calibrate_sensor(p.value, t, acc, gyro, neutral=NEUTRAL, functional="auto")
        assert c.axis_source == "nominal"
        assert c.functional_window is None
        up = true_up(wearer, p, np.array([6.0]))[0]
        tilt_limit = 5.0 * math.sqrt(2.0)  # misalignment_tilt_max_deg about x and y
        assert angle_deg(cal.nominal_axis(up), true_axis(wearer, p)) < tilt_limit
        offset = wearer.imus[p].errors.acc_offset_mps2
        bias_tilt = math.degrees(math.atan(float(np.linalg.norm(offset)) / GRAVITY_MPS2))
        assert angle_deg(c.flexion_axis, true_axis(wearer, p)) < tilt_limit + bias_tilt


def test_inclination_is_positive_for_forward_bends() -> None:
    wearer, data = simulate(2)
    start, end = functional_event(wearer)
    for p, (t, acc, gyro) in data.items():
        c = cal.calibrate_sensor(p.value, t, acc, gyro, neutral=NEUTRAL, functional=(start, end))
        sel = (t > start) & (t < end)
        incl = c.inclination_deg(c.correct_acc(acc[sel]))
        truth = true_inclination_deg(wearer, p, t[sel])
        assert incl.max() > 10.0
        assert incl.min() > -3.0
        assert float(np.corrcoef(incl, truth)[0, 1]) > 0.99


def test_inclination_change_formula_signs() -> None:
    up0 = np.array([1.0, 0.0, 0.0])
    axis = np.array([0.0, 1.0, 0.0])
    # Bending forward by θ turns world up (in sensor axes) towards +z.
    theta = np.radians([-30.0, 0.0, 10.0, 60.0])
    up = np.column_stack([np.cos(theta), np.full(4, 0.3), np.sin(theta)])  # lateral part ignored
    np.testing.assert_allclose(cal.inclination_change_deg(up, up0, axis), np.degrees(theta), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 2])
def test_inclination_of_true_up_reproduces_the_truth(seed: int) -> None:
    """Geometry end to end, independent of any estimator: the desk session with misalignment."""
    wearer, data = simulate(seed)
    t = np.arange(0.0, 1200.0, 0.25)
    t = t[t < wearer.motion.duration_s]
    t_ref = np.linspace(*NEUTRAL, 60)
    for p, (ts, acc, gyro) in data.items():
        up = true_up(wearer, p, t)
        up0 = true_up(wearer, p, t_ref).mean(axis=0)
        up0 /= np.linalg.norm(up0)
        truth = true_inclination_deg(wearer, p, t) - true_inclination_deg(wearer, p, t_ref).mean()
        # True axis, and the axis calibration found (each kept ⊥ the true up0).
        found = cal.calibrate_sensor(p.value, ts, acc, gyro, neutral=NEUTRAL, functional="auto").flexion_axis
        for axis, limit in ((true_axis(wearer, p), 0.3), (found, 0.5)):
            a = axis - (axis @ up0) * up0
            a /= np.linalg.norm(a)
            err = np.abs(cal.inclination_change_deg(up, up0, a) - truth)
            assert err.max() < limit, (p, limit, err.max())


# -- functional window --------------------------------------------------------------------------------


@pytest.mark.parametrize("functional", ["bends", "cat_camel"])
@pytest.mark.parametrize("seed", [0, 2])
def test_find_functional_window_finds_the_event(functional: Functional, seed: int) -> None:
    wearer, data = simulate(seed, functional)
    start, end = functional_event(wearer)
    t, acc, gyro = data[UT]
    cap = cal.capture_neutral(t, acc, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1])
    found = cal.find_functional_window(t, gyro, after_s=NEUTRAL[1], gyro_bias_radps=cap.gyro_bias_radps, up0=cap.up0)
    assert found is not None
    assert found[0] == pytest.approx(start, abs=2.0)
    assert found[1] == pytest.approx(end, abs=2.0)
    rig = cal.calibrate_rig({p.value: v for p, v in data.items()}, neutral=NEUTRAL, functional="auto")
    assert rig.functional_window is not None
    assert rig.functional_window[0] == pytest.approx(start, abs=2.0)
    assert rig.functional_window[1] == pytest.approx(end, abs=2.0)


def test_find_functional_window_returns_none_without_a_movement() -> None:
    _, data = simulate(0, "none", 100.0)  # neutral, typing, and the drift into the first slouch (≈ 65 s)
    for t, acc, gyro in data.values():
        cap = cal.capture_neutral(t, acc, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1])
        bias = cap.gyro_bias_radps
        assert cal.find_functional_window(t, gyro, after_s=NEUTRAL[1], gyro_bias_radps=bias, up0=cap.up0) is None
        assert cal.find_functional_window(t, gyro, after_s=NEUTRAL[1], gyro_bias_radps=bias) is None


def test_functional_window_without_movement_is_refused() -> None:
    _, data = simulate(0)
    t, acc, gyro = data[UT]
    cap = cal.capture_neutral(t, acc, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1])
    with pytest.raises(CalibrationError, match=r"upper_thoracic: only \d\.\d° of flexion in the functional window"):
        cal.functional_axis(
            t, gyro, cap.up0, start_s=2.0, end_s=10.0, gyro_bias_radps=cap.gyro_bias_radps, sensor="upper_thoracic"
        )
    with pytest.raises(CalibrationError, match="no data"):
        cal.functional_axis(t, gyro, cap.up0, start_s=500.0, end_s=510.0, gyro_bias_radps=cap.gyro_bias_radps)


def test_a_side_bend_is_not_a_flexion_axis() -> None:
    """Rotation about the skin normal (a side bend) is refused, not taken as the left axis."""
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 20.0, 0.01)
    up0 = np.array([1.0, 0.0, 0.0])
    gyro = np.outer(np.sin(2 * np.pi * 0.2 * t) * 0.3, [0.0, 0.0, 1.0]) + rng.normal(0.0, 1e-3, (len(t), 3))
    with pytest.raises(CalibrationError, match="side bend or twist"):
        cal.functional_axis(t, gyro, up0, start_s=0.0, end_s=20.0, gyro_bias_radps=np.zeros(3))


def test_rig_without_functional_movement_is_fair_with_nominal_axes() -> None:
    _, data = simulate(1, "none")
    rig = cal.calibrate_rig({p.value: v for p, v in data.items()}, neutral=NEUTRAL, functional="auto")
    assert rig.verdict == "fair"
    assert rig.functional_window is None
    assert rig.axis_consistency_deg is None
    assert all(c.axis_source == "nominal" for c in rig.sensors.values())
    assert any("no functional movement found" in r for r in rig.reasons)


def test_rig_refuses_motion_in_any_sensor() -> None:
    wearer, data = simulate(0)
    _, end = functional_event(wearer)
    with pytest.raises(CalibrationError, match=r"^(upper_thoracic|thoracolumbar|sacral): moved"):
        cal.calibrate_rig({p.value: v for p, v in data.items()}, neutral=(0.0, end), functional=None)


# -- accelerometer bias and scale ---------------------------------------------------------------------


@pytest.mark.parametrize(("functional", "limit_mg"), [("bends", 1.5), ("cat_camel", 3.0)])
def test_acc_bias_from_the_functional_holds_recovers_the_sagittal_bias(functional: Functional, limit_mg: float) -> None:
    """Ideal sensors plus a known ≈ 35 mg offset: its two sagittal components come back within a few mg."""
    wearer, data = simulate(1, functional, ideal=True)
    start, end = functional_event(wearer)
    bias = np.array([0.25, -0.15, 0.2])  # ≈ 25, 15, 20 mg
    for t, acc, gyro in data.values():
        cap = cal.capture_neutral(t, acc + bias, gyro, start_s=NEUTRAL[0], end_s=NEUTRAL[1])
        fa = cal.functional_axis(t, gyro, cap.up0, start_s=start, end_s=end, gyro_bias_radps=cap.gyro_bias_radps)
        est = cal.estimate_acc_bias(
            t,
            acc + bias,
            gyro,
            reference=(9.5, 11.5),
            functional=(start, end),
            gyro_bias_radps=cap.gyro_bias_radps,
            up0=cap.up0,
            axis=fa.axis,
        )
        assert est is not None
        assert est.holds >= 3  # the bottom of each bend (the upright pauses turn < 5°)
        sagittal = bias - (bias @ fa.axis) * fa.axis
        assert float(np.linalg.norm(est.bias_mps2 - sagittal)) < limit_mg * 1e-3 * GRAVITY_MPS2
        assert abs(float(est.bias_mps2 @ fa.axis)) < 1e-12


def test_calibrate_sensor_applies_the_movement_bias_estimate() -> None:
    wearer, data = simulate(0)
    t, acc, gyro = data[SA]
    on = cal.calibrate_sensor("sacral", t, acc, gyro, neutral=NEUTRAL, functional="auto")
    off = cal.calibrate_sensor(
        "sacral", t, acc, gyro, neutral=NEUTRAL, functional="auto", estimate_acc_bias_from_movement=False
    )
    assert on.quality.acc_bias_holds >= 3
    assert off.quality.acc_bias_holds == 0
    np.testing.assert_array_equal(off.acc_bias_mps2, np.zeros(3))
    # The residual (accelerometer vs gyro at the holds) shrinks when the bias is removed.
    assert on.quality.residual_deg is not None
    assert off.quality.residual_deg is not None
    assert on.quality.residual_deg < off.quality.residual_deg
    # Corrected still readings have the sagittal bias removed: closer to g·up in magnitude direction.
    truth_sagittal = wearer.imus[SA].errors.acc_offset_mps2
    truth_sagittal = truth_sagittal - (truth_sagittal @ on.flexion_axis) * on.flexion_axis
    assert float(np.linalg.norm(on.acc_bias_mps2 - truth_sagittal)) < float(np.linalg.norm(truth_sagittal))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_orientation_calibration_recovers_bias_and_scale(seed: int) -> None:
    """Six-position fit on the simulator's error model (with 1 % cross-axis terms): bias ±1.5 mg, scale ±0.1 %."""
    rng = np.random.default_rng(seed)
    errors = SensorErrors.draw(LSM6DSO, rng)
    imu = SimulatedImu(100.0, LSM6DSO, LinkSpec(), errors, rng)
    directions = [np.eye(3)[i] * s for i in range(3) for s in (1.0, -1.0)]
    means = []
    for k, d in enumerate(directions):
        n = 300
        t = 1.0 + k * 10.0 + np.arange(n, dtype=np.float64) * 0.01
        acc, _ = imu.measure(t, np.tile(d * GRAVITY_MPS2, (n, 1)), np.zeros((n, 3)))
        means.append(acc.mean(axis=0))
    bias, scale = cal.multi_orientation_calibration(np.array(means))
    temp = imu.environment.temperature_rise_c(np.array([50.0]))[0]
    true_bias = errors.acc_offset_mps2 + temp * errors.acc_tempco_mps2_per_c
    np.testing.assert_allclose(bias, true_bias, atol=1.5e-3 * GRAVITY_MPS2)
    np.testing.assert_allclose(scale, np.diag(errors.acc_gain), atol=1e-3)


def test_multi_orientation_calibration_needs_six_spread_orientations() -> None:
    with pytest.raises(CalibrationError, match="≥ 6 still orientations"):
        cal.multi_orientation_calibration(np.tile([0.0, 0.0, GRAVITY_MPS2], (5, 1)))
    with pytest.raises(CalibrationError, match="x axis both up and down"):
        cal.multi_orientation_calibration(np.tile([0.0, 0.0, GRAVITY_MPS2], (6, 1)))


# -- storage ------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    _, data = simulate(0)
    rig = cal.calibrate_rig({p.value: v for p, v in data.items()}, neutral=NEUTRAL, functional="auto")
    text = json.dumps(rig.to_json())
    back = cal.RigCalibration.from_json(json.loads(text))
    assert back.verdict == rig.verdict
    assert back.functional_window == rig.functional_window
    for name, c in rig.sensors.items():
        b = back.sensors[name]
        assert b.quality == c.quality
        assert b.axis_source == c.axis_source
        assert b.window == c.window
        assert b.functional_window == c.functional_window
        for field in ("up0", "flexion_axis", "gyro_bias_radps", "acc_bias_mps2", "acc_scale"):
            np.testing.assert_array_equal(getattr(b, field), getattr(c, field))
    up = np.array([[0.9, 0.1, 0.4]])
    c = rig.sensors["sacral"]
    np.testing.assert_array_equal(back.sensors["sacral"].inclination_deg(up), c.inclination_deg(up))


def test_from_json_refuses_bad_data() -> None:
    _, data = simulate(0)
    t, acc, gyro = data[UT]
    stored = cal.calibrate_sensor("upper_thoracic", t, acc, gyro, neutral=NEUTRAL, functional=None).to_json()
    broken = {**stored, "up0": [1.0, 0.0]}
    with pytest.raises(CalibrationError, match="upper_thoracic: stored calibration cannot be read"):
        cal.SensorCalibration.from_json(broken)
    with pytest.raises(CalibrationError, match="unsupported version"):
        cal.SensorCalibration.from_json({**stored, "version": 2})
