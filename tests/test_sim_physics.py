"""Physics of the simulated wearer: gravity, gyro integration, frames and signs against the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sensorhub.model import GRAVITY_MPS2, Placement
from sensorhub.sim.motion import Script
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from tests.conftest import collect, stacked

ALL = (Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL)


def _integrate_gyro(R_start: np.ndarray, gyro: np.ndarray, period_s: float) -> Rotation:
    """Strapdown integration of mean-rate samples: R_k = R_{k−1} · exp(ω_k Δt)."""
    steps = Rotation.from_rotvec(gyro[1:] * period_s)
    out = [Rotation.from_matrix(R_start)]
    for step in steps:
        out.append(out[-1] * step)
    return Rotation.concatenate(out)


@pytest.mark.parametrize("placement", ALL)
def test_static_sensor_reads_g(ideal_desk_70s, placement):
    """During the still neutral period an ideal sensor's |f| equals g (breathing adds < 5 mm/s²)."""
    _, data = ideal_desk_70s
    d = data[placement]
    still = d["true_t"] < 11.5
    norm = np.linalg.norm(d["acc"][still], axis=1)
    np.testing.assert_allclose(norm, GRAVITY_MPS2, atol=5e-3)


@pytest.mark.parametrize("placement", ALL)
def test_gyro_integration_reproduces_orientation(ideal_desk_70s, placement):
    """Integrating noise-free gyro samples tracks the true orientation within 0.05° over 60 s,
    through the neutral period, three forward bends and typing."""
    wearer, data = ideal_desk_70s
    d = data[placement]
    period = wearer.imus[placement].period_s
    keep = d["true_t"] <= d["true_t"][0] + 60.0
    t = d["true_t"][keep]
    est = _integrate_gyro(wearer.sensor_rotation(placement, t[:1])[0], d["gyro"][keep], period)
    truth = Rotation.from_matrix(wearer.sensor_rotation(placement, t))
    err_deg = np.degrees((truth.inv() * est).magnitude())
    assert err_deg.max() < 0.05
    # and the body really moved: the functional bends rotate every segment by > 10°
    moved = np.degrees((truth[0].inv() * truth).magnitude()).max()
    assert moved > 10.0


def test_gyro_integration_while_walking_and_standing():
    """The same holds in the most dynamic scenario (stand up, walk, turn, pick up)."""
    config = WearerConfig(scenario="confounders", duration_s=110.0, ideal_sensors=True, seed=3)
    wearer = SimulatedWearer(config)
    d = stacked(collect(wearer)[Placement.UPPER_THORACIC])
    keep = (d["true_t"] >= 45.0) & (d["true_t"] <= 105.0)
    t = d["true_t"][keep]
    labels = set(wearer.truth(t).posture)
    assert {"standing", "moving"} <= labels
    est = _integrate_gyro(wearer.sensor_rotation(Placement.UPPER_THORACIC, t[:1])[0], d["gyro"][keep], 0.01)
    truth = Rotation.from_matrix(wearer.sensor_rotation(Placement.UPPER_THORACIC, t))
    assert np.degrees((truth.inv() * est).magnitude()).max() < 0.05


def _sagittal_script() -> Script:
    """Pure sagittal motion: neutral, a slouch, a hip hinge, cat/camel-like arch and round."""
    s = Script()
    s.hold(5.0, "upright")
    s.move({"pelvis_tilt": -8, "lumbar_flex": 15, "thoracic_flex": 12}, 4.0, "slouched")
    s.hold(4.0)
    s.move({"pelvis_tilt": 20, "lumbar_flex": 2}, 3.0, "leaning_forward")
    s.hold(4.0)
    s.move({"pelvis_tilt": 10, "lumbar_flex": -12, "thoracic_flex": -10}, 3.0, "exercising")
    s.hold(3.0)
    s.move({"pelvis_tilt": -10, "lumbar_flex": 22, "thoracic_flex": 20}, 4.0)
    s.hold(3.0)
    s.move({}, 3.0, "upright")
    s.hold(4.0)
    return s


def test_pure_sagittal_motion_matches_truth():
    """No misalignment, no overlays: gyro-integrated inclinations (about sensor y) and, in the
    holds, accelerometer inclinations give the truth's thoracic, lumbar, trunk and pelvis angles."""
    config = WearerConfig(nominal_mounting=True, ideal_sensors=True, overlays=False)
    wearer = SimulatedWearer(config, script=_sagittal_script())
    data = {p: stacked(n) for p, n in collect(wearer).items()}
    # A common grid: every sensor's samples interpolated at the upper-thoracic sample times.
    t = data[Placement.UPPER_THORACIC]["true_t"]
    t = t[(t > 1.0) & (t < wearer.duration_s - 1.0)]
    truth = wearer.truth(t)

    incl_gyro = {}
    incl_acc = {}
    for placement, d in data.items():
        period = wearer.imus[placement].period_s
        # Pure sagittal rotation is about the sensor's y axis only.
        assert np.abs(d["gyro"][:, [0, 2]]).max() < 1e-9
        angle = np.cumsum(d["gyro"][:, 1]) * period
        incl_gyro[placement] = np.degrees(np.interp(t, d["true_t"], angle - np.interp(1.0, d["true_t"], angle)))
        f = d["acc"]
        # Sensor up = +x, back = +z; leaning forward turns gravity's reaction towards +z.
        incl = np.degrees(np.arctan2(f[:, 2], f[:, 0]))
        incl_acc[placement] = np.interp(t, d["true_t"], incl - np.interp(1.0, d["true_t"], incl))
    ut, tl, sa = (incl_gyro[p] for p in ALL)
    np.testing.assert_allclose(ut - tl, truth.thoracic_flexion_deg, atol=0.01)
    np.testing.assert_allclose(tl - sa, truth.lumbar_flexion_deg, atol=0.01)
    np.testing.assert_allclose(ut, truth.trunk_flexion_deg, atol=0.01)
    np.testing.assert_allclose(sa, truth.pelvis_tilt_deg, atol=0.01)
    assert truth.thoracic_flexion_deg.max() > 15.0
    assert truth.lumbar_flexion_deg.min() < -10.0

    still = np.abs(np.gradient(truth.trunk_flexion_deg, t)) < 1e-6
    assert still.sum() > 500
    ut, tl, sa = (incl_acc[p] for p in ALL)
    np.testing.assert_allclose((ut - tl)[still], truth.thoracic_flexion_deg[still], atol=0.01)
    np.testing.assert_allclose((tl - sa)[still], truth.lumbar_flexion_deg[still], atol=0.01)


def test_chair_swivel_leaves_truth_flexion_unchanged():
    """Heading does not enter the truth angles: a swivel of 60° changes no flexion."""
    s = Script()
    s.hold(3.0, "upright")
    s.move({"lumbar_flex": 10, "thoracic_flex": 8}, 2.0, "slouched")
    before_t = s.t
    s.move({"lumbar_flex": 10, "thoracic_flex": 8, "heading": 60}, 2.0)
    s.hold(2.0)
    wearer = SimulatedWearer(WearerConfig(overlays=False, ideal_sensors=True), script=s)
    tr = wearer.truth(np.linspace(before_t, s.t, 200))
    assert np.ptp(tr.heading_deg) == pytest.approx(60.0)
    for angles in (tr.thoracic_flexion_deg, tr.lumbar_flexion_deg, tr.trunk_flexion_deg, tr.pelvis_tilt_deg):
        assert np.ptp(angles) < 1e-9


def test_signs_follow_design_conventions():
    """Forward flexion is positive; pelvis tilt positive = top of the pelvis forward."""
    s = Script()
    s.hold(1.0, "upright")
    s.move({"pelvis_tilt": 10}, 1.0)
    s.move({"pelvis_tilt": 0, "lumbar_flex": 10}, 1.0)
    s.move({"thoracic_flex": 10}, 1.0)
    wearer = SimulatedWearer(WearerConfig(overlays=False), script=s)
    tr = wearer.truth(np.array([0.5, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(tr.pelvis_tilt_deg, [0, 10, 0, 0], atol=1e-9)
    np.testing.assert_allclose(tr.lumbar_flexion_deg, [0, 0, 10, 0], atol=1e-9)
    np.testing.assert_allclose(tr.thoracic_flexion_deg, [0, 0, 0, 10], atol=1e-9)
    np.testing.assert_allclose(tr.trunk_flexion_deg, [0, 10, 10, 10], atol=1e-9)
    # The upper-thoracic sensor's x axis (up the spine) tilts towards world +x (forward).
    R = wearer.sensor_rotation(Placement.UPPER_THORACIC, np.array([0.5, 4.0]))
    x_world = R[:, :, 0]
    assert x_world[1, 0] - x_world[0, 0] > math.sin(math.radians(5))


def test_misalignment_is_within_configured_bounds():
    for seed in range(5):
        wearer = SimulatedWearer(WearerConfig(seed=seed, duration_s=1.0))
        for M in wearer.mounting.values():
            np.testing.assert_allclose(M @ M.T, np.eye(3), atol=1e-12)
            yaw = math.degrees(math.atan2(M[1, 0], M[0, 0]))
            assert abs(yaw) <= 20.0 + 5.0  # yaw ±20° plus what the ±5° tilts add
            # the sensor's z axis stays within the tilt bound of the skin normal
            assert math.degrees(math.acos(M[2, 2])) <= 5.0 * math.sqrt(2) + 1e-9
