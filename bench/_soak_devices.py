"""The soak test's wearer and sensors: a slouching wearer on three emulated BLE sensors.

The firmware emulators (``tests/fakebluez/devices.py``) stream a minute of the ``desk_session``
scenario on a loop, which holds no slouch at all. The soak wants alerts every minute or so, so it
gives every emulator a loop of its own (:func:`slouch_loop`): after the calibration part (still
neutral, three slow forward bends) the wearer alternates 15–25 s of upright typing with a 30–40 s
slouch, deep enough to cross every default threshold. The emulators play the loop's slouch cycles
over and over (it starts and ends upright at the same heading, so the seam is a breath, not a jump).

The calibration is computed from the same signals, as ``sensorhub calibrate`` would have done it,
so ``sensorhub run`` streams angles from its first sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from fakebluez import FakeBlueZ
from fakebluez.devices import DeviceEmulator, Signals, emulator_for

from sensorhub.model import Placement
from sensorhub.pipeline.calibration import RigCalibration, calibrate_rig
from sensorhub.sim.motion import Script
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig

__all__ = ["RATE_HZ", "SENSORS", "SensorSpec", "SlouchLoop", "running_emulators", "slouch_loop"]

RATE_HZ = 100.0
NEUTRAL_S = 12.0


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One emulated sensor of the soak wearer."""

    placement: Placement
    profile: str
    address: str


#: Three profiles with three different ways of failing: a counter + µs clock (exact gaps), a UART
#: byte stream cut mid-packet (no counter), and separate acc/gyro streams that forget their set-up
#: on every disconnect.
SENSORS = (
    SensorSpec(Placement.UPPER_THORACIC, "sensorhub_open", "C0:FF:EE:50:00:01"),
    SensorSpec(Placement.THORACOLUMBAR, "witmotion_bwt901blecl", "C0:FF:EE:50:00:02"),
    SensorSpec(Placement.SACRAL, "metamotion", "C0:FF:EE:50:00:03"),
)


@dataclass(frozen=True)
class SlouchLoop:
    """The soak wearer: per placement the looped signals, the calibration, the slouch marks.

    Attributes:
        signals: per placement, the slouch cycles the emulators repeat (sensor frame, 100 Hz).
        calibration: the rig calibration on the neutral + bends part.
        loop_s: length of one pass through the cycles.
        slouches: (start_s, end_s) of each slouch within a pass.
    """

    signals: dict[Placement, Signals]
    calibration: RigCalibration
    loop_s: float
    slouches: list[tuple[float, float]]


def _script(seed: int, cycles: int) -> tuple[Script, float, list[tuple[float, float]]]:
    rng = np.random.default_rng(seed)
    s = Script()
    s.hold(NEUTRAL_S, "upright")
    for _ in range(3):  # slow forward bends: calibration finds each sensor's left-right axis in them
        depth = rng.uniform(0.9, 1.1)
        s.move({"pelvis_tilt": 15 * depth, "lumbar_flex": 18 * depth, "thoracic_flex": 12 * depth}, 3.0, "moving")
        s.hold(1.0)
        s.move({}, 3.0, "upright")
        s.hold(1.5)
    s.hold(3.0, "upright")
    loop_start = s.t
    slouches = []
    for _ in range(cycles):
        s.hold(rng.uniform(15.0, 25.0), "upright", typing=True)
        depth = rng.uniform(0.95, 1.15)
        start = s.t
        s.move(
            {"pelvis_tilt": -9.0 * depth, "lumbar_flex": 18.0 * depth, "thoracic_flex": 14.0 * depth}, 6.0, "slouched"
        )
        s.hold(rng.uniform(30.0, 40.0), typing=True)
        s.move({}, 2.5, "upright", typing=True)
        slouches.append((start - loop_start, s.t - loop_start))
    return s, loop_start, slouches


def slouch_loop(*, seed: int = 11, cycles: int = 5) -> SlouchLoop:
    """Simulate the soak wearer once (ideal sensors, nominal mounting) and calibrate on it."""
    script, loop_start, slouches = _script(seed, cycles)
    wearer = SimulatedWearer(
        WearerConfig(rate_hz=RATE_HZ, ideal_sensors=True, nominal_mounting=True, seed=seed), script=script
    )
    acc: dict[Placement, list[np.ndarray]] = {p: [] for p in wearer.imus}
    gyro: dict[Placement, list[np.ndarray]] = {p: [] for p in wearer.imus}
    times: dict[Placement, list[np.ndarray]] = {p: [] for p in wearer.imus}
    for chunk in wearer.notifications():
        for placement, note in chunk:
            acc[placement].append(note.acc_mps2)
            gyro[placement].append(note.gyro_radps)
            times[placement].append(note.true_t)
    data = {}
    signals = {}
    first = round(loop_start * RATE_HZ)
    for placement in wearer.imus:
        a, g, t = np.concatenate(acc[placement]), np.concatenate(gyro[placement]), np.concatenate(times[placement])
        data[placement.value] = (t, a, g)
        signals[placement] = Signals(RATE_HZ, a[first:], g[first:])
    calibration = calibrate_rig(data, neutral=(1.0, NEUTRAL_S - 1.0), functional="auto")
    loop_s = (len(signals[Placement.SACRAL].acc_mps2)) / RATE_HZ
    return SlouchLoop(signals, calibration, loop_s, slouches)


@contextlib.asynccontextmanager
async def running_emulators(bluez: FakeBlueZ, wearer: SlouchLoop) -> AsyncIterator[dict[Placement, DeviceEmulator]]:
    """The three sensors on ``bluez``, streaming the soak wearer's loop, until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        emulators = {}
        for spec in SENSORS:
            emulator = emulator_for(spec.profile)(bluez, spec.address, spec.placement, rate_hz=RATE_HZ)
            emulator.signals = wearer.signals[spec.placement]
            emulators[spec.placement] = await stack.enter_async_context(emulator)
        yield emulators
