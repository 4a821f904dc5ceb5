"""Per-sensor orientation (VQF and the complementary fallback) against the simulator's truth.

Streams are built exactly as ``sources.simulator.iter_batches`` builds them (each sensor's device
clock mapped to host time by its own DeviceClockMapper, one batch per notification), keeping each
sample's true time so that the truth (world up in sensor axes, ``sensor_rotation(p, t)[:, 2, :]``)
is taken where the sample really was taken.

Tolerances are the measured values (docs/pipeline-orientation.md) with headroom. With the default
error model the absolute error is dominated by the accelerometer's zero-g offset (20 mg 1σ per
axis ≈ 1.1°), which no fusion can see and calibration removes; so the tests also look at the error
relative to the neutral window and at sensors without accelerometer errors, where what is left is
the estimator's own doing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from sensorhub.errors import InputError
from sensorhub.model import GRAVITY_MPS2, Placement
from sensorhub.pipeline.orientation import (
    ComplementaryEstimator,
    EstimatorOutput,
    VqfEstimator,
    VqfSettings,
    make_estimator,
    offline_up,
)
from sensorhub.sim.imu import LSM6DSO, with_overrides
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig
from sensorhub.sources.clock import DeviceClockMapper

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL
#: A chip with a perfect accelerometer (what a calibrated one approaches); gyro errors as LSM6DSO.
ACC_IDEAL = with_overrides(
    LSM6DSO,
    acc_offset_mg=0.0,
    acc_scale_pct=0.0,
    acc_tempco_mg_per_c=0.0,
    acc_bias_rw_mg_per_sqrth=0.0,
    cross_axis_pct=0.0,
)
ESTIMATORS: dict[str, Callable[[float], VqfEstimator | ComplementaryEstimator]] = {
    "vqf": VqfEstimator,
    "complementary": ComplementaryEstimator,
}
SETTLED_S = 15.0  # neutral (12 s) + a few seconds: "after convergence"


@dataclasses.dataclass
class Stream:
    """One sensor's samples as a source delivers them, plus the truth."""

    t: np.ndarray
    seq: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray
    up: np.ndarray  # true world up in sensor axes at each sample's true time
    period_s: float  # the sensor's true sample period
    notes: list[int]  # notification sizes, in order

    def select(self, keep: np.ndarray) -> Stream:
        return Stream(self.t[keep], self.seq[keep], self.acc[keep], self.gyro[keep], self.up[keep], self.period_s, [])

    def bias_seed(self) -> np.ndarray:
        """Mean gyro over the still neutral window, as calibration would seed it."""
        seed: np.ndarray = self.gyro[(self.t > 1.0) & (self.t < 11.0)].mean(axis=0)
        return seed


def simulate(config: WearerConfig) -> dict[Placement, Stream]:
    wearer = SimulatedWearer(config)
    mappers = {p: DeviceClockMapper() for p in wearer.imus}
    parts: dict[Placement, list[tuple[np.ndarray, ...]]] = {p: [] for p in wearer.imus}
    for chunk in wearer.notifications():
        for p, note in chunk:
            t = mappers[p].map(note.device_t, note.arrival_t)
            parts[p].append((t, note.true_t, note.seq, note.acc_mps2, note.gyro_radps))
    out = {}
    for p, rows in parts.items():
        t, true_t, seq, acc, gyro = (np.concatenate([r[i] for r in rows]) for i in range(5))
        up = wearer.sensor_rotation(p, true_t)[:, 2, :]
        out[p] = Stream(t, seq, acc, gyro, up, wearer.imus[p].period_s, [len(r[0]) for r in rows])
    return out


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0)))
    return out


def run(name: str, s: Stream, *, seq: bool = True, rate_hz: float = 100.0) -> tuple[EstimatorOutput, object]:
    est = ESTIMATORS[name](rate_hz)
    est.set_gyro_bias(s.bias_seed())
    return est.process(s.t, s.acc, s.gyro, s.seq if seq else None), est


def chunked(est: VqfEstimator | ComplementaryEstimator, s: Stream, rng: np.random.Generator) -> np.ndarray:
    ups = []
    i = 0
    while i < len(s.t):
        n = int(rng.choice([1, 1, 1, 2, 4, 5, 13, 100, 777]))
        ups.append(est.process(s.t[i : i + n], s.acc[i : i + n], s.gyro[i : i + n], s.seq[i : i + n]).up)
        i += n
    return np.concatenate(ups)


@pytest.fixture(scope="module")
def desk() -> dict[int, dict[Placement, Stream]]:
    """desk_session (neutral, three forward bends, typing), seeds 0–2, default errors; 120 s of seed 0
    (room for a 60 s gap), 90 s of the others."""
    return {
        seed: simulate(WearerConfig(scenario="desk_session", seed=seed, duration_s=120.0 if seed == 0 else 90.0))
        for seed in (0, 1, 2)
    }


@pytest.fixture(scope="module")
def desk_acc_ideal() -> dict[Placement, Stream]:
    return simulate(WearerConfig(scenario="desk_session", seed=0, duration_s=120.0, spec=ACC_IDEAL))


@pytest.fixture(scope="module")
def confounders_acc_ideal() -> dict[Placement, Stream]:
    """confounders, 100 s: typing, standing up, walking (≈ 70–95 s), turning, walking back."""
    return simulate(WearerConfig(scenario="confounders", seed=0, duration_s=100.0, spec=ACC_IDEAL))


@pytest.fixture(scope="module")
def rate_change(desk: dict[int, dict[Placement, Stream]]) -> Stream:
    """The upper-thoracic sensor at 100 Hz for 60 s, then reconfigured to 52 Hz (counter keeps counting)."""
    before = desk[0][UT]
    slow = simulate(WearerConfig(scenario="desk_session", seed=0, duration_s=105.0, rate_hz=52.0, placements=(UT,)))[UT]
    a = before.select(before.t < 60.0)
    b = slow.select(slow.t >= 60.0 + 0.02)
    seq_b = b.seq - b.seq[0] + a.seq[-1] + 1
    return Stream(
        np.concatenate((a.t, b.t)),
        np.concatenate((a.seq, seq_b)),
        np.concatenate((a.acc, b.acc)),
        np.concatenate((a.gyro, b.gyro)),
        np.concatenate((a.up, b.up)),
        slow.period_s,
        [],
    )


def gappy(s: Stream) -> Stream:
    """60 s with gaps of 0.1 s, 2 s and 12 s and a few saturated samples."""
    keep = (s.t < 60.0) & ~((s.t >= 20.0) & (s.t < 20.1)) & ~((s.t >= 25.0) & (s.t < 27.0))
    keep &= ~((s.t >= 30.0) & (s.t < 42.0))
    out = s.select(keep)
    out.acc = out.acc.copy()
    out.gyro = out.gyro.copy()
    k = int(np.searchsorted(out.t, 50.0))
    out.acc[k : k + 5, 0] = 16.0 * GRAVITY_MPS2
    out.gyro[k + 20 : k + 23, 1] = np.radians(2000.0)
    return out


# -- chunk invariance -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vqf", "complementary"])
@pytest.mark.parametrize("which", ["gaps_and_saturation", "rate_change"])
def test_chunked_equals_whole(
    name: str, which: str, desk: dict[int, dict[Placement, Stream]], rate_change: Stream
) -> None:
    """Whole vs random chunk sizes (1 sample up to 777) through gaps, saturation, period refits
    and a rate change: the same output to 1e-9 and the same decisions."""
    s = gappy(desk[0][UT]) if which == "gaps_and_saturation" else rate_change
    whole_est = ESTIMATORS[name](100.0)
    whole_est.set_gyro_bias(s.bias_seed())
    whole = whole_est.process(s.t, s.acc, s.gyro, s.seq)
    est = ESTIMATORS[name](100.0)
    est.set_gyro_bias(s.bias_seed())
    up = chunked(est, s, np.random.default_rng(3))
    np.testing.assert_allclose(up, whole.up, rtol=0, atol=1e-9)
    assert est.period_s == whole_est.period_s
    assert est.filter_period_s == whole_est.filter_period_s
    for counter in ("saturated_count", "gap_count", "missing_count", "rate_change_count", "reinit_count"):
        assert getattr(est, counter) == getattr(whole_est, counter), counter


def test_vqf_chunking_is_bit_exact(desk: dict[int, dict[Placement, Stream]]) -> None:
    """VQF's decisions split batches at the same samples whatever the chunking: bit for bit."""
    s = desk[1][TL]
    whole, _ = run("vqf", s)
    est = VqfEstimator(100.0)
    est.set_gyro_bias(s.bias_seed())
    ups = []
    i = 0
    for n in s.notes:  # one call per BLE notification, as the live service does
        ups.append(est.process(s.t[i : i + n], s.acc[i : i + n], s.gyro[i : i + n], s.seq[i : i + n]).up)
        i += n
    assert np.array_equal(np.concatenate(ups), whole.up)


# -- accuracy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "median_max_deg", "max_deg"), [("vqf", 3.5, 4.5), ("complementary", 3.5, 4.5)])
def test_up_error_default_error_model(
    name: str, median_max_deg: float, max_deg: float, desk: dict[int, dict[Placement, Stream]]
) -> None:
    """Absolute error with every error source of LSM6DSO on (measured, 3 seeds × 3 sensors after
    15 s: medians 0.5–2.8°, max 3.0°, set by each part's zero-g offset) and relative to the
    neutral window (what calibration leaves; measured median ≤ 0.56°, max 2.3°)."""
    for streams in desk.values():
        for s in streams.values():
            out, _ = run(name, s)
            settled = s.t > SETTLED_S
            err = angle_deg(out.up, s.up)[settled]
            assert np.median(err) < median_max_deg
            assert err.max() < max_deg
            e = out.up - s.up
            neutral = (s.t > 2.0) & (s.t < 11.0)
            rel = np.degrees(np.linalg.norm(e - e[neutral].mean(axis=0), axis=1))[settled]
            assert np.median(rel) < 0.8
            assert rel.max() < 3.0
            np.testing.assert_allclose(np.linalg.norm(out.up, axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize(("name", "median_max_deg", "max_deg"), [("vqf", 0.05, 1.0), ("complementary", 0.3, 1.0)])
def test_up_error_with_an_ideal_accelerometer(
    name: str, median_max_deg: float, max_deg: float, desk_acc_ideal: dict[Placement, Stream]
) -> None:
    """The estimator's own error (gyro errors on, accelerometer perfect). Measured: VQF median
    0.009–0.016°, max 0.61°; complementary median 0.03–0.13° (no online bias estimation), max 0.68°."""
    for s in desk_acc_ideal.values():
        out, _ = run(name, s)
        err = angle_deg(out.up, s.up)[s.t > SETTLED_S]
        assert np.median(err) < median_max_deg
        assert err.max() < max_deg


def test_vqf_beats_complementary_in_dynamic_confounders(confounders_acc_ideal: dict[Placement, Stream]) -> None:
    """Standing up and walking (vertical steps of ±2.6 m/s²): both gate the accelerometer; VQF's
    inertial-frame low-pass and bias estimation do better. Measured RMS error VQF 0.10–0.30° vs
    complementary 0.20–0.40°, max 0.87° vs 1.40°."""
    for s in confounders_acc_ideal.values():
        settled = s.t > SETTLED_S
        errs = {}
        for name in ESTIMATORS:
            out, _ = run(name, s)
            errs[name] = angle_deg(out.up, s.up)[settled]
        rms = {k: float(np.sqrt(np.mean(v**2))) for k, v in errs.items()}
        assert rms["vqf"] <= rms["complementary"]
        assert errs["vqf"].max() <= errs["complementary"].max()
        assert errs["vqf"].max() < 1.2


def test_default_vqf_rest_bias_learning_is_worse_than_the_chosen_settings(
    desk_acc_ideal: dict[Placement, Stream],
) -> None:
    """The measured fact behind the settings: VQF's rest-based bias estimation learns slow seated
    motion as bias. Seeded + rest learning off is at least 1.5× better (measured ≈ 5× on the full
    sessions)."""
    defaults = VqfSettings(rest_bias_est=True, bias_clip_dps=2.0, bias_sigma_motion_dps=0.1, acc_gate_mps2=None)
    for s in desk_acc_ideal.values():
        settled = s.t > SETTLED_S
        est = VqfEstimator(100.0, defaults)
        plain = angle_deg(est.process(s.t, s.acc, s.gyro, s.seq).up, s.up)[settled]
        chosen, _ = run("vqf", s)
        ours = angle_deg(chosen.up, s.up)[settled]
        assert np.sqrt(np.mean(ours**2)) * 1.5 < np.sqrt(np.mean(plain**2))


def test_measured_period_within_20_ppm(desk: dict[int, dict[Placement, Stream]]) -> None:
    """ODR errors of ~1 % and ±50 ppm device clocks: after 90–120 s the period measured from the
    mapped host times is within 20 ppm of the true one (measured ≤ 12.6 ppm), and the filter runs at
    it. (Both estimators share this front end; the complementary one is checked on one stream.)"""
    for streams in desk.values():
        for s in streams.values():
            _, est = run("vqf", s)
            assert isinstance(est, VqfEstimator)
            assert abs(est.period_s / s.period_s - 1.0) < 20e-6
            assert abs(est.filter_period_s / s.period_s - 1.0) < 70e-6
    _, comp = run("complementary", desk[0][UT])
    assert isinstance(comp, ComplementaryEstimator)
    assert abs(comp.period_s / desk[0][UT].period_s - 1.0) < 20e-6


# -- gaps, rate changes, saturation, bad samples --------------------------------------------------


@pytest.mark.parametrize("name", ["vqf", "complementary"])
@pytest.mark.parametrize(
    ("start_s", "gap_s", "limits"),
    [(25.0, 0.1, [(0.0, 0.05)]), (25.0, 2.0, [(0.0, 0.3)]), (30.0, 60.0, [(1.0, 0.3), (3.0, 0.1)])],
)
def test_gap_recovery(
    name: str, start_s: float, gap_s: float, limits: list[tuple[float, float]], desk: dict[int, dict[Placement, Stream]]
) -> None:
    """Samples dropped during the forward bends (25 s: the body turns ≈ 48° in 2 s) or typing (30 s).
    0.1 s: bridged by interpolation, no visible effect (measured ≤ 0.002°). 2 s: inclination re-taken
    from the accelerometer, the rest of the filter carries on (measured ≤ 0.15° worse than without
    the gap, from the first sample on). 60 s: full restart but the bias estimate (measured 1.4° on
    the first sample, 0.12° after 1 s, 0.03° after 2 s). For each (settle_s, tolerance_deg): from
    settle_s after the gap on, the error is within tolerance_deg of the error without the gap, with
    and without ``seq``."""
    s = desk[0][UT].select(desk[0][UT].t < start_s + gap_s + 20.0)
    full, _ = run(name, s)
    keep = ~((s.t >= start_s) & (s.t < start_s + gap_s))
    g = s.select(keep)
    for use_seq in (True, False):
        out, est = run(name, g, seq=use_seq)
        assert isinstance(est, VqfEstimator | ComplementaryEstimator)
        assert est.gap_count == np.count_nonzero(np.diff(g.seq) > 1)  # with the stream's own lost notifications
        assert est.reinit_count == (0 if gap_s < 0.5 else 1)
        excess = angle_deg(out.up, g.up) - angle_deg(full.up[keep], g.up)
        for settle_s, tolerance_deg in limits:
            assert np.max(excess[g.t >= start_s + gap_s + settle_s]) < tolerance_deg, (use_seq, settle_s)


@pytest.mark.parametrize("name", ["vqf", "complementary"])
@pytest.mark.parametrize("use_seq", [True, False])
def test_rate_change_100_to_52_hz(name: str, use_seq: bool, rate_change: Stream) -> None:
    """Reconfigured at 60 s: detected within a few samples, filter rebuilt; 45 s later the period is
    the new one within 20 ppm and the error stays at its usual level."""
    s = rate_change
    out, est = run(name, s, seq=use_seq)
    assert isinstance(est, VqfEstimator | ComplementaryEstimator)
    assert est.rate_change_count == 1
    assert abs(est.period_s / s.period_s - 1.0) < 20e-6
    err = angle_deg(out.up, s.up)
    before = err[(s.t > SETTLED_S) & (s.t < 60.0)]
    after = err[s.t > 61.0]
    assert after.max() < before.max() + 0.5


@pytest.mark.parametrize("name", ["vqf", "complementary"])
def test_saturated_samples_are_counted_and_do_not_correct(name: str, desk: dict[int, dict[Placement, Stream]]) -> None:
    s = desk[0][TL]
    full, _ = run(name, s)
    hit = s.select(np.ones(len(s.t), dtype=bool))
    hit.acc, hit.gyro = s.acc.copy(), s.gyro.copy()
    k = int(np.searchsorted(s.t, 40.0))
    hit.acc[k : k + 5] = [16.0 * GRAVITY_MPS2, 16.0 * GRAVITY_MPS2, -16.0 * GRAVITY_MPS2]  # a knock
    out, est = run(name, hit)
    assert isinstance(est, VqfEstimator | ComplementaryEstimator)
    assert est.saturated_count == 5
    # The knock's acceleration is ignored: the inclination only misses 5 samples of averaging.
    assert angle_deg(out.up, full.up).max() < 0.05
    hit.gyro[k + 100 : k + 103, 2] = np.radians(-2000.0)  # a clipped turn: ≈ 6° of rotation lost
    out, est = run(name, hit)
    assert isinstance(est, VqfEstimator | ComplementaryEstimator)
    assert est.saturated_count == 8
    assert est.reinit_count == 1  # the inclination is re-taken from the accelerometer after it
    after = s.t > s.t[k + 103] + 1.0
    assert angle_deg(out.up, full.up)[after].max() < 0.3


@pytest.mark.parametrize("name", ["vqf", "complementary"])
def test_nan_rows_and_time_going_back_are_dropped(name: str, desk: dict[int, dict[Placement, Stream]]) -> None:
    s = desk[2][SA].select(desk[2][SA].t < 30.0)
    t, acc, gyro, seq = s.t.copy(), s.acc.copy(), s.gyro.copy(), s.seq.copy()
    acc[500, 1] = np.nan
    gyro[700, 0] = np.inf
    t[900] = t[899] - 0.001  # out of order
    est = ESTIMATORS[name](100.0)
    est.set_gyro_bias(s.bias_seed())
    out = est.process(t, acc, gyro, seq)
    bad = np.zeros(len(t), dtype=bool)
    bad[[500, 700, 900]] = True
    assert est.invalid_count == 3
    assert np.isnan(out.up[bad]).all()
    assert not out.rest[bad].any()
    assert np.isfinite(out.up[~bad]).all()
    clean = ESTIMATORS[name](100.0)
    clean.set_gyro_bias(s.bias_seed())
    ref = clean.process(t[~bad], acc[~bad], gyro[~bad], seq[~bad])
    np.testing.assert_allclose(out.up[~bad], ref.up, rtol=0, atol=1e-12)


def test_rest_is_flagged_in_the_neutral_window_not_in_the_bends(desk: dict[int, dict[Placement, Stream]]) -> None:
    s = desk[0][UT]
    for name in ESTIMATORS:
        out, _ = run(name, s)
        assert out.rest[(s.t > 3.0) & (s.t < 11.0)].mean() > 0.9
        assert not out.rest[:10].any()  # rest is earned: 1.5 s of stillness first


# -- offline, factory, arguments ------------------------------------------------------------------


def test_offline_vqf_is_at_least_as_accurate_and_handles_gaps(desk_acc_ideal: dict[Placement, Stream]) -> None:
    """Forward-backward VQF: measured median 0.004–0.007°, max ≤ 0.40° on the full session."""
    for s in desk_acc_ideal.values():
        keep = ~((s.t >= 25.0) & (s.t < 25.1)) & ~((s.t >= 50.0) & (s.t < 70.0))
        g = s.select(keep)
        out = offline_up(g.t, g.acc, g.gyro, nominal_rate_hz=100.0, gyro_bias_radps=g.bias_seed(), seq=g.seq)
        assert out.up.shape == (len(g.t), 3)
        err = angle_deg(out.up, g.up)[g.t > SETTLED_S]
        assert np.median(err) < 0.03
        assert err.max() < 1.0
        no_seq = offline_up(g.t, g.acc, g.gyro, nominal_rate_hz=100.0, gyro_bias_radps=g.bias_seed())
        np.testing.assert_allclose(no_seq.up, out.up, atol=1e-3)


def test_make_estimator() -> None:
    assert isinstance(make_estimator("vqf", 52.0), VqfEstimator)
    assert isinstance(make_estimator("complementary", 100.0), ComplementaryEstimator)
    assert make_estimator("vqf", 104.0).period_s == pytest.approx(1 / 104.0)
    with pytest.raises(InputError):
        make_estimator("madgwick", 100.0)
    with pytest.raises(InputError):
        make_estimator("vqf", 0.0)


@pytest.mark.parametrize("name", ["vqf", "complementary"])
def test_bias_seed(name: str) -> None:
    est = ESTIMATORS[name](100.0)
    est.set_gyro_bias(np.radians([1.0, -0.5, 2.5]))
    np.testing.assert_allclose(est.gyro_bias_radps, np.radians([1.0, -0.5, 2.5]))
    with pytest.raises(InputError):
        est.set_gyro_bias(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(InputError):
        est.set_gyro_bias(np.zeros(2))


@pytest.mark.parametrize("name", ["vqf", "complementary"])
def test_wrong_shapes_raise_input_error_and_empty_input_is_fine(name: str) -> None:
    est = ESTIMATORS[name](100.0)
    with pytest.raises(InputError):
        est.process(np.zeros(3), np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(InputError):
        est.process(np.zeros(3), np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(2, dtype=np.int64))
    out = est.process(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
    assert out.up.shape == (0, 3)
    assert len(out) == 0


def test_settings_are_validated() -> None:
    with pytest.raises(InputError):
        VqfSettings(tau_acc_s=0.0)
    with pytest.raises(InputError):
        VqfSettings(acc_gate_mps2=-1.0)
