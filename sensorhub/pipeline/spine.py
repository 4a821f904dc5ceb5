"""Per-sensor pipelines and the whole spine pipeline: ImuBatch in, SpineFrame out (DESIGN §2).

``SensorPipeline``: accelerometer bias/scale removed (calibration) → 6D orientation (VQF or the
complementary fallback, gyro bias seeded from the neutral capture) → the sagittal inclination
change of the segment under the sensor (calibration's up₀ and flexion axis).

``SpinePipeline``: one SensorPipeline per placement → :class:`~sensorhub.pipeline.rig.Rig`.
The live service, ``analyze`` and replay all run this same object; feeding a recording whole or
notification by notification gives the same angles (tested).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sensorhub.errors import InputError
from sensorhub.model import ImuBatch, Placement, SensorAngles, SpineFrame
from sensorhub.pipeline.calibration import RigCalibration, SensorCalibration
from sensorhub.pipeline.orientation import Estimator, make_estimator
from sensorhub.pipeline.rig import Rig, RigSettings

__all__ = ["SensorPipeline", "SpinePipeline", "concat_frames"]


class SensorPipeline:
    """One sensor: corrected IMU samples → orientation → sagittal inclination change (deg)."""

    def __init__(self, calibration: SensorCalibration, estimator: Estimator) -> None:
        self.calibration = calibration
        self.estimator = estimator
        estimator.set_gyro_bias(np.asarray(calibration.gyro_bias_radps, dtype=np.float64))

    def process(self, batch: ImuBatch) -> SensorAngles:
        """Angles for one batch of this sensor's samples."""
        acc = self.calibration.correct_acc(batch.acc)
        out = self.estimator.process(batch.t, acc, batch.gyro, batch.seq)
        inclination = self.calibration.inclination_deg(out.up)
        return SensorAngles(batch.sensor_id, batch.placement, out.t, inclination, out.rest)


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

    def flush(self) -> SpineFrame:
        """Emit what is left at the end of a recording."""
        return self.rig.flush()


def concat_frames(frames: list[SpineFrame]) -> SpineFrame:
    """Join consecutive SpineFrames into one."""
    if not frames:
        return SpineFrame(t=np.empty(0))

    def cat(name: str) -> np.ndarray | None:
        parts = [getattr(f, name) for f in frames]
        if parts[0] is None:
            return None
        return np.concatenate(parts)

    return SpineFrame(
        t=np.concatenate([f.t for f in frames]),
        thoracic_flexion_deg=cat("thoracic_flexion_deg"),
        lumbar_flexion_deg=cat("lumbar_flexion_deg"),
        trunk_flexion_deg=cat("trunk_flexion_deg"),
        pelvis_tilt_deg=cat("pelvis_tilt_deg"),
        spine_flexion_deg=cat("spine_flexion_deg"),
    )
