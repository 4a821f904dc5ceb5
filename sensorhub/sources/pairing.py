"""Pair separate accelerometer and gyroscope streams into 6-axis samples.

Some sensors (Polar Verity Sense's PMD, MetaWear) stream the accelerometer and the gyroscope
as two measurements, in separate notifications, each with its own times. The pipeline needs
both at every sample, so :class:`StreamPairer` puts the gyroscope onto the accelerometer's
sample times by linear interpolation (both are band-limited well below their rate; at 52–100 Hz
interpolating an angular rate between neighbouring samples changes it by far less than its
noise). An accelerometer sample is emitted once the gyroscope has a sample at or after it.

Bounds: each buffer keeps at most ``max_lag_s`` of samples. When the gyroscope stream falls
more than ``max_lag_s`` behind (stalled, or not started), the accelerometer samples older than
that are dropped and counted in :attr:`StreamPairer.dropped` (a gap, not a guess); gyroscope
samples older than the oldest pending accelerometer sample are discarded as they are no longer
needed. Pure computation, no I/O.
"""

from __future__ import annotations

import numpy as np

from sensorhub.model import FloatArray

__all__ = ["StreamPairer"]


class StreamPairer:
    """Accelerometer-timed 6-axis samples from separate acc and gyro streams (host times)."""

    def __init__(self, *, max_lag_s: float = 1.0) -> None:
        if not max_lag_s > 0:
            raise ValueError(f"max_lag_s must be positive, got {max_lag_s!r}")
        self.max_lag_s = max_lag_s
        self._acc_t = np.empty(0)
        self._acc = np.empty((0, 3))
        self._gyro_t = np.empty(0)
        self._gyro = np.empty((0, 3))
        self.dropped = 0  # accelerometer samples dropped for want of gyroscope samples
        self._last_acc_t: float | None = None

    def reset(self) -> None:
        """Forget pending samples (after a reconnect: the streams restart)."""
        self._acc_t, self._acc = np.empty(0), np.empty((0, 3))
        self._gyro_t, self._gyro = np.empty(0), np.empty((0, 3))
        self._last_acc_t = None

    def add_acc(self, t: FloatArray, acc: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Add accelerometer samples; returns what can be emitted (t, acc, gyro)."""
        self._acc_t, self._acc = _append(self._acc_t, self._acc, t, acc)
        if len(self._acc_t):
            self._last_acc_t = float(self._acc_t[-1])
        return self._emit()

    def add_gyro(self, t: FloatArray, gyro: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Add gyroscope samples; returns what can be emitted (t, acc, gyro)."""
        self._gyro_t, self._gyro = _append(self._gyro_t, self._gyro, t, gyro)
        return self._emit()

    @property
    def pending(self) -> int:
        """Accelerometer samples waiting for the gyroscope."""
        return len(self._acc_t)

    def _emit(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        at, acc, gt = self._acc_t, self._acc, self._gyro_t
        dropped = 0
        if len(gt):
            # Acc samples before the first gyro sample can never be interpolated.
            early = int(np.searchsorted(at, gt[0], side="left"))
            dropped += early
            at, acc = at[early:], acc[early:]
        ready = int(np.searchsorted(at, gt[-1], side="right")) if len(gt) else 0
        out_t, out_acc = at[:ready], acc[:ready]
        if ready:
            gyro = np.stack([np.interp(out_t, gt, self._gyro[:, k]) for k in range(3)], axis=1)
        else:
            gyro = np.empty((0, 3))
        at, acc = at[ready:], acc[ready:]
        # What the gyro has not covered within the lag bound is not waited for any longer.
        newest = max(at[-1] if len(at) else -np.inf, gt[-1] if len(gt) else -np.inf)
        stale = int(np.searchsorted(at, newest - self.max_lag_s, side="left"))
        dropped += stale
        self._acc_t, self._acc = at[stale:], acc[stale:]
        self.dropped += dropped
        if len(gt):
            # Keep the gyro samples a later acc sample may still need: from the last one at or before
            # the oldest acc sample that can still come (pending, or after the last acc seen), and
            # never more than the lag bound.
            if len(self._acc_t):
                first_needed = float(self._acc_t[0])
            elif self._last_acc_t is not None:
                first_needed = self._last_acc_t
            else:
                first_needed = float(gt[-1]) - self.max_lag_s
            first_needed = max(first_needed, float(gt[-1]) - self.max_lag_s)
            keep = max(0, int(np.searchsorted(gt, first_needed, side="right")) - 1)
            self._gyro_t, self._gyro = gt[keep:], self._gyro[keep:]
        return out_t, out_acc, gyro


def _append(t0: FloatArray, v0: FloatArray, t: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Append samples that are later than the buffer's last one (a stream never goes back)."""
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
    if len(t0):
        later = t > t0[-1]
        t, v = t[later], v[later]
    return np.concatenate((t0, t)), np.concatenate((v0, v))
