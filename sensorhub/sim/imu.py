"""Sensor error model, sampling and BLE-like delivery for simulated IMUs.

Each simulated sensor turns the ideal specific force and angular rate of its segment (computed on
a fine time grid by :mod:`sensorhub.sim.wearer`) into what a real board would send:

1. Sampling: the IMU's output data rate (ODR) has its own error (±1 % class, BMI270 datasheet
   §1 "ODR accuracy"); each sample is the mean over its sample period (integrate-and-dump, a
   stand-in for the on-chip decimation filter), read from the fine grid's running integral.
2. Errors per sample: scale-factor and cross-axis gains, constant offsets, offset temperature
   drift while the board warms on the skin, bias random walk, white noise from the datasheet noise
   density over a noise bandwidth of ODR/2 (LSM6DSO datasheet note to Table 2), int16 quantisation
   at the chosen range with saturation.
3. Clock: the board stamps samples with its crystal clock (offset, drift in ppm; the BLE core spec
   allows ±50 ppm for the active clock, Core v5.2 Vol 6 Part B §4.2).
4. Delivery: samples are packed into notifications, sent at the next BLE connection event
   (BlueZ's default connection interval is 30–50 ms, hci_core.c), sometimes retransmitted one or
   more intervals later, sometimes lost.

Every default and its source is listed in docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sensorhub.model import GRAVITY_MPS2, FloatArray, IntArray

__all__ = [
    "BMI270",
    "IMU_SPECS",
    "LSM6DSO",
    "ImuSpec",
    "LinkSpec",
    "Notification",
    "SensorErrors",
    "SimulatedImu",
]

_DEG = math.pi / 180.0


@dataclass(frozen=True, slots=True)
class ImuSpec:
    """Datasheet error figures of one IMU chip (typical values, taken as 1σ across parts).

    ST and Bosch "typical" offsets and tolerances describe the standard deviation across parts
    (LSM6DSL datasheet §4.6.2; Bosch: "typical = 1σ"), so per-device values are drawn N(0, typ).
    """

    name: str
    acc_noise_density_ug: float  # µg/√Hz
    gyro_noise_density_mdps: float  # mdps/√Hz
    acc_offset_mg: float  # zero-g level, 1σ
    gyro_offset_dps: float  # zero-rate level, 1σ
    acc_scale_pct: float  # sensitivity tolerance, 1σ
    gyro_scale_pct: float
    cross_axis_pct: float  # cross-axis sensitivity, 1σ per off-diagonal term
    acc_tempco_mg_per_c: float  # zero-g level change vs temperature, 1σ
    gyro_tempco_dps_per_c: float  # zero-rate level change vs temperature, 1σ
    gyro_bias_rw_dph_per_sqrth: float  # gyro bias random walk, °/h per √h
    acc_bias_rw_mg_per_sqrth: float  # accelerometer bias random walk, mg per √h
    acc_range_g: float  # full scale
    gyro_range_dps: float
    acc_lsb_mg: float  # sensitivity at that full scale
    gyro_lsb_mdps: float
    odr_tolerance_pct: float  # ODR error, 1σ


#: ST LSM6DSO (datasheet DS12140, §4.1 Table 2) at ±16 g / ±2000 dps, high-performance mode.
LSM6DSO = ImuSpec(
    name="lsm6dso",
    acc_noise_density_ug=110.0,  # at ±16 g (70/75/80/110 at ±2/4/8/16 g)
    gyro_noise_density_mdps=3.8,
    acc_offset_mg=20.0,
    gyro_offset_dps=1.0,
    acc_scale_pct=1.0,
    gyro_scale_pct=1.0,
    cross_axis_pct=1.0,  # not in DS12140; BMI270's 1 % used as the class value
    acc_tempco_mg_per_c=0.1,
    gyro_tempco_dps_per_c=0.010,
    # Consumer MEMS bias instability 5–10 °/h (Greenheck 2009, MPU-6000: 4.6 °/h; phone IMUs
    # 5–20 °/h); modelled as a random walk of that size per √h.
    gyro_bias_rw_dph_per_sqrth=10.0,
    acc_bias_rw_mg_per_sqrth=0.05,  # Greenheck 2009: accel bias instability 36 µg
    acc_range_g=16.0,
    gyro_range_dps=2000.0,
    acc_lsb_mg=0.488,
    gyro_lsb_mdps=70.0,
    odr_tolerance_pct=1.0,  # DS12140 gives none; INTERNAL_FREQ_FINE steps are 0.15 %/LSB
)

#: Bosch BMI270 (datasheet BST-BMI270-DS000, §1) at ±16 g / ±2000 dps, performance mode.
BMI270 = ImuSpec(
    name="bmi270",
    acc_noise_density_ug=160.0,
    gyro_noise_density_mdps=7.0,
    acc_offset_mg=20.0,
    gyro_offset_dps=0.5,
    acc_scale_pct=0.4,
    gyro_scale_pct=2.0,
    cross_axis_pct=1.0,
    acc_tempco_mg_per_c=0.25,
    gyro_tempco_dps_per_c=0.015,
    gyro_bias_rw_dph_per_sqrth=10.0,
    acc_bias_rw_mg_per_sqrth=0.05,
    acc_range_g=16.0,
    gyro_range_dps=2000.0,
    acc_lsb_mg=1000.0 / 2048.0,
    gyro_lsb_mdps=1000.0 / 16.384,
    odr_tolerance_pct=1.7,  # ±1.7 % with the gyro on, ±1 % accel-only (datasheet §1)
)

IMU_SPECS = {spec.name: spec for spec in (LSM6DSO, BMI270)}


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """BLE delivery model."""

    samples_per_notification: int = 4
    connection_interval_s: float = 0.030  # BlueZ default 30–50 ms (hci_core.c: 0x18–0x28)
    retransmit_prob: float = 0.02  # chance a notification waits one or more extra intervals
    drop_prob: float = 0.002  # chance a notification is lost
    host_jitter_s: float = 0.001  # mean of the host's exponential scheduling delay


@dataclass(frozen=True, slots=True)
class Environment:
    """Board temperature while worn: it warms from room to skin temperature."""

    warmup_delta_c: float = 8.0
    warmup_tau_s: float = 900.0

    def temperature_rise_c(self, t: FloatArray) -> FloatArray:
        """Temperature above room temperature at host times ``t`` (s)."""
        return self.warmup_delta_c * (1.0 - np.exp(-np.maximum(t, 0.0) / self.warmup_tau_s))


@dataclass(frozen=True, slots=True)
class SensorErrors:
    """One device's drawn errors (SI units)."""

    acc_gain: FloatArray  # (3, 3): I + scale + cross-axis
    gyro_gain: FloatArray
    acc_offset_mps2: FloatArray  # (3,)
    gyro_offset_radps: FloatArray
    acc_tempco_mps2_per_c: FloatArray
    gyro_tempco_radps_per_c: FloatArray
    clock_offset_s: float  # device clock reading at host time 0
    clock_drift_ppm: float  # device seconds per host second − 1, in ppm
    odr_error: float  # relative error of the sample period (+ = slower)

    @classmethod
    def draw(cls, spec: ImuSpec, rng: np.random.Generator, *, clock_drift_max_ppm: float = 50.0) -> SensorErrors:
        """Draw one device's errors from the datasheet distribution."""

        def gain(scale_pct: float) -> FloatArray:
            g = np.eye(3) + np.diag(rng.normal(0.0, scale_pct / 100.0, 3))
            off = rng.normal(0.0, spec.cross_axis_pct / 100.0, (3, 3))
            np.fill_diagonal(off, 0.0)
            return g + off

        odr_sigma = spec.odr_tolerance_pct / 100.0
        return cls(
            acc_gain=gain(spec.acc_scale_pct),
            gyro_gain=gain(spec.gyro_scale_pct),
            acc_offset_mps2=rng.normal(0.0, spec.acc_offset_mg * 1e-3 * GRAVITY_MPS2, 3),
            gyro_offset_radps=rng.normal(0.0, spec.gyro_offset_dps * _DEG, 3),
            acc_tempco_mps2_per_c=rng.normal(0.0, spec.acc_tempco_mg_per_c * 1e-3 * GRAVITY_MPS2, 3),
            gyro_tempco_radps_per_c=rng.normal(0.0, spec.gyro_tempco_dps_per_c * _DEG, 3),
            clock_offset_s=float(rng.uniform(0.0, 3600.0)),
            clock_drift_ppm=float(rng.uniform(-clock_drift_max_ppm, clock_drift_max_ppm)),
            # "Typical" = 1σ, and datasheet limits are ~3σ: clip there.
            odr_error=float(np.clip(rng.normal(0.0, odr_sigma), -3.0 * odr_sigma, 3.0 * odr_sigma)),
        )

    @classmethod
    def ideal(cls) -> SensorErrors:
        """A perfect device: no offsets, gains of one, perfect clock."""
        z = np.zeros(3)
        return cls(np.eye(3), np.eye(3), z, z, z, z, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Notification:
    """One BLE notification as the host receives it.

    Attributes:
        arrival_t: host time of arrival (s).
        device_t: (S,) device clock time of each sample (s, the device's own epoch).
        seq: (S,) sample counter.
        acc_mps2, gyro_radps: (S, 3) measured values after quantisation, sensor frame.
        true_t: (S,) true host time of each sample instant (ground truth, not sent by devices).
    """

    arrival_t: float
    device_t: FloatArray
    seq: IntArray
    acc_mps2: FloatArray
    gyro_radps: FloatArray
    true_t: FloatArray


@dataclass(slots=True)
class _Pending:
    """Samples made but not yet packed into a notification."""

    true_t: list[FloatArray] = field(default_factory=list)
    acc: list[FloatArray] = field(default_factory=list)
    gyro: list[FloatArray] = field(default_factory=list)

    def size(self) -> int:
        return sum(len(x) for x in self.true_t)


class SimulatedImu:
    """One simulated board: samples, corrupts and delivers its segment's ideal signals.

    Feed it :meth:`sample_instants` → :meth:`measure` → :meth:`deliver`, chunk by chunk in time
    order; its random state (noise, random walks, delivery) carries across chunks.
    """

    def __init__(
        self,
        rate_hz: float,
        spec: ImuSpec,
        link: LinkSpec,
        errors: SensorErrors,
        rng: np.random.Generator,
        *,
        noise: bool = True,
        environment: Environment | None = None,
        quantise: bool = True,
    ) -> None:
        self.rate_hz = rate_hz
        self.spec = spec
        self.link = link
        self.errors = errors
        self.noise = noise
        self.quantise = quantise
        self.environment = environment if environment is not None else Environment()
        # One generator per random stream, so that how time is chunked cannot change the data.
        self._rng_gyro_rw, self._rng_acc_rw, self._rng_acc, self._rng_gyro, self._rng_link = rng.spawn(5)
        self.period_s = (1.0 / rate_hz) * (1.0 + errors.odr_error)
        self._phase_s = float(self._rng_link.uniform(0.0, self.period_s))
        self._next_k = 0
        self._gyro_rw = np.zeros(3)
        self._acc_rw = np.zeros(3)
        self._pending = _Pending()
        self._seq0 = 0
        self._ce_phase_s = float(self._rng_link.uniform(0.0, link.connection_interval_s))
        self._last_arrival = -math.inf
        self.notifications_dropped = 0

    def sample_instants(self, t_end: float) -> FloatArray:
        """True host times of the next samples up to ``t_end`` (s), each ending its sample period."""
        # Sample k ends its period at phase + (k + 1)·P; take every k whose end is ≤ t_end.
        k_end = math.floor((t_end - self._phase_s) / self.period_s) - 1
        if k_end < self._next_k:
            return np.empty(0)
        k = np.arange(self._next_k, k_end + 1, dtype=np.float64)
        self._next_k = k_end + 1
        instants: FloatArray = self._phase_s + (k + 1.0) * self.period_s
        return instants

    def measure(self, true_t: FloatArray, f_mps2: FloatArray, w_radps: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Apply the error model to ideal sensor-frame samples; returns (acc, gyro)."""
        e = self.errors
        n = len(true_t)
        temp = self.environment.temperature_rise_c(true_t)[:, None]
        acc = f_mps2 @ e.acc_gain.T + e.acc_offset_mps2 + temp * e.acc_tempco_mps2_per_c
        gyro = w_radps @ e.gyro_gain.T + e.gyro_offset_radps + temp * e.gyro_tempco_radps_per_c
        if self.noise and n:
            s = self.spec
            bandwidth = self.rate_hz / 2.0
            acc_sigma = s.acc_noise_density_ug * 1e-6 * GRAVITY_MPS2 * math.sqrt(bandwidth)
            gyro_sigma = s.gyro_noise_density_mdps * 1e-3 * _DEG * math.sqrt(bandwidth)
            # Random walks: σ per sample = K·√Δt with K per √s.
            g_rw = s.gyro_bias_rw_dph_per_sqrth * _DEG / 3600.0 / 60.0 * math.sqrt(self.period_s)
            a_rw = s.acc_bias_rw_mg_per_sqrth * 1e-3 * GRAVITY_MPS2 / 60.0 * math.sqrt(self.period_s)
            gyro_walk = self._gyro_rw + np.cumsum(self._rng_gyro_rw.normal(0.0, g_rw, (n, 3)), axis=0)
            acc_walk = self._acc_rw + np.cumsum(self._rng_acc_rw.normal(0.0, a_rw, (n, 3)), axis=0)
            self._gyro_rw, self._acc_rw = gyro_walk[-1].copy(), acc_walk[-1].copy()
            acc = acc + acc_walk + self._rng_acc.normal(0.0, acc_sigma, (n, 3))
            gyro = gyro + gyro_walk + self._rng_gyro.normal(0.0, gyro_sigma, (n, 3))
        if self.quantise:
            acc = _quantise(acc, self.spec.acc_lsb_mg * 1e-3 * GRAVITY_MPS2)
            gyro = _quantise(gyro, self.spec.gyro_lsb_mdps * 1e-3 * _DEG)
        return acc, gyro

    def deliver(
        self, true_t: FloatArray, acc: FloatArray, gyro: FloatArray, *, final: bool = False
    ) -> list[Notification]:
        """Pack measured samples into notifications with arrival times; keep a partial remainder."""
        p = self._pending
        if len(true_t):
            p.true_t.append(true_t)
            p.acc.append(acc)
            p.gyro.append(gyro)
        size = p.size()
        per = self.link.samples_per_notification
        n_full = size // per
        take = n_full * per
        if final and size > take:
            take = size
        if take == 0:
            return []
        tt = np.concatenate(p.true_t)
        aa = np.concatenate(p.acc)
        gg = np.concatenate(p.gyro)
        self._pending = _Pending([tt[take:]], [aa[take:]], [gg[take:]])
        out: list[Notification] = []
        for start in range(0, take, per):
            stop = min(start + per, take)
            seq = np.arange(self._seq0 + start, self._seq0 + stop, dtype=np.int64)
            arrival = self._arrival(float(tt[stop - 1]))
            if self._rng_link.random() < self.link.drop_prob:
                self.notifications_dropped += 1
                continue
            e = self.errors
            device_t = e.clock_offset_s + tt[start:stop] * (1.0 + e.clock_drift_ppm * 1e-6)
            out.append(Notification(arrival, device_t, seq, aa[start:stop], gg[start:stop], tt[start:stop]))
        self._seq0 += take
        return out

    def _arrival(self, ready_t: float) -> float:
        """Host arrival time of a notification ready at ``ready_t`` (s)."""
        ci = self.link.connection_interval_s
        ready_t += 0.001  # firmware packs and queues the notification
        ce = self._ce_phase_s + math.ceil((ready_t - self._ce_phase_s) / ci) * ci
        while self._rng_link.random() < self.link.retransmit_prob:
            ce += ci
        arrival = ce + float(self._rng_link.exponential(self.link.host_jitter_s))
        # A BLE link delivers in order.
        arrival = max(arrival, self._last_arrival)
        self._last_arrival = arrival
        return arrival


def _quantise(x: FloatArray, lsb: float) -> FloatArray:
    """Round to int16 counts of ``lsb`` with saturation, back to physical units."""
    counts = np.clip(np.rint(x / lsb), -32768, 32767)
    return counts * lsb


def with_overrides(spec: ImuSpec, **kwargs: float) -> ImuSpec:
    """A copy of ``spec`` with some figures replaced (for experiments and tests)."""
    return replace(spec, **kwargs)  # type: ignore[arg-type]
