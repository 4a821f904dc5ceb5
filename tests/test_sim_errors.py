"""The simulated sensors' error model: its statistics match the configured datasheet values."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sensorhub.model import GRAVITY_MPS2, Placement
from sensorhub.sim.imu import BMI270, LSM6DSO, Environment, LinkSpec, SensorErrors, SimulatedImu
from sensorhub.sim.motion import Script
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from tests.conftest import collect, stacked

DEG = math.pi / 180.0


def _still_script(duration_s: float) -> Script:
    s = Script()
    s.hold(duration_s, "upright")
    return s


def _noise_only(spec):
    """The spec with every error but white noise switched off (offsets, gains, walks, tempco)."""
    return replace(
        spec,
        acc_offset_mg=0.0,
        gyro_offset_dps=0.0,
        acc_scale_pct=0.0,
        gyro_scale_pct=0.0,
        cross_axis_pct=0.0,
        acc_tempco_mg_per_c=0.0,
        gyro_tempco_dps_per_c=0.0,
        gyro_bias_rw_dph_per_sqrth=0.0,
        acc_bias_rw_mg_per_sqrth=0.0,
        odr_tolerance_pct=0.0,
    )


@pytest.mark.parametrize(("spec", "rate_hz", "seed"), [(LSM6DSO, 100.0, 0), (BMI270, 200.0, 1), (LSM6DSO, 52.0, 2)])
def test_white_noise_matches_noise_density(spec, rate_hz, seed):
    """Per-sample noise σ = density × √(ODR/2) (noise bandwidth ODR/2), white, zero-mean."""
    spec = _noise_only(spec)
    imu = SimulatedImu(rate_hz, spec, LinkSpec(), SensorErrors.ideal(), np.random.default_rng(seed), quantise=False)
    n = 20_000
    t = np.arange(1, n + 1) / rate_hz
    acc, gyro = imu.measure(t, np.zeros((n, 3)), np.zeros((n, 3)))
    bw = rate_hz / 2.0
    acc_sigma = spec.acc_noise_density_ug * 1e-6 * GRAVITY_MPS2 * math.sqrt(bw)
    gyro_sigma = spec.gyro_noise_density_mdps * 1e-3 * DEG * math.sqrt(bw)
    assert np.std(acc, axis=0) == pytest.approx([acc_sigma] * 3, rel=0.03)
    assert np.std(gyro, axis=0) == pytest.approx([gyro_sigma] * 3, rel=0.03)
    assert np.abs(gyro.mean(axis=0)).max() < 4 * gyro_sigma / math.sqrt(n)
    g = gyro[:, 0] - gyro[:, 0].mean()
    assert abs(np.corrcoef(g[:-1], g[1:])[0, 1]) < 0.05
    # The noise density read back from the spectrum (one-sided PSD, in mdps/√Hz).
    psd = np.abs(np.fft.rfft(g)) ** 2 * 2.0 / (rate_hz * n)
    density_mdps = math.sqrt(np.mean(psd[1:-1])) / DEG * 1e3
    assert density_mdps == pytest.approx(spec.gyro_noise_density_mdps, rel=0.03)


def test_quantisation_and_saturation():
    """Readings are whole int16 counts of the LSB and saturate at the range's ends."""
    imu = SimulatedImu(100.0, LSM6DSO, LinkSpec(), SensorErrors.ideal(), np.random.default_rng(0))
    f = np.array([[GRAVITY_MPS2, 0.0, 0.0], [400.0, -400.0, 0.1]])
    w = np.array([[0.01, 0.0, 0.0], [50.0, -50.0, 0.0]])
    acc, gyro = imu.measure(np.array([0.01, 0.02]), f, w)
    acc_lsb = LSM6DSO.acc_lsb_mg * 1e-3 * GRAVITY_MPS2
    gyro_lsb = LSM6DSO.gyro_lsb_mdps * 1e-3 * DEG
    np.testing.assert_allclose(acc / acc_lsb, np.rint(acc / acc_lsb), atol=1e-9)
    np.testing.assert_allclose(gyro / gyro_lsb, np.rint(gyro / gyro_lsb), atol=1e-9)
    np.testing.assert_allclose(acc[1, :2], [32767 * acc_lsb, -32768 * acc_lsb])
    np.testing.assert_allclose(gyro[1, :2], [32767 * gyro_lsb, -32768 * gyro_lsb])
    assert acc[0, 0] == pytest.approx(GRAVITY_MPS2, abs=0.05)


@pytest.mark.parametrize("spec", [LSM6DSO, BMI270])
def test_drawn_offsets_and_gains_follow_the_datasheet(spec):
    """Across many devices, offsets, scale and cross-axis errors have the datasheet's 1σ."""
    rng = np.random.default_rng(7)
    draws = [SensorErrors.draw(spec, rng) for _ in range(4000)]
    acc_off = np.array([e.acc_offset_mps2 for e in draws]) / (1e-3 * GRAVITY_MPS2)
    gyro_off = np.array([e.gyro_offset_radps for e in draws]) / DEG
    acc_scale = np.array([np.diag(e.acc_gain) - 1.0 for e in draws]) * 100
    gyro_cross = np.array([e.gyro_gain[0, 1] for e in draws]) * 100
    assert acc_off.std() == pytest.approx(spec.acc_offset_mg, rel=0.05)
    assert gyro_off.std() == pytest.approx(spec.gyro_offset_dps, rel=0.05)
    assert acc_scale.std() == pytest.approx(spec.acc_scale_pct, rel=0.05)
    assert gyro_cross.std() == pytest.approx(spec.cross_axis_pct, rel=0.05)
    drift = np.array([e.clock_drift_ppm for e in draws])
    assert np.abs(drift).max() <= 50.0
    assert drift.std() == pytest.approx(100.0 / math.sqrt(12), rel=0.05)  # uniform ±50 ppm
    odr = np.array([e.odr_error for e in draws]) * 100
    assert odr.std() == pytest.approx(spec.odr_tolerance_pct, rel=0.08)


def test_still_sensor_mean_is_its_offset_plus_temperature_drift():
    """A still sensor's mean reading = gain·truth + offset + tempco·ΔT(t), within noise."""
    spec = replace(LSM6DSO, gyro_bias_rw_dph_per_sqrth=0.0, acc_bias_rw_mg_per_sqrth=0.0)
    config = WearerConfig(spec=spec, seed=11, overlays=False, nominal_mounting=True)
    wearer = SimulatedWearer(config, script=_still_script(60.0))
    d = stacked(collect(wearer)[Placement.THORACOLUMBAR])
    e = wearer.imus[Placement.THORACOLUMBAR].errors
    temp = Environment().temperature_rise_c(d["true_t"])[:, None]
    expected_gyro = e.gyro_offset_radps + temp * e.gyro_tempco_radps_per_c
    residual = (d["gyro"] - expected_gyro).mean(axis=0)
    gyro_sigma = spec.gyro_noise_density_mdps * 1e-3 * DEG * math.sqrt(50.0)
    assert np.abs(residual).max() < 5 * gyro_sigma / math.sqrt(len(d["gyro"])) + 0.5 * spec.gyro_lsb_mdps * 1e-3 * DEG
    assert np.abs(e.gyro_offset_radps).max() > 0.01 * DEG  # there is an offset to find
    # The accelerometer: R₀ᵀ(0,0,g) through the gain, plus offset.
    R = wearer.sensor_rotation(Placement.THORACOLUMBAR, d["true_t"][:1])[0]
    f_true = R.T @ np.array([0.0, 0.0, GRAVITY_MPS2])
    expected_acc = e.acc_gain @ f_true + e.acc_offset_mps2 + temp.mean() * e.acc_tempco_mps2_per_c
    np.testing.assert_allclose(d["acc"].mean(axis=0), expected_acc, atol=2e-3)


def test_bias_random_walk_grows_with_sqrt_time():
    """The gyro bias random walk's spread after T is K·√T (K in °/h per √h)."""
    spec = replace(_noise_only(LSM6DSO), gyro_bias_rw_dph_per_sqrth=10.0, gyro_noise_density_mdps=0.0)
    finals = []
    for seed in range(300):
        imu = SimulatedImu(10.0, spec, LinkSpec(), SensorErrors.ideal(), np.random.default_rng(seed), quantise=False)
        t = np.arange(1, 36_001) * 0.1  # one hour at 10 Hz
        _, gyro = imu.measure(t, np.zeros((len(t), 3)), np.zeros((len(t), 3)))
        finals.append(gyro[-1])
    spread_dph = np.std(np.array(finals)) / DEG * 3600.0
    assert spread_dph == pytest.approx(10.0, rel=0.1)


def test_clock_drift_and_odr_error_show_in_timestamps():
    """Device timestamps run at 1 + drift relative to the host; the sample period carries the ODR error."""
    wearer = SimulatedWearer(WearerConfig(seed=5, duration_s=120.0))
    for placement, notes in collect(wearer).items():
        d = stacked(notes)
        e = wearer.imus[placement].errors
        slope = np.polyfit(d["true_t"], d["device_t"], 1)[0]
        assert (slope - 1.0) * 1e6 == pytest.approx(e.clock_drift_ppm, abs=0.01)
        period = np.median(np.diff(d["true_t"]))
        assert period == pytest.approx(0.01 * (1.0 + e.odr_error), rel=1e-9)


def test_delivery_bursts_drops_and_order():
    """Notifications pack 4 samples at 100 Hz, arrive in order after their last sample, some are lost;
    the sample counter shows every loss exactly."""
    link = LinkSpec(drop_prob=0.02, retransmit_prob=0.05)
    wearer = SimulatedWearer(WearerConfig(seed=2, duration_s=300.0, link=link))
    for placement, notes in collect(wearer).items():
        arrivals = np.array([n.arrival_t for n in notes])
        assert np.all(np.diff(arrivals) >= 0)
        last_sample = np.array([n.true_t[-1] for n in notes])
        latency = arrivals - last_sample
        assert latency.min() > 0.0
        assert np.median(latency) < 0.040
        assert latency.max() < 0.5
        sizes = {len(n.seq) for n in notes[:-1]}
        assert sizes == {4}
        seq = np.concatenate([n.seq for n in notes])
        missing = (seq[-1] + 1) - len(seq)
        assert missing == 4 * wearer.imus[placement].notifications_dropped
        assert 0.01 < wearer.imus[placement].notifications_dropped / (len(notes) + missing / 4) < 0.03


def test_chunking_does_not_change_the_data():
    """Chunk length is a memory setting only: the samples agree to rounding."""
    a = SimulatedWearer(WearerConfig(seed=4, duration_s=40.0, chunk_s=10.0))
    b = SimulatedWearer(WearerConfig(seed=4, duration_s=40.0, chunk_s=7.3))
    ca, cb = collect(a), collect(b)
    for placement in a.imus:
        sa, sb = stacked(ca[placement]), stacked(cb[placement])
        np.testing.assert_array_equal(sa["seq"], sb["seq"])
        np.testing.assert_allclose(sa["true_t"], sb["true_t"], rtol=0, atol=1e-12)
        # Quantised values: identical except where rounding sits on an LSB edge (rare, one LSB).
        lsb = LSM6DSO.gyro_lsb_mdps * 1e-3 * DEG
        assert np.abs(sa["gyro"] - sb["gyro"]).max() <= lsb * 1.001
        assert np.mean(sa["gyro"] != sb["gyro"]) < 1e-3


def test_same_seed_same_data_other_seed_other_data():
    a = stacked(collect(SimulatedWearer(WearerConfig(seed=9, duration_s=20.0)))[Placement.SACRAL])
    b = stacked(collect(SimulatedWearer(WearerConfig(seed=9, duration_s=20.0)))[Placement.SACRAL])
    c = stacked(collect(SimulatedWearer(WearerConfig(seed=10, duration_s=20.0)))[Placement.SACRAL])
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["acc"][:100], c["acc"][:100])
