"""StreamPairer: separate acc and gyro streams → 6-axis samples at the accelerometer's times."""

from __future__ import annotations

import numpy as np
import pytest

from sensorhub.sources.pairing import StreamPairer


def _gyro(t: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(t), np.cos(t), 0.1 * t], axis=1)


def test_interleaved_streams_pair_every_acc_sample_with_interpolated_gyro() -> None:
    rng = np.random.default_rng(1)
    acc_t = np.arange(0, 10, 1 / 52) + 0.004
    gyro_t = np.arange(0, 10.2, 1 / 52)
    acc = rng.normal(size=(len(acc_t), 3))
    pairer = StreamPairer()
    out_t, out_a, out_g = [], [], []
    ia = ig = 0
    while ia < len(acc_t) or ig < len(gyro_t):
        # Notifications of 1-9 samples, roughly in time order (the later stream is sometimes first).
        acc_first = ia < len(acc_t) and (ig >= len(gyro_t) or acc_t[ia] < gyro_t[ig])
        if ig >= len(gyro_t) or (ia < len(acc_t) and acc_first != (rng.random() < 0.2)):
            k = int(rng.integers(1, 10))
            res = pairer.add_acc(acc_t[ia : ia + k], acc[ia : ia + k])
            ia += k
        else:
            k = int(rng.integers(1, 10))
            res = pairer.add_gyro(gyro_t[ig : ig + k], _gyro(gyro_t[ig : ig + k]))
            ig += k
        for lst, part in zip((out_t, out_a, out_g), res, strict=True):
            lst.append(part)
    t = np.concatenate(out_t)
    np.testing.assert_array_equal(t, acc_t)  # every sample, in order, once
    np.testing.assert_array_equal(np.concatenate(out_a), acc)
    # Linear interpolation of a smooth signal sampled at 52 Hz: error ≤ h²/8·max|f''| ≈ 4.6e-5.
    np.testing.assert_allclose(np.concatenate(out_g), _gyro(t), atol=5e-5)
    assert pairer.dropped == 0
    assert pairer.pending == 0


def test_acc_waits_for_gyro_then_is_dropped_after_the_lag_bound() -> None:
    pairer = StreamPairer(max_lag_s=1.0)
    pairer.add_gyro(np.array([0.0]), np.zeros((1, 3)))
    t, _, _ = pairer.add_acc(np.arange(1, 51) / 50, np.ones((50, 3)))  # 0.02 … 1.0 s
    assert len(t) == 0
    assert pairer.pending == 50
    # The gyro stalls; acc goes on to 1.5 s: samples older than 0.5 s are given up (counted).
    t, _, _ = pairer.add_acc(np.arange(51, 76) / 50, np.ones((25, 3)))
    assert len(t) == 0
    assert pairer.dropped == 24  # 0.02 … 0.48 s
    assert pairer.pending == 51
    # The gyro comes back: what it covers is emitted.
    t, _, g = pairer.add_gyro(np.array([1.6]), np.ones((1, 3)))
    assert len(t) == 51
    assert t[0] == pytest.approx(0.5)
    np.testing.assert_allclose(g[:, 0], t / 1.6)


def test_acc_before_the_first_gyro_sample_is_dropped_and_buffers_stay_small() -> None:
    pairer = StreamPairer()
    pairer.add_acc(np.array([0.0, 0.1]), np.ones((2, 3)))
    t, _, _ = pairer.add_gyro(np.array([0.05, 0.5]), np.zeros((2, 3)))
    np.testing.assert_array_equal(t, [0.1])
    assert pairer.dropped == 1
    # A long gyro-only stream (the acc stream stalled) keeps the lag bound's worth, not all of it.
    for k in range(1000):
        pairer.add_gyro(np.array([1.0 + k * 0.01]), np.zeros((1, 3)))
    assert len(pairer._gyro_t) <= 102


def test_reset_and_bad_lag() -> None:
    pairer = StreamPairer()
    pairer.add_acc(np.array([1.0]), np.ones((1, 3)))
    pairer.reset()
    assert pairer.pending == 0
    with pytest.raises(ValueError, match="max_lag_s"):
        StreamPairer(max_lag_s=0.0)
