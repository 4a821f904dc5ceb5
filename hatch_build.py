"""Hatchling build hook: compiles the optional C kernel ``sensorhub.pipeline._kernel``.

The kernel runs the per-sample loops of the streaming pipeline (sensorhub/pipeline/_kernel.c,
docs/performance.md). It is optional: when no C compiler or no Python headers are found, the
wheel is built without it, with a warning, and sensorhub runs the same arithmetic in Python
(``sensorhub.pipeline.kernel.status()`` says which one runs). ``SENSORHUB_NO_KERNEL=1`` skips it.

An editable install (``pip install -e .``, what ``make`` does) compiles it into the source tree,
next to the C file; a regular wheel carries it and gets a platform tag.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_NAME = "sensorhub.pipeline._kernel"
_SOURCE = "sensorhub/pipeline/_kernel.c"


def _compile(root: Path, out_dir: Path | None) -> Path:
    """Compile the kernel; into the source tree when ``out_dir`` is None. Returns the module's path."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    # No fused multiply-add: every operation rounds as Python's float does, so the C loops give the
    # same numbers as the pure-Python reference (tests/test_kernel.py).
    flags = ["/O2", "/fp:strict"] if sys.platform == "win32" else ["-O2", "-ffp-contract=off"]
    ext = Extension(_NAME, [_SOURCE], extra_compile_args=flags)
    dist = Distribution({"name": "sensorhub-kernel", "ext_modules": [ext]})
    dist.script_name = "hatch_build.py"
    cmd = build_ext(dist)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cmd.build_temp = tmp
            if out_dir is None:
                cmd.inplace = True
            else:
                cmd.build_lib = str(out_dir)
            cmd.ensure_finalized()
            cmd.run()
            return Path(root / cmd.get_ext_fullpath(_NAME)) if out_dir is None else Path(cmd.get_ext_fullpath(_NAME))
    finally:
        os.chdir(cwd)


class KernelBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("SENSORHUB_NO_KERNEL") == "1":
            return
        root = Path(self.root)
        editable = version == "editable"
        out_dir = None if editable else Path(self.directory) / "kernel-build"
        try:
            path = _compile(root, out_dir)
        except Exception as exc:  # any failure leaves the pure-Python pipeline
            self.app.display_warning(
                f"sensorhub: the C kernel was not built ({type(exc).__name__}: {exc}); "
                "the pipeline runs in pure Python (same results, slower streaming)"
            )
            return
        if not editable:
            build_data["force_include"][str(path)] = f"sensorhub/pipeline/{path.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
