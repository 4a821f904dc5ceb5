"""Jittered exponential backoff for reconnecting to the MQTT broker: a pure function.

The schedule is "full jitter" as described in Marc Brooker's AWS Architecture Blog post
*Exponential Backoff And Jitter* (2015): the ceiling doubles with every failed attempt up to a cap,
and the actual wait is drawn uniformly between zero and that ceiling. Of the variants the post
compares (equal, full, decorrelated), full jitter does the least total work when many clients
retry against one recovering server, which is the case of many desks behind one broker; and its
worst case is simply ``cap_s``, which makes the reconnect latency after an outage easy to bound.

Like ``bleak-retry-connector``'s ``calculate_backoff_time`` the function has no state, no clock and
no sleep: the caller owns the attempt counter and the random generator, so tests pin both.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Backoff", "backoff_ceiling", "backoff_delay"]

# 2**64 times any sane base is far beyond any cap; stopping the exponent here keeps the float
# arithmetic finite for arbitrarily large attempt counts (2.0**1100 would raise OverflowError).
_MAX_EXPONENT = 64


def backoff_ceiling(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Upper bound of the wait before retry number ``attempt``: ``min(cap_s, base_s * 2**attempt)``.

    Args:
        attempt: failed attempts so far minus one; 0 for the first retry.
        base_s: ceiling of the first retry, seconds (> 0).
        cap_s: largest ceiling, seconds (>= base_s).

    Raises:
        ValueError: a negative attempt or a base/cap that is not a finite positive number with
            ``base_s <= cap_s``.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not (math.isfinite(base_s) and math.isfinite(cap_s) and 0 < base_s <= cap_s):
        raise ValueError(f"need 0 < base_s <= cap_s, both finite; got base_s={base_s}, cap_s={cap_s}")
    return min(cap_s, base_s * 2.0 ** min(attempt, _MAX_EXPONENT))


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt``, drawn uniformly from ``[0, ceiling]`` (full jitter).

    Args:
        attempt: failed attempts so far minus one; 0 for the first retry.
        base_s: ceiling of the first retry, seconds.
        cap_s: largest possible wait, seconds.
        rng: the random generator (seeded in tests, one per client in production so that
            clients do not share a schedule).

    Returns:
        A wait in ``[0, min(cap_s, base_s * 2**attempt)]``.
    """
    return rng.uniform(0.0, backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s))


@dataclass(frozen=True, slots=True)
class Backoff:
    """A named backoff schedule: the base and cap handed to :func:`backoff_delay`.

    Attributes:
        base_s: ceiling of the first retry, seconds.
        cap_s: largest possible wait, seconds.
    """

    base_s: float
    cap_s: float

    def __post_init__(self) -> None:
        backoff_ceiling(0, base_s=self.base_s, cap_s=self.cap_s)  # validates

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (see :func:`backoff_delay`)."""
        return backoff_delay(attempt, base_s=self.base_s, cap_s=self.cap_s, rng=rng)
