"""The wearer's current calibration, kept between runs.

``sensorhub calibrate`` and every calibration the service completes (at start-up or on
``cmd/calibrate``) write it; ``sensorhub run`` starts with it when it covers the configured
placements, so a wearer calibrates once, not every morning. One JSON file per wearer beside the
session database: ``<store dir>/calibrations/<wearer>.json``, written atomically (a temporary
file, then a rename), so a crash leaves the old calibration or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from sensorhub.config import Config
from sensorhub.errors import CalibrationError
from sensorhub.pipeline.calibration import RigCalibration

__all__ = ["calibration_path", "load_calibration", "save_calibration"]

log = logging.getLogger(__name__)

_FORMAT = "sensorhub-calibration"
_VERSION = 1
_MAX_BYTES = 1_000_000  # a rig calibration is a few kB; anything larger is not one of ours


def calibration_path(config: Config) -> Path:
    """Where the wearer's calibration lives: ``<store dir>/calibrations/<wearer>.json``.

    The wearer id is made file-name safe; an id that had to be changed gets a short hash so that
    two wearers never share a file.
    """
    wearer = config.wearer.id
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", wearer).strip(".") or "wearer"
    if safe != wearer:
        safe = f"{safe[:40]}-{hashlib.sha256(wearer.encode()).hexdigest()[:8]}"
    return config.storage.path.parent / "calibrations" / f"{safe}.json"


def save_calibration(path: Path, calibration: RigCalibration, *, wearer: str) -> None:
    """Write ``calibration`` to ``path`` atomically."""
    doc = {
        "format": _FORMAT,
        "version": _VERSION,
        "wearer": wearer,
        "saved_epoch": time.time(),
        "calibration": calibration.to_json(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_calibration(path: Path, placements: Iterable[str]) -> RigCalibration | None:
    """The calibration stored at ``path`` when it calibrates exactly ``placements``; None when there is none.

    Raises:
        CalibrationError: the file exists but is not a readable calibration, or it calibrates other
            sensors than the configured ones (the message says which, and to calibrate again).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > _MAX_BYTES:
        raise CalibrationError(f"{path}: {size} bytes is too large for a calibration file", advice="calibrate again")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot be read: {exc}", advice="calibrate again") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(doc.get("calibration"), dict):
        raise CalibrationError(f"{path}: not a sensorhub calibration file", advice="calibrate again")
    if doc.get("version") != _VERSION:
        raise CalibrationError(f"{path}: calibration format version {doc.get('version')!r} is not supported")
    calibration = RigCalibration.from_json(doc["calibration"])
    wanted = sorted(placements)
    have = sorted(calibration.sensors)
    if have != wanted:
        raise CalibrationError(
            f"{path}: calibrates {', '.join(have) or 'no sensors'}, the config has {', '.join(wanted)}",
            advice="run sensorhub calibrate --config FILE",
        )
    return calibration
