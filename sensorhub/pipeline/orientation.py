"""Per-sensor 6D orientation: world "up" in sensor axes from accelerometer + gyroscope.

Two estimators share one interface (:class:`Estimator`) and one stream front end:

- :class:`VqfEstimator` wraps ``vqf.VQF`` (Laidig & Seel 2023, 6D, no magnetometer), fed with
  ``updateBatch`` and its state carried across calls. Its bias and rest parameters were chosen from
  measurements on the simulator (docs/pipeline-orientation.md): the gyro bias is seeded from the
  still neutral capture and VQF's *rest*-based bias learning is switched off, because VQF's rest
  detector looks at the deviation of the rate from its own 0.5 s low-pass, so a slow, smooth seated
  posture change (1–3 °/s for 5–20 s) passes for rest and is learnt as bias (5× the error on the
  desk and 2 h sessions). Bias estimation during motion (from the accelerometer corrections) stays
  on, trusted more (``biasSigmaMotion`` 0.05 °/s), with the bias clip raised from 2 to 5 °/s so
  that a zero-rate offset of several σ of the datasheet's 1 °/s fits. Samples with
  ``| |a| − g |`` > 1 m/s² do not correct the inclination (halves the error while walking).
- :class:`ComplementaryEstimator` (numpy/scipy only): the gyroscope carries the sensor orientation
  relative to an inertial frame; the accelerometer direction, expressed in that frame, is low-passed
  with a first-order filter (time constant ``tau_s``) and gives "up". This is the classic
  complementary filter written so that its recursion is linear (scipy ``lfilter``), gated off when
  ``| |a| − g |`` is large. No online bias estimation (the seed is used). The benchmark's comparison.

The front end (:class:`StreamSettings`), shared by both, is what makes them usable on real streams:

- **Sample period** from the sensor's own timestamps, never the nominal rate: a least-squares line
  of ``t`` against the sample index (from ``seq`` when given, so lost samples do not bend it) over
  blocks of 2 s, the last 10 min, per stream segment, with one robust pass, refitted every 20 s.
  The first 10 s of a segment are left out (host clock mappers are still converging,
  docs/clock.md); until 30 s of usable span exist, the median step of the latest block is used.
  The fusion filter runs at the measured period and is rebuilt (state carried) when the estimate
  moves more than ``rebuild_threshold_ppm`` (50 ppm) from the period it runs at. The decisions
  happen at block ends, counted in samples, so they do not depend on how the stream is cut.
- **Gaps** from ``seq`` when present (a missing counter value), else from ``t`` (a step > 1.5
  periods). By the time without samples:

  * ≤ ``max_interpolated_gap_s`` (0.5 s; e.g. 0.1 s, lost BLE notifications): the missing samples
    are interpolated linearly and fed, so the gyroscope keeps integrating; no visible effect.
  * ≤ ``reinit_gap_s`` (10 s; e.g. 2 s): the body may have moved by tens of degrees, so the
    inclination is taken from the accelerometer again (the filter's start-up averaging over
    ``tauAcc`` in the gyro-tracked frame); gyro integration, bias estimate and its covariance,
    rest detection carry on.
  * longer (e.g. 60 s, a reconnect): everything restarts except the gyro bias estimate and its
    uncertainty.
- **Rate changes** (a sensor reconfigured from 100 to 52 Hz): when the median step of the last 9
  samples is more than 25 % off the current period, the filter is rebuilt at the new period at
  once and the period estimate restarts. Clock-mapper slews (runs of ≤ 3 short steps) never
  trigger it. Without ``seq`` the few samples before detection count as small gaps.
- **Saturation**: a sample with an accelerometer axis above 90 % of ``acc_range_mps2`` (16 g) or a
  gyro axis above 90 % of ``gyro_range_radps`` (2000 °/s) is counted (:attr:`saturated_count`) and
  never used for the accelerometer correction. After a saturated gyro reading the inclination is
  re-taken from the accelerometer as after a medium gap: the clipped rate lost an unknown turn.
- **Bad samples**: a row with a NaN/inf, or whose time does not increase, is not fed; its output
  is NaN and it is counted in :attr:`invalid_count`.
- **Rest**: the same detector for both estimators: |ω − seeded bias| < 2 °/s and
  ``| |a| − g |`` < 0.5 m/s² for at least 1.5 s (VQF's default thresholds, on the absolute rate);
  re-earned after every gap of more than 0.5 s.

Chunk invariance: one stream processed whole or in chunks of any size (including 1 sample) gives
the same output (VQF: bit for bit; complementary: to rounding, its gyro integration is a prefix
scan whose tree depends on the batch length). Tested at 1e-9.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import vqf
from numpy.typing import NDArray
from scipy import signal

from sensorhub.errors import InputError
from sensorhub.model import GRAVITY_MPS2, FloatArray, IntArray

__all__ = [
    "ComplementaryEstimator",
    "ComplementarySettings",
    "Estimator",
    "EstimatorOutput",
    "StreamSettings",
    "VqfEstimator",
    "VqfSettings",
    "make_estimator",
    "offline_up",
]

_DEG = math.pi / 180.0
_REFIT_S = 20.0  # least-squares refit of the period every 20 s of samples
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class EstimatorOutput:
    """Orientation estimates for a block of samples.

    Attributes:
        t: (N,) sample times (s), as given.
        up: (N, 3) unit vector of world up (+z, against gravity) in the sensor frame, i.e.
            ``R_sensor→worldᵀ e_z``; NaN rows for samples that could not be used.
        rest: (N,) True where the sensor is judged to be at rest.
    """

    t: FloatArray
    up: FloatArray
    rest: BoolArray

    def __len__(self) -> int:
        return len(self.t)


class Estimator(Protocol):
    """A streaming per-sensor orientation estimator (see module docs)."""

    name: str

    def process(
        self, t: FloatArray, acc_mps2: FloatArray, gyro_radps: FloatArray, seq: IntArray | None = None
    ) -> EstimatorOutput:
        """Feed the next samples of one sensor; returns one estimate per input sample."""
        ...

    def set_gyro_bias(self, bias_radps: FloatArray) -> None:
        """Seed the gyroscope bias (rad/s, sensor frame), e.g. from the still neutral capture."""
        ...

    @property
    def gyro_bias_radps(self) -> FloatArray:
        """Current gyroscope bias estimate (3,), rad/s."""
        ...

    @property
    def period_s(self) -> float:
        """Current measured sample period (s)."""
        ...


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How the estimators treat the stream: period, gaps, rate changes, saturation, rest.

    Attributes:
        max_interpolated_gap_s: gaps (time without samples) up to this are bridged by linear
            interpolation of the missing samples.
        reinit_gap_s: gaps longer than this re-initialise the inclination from the accelerometer.
        acc_range_mps2: accelerometer full scale (default ±16 g).
        gyro_range_radps: gyroscope full scale (default ±2000 °/s).
        saturation_fraction: a reading above this fraction of full scale counts as saturated.
        rate_change_tolerance: relative difference of the recent median step from the current
            period that means the sensor's rate was changed.
        rate_window: samples in that median (odd).
        period_block_s: block length of the period fit (s of samples).
        period_window_s: span of the period fit (s).
        period_settle_s: seconds at the start of each stream segment the period fit leaves out.
        period_min_span_s: usable span the least-squares fit needs before it replaces the median step.
        rebuild_threshold_ppm: rebuild the fusion filter when the measured period moves this far.
        rest_gyro_dps: rest needs |ω − bias| below this.
        rest_acc_mps2: rest needs ``| |a| − g |`` below this.
        rest_min_s: ... for at least this long.
    """

    max_interpolated_gap_s: float = 0.5
    reinit_gap_s: float = 10.0
    acc_range_mps2: float = 16.0 * GRAVITY_MPS2
    gyro_range_radps: float = 2000.0 * _DEG
    saturation_fraction: float = 0.9
    rate_change_tolerance: float = 0.25
    rate_window: int = 9
    period_block_s: float = 2.0
    period_window_s: float = 600.0
    period_settle_s: float = 10.0
    period_min_span_s: float = 30.0
    rebuild_threshold_ppm: float = 50.0
    rest_gyro_dps: float = 2.0
    rest_acc_mps2: float = 0.5
    rest_min_s: float = 1.5

    def __post_init__(self) -> None:
        positive = {
            "max_interpolated_gap_s": self.max_interpolated_gap_s,
            "reinit_gap_s": self.reinit_gap_s,
            "acc_range_mps2": self.acc_range_mps2,
            "gyro_range_radps": self.gyro_range_radps,
            "saturation_fraction": self.saturation_fraction,
            "rate_change_tolerance": self.rate_change_tolerance,
            "period_block_s": self.period_block_s,
            "period_window_s": self.period_window_s,
            "rebuild_threshold_ppm": self.rebuild_threshold_ppm,
            "rest_gyro_dps": self.rest_gyro_dps,
            "rest_acc_mps2": self.rest_acc_mps2,
        }
        non_negative = {
            "period_settle_s": self.period_settle_s,
            "period_min_span_s": self.period_min_span_s,
            "rest_min_s": self.rest_min_s,
        }
        for key, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"stream setting {key} must be a positive number, got {value!r}")
        for key, value in non_negative.items():
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"stream setting {key} must be ≥ 0, got {value!r}")
        if self.reinit_gap_s < self.max_interpolated_gap_s:
            raise InputError("stream setting reinit_gap_s must be ≥ max_interpolated_gap_s")
        if self.rate_window < 3 or self.rate_window % 2 == 0:
            raise InputError(f"stream setting rate_window must be an odd number ≥ 3, got {self.rate_window!r}")


@dataclass(frozen=True, slots=True)
class VqfSettings:
    """VQF parameters (names of ``vqf.VQF`` in brackets) and the bias seed's uncertainty.

    Defaults are the measured choice (docs/pipeline-orientation.md); VQF's own defaults differ in
    ``rest_bias_est`` (True), ``bias_clip_dps`` (2), ``bias_sigma_motion_dps`` (0.1) and have no
    accelerometer gate.

    Attributes:
        tau_acc_s: accelerometer low-pass time constant [tauAcc].
        motion_bias_est: estimate the gyro bias during motion [motionBiasEstEnabled].
        rest_bias_est: estimate the gyro bias during detected rest [restBiasEstEnabled].
        bias_sigma_init_dps: initial bias uncertainty without a seed [biasSigmaInit].
        bias_forgetting_time_s: time for the bias uncertainty to grow by 0.1 °/s [biasForgettingTime].
        bias_clip_dps: largest bias VQF accepts [biasClip].
        bias_sigma_motion_dps: converged bias uncertainty in motion [biasSigmaMotion].
        bias_vertical_forgetting_factor: decay of the unobservable vertical bias [biasVerticalForgettingFactor].
        bias_sigma_rest_dps: converged bias uncertainty at rest [biasSigmaRest].
        rest_min_s: [restMinT].
        rest_filter_tau_s: [restFilterTau].
        rest_th_gyr_dps: [restThGyr].
        rest_th_acc_mps2: [restThAcc].
        bias_seed_sigma_dps: uncertainty given to VQF with a seeded bias (``set_gyro_bias``).
        acc_gate_mps2: samples with ``| |a| − g |`` above this do not update the accelerometer part
            of VQF (fed as all-zero, which VQF skips); None: every sample does. Streaming only:
            ``offline_up`` cannot gate single samples.
    """

    tau_acc_s: float = 3.0
    motion_bias_est: bool = True
    rest_bias_est: bool = False
    bias_sigma_init_dps: float = 0.5
    bias_forgetting_time_s: float = 100.0
    bias_clip_dps: float = 5.0
    bias_sigma_motion_dps: float = 0.05
    bias_vertical_forgetting_factor: float = 1e-4
    bias_sigma_rest_dps: float = 0.03
    rest_min_s: float = 1.5
    rest_filter_tau_s: float = 0.5
    rest_th_gyr_dps: float = 2.0
    rest_th_acc_mps2: float = 0.5
    bias_seed_sigma_dps: float = 0.1
    acc_gate_mps2: float | None = 1.0

    def __post_init__(self) -> None:
        if self.acc_gate_mps2 is not None and not (math.isfinite(self.acc_gate_mps2) and self.acc_gate_mps2 > 0):
            raise InputError(f"VQF setting acc_gate_mps2 must be a positive number or None, got {self.acc_gate_mps2!r}")
        for key in (
            "tau_acc_s",
            "bias_sigma_init_dps",
            "bias_forgetting_time_s",
            "bias_clip_dps",
            "bias_sigma_motion_dps",
            "bias_vertical_forgetting_factor",
            "bias_sigma_rest_dps",
            "rest_filter_tau_s",
            "rest_th_gyr_dps",
            "rest_th_acc_mps2",
            "bias_seed_sigma_dps",
        ):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"VQF setting {key} must be a positive number, got {value!r}")
        if not (math.isfinite(self.rest_min_s) and self.rest_min_s >= 0):
            raise InputError(f"VQF setting rest_min_s must be ≥ 0, got {self.rest_min_s!r}")

    def vqf_params(self) -> dict[str, float | bool]:
        """Keyword arguments for ``vqf.VQF`` / ``params`` for ``vqf.offlineVQF`` (6D: no magnetometer)."""
        return {
            "tauAcc": self.tau_acc_s,
            "motionBiasEstEnabled": self.motion_bias_est,
            "restBiasEstEnabled": self.rest_bias_est,
            "magDistRejectionEnabled": False,
            "biasSigmaInit": self.bias_sigma_init_dps,
            "biasForgettingTime": self.bias_forgetting_time_s,
            "biasClip": self.bias_clip_dps,
            "biasSigmaMotion": self.bias_sigma_motion_dps,
            "biasVerticalForgettingFactor": self.bias_vertical_forgetting_factor,
            "biasSigmaRest": self.bias_sigma_rest_dps,
            "restMinT": self.rest_min_s,
            "restFilterTau": self.rest_filter_tau_s,
            "restThGyr": self.rest_th_gyr_dps,
            "restThAcc": self.rest_th_acc_mps2,
        }


@dataclass(frozen=True, slots=True)
class ComplementarySettings:
    """Parameters of :class:`ComplementaryEstimator`.

    Attributes:
        tau_s: time constant of the accelerometer correction (s).
        gate_mps2: the accelerometer does not correct while ``| |a| − g |`` exceeds this.
    """

    tau_s: float = 3.0
    gate_mps2: float = 1.0

    def __post_init__(self) -> None:
        for key in ("tau_s", "gate_mps2"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"complementary setting {key} must be a positive number, got {value!r}")


# -- small vector helpers ---------------------------------------------------------------------


def _up_from_quat(q: FloatArray) -> FloatArray:
    """World z in sensor axes (third row of R) for quaternions [w, x, y, z] rotating sensor → world."""
    if 0 < len(q) <= _FAST_MAX:  # the same operations on Python floats: bit for bit, without numpy calls
        flat: list[float] = []
        for w, x, y, z in q.tolist():
            flat += (2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))
        return np.array(flat).reshape(-1, 3)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)], axis=1)


def _median(x: FloatArray) -> float:
    """``np.median`` of finite values, bit for bit (the middle element, or the mean of the two middle
    ones), without its wrapper's cost (≈ 30 µs here, against 3 µs for sorting a 1 s block)."""
    s = np.sort(x)
    k = len(s) // 2
    return float(s[k]) if len(s) % 2 else float((s[k - 1] + s[k]) / 2.0)


def _sq_rows(v: FloatArray) -> FloatArray:
    """|v|² of each row of (N, 3), summed left to right as the fast path does it on Python floats.

    Not ``einsum``: its summation order is an implementation detail, and every path must agree to
    the last bit for the rest and gate decisions not to depend on how the stream is cut.
    """
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    out: FloatArray = x * x + y * y + z * z
    return out


def _quat_mul(a: FloatArray, b: FloatArray) -> FloatArray:
    """Hamilton product of quaternion rows [w, x, y, z] (broadcasting)."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def _rotation_matrices(q: FloatArray) -> FloatArray:
    """(N, 3, 3) rotation matrices of unit quaternions [w, x, y, z]."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def _normalize_rows(v: FloatArray) -> FloatArray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    out: FloatArray = v / np.where(n > 0, n, 1.0)
    return out


def _saturated(acc: FloatArray, gyro: FloatArray, s: StreamSettings) -> tuple[BoolArray, BoolArray]:
    """Rows (finite) with an axis above the saturation fraction of full scale."""
    return (
        _rows_above(acc, s.saturation_fraction * s.acc_range_mps2),
        _rows_above(gyro, s.saturation_fraction * s.gyro_range_radps),
    )


def _rows_above(v: FloatArray, limit: float) -> BoolArray:
    # A row reduction over 3 columns costs 20× a whole-array one; almost no row is ever above.
    above = np.abs(v) > limit
    if not above.any():
        return np.zeros(len(v), dtype=bool)
    out: BoolArray = np.logical_or.reduce(above, axis=1)
    return out


def _check_inputs(
    t: FloatArray, acc: FloatArray, gyro: FloatArray, seq: IntArray | None
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray | None]:
    tt = np.asarray(t, dtype=np.float64)
    aa = np.asarray(acc, dtype=np.float64)
    gg = np.asarray(gyro, dtype=np.float64)
    if tt.ndim != 1:
        raise InputError(f"t must have shape (N,), got {tt.shape}")
    n = len(tt)
    if aa.shape != (n, 3) or gg.shape != (n, 3):
        raise InputError(f"acc_mps2 and gyro_radps must have shape ({n}, 3), got {aa.shape} and {gg.shape}")
    ss: IntArray | None = None
    if seq is not None:
        ss = np.asarray(seq, dtype=np.int64)
        if ss.shape != (n,):
            raise InputError(f"seq must have shape ({n},), got {ss.shape}")
    return tt, aa, gg, ss


# -- the shared stream front end --------------------------------------------------------------

_FAST_MAX = 64  # batches up to this many samples try the scalar fast path (Python floats beat numpy calls)
_CLEAR = 0.99  # fast path: |a|² (|ω − bias|²) below (0.99 × the saturation limit)² cannot clip an axis
_MARGIN = 0.01  # relative margin of the period-dependent candidates; valid while the period moves < 1/4 of it


class _PeriodFit:
    """Block means of (sample index, time) for the measured sample period, the newest ``max_blocks``.

    The closed blocks live in preallocated arrays (twice the window, compacted when full) so that the
    refit reads slices instead of rebuilding an array from a deque of tuples every 20 s.
    """

    __slots__ = (
        "block_len",
        "closed",
        "count",
        "end",
        "fitted",
        "max_blocks",
        "n_mean",
        "n_sum",
        "segment",
        "start",
        "step_parts",
        "t_mean",
        "t_parts",
        "usable",
    )

    def __init__(self, block_len: int, max_blocks: int) -> None:
        self.block_len = block_len
        self.max_blocks = max_blocks
        self.n_mean: FloatArray = np.empty(2 * max_blocks)
        self.t_mean: FloatArray = np.empty(2 * max_blocks)
        self.segment: FloatArray = np.empty(2 * max_blocks)
        self.usable: BoolArray = np.empty(2 * max_blocks, dtype=bool)
        self.start = 0
        self.end = 0
        # The open block: its sample indices are integers, so their sum is exact in any order.
        self.n_sum = 0
        self.t_parts: list[FloatArray | list[float]] = []
        self.step_parts: list[FloatArray | list[float]] = []  # only until the first least-squares fit
        self.count = 0
        self.closed = 0
        self.fitted = False

    def clear(self, block_len: int) -> None:
        self.block_len = block_len
        self.start = self.end = 0
        self.clear_open()
        self.closed = 0
        self.fitted = False

    def clear_open(self) -> None:
        self.n_sum = 0
        self.t_parts = []
        self.step_parts = []
        self.count = 0

    def append(self, n_mean: float, t_mean: float, segment: int, usable: bool) -> None:
        if self.end == len(self.n_mean):
            keep = slice(self.start, self.end)
            size = self.end - self.start
            for arr in (self.n_mean, self.t_mean, self.segment, self.usable):
                arr[:size] = arr[keep]
            self.start, self.end = 0, size
        e = self.end
        self.n_mean[e] = n_mean
        self.t_mean[e] = t_mean
        self.segment[e] = segment
        self.usable[e] = usable
        self.end = e + 1
        if self.end - self.start > self.max_blocks:
            self.start += 1


class _StreamEstimator:
    """Front end shared by both estimators; subclasses implement the fusion (`_fuse` & co.).

    Two walks give the same decisions: :meth:`_process_fast` for the usual small batch (every
    sample plain: no gap, rate change, saturation or bad value; checked with a few comparisons on
    Python floats) and :meth:`_run` for everything else, which fuses the plain runs between special
    samples whole, split only where the filter is rebuilt.
    """

    name = "base"

    def __init__(self, nominal_rate_hz: float, stream: StreamSettings | None) -> None:
        if not (isinstance(nominal_rate_hz, int | float) and math.isfinite(nominal_rate_hz) and nominal_rate_hz > 0):
            raise InputError(f"nominal rate must be a positive number of Hz, got {nominal_rate_hz!r}")
        self.stream = s = stream or StreamSettings()
        self.nominal_rate_hz = float(nominal_rate_hz)
        self._period = 1.0 / self.nominal_rate_hz  # measured
        self._filter_period = self._period  # what the fusion runs at
        self._seed_bias: FloatArray = np.zeros(3)
        self._seed_bias_list: list[float] = [0.0, 0.0, 0.0]
        self._started = False
        self._last_t = -math.inf
        self._last_seq: int | None = None
        self._last_acc: FloatArray = np.zeros(3)
        self._last_gyro: FloatArray = np.zeros(3)
        self._n = 0  # own sample index (counts missing samples too)
        self._pending_reinit = False  # after a clipped gyro reading
        self._recent_steps: list[float] = [self._period] * (s.rate_window - 1)
        self._segment = 0
        self._segment_start_t = 0.0
        self._fit = _PeriodFit(self._block_len(), self._max_blocks())
        self._last_motion_t = -math.inf
        self._counts = {"saturated": 0, "invalid": 0, "gaps": 0, "missing": 0, "rate_changes": 0, "reinits": 0}
        self._rest_gyro_sq = (s.rest_gyro_dps * _DEG) ** 2
        self._rest_acc_sq = ((GRAVITY_MPS2 - s.rest_acc_mps2) ** 2, (GRAVITY_MPS2 + s.rest_acc_mps2) ** 2)
        self._acc_clear_sq = (_CLEAR * s.saturation_fraction * s.acc_range_mps2) ** 2
        self._gyro_clear_sq = (_CLEAR * s.saturation_fraction * s.gyro_range_radps) ** 2
        self._fast_params: tuple[tuple[float, float, list[float]], tuple[float, ...]] | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def period_s(self) -> float:
        """Current measured sample period (s)."""
        return self._period

    @property
    def filter_period_s(self) -> float:
        """Sample period the fusion filter currently runs at (s)."""
        return self._filter_period

    @property
    def saturated_count(self) -> int:
        """Samples with an axis near full scale (not used for the accelerometer correction)."""
        return self._counts["saturated"]

    @property
    def invalid_count(self) -> int:
        """Samples dropped for NaN/inf values or a time that did not increase."""
        return self._counts["invalid"]

    @property
    def gap_count(self) -> int:
        """Gaps seen (one or more missing samples in a row)."""
        return self._counts["gaps"]

    @property
    def missing_count(self) -> int:
        """Samples missing in those gaps."""
        return self._counts["missing"]

    @property
    def rate_change_count(self) -> int:
        """Sample-rate changes detected."""
        return self._counts["rate_changes"]

    @property
    def reinit_count(self) -> int:
        """Re-initialisations of the inclination after long gaps."""
        return self._counts["reinits"]

    def set_gyro_bias(self, bias_radps: FloatArray) -> None:
        """Seed the gyroscope bias (3,) rad/s, sensor frame, e.g. from the still neutral capture.

        Raises:
            InputError: when it is not three finite numbers.
        """
        bias = np.asarray(bias_radps, dtype=np.float64).reshape(-1)
        if bias.shape != (3,) or not np.all(np.isfinite(bias)):
            raise InputError(f"gyro bias must be three finite numbers in rad/s, got {bias_radps!r}")
        self._seed_bias = bias.copy()
        self._seed_bias_list = bias.tolist()
        # |ω_k| ≤ |ω − bias| + |bias_k|: the fast path's bound on |ω − bias|² must leave room for the seed.
        s = self.stream
        room = _CLEAR * s.saturation_fraction * s.gyro_range_radps - float(np.abs(bias).max())
        self._gyro_clear_sq = room**2 if room > 0 else -1.0
        self._seed_fusion_bias(bias)

    def process(
        self,
        t: FloatArray,
        acc_mps2: FloatArray,
        gyro_radps: FloatArray,
        seq: IntArray | None = None,
        *,
        known_special: bool = False,
    ) -> EstimatorOutput:
        """Feed the next samples of this sensor.

        Args:
            t: (N,) sample times, s (host clock), increasing.
            acc_mps2: (N, 3) specific force, m/s², sensor frame.
            gyro_radps: (N, 3) angular rate, rad/s, sensor frame.
            seq: (N,) the device's sample counter, or None.
            known_special: the caller (the C kernel's checks) already found that not every sample
                is plain, so the fast walk is not tried again.

        Returns:
            One estimate per input sample; NaN ``up`` for samples that were dropped.

        Raises:
            InputError: on arrays of the wrong shape.
        """
        tt, aa, gg, ss = _check_inputs(t, acc_mps2, gyro_radps, seq)
        n = len(tt)
        if n == 0:
            return EstimatorOutput(tt, np.empty((0, 3)), np.zeros(0, dtype=bool))
        if n <= _FAST_MAX and not known_special:
            fast = self._process_fast(tt, aa, gg, ss)
            if fast is not None:
                return fast
        if (
            tt[0] > self._last_t
            and np.isfinite(aa.sum() + gg.sum() + tt[-1])
            and (n == 1 or bool(np.all(tt[1:] > tt[:-1])))
        ):  # every sample usable
            up_all, breaks = self._run(tt, aa, gg, ss)
            return EstimatorOutput(tt, up_all, self._rest(tt, aa, gg, breaks))
        up = np.full((n, 3), np.nan)
        rest = np.zeros(n, dtype=bool)
        finite = np.isfinite(tt) & np.isfinite(aa).all(axis=1) & np.isfinite(gg).all(axis=1)
        prev_max = np.maximum.accumulate(np.concatenate(([self._last_t], np.where(finite, tt, -math.inf))))[:-1]
        valid = finite & (tt > prev_max)
        self._counts["invalid"] += int(n - np.count_nonzero(valid))
        idx = np.flatnonzero(valid)
        if len(idx) == 0:
            return EstimatorOutput(tt, up, rest)
        up_v, still_breaks = self._run(tt[idx], aa[idx], gg[idx], None if ss is None else ss[idx])
        up[idx] = up_v
        rest[idx] = self._rest(tt[idx], aa[idx], gg[idx], still_breaks)
        return EstimatorOutput(tt, up, rest)

    # -- fusion hooks (subclasses) --------------------------------------------------------------

    def _fuse(
        self,
        acc: FloatArray,
        gyro: FloatArray,
        acc_ok: BoolArray | None,
        acc_sq: FloatArray | None = None,
        acc_sq_range: tuple[float, float] | None = None,
    ) -> FloatArray:
        """Run the fusion over consecutive samples; returns (M, 3) up in sensor axes.

        ``acc_sq`` (|a|² per sample, as :func:`_sq_rows` gives it) and its (min, max), when the caller
        has them, spare the fusion computing them again.
        """
        raise NotImplementedError

    def _set_filter_period(self, period_s: float) -> None:
        self._filter_period = period_s

    def _reinit(self, *, full: bool) -> None:
        """Take the inclination from the accelerometer again; ``full`` also restarts everything else
        but the gyro bias estimate."""
        raise NotImplementedError

    def _seed_fusion_bias(self, bias_radps: FloatArray) -> None:
        raise NotImplementedError

    # -- the fast walk ----------------------------------------------------------------------------

    def _process_fast(
        self, t: FloatArray, acc: FloatArray, gyro: FloatArray, seq: IntArray | None
    ) -> EstimatorOutput | None:
        """A small batch in which every sample is plain, in one fusion call; None, with nothing
        changed, when any sample needs the general walk.

        Plain means what :meth:`_run` would find sample by sample, decided here on extremes: the
        counter continues without a gap (or, without one, no step exceeds 1.5 periods); every step
        of the rate window (the carried ones and the new ones) within the rate tolerance of the
        period, so no window median can be off; times increase; |a|² and |ω − bias|² finite and far
        enough below the saturation limits that no axis can clip. A period block that closes inside
        the batch may move the period: the samples after it go through :meth:`process` again.
        """
        if not self._started or self._pending_reinit:
            return None
        m = len(t)
        fit = self._fit
        k = fit.block_len - fit.count
        if m > k:
            head = self._process_fast(t[:k], acc[:k], gyro[:k], None if seq is None else seq[:k])
            if head is None:
                return None
            tail = self.process(t[k:], acc[k:], gyro[k:], None if seq is None else seq[k:])
            return EstimatorOutput(t, np.concatenate((head.up, tail.up)), np.concatenate((head.rest, tail.rest)))
        s = self.stream
        period = self._period
        tol = s.rate_change_tolerance
        low, high = 1.0 - tol, 1.0 + tol
        recent = self._recent_steps
        if not (math.isfinite(sum(recent)) and min(recent) / period >= low and max(recent) / period <= high):
            return None
        last_seq = None
        if seq is not None:
            if self._last_seq is None:
                return None
            first = self._last_seq + 1
            sl: list[int] = seq.tolist()
            if sl != list(range(first, first + m)):
                return None
            last_seq = sl[-1]
        max_step = math.inf if seq is not None else 1.5 * period
        acc_clear, gyro_clear = self._acc_clear_sq, self._gyro_clear_sq
        rest_w2 = self._rest_gyro_sq
        rest_lo, rest_hi = self._rest_acc_sq
        rest_min = s.rest_min_s
        bx, by, bz = self._seed_bias_list
        tl: list[float] = t.tolist()
        prev = self._last_t
        last_motion = self._last_motion_t
        steps: list[float] = []
        acc_sq: list[float] = []
        rest: list[bool] = []
        for ti, (ax, ay, az), (gx, gy, gz) in zip(tl, acc.tolist(), gyro.tolist(), strict=True):
            step = ti - prev
            ratio = step / period
            a2 = ax * ax + ay * ay + az * az  # as _sq_rows
            wx, wy, wz = gx - bx, gy - by, gz - bz
            w2 = wx * wx + wy * wy + wz * wz
            # Written so that NaN fails: a NaN or inf anywhere sends the batch to the general walk.
            if not (low <= ratio <= high and 0.0 < step <= max_step and a2 <= acc_clear and w2 <= gyro_clear):
                return None
            steps.append(step)
            acc_sq.append(a2)
            if w2 < rest_w2 and rest_lo < a2 < rest_hi:
                rest.append(ti - last_motion >= rest_min)
            else:
                last_motion = max(last_motion, ti)
                rest.append(False)
            prev = ti

        up = self._fuse(acc, gyro, None, None, (min(acc_sq), max(acc_sq)))
        self.commit_fast(tl, steps, (recent + steps)[m:], last_motion, last_seq, acc, gyro)
        return EstimatorOutput(t, up, np.array(rest, dtype=bool))

    # -- the fast walk's parts, for the C kernel (sensorhub/pipeline/kernel.py) --------------------

    def fast_state(self) -> tuple[int | None, float, float, list[float], int] | None:
        """What the kernel's checks of a plain batch start from: (last counter, last time, last motion
        time, the carried rate window, room left in the period block); None when the next batch must
        take :meth:`process` (not started, or a pending re-initialisation). A batch longer than the
        room must be cut there: the block closes at its end and may move the period."""
        if not self._started or self._pending_reinit:
            return None
        fit = self._fit
        return self._last_seq, self._last_t, self._last_motion_t, self._recent_steps, fit.block_len - fit.count

    def fast_params(self) -> tuple[float, ...]:
        """The estimator's 13 values of the kernel's front parameters (seed bias, period, rate
        tolerance, step and saturation limits, rest thresholds); a new tuple when any changed."""
        key = (self._period, self._gyro_clear_sq, self._seed_bias_list)
        cached = self._fast_params
        if cached is None or cached[0][:2] != key[:2] or cached[0][2] is not key[2]:
            s = self.stream
            tol = s.rate_change_tolerance
            values = (
                *self._seed_bias_list,
                self._period,
                1.0 - tol,
                1.0 + tol,
                1.5 * self._period,
                self._acc_clear_sq,
                self._gyro_clear_sq,
                self._rest_gyro_sq,
                *self._rest_acc_sq,
                s.rest_min_s,
            )
            cached = self._fast_params = (key, values)
        return cached[1]

    def fuse_fast(self, acc: FloatArray, gyro: FloatArray, acc_sq_range: tuple[float, float]) -> FloatArray:
        """Fuse a plain batch the kernel checked: VQF's (M, 4) quaternions, or (M, 3) up vectors."""
        return self._fuse_raw(acc, gyro, acc_sq_range)

    def _fuse_raw(self, acc: FloatArray, gyro: FloatArray, acc_sq_range: tuple[float, float]) -> FloatArray:
        return self._fuse(acc, gyro, None, None, acc_sq_range)

    def commit_fast(
        self,
        tl: FloatArray | list[float],
        steps: list[float],
        window: list[float],
        last_motion: float,
        last_seq: int | None,
        acc: FloatArray,
        gyro: FloatArray,
    ) -> None:
        """Take a fused plain batch into the stream state: sample count, period block, rate window,
        last sample; closes the period block when it is full (and rebuilds the filter if the period
        moved)."""
        m = len(tl)
        fit = self._fit
        self._last_motion_t = last_motion
        n0 = self._n
        self._n = n0 + m
        fit.n_sum += m * n0 + m * (m + 1) // 2
        fit.t_parts.append(tl)
        if not fit.fitted:
            fit.step_parts.append(steps)
        fit.count += m
        self._recent_steps = window
        self._last_t = float(tl[-1])
        self._last_seq = last_seq
        self._last_acc = acc[-1].copy()
        self._last_gyro = gyro[-1].copy()
        if fit.count >= fit.block_len and self._close_block():
            self._set_filter_period(self._period)

    # -- the general walk -------------------------------------------------------------------------

    def _block_len(self) -> int:
        return max(2, round(self.stream.period_block_s / self._period))

    def _max_blocks(self) -> int:
        return max(2, math.ceil(self.stream.period_window_s / self.stream.period_block_s))

    def _run(
        self, t: FloatArray, acc: FloatArray, gyro: FloatArray, seq: IntArray | None
    ) -> tuple[FloatArray, BoolArray]:
        """Walk the valid samples: plain runs go to the fusion whole, special samples one by one.

        Which samples are special is decided per period block with the period as it stands then
        (it only changes at block ends and special samples). The period-independent causes (counter
        gaps, saturation) are listed once; the period-dependent ones (gaps without a counter, the
        rate window) are only evaluated exactly near candidates found with a margin.
        """
        s = self.stream
        m = len(t)
        w = s.rate_window
        up = np.empty((m, 3))
        breaks = np.zeros(m, dtype=bool)  # samples after which rest must be re-earned
        t_prev = np.concatenate(([self._last_t], t[:-1]))
        dt = t - t_prev
        if seq is not None:
            s_prev = np.concatenate(([self._last_seq if self._last_seq is not None else seq[0] - 1], seq[:-1]))
            ds = seq - s_prev
            # A counter that went back or leapt implausibly far (device reset, wrap) says nothing.
            seq_ok = (ds >= 1) & (ds <= np.maximum(2, 4 * dt / self._period + 2))
            if self._last_seq is None:
                seq_ok[0] = False
        else:
            ds = np.ones(m, dtype=np.int64)
            seq_ok = np.zeros(m, dtype=bool)
        steps = np.where(seq_ok, dt / np.where(seq_ok, ds, 1), dt)
        if not self._started:
            steps[0] = self._period
        history = np.concatenate((self._recent_steps, steps))  # sample i's window: history[i : i + W]
        self._recent_steps = history[m:].tolist()
        acc_sat, gyro_sat = _saturated(acc, gyro, s)
        plain_seq = seq_ok & (ds == 1)
        fixed: list[int] = np.flatnonzero((seq_ok & ~plain_seq) | acc_sat | gyro_sat).tolist()
        ref = self._period
        maybe = self._candidates(dt, seq_ok, history, ref)
        fi = di = 0
        lo = 0  # plain samples lo..i-1 are not fused yet

        def flush(hi: int) -> None:
            up[lo:hi] = self._fuse(acc[lo:hi], gyro[lo:hi], None)
            self._remember(t[hi - 1], None if seq is None else int(seq[hi - 1]), acc[hi - 1], gyro[hi - 1])

        i = 0
        while i < m:
            fit = self._fit
            stop = min(m, i + fit.block_len - fit.count)
            period = self._period
            if abs(period / ref - 1.0) > _MARGIN / 4:
                ref = period
                maybe = self._candidates(dt, seq_ok, history, ref)
                di = 0
            while fi < len(fixed) and fixed[fi] < i:
                fi += 1
            while di < len(maybe) and maybe[di] < i:
                di += 1
            if not self._started or (self._pending_reinit and not gyro_sat[i]):
                j = i
            else:
                j = stop
                if fi < len(fixed) and fixed[fi] < j:
                    j = fixed[fi]
                if di < len(maybe) and maybe[di] < j:
                    c = maybe[di]
                    special = ~seq_ok[c:j] & (dt[c:j] > 1.5 * period)
                    special |= self._rate_flags(history[c : j + w - 1])
                    if special.any():
                        j = c + int(np.argmax(special))
            if j > i:
                n0 = self._n
                self._n = n0 + (j - i)
                self._add_to_block(n0 * (j - i) + (j - i) * (j - i + 1) // 2, t[i:j], steps[i:j])
                i = j
            else:
                if lo < i:
                    flush(i)
                up[i] = self._special(
                    t[i],
                    acc[i],
                    gyro[i],
                    None if seq is None else int(seq[i]),
                    bool(seq_ok[i]),
                    int(ds[i]),
                    float(dt[i]),
                    float(steps[i]),
                    history[i : i + w],
                    bool(acc_sat[i] or gyro_sat[i]),
                    bool(gyro_sat[i]),
                    breaks,
                    i,
                )
                i += 1
                lo = i
            if self._fit.count >= self._fit.block_len and self._close_block():
                if lo < i:
                    flush(i)
                    lo = i
                self._set_filter_period(self._period)
        if lo < m:
            flush(m)
        self._own_open_block()
        return up, breaks

    def _own_open_block(self) -> None:
        """Copy the open block's times: they may still be views of the caller's array."""
        fit = self._fit
        fit.t_parts = [p if isinstance(p, list) else np.array(p) for p in fit.t_parts]

    def _candidates(self, dt: FloatArray, seq_ok: BoolArray, history: FloatArray, ref: float) -> list[int]:
        """Samples that may be special for a period within ``_MARGIN / 4`` of ``ref``: a step without
        a counter near 1.5 periods, or a rate window holding a step near or past the tolerance."""
        s = self.stream
        w = s.rate_window
        m = len(dt)
        tol = s.rate_change_tolerance
        ratio = history / ref
        near = (ratio > (1.0 + tol) * (1.0 - _MARGIN)) | (ratio < (1.0 - tol) + _MARGIN * (1.0 + tol))
        cand = ~seq_ok & (dt > 1.5 * ref * (1.0 - _MARGIN))
        if near.any():
            c = np.concatenate(([0], np.cumsum(near)))
            cand |= (c[w:] - c[:m]) > 0
        out: list[int] = np.flatnonzero(cand).tolist()
        return out

    def _rate_flags(self, steps: FloatArray) -> BoolArray:
        """Per sample: is the median of its window of steps more than the tolerance off the period?

        The median of W (odd) values exceeds c exactly when at least (W + 1) / 2 of them do, so
        counts over a sliding window decide it without sorting (and usually nothing is off at all).
        """
        w = self.stream.rate_window
        n = len(steps) - w + 1
        ratio = steps / self._period
        tol = self.stream.rate_change_tolerance
        high = ratio > 1.0 + tol
        low = ratio < 1.0 - tol
        if not (high.any() or low.any()):
            return np.zeros(n, dtype=bool)
        need = (w + 1) // 2
        ch = np.concatenate(([0], np.cumsum(high)))
        cl = np.concatenate(([0], np.cumsum(low)))
        out: BoolArray = ((ch[w:] - ch[:n]) >= need) | ((cl[w:] - cl[:n]) >= need)
        return out

    def _special(
        self,
        t: float,
        acc: FloatArray,
        gyro: FloatArray,
        seq: int | None,
        seq_ok: bool,
        ds: int,
        dt: float,
        step: float,
        window: FloatArray,
        saturated: bool,
        gyro_saturated: bool,
        breaks: BoolArray,
        i: int,
    ) -> FloatArray:
        """One sample that starts the stream, ends a gap, changes the rate or is saturated."""
        s = self.stream
        fill_acc = np.empty((0, 3))
        fill_gyro = np.empty((0, 3))
        advance = 1
        if not self._started:
            self._started = True
            self._segment_start_t = t
            breaks[i] = True  # rest has to be earned from the first sample on
        else:
            median_step = _median(window)
            if abs(median_step / self._period - 1.0) > s.rate_change_tolerance:
                self._counts["rate_changes"] += 1
                self._period = median_step
                self._set_filter_period(median_step)
                self._new_segment(t, clear=True)
            advance = ds if seq_ok else max(1, round(dt / self._period))
            missing = advance - 1
            if missing > 0:
                gap_s = dt - self._period
                self._counts["gaps"] += 1
                self._counts["missing"] += missing
                if gap_s <= s.max_interpolated_gap_s:
                    w = (np.arange(1, missing + 1) / (missing + 1))[:, None]
                    fill_acc = self._last_acc + w * (acc - self._last_acc)
                    fill_gyro = self._last_gyro + w * (gyro - self._last_gyro)
                else:
                    self._counts["reinits"] += 1
                    self._reinit(full=gap_s > s.reinit_gap_s)
                    self._pending_reinit = False
                    breaks[i] = True
                if gap_s > s.reinit_gap_s or (not seq_ok and gap_s > 1.0):
                    # Across a long gap the clock mapper may re-anchor; without a counter the index
                    # of the next sample is uncertain. Either way the old line no longer applies.
                    self._new_segment(t, clear=False)
        if saturated:
            self._counts["saturated"] += 1
        if gyro_saturated:
            self._pending_reinit = True
            breaks[i] = True
        elif self._pending_reinit:
            # The clipped rate turned the orientation by an unknown amount: re-take the inclination.
            self._counts["reinits"] += 1
            self._reinit(full=False)
            self._pending_reinit = False
        acc_all = np.vstack((fill_acc, acc[None, :]))
        gyro_all = np.vstack((fill_gyro, gyro[None, :]))
        acc_ok = np.ones(len(acc_all), dtype=bool)
        acc_ok[-1] = not saturated
        up = self._fuse(acc_all, gyro_all, acc_ok)
        self._n += advance
        self._add_to_block(self._n, np.array([t]), [step])
        self._remember(t, seq, acc, gyro)
        last: FloatArray = up[-1]
        return last

    def _remember(self, t: float, seq: int | None, acc: FloatArray, gyro: FloatArray) -> None:
        self._last_t = float(t)
        self._last_seq = seq
        self._last_acc = np.array(acc, dtype=np.float64)
        self._last_gyro = np.array(gyro, dtype=np.float64)

    # -- measured period ------------------------------------------------------------------------

    def _new_segment(self, t: float, *, clear: bool) -> None:
        self._segment += 1
        self._segment_start_t = t
        if clear:
            self._fit.clear(self._block_len())
        else:
            self._fit.clear_open()

    def _add_to_block(self, n_sum: int, t: FloatArray, steps: FloatArray | list[float]) -> None:
        """Samples joining the open block: the sum of their indices, their times and steps."""
        fit = self._fit
        fit.n_sum += n_sum
        fit.t_parts.append(t)  # a view until the walk ends (_own_open_block)
        if not fit.fitted:
            fit.step_parts.append(steps)
        fit.count += len(t)

    def _close_block(self) -> bool:
        """Close the open block and update the period; True when the fusion filter must be rebuilt at
        it (the caller first fuses what came before)."""
        fit = self._fit
        parts = fit.t_parts
        t = np.asarray(parts[0]) if len(parts) == 1 else np.concatenate(parts)
        step_parts = fit.step_parts
        usable = bool(t[0] >= self._segment_start_t + self.stream.period_settle_s)
        # As np.mean: the (pairwise) sum over the block divided by the count.
        fit.append(fit.n_sum / fit.count, float(t.sum()) / len(t), self._segment, usable)
        fit.clear_open()
        fit.closed += 1
        refit_blocks = max(1, round(_REFIT_S / self.stream.period_block_s))
        period = self._fit_period() if fit.closed % refit_blocks == 0 else None
        if period is not None:
            fit.fitted = True
        elif fit.fitted:
            return False
        else:
            steps = np.concatenate(step_parts)
            near = steps[np.abs(steps / self._period - 1.0) < self.stream.rate_change_tolerance]
            if len(near) == 0:
                return False
            period = _median(near)
        self._period = period
        return abs(period / self._filter_period - 1.0) > self.stream.rebuild_threshold_ppm * 1e-6

    def _fit_period(self) -> float | None:
        """Least-squares slope of t against the sample index, common to all segments; None if too short."""
        fit = self._fit
        window = slice(fit.start, fit.end)
        use = fit.usable[window]
        if use.all():  # views, no copies (the usual case once the stream has settled)
            n, t, segment = fit.n_mean[window], fit.t_mean[window], fit.segment[window]
        else:
            n, t, segment = fit.n_mean[window][use], fit.t_mean[window][use], fit.segment[window][use]
        if len(n) < 3:
            return None
        # Centre each segment: a common slope with one intercept per segment.
        if segment[0] == segment[-1]:  # one segment (the usual case): no grouping needed
            span = float(t[-1] - t[0])  # block means of one segment increase
            if span < self.stream.period_min_span_s:
                return None
            dn = n - float(n.sum()) / len(n)
            dt = t - float(t.sum()) / len(t)
        else:
            _, seg = np.unique(segment, return_inverse=True)
            count = np.bincount(seg)
            first = np.full(len(count), np.inf)
            last = np.full(len(count), -np.inf)
            np.minimum.at(first, seg, t)
            np.maximum.at(last, seg, t)
            span = float(np.sum(last - first))
            if span < self.stream.period_min_span_s:
                return None
            dn = n - (np.bincount(seg, n) / count)[seg]
            dt = t - (np.bincount(seg, t) / count)[seg]
        kdn, kdt = dn, dt  # the points kept: all of them in the first pass
        for _ in range(2):
            denominator = float(np.dot(kdn, kdn))
            if denominator <= 0:
                return None
            slope = float(np.dot(kdn, kdt)) / denominator
            kept = kdt - slope * kdn
            centre = _median(kept)
            mad = _median(np.abs(kept - centre))
            keep = np.abs(dt - slope * dn - centre) <= max(4.0 * 1.4826 * mad, 1e-4)
            kdn, kdt = dn[keep], dt[keep]
            if len(kdn) < 3:
                return None
        return slope if slope > 0 else None

    # -- rest -----------------------------------------------------------------------------------

    def _rest(self, t: FloatArray, acc: FloatArray, gyro: FloatArray, breaks: BoolArray) -> BoolArray:
        acc_sq = _sq_rows(acc)
        still = _sq_rows(gyro - self._seed_bias) < self._rest_gyro_sq
        still &= (acc_sq > self._rest_acc_sq[0]) & (acc_sq < self._rest_acc_sq[1])
        still &= ~breaks
        moving_t = np.where(still, -math.inf, t)
        last_motion = np.maximum.accumulate(np.concatenate(([self._last_motion_t], moving_t)))[1:]
        self._last_motion_t = float(last_motion[-1])
        out: BoolArray = still & (t - last_motion >= self.stream.rest_min_s)
        return out


# -- VQF ------------------------------------------------------------------------------------------


class VqfEstimator(_StreamEstimator):
    """``vqf.VQF`` (6D) behind the stream front end.

    Args:
        nominal_rate_hz: the rate the sensor was configured for; only the starting point of the
            measured period.
        settings: VQF parameters; default the measured choice.
        stream: gap, rate, saturation and period handling.

    Raises:
        InputError: on a non-positive rate.
    """

    name = "vqf"

    def __init__(
        self, nominal_rate_hz: float, settings: VqfSettings | None = None, *, stream: StreamSettings | None = None
    ) -> None:
        super().__init__(nominal_rate_hz, stream)
        self.settings = settings or VqfSettings()
        self._params = self.settings.vqf_params()
        self._vqf = vqf.VQF(self._filter_period, **self._params)
        gate = self.settings.acc_gate_mps2
        self._gate_sq = None if gate is None else ((GRAVITY_MPS2 - gate) ** 2, (GRAVITY_MPS2 + gate) ** 2)

    @property
    def gyro_bias_radps(self) -> FloatArray:
        """VQF's current gyroscope bias estimate (3,), rad/s."""
        bias, _ = self._vqf.getBiasEstimate()
        out: FloatArray = np.asarray(bias, dtype=np.float64)
        return out

    @property
    def gyro_bias_sigma_radps(self) -> float:
        """Uncertainty of that estimate (worst direction), rad/s."""
        _, sigma = self._vqf.getBiasEstimate()
        return float(sigma)

    def _seed_fusion_bias(self, bias_radps: FloatArray) -> None:
        self._vqf.setBiasEstimate(bias_radps, self.settings.bias_seed_sigma_dps * _DEG)

    def _fuse(
        self,
        acc: FloatArray,
        gyro: FloatArray,
        acc_ok: BoolArray | None,
        acc_sq: FloatArray | None = None,
        acc_sq_range: tuple[float, float] | None = None,
    ) -> FloatArray:
        a = np.ascontiguousarray(acc, dtype=np.float64)
        gate = self._gate_sq
        if gate is not None and (acc_sq_range is None or not gate[0] <= acc_sq_range[0] <= acc_sq_range[1] <= gate[1]):
            sq = _sq_rows(a) if acc_sq is None else acc_sq
            gated = (sq >= gate[0]) & (sq <= gate[1])
            acc_ok = gated if acc_ok is None else acc_ok & gated
        if acc_ok is not None and not acc_ok.all():
            # VQF skips the accelerometer update (and its bias step) for an all-zero sample.
            a = a.copy()
            a[~acc_ok] = 0.0
        return _up_from_quat(self._vqf.updateBatch(np.ascontiguousarray(gyro, dtype=np.float64), a)["quat6D"])

    def _fuse_raw(self, acc: FloatArray, gyro: FloatArray, acc_sq_range: tuple[float, float]) -> FloatArray:
        """As :meth:`_fuse` for a plain batch (contiguous float64, no sample dropped), but VQF's
        quaternions: the kernel takes the up vector from them."""
        gate = self._gate_sq
        if gate is not None and not gate[0] <= acc_sq_range[0] <= acc_sq_range[1] <= gate[1]:
            return self._fuse(acc, gyro, None, None, acc_sq_range)  # up vectors, with the gated samples zeroed
        quat: FloatArray = self._vqf.updateBatch(gyro, acc)["quat6D"]
        return quat

    def _set_filter_period(self, period_s: float) -> None:
        """Rebuild VQF at a new sample period, carrying its state.

        vqf 2.1.2 has no setter for the sampling time; a new VQF gets the old ``state`` with its
        low-pass states adapted to the new coefficients exactly as ``VQF::setTauAcc`` does
        (``filterAdaptStateForCoeffChange``: no step in the filter outputs).
        """
        old = self._vqf
        state = old.state
        old_c = old.coeffs
        new = vqf.VQF(period_s, **self._params)
        new_c = new.coeffs
        acc_b_old, acc_a_old = np.asarray(old_c["accLpB"]), np.asarray(old_c["accLpA"])
        acc_b_new, acc_a_new = np.asarray(new_c["accLpB"]), np.asarray(new_c["accLpA"])
        rest_b_old, rest_a_old = np.asarray(old_c["restGyrLpB"]), np.asarray(old_c["restGyrLpA"])
        rest_b_new, rest_a_new = np.asarray(new_c["restGyrLpB"]), np.asarray(new_c["restGyrLpA"])

        def adapt(
            last_y: FloatArray, key: str, b_old: FloatArray, a_old: FloatArray, b: FloatArray, a: FloatArray
        ) -> None:
            st = np.array(state[key], dtype=np.float64)
            vqf.VQF.filterAdaptStateForCoeffChange(np.array(last_y, dtype=np.float64), b_old, a_old, b, a, st)
            state[key] = st

        adapt(np.asarray(state["lastAccLp"]), "accLpState", acc_b_old, acc_a_old, acc_b_new, acc_a_new)
        r_lp = np.asarray(state["motionBiasEstRLpState"])[0::2]
        adapt(r_lp, "motionBiasEstRLpState", acc_b_old, acc_a_old, acc_b_new, acc_a_new)
        b_lp = np.asarray(state["motionBiasEstBiasLpState"])[0::2]
        adapt(b_lp, "motionBiasEstBiasLpState", acc_b_old, acc_a_old, acc_b_new, acc_a_new)
        adapt(np.asarray(state["restLastGyrLp"]), "restGyrLpState", rest_b_old, rest_a_old, rest_b_new, rest_a_new)
        adapt(np.asarray(state["restLastAccLp"]), "restAccLpState", rest_b_old, rest_a_old, rest_b_new, rest_a_new)
        new.state = state
        self._vqf = new
        self._filter_period = period_s

    def _reinit(self, *, full: bool) -> None:
        if full:
            bias, sigma = self._vqf.getBiasEstimate()
            self._vqf.resetState()
            self._vqf.setBiasEstimate(np.asarray(bias, dtype=np.float64), float(sigma))
            return
        # A NaN low-pass state makes VQF restart it by averaging (its start-up path), and each of those
        # samples sets the inclination fully: the inclination is re-taken from the accelerometer in the
        # gyro-tracked frame, while the gyro integration, bias and rest detection carry on. The motion
        # bias estimator's low-passes restart with it so that the jump is not read as bias.
        state = self._vqf.state
        for key in ("accLpState", "motionBiasEstRLpState", "motionBiasEstBiasLpState"):
            state[key] = np.full(np.shape(state[key]), np.nan)
        self._vqf.state = state


# -- complementary ------------------------------------------------------------------------------

_SCAN_BLOCK = 1024


class ComplementaryEstimator(_StreamEstimator):
    """Complementary filter on numpy/scipy only, same interface and stream handling as VQF.

    The gyroscope (minus the seeded bias; no online bias estimation) is integrated into the
    orientation ``q`` of the sensor relative to a fixed inertial frame, as a vectorised prefix
    product of quaternions. The accelerometer direction rotated into that frame is low-passed by a
    first-order filter with gain ``1 − exp(−T/tau_s)``, zero while ``| |a| − g |`` exceeds
    ``gate_mps2`` or the sample is saturated; "up" is that low-passed direction rotated back into
    the sensor. For small gains this is the textbook complementary filter
    ``u ← u + k (â − u)`` with gyro propagation in between.

    Args:
        nominal_rate_hz: the rate the sensor was configured for.
        settings: time constant and gate.
        stream: gap, rate, saturation and period handling.
    """

    name = "complementary"

    def __init__(
        self,
        nominal_rate_hz: float,
        settings: ComplementarySettings | None = None,
        *,
        stream: StreamSettings | None = None,
    ) -> None:
        super().__init__(nominal_rate_hz, stream)
        self.settings = settings or ComplementarySettings()
        self._q: FloatArray = np.array([1.0, 0.0, 0.0, 0.0])
        self._y: FloatArray | None = None  # low-passed up in the inertial frame
        self._avg_n = 0  # accepted samples averaged so far in the start-up phase
        self._avg_sum: FloatArray = np.zeros(3)

    @property
    def gyro_bias_radps(self) -> FloatArray:
        """The seeded gyroscope bias (3,), rad/s (this filter does not estimate it)."""
        return self._seed_bias.copy()

    def _seed_fusion_bias(self, bias_radps: FloatArray) -> None:
        pass  # the front end keeps the seed in _seed_bias, which _fuse subtracts

    def _reinit(self, *, full: bool) -> None:
        self._y = None  # the start-up averaging sets the inclination again
        self._avg_n = 0
        self._avg_sum = np.zeros(3)

    def _integrate(self, gyro: FloatArray) -> FloatArray:
        """Orientations (M, 4) after each sample: q_k = q_{k−1} ⊗ exp(ω_k T / 2)."""
        w = gyro - self._seed_bias
        rate = np.linalg.norm(w, axis=1)
        half = 0.5 * rate * self._filter_period
        scale = np.where(rate > 1e-12, np.sin(half) / np.where(rate > 1e-12, rate, 1.0), 0.5 * self._filter_period)
        steps = np.concatenate((np.cos(half)[:, None], w * scale[:, None]), axis=1)
        out = np.empty_like(steps)
        q = self._q
        for start in range(0, len(steps), _SCAN_BLOCK):
            block = steps[start : start + _SCAN_BLOCK].copy()
            d = 1
            while d < len(block):  # Hillis–Steele inclusive scan; the product keeps its order
                block[d:] = _quat_mul(block[:-d], block[d:])
                d *= 2
            block = _quat_mul(q[None, :], block)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[start : start + len(block)] = block
            q = block[-1]
        self._q = q.copy()
        return out

    def _fuse(
        self,
        acc: FloatArray,
        gyro: FloatArray,
        acc_ok: BoolArray | None,
        acc_sq: FloatArray | None = None,
        acc_sq_range: tuple[float, float] | None = None,
    ) -> FloatArray:
        q = self._integrate(gyro)
        R = _rotation_matrices(q)
        norm = np.linalg.norm(acc, axis=1)
        direction = np.einsum("nij,nj->ni", R, acc) / np.where(norm > 0, norm, 1.0)[:, None]
        ok = (np.abs(norm - GRAVITY_MPS2) <= self.settings.gate_mps2) & (norm > 0)
        if acc_ok is not None:
            ok &= acc_ok
        gain = 1.0 - math.exp(-self._filter_period / self.settings.tau_s)
        n_avg = max(1, round(self.settings.tau_s / self._filter_period))
        y = np.empty_like(direction)
        prev = self._y
        b = np.array([gain])
        a = np.array([1.0, gain - 1.0])
        # Runs of accepted / gated samples; accepted runs start with the averaging phase if it is on.
        edges = np.flatnonzero(np.diff(ok.astype(np.int8))) + 1
        bounds = np.concatenate(([0], edges, [len(ok)]))
        for lo, hi in itertools.pairwise(bounds):
            if not ok[lo]:
                y[lo:hi] = direction[lo:hi] if prev is None else prev  # nothing accepted yet: raw tilt
                continue
            k = lo
            if self._avg_n < n_avg:
                # Start-up (as VQF's): the running mean of the first tau_s of accepted directions.
                m = min(hi - lo, n_avg - self._avg_n)
                sums = self._avg_sum + np.cumsum(direction[lo : lo + m], axis=0)
                y[lo : lo + m] = sums / (self._avg_n + np.arange(1, m + 1))[:, None]
                self._avg_sum = sums[-1].copy()
                self._avg_n += m
                prev = y[lo + m - 1]
                k = lo + m
            if k < hi:
                assert prev is not None  # set by the averaging phase
                y[k:hi], _ = signal.lfilter(b, a, direction[k:hi], axis=0, zi=((1.0 - gain) * prev)[None, :])
                prev = y[hi - 1]
        self._y = None if prev is None else prev.copy()
        up: FloatArray = np.einsum("nji,nj->ni", R, _normalize_rows(y))
        return up


# -- factory and offline ------------------------------------------------------------------------


def make_estimator(name: str, nominal_rate_hz: float) -> Estimator:
    """A new estimator by name: "vqf" or "complementary", with default settings.

    Raises:
        InputError: on an unknown name or a bad rate.
    """
    if name == "vqf":
        return VqfEstimator(nominal_rate_hz)
    if name == "complementary":
        return ComplementaryEstimator(nominal_rate_hz)
    raise InputError(f"unknown orientation estimator {name!r}; choose vqf or complementary")


def _robust_period(t: FloatArray, n: FloatArray) -> float:
    """Least-squares slope of t against n with one robust pass (s per sample)."""
    dn = n - n.mean()
    dt = t - t.mean()
    slope = float(np.dot(dn, dt) / np.dot(dn, dn))
    residual = dt - slope * dn
    mad = float(np.median(np.abs(residual - np.median(residual))))
    keep = np.abs(residual - np.median(residual)) <= max(4.0 * 1.4826 * mad, 1e-4)
    if keep.sum() >= 2:
        dn, dt = n[keep] - n[keep].mean(), t[keep] - t[keep].mean()
        slope = float(np.dot(dn, dt) / np.dot(dn, dn))
    return slope


def offline_up(
    t: FloatArray,
    acc_mps2: FloatArray,
    gyro_radps: FloatArray,
    *,
    nominal_rate_hz: float,
    gyro_bias_radps: FloatArray | None = None,
    settings: VqfSettings | None = None,
    seq: IntArray | None = None,
    stream: StreamSettings | None = None,
) -> EstimatorOutput:
    """Whole-recording orientation with ``vqf.offlineVQF`` (acausal: forward-backward bias, filtfilt).

    For ``analyze --offline`` and replay. The sample period is the robust least-squares slope of
    ``t`` against the sample index (``seq`` when given, else steps of ``t`` rounded to the nominal
    period). The recording is split at gaps longer than ``stream.reinit_gap_s``; shorter gaps are
    filled by linear interpolation on the sample grid; saturated accelerometer samples are replaced
    by interpolation from their unsaturated neighbours. The seeded bias is subtracted from the gyro
    first and VQF's initial bias uncertainty set to the seed's. One sample rate per recording is
    assumed (a rate change inside it is not detected here; the streaming estimators handle it).

    Args:
        t: (N,) s, increasing.
        acc_mps2: (N, 3) m/s², sensor frame.
        gyro_radps: (N, 3) rad/s, sensor frame.
        nominal_rate_hz: configured rate (Hz), used to count samples when there is no ``seq``.
        gyro_bias_radps: (3,) bias seed, or None to let VQF learn it from zero.
        settings: VQF parameters.
        seq: (N,) device sample counter, or None.
        stream: gap and saturation thresholds.

    Returns:
        One estimate per input sample; NaN ``up`` for NaN rows or rows whose time does not increase.

    Raises:
        InputError: on wrong shapes, a bad rate or a bias that is not three finite numbers.
    """
    tt, aa, gg, ss = _check_inputs(t, acc_mps2, gyro_radps, seq)
    if not (math.isfinite(nominal_rate_hz) and nominal_rate_hz > 0):
        raise InputError(f"nominal rate must be a positive number of Hz, got {nominal_rate_hz!r}")
    vs = settings or VqfSettings()
    st = stream or StreamSettings()
    params = vs.vqf_params()
    bias = np.zeros(3)
    if gyro_bias_radps is not None:
        bias = np.asarray(gyro_bias_radps, dtype=np.float64).reshape(-1)
        if bias.shape != (3,) or not np.all(np.isfinite(bias)):
            raise InputError(f"gyro bias must be three finite numbers in rad/s, got {gyro_bias_radps!r}")
        params["biasSigmaInit"] = vs.bias_seed_sigma_dps
    n_all = len(tt)
    up = np.full((n_all, 3), np.nan)
    rest = np.zeros(n_all, dtype=bool)
    finite = np.isfinite(tt) & np.isfinite(aa).all(axis=1) & np.isfinite(gg).all(axis=1)
    prev_max = np.maximum.accumulate(np.concatenate(([-math.inf], np.where(finite, tt, -math.inf))))[:-1]
    idx = np.flatnonzero(finite & (tt > prev_max))
    if len(idx) == 0:
        return EstimatorOutput(tt, up, rest)
    t_v, a_v, g_v = tt[idx], aa[idx], gg[idx] - bias
    nominal = 1.0 / nominal_rate_hz
    dt = np.diff(t_v)
    if ss is not None:
        ds = np.diff(ss[idx])
        ok = (ds >= 1) & (ds <= 4 * dt / nominal + 2)
        steps = np.where(ok, ds, np.maximum(1, np.round(dt / nominal))).astype(np.int64)
    else:
        steps = np.maximum(1, np.round(dt / nominal)).astype(np.int64)
    n = np.concatenate(([0], np.cumsum(steps)))
    period = _robust_period(t_v, n.astype(np.float64)) if len(t_v) >= 3 else nominal
    if not (period > 0 and abs(period / nominal - 1.0) < st.rate_change_tolerance):
        period = nominal
    acc_sat, _ = _saturated(a_v, gg[idx], st)
    cut = np.flatnonzero(dt - period > st.reinit_gap_s) + 1
    for lo, hi in zip(np.concatenate(([0], cut)), np.concatenate((cut, [len(t_v)])), strict=True):
        n_seg = n[lo:hi] - n[lo]
        grid = np.arange(n_seg[-1] + 1, dtype=np.float64)
        good = ~acc_sat[lo:hi]
        if not good.any():
            good = np.ones(hi - lo, dtype=bool)
        acc_grid = np.stack([np.interp(grid, n_seg[good], a_v[lo:hi][good, k]) for k in range(3)], axis=1)
        gyro_grid = np.stack([np.interp(grid, n_seg, g_v[lo:hi, k]) for k in range(3)], axis=1)
        if len(grid) < 2:  # offlineVQF needs two samples; one lone sample gets its accelerometer tilt
            up[idx[lo:hi]] = _normalize_rows(acc_grid)
            continue
        out = vqf.offlineVQF(np.ascontiguousarray(gyro_grid), np.ascontiguousarray(acc_grid), None, period, params)
        up[idx[lo:hi]] = _up_from_quat(out["quat6D"][n_seg])
    rate_dps = np.linalg.norm(g_v, axis=1) / _DEG
    still = (rate_dps < st.rest_gyro_dps) & (np.abs(np.linalg.norm(a_v, axis=1) - GRAVITY_MPS2) < st.rest_acc_mps2)
    last_motion = np.maximum.accumulate(np.where(still, -math.inf, t_v))
    rest[idx] = still & (t_v - last_motion >= st.rest_min_s)
    return EstimatorOutput(tt, up, rest)
