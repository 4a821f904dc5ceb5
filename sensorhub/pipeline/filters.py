"""Streaming low-pass filters for the pipeline: SciPy Butterworth sections with carried state.

A :class:`LowPass` is a Butterworth filter in second-order sections (``scipy.signal.butter(...,
output="sos")``) run by ``scipy.signal.sosfilt`` with its ``zi`` carried from one call to the
next, so a signal filtered in chunks of any size equals the same signal filtered whole (to
floating-point rounding, tested at 1e-12).

Start and NaN policy (per channel):

- A fresh or :meth:`LowPass.reset` filter initialises its state at the first finite sample it
  sees, as if that value had been applied forever (``sosfilt_zi`` scaled by it), so an angle
  does not ramp up from 0 at the start of a stream. ``reset(x0)`` does the same at a given value.
- A NaN (or ±inf) input sample gives a NaN output sample and discards the channel's state; the
  next finite sample re-initialises it at steady state. One bad sample therefore never poisons
  the filter: the output resumes at the first good sample, without the transient of a cold start
  and without memory of what came before the hole.

Group delay: a causal low-pass delays slow signals by its low-frequency group delay
(:func:`group_delay_s`, computed from the cascaded transfer function with
``scipy.signal.group_delay``). For a 2nd-order Butterworth it is about ``√2 / (2π f_c)``:
113 ms at 2 Hz, 75 ms at 3 Hz (docs/pipeline-orientation.md has the table).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from sensorhub.errors import InputError
from sensorhub.model import FloatArray

__all__ = ["LowPass", "group_delay_s"]

_MAX_ORDER = 8


def _validate(cutoff_hz: float, sample_rate_hz: float, order: int) -> None:
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise InputError(f"sample rate must be a positive number of Hz, got {sample_rate_hz!r}")
    nyquist_hz = sample_rate_hz / 2.0
    if not (math.isfinite(cutoff_hz) and 0 < cutoff_hz < nyquist_hz):
        raise InputError(
            f"low-pass cutoff must be between 0 and the Nyquist frequency ({nyquist_hz:g} Hz), got {cutoff_hz!r} Hz",
            advice="lower the cutoff or raise the sample rate",
        )
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= _MAX_ORDER:
        raise InputError(f"filter order must be an integer from 1 to {_MAX_ORDER}, got {order!r}")


def group_delay_s(cutoff_hz: float, sample_rate_hz: float, order: int = 2, freq_hz: float = 0.1) -> float:
    """Group delay (s) of a Butterworth low-pass at ``freq_hz``.

    Computed with ``scipy.signal.group_delay`` on the cascade of the filter's second-order sections
    (the delay slow signals such as posture changes see), not from a closed-form approximation.

    Args:
        cutoff_hz: -3 dB frequency.
        sample_rate_hz: sample rate the filter runs at.
        order: Butterworth order.
        freq_hz: frequency at which to evaluate; keep it well below the cutoff for the
            low-frequency delay.

    Raises:
        InputError: on an impossible filter (cutoff not below Nyquist, bad order or rate) or a
            ``freq_hz`` outside [0, Nyquist).
    """
    _validate(cutoff_hz, sample_rate_hz, order)
    if not (math.isfinite(freq_hz) and 0 <= freq_hz < sample_rate_hz / 2.0):
        raise InputError(f"group delay frequency must be in [0, Nyquist), got {freq_hz!r} Hz")
    sos = signal.butter(order, cutoff_hz, btype="low", fs=sample_rate_hz, output="sos")
    b, a = signal.sos2tf(sos)
    _, delay_samples = signal.group_delay((b, a), w=[freq_hz], fs=sample_rate_hz)
    return float(delay_samples[0]) / sample_rate_hz


class LowPass:
    """Streaming Butterworth low-pass over 1 or more channels, state carried between calls.

    Args:
        cutoff_hz: -3 dB frequency, below the Nyquist frequency.
        sample_rate_hz: rate of the samples fed to :meth:`process`.
        order: Butterworth order (1–8).
        channels: number of independent channels (columns) filtered at once.

    Raises:
        InputError: on a cutoff at or above Nyquist, a non-positive rate, a bad order or channel count.
    """

    def __init__(self, cutoff_hz: float, sample_rate_hz: float, order: int = 2, channels: int = 1) -> None:
        _validate(cutoff_hz, sample_rate_hz, order)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise InputError(f"channels must be a positive integer, got {channels!r}")
        self.cutoff_hz = float(cutoff_hz)
        self.sample_rate_hz = float(sample_rate_hz)
        self.order = order
        self.channels = channels
        self._sos: FloatArray = signal.butter(order, cutoff_hz, btype="low", fs=sample_rate_hz, output="sos")
        # Steady-state section states for a unit input: (n_sections, 2).
        self._zi_unit: FloatArray = np.asarray(signal.sosfilt_zi(self._sos), dtype=np.float64)
        self._zi: FloatArray = np.zeros((len(self._sos), 2, channels))
        self._ready = np.zeros(channels, dtype=bool)

    @property
    def group_delay_s(self) -> float:
        """Low-frequency group delay (s): its limit at 0 Hz, the lag of a ramp or a slow posture change."""
        return group_delay_s(self.cutoff_hz, self.sample_rate_hz, self.order, 0.0)

    def reset(self, x0: FloatArray | None = None) -> None:
        """Forget the past.

        Args:
            x0: steady-state value per channel ((channels,) or a scalar-like (1,)); the filter then
                behaves as if ``x0`` had been its input forever. None: the next finite sample of
                each channel sets its steady state.

        Raises:
            InputError: when ``x0`` does not have one finite value per channel.
        """
        self._zi = np.zeros((len(self._sos), 2, self.channels))
        if x0 is None:
            self._ready[:] = False
            return
        value = np.asarray(x0, dtype=np.float64).reshape(-1)
        if value.shape != (self.channels,) or not np.all(np.isfinite(value)):
            raise InputError(f"reset value must hold {self.channels} finite number(s), got {value!r}")
        self._zi = self._zi_unit[:, :, None] * value[None, None, :]
        self._ready[:] = True

    def process(self, x: FloatArray) -> FloatArray:
        """Filter the next samples.

        Args:
            x: (N,) when the filter has one channel, or (N, channels); any units.

        Returns:
            The filtered samples, same shape as ``x``; NaN where ``x`` is not finite.

        Raises:
            InputError: when the shape does not match the channel count.
        """
        arr = np.asarray(x, dtype=np.float64)
        one_d = arr.ndim == 1
        if one_d and self.channels == 1:
            arr2 = arr[:, None]
        elif arr.ndim == 2 and arr.shape[1] == self.channels:
            arr2 = arr
        else:
            raise InputError(
                f"expected shape (N, {self.channels}) for this {self.channels}-channel filter, got {arr.shape}"
            )
        if len(arr2) == 0:
            return np.array(arr, dtype=np.float64, copy=True)
        finite = np.isfinite(arr2)
        if finite.all() and self._ready.all():
            y, self._zi = signal.sosfilt(self._sos, arr2, axis=0, zi=self._zi)
        else:
            y = np.empty_like(arr2)
            for ch in range(self.channels):
                y[:, ch] = self._process_channel(arr2[:, ch], finite[:, ch], ch)
        out: FloatArray = y[:, 0] if one_d else y
        return out

    def _process_channel(self, x: FloatArray, finite: NDArray[np.bool_], ch: int) -> FloatArray:
        """One channel with holes: NaN out at each hole, steady-state restart after it."""
        y = np.full(len(x), np.nan)
        # Runs of finite samples: each either continues the carried state or restarts at its first value.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(np.int8), [0]))))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if start > 0 or not self._ready[ch]:
                self._zi[:, :, ch] = self._zi_unit * x[start]
                self._ready[ch] = True
            y[start:stop], zi = signal.sosfilt(self._sos, x[start:stop], zi=self._zi[:, :, ch])
            self._zi[:, :, ch] = zi
        if len(x) and not finite[-1]:
            self._ready[ch] = False
        return y
