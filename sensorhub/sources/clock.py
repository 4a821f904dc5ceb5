"""Map a sensor's own clock onto the host clock (DESIGN §3).

Every BLE IMU samples on its own clock. A notification carries one or more samples with device
times ``device_t`` (seconds on the device's epoch: a real device timestamp, or
``seq / nominal_rate_hz`` for counter-only devices); the host stamps the notification's arrival
``arrival_t`` on its own clock. The model is::

    arrival_t = host(device_t[-1]) + latency,   latency >= latency_floor_s
    host(d)   = offset + rate_scale * d,        rate_scale = 1 + drift (|drift| up to ~500 ppm)

Latency is one-sided (connection-interval wait, retransmissions of whole intervals, host
scheduling), so the mapper follows the *lower envelope* of arrival against device time, never its
mean: the envelope is where latency is smallest, i.e. closest to the truth.

Algorithm (all work is per notification, O(1) except one small fit every ``block_s``):

1. Envelope. Device time is cut into blocks of ``block_s`` (2 s). Each block keeps one point: the
   notification whose arrival lies lowest under the current slope (the block minimum). Blocks are
   keyed by device time, so drops and reconnect gaps only leave blocks out.
2. Fit. A least-squares line through the block minima of the last ``n_blocks`` blocks (150, about
   5 min; a ring buffer, the oldest block is overwritten — memory is bounded), with a Gaussian
   prior on the drift that keeps the first minute stable: 0 ± ``prior_drift_ppm`` (300 ppm) on a
   fresh mapper; after a re-anchor the previous estimate ± its own uncertainty (at least 10 ppm:
   same crystal, maybe warmer). One robust pass drops block minima further than 4 MAD (at least
   ``envelope_noise_s``) from the line, e.g. a block whose every notification was retransmitted.
   The fit is redone when a block closes and, during the first ``acquire_s`` of a stream, whenever
   the open block gets a new minimum below the line (fast acquisition).
3. Output. Samples are mapped with the current line plus a correction ``e`` that makes every refit
   continuous at the last mapped sample. ``e`` decays to 0 linearly in device time at most
   ``slew_ppm`` (1000 ppm: 1 ms per second) — the output never steps — and at most
   ``acquire_slew`` (0.5: the output runs at ≥ half speed) during the first ``acquire_s`` (10 s)
   of a stream, so that a first notification that arrived late is corrected within seconds. Since
   ``rate_scale - slew > 0``, the output is strictly increasing within a stream.
4. Re-anchor (counted in :attr:`DeviceClockMapper.resets`). The stream restarts from the current
   notification, keeping the rate estimate, when device time goes backwards by more than
   ``reanchor_s`` (0.5 s; a device reset), when a notification arrives more than ``reanchor_s``
   *before* the line says its last sample was taken (device time jumped forward; impossible under
   the latency model), or when every notification for ``reanchor_confirm_s`` (2 s of host time,
   at least 3 notifications) arrives more than ``reanchor_s`` late (device time paused, e.g. a
   counter that did not run while disconnected). Late notifications are never offered to the
   blocks, so one notification delayed by seconds does not move the line, and the backlog of a
   link stall, delivered in a burst, does not re-anchor. A re-anchor during the first
   ``acquire_s`` of a stream is a re-acquisition and is not counted. After a re-anchor the output
   is held at or above the last output and slewed down at ``acquire_slew``, so the output is
   non-decreasing over the whole life of a mapper; device time stepping back by less than
   ``reanchor_s`` (duplicates) is clamped to the last output.

Bounds: memory ``O(n_blocks)``; cost per notification O(1) (about 7 µs in CPython 3.11) plus a
fit of ≤ ``n_blocks`` points every ``block_s``; the rate estimate is clamped to
``1 ± max_rate_error`` (20 %, room for counter devices whose real rate differs from the nominal
one); a line correction of ``c`` seconds reaches the output within ``c / slew`` device seconds.

Measured accuracy (the simulator of tests/test_clock.py: 100 Hz, 4 samples per notification,
latency uniform 0–30 ms, 1 % of notifications delayed 100–400 ms more, holding back the ones
queued behind them, 0.5 % dropped; drift −300, −100, 0, +100, +300 ppm × 10 seeds × 30 min):

- after 60 s, largest absolute error of any sample 1.01 ms (median over runs 0.86 ms), mean
  error +0.57 ms: the envelope sits on the smallest latency of a block (≈ 30 ms / 50
  notifications), not on zero latency;
- 10–60 s: ≤ 2.3 ms; first 10 s: up to the first notification's latency (≤ 30 ms), slewed out;
- drift estimate after 10 min within 1.3 ppm (median 0.5 ppm); a drift ramping 0 → 20 ppm over
  30 min stays within 0.75 ms, the estimate lagging the ramp by ~2.5 ppm;
- 10 s after a 20 s reconnect gap: ≤ 1.1 ms; 10 s after a device reset (counter back to 0):
  ≤ 1.4 ms, ``resets == 1``; 10 s after a reconnect with a paused counter: ≤ 1.8 ms.

The mapper cannot see a latency that never varies: a constant part of the latency stays in the
mapped time unless given as ``latency_floor_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensorhub.errors import InputError

__all__ = ["ClockParams", "DeviceClockMapper"]

# Scale factor from the median absolute deviation to a Gaussian standard deviation.
_MAD_TO_SIGMA = 1.4826
# Smallest drift uncertainty carried across a re-anchor: a body-worn crystal warming by a few
# kelvin moves by a few ppm (tuning-fork crystals: about −0.034 ppm/K² around 25 °C).
_CARRIED_DRIFT_SIGMA_PPM = 10.0


@dataclass(frozen=True, slots=True)
class ClockParams:
    """Tuning of :class:`DeviceClockMapper`; the defaults suit BLE IMUs at 10–1000 Hz.

    Attributes:
        block_s: device seconds per envelope block (one minimum kept per block).
        n_blocks: blocks kept for the fit (ring buffer; window = ``block_s * n_blocks``).
        prior_drift_ppm: standard deviation of the prior on the drift, ppm.
        envelope_noise_s: expected scatter of block minima around the envelope line, seconds;
            weighs the prior against the data and is the floor of the outlier threshold.
        slew_ppm: fastest rate at which a correction reaches the output once acquired, ppm.
        acquire_s: device seconds after a (re)anchor during which the fit follows every new
            block minimum and corrections slew at ``acquire_slew``.
        acquire_slew: fastest correction rate while acquiring, host seconds per device second
            (< ``1 - max_rate_error`` keeps the output increasing).
        reanchor_s: residual beyond which the mapping is considered broken, seconds.
        reanchor_confirm_s: host seconds of consecutive late-by-more-than-``reanchor_s``
            notifications (at least 3) that force a re-anchor.
        max_rate_error: the rate estimate is clamped to ``1 ± max_rate_error``.
        latency_floor_s: known constant part of the latency, subtracted from the envelope.
    """

    block_s: float = 2.0
    n_blocks: int = 150
    prior_drift_ppm: float = 300.0
    envelope_noise_s: float = 0.001
    slew_ppm: float = 1000.0
    acquire_s: float = 10.0
    acquire_slew: float = 0.5
    reanchor_s: float = 0.5
    reanchor_confirm_s: float = 2.0
    max_rate_error: float = 0.2
    latency_floor_s: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "block_s": self.block_s > 0,
            "n_blocks": self.n_blocks >= 2,
            "prior_drift_ppm": self.prior_drift_ppm > 0,
            "envelope_noise_s": self.envelope_noise_s > 0,
            "slew_ppm": self.slew_ppm > 0,
            "acquire_s": self.acquire_s >= 0,
            "max_rate_error": 0 < self.max_rate_error < 1,
            "acquire_slew": 0 < self.acquire_slew < 1 - self.max_rate_error,
            "reanchor_s": self.reanchor_s > 0,
            "reanchor_confirm_s": self.reanchor_confirm_s >= 0,
            "latency_floor_s": self.latency_floor_s >= 0,
        }
        for name, ok in checks.items():
            if not (ok and math.isfinite(float(getattr(self, name)))):
                raise InputError(
                    f"clock parameter {name}={getattr(self, name)!r} is out of range",
                    advice="see ClockParams in sensorhub/sources/clock.py for the allowed values",
                )


class DeviceClockMapper:
    """Drift-corrected, lower-envelope mapping of one device's clock onto the host clock.

    One mapper per sensor stream; feed every notification, in arrival order, to :meth:`map`.
    The algorithm, its bounds and its accuracy are described in the module docstring.
    """

    def __init__(self, params: ClockParams | None = None) -> None:
        """Create a mapper with no stream yet.

        Args:
            params: tuning; ``ClockParams()`` when None.
        """
        self._p = params if params is not None else ClockParams()
        n = self._p.n_blocks
        self._block_x_s = np.zeros(n)
        self._block_y_s = np.zeros(n)
        self._n_blocks_used = 0
        self._block_head = 0
        # Prior weight in device-seconds² (ratio of envelope noise to prior drift spread, squared).
        self._prior_weight_s2 = (self._p.envelope_noise_s / (self._p.prior_drift_ppm * 1e-6)) ** 2
        self._drift_prior = 0.0
        # Information (device-seconds², in units of envelope_noise_s) behind the current drift.
        self._drift_information_s2 = self._prior_weight_s2
        self._carried_weight_s2 = (self._p.envelope_noise_s / (_CARRIED_DRIFT_SIGMA_PPM * 1e-6)) ** 2
        self._drift = 0.0
        self._n_packets = 0
        self._resets = 0
        self._started = False
        self._last_out_s = -math.inf
        # Per-stream state, set by _anchor().
        self._device_ref_s = 0.0
        self._host_ref_s = 0.0
        self._offset_s = 0.0
        self._x_prev_s = 0.0
        self._correction_s = 0.0
        self._block_index = 0
        self._cur_x_s = 0.0
        self._cur_y_s = 0.0
        self._late_since_y_s: float | None = None
        self._late_count = 0

    @property
    def drift_ppm(self) -> float:
        """Estimated host-per-device rate − 1, in ppm (positive: the device clock runs slow)."""
        return self._drift * 1e6

    @property
    def rate_scale(self) -> float:
        """Host seconds per device second."""
        return 1.0 + self._drift

    @property
    def n_packets(self) -> int:
        """Notifications mapped so far."""
        return self._n_packets

    @property
    def resets(self) -> int:
        """Hard re-anchors after the stream was acquired (device resets, clock steps)."""
        return self._resets

    @property
    def params(self) -> ClockParams:
        """The tuning this mapper runs with."""
        return self._p

    def map(self, device_t: NDArray[np.float64], arrival_t: float) -> NDArray[np.float64]:
        """Map the samples of one notification to host time.

        Args:
            device_t: (N,) float64 device times of the notification's samples, seconds on the
                device's epoch, non-decreasing; the last one is the sample sent last.
            arrival_t: host time the notification arrived, seconds.

        Returns:
            (N,) float64 host times of the samples, seconds, with the latency envelope removed;
            non-decreasing within the notification and across calls.

        Raises:
            InputError: ``device_t`` is empty, not 1-D, not finite or decreasing, or
                ``arrival_t`` is not finite.
        """
        if type(device_t) is not np.ndarray or device_t.dtype != np.float64:
            device_t = np.asarray(device_t, dtype=np.float64)
        if device_t.ndim != 1 or device_t.size == 0:
            raise InputError(
                f"device_t must be a non-empty 1-D array, got shape {device_t.shape}",
                advice="pass the device times of one notification's samples",
            )
        # Plain floats: per-notification arrays are tiny, and numpy's per-call overhead dominates.
        times = device_t.tolist()
        if not (math.isfinite(arrival_t) and all(map(math.isfinite, times)) and times == sorted(times)):
            raise InputError(
                "device_t must be finite and non-decreasing and arrival_t finite",
                advice="check the decoder of this sensor's profile",
            )
        d_first: float = times[0]
        d_last: float = times[-1]
        self._n_packets += 1
        if self._started:
            self._observe(d_first, d_last, arrival_t)
        else:
            self._anchor(d_first, d_last, arrival_t)
        return self._output(device_t, d_first, d_last)

    # -- stream state -------------------------------------------------------------------------

    def _anchor(self, d_first: float, d_last: float, arrival_t: float) -> None:
        """Start a stream at this notification: line through it, blocks cleared, rate kept."""
        self._started = True
        self._device_ref_s = d_last
        self._host_ref_s = arrival_t - self._p.latency_floor_s
        self._offset_s = 0.0
        # Same crystal after a reset or a clock step: the rate carries over with its uncertainty,
        # widened to at least _CARRIED_DRIFT_SIGMA_PPM for a temperature change in between.
        self._drift_prior = self._drift
        self._prior_weight_s2 = min(self._drift_information_s2, self._carried_weight_s2)
        self._n_blocks_used = 0
        self._block_head = 0
        self._block_index = 0
        self._cur_x_s = 0.0
        self._cur_y_s = 0.0
        self._late_since_y_s = None
        self._late_count = 0
        x_first = d_first - d_last
        self._x_prev_s = x_first
        # Never map below what was already output (re-anchor after a reset or clock step).
        first_out = self._host_ref_s + (1.0 + self._drift) * x_first
        self._correction_s = max(0.0, self._last_out_s - first_out)

    def _observe(self, d_first: float, d_last: float, arrival_t: float) -> None:
        """Update envelope, fit and re-anchor state with one notification of a running stream."""
        p = self._p
        ref_s = self._device_ref_s
        x_last = d_last - ref_s
        y = arrival_t - p.latency_floor_s - self._host_ref_s
        if d_first - ref_s < self._x_prev_s - p.reanchor_s:
            self._reanchor(d_first, d_last, arrival_t, counted=True)
            return
        acquiring = x_last < p.acquire_s
        scale = 1.0 + self._drift
        envelope_y = y - scale * x_last  # arrival − line slope · x: smallest at the envelope
        residual_s = envelope_y - self._offset_s
        if residual_s > p.reanchor_s or residual_s < -p.reanchor_s:
            if residual_s < 0.0:
                self._reanchor(d_first, d_last, arrival_t, counted=not acquiring)
                return
            # Confirmed on host time: a link stall delivers its backlog in a burst, a paused or
            # stepped device clock keeps every later notification late.
            if self._late_since_y_s is None:
                self._late_since_y_s = y
            self._late_count += 1
            if self._late_count >= 3 and y - self._late_since_y_s >= p.reanchor_confirm_s:
                self._reanchor(d_first, d_last, arrival_t, counted=not acquiring)
            return
        if self._late_count:
            self._late_since_y_s = None
            self._late_count = 0

        block_index = int(x_last // p.block_s)
        if block_index != self._block_index:
            self._push_block(self._cur_x_s, self._cur_y_s)
            self._block_index = block_index
            self._cur_x_s = x_last
            self._cur_y_s = y
            self._refit(include_open_block=acquiring)
        elif envelope_y < self._cur_y_s - scale * self._cur_x_s:
            self._cur_x_s = x_last
            self._cur_y_s = y
            if acquiring:
                self._refit(include_open_block=True)

    def _reanchor(self, d_first: float, d_last: float, arrival_t: float, *, counted: bool) -> None:
        if counted:
            self._resets += 1
        self._anchor(d_first, d_last, arrival_t)

    def _push_block(self, x_s: float, y_s: float) -> None:
        self._block_x_s[self._block_head] = x_s
        self._block_y_s[self._block_head] = y_s
        self._block_head = (self._block_head + 1) % self._p.n_blocks
        self._n_blocks_used = min(self._n_blocks_used + 1, self._p.n_blocks)

    def _refit(self, *, include_open_block: bool) -> None:
        """Refit the envelope line and fold the change at the last mapped sample into the correction."""
        n = self._n_blocks_used
        xs = self._block_x_s[:n]
        ys = self._block_y_s[:n]
        # While acquiring, the open block joins the fit as soon as it proves the line too high;
        # a young block's minimum above the line is not yet a minimum and would pull the line up.
        if include_open_block and (n == 0 or self._cur_y_s < self._offset_s + (1.0 + self._drift) * self._cur_x_s):
            xs = np.append(xs, self._cur_x_s)
            ys = np.append(ys, self._cur_y_s)
        if xs.size == 0:
            return
        offset_s, drift = self._fit_line(xs, ys - xs)
        x_prev = self._x_prev_s
        old_s = self._offset_s + (1.0 + self._drift) * x_prev
        new_s = offset_s + (1.0 + drift) * x_prev
        self._correction_s -= new_s - old_s
        self._offset_s = offset_s
        self._drift = drift

    def _fit_line(self, xs: NDArray[np.float64], zs: NDArray[np.float64]) -> tuple[float, float]:
        """Least-squares ``z = offset + drift * x`` with a Gaussian prior on drift, one robust pass.

        Args:
            xs: (M,) device seconds of the block minima, relative to the stream's anchor.
            zs: (M,) arrival − device seconds of the block minima.

        Returns:
            (offset_s, drift): the line's value at x = 0 and its slope (host/device rate − 1).
        """
        offset_s, drift = self._solve(xs, zs)
        if xs.size >= 4:
            resid = zs - (offset_s + drift * xs)
            centre = _median(resid)
            deviation = np.abs(resid - centre)
            keep = deviation <= max(4.0 * _MAD_TO_SIGMA * _median(deviation), self._p.envelope_noise_s)
            if 2 <= int(np.count_nonzero(keep)) < xs.size:
                offset_s, drift = self._solve(xs[keep], zs[keep])
        return offset_s, drift

    def _solve(self, xs: NDArray[np.float64], zs: NDArray[np.float64]) -> tuple[float, float]:
        x_mean = float(xs.sum()) / xs.size
        z_mean = float(zs.sum()) / zs.size
        dx = xs - x_mean
        sxz = float(dx @ (zs - z_mean))
        sxx = float(dx @ dx)
        w = self._prior_weight_s2
        limit = self._p.max_rate_error
        drift = min(max((sxz + w * self._drift_prior) / (sxx + w), -limit), limit)
        self._drift_information_s2 = sxx + w
        return z_mean - drift * x_mean, drift

    # -- output -------------------------------------------------------------------------------

    def _output(self, device_t: NDArray[np.float64], d_first: float, d_last: float) -> NDArray[np.float64]:
        """Host times of one notification's samples under the current line and correction."""
        scale = 1.0 + self._drift
        ref_s = self._device_ref_s
        # host = host_ref + offset + scale * (d - ref), folded into one multiply-add; the rounding
        # of the folded constant is below 1 µs for any epoch up to ~1e10 s.
        base_s = self._host_ref_s + self._offset_s - scale * ref_s
        out = device_t * scale
        out += base_s
        # Same IEEE operations as the array ones, so these equal out[0] and out[-1] exactly.
        first_out_s = d_first * scale + base_s
        last_out_s = d_last * scale + base_s
        x_last = d_last - ref_s
        correction = self._correction_s
        if correction != 0.0:
            p = self._p
            slew = p.acquire_slew if x_last < p.acquire_s else p.slew_ppm * 1e-6
            x_prev = self._x_prev_s
            if abs(correction) <= slew * (d_first - ref_s - x_prev):
                self._correction_s = 0.0
            else:
                # The correction decays linearly in device time from the last mapped sample on.
                elapsed_s = np.maximum(device_t - (ref_s + x_prev), 0.0)
                remaining = np.maximum(abs(correction) - slew * elapsed_s, 0.0)
                out += math.copysign(1.0, correction) * remaining
                np.maximum.accumulate(out, out=out)
                self._correction_s = math.copysign(float(remaining[-1]), correction)
                first_out_s = float(out[0])
                last_out_s = float(out[-1])
        if first_out_s < self._last_out_s:
            np.maximum(out, self._last_out_s, out=out)
            last_out_s = float(out[-1])
        if x_last > self._x_prev_s:
            self._x_prev_s = x_last
        self._last_out_s = last_out_s
        return out


def _median(values: NDArray[np.float64]) -> float:
    """Median of a small array (``np.median`` costs ~50 µs of overhead)."""
    ordered = np.sort(values)
    mid = ordered.size // 2
    if ordered.size % 2:
        return float(ordered[mid])
    return 0.5 * float(ordered[mid - 1] + ordered[mid])
