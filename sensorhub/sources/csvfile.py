"""Read the raw IMU CSV of DESIGN §6 (``t,sensor,ax,ay,az,gx,gy,gz``) with row-level errors.

Rows of different sensors may interleave; each sensor's times must increase. Every problem is
reported as a :class:`~sensorhub.errors.DataFormatError` naming the file and the row (line
number, header = 1), so ``analyze`` can exit 2 with one clear line.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorhub.errors import DataFormatError
from sensorhub.model import FloatArray, ImuBatch, Placement

__all__ = ["IMU_COLUMNS", "ImuRecording", "read_imu_csv"]

IMU_COLUMNS = ("t", "sensor", "ax", "ay", "az", "gx", "gy", "gz")

#: The recording is refused past this many rows (about 12 h of three sensors at 100 Hz): the
#: reader keeps everything in memory.
MAX_ROWS = 15_000_000


@dataclass(frozen=True, slots=True)
class SensorSeries:
    """One sensor's samples from a CSV: (N,) t, (N, 3) acc m/s², (N, 3) gyro rad/s."""

    placement: Placement
    t: FloatArray
    acc: FloatArray
    gyro: FloatArray


@dataclass(frozen=True, slots=True)
class ImuRecording:
    """A raw IMU recording: per-placement series, in the order the placements first appear."""

    path: str
    series: dict[Placement, SensorSeries]

    @property
    def start_t(self) -> float:
        return min(float(s.t[0]) for s in self.series.values())

    @property
    def end_t(self) -> float:
        return max(float(s.t[-1]) for s in self.series.values())

    def batches(self, block_s: float = 0.5) -> Iterator[ImuBatch]:
        """The recording as ImuBatches in time order: blocks of ``block_s`` seconds, sensors interleaved."""
        edges = np.arange(self.start_t, self.end_t + block_s, block_s)
        index = {p: np.searchsorted(s.t, edges, side="left") for p, s in self.series.items()}
        for k in range(len(edges)):
            for placement, s in self.series.items():
                i0 = index[placement][k]
                i1 = index[placement][k + 1] if k + 1 < len(edges) else len(s.t)
                if i1 > i0:
                    yield ImuBatch(f"csv-{placement.value}", placement, s.t[i0:i1], s.acc[i0:i1], s.gyro[i0:i1])


def read_imu_csv(path: Path) -> ImuRecording:
    """Read and validate a raw IMU CSV."""
    name = str(path)
    columns: dict[str, list[list[float]]] = {}
    last_t: dict[str, tuple[float, int]] = {}
    allowed = {p.value for p in Placement}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataFormatError("empty file; expected a header " + ",".join(IMU_COLUMNS), path=name, row=1)
        header = [h.strip() for h in header]
        missing = [c for c in IMU_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(
                f"missing column(s) {', '.join(missing)}; the header must contain " + ",".join(IMU_COLUMNS),
                path=name,
                row=1,
            )
        idx = [header.index(c) for c in IMU_COLUMNS]
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line_no > MAX_ROWS:
                raise DataFormatError(f"more than {MAX_ROWS} rows; split the recording", path=name, row=line_no)
            try:
                cells = [row[i].strip() for i in idx]
            except IndexError:
                raise DataFormatError(
                    f"{len(row)} fields, expected at least {len(header)}", path=name, row=line_no
                ) from None
            sensor = cells[1]
            if sensor not in allowed:
                raise DataFormatError(
                    f"unknown sensor {sensor!r}; the sensor column holds a placement: " + ", ".join(sorted(allowed)),
                    path=name,
                    row=line_no,
                )
            try:
                values = [float(cells[0]), *(float(c) for c in cells[2:])]
            except ValueError:
                raise DataFormatError("a value is not a number", path=name, row=line_no) from None
            if not all(math.isfinite(v) for v in values):
                raise DataFormatError("NaN or infinite value", path=name, row=line_no)
            prev = last_t.get(sensor)
            if prev is not None and values[0] <= prev[0]:
                raise DataFormatError(
                    f"time goes backwards for sensor {sensor} ({values[0]:g} s after {prev[0]:g} s on row {prev[1]})",
                    path=name,
                    row=line_no,
                )
            last_t[sensor] = (values[0], line_no)
            columns.setdefault(sensor, []).append(values)
    if not columns:
        raise DataFormatError("no data rows", path=name, row=2)
    series: dict[Placement, SensorSeries] = {}
    for sensor, rows in columns.items():
        arr = np.asarray(rows, dtype=np.float64)
        placement = Placement(sensor)
        series[placement] = SensorSeries(placement, arr[:, 0], arr[:, 1:4], arr[:, 4:7])
    return ImuRecording(name, series)
