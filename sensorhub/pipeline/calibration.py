"""Sensor → segment calibration: neutral up direction, flexion axis, gyro and accelerometer bias.

What calibration finds for each sensor (DESIGN §3), all in the sensor's own axes:

- ``up0``: world up at the wearer's neutral posture, from the mean accelerometer direction of a
  still capture (:func:`capture_neutral`).
- ``flexion_axis``: the segment's left–right axis, unit and ⊥ ``up0``. From the principal axis of
  the angular velocity during slow forward bends or cat/camel reps (:func:`functional_axis`), or,
  without such a movement, the nominal axis ``normalize(ẑ × up0)`` (:func:`nominal_axis`). The
  nominal axis is right for any yaw of the sensor on the skin: the sensor lies flat, so its z axis
  is the segment's skin normal, and at neutral world up lies in the segment's sagittal (x–z)
  plane, so ẑ × up0 is the segment's y axis whatever the yaw. Only skin tilt and a lateral lean at
  neutral make it wrong, by about their size.
- ``gyro_bias_radps``: from the still capture, with the accelerometer's view of any slow tilt
  taken out (breathing and sway would otherwise leak into the mean).
- Optionally, the accelerometer bias in the sagittal plane (:func:`estimate_acc_bias`) and a
  per-sensor bias/scale from a multi-orientation calibration (:func:`multi_orientation_calibration`).

Inclination change (:func:`inclination_change_deg`): for world up ``u`` in sensor axes, project
it onto the sagittal plane, ``u_p = u − (u·a)a``, and take the signed angle from ``up0`` about
``a``, ``θ = atan2((u_p × up0)·a, u_p·up0)``. A forward bend is a positive rotation of the segment
about its left axis, which turns world-up *in segment axes* by −θ about ``a``; then
``u_p × up0 = sin θ · a``, so θ > 0 for forward flexion. This equals the change of the
simulator's ``atan2(u_z, u_x)`` in segment axes when ``a`` is the segment's y axis.

Sign of the functional axis: the principal axis of a back-and-forth movement has no sign of its
own. The skin normal supplies it: the axis is chosen with ``a · (ẑ × up0) > 0``, i.e. pointing
to the wearer's left, so that bending forward (world up moves towards +z in sensor axes: the back
turns to face the ceiling) gives positive angles. This assumes the profile maps the sensor's z
axis out of the skin (DESIGN §3); it holds for any yaw, even a sensor worn upside down.

Everything here is pure numpy/scipy on arrays: no I/O. Recalibrating = calling these again on a
new window. Thresholds and the measurements behind them are in docs/pipeline.md (calibration).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from sensorhub.errors import CalibrationError
from sensorhub.model import GRAVITY_MPS2, FloatArray, JsonValue

__all__ = [
    "ACC_BIAS_MAX_MPS2",
    "FUNCTIONAL_HOLD_RATE_MAX_DPS",
    "FUNCTIONAL_MAX_AXIS_TO_NOMINAL_DEG",
    "FUNCTIONAL_MIN_ROTATION_DEG",
    "FUNCTIONAL_MIN_VARIANCE_FRACTION",
    "NEUTRAL_MIN_DURATION_S",
    "STILL_ACC_STD_MAX_MPS2",
    "STILL_GYRO_RMS_MAX_DPS",
    "STILL_ROTATION_MAX_DEG",
    "STILL_TILT_MAX_DEG",
    "AccBiasEstimate",
    "CalibrationQuality",
    "FunctionalAxis",
    "NeutralCapture",
    "RigCalibration",
    "SensorCalibration",
    "Verdict",
    "calibrate_rig",
    "calibrate_sensor",
    "capture_neutral",
    "estimate_acc_bias",
    "find_functional_window",
    "functional_axis",
    "inclination_basis",
    "inclination_change_deg",
    "inclination_from_basis",
    "multi_orientation_calibration",
    "nominal_axis",
]

# -- thresholds (measured on the simulator: docs/pipeline.md, calibration) -----------------------

#: Shortest usable neutral capture. 3 s averages the accelerometer noise to < 0.01° and spans most
#: of a breath (12–18 /min); shorter captures leave breathing in the mean.
NEUTRAL_MIN_DURATION_S = 3.0
#: Gyro RMS (after removing the mean) that still counts as sitting still. Breathing and sway give
#: 0.1–0.7 °/s on the simulator (upper thoracic largest); a slow forward bend gives 5–15 °/s.
STILL_GYRO_RMS_MAX_DPS = 2.0
#: Largest excursion of the gyro-integrated orientation from its window mean. Breathing: ≤ 0.6°.
STILL_ROTATION_MAX_DEG = 2.0
#: Largest excursion of the (0.5 s averaged) accelerometer direction from the window mean. Catches
#: slow drifts the mean-removed gyro hides. Breathing: ≤ 0.6°.
STILL_TILT_MAX_DEG = 2.0
#: RMS deviation of the accelerometer vector from its mean. Breathing, sway and noise: ≤ 0.1 m/s².
STILL_ACC_STD_MAX_MPS2 = 0.3
#: Range of the rotation about the principal axis a functional movement must cover. The smallest
#: sensor excursion in the simulator's movements is the thoracolumbar sensor in cat/camel (≈ 10°).
FUNCTIONAL_MIN_ROTATION_DEG = 5.0
#: Share of the angular-velocity energy on the principal axis. Bends and cat/camel: ≥ 0.97.
FUNCTIONAL_MIN_VARIANCE_FRACTION = 0.8
#: A functional axis this far from the nominal axis is not a flexion (a twist or side bend).
FUNCTIONAL_MAX_AXIS_TO_NOMINAL_DEG = 30.0
#: Quasi-static points of the functional movement (for the residual and the acc bias estimate).
FUNCTIONAL_HOLD_RATE_MAX_DPS = 2.0
#: Time cut from each end of a hold.
_HOLD_TRIM_S = 0.2
#: Largest plausible accelerometer bias (100 mg, 5σ of the datasheet zero-g offset); an estimate
#: beyond it comes from a movement that was not quasi-static and is discarded.
ACC_BIAS_MAX_MPS2 = 0.1 * GRAVITY_MPS2
#: Activity threshold of :func:`find_functional_window` (1 s mean of the rate about the flexion axis).
#: Breathing reaches ≈ 0.8 °/s on the upper thoracic sensor; slow bends 5–20 °/s.
_ACTIVE_RATE_DPS = 1.5
#: Pauses shorter than this join two active stretches into one movement (bends hold ≤ 2 s).
_MERGE_GAP_S = 3.0
#: A sensor lying this close to horizontal at neutral has no usable nominal axis.
_MIN_UP_TO_SKIN_NORMAL_DEG = 30.0

Verdict = Literal["good", "fair", "poor"]
AxisSource = Literal["functional", "nominal"]
_E_Z = np.array([0.0, 0.0, 1.0])


# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeutralCapture:
    """The still neutral capture of one sensor.

    Attributes:
        up0: (3,) unit vector, world up in sensor axes (mean accelerometer direction).
        acc_mean_mps2: (3,) mean specific force in the window.
        gyro_bias_radps: (3,) gyro bias (mean rate, minus the tilt the accelerometer saw).
        gyro_rms_dps: RMS of the gyro rate after removing its mean.
        rotation_deg: largest excursion of the gyro-integrated orientation from its mean.
        tilt_deg: largest excursion of the 0.5 s averaged accelerometer direction from ``up0``.
        acc_std_mps2: RMS deviation of the accelerometer vector from its mean.
        duration_s: time covered by the samples used.
        samples: number of samples used.
        window: (start_s, end_s) that was asked for.
    """

    up0: FloatArray
    acc_mean_mps2: FloatArray
    gyro_bias_radps: FloatArray
    gyro_rms_dps: float
    rotation_deg: float
    tilt_deg: float
    acc_std_mps2: float
    duration_s: float
    samples: int
    window: tuple[float, float]


@dataclass(frozen=True, slots=True)
class FunctionalAxis:
    """The flexion axis found from a functional movement.

    Attributes:
        axis: (3,) unit vector in sensor axes, ⊥ up0, pointing to the wearer's left.
        variance_fraction: share of the angular-velocity energy on the principal axis (0–1).
        rotation_deg: range (max − min) of the rotation about the axis over the window.
        axis_to_nominal_deg: angle between this axis and :func:`nominal_axis` of the same up0.
        window: (start_s, end_s) used.
    """

    axis: FloatArray
    variance_fraction: float
    rotation_deg: float
    axis_to_nominal_deg: float
    window: tuple[float, float]


@dataclass(frozen=True, slots=True)
class AccBiasEstimate:
    """Accelerometer bias seen by calibration (its component in the sagittal plane only).

    Attributes:
        bias_mps2: (3,) estimated bias, sensor axes; zero along the flexion axis (unobservable).
        holds: number of quasi-static points used (besides the neutral reference).
        max_rotation_deg: largest rotation between a hold and the reference.
        residual_mps2: RMS residual of the fit.
    """

    bias_mps2: FloatArray
    holds: int
    max_rotation_deg: float
    residual_mps2: float


@dataclass(frozen=True, slots=True)
class CalibrationQuality:
    """Quality figures stored with a sensor's calibration.

    Attributes:
        still_gyro_rms_dps: neutral capture gyro RMS (mean removed).
        still_acc_std_mps2: neutral capture accelerometer RMS deviation.
        neutral_duration_s: neutral capture length.
        functional_variance_fraction: principal-axis share, None without a functional movement.
        functional_rotation_deg: rotation range about the axis, None without a functional movement.
        axis_to_nominal_deg: functional axis vs nominal axis, None without a functional movement.
        residual_deg: RMS difference at the quasi-static points of the functional movement between
            the accelerometer's inclination change and the gyro-integrated rotation about the axis;
            None without a functional movement or without quasi-static points.
        acc_bias_holds: quasi-static points the accelerometer bias estimate used (0 = not estimated).
    """

    still_gyro_rms_dps: float
    still_acc_std_mps2: float
    neutral_duration_s: float
    functional_variance_fraction: float | None = None
    functional_rotation_deg: float | None = None
    axis_to_nominal_deg: float | None = None
    residual_deg: float | None = None
    acc_bias_holds: int = 0


@dataclass(frozen=True, slots=True)
class SensorCalibration:
    """Everything the pipeline needs to turn one sensor's up vector into a flexion angle.

    Attributes:
        placement: placement name (DESIGN §3) or sensor id.
        up0: (3,) world up in sensor axes at neutral (unit).
        flexion_axis: (3,) the segment's left axis in sensor axes (unit, ⊥ up0).
        gyro_bias_radps: (3,) gyro bias at the neutral capture.
        acc_bias_mps2: (3,) accelerometer bias removed by :meth:`correct_acc`.
        acc_scale: (3,) accelerometer scale factors removed by :meth:`correct_acc`.
        axis_source: "functional" or "nominal".
        quality: quality figures.
        window: the neutral window (start_s, end_s) the calibration was captured in.
        functional_window: the functional window used, or None.
    """

    placement: str
    up0: FloatArray
    flexion_axis: FloatArray
    gyro_bias_radps: FloatArray
    acc_bias_mps2: FloatArray
    acc_scale: FloatArray
    axis_source: AxisSource
    quality: CalibrationQuality
    window: tuple[float, float] = (0.0, 0.0)
    functional_window: tuple[float, float] | None = None

    def inclination_deg(self, up: FloatArray) -> FloatArray:
        """Sagittal inclination change from neutral (deg, + = forward flexion) of up vectors (N, 3)."""
        return inclination_change_deg(up, self.up0, self.flexion_axis)

    def correct_acc(self, acc_mps2: FloatArray) -> FloatArray:
        """Accelerometer samples (N, 3) or (3,) with bias and scale removed: ``(acc − bias) / scale``."""
        out: FloatArray = (np.asarray(acc_mps2, dtype=np.float64) - self.acc_bias_mps2) / self.acc_scale
        return out

    def to_json(self) -> dict[str, JsonValue]:
        """A JSON-ready dict for storing the calibration (version 1)."""
        q = self.quality
        return {
            "version": 1,
            "placement": self.placement,
            "up0": _vec_json(self.up0),
            "flexion_axis": _vec_json(self.flexion_axis),
            "gyro_bias_radps": _vec_json(self.gyro_bias_radps),
            "acc_bias_mps2": _vec_json(self.acc_bias_mps2),
            "acc_scale": _vec_json(self.acc_scale),
            "axis_source": self.axis_source,
            "window": [self.window[0], self.window[1]],
            "functional_window": None
            if self.functional_window is None
            else [self.functional_window[0], self.functional_window[1]],
            "quality": {
                "still_gyro_rms_dps": q.still_gyro_rms_dps,
                "still_acc_std_mps2": q.still_acc_std_mps2,
                "neutral_duration_s": q.neutral_duration_s,
                "functional_variance_fraction": q.functional_variance_fraction,
                "functional_rotation_deg": q.functional_rotation_deg,
                "axis_to_nominal_deg": q.axis_to_nominal_deg,
                "residual_deg": q.residual_deg,
                "acc_bias_holds": q.acc_bias_holds,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> SensorCalibration:
        """Rebuild a calibration stored with :meth:`to_json`.

        Raises:
            CalibrationError: a key is missing or has the wrong type or shape.
        """
        placement = str(data.get("placement", ""))
        try:
            if data.get("version") != 1:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            q = data["quality"]
            if not isinstance(q, Mapping):
                raise ValueError("quality must be an object")
            source = data["axis_source"]
            if source not in ("functional", "nominal"):
                raise ValueError(f"axis_source must be 'functional' or 'nominal', got {source!r}")
            quality = CalibrationQuality(
                still_gyro_rms_dps=_float(q["still_gyro_rms_dps"]),
                still_acc_std_mps2=_float(q["still_acc_std_mps2"]),
                neutral_duration_s=_float(q["neutral_duration_s"]),
                functional_variance_fraction=_opt_float(q.get("functional_variance_fraction")),
                functional_rotation_deg=_opt_float(q.get("functional_rotation_deg")),
                axis_to_nominal_deg=_opt_float(q.get("axis_to_nominal_deg")),
                residual_deg=_opt_float(q.get("residual_deg")),
                acc_bias_holds=int(_float(q.get("acc_bias_holds", 0))),
            )
            return cls(
                placement=placement,
                up0=_vec(data["up0"]),
                flexion_axis=_vec(data["flexion_axis"]),
                gyro_bias_radps=_vec(data["gyro_bias_radps"]),
                acc_bias_mps2=_vec(data["acc_bias_mps2"]),
                acc_scale=_vec(data["acc_scale"]),
                axis_source="functional" if source == "functional" else "nominal",
                quality=quality,
                window=_pair(data["window"]),
                functional_window=None if data.get("functional_window") is None else _pair(data["functional_window"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(
                f"stored calibration cannot be read: {exc}",
                sensor=placement,
                advice="calibrate again",
            ) from exc


@dataclass(frozen=True, slots=True)
class RigCalibration:
    """Calibrations of all sensors of a wearer, with cross-sensor quality.

    Attributes:
        sensors: calibration per placement.
        functional_window: the functional window used for all sensors, or None.
        axis_consistency_deg: largest difference between two sensors' flexion axes, each taken as a
            horizontal direction relative to its own skin normal (0 = all agree); None with fewer
            than two functionally calibrated sensors.
        verdict: "good", "fair" or "poor".
        reasons: why the verdict is not "good" (empty when it is), and notes such as fallbacks.
    """

    sensors: Mapping[str, SensorCalibration]
    functional_window: tuple[float, float] | None
    axis_consistency_deg: float | None
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, JsonValue]:
        """A JSON-ready dict: per-sensor calibrations plus the rig's quality."""
        return {
            "version": 1,
            "sensors": {name: cal.to_json() for name, cal in self.sensors.items()},
            "functional_window": None
            if self.functional_window is None
            else [self.functional_window[0], self.functional_window[1]],
            "axis_consistency_deg": self.axis_consistency_deg,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> RigCalibration:
        """Rebuild a rig calibration stored with :meth:`to_json`.

        Raises:
            CalibrationError: the data is not a stored rig calibration.
        """
        try:
            sensors = data["sensors"]
            reasons = data.get("reasons", [])
            verdict = data["verdict"]
            if not isinstance(sensors, Mapping) or not isinstance(reasons, list):
                raise ValueError("sensors must be an object and reasons a list")
            if verdict not in ("good", "fair", "poor"):
                raise ValueError(f"unknown verdict {verdict!r}")
            cals: dict[str, SensorCalibration] = {}
            for name, value in sensors.items():
                if not isinstance(value, Mapping):
                    raise ValueError(f"sensor {name!r} must be an object")
                cals[str(name)] = SensorCalibration.from_json(value)
            window = data.get("functional_window")
            consistency = data.get("axis_consistency_deg")
            return cls(
                sensors=cals,
                functional_window=None if window is None else _pair(window),
                axis_consistency_deg=_opt_float(consistency),
                verdict="good" if verdict == "good" else "fair" if verdict == "fair" else "poor",
                reasons=tuple(str(r) for r in reasons),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"stored rig calibration cannot be read: {exc}", advice="calibrate again") from exc


# -- geometry ----------------------------------------------------------------------------------------


def inclination_change_deg(up: FloatArray, up0: FloatArray, axis: FloatArray) -> FloatArray:
    """Signed sagittal inclination change (deg, + = forward flexion) of up vectors from ``up0``.

    Args:
        up: (N, 3) or (3,) world up in sensor axes (need not be unit length).
        up0: (3,) world up in sensor axes at neutral (unit, ⊥ ``axis``).
        axis: (3,) flexion (left) axis in sensor axes (unit).

    Returns:
        (N,) degrees (a 0-d array for a single vector), in (−180, 180].
    """
    u = np.asarray(up, dtype=np.float64)
    return inclination_from_basis(u, inclination_basis(up0, axis))


def inclination_basis(up0: FloatArray, axis: FloatArray) -> FloatArray:
    """(3, 2) matrix B with ``up @ B`` = (sine part, cosine part) of the inclination change.

    With u_p = u − (u·a)a: (u_p × up0)·a = u·(up0 × a) (triple product; a·(up0 × a) = 0) and
    u_p·up0 = u·(up0 − (a·up0)a), so two dot products per sample give the signed angle.
    """
    a = np.asarray(axis, dtype=np.float64)
    b = np.asarray(up0, dtype=np.float64)
    num_vec = np.array([b[1] * a[2] - b[2] * a[1], b[2] * a[0] - b[0] * a[2], b[0] * a[1] - b[1] * a[0]])
    den_vec = b - float(a @ b) * a
    return np.stack([num_vec, den_vec], axis=1)


def inclination_from_basis(up: FloatArray, basis: FloatArray) -> FloatArray:
    """:func:`inclination_change_deg` with a precomputed :func:`inclination_basis` (deg)."""
    sc = up @ basis
    out: FloatArray = np.arctan2(sc[..., 0], sc[..., 1]) * _RAD2DEG
    return out


_RAD2DEG = 180.0 / math.pi


def nominal_axis(up0: FloatArray, *, sensor: str = "") -> FloatArray:
    """The nominal flexion axis ``normalize(ẑ × up0)``: the wearer's left for a sensor flat on the skin.

    Raises:
        CalibrationError: up0 is within 30° of the sensor's z axis (the back is not upright, or
            the sensor does not lie on it), so the axis is undefined.
    """
    v = np.cross(_E_Z, np.asarray(up0, dtype=np.float64))
    n = float(np.linalg.norm(v))
    if n < math.sin(math.radians(_MIN_UP_TO_SKIN_NORMAL_DEG)):
        raise CalibrationError(
            f"world up is only {math.degrees(math.asin(min(n, 1.0))):.0f}° from the sensor's skin normal (z) at "
            "neutral, so its left–right axis is undefined",
            sensor=sensor,
            advice="sit upright for the neutral capture and check that the sensor lies flat on the back, z outwards",
        )
    out: FloatArray = v / n
    return out


# -- neutral capture ---------------------------------------------------------------------------------


def capture_neutral(
    t: FloatArray,
    acc_mps2: FloatArray,
    gyro_radps: FloatArray,
    *,
    start_s: float,
    end_s: float,
    sensor: str = "",
) -> NeutralCapture:
    """Still neutral capture: up0, gyro bias and stillness figures over ``[start_s, end_s]``.

    Args:
        t: (N,) sample times, s, increasing.
        acc_mps2: (N, 3) specific force, sensor axes.
        gyro_radps: (N, 3) angular rate, sensor axes.
        start_s: window start, s (same clock as ``t``).
        end_s: window end, s.
        sensor: name used in messages.

    Raises:
        CalibrationError: the window is too short (< :data:`NEUTRAL_MIN_DURATION_S`), holds no
            data, or the sensor moved (the message says how much, and when).
    """
    window = (float(start_s), float(end_s))
    tt, acc, gyro = _window(t, acc_mps2, gyro_radps, window, sensor)
    duration = float(tt[-1] - tt[0]) if len(tt) else 0.0
    if duration < NEUTRAL_MIN_DURATION_S:
        raise CalibrationError(
            f"neutral window {_fmt_window(window)} has {duration:.1f} s of data, needs at least "
            f"{NEUTRAL_MIN_DURATION_S:g} s",
            sensor=sensor,
            window=window,
            advice=f"sit upright and still for at least {NEUTRAL_MIN_DURATION_S:g} s (breathing is fine)",
        )
    dt = _sample_dt(tt)
    acc_mean = acc.mean(axis=0)
    up0 = _unit(acc_mean)

    gyro_mean = gyro.mean(axis=0)
    dev = gyro - gyro_mean
    gyro_rms_dps = math.degrees(float(np.sqrt(np.mean(np.sum(dev * dev, axis=1)))))
    phi = np.cumsum(dev * dt[:, None], axis=0)
    phi -= phi.mean(axis=0)
    rot = np.degrees(np.linalg.norm(phi, axis=1))

    acc_dev = np.linalg.norm(acc - acc_mean, axis=1)
    acc_std = float(np.sqrt(np.mean(acc_dev * acc_dev)))
    smooth = _moving_mean(acc, max(1, round(0.5 / float(np.median(dt)))))
    u_s = smooth / np.linalg.norm(smooth, axis=1)[:, None]
    tilt = np.degrees(np.arccos(np.clip(u_s @ up0, -1.0, 1.0)))

    # Gyro bias ⊥ up: regress (gyro-integrated rotation − accelerometer tilt) on time, so a slow
    # tilt during the window (breathing, sway, a drift) does not leak into the bias. Along up the
    # accelerometer sees nothing; the mean is all there is. For small angles the sensor's rotation
    # ⊥ up from u0 to u is u × u0.
    u = acc / np.linalg.norm(acc, axis=1)[:, None]
    tilt_rotvec = np.cross(u, up0)
    phi_raw = np.cumsum(gyro * dt[:, None], axis=0)
    design = np.column_stack([tt - tt.mean(), np.ones_like(tt)])
    slope = np.linalg.lstsq(design, phi_raw - tilt_rotvec, rcond=None)[0][0]
    bias = slope - (slope @ up0) * up0 + (gyro_mean @ up0) * up0

    capture = NeutralCapture(
        up0=up0,
        acc_mean_mps2=acc_mean,
        gyro_bias_radps=bias,
        gyro_rms_dps=gyro_rms_dps,
        rotation_deg=float(rot.max()),
        tilt_deg=float(tilt.max()),
        acc_std_mps2=acc_std,
        duration_s=duration,
        samples=len(tt),
        window=window,
    )
    _check_still(capture, tt, dev, rot, tilt, acc_dev, sensor)
    return capture


def _check_still(
    c: NeutralCapture,
    t: FloatArray,
    gyro_dev: FloatArray,
    rot_deg: FloatArray,
    tilt_deg: FloatArray,
    acc_dev: FloatArray,
    sensor: str,
) -> None:
    problems: list[str] = []
    when: list[float] = []
    if c.rotation_deg > STILL_ROTATION_MAX_DEG or c.gyro_rms_dps > STILL_GYRO_RMS_MAX_DPS:
        rate = np.degrees(np.linalg.norm(gyro_dev, axis=1))
        i = int(np.argmax(rate))
        problems.append(
            f"it rotated {c.rotation_deg:.1f}° (limit {STILL_ROTATION_MAX_DEG:g}°) at up to {rate[i]:.0f} °/s, "
            f"fastest at t = {t[i]:.1f} s (gyro RMS {c.gyro_rms_dps:.1f} °/s, limit {STILL_GYRO_RMS_MAX_DPS:g})"
        )
        when.append(float(t[i]))
    if c.tilt_deg > STILL_TILT_MAX_DEG:
        i = int(np.argmax(tilt_deg))
        problems.append(f"it tilted {c.tilt_deg:.1f}° (limit {STILL_TILT_MAX_DEG:g}°), furthest at t = {t[i]:.1f} s")
        when.append(float(t[i]))
    if c.acc_std_mps2 > STILL_ACC_STD_MAX_MPS2:
        i = int(np.argmax(acc_dev))
        problems.append(
            f"its acceleration varied by {c.acc_std_mps2:.2f} m/s² RMS (limit {STILL_ACC_STD_MAX_MPS2:g}), "
            f"{acc_dev[i]:.2f} m/s² at t = {t[i]:.1f} s"
        )
        when.append(float(t[i]))
    if problems:
        raise CalibrationError(
            f"moved during the neutral window {_fmt_window(c.window)}: " + "; ".join(problems),
            sensor=sensor,
            window=c.window,
            advice=f"sit upright and still for at least {NEUTRAL_MIN_DURATION_S:g} s (breathing is fine) and "
            "calibrate again, or choose a still window (--neutral A:B)",
        )


# -- functional axis ---------------------------------------------------------------------------------


def functional_axis(
    t: FloatArray,
    gyro_radps: FloatArray,
    up0: FloatArray,
    *,
    start_s: float,
    end_s: float,
    gyro_bias_radps: FloatArray,
    sensor: str = "",
) -> FunctionalAxis:
    """Flexion axis from slow forward bends or cat/camel reps in ``[start_s, end_s]``.

    The principal axis of the bias-corrected angular velocity (eigenvector of its uncentred
    scatter matrix with the largest eigenvalue), projected ⊥ up0 and signed to the wearer's left
    (``a · (ẑ × up0) > 0``).

    Raises:
        CalibrationError: too little rotation, motion not mainly about one axis, or an axis that
            is not a flexion axis (near vertical, or > 30° from the nominal axis).
    """
    window = (float(start_s), float(end_s))
    tt, w = _window_rows(t, gyro_radps, window, sensor, what="functional")
    w = w - np.asarray(gyro_bias_radps, dtype=np.float64)
    dt = _sample_dt(tt)
    scatter = (w * dt[:, None]).T @ w
    evals, evecs = np.linalg.eigh(scatter)
    total = float(evals.sum())
    fraction = float(evals[-1] / total) if total > 0 else 0.0
    principal = evecs[:, -1]
    nominal = nominal_axis(up0, sensor=sensor)
    a = principal - (principal @ up0) * up0
    a_norm = float(np.linalg.norm(a))
    advice = (
        "after the neutral capture, do 3 slow forward bends (or cat/camel reps) from the hips and back, "
        "keeping the shoulders level and without twisting"
    )
    if a_norm < 0.5:
        raise CalibrationError(
            f"the movement in {_fmt_window(window)} turned mainly about the vertical "
            f"({math.degrees(math.acos(min(a_norm, 1.0))):.0f}° from horizontal): a twist, not a forward bend",
            sensor=sensor,
            window=window,
            advice=advice,
        )
    a /= a_norm
    if a @ nominal < 0:
        a = -a
    to_nominal = math.degrees(math.acos(float(np.clip(a @ nominal, -1.0, 1.0))))
    angle = np.degrees(np.cumsum((w @ a) * dt))
    rotation = float(np.ptp(angle)) if len(angle) else 0.0
    if rotation < FUNCTIONAL_MIN_ROTATION_DEG:
        raise CalibrationError(
            f"only {rotation:.1f}° of flexion in the functional window {_fmt_window(window)}, needs at least "
            f"{FUNCTIONAL_MIN_ROTATION_DEG:g}°",
            sensor=sensor,
            window=window,
            advice=advice,
        )
    if fraction < FUNCTIONAL_MIN_VARIANCE_FRACTION:
        raise CalibrationError(
            f"the movement in {_fmt_window(window)} was not about one axis: only {100 * fraction:.0f}% of the "
            f"rotation on the main axis (needs {100 * FUNCTIONAL_MIN_VARIANCE_FRACTION:.0f}%)",
            sensor=sensor,
            window=window,
            advice=advice,
        )
    if to_nominal > FUNCTIONAL_MAX_AXIS_TO_NOMINAL_DEG:
        raise CalibrationError(
            f"the movement in {_fmt_window(window)} turned about an axis {to_nominal:.0f}° from the sensor's "
            f"left–right axis (limit {FUNCTIONAL_MAX_AXIS_TO_NOMINAL_DEG:g}°): a side bend or twist, not a "
            "forward bend",
            sensor=sensor,
            window=window,
            advice=advice,
        )
    return FunctionalAxis(
        axis=a, variance_fraction=fraction, rotation_deg=rotation, axis_to_nominal_deg=to_nominal, window=window
    )


def find_functional_window(
    t: FloatArray,
    gyro_radps: FloatArray,
    *,
    after_s: float,
    gyro_bias_radps: FloatArray,
    up0: FloatArray | None = None,
    search_s: float = 180.0,
) -> tuple[float, float] | None:
    """Find slow forward bends or cat/camel reps after ``after_s`` (for ``--functional auto``).

    The bias-corrected rate about the flexion axis (the nominal axis of ``up0``; without ``up0``
    the principal axis of the searched span) is averaged over 1 s, signed, so that breathing and
    typing jitter cancel. Stretches above 1.5 °/s separated by pauses shorter than 3 s form one
    movement (bends and cat/camel pause ≤ 2 s between phases; the scripted movement ends with ≥ 3 s
    still). The first movement within ``search_s`` that rotates mainly about one axis (≥ 80 % of
    the energy), covers ≥ 5° and goes back and forth (it ends within half its range of where it
    started, over a path of at least three times its range: two reps or more) is returned with
    0.5 s of margin. With ``up0`` its axis must also be within 30° of the nominal axis. A slouch
    drifts one way and is not taken.

    Returns:
        (start_s, end_s), or None when there is no such movement.
    """
    tt = np.asarray(t, dtype=np.float64)
    sel = (tt >= after_s) & (tt <= after_s + search_s)
    tt = tt[sel]
    if len(tt) < 3:
        return None
    w = np.asarray(gyro_radps, dtype=np.float64)[sel] - np.asarray(gyro_bias_radps, dtype=np.float64)
    dt = _sample_dt(tt)
    if up0 is not None:
        probe = nominal_axis(np.asarray(up0, dtype=np.float64))
    else:
        probe = np.linalg.eigh((w * dt[:, None]).T @ w)[1][:, -1]
    n = max(1, round(1.0 / float(np.median(dt))))
    rate_dps = np.degrees(_moving_mean((w @ probe)[:, None], n)[:, 0])
    active = np.abs(rate_dps) > _ACTIVE_RATE_DPS
    for i0, i1 in _merged_runs(tt, active, _MERGE_GAP_S):
        seg = w[i0:i1]
        d = dt[i0:i1]
        evals, evecs = np.linalg.eigh((seg * d[:, None]).T @ seg)
        if evals.sum() <= 0 or evals[-1] / evals.sum() < FUNCTIONAL_MIN_VARIANCE_FRACTION:
            continue
        axis = evecs[:, -1]
        if up0 is not None:
            a = axis - (axis @ up0) * up0
            norm = float(np.linalg.norm(a))
            if norm < 0.5 or abs(float(a @ probe)) / norm < math.cos(math.radians(FUNCTIONAL_MAX_AXIS_TO_NOMINAL_DEG)):
                continue
        rate = seg @ axis
        angle = np.degrees(np.cumsum(rate * d))
        span = float(np.ptp(angle))
        path = float(np.degrees(np.sum(np.abs(rate) * d)))
        if span < FUNCTIONAL_MIN_ROTATION_DEG or path < 3.0 * span or abs(angle[-1] - angle[0]) > 0.5 * span:
            continue
        return float(max(tt[i0] - 0.5, after_s)), float(tt[i1 - 1] + 0.5)
    return None


def _merged_runs(t: FloatArray, mask: NDArray[np.bool_], gap_s: float) -> list[tuple[int, int]]:
    """Index ranges [i0, i1) of True runs of ``mask``, joining runs separated by < ``gap_s``."""
    m = np.asarray(mask, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], m, [False]]).astype(np.int8)))
    runs = list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
    merged: list[tuple[int, int]] = []
    for i0, i1 in runs:
        if merged and t[i0] - t[merged[-1][1] - 1] < gap_s:
            merged[-1] = (merged[-1][0], i1)
        else:
            merged.append((i0, i1))
    return merged


# -- accelerometer bias and scale ----------------------------------------------------------------------


def estimate_acc_bias(
    t: FloatArray,
    acc_mps2: FloatArray,
    gyro_radps: FloatArray,
    *,
    reference: tuple[float, float],
    functional: tuple[float, float],
    gyro_bias_radps: FloatArray,
    up0: FloatArray,
    axis: FloatArray,
) -> AccBiasEstimate | None:
    """Accelerometer bias in the sagittal plane from the quasi-static points of a functional movement.

    At rest ``f = g·u + b``. Between the reference (the still end of the neutral capture) and a
    hold k the gyro gives the rotation R_k (sensor k → sensor ref), so ``f_k − R_kᵀ f_ref =
    (I − R_kᵀ) b``. A rotation about the flexion axis leaves the bias along that axis unseen; the
    two components in the sagittal plane are solved by least squares over the holds.

    Args:
        t, acc_mps2, gyro_radps: the sensor's samples.
        reference: still window whose mean is the reference (e.g. the last 2 s of the neutral capture).
        functional: the functional movement's window.
        gyro_bias_radps: gyro bias removed before integrating.
        up0, axis: the calibration's up and flexion axis (the basis of the sagittal plane).

    Returns:
        The estimate, or None when fewer than two holds rotated ≥ 5° from the reference.
    """
    tt = np.asarray(t, dtype=np.float64)
    sel = (tt >= reference[0]) & (tt <= functional[1])
    tt = tt[sel]
    acc = np.asarray(acc_mps2, dtype=np.float64)[sel]
    w = np.asarray(gyro_radps, dtype=np.float64)[sel] - np.asarray(gyro_bias_radps, dtype=np.float64)
    if len(tt) < 10:
        return None
    ref = (tt >= reference[0]) & (tt <= reference[1])
    if not ref.any():
        return None
    rotations = _integrate_rotations(w, _sample_dt(tt))  # sensor(t) → sensor(t0)
    f_ref = acc[ref].mean(axis=0)
    r_ref = _mean_rotation(rotations[ref])
    rows: list[FloatArray] = []
    rhs: list[FloatArray] = []
    max_rot = 0.0
    basis = np.column_stack([up0, np.cross(axis, up0)])
    for i0, i1 in _holds(tt, w, functional):
        f_k = acc[i0:i1].mean(axis=0)
        rel = r_ref.T @ _mean_rotation(rotations[i0:i1])  # sensor(k) → sensor(ref)
        angle = math.degrees(math.acos(float(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0))))
        if angle < FUNCTIONAL_MIN_ROTATION_DEG:
            continue
        max_rot = max(max_rot, angle)
        rows.append((np.eye(3) - rel.T) @ basis)
        rhs.append(f_k - rel.T @ f_ref)
    if len(rows) < 2:
        return None
    design = np.concatenate(rows)
    target = np.concatenate(rhs)
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ beta
    return AccBiasEstimate(
        bias_mps2=basis @ beta,
        holds=len(rows),
        max_rotation_deg=max_rot,
        residual_mps2=float(np.sqrt(np.mean(resid * resid))),
    )


def multi_orientation_calibration(
    static_means_mps2: FloatArray, *, gravity_mps2: float = GRAVITY_MPS2
) -> tuple[FloatArray, FloatArray]:
    """Accelerometer bias and scale from still means in ≥ 6 orientations (six-position / ellipsoid fit).

    Model: ``measured = scale ⊙ f + bias`` with ``|f| = g``; solved by nonlinear least squares on
    ``|(measured − bias) / scale| − g``. Cross-axis terms are not modelled (they stay in the
    residual; with the six ±axis positions they do not bias the result to first order).

    Args:
        static_means_mps2: (K, 3) mean accelerometer readings, one per still orientation, K ≥ 6,
            spread over the sphere (best: each axis up and down).
        gravity_mps2: local gravity.

    Returns:
        (bias_mps2 (3,), scale (3,)) such that ``(acc − bias) / scale`` is corrected.

    Raises:
        CalibrationError: fewer than 6 orientations, or orientations that do not span all axes.
    """
    m = np.asarray(static_means_mps2, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 3 or m.shape[0] < 6:
        raise CalibrationError(
            f"a multi-orientation calibration needs ≥ 6 still orientations, got {m.shape[0] if m.ndim == 2 else 0}",
            advice="hold the sensor still with each axis pointing up and then down (six positions)",
        )
    u = m / np.linalg.norm(m, axis=1)[:, None]
    for axis_i, name in enumerate("xyz"):
        if u[:, axis_i].max() < 0.5 or u[:, axis_i].min() > -0.5:
            raise CalibrationError(
                f"the orientations do not point the {name} axis both up and down (within 60°)",
                advice="hold the sensor still with each axis pointing up and then down (six positions)",
            )

    def residual(p: FloatArray) -> FloatArray:
        out: FloatArray = np.linalg.norm((m - p[:3]) / p[3:], axis=1) - gravity_mps2
        return out

    fit = least_squares(residual, np.concatenate([np.zeros(3), np.ones(3)]), method="lm")
    p = np.asarray(fit.x, dtype=np.float64)
    return p[:3].copy(), p[3:].copy()


# -- one sensor, a rig -------------------------------------------------------------------------------


def calibrate_sensor(
    placement: str,
    t: FloatArray,
    acc_mps2: FloatArray,
    gyro_radps: FloatArray,
    *,
    neutral: tuple[float, float],
    functional: tuple[float, float] | Literal["auto"] | None,
    estimate_acc_bias_from_movement: bool = True,
    acc_bias_mps2: FloatArray | None = None,
    acc_scale: FloatArray | None = None,
) -> SensorCalibration:
    """Calibrate one sensor from a still neutral window and an optional functional movement.

    Args:
        placement: placement name (used in messages and stored).
        t: (N,) sample times, s.
        acc_mps2: (N, 3) specific force, sensor axes.
        gyro_radps: (N, 3) angular rate, sensor axes.
        neutral: (start_s, end_s) of the still neutral capture.
        functional: window of the functional movement, "auto" to look for one after the neutral
            window (nominal axis if none is found), or None for the nominal axis.
        estimate_acc_bias_from_movement: also estimate the sagittal accelerometer bias from the
            functional movement's holds (on by default: it halves the quasi-static inclination
            error on the simulator, docs/pipeline.md). An estimate above 100 mg (5σ of the
            datasheet offset) is discarded as implausible.
        acc_bias_mps2: per-sensor bias from :func:`multi_orientation_calibration`, removed first.
        acc_scale: per-sensor scale from :func:`multi_orientation_calibration`, removed first.

    Raises:
        CalibrationError: the neutral window is unusable, or an explicit functional window is.
    """
    tt = np.asarray(t, dtype=np.float64)
    gyro = np.asarray(gyro_radps, dtype=np.float64)
    bias0 = np.zeros(3) if acc_bias_mps2 is None else np.asarray(acc_bias_mps2, dtype=np.float64)
    scale0 = np.ones(3) if acc_scale is None else np.asarray(acc_scale, dtype=np.float64)
    acc = (np.asarray(acc_mps2, dtype=np.float64) - bias0) / scale0

    cap = capture_neutral(tt, acc, gyro, start_s=neutral[0], end_s=neutral[1], sensor=placement)
    up0 = cap.up0
    window: tuple[float, float] | None
    if functional == "auto":
        window = find_functional_window(tt, gyro, after_s=neutral[1], gyro_bias_radps=cap.gyro_bias_radps, up0=up0)
    else:
        window = functional
    fa: FunctionalAxis | None = None
    if window is not None:
        fa = functional_axis(
            tt,
            gyro,
            up0,
            start_s=window[0],
            end_s=window[1],
            gyro_bias_radps=cap.gyro_bias_radps,
            sensor=placement,
        )
    axis = fa.axis if fa is not None else nominal_axis(up0, sensor=placement)

    reference = (max(neutral[0], neutral[1] - 2.0), neutral[1])
    extra_bias = np.zeros(3)
    holds = 0
    if fa is not None and window is not None and estimate_acc_bias_from_movement:
        est = estimate_acc_bias(
            tt,
            acc,
            gyro,
            reference=reference,
            functional=window,
            gyro_bias_radps=cap.gyro_bias_radps,
            up0=up0,
            axis=axis,
        )
        if est is not None and float(np.linalg.norm(est.bias_mps2)) <= ACC_BIAS_MAX_MPS2:
            extra_bias = est.bias_mps2
            holds = est.holds
            up0 = _unit(cap.acc_mean_mps2 - extra_bias)
            axis = _unit(axis - (axis @ up0) * up0)
            acc = acc - extra_bias
    residual = None
    if window is not None:
        residual = _hold_residual_deg(tt, acc, gyro, reference, window, cap.gyro_bias_radps, up0, axis)

    quality = CalibrationQuality(
        still_gyro_rms_dps=cap.gyro_rms_dps,
        still_acc_std_mps2=cap.acc_std_mps2,
        neutral_duration_s=cap.duration_s,
        functional_variance_fraction=None if fa is None else fa.variance_fraction,
        functional_rotation_deg=None if fa is None else fa.rotation_deg,
        axis_to_nominal_deg=None if fa is None else fa.axis_to_nominal_deg,
        residual_deg=residual,
        acc_bias_holds=holds,
    )
    return SensorCalibration(
        placement=placement,
        up0=up0,
        flexion_axis=axis,
        gyro_bias_radps=cap.gyro_bias_radps,
        acc_bias_mps2=bias0 + scale0 * extra_bias,
        acc_scale=scale0,
        axis_source="functional" if fa is not None else "nominal",
        quality=quality,
        window=(float(neutral[0]), float(neutral[1])),
        functional_window=None if fa is None else fa.window,
    )


def calibrate_rig(
    data: Mapping[str, tuple[FloatArray, FloatArray, FloatArray]],
    *,
    neutral: tuple[float, float],
    functional: tuple[float, float] | Literal["auto"] | None,
    estimate_acc_bias_from_movement: bool = True,
    sensor_models: Mapping[str, tuple[FloatArray, FloatArray]] | None = None,
) -> RigCalibration:
    """Calibrate every sensor of a wearer on one neutral window and one functional movement.

    With ``functional="auto"`` the movement is looked for in each sensor and the union of the
    windows found is used for all (it is one movement of the body); a sensor whose axis cannot
    be found in it falls back to the nominal axis, and the reasons say so.

    Args:
        data: per placement, (t (N,), acc_mps2 (N, 3), gyro_radps (N, 3)) on one host clock.
        neutral: still neutral window (start_s, end_s).
        functional: functional window, "auto", or None.
        estimate_acc_bias_from_movement: see :func:`calibrate_sensor`.
        sensor_models: per placement, (acc_bias_mps2, acc_scale) from a multi-orientation calibration.

    Raises:
        CalibrationError: no sensors, a neutral window with motion in any sensor, or an explicit
            functional window that does not work for a sensor.
    """
    if not data:
        raise CalibrationError("no sensors to calibrate", window=neutral)
    models = sensor_models or {}
    reasons: list[str] = []
    window: tuple[float, float] | None = None
    if functional == "auto":
        found: list[tuple[float, float]] = []
        for name, (t, acc, gyro) in data.items():
            bias0, scale0 = models.get(name, (np.zeros(3), np.ones(3)))
            cap = capture_neutral(t, (acc - bias0) / scale0, gyro, start_s=neutral[0], end_s=neutral[1], sensor=name)
            hit = find_functional_window(t, gyro, after_s=neutral[1], gyro_bias_radps=cap.gyro_bias_radps, up0=cap.up0)
            if hit is not None:
                found.append(hit)
        if found:
            window = (min(w[0] for w in found), max(w[1] for w in found))
        else:
            reasons.append("no functional movement found: nominal axes assumed")
    else:
        window = functional

    cals: dict[str, SensorCalibration] = {}
    for name, (t, acc, gyro) in data.items():
        model = models.get(name)
        kwargs = {
            "neutral": neutral,
            "estimate_acc_bias_from_movement": estimate_acc_bias_from_movement,
            "acc_bias_mps2": None if model is None else model[0],
            "acc_scale": None if model is None else model[1],
        }
        try:
            cals[name] = calibrate_sensor(name, t, acc, gyro, functional=window, **kwargs)  # type: ignore[arg-type]
        except CalibrationError as exc:
            if functional != "auto" or window is None or exc.window != window:
                raise
            reasons.append(f"{name}: {exc.message}; nominal axis assumed")
            cals[name] = calibrate_sensor(name, t, acc, gyro, functional=None, **kwargs)  # type: ignore[arg-type]
    consistency = _axis_consistency_deg(cals)
    verdict, why = _verdict(cals, consistency)
    return RigCalibration(
        sensors=cals,
        functional_window=window if any(c.axis_source == "functional" for c in cals.values()) else None,
        axis_consistency_deg=consistency,
        verdict=verdict,
        reasons=tuple(reasons + why),
    )


#: Verdict limits: (good, fair) upper bounds of each figure.
_GOOD_FAIR = {
    "still_gyro_rms_dps": (1.0, STILL_GYRO_RMS_MAX_DPS),
    "functional_variance_fraction": (0.95, FUNCTIONAL_MIN_VARIANCE_FRACTION),  # lower bounds
    "axis_to_nominal_deg": (12.0, 20.0),
    "residual_deg": (1.0, 2.0),
    "axis_consistency_deg": (15.0, 25.0),
}


def _axis_consistency_deg(cals: Mapping[str, SensorCalibration]) -> float | None:
    """Largest pairwise difference of the sensors' axis headings, each relative to its skin normal.

    Every sensor's skin normal, projected horizontal, points backward in the world (the back faces
    one way), so the signed angle of the flexion axis from ``normalize(ẑ × up0)`` about up0 is that
    axis's horizontal direction in a frame the sensors share. Correct axes differ by the skin tilts.
    """
    headings = []
    for cal in cals.values():
        if cal.axis_source != "functional":
            continue
        nominal = nominal_axis(cal.up0, sensor=cal.placement)
        a = cal.flexion_axis
        headings.append(math.degrees(math.atan2(float(np.cross(nominal, a) @ cal.up0), float(nominal @ a))))
    if len(headings) < 2:
        return None
    return max(headings) - min(headings)


def _verdict(cals: Mapping[str, SensorCalibration], consistency: float | None) -> tuple[Verdict, list[str]]:
    level = 0  # 0 good, 1 fair, 2 poor
    why: list[str] = []

    def grade(name: str, what: str, value: float | None, lower_is_better: bool = True) -> None:
        nonlocal level
        if value is None:
            return
        good, fair = _GOOD_FAIR[what]
        bad_good = value > good if lower_is_better else value < good
        bad_fair = value > fair if lower_is_better else value < fair
        if bad_fair:
            level = max(level, 2)
            why.append(f"{name}: {what} = {value:.3g} (poor beyond {fair:g})")
        elif bad_good:
            level = max(level, 1)
            why.append(f"{name}: {what} = {value:.3g} (good within {good:g})")

    for name, cal in cals.items():
        q = cal.quality
        grade(name, "still_gyro_rms_dps", q.still_gyro_rms_dps)
        grade(name, "functional_variance_fraction", q.functional_variance_fraction, lower_is_better=False)
        grade(name, "axis_to_nominal_deg", q.axis_to_nominal_deg)
        grade(name, "residual_deg", q.residual_deg)
        if cal.axis_source == "nominal":
            level = max(level, 1)
            why.append(f"{name}: nominal axis (no functional movement); skin tilt of the sensor is not corrected")
    grade("rig", "axis_consistency_deg", consistency)
    verdict: Verdict = "good" if level == 0 else "fair" if level == 1 else "poor"
    return verdict, why


def _hold_residual_deg(
    t: FloatArray,
    acc: FloatArray,
    gyro: FloatArray,
    reference: tuple[float, float],
    functional: tuple[float, float],
    gyro_bias: FloatArray,
    up0: FloatArray,
    axis: FloatArray,
) -> float | None:
    """RMS of (accelerometer inclination − gyro rotation about the axis) at the functional holds."""
    sel = (t >= reference[0]) & (t <= functional[1])
    tt, f, w = t[sel], acc[sel], gyro[sel] - gyro_bias
    ref = tt <= reference[1]
    if len(tt) < 10 or not ref.any():
        return None
    angle = np.degrees(np.cumsum((w @ axis) * _sample_dt(tt)))
    angle_ref = float(angle[ref].mean())
    incl_ref = float(inclination_change_deg(f[ref].mean(axis=0), up0, axis))
    diffs = []
    for i0, i1 in _holds(tt, w, functional):
        incl = float(inclination_change_deg(f[i0:i1].mean(axis=0), up0, axis)) - incl_ref
        diffs.append(incl - (float(angle[i0:i1].mean()) - angle_ref))
    if not diffs:
        return None
    return float(np.sqrt(np.mean(np.square(diffs))))


def _holds(t: FloatArray, w: FloatArray, window: tuple[float, float]) -> list[tuple[int, int]]:
    """Index ranges of quasi-static stretches (≥ 0.3 s) inside ``window``, for rates ``w`` (bias removed)."""
    dt = _sample_dt(t)
    n = max(1, round(0.3 / float(np.median(dt))))
    rms = np.degrees(np.sqrt(_moving_mean(np.sum(w * w, axis=1)[:, None], n)[:, 0]))
    quiet = (rms < FUNCTIONAL_HOLD_RATE_MAX_DPS) & (t >= window[0]) & (t <= window[1])
    edges = np.flatnonzero(np.diff(np.concatenate([[False], quiet, [False]]).astype(np.int8)))
    # Trim the ends: the slow tail of a move still accelerates the sensor on its lever arm
    # (≈ 10 mg at 2.5 °/s for a 30° bend over 3 s, 0.4 m from the hip).
    trim = max(1, round(_HOLD_TRIM_S / float(np.median(dt))))
    out = []
    for i0, i1 in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        j0, j1 = i0 + trim, i1 - trim
        if j1 > j0 and t[j1 - 1] - t[j0] >= 0.3:
            out.append((j0, j1))
    return out


# -- helpers -----------------------------------------------------------------------------------------


def _window(
    t: FloatArray, acc: FloatArray, gyro: FloatArray, window: tuple[float, float], sensor: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    tt = np.asarray(t, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    g = np.asarray(gyro, dtype=np.float64)
    if not (tt.ndim == 1 and a.shape == (len(tt), 3) and g.shape == (len(tt), 3)):
        raise ValueError(f"t, acc, gyro must be (N,), (N, 3), (N, 3); got {tt.shape}, {a.shape}, {g.shape}")
    if window[1] <= window[0]:
        raise CalibrationError(
            f"neutral window {_fmt_window(window)} is empty", sensor=sensor, window=window, advice="give A:B with A < B"
        )
    sel = (tt >= window[0]) & (tt <= window[1])
    if not (np.isfinite(a[sel]).all() and np.isfinite(g[sel]).all()):
        raise CalibrationError(
            f"window {_fmt_window(window)} contains NaN or infinite samples", sensor=sensor, window=window
        )
    return tt[sel], a[sel], g[sel]


def _window_rows(
    t: FloatArray, x: FloatArray, window: tuple[float, float], sensor: str, *, what: str
) -> tuple[FloatArray, FloatArray]:
    tt = np.asarray(t, dtype=np.float64)
    sel = (tt >= window[0]) & (tt <= window[1])
    if sel.sum() < 3:
        raise CalibrationError(
            f"{what} window {_fmt_window(window)} holds no data",
            sensor=sensor,
            window=window,
            advice=f"choose a {what} window inside the recording",
        )
    return tt[sel], np.asarray(x, dtype=np.float64)[sel]


def _sample_dt(t: FloatArray) -> FloatArray:
    """Per-sample durations (s); the first sample gets the median step, gaps are capped at 5 steps."""
    if len(t) < 2:
        return np.zeros(len(t))
    d = np.diff(t)
    med = float(np.median(d))
    out: FloatArray = np.concatenate([[med], np.minimum(d, 5.0 * med)])
    return out


def _moving_mean(x: FloatArray, n: int) -> FloatArray:
    """Centred moving mean over ``n`` samples of each column of (N, k) ``x``, shrinking at the ends."""
    if n <= 1 or len(x) == 0:
        return np.asarray(x, dtype=np.float64)
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    idx = np.arange(len(x))
    lo = np.clip(idx - n // 2, 0, len(x))
    hi = np.clip(idx - n // 2 + n, 0, len(x))
    out: FloatArray = (c[hi] - c[lo]) / (hi - lo)[:, None]
    return out


def _integrate_rotations(w: FloatArray, dt: FloatArray) -> FloatArray:
    """Orientations (N, 3, 3), sensor(t) → sensor(t0), from body rates ``w`` (rad/s) and steps ``dt``.

    The cumulative quaternion product is a Hillis–Steele prefix scan: log2(N) vectorised steps.
    """
    rv = w * dt[:, None]
    angle = np.linalg.norm(rv, axis=1)
    half = 0.5 * angle
    k = np.where(angle > 1e-12, np.sin(half) / np.maximum(angle, 1e-300), 0.5)
    q = np.column_stack([np.cos(half), rv * k[:, None]])
    step = 1
    while step < len(q):
        q[step:] = _qmul(q[:-step], q[step:])
        step *= 2
    q /= np.linalg.norm(q, axis=1)[:, None]
    w0, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w0), 2 * (x * z + y * w0)], -1),
            np.stack([2 * (x * y + z * w0), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w0)], -1),
            np.stack([2 * (x * z - y * w0), 2 * (y * z + x * w0), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _qmul(p: FloatArray, q: FloatArray) -> FloatArray:
    """Hamilton products of quaternion rows (w, x, y, z): (N, 4) × (N, 4)."""
    pw, px, py, pz = p.T
    qw, qx, qy, qz = q.T
    return np.column_stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ]
    )


def _mean_rotation(r: FloatArray) -> FloatArray:
    """Chordal mean of rotation matrices (N, 3, 3): the SVD projection of their average."""
    u, _, vt = np.linalg.svd(r.mean(axis=0))
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)))])
    out: FloatArray = u @ d @ vt
    return out


def _unit(v: FloatArray) -> FloatArray:
    out: FloatArray = np.asarray(v, dtype=np.float64) / float(np.linalg.norm(v))
    return out


def _fmt_window(window: tuple[float, float]) -> str:
    return f"{window[0]:.1f}–{window[1]:.1f} s"


def _vec_json(v: FloatArray) -> list[JsonValue]:
    return [float(x) for x in np.asarray(v, dtype=np.float64)]


def _vec(value: JsonValue) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise ValueError(f"expected 3 finite numbers, got {value!r}")
    return arr


def _pair(value: JsonValue) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"expected [start_s, end_s], got {value!r}")
    return _float(value[0]), _float(value[1])


def _float(value: JsonValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _opt_float(value: JsonValue) -> float | None:
    return None if value is None else _float(value)
