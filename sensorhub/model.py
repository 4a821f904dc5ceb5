"""Typed records that cross module boundaries, and the units they carry.

Inside the program: seconds, m/s², rad/s (DESIGN §3). Degrees appear only in outputs
and in names that say so (``thoracic_flexion_deg``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ANGLE_COLUMNS",
    "GRAVITY_MPS2",
    "Event",
    "FloatArray",
    "ImuBatch",
    "IntArray",
    "JsonValue",
    "Placement",
    "Posture",
    "SensorAngles",
    "SpineFrame",
]

#: Standard gravity (CGPM 1901), used for every g <-> m/s² conversion.
GRAVITY_MPS2 = 9.80665

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


class Placement(enum.StrEnum):
    """Where a sensor sits on the back (DESIGN §3)."""

    UPPER_THORACIC = "upper_thoracic"  # T2–T4, between the shoulder blades
    THORACOLUMBAR = "thoracolumbar"  # T12–L1
    SACRAL = "sacral"  # S1–S2


class Posture(enum.StrEnum):
    """Posture labels (DESIGN §3)."""

    UPRIGHT = "upright"
    SLOUCHED = "slouched"
    LEANING_FORWARD = "leaning_forward"
    RECLINED = "reclined"
    STANDING = "standing"
    MOVING = "moving"
    EXERCISING = "exercising"
    UNCALIBRATED = "uncalibrated"
    UNKNOWN = "unknown"


#: Leading columns of the angle CSV (DESIGN §6), in order.
ANGLE_COLUMNS = (
    "t",
    "thoracic_flexion_deg",
    "lumbar_flexion_deg",
    "trunk_flexion_deg",
    "pelvis_tilt_deg",
    "posture",
)


def _as_float_array(value: object, name: str, shape_tail: tuple[int, ...]) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N{''.join(f', {d}' for d in shape_tail)}), got {arr.shape}")
    return arr


@dataclass(frozen=True, slots=True)
class ImuBatch:
    """A block of IMU samples from one sensor, in the sensor frame.

    Attributes:
        sensor_id: stable id of the physical sensor (address or configured name).
        placement: where it sits on the back.
        t: (N,) sample times, seconds on the host session clock, increasing.
        acc: (N, 3) specific force, m/s², sensor frame.
        gyro: (N, 3) angular rate, rad/s, sensor frame.
        seq: (N,) device sample counter where the device sends one (gaps are read from it), else None.
    """

    sensor_id: str
    placement: Placement
    t: FloatArray
    acc: FloatArray
    gyro: FloatArray
    seq: IntArray | None = None

    def __post_init__(self) -> None:
        t = _as_float_array(self.t, "t", ())
        acc = _as_float_array(self.acc, "acc", (3,))
        gyro = _as_float_array(self.gyro, "gyro", (3,))
        if not (len(t) == len(acc) == len(gyro)):
            raise ValueError(f"t, acc, gyro lengths differ: {len(t)}, {len(acc)}, {len(gyro)}")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "acc", acc)
        object.__setattr__(self, "gyro", gyro)
        if self.seq is not None:
            seq = np.asarray(self.seq, dtype=np.int64)
            if seq.shape != t.shape:
                raise ValueError(f"seq must have shape {t.shape}, got {seq.shape}")
            object.__setattr__(self, "seq", seq)

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def join(cls, batches: Sequence[ImuBatch]) -> ImuBatch:
        """One batch from consecutive batches of one sensor (``seq`` kept only if all have it)."""
        if not batches:
            raise ValueError("nothing to join")
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        seqs = [b.seq for b in batches if b.seq is not None]
        # The parts were validated when they were made, so the joined batch skips __post_init__
        # (this runs for every sensor on every service tick).
        joined = object.__new__(cls)
        for name, value in (
            ("sensor_id", first.sensor_id),
            ("placement", first.placement),
            ("t", np.concatenate([b.t for b in batches])),
            ("acc", np.concatenate([b.acc for b in batches])),
            ("gyro", np.concatenate([b.gyro for b in batches])),
            ("seq", np.concatenate(seqs) if len(seqs) == len(batches) else None),
        ):
            object.__setattr__(joined, name, value)
        return joined

    def cut(self, start: int, stop: int) -> ImuBatch:
        """Samples ``start:stop`` as a batch (views of this one's arrays, not validated again)."""
        part = object.__new__(type(self))
        for name, value in (
            ("sensor_id", self.sensor_id),
            ("placement", self.placement),
            ("t", self.t[start:stop]),
            ("acc", self.acc[start:stop]),
            ("gyro", self.gyro[start:stop]),
            ("seq", None if self.seq is None else self.seq[start:stop]),
        ):
            object.__setattr__(part, name, value)
        return part


@dataclass(frozen=True, slots=True)
class SensorAngles:
    """One sensor's sagittal inclination change relative to its calibrated neutral.

    Attributes:
        sensor_id: id of the physical sensor.
        placement: where it sits.
        t: (N,) host seconds, the sensor's own sample times.
        inclination_deg: (N,) degrees, + = forward flexion of the segment under the sensor.
        rest: (N,) whether the orientation estimator deems the sensor at rest.
        movement: (N,) running RMS of the sensor's movement (dimensionless, see
            :class:`~sensorhub.pipeline.spine.MovementMeter`), or None when not measured.
    """

    sensor_id: str
    placement: Placement
    t: FloatArray
    inclination_deg: FloatArray
    rest: NDArray[np.bool_]
    movement: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def then(self, later: SensorAngles) -> SensorAngles:
        """This sensor's angles followed by ``later`` ones (movement kept only if both have it)."""
        move = None
        if self.movement is not None and later.movement is not None:
            move = np.concatenate((self.movement, later.movement))
        return SensorAngles(
            self.sensor_id,
            self.placement,
            np.concatenate((self.t, later.t)),
            np.concatenate((self.inclination_deg, later.inclination_deg)),
            np.concatenate((self.rest, later.rest)),
            move,
        )


@dataclass(frozen=True, slots=True)
class SpineFrame:
    """Spine angles on a common time grid (output of the rig).

    Each angle is (N,) degrees relative to the calibrated neutral, positive = flexion; None when the
    present sensors cannot give it at all, NaN in a sample where a sensor has a gap.

    ``movement`` is (N,) movement intensity, dimensionless: the largest of the sensors' running RMS
    of tilt rate (per 30 °/s) and gravity-free acceleration (per 3 m/s²), about 0.1–0.2 sitting
    still or typing and near 1 walking (docs/posture.md); None when the sensors' pipelines do not
    measure it, NaN where no sensor has data.
    """

    t: FloatArray
    thoracic_flexion_deg: FloatArray | None = None
    lumbar_flexion_deg: FloatArray | None = None
    trunk_flexion_deg: FloatArray | None = None
    pelvis_tilt_deg: FloatArray | None = None
    spine_flexion_deg: FloatArray | None = None
    movement: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened over an interval: a slouch episode, a rep, a set, a break.

    Attributes:
        type: "slouch", "break", "rep", "set", ...
        start_t: seconds on the clock of the data it was found in.
        end_t: seconds, or None while the episode is still open.
        data: JSON-ready details (e.g. ``{"rom_deg": {...}, "too_fast": False}``).
    """

    type: str
    start_t: float
    end_t: float | None = None
    data: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        """The DESIGN §6 events-JSON object for this event."""
        out: dict[str, JsonValue] = {
            "type": self.type,
            "start_t": _json_float(self.start_t),
            "end_t": None if self.end_t is None else _json_float(self.end_t),
        }
        for key, value in self.data.items():
            if key not in out:
                out[key] = value
        return out


def _json_float(value: float, ndigits: int = 4) -> float | None:
    return None if math.isnan(value) else round(float(value), ndigits)
