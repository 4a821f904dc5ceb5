"""Per-sensor pipelines and the whole spine pipeline: ImuBatch in, SpineFrame out (DESIGN §2).

``SensorPipeline``: accelerometer bias/scale removed (calibration) → 6D orientation (VQF or the
complementary fallback, gyro bias seeded from the neutral capture) → the sagittal inclination
change of the segment under the sensor (calibration's up₀ and flexion axis).

``SpinePipeline``: one SensorPipeline per placement → :class:`~sensorhub.pipeline.rig.Rig`.
The live service, ``analyze`` and replay all run this same object; feeding a recording whole or
notification by notification gives the same angles (tested).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np
from scipy import signal

from sensorhub.errors import InputError
from sensorhub.model import GRAVITY_MPS2, FloatArray, ImuBatch, Placement, SensorAngles, SpineFrame
from sensorhub.pipeline import kernel
from sensorhub.pipeline.calibration import (
    RigCalibration,
    SensorCalibration,
    inclination_basis,
    inclination_from_basis,
)
from sensorhub.pipeline.orientation import Estimator, EstimatorOutput, _StreamEstimator, make_estimator
from sensorhub.pipeline.rig import Rig, RigSettings

__all__ = ["MovementMeter", "SensorPipeline", "SpinePipeline", "concat_frames"]

_SCALAR_MAX = 64  # batches up to this many samples take the Python-float paths


class SwivelGate:
    """Treats a fast rotation about the (accelerometer) vertical as a pure heading change.

    Why: an accelerometer offset b tilts the estimated vertical by β ≈ |b|/g (20 mg → 1.2°). When
    the wearer swivels the chair, the sensor turns about the TRUE vertical, so gyro integration
    swings the tilted estimate around it and the inclination jumps by up to 2β·sin(ψ/2) until the
    accelerometer pulls it back (τ ≈ 3 s). The gate projects such rotations onto the measured
    vertical, where they leave the inclination alone. A rotation counts as a swivel when it is
    faster than ``min_rate_dps`` and within ``max_angle_deg`` of the low-passed accelerometer
    direction; real flexion turns about a horizontal axis and is never within that cone.
    """

    def __init__(
        self,
        gyro_bias_radps: FloatArray,
        sample_rate_hz: float,
        *,
        min_rate_dps: float = 10.0,
        max_angle_deg: float = 15.0,
        lowpass_tau_s: float = 0.5,
    ) -> None:
        self.bias = np.asarray(gyro_bias_radps, dtype=np.float64)
        self.min_rate = math.radians(min_rate_dps)
        self.cos_max = math.cos(math.radians(max_angle_deg))
        alpha = 1.0 - math.exp(-1.0 / (lowpass_tau_s * sample_rate_hz))
        self._b = np.array([alpha])
        self._a = np.array([1.0, alpha - 1.0])
        self._zi: FloatArray | None = None
        self.gated_samples = 0

    @property
    def alpha(self) -> float:
        """Coefficient of the vertical's low-pass (``y = αx + (1 − α)y``)."""
        return float(self._b[0])

    @property
    def zi(self) -> FloatArray | None:
        """The low-pass state (1, 3); None before the first sample. The C kernel advances it in place."""
        return self._zi

    def process(self, acc_mps2: FloatArray, gyro_radps: FloatArray) -> FloatArray:
        """Gyro with swivel rotations projected onto the vertical."""
        n = len(acc_mps2)
        if n == 0:
            return gyro_radps
        if self._zi is None:
            self._zi = ((1.0 - self._b[0]) * acc_mps2[0])[None, :]
        if n <= _SCALAR_MAX:
            return self._process_scalar(acc_mps2, gyro_radps)
        vertical, self._zi = signal.lfilter(self._b, self._a, acc_mps2, axis=0, zi=self._zi)
        w = gyro_radps - self.bias
        rate = np.sqrt(np.einsum("ij,ij->i", w, w))
        fast = np.flatnonzero(rate > self.min_rate)  # usually few: the cone test only runs on these
        if len(fast) == 0:
            return gyro_radps
        v = vertical[fast]
        v = v / np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
        along = np.einsum("ij,ij->i", w[fast], v)
        cone = np.abs(along) > self.cos_max * rate[fast]
        if not cone.any():
            return gyro_radps
        idx = fast[cone]
        self.gated_samples += len(idx)
        out = gyro_radps.copy()
        out[idx] = self.bias + along[cone, None] * v[cone]
        return out

    def _process_scalar(self, acc_mps2: FloatArray, gyro_radps: FloatArray) -> FloatArray:
        """:meth:`process` for a small batch: the same arithmetic on Python floats, which beats a
        dozen numpy calls of a few µs each at streaming batch sizes (results agree to rounding)."""
        assert self._zi is not None  # set by process(); internal invariant
        alpha = float(self._b[0])
        keep = 1.0 - alpha
        zx, zy, zz = self._zi[0].tolist()
        bx, by, bz = self.bias.tolist()
        min_rate, cos_max = self.min_rate, self.cos_max
        gated: list[tuple[int, float, float, float, float]] = []
        for i, ((ax, ay, az), (gx, gy, gz)) in enumerate(zip(acc_mps2.tolist(), gyro_radps.tolist(), strict=True)):
            # lfilter's direct form II transposed for b = [α], a = [1, α − 1]: y = αx + z, z = (1 − α)y.
            vx, vy, vz = alpha * ax + zx, alpha * ay + zy, alpha * az + zz
            zx, zy, zz = keep * vx, keep * vy, keep * vz
            wx, wy, wz = gx - bx, gy - by, gz - bz
            rate = math.sqrt(wx * wx + wy * wy + wz * wz)
            if rate > min_rate:
                norm = math.sqrt(vx * vx + vy * vy + vz * vz)
                along = (wx * vx + wy * vy + wz * vz) / norm
                if abs(along) > cos_max * rate:
                    gated.append((i, along / norm, vx, vy, vz))
        self._zi = np.array([[zx, zy, zz]])
        if not gated:
            return gyro_radps
        self.gated_samples += len(gated)
        out = gyro_radps.copy()
        for i, scale, vx, vy, vz in gated:
            out[i] = (bx + scale * vx, by + scale * vy, bz + scale * vz)
        return out


class MovementMeter:
    """How much a sensor moves: a dimensionless running RMS per sample.

    ``e = |ω⊥|² / rate_ref² + |a − g·up|² / acc_ref²``, where ω⊥ is the bias-free angular rate
    without its component about world up (chair swivels and turning while walking change no
    posture, so they are not movement here) and ``a − g·up`` is the specific force with gravity
    removed by the orientation filter's up vector. A first-order low-pass (``tau_s``) turns ``e``
    into a running mean square, of which the meter returns the root; the rig resamples it onto the
    grid and :class:`~sensorhub.model.SpineFrame` carries the largest of the sensors
    (``movement``): about 0.1–0.2 sitting still or typing, near 1 walking or reaching
    (docs/posture.md).

    ``e`` is taken every ``step``-th sample of the stream (about ``energy_rate_hz``; each sample
    holds the latest value): a mean square over half a second needs no more than 25 values a
    second, and the per-sample Python arithmetic of small streaming batches is what costs (the
    streaming path is benchmarked). The sample count carries across calls, so which samples are
    used, and so the result, does not depend on how the stream is cut. A sample without an
    orientation (NaN ``up``) leaves the filter as it was.
    """

    def __init__(
        self,
        gyro_bias_radps: FloatArray,
        sample_rate_hz: float,
        *,
        rate_ref_dps: float = 30.0,
        acc_ref_mps2: float = 3.0,
        tau_s: float = 0.5,
        energy_rate_hz: float = 25.0,
    ) -> None:
        self.bias = np.asarray(gyro_bias_radps, dtype=np.float64)
        self._bias = tuple(self.bias.tolist())
        self._w_scale = 1.0 / math.radians(rate_ref_dps) ** 2
        self._a_scale = 1.0 / acc_ref_mps2**2
        self.step = max(1, int(sample_rate_hz // energy_rate_hz))
        self.alpha = 1.0 - math.exp(-self.step / (tau_s * sample_rate_hz))
        self._b = np.array([self.alpha])
        self._a = np.array([1.0, self.alpha - 1.0])
        self.state: float | None = None  # filter state (mean square); None until the first finite value
        self.count = 0  # samples seen
        # The C kernel's parameters (_kernel.c, back()).
        self.kernel_params = np.array(
            [*self._bias, self._w_scale, self._a_scale, self.alpha, self.step, 2.0 * GRAVITY_MPS2, GRAVITY_MPS2**2]
        )

    def process(self, acc_mps2: FloatArray, gyro_radps: FloatArray, up: FloatArray) -> FloatArray:
        """Running RMS (N,) for samples with corrected ``acc_mps2``, raw ``gyro_radps`` and unit ``up``."""
        n = len(acc_mps2)
        first = (-self.count) % self.step  # index of the first sample of this batch that is used
        self.count += n
        held = math.nan if self.state is None else math.sqrt(self.state)
        if first >= n:
            return np.full(n, held)
        step = self.step
        sl = slice(first, n, step)
        if n <= _SCALAR_MAX:
            values = self._energy_scalar(acc_mps2[sl], gyro_radps[sl], up[sl])
            if step == 1:
                return np.array(values)
            out = [held] * first
            for v in values:
                out += [v] * step
            return np.array(out[:n])
        arr = self._energy_array(acc_mps2[sl], gyro_radps[sl], up[sl])
        if step == 1:
            return arr
        rep = np.repeat(arr, step)[: n - first]
        return rep if first == 0 else np.concatenate((np.full(first, held), rep))

    def _energy_array(self, acc: FloatArray, gyro: FloatArray, up: FloatArray) -> FloatArray:
        w = gyro - self.bias
        wu = np.einsum("ij,ij->i", w, up)
        au = np.einsum("ij,ij->i", acc, up)
        e = (np.einsum("ij,ij->i", w, w) - wu * wu) * self._w_scale + (
            np.einsum("ij,ij->i", acc, acc) - (2.0 * GRAVITY_MPS2) * au + GRAVITY_MPS2**2
        ) * self._a_scale
        np.maximum(e, 0.0, out=e)  # both terms are squares; rounding must not make them negative
        finite = np.isfinite(e)
        if finite.all():
            return self._smooth(e)
        # A sample without an orientation holds the filter: it repeats the latest output.
        before = math.nan if self.state is None else math.sqrt(self.state)
        out = np.full(len(e), np.nan)
        if finite.any():
            out[finite] = self._smooth(e[finite])
        last = np.maximum.accumulate(np.where(finite, np.arange(len(e)), -1))
        held: FloatArray = np.where(last >= 0, out[np.maximum(last, 0)], before)
        return held

    def _smooth(self, e: FloatArray) -> FloatArray:
        y0 = float(e[0]) if self.state is None else self.state
        y = signal.lfilter(self._b, self._a, e, zi=[(1.0 - self.alpha) * y0])[0]
        self.state = float(y[-1])
        out: FloatArray = np.sqrt(y)
        return out

    def _energy_scalar(self, acc: FloatArray, gyro: FloatArray, up: FloatArray) -> list[float]:
        """:meth:`_energy_array` on Python floats for a small batch (agrees with it to rounding)."""
        bx, by, bz = self._bias
        ws, as_, a, keep = self._w_scale, self._a_scale, self.alpha, 1.0 - self.alpha
        g, g2 = 2.0 * GRAVITY_MPS2, GRAVITY_MPS2**2
        isfinite, sqrt = math.isfinite, math.sqrt
        y = self.state
        out: list[float] = []
        for (ax, ay, az), (gx, gy, gz), (ux, uy, uz) in zip(acc.tolist(), gyro.tolist(), up.tolist(), strict=True):
            wx, wy, wz = gx - bx, gy - by, gz - bz
            wu = wx * ux + wy * uy + wz * uz
            e = (wx * wx + wy * wy + wz * wz - wu * wu) * ws + (
                ax * ax + ay * ay + az * az - g * (ax * ux + ay * uy + az * uz) + g2
            ) * as_
            if isfinite(e):
                if e < 0.0:
                    e = 0.0
                # lfilter's form for b = [α], a = [1, α − 1]: y = αe + z, z = (1 − α)y.
                y = a * e + keep * (e if y is None else y)
            out.append(math.nan if y is None else sqrt(y))
        self.state = y
        return out


class SensorPipeline:
    """One sensor: corrected IMU samples → orientation → sagittal inclination change (deg)."""

    def __init__(self, calibration: SensorCalibration, estimator: Estimator, *, swivel_gate: bool = True) -> None:
        self.calibration = calibration
        self.estimator = estimator
        bias = np.asarray(calibration.gyro_bias_radps, dtype=np.float64)
        estimator.set_gyro_bias(bias)
        self.swivel_gate = SwivelGate(bias, 1.0 / estimator.period_s) if swivel_gate else None
        self._acc_bias = np.asarray(calibration.acc_bias_mps2, dtype=np.float64)
        self._acc_scale = np.asarray(calibration.acc_scale, dtype=np.float64)
        basis = inclination_basis(calibration.up0, calibration.flexion_axis)
        self._basis = np.ascontiguousarray(basis, dtype=np.float64)
        self.movement = MovementMeter(bias, 1.0 / estimator.period_s)
        self._kernel = kernel.kernel
        # The kernel's front parameters (layout: _kernel.c, P_*): the estimator's part is refreshed
        # whenever its fast_params() change (a new period or gyro bias).
        gate = self.swivel_gate
        self._front_params = np.zeros(26)
        self._front_params[0:3] = self._acc_bias
        self._front_params[3:6] = self._acc_scale
        if gate is not None:
            self._front_params[9:16] = (*gate.bias.tolist(), 1.0, gate.alpha, gate.min_rate, gate.cos_max)
        self._front_key: tuple[float, ...] | None = None
        self._zi_off = np.zeros(3)  # the gate's state when it is off (unused)

    def process(self, batch: ImuBatch) -> SensorAngles:
        """Angles (and movement) for one batch of this sensor's samples."""
        if self._kernel is not None and 0 < len(batch) <= _SCALAR_MAX:
            angles = self._process_kernel(batch, self._kernel)
            if angles is not None:
                return angles
        acc = (batch.acc - self._acc_bias) / self._acc_scale  # as SensorCalibration.correct_acc
        gyro = batch.gyro if self.swivel_gate is None else self.swivel_gate.process(acc, batch.gyro)
        return self._finish(batch, acc, gyro)

    def _finish(
        self, batch: ImuBatch, acc: FloatArray, gyro: FloatArray, out: EstimatorOutput | None = None
    ) -> SensorAngles:
        if out is None:
            out = self.estimator.process(batch.t, acc, gyro, batch.seq)
        inclination = inclination_from_basis(out.up, self._basis)
        # The raw gyro: the swivel gate's output keeps the rotation about the vertical, which the
        # meter removes itself.
        movement = self.movement.process(acc, batch.gyro, out.up)
        return SensorAngles(batch.sensor_id, batch.placement, out.t, inclination, out.rest, movement)

    def _process_kernel(self, batch: ImuBatch, k: ModuleType) -> SensorAngles | None:
        """:meth:`process` for a small batch with the C kernel's loops (sensorhub/pipeline/kernel.py);
        None, with nothing changed, when the batch needs the Python path from the start."""
        est = self.estimator
        m = len(batch)
        state = est.fast_state() if isinstance(est, _StreamEstimator) else None
        gate = self.swivel_gate
        if state is None or (gate is not None and gate.zi is None):
            return None
        assert isinstance(est, _StreamEstimator)  # fast_state said so
        last_seq, last_t, last_motion, recent, room = state
        if m > room:  # the period block closes inside: up to its end, then the rest (as _process_fast)
            head = self._process_kernel(batch.cut(0, room), k)
            if head is None:
                return None
            return head.then(self.process(batch.cut(room, m)))
        est_params = est.fast_params()
        if est_params is not self._front_key:
            self._front_params[6:9] = est_params[:3]
            self._front_params[16:] = est_params[3:]
            self._front_key = est_params
        acc = np.empty((m, 3))
        gyro = np.empty((m, 3))
        rest = np.empty(m, dtype=bool)
        zi = self._zi_off if gate is None else gate.zi
        r = k.front(batch.t, batch.acc, batch.gyro, batch.seq, last_seq, last_t, last_motion, recent,
                    self._front_params, zi, acc, gyro, rest)  # fmt: skip
        if r is None:  # an array the kernel cannot take (e.g. not contiguous): nothing was written
            return None
        if gate is not None:
            gate.gated_samples += r[1]
        if not r[0]:  # corrected and gated, but not plain: the estimator's general walk
            return self._finish(batch, acc, gyro, est.process(batch.t, acc, gyro, batch.seq, known_special=True))
        _, _, steps, window, a2min, a2max, last_motion = r
        orientation = est.fuse_fast(acc, gyro, (a2min, a2max))
        seq = batch.seq
        est.commit_fast(batch.t.copy(), steps, window, last_motion, None if seq is None else int(seq[-1]), acc, gyro)
        inclination = np.empty(m)
        movement = np.empty(m)
        meter = self.movement
        y = meter.state
        done = k.back(orientation, self._basis, acc, batch.gyro, meter.kernel_params, meter.count,
                      math.nan if y is None else y, inclination, movement)  # fmt: skip
        if done is None:  # cannot happen: every array here was made contiguous float64 above
            raise RuntimeError("the C kernel refused the arrays of a checked batch")
        meter.count, meter.state = done
        return SensorAngles(batch.sensor_id, batch.placement, batch.t, inclination, rest, movement)


class SpinePipeline:
    """All of a wearer's sensors → spine angles on a common grid.

    Args:
        calibration: the rig calibration (one SensorCalibration per placement worn).
        estimator: "vqf" (default) or "complementary".
        nominal_rate_hz: each sensor's nominal sample rate (one value for all, or per placement).
        rig_settings: output grid, gap and timeout rules.
    """

    def __init__(
        self,
        calibration: RigCalibration,
        *,
        estimator: str = "vqf",
        nominal_rate_hz: float | Mapping[Placement, float] = 100.0,
        rig_settings: RigSettings | None = None,
    ) -> None:
        self.calibration = calibration
        self.sensors: dict[Placement, SensorPipeline] = {}
        for name, cal in calibration.sensors.items():
            placement = Placement(name)
            rate = nominal_rate_hz if isinstance(nominal_rate_hz, float | int) else nominal_rate_hz[placement]
            self.sensors[placement] = SensorPipeline(cal, make_estimator(estimator, float(rate)))
        self.rig = Rig(tuple(self.sensors), rig_settings)

    def process(self, batch: ImuBatch) -> SpineFrame:
        """Feed one batch; returns the grid instants that became complete (often none)."""
        pipeline = self.sensors.get(batch.placement)
        if pipeline is None:
            raise InputError(f"no calibration for sensor placement {batch.placement.value}")
        return self.rig.process(pipeline.process(batch))

    def process_block(self, batches: Sequence[ImuBatch]) -> SpineFrame:
        """Feed everything that arrived in one service tick (e.g. 100 ms) at once.

        Each sensor's batches are joined and processed in one call, then the rig emits once; the
        angles are the same as feeding the batches one by one (chunk invariance), the cost per tick
        is one estimator call per sensor instead of one per notification.
        """
        by_sensor: dict[Placement, list[ImuBatch]] = {}
        for b in batches:
            by_sensor.setdefault(b.placement, []).append(b)
        for placement, group in by_sensor.items():
            pipeline = self.sensors.get(placement)
            if pipeline is None:
                raise InputError(f"no calibration for sensor placement {placement.value}")
            self.rig.push(pipeline.process(ImuBatch.join(group)))
        return self.rig.process()

    def flush(self) -> SpineFrame:
        """Emit what is left at the end of a recording."""
        return self.rig.flush()


def concat_frames(frames: list[SpineFrame]) -> SpineFrame:
    """Join consecutive SpineFrames into one (a field missing from some frames is NaN there)."""
    if not frames:
        return SpineFrame(t=np.empty(0))

    def cat(name: str) -> FloatArray | None:
        parts: list[FloatArray | None] = [getattr(f, name) for f in frames]
        if all(p is None for p in parts):
            return None
        return np.concatenate(
            [np.full(len(f.t), np.nan) if p is None else p for f, p in zip(frames, parts, strict=True)]
        )

    return SpineFrame(
        t=np.concatenate([f.t for f in frames]),
        thoracic_flexion_deg=cat("thoracic_flexion_deg"),
        lumbar_flexion_deg=cat("lumbar_flexion_deg"),
        trunk_flexion_deg=cat("trunk_flexion_deg"),
        pelvis_tilt_deg=cat("pelvis_tilt_deg"),
        spine_flexion_deg=cat("spine_flexion_deg"),
        movement=cat("movement"),
    )
