"""The service end to end: the demo through a real mosquitto, and clean stops of ``sensorhub run``."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from brokers import BrokerHandle, Subscriber, subscribe_collect

from sensorhub.runner import DemoOptions, run_demo
from sensorhub.store import SessionStore
from sensorhub.store.replay import replay

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "mqtt" / "schemas"


def _validate(name: str, value: object) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(value)


@pytest.mark.slow
async def test_demo_publishes_every_topic_alerts_and_exercise(mosquitto: BrokerHandle, tmp_path: Path) -> None:
    """The whole demo (6 simulated minutes, as fast as possible) through mosquitto."""
    options = DemoOptions(speed=math.inf, broker=mosquitto.url, out_dir=tmp_path / "out", db=tmp_path / "s.db")
    async with Subscriber(mosquitto, "sensorhub/demo/#", "homeassistant/#") as sub:
        service = await run_demo(options)
        await sub.wait_for(2, topic="sensorhub/demo/status", timeout=10)
        await sub.settle(0.3)
    kinds: dict[str, list[object]] = {}
    for message in sub.messages:
        parts = message.topic.split("/")
        if parts[0] != "sensorhub":
            continue
        kind = "sensor" if parts[2] == "sensors" else parts[2]
        value = message.text if kind == "status" else message.json()
        _validate(kind, value)
        kinds.setdefault(kind, []).append(value)
    assert {"status", "angles", "posture", "alerts", "sensor", "exercise"} <= set(kinds)
    assert kinds["status"][0] == "online"
    assert kinds["status"][-1] == "offline"
    alerts = kinds["alerts"]
    starts = [a for a in alerts if a["state"] == "start"]  # type: ignore[index]
    ends = [a for a in alerts if a["state"] == "end"]  # type: ignore[index]
    assert len(starts) == len(ends) == 2, alerts
    assert [a["episode"] for a in starts] == [a["episode"] for a in ends]  # type: ignore[index]
    reps = [e for e in kinds["exercise"] if e["type"] == "rep"]  # type: ignore[index]
    assert len(reps) == 5
    assert [r["too_fast"] for r in reps] == [False, False, False, True, False]  # type: ignore[index]
    assert kinds["angles"][-1]["thoracic_flexion_deg"] is not None  # type: ignore[index]
    assert any(m.topic.startswith("homeassistant/") for m in sub.messages)
    assert service.status.finished
    assert service.status.alerts_started == 2
    # The recorded session exports, and replaying it with its own settings gives the live angles exactly.
    assert (tmp_path / "out" / "demo-angles.csv").stat().st_size > 100_000
    assert (tmp_path / "out" / "demo-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store = SessionStore(tmp_path / "s.db")
    assert service.session_id is not None
    assert store.get(service.session_id).status == "complete"
    live, live_labels = store.read_frame(service.session_id)
    result = replay(store, service.session_id, progress=False)
    assert result.session is not None
    again, again_labels = store.read_frame(result.session.id)
    np.testing.assert_array_equal(again.t, live.t)
    for name in ("thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg", "pelvis_tilt_deg"):
        np.testing.assert_allclose(getattr(again, name), getattr(live, name), rtol=0, atol=1e-9, equal_nan=True)
    assert again_labels == live_labels


def _run_config(tmp_path: Path, broker: BrokerHandle) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        '[wearer]\nid = "runner"\n'
        '[source]\nkind = "simulator"\nscenario = "demo"\nspeed = 1.0\n'
        '[[sensors]]\nplacement = "upper_thoracic"\nprofile = "sensorhub_open"\n'
        '[[sensors]]\nplacement = "thoracolumbar"\nprofile = "sensorhub_open"\n'
        '[[sensors]]\nplacement = "sacral"\nprofile = "sensorhub_open"\n'
        f'[mqtt]\nurl = "{broker.url}"\n'
        f'[storage]\npath = "{tmp_path / "sessions.db"}"\n'
    )
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_stops_cleanly_on_a_signal(mosquitto: BrokerHandle, tmp_path: Path, signum: int) -> None:
    """``sensorhub run``: a signal → exit 0 within 3 s, ``offline`` retained."""
    config = _run_config(tmp_path, mosquitto)
    async with Subscriber(mosquitto, "sensorhub/runner/status", "sensorhub/runner/angles") as sub:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sensorhub",
            "--log-level",
            "info",
            "run",
            "--config",
            str(config),
            "--no-view",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await sub.wait_for(1, topic="sensorhub/runner/status", timeout=20)
            await asyncio.sleep(1.0)
            child.send_signal(signum)
            start = time.monotonic()
            _, stderr = await asyncio.wait_for(child.communicate(), timeout=10)
            took = time.monotonic() - start
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await sub.wait_for(2, topic="sensorhub/runner/status", timeout=5)
    assert child.returncode == 0, stderr.decode()
    assert took < 3.0, f"stopping took {took:.2f} s"
    assert b"Traceback" not in stderr
    statuses = [m for m in sub.messages if m.topic.endswith("/status")]
    assert statuses[-1].text == "offline"
    [retained] = await subscribe_collect(mosquitto, "sensorhub/runner/status")
    assert retained.text == "offline"


def test_session_epoch_offset_is_read_against_the_source_clock_start() -> None:
    """A BLE source's times count from its ``t0`` (monotonic, taken when it was made); the session's
    epoch offset is the wall time at that instant, however long ago it was made."""
    import time
    from types import SimpleNamespace

    from sensorhub.runner import session_epoch_offset

    made_long_ago = SimpleNamespace(t0=time.monotonic() - 0.4)  # e.g. bleak took 0.4 s to import since
    offset = session_epoch_offset(made_long_ago, wall=lambda: 1_000_000.0)
    assert offset == pytest.approx(1_000_000.0 - 0.4, abs=0.01)
    assert session_epoch_offset(SimpleNamespace(), wall=lambda: 5.0) == 5.0  # clock starts with the stream
