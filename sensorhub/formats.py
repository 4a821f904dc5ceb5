"""Writers of the DESIGN §6 output files shared by ``analyze``, ``simulate`` and (later) export.

- Angle CSV: ``t,thoracic_flexion_deg,lumbar_flexion_deg,trunk_flexion_deg,pelvis_tilt_deg,posture``
  then any extra columns; an empty cell where a value is not available (None or NaN).
- Events JSON: ``{"events": [...]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from sensorhub.model import ANGLE_COLUMNS, Event, FloatArray, JsonValue

__all__ = ["AngleCsvWriter", "write_events_json"]

_ANGLES = ANGLE_COLUMNS[1:5]


class AngleCsvWriter:
    """Streams blocks of rows into an angle CSV (header written on open).

    Args:
        fh: open text file.
        extra_columns: names of the columns after ``posture``, in order.
        decimals: digits after the point for angles (time always gets 4).
    """

    def __init__(self, fh: TextIO, extra_columns: Sequence[str] = (), *, decimals: int = 3) -> None:
        self._fh = fh
        self._extra = tuple(extra_columns)
        self._fmt = f"{{:.{decimals}f}}"
        fh.write(",".join((*ANGLE_COLUMNS, *self._extra)) + "\n")

    def write(
        self,
        t: FloatArray,
        angles: Mapping[str, FloatArray | None],
        posture: Sequence[str],
        extra: Mapping[str, FloatArray | Sequence[str] | None] | None = None,
    ) -> None:
        """Write one block: ``angles`` keyed by the angle column names, ``extra`` by the extra names."""
        extra = extra or {}
        n = len(t)
        columns = [self._cells(angles.get(name), n) for name in _ANGLES]
        more = [self._cells(extra.get(name), n) for name in self._extra]
        self._fh.writelines(
            ",".join((f"{t[i]:.4f}", *(c[i] for c in columns), posture[i], *(c[i] for c in more))) + "\n"
            for i in range(len(t))
        )

    def _cells(self, values: FloatArray | Sequence[str] | None, n: int) -> list[str]:
        if values is None:
            return [""] * n
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            return ["" if not math.isfinite(v) else self._fmt.format(v) for v in values.tolist()]
        return [str(v) for v in values]


def write_events_json(path: Path, events: Sequence[Event], **extra: JsonValue) -> None:
    """The DESIGN §6 events JSON (``{"events": [...]}`` plus optional extra keys)."""
    doc: dict[str, JsonValue] = {"events": [e.to_json() for e in events]}
    doc.update(extra)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
