"""The simulated wearer: a scenario's motion, the body, and 1–3 simulated IMUs, with ground truth.

The body is evaluated on a fine, uniform time grid (default 1 kHz, at least 5× the sensor rate).
On that grid, each segment's angular velocity comes from central differences of its orientation,
``ω = log(R(t−h)ᵀ R(t+h)) / 2h`` (body frame), and each sensor's acceleration from central second
differences of its position; the ideal specific force is ``f = Rᵀ(a − g)``. Both are turned into
running integrals, from which every sensor sample takes the mean over its own sample period —
exactly what a decimating IMU delivers — before the error model of :mod:`sensorhub.sim.imu`.

Ground truth (DESIGN §3) comes straight from the body: sagittal inclination of each segment
relative to the neutral pose; thoracic = upper_thoracic − thoracolumbar, lumbar = thoracolumbar −
sacral, trunk = upper_thoracic, pelvis = sacral, spine = upper_thoracic − sacral.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorhub.errors import SimulationError
from sensorhub.model import GRAVITY_MPS2, Event, FloatArray, JsonValue, Placement
from sensorhub.sim.body import BodyGeometry, evaluate_body, inclination_rad, rot_x, rot_y, rot_z
from sensorhub.sim.imu import LSM6DSO, Environment, ImuSpec, LinkSpec, Notification, SensorErrors, SimulatedImu
from sensorhub.sim.motion import DOFS, Motion, Script
from sensorhub.sim.scenarios import SCENARIOS, Functional, build_script

__all__ = ["SUPPORTED_RATES_HZ", "SimulatedWearer", "Truth", "WearerConfig"]

#: Sample rates of the sensors sensorhub speaks to (Polar/Movesense 52 and 104 Hz, others 100/200).
SUPPORTED_RATES_HZ = (52.0, 100.0, 104.0, 200.0)
ALL_PLACEMENTS = (Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL)


@dataclass(frozen=True, slots=True)
class WearerConfig:
    """What to simulate.

    Attributes:
        scenario: one of ``SCENARIOS``.
        seed: everything random derives from it.
        rate_hz: nominal sensor sample rate.
        placements: which sensors the wearer has on.
        spec: IMU datasheet figures.
        link: BLE delivery model; default packs ~40 ms of samples per notification.
        functional: functional movement after the neutral period.
        misalignment_yaw_max_deg: sensor yaw on the skin drawn uniformly in ±this.
        misalignment_tilt_max_deg: sensor tilts about its x and y axes drawn uniformly in ±this.
        nominal_mounting: no misalignment at all.
        ideal_sensors: no errors (no noise, offsets, gains, quantisation; perfect clock; no losses).
        duration_s: cut the scenario (None = its full length).
        fine_rate_hz: rate of the grid the body is evaluated on.
        overlays: breathing, postural sway, typing and gait oscillations on top of the keyframes.
        chunk_s: simulated time per chunk (memory bound; results do not depend on it beyond
            floating-point rounding).
    """

    scenario: str = "desk_session"
    seed: int = 0
    rate_hz: float = 100.0
    placements: tuple[Placement, ...] = ALL_PLACEMENTS
    spec: ImuSpec = LSM6DSO
    link: LinkSpec | None = None
    functional: Functional = "bends"
    misalignment_yaw_max_deg: float = 20.0
    misalignment_tilt_max_deg: float = 5.0
    nominal_mounting: bool = False
    ideal_sensors: bool = False
    duration_s: float | None = None
    fine_rate_hz: float = 1000.0
    chunk_s: float = 10.0
    overlays: bool = True
    environment: Environment = field(default_factory=Environment)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise SimulationError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(sorted(SCENARIOS))}")
        if self.rate_hz not in SUPPORTED_RATES_HZ:
            raise SimulationError(
                f"rate {self.rate_hz:g} Hz is not supported; choose one of "
                + ", ".join(f"{r:g}" for r in SUPPORTED_RATES_HZ)
            )
        if not self.placements or len(set(self.placements)) != len(self.placements):
            raise SimulationError("placements must be 1–3 distinct placements")
        if self.duration_s is not None and self.duration_s <= 0:
            raise SimulationError(f"duration must be positive, got {self.duration_s:g} s")
        if self.fine_rate_hz < max(1000.0, 5.0 * self.rate_hz):
            raise SimulationError("the fine grid must run at ≥ 1 kHz and ≥ 5× the sensor rate")


@dataclass(frozen=True, slots=True)
class Truth:
    """Ground truth at times ``t`` (s): angles in degrees (DESIGN §3) and posture labels."""

    t: FloatArray
    thoracic_flexion_deg: FloatArray
    lumbar_flexion_deg: FloatArray
    trunk_flexion_deg: FloatArray
    pelvis_tilt_deg: FloatArray
    spine_flexion_deg: FloatArray
    heading_deg: FloatArray
    posture: list[str]


class SimulatedWearer:
    """A simulated person wearing 1–3 IMUs. Deterministic for a given :class:`WearerConfig`."""

    def __init__(self, config: WearerConfig, *, script: Script | None = None) -> None:
        """Build the wearer; ``script`` replaces the named scenario (for experiments and tests)."""
        self.config = config
        if script is None:
            script = build_script(config.scenario, config.seed, config.functional)
        self.motion: Motion = script.build(config.seed, overlays=config.overlays)
        self.duration_s = (
            self.motion.duration_s if config.duration_s is None else min(config.duration_s, self.motion.duration_s)
        )
        self.geometry = BodyGeometry()
        neutral = evaluate_body(self._neutral_dofs(), self.geometry)
        self._neutral_incl = {p: float(inclination_rad(neutral.rotation[p])[0]) for p in ALL_PLACEMENTS}
        seeds = np.random.SeedSequence([config.seed, 0x1A0]).spawn(len(ALL_PLACEMENTS))
        link = config.link or LinkSpec(samples_per_notification=max(1, round(config.rate_hz * 0.04)))
        if config.ideal_sensors:
            link = LinkSpec(link.samples_per_notification, link.connection_interval_s, 0.0, 0.0, 0.0)
        self._streamed = False
        self.mounting: dict[Placement, FloatArray] = {}
        self.imus: dict[Placement, SimulatedImu] = {}
        for placement, seed in zip(ALL_PLACEMENTS, seeds, strict=True):
            if placement not in config.placements:
                continue
            rng_static, rng_run = (np.random.default_rng(s) for s in seed.spawn(2))
            self.mounting[placement] = self._draw_mounting(rng_static)
            errors = SensorErrors.ideal() if config.ideal_sensors else SensorErrors.draw(config.spec, rng_static)
            self.imus[placement] = SimulatedImu(
                config.rate_hz,
                config.spec,
                link,
                errors,
                rng_run,
                noise=not config.ideal_sensors,
                quantise=not config.ideal_sensors,
                environment=config.environment,
            )

    # -- geometry ----------------------------------------------------------------------------

    def _neutral_dofs(self) -> FloatArray:
        dofs = np.zeros((1, len(DOFS)))
        dofs[0, DOFS.index("hip_z")] = self.motion.dofs(np.zeros(1))[0, DOFS.index("hip_z")]
        return dofs

    def _draw_mounting(self, rng: np.random.Generator) -> FloatArray:
        """Sensor axes in segment axes (3, 3): yaw about the skin normal (z), then small tilts."""
        if self.config.nominal_mounting:
            return np.eye(3)
        yaw = math.radians(rng.uniform(-1.0, 1.0) * self.config.misalignment_yaw_max_deg)
        tilt_y, tilt_x = np.radians(rng.uniform(-1.0, 1.0, 2) * self.config.misalignment_tilt_max_deg)
        mounting: FloatArray = rot_z(np.array([yaw]))[0] @ rot_y(np.array([tilt_y]))[0] @ rot_x(np.array([tilt_x]))[0]
        return mounting

    def sensor_rotation(self, placement: Placement, t: FloatArray) -> FloatArray:
        """True orientation of a sensor (sensor → world) at host times ``t``: (N, 3, 3)."""
        body = evaluate_body(self.motion.dofs(np.asarray(t, dtype=np.float64)), self.geometry)
        return body.rotation[placement] @ self.mounting[placement]

    # -- ideal signals -----------------------------------------------------------------------

    def ideal_running_integrals(
        self, t0: float, t1: float
    ) -> tuple[FloatArray, dict[Placement, tuple[FloatArray, FloatArray]]]:
        """Fine grid covering [t0, t1] and, per sensor, running integrals of f and ω (sensor frame).

        Returns ``(grid_t, {placement: (F, W)})`` where F, W are (M, 3) trapezoidal integrals from
        ``grid_t[0]`` of the specific force (m/s) and angular rate (rad).
        """
        h = 1.0 / self.config.fine_rate_hz
        j0 = math.floor(t0 / h) - 1
        j1 = math.ceil(t1 / h) + 1
        t_ext: FloatArray = (
            np.arange(j0 - 1, j1 + 2, dtype=np.float64) * h
        )  # one extra point each side for the differences
        body = evaluate_body(self.motion.dofs(t_ext), self.geometry)
        grid_t = t_ext[1:-1]
        out: dict[Placement, tuple[FloatArray, FloatArray]] = {}
        g_world = np.array([0.0, 0.0, GRAVITY_MPS2])
        for placement, M in self.mounting.items():
            R = body.rotation[placement]
            p = body.position_m[placement]
            acc = (p[2:] - 2.0 * p[1:-1] + p[:-2]) / (h * h)
            f_seg = np.einsum("nji,nj->ni", R[1:-1], acc + g_world)
            w_seg = _rate_from_rotations(R[:-2], R[2:], 2.0 * h)
            f_s = f_seg @ M  # Mᵀ f for each row
            w_s = w_seg @ M
            out[placement] = (_cumtrapz(f_s, h), _cumtrapz(w_s, h))
        return grid_t, out

    # -- streaming ---------------------------------------------------------------------------

    def notifications(self) -> Iterator[list[tuple[Placement, Notification]]]:
        """Yield, chunk by chunk, the notifications that have arrived, merged in arrival order.

        Everything released from one chunk arrived before anything released later: a notification
        still in flight at the chunk's end is held back until the chunk in which it has arrived.
        A wearer streams once (its sensors' random state moves on); make a new one to stream again.
        """
        if self._streamed:
            raise SimulationError("this SimulatedWearer has already been streamed; create a new one")
        self._streamed = True
        held: list[tuple[Placement, Notification]] = []
        t = 0.0
        end = self.duration_s
        while t < end:
            t1 = min(t + self.config.chunk_s, end)
            final = t1 >= end
            new = self._chunk(t, t1, final=final)
            held.extend(new)
            held.sort(key=lambda pn: pn[1].arrival_t)
            if final:
                ready, held = held, []
            else:
                ready = [pn for pn in held if pn[1].arrival_t <= t1]
                held = [pn for pn in held if pn[1].arrival_t > t1]
            yield ready
            t = t1

    def _chunk(self, t0: float, t1: float, *, final: bool) -> list[tuple[Placement, Notification]]:
        instants = {p: imu.sample_instants(t1) for p, imu in self.imus.items()}
        starts = [inst[0] - imu.period_s for p, imu in self.imus.items() if len(inst := instants[p])]
        lo = min([t0, *starts])
        grid_t, integrals = self.ideal_running_integrals(lo, t1)
        out: list[tuple[Placement, Notification]] = []
        for placement, imu in self.imus.items():
            tk = instants[placement]
            F, W = integrals[placement]
            f = (_interp_rows(tk, grid_t, F) - _interp_rows(tk - imu.period_s, grid_t, F)) / imu.period_s
            w = (_interp_rows(tk, grid_t, W) - _interp_rows(tk - imu.period_s, grid_t, W)) / imu.period_s
            acc, gyro = imu.measure(tk, f, w)
            out.extend((placement, n) for n in imu.deliver(tk, acc, gyro, final=final))
        return out

    # -- ground truth ------------------------------------------------------------------------

    def truth(self, t: Sequence[float] | FloatArray) -> Truth:
        """Ground-truth angles and posture labels at host times ``t`` (s)."""
        tt = np.asarray(t, dtype=np.float64)
        dofs = self.motion.dofs(tt)
        body = evaluate_body(dofs, self.geometry)
        rel = {p: np.degrees(_wrap(inclination_rad(body.rotation[p]) - self._neutral_incl[p])) for p in ALL_PLACEMENTS}
        ut, tl, sa = rel[Placement.UPPER_THORACIC], rel[Placement.THORACOLUMBAR], rel[Placement.SACRAL]
        return Truth(
            t=tt,
            thoracic_flexion_deg=ut - tl,
            lumbar_flexion_deg=tl - sa,
            trunk_flexion_deg=ut,
            pelvis_tilt_deg=sa,
            spine_flexion_deg=ut - sa,
            heading_deg=np.degrees(dofs[:, DOFS.index("heading")]),
            posture=self.motion.labels(tt),
        )

    def events(self, *, resolution_hz: float = 100.0) -> list[Event]:
        """Ground-truth events within the simulated duration (DESIGN §6), in start order.

        Slouch events carry the episode's peak angles; rep events the range of motion per region
        (max − min of the truth over the rep) and ``too_fast``; set events their rep count.
        """
        events: list[Event] = []
        for mark in sorted(self.motion.marks, key=lambda m: (m.start_t, m.end_t)):
            if mark.start_t >= self.duration_s:
                continue
            end_t = mark.end_t if mark.end_t <= self.duration_s else None
            data: dict[str, JsonValue] = {k: _json(v) for k, v in mark.data.items()}
            if mark.type in ("slouch", "rep") and end_t is not None:
                n = max(2, math.ceil((end_t - mark.start_t) * resolution_hz) + 1)
                tr = self.truth(np.linspace(mark.start_t, end_t, n))
                angles = {
                    "thoracic": tr.thoracic_flexion_deg,
                    "lumbar": tr.lumbar_flexion_deg,
                    "trunk": tr.trunk_flexion_deg,
                    "pelvis": tr.pelvis_tilt_deg,
                }
                if mark.type == "slouch":
                    data["peak_deg"] = {k: round(float(v[np.argmax(np.abs(v))]), 3) for k, v in angles.items()}
                    data["duration_s"] = round(end_t - mark.start_t, 3)
                else:
                    data["rom_deg"] = {k: round(float(v.max() - v.min()), 3) for k, v in angles.items()}
                    data["duration_s"] = round(end_t - mark.start_t, 3)
            events.append(Event(mark.type, mark.start_t, end_t, data))
        return events


def _json(value: object) -> JsonValue:
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def _wrap(a: FloatArray) -> FloatArray:
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def _rate_from_rotations(R_before: FloatArray, R_after: FloatArray, dt: float) -> FloatArray:
    """Body-frame angular velocity from orientations ``dt`` apart (rotation-vector log)."""
    D = np.einsum("nji,njk->nik", R_before, R_after)  # R_beforeᵀ R_after
    v = 0.5 * np.stack([D[:, 2, 1] - D[:, 1, 2], D[:, 0, 2] - D[:, 2, 0], D[:, 1, 0] - D[:, 0, 1]], axis=-1)
    cos_angle = np.clip((np.trace(D, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    sin_angle = np.linalg.norm(v, axis=1)
    angle = np.arctan2(sin_angle, cos_angle)
    scale = np.where(sin_angle > 1e-12, angle / np.maximum(sin_angle, 1e-300), 1.0)
    return v * scale[:, None] / dt


def _cumtrapz(x: FloatArray, h: float) -> FloatArray:
    out = np.zeros_like(x)
    out[1:] = np.cumsum((x[1:] + x[:-1]) * (h / 2.0), axis=0)
    return out


def _interp_rows(t: FloatArray, grid_t: FloatArray, values: FloatArray) -> FloatArray:
    """Linear interpolation of each column of ``values`` (M, 3) at times ``t``."""
    if len(t) == 0:
        return np.empty((0, values.shape[1]))
    return np.stack([np.interp(t, grid_t, values[:, i]) for i in range(values.shape[1])], axis=-1)
