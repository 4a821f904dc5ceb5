"""Make docs/sessions-report.png: a simulated desk session with two cat/camel sets, recorded and reported.

The wearer (desk_session, seed 0, three sensors) works at the desk for 20 minutes with five
slouches, then does two cat/camel sets started and stopped from a dashboard (``cmd/exercise``).
Everything goes through the live path into a session store, then ``write_report`` draws it.

Run: ``.venv/bin/python docs/examples/session_report.py [OUT.png]`` (about two minutes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from sensorhub.sim.scenarios import build_script, cat_camel
from sensorhub.sim.wearer import WearerConfig
from sensorhub.store import SessionStore
from sensorhub.store.report import write_report
from sensorhub.store.simulated import record_simulation


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "sessions-report.png"
    script = build_script("desk_session", 0, "bends")
    before = len(script.marks)
    cat_camel(script, np.random.default_rng(1))
    sets = [(m.start_t - 2.0, m.end_t + 3.0) for m in script.marks[before:] if m.type == "set"]
    with tempfile.TemporaryDirectory() as tmp, SessionStore(Path(tmp) / "sessions.db") as store:
        info = record_simulation(
            store, WearerConfig(scenario="desk_session"), script=script, wearer="alex", exercise=sets
        )
        write_report(store, info.id, out, progress=False)
    print(out)


if __name__ == "__main__":
    main()
