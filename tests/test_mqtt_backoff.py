"""The reconnect backoff: full-jitter exponential, a pure function of (attempt, base, cap, rng)."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensorhub.mqtt.backoff import Backoff, backoff_ceiling, backoff_delay


def test_ceiling_doubles_from_base_until_cap() -> None:
    ceilings = [backoff_ceiling(n, base_s=0.5, cap_s=30.0) for n in range(9)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    assert backoff_ceiling(10**9, base_s=0.5, cap_s=30.0) == 30.0
    assert backoff_delay(10**9, rng=random.Random(1)) <= 30.0


def test_same_seed_same_schedule_and_different_seeds_differ() -> None:
    schedule_a = [backoff_delay(n, rng=random.Random(7)) for n in range(10)]
    schedule_b = [backoff_delay(n, rng=random.Random(7)) for n in range(10)]
    schedule_c = [backoff_delay(n, rng=random.Random(8)) for n in range(10)]
    assert schedule_a == schedule_b
    assert schedule_a != schedule_c


def test_delays_fill_zero_to_ceiling_uniformly() -> None:
    """Full jitter: U(0, ceiling); with 20 000 draws the mean is within 2 % of ceiling / 2."""
    rng = random.Random(42)
    draws = [backoff_delay(3, base_s=0.5, cap_s=30.0, rng=rng) for _ in range(20_000)]
    assert min(draws) >= 0.0
    assert max(draws) <= 4.0
    assert min(draws) < 0.01
    assert max(draws) > 3.99
    assert statistics.fmean(draws) == pytest.approx(2.0, rel=0.02)


def test_backoff_record_matches_the_function() -> None:
    policy = Backoff(base_s=0.25, cap_s=1.5)
    assert [policy.delay(n, random.Random(n)) for n in range(6)] == [
        backoff_delay(n, base_s=0.25, cap_s=1.5, rng=random.Random(n)) for n in range(6)
    ]


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s"),
    [(-1, 0.5, 30.0), (0, 0.0, 30.0), (0, -1.0, 30.0), (0, 2.0, 1.0), (0, 0.5, float("inf")), (0, float("nan"), 1.0)],
)
def test_bad_arguments_are_refused(attempt: int, base_s: float, cap_s: float) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(0))


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="need"):
        Backoff(base_s=5.0, cap_s=1.0)


@given(
    attempt=st.integers(min_value=0, max_value=10**12),
    base_s=st.floats(min_value=1e-3, max_value=10.0),
    extra_s=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_always_within_zero_and_the_ceiling(attempt: int, base_s: float, extra_s: float, seed: int) -> None:
    cap_s = base_s + extra_s
    delay = backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(seed))
    assert 0.0 <= delay <= backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s) <= cap_s
