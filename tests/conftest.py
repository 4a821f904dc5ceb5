"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import numpy as np
import pytest
from brokers import amqtt_broker, mosquitto, mqtt_broker  # noqa: F401  (MQTT broker fixtures for every test)
from fakebluez.fixtures import fake_bluez, private_system_bus  # noqa: F401  (fake BlueZ on a private D-Bus)

from sensorhub.model import Placement
from sensorhub.pipeline import kernel
from sensorhub.sim.imu import Notification
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig


@pytest.fixture(params=["kernel", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a pipeline test with the C kernel and with the pure-Python loops (objects made in the test
    read ``kernel.kernel`` when they are made)."""
    if request.param == "python":
        monkeypatch.setattr(kernel, "kernel", None)
    elif kernel.kernel is None:
        pytest.skip(f"the C kernel does not run: {kernel.status()}")
    return str(request.param)


def collect(wearer: SimulatedWearer) -> dict[Placement, list[Notification]]:
    """All notifications of a wearer, per placement, in arrival order."""
    out: dict[Placement, list[Notification]] = {p: [] for p in wearer.imus}
    for chunk in wearer.notifications():
        for placement, note in chunk:
            out[placement].append(note)
    return out


def stacked(notes: list[Notification]) -> dict[str, np.ndarray]:
    """Concatenate notifications' samples: true_t, device_t, seq, acc, gyro."""
    return {
        "true_t": np.concatenate([n.true_t for n in notes]),
        "device_t": np.concatenate([n.device_t for n in notes]),
        "seq": np.concatenate([n.seq for n in notes]),
        "acc": np.concatenate([n.acc_mps2 for n in notes]),
        "gyro": np.concatenate([n.gyro_radps for n in notes]),
        "arrival": np.array([n.arrival_t for n in notes]),
    }


@pytest.fixture(scope="session")
def ideal_desk_70s() -> tuple[SimulatedWearer, dict[Placement, dict[str, np.ndarray]]]:
    """70 s of desk_session (neutral + functional bends + typing) with ideal sensors."""
    wearer = SimulatedWearer(WearerConfig(scenario="desk_session", duration_s=70.0, ideal_sensors=True))
    return wearer, {p: stacked(n) for p, n in collect(wearer).items()}
