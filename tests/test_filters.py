"""Streaming Butterworth low-pass: chunking, gain, attenuation, group delay, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest

from sensorhub.errors import InputError
from sensorhub.pipeline.filters import LowPass, group_delay_s


def _chunked(lp: LowPass, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = []
    i = 0
    while i < len(x):
        n = int(rng.choice([1, 1, 2, 3, 7, 10, 64, 333]))
        out.append(lp.process(x[i : i + n]))
        i += n
    return np.concatenate(out)


@pytest.mark.parametrize(("order", "channels"), [(1, 1), (2, 3), (4, 2)])
def test_chunked_equals_whole(order: int, channels: int) -> None:
    rng = np.random.default_rng(order)
    x = np.cumsum(rng.normal(size=(3000, channels)), axis=0)
    whole = LowPass(3.0, 100.0, order, channels).process(x)
    chunked = _chunked(LowPass(3.0, 100.0, order, channels), x, rng)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)


def test_one_dimensional_input_keeps_its_shape() -> None:
    x = np.sin(np.arange(500) * 0.01)
    y = LowPass(2.0, 100.0).process(x)
    assert y.shape == (500,)


def test_dc_gain_is_one_and_start_is_steady() -> None:
    """A constant input is passed unchanged from the very first sample (steady-state start)."""
    y = LowPass(2.0, 100.0, 4, 2).process(np.full((400, 2), [3.5, -7.0]))
    np.testing.assert_allclose(y, np.broadcast_to([3.5, -7.0], y.shape), rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [2, 4])
def test_attenuation_at_five_times_cutoff(order: int) -> None:
    """|H| = 1/sqrt(1 + (f/fc)^(2n)) for an analogue Butterworth: -28 dB (n=2), -56 dB (n=4) at 5 fc."""
    fs, fc = 100.0, 2.0
    t = np.arange(int(20 * fs)) / fs
    y = LowPass(fc, fs, order).process(np.sin(2 * np.pi * 5 * fc * t))
    amplitude = np.max(np.abs(y[len(y) // 2 :]))
    expected = 1.0 / np.sqrt(1.0 + 5.0 ** (2 * order))
    assert amplitude < 1.3 * expected
    assert amplitude > 0.5 * expected


@pytest.mark.parametrize(("fc", "order"), [(2.0, 2), (3.0, 2), (5.0, 4)])
def test_group_delay_matches_the_lag_of_a_slow_ramp(fc: float, order: int) -> None:
    """A ramp comes out shifted by exactly the low-frequency group delay (steady state)."""
    fs = 100.0
    t = np.arange(int(30 * fs)) / fs
    lp = LowPass(fc, fs, order)
    lp.reset(np.array([0.0]))
    y = lp.process(0.7 * t)
    measured_s = float(np.median((0.7 * t[-500:] - y[-500:]) / 0.7))
    assert lp.group_delay_s == pytest.approx(measured_s, rel=1e-6)
    assert group_delay_s(fc, fs, order, freq_hz=0.0) == pytest.approx(measured_s, rel=1e-6)
    assert group_delay_s(fc, fs, order) == pytest.approx(measured_s, rel=5e-3)  # at 0.1 Hz


def test_group_delay_of_the_recommended_filters_ms() -> None:
    """The values quoted in docs/pipeline-orientation.md."""
    assert LowPass(2.0, 100.0, 2).group_delay_s * 1e3 == pytest.approx(112.4, abs=0.1)
    assert LowPass(3.0, 100.0, 2).group_delay_s * 1e3 == pytest.approx(74.8, abs=0.1)
    assert LowPass(5.0, 100.0, 2).group_delay_s * 1e3 == pytest.approx(44.6, abs=0.1)
    assert LowPass(2.0, 52.0, 2).group_delay_s * 1e3 == pytest.approx(112.0, abs=0.1)


def test_nan_sample_gives_nan_and_restarts_at_the_next_good_sample() -> None:
    """Policy: NaN in → NaN out; the channel's state is dropped; the next finite sample starts it
    again at steady state. The other channel is not disturbed."""
    x = np.column_stack([np.full(300, 5.0), np.linspace(0.0, 3.0, 300)])
    x[100, 0] = np.nan
    x[150:, 0] = 9.0
    x[200:203, 0] = np.nan
    lp = LowPass(2.0, 100.0, 2, 2)
    y = lp.process(x)
    ref = LowPass(2.0, 100.0, 2, 2).process(np.column_stack([np.full(300, 5.0), x[:, 1]]))
    assert np.isnan(y[100, 0])
    assert np.isnan(y[200:203, 0]).all()
    np.testing.assert_allclose(y[101:150, 0], 5.0, atol=1e-12)  # restarted at 5, steady
    assert np.isfinite(y[203:, 0]).all()
    np.testing.assert_allclose(y[203:, 0], 9.0, atol=1e-12)  # restarted at 9 after the hole
    np.testing.assert_allclose(y[:, 1], ref[:, 1], atol=1e-12)  # channel 1 untouched


def test_nan_policy_is_chunk_invariant() -> None:
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.normal(size=(2000, 2)), axis=0)
    x[rng.integers(0, 2000, 30), rng.integers(0, 2, 30)] = np.nan
    x[500:520, :] = np.nan
    whole = LowPass(4.0, 100.0, 2, 2).process(x)
    chunked = _chunked(LowPass(4.0, 100.0, 2, 2), x, rng)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(chunked), np.isnan(x))


def test_nan_at_the_end_of_a_batch_carries_over() -> None:
    lp = LowPass(2.0, 100.0)
    lp.process(np.array([1.0, 1.0, np.nan]))
    np.testing.assert_allclose(lp.process(np.array([4.0, 4.0])), [4.0, 4.0], atol=1e-12)


def test_reset_to_a_value() -> None:
    lp = LowPass(2.0, 100.0, 2, 3)
    lp.process(np.zeros((50, 3)))
    lp.reset(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(lp.process(np.tile([1.0, 2.0, 3.0], (10, 1))), np.tile([1.0, 2.0, 3.0], (10, 1)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cutoff_hz": 50.0, "sample_rate_hz": 100.0},
        {"cutoff_hz": 0.0, "sample_rate_hz": 100.0},
        {"cutoff_hz": float("nan"), "sample_rate_hz": 100.0},
        {"cutoff_hz": 2.0, "sample_rate_hz": -1.0},
        {"cutoff_hz": 2.0, "sample_rate_hz": 100.0, "order": 0},
        {"cutoff_hz": 2.0, "sample_rate_hz": 100.0, "order": 9},
        {"cutoff_hz": 2.0, "sample_rate_hz": 100.0, "channels": 0},
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        LowPass(**kwargs)  # type: ignore[arg-type]


def test_wrong_shape_and_bad_reset_raise_input_error() -> None:
    lp = LowPass(2.0, 100.0, 2, 3)
    with pytest.raises(InputError):
        lp.process(np.zeros((10, 2)))
    with pytest.raises(InputError):
        lp.reset(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(InputError):
        group_delay_s(2.0, 100.0, 2, freq_hz=60.0)
