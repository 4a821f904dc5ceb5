"""The optional C kernel of the streaming pipeline, and which implementation runs.

``sensorhub/pipeline/_kernel.c`` does the per-sample loops of one sensor's streaming step (the
accelerometer correction, the swivel gate, the estimator's plain-batch checks, the up vector, the
inclination and the movement meter) with the same arithmetic as the Python code, which stays the
reference and the fallback. It is compiled at install time when a C compiler is available
(hatch_build.py); without it everything runs in Python, with the same results and a higher
streaming cost (docs/performance.md).

``SENSORHUB_KERNEL=0`` in the environment turns it off (read at import).
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["KERNEL_VERSION", "kernel", "status"]

KERNEL_VERSION = 2  # must match _kernel.c; a stale build is not used

_status: str
kernel: ModuleType | None
try:
    from sensorhub.pipeline import _kernel as _loaded
except ImportError:
    kernel = None
    _status = "pure Python (the C kernel is not built: reinstall with a C compiler)"
else:
    if getattr(_loaded, "KERNEL_VERSION", None) != KERNEL_VERSION:
        kernel = None
        _status = (
            f"pure Python (the C kernel build is stale: version {getattr(_loaded, 'KERNEL_VERSION', None)}, "
            f"expected {KERNEL_VERSION}; reinstall)"
        )
    elif os.environ.get("SENSORHUB_KERNEL", "1") == "0":
        kernel = None
        _status = "pure Python (SENSORHUB_KERNEL=0)"
    else:
        kernel = _loaded
        _status = "C kernel"


def status() -> str:
    """Which implementation the streaming loops use, and why."""
    return _status
