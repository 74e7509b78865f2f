"""Backoff after transient errors saturates at its ceiling, however long the outage lasts."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from bulkterm.engine import EngineSettings
from bulkterm.engine.timing import backoff_delay


def test_backoff_after_a_million_failed_rounds_is_the_ceiling_not_an_overflow():
    s = EngineSettings(backoff_base_seconds=1, backoff_max_seconds=30)
    rng = random.Random(7)
    for streak in (1_024, 1_025, 1_026, 10_000, 10**6, 10**30):
        assert 15 <= backoff_delay(streak, None, s, rng) <= 30


def test_backoff_past_overflow_still_honours_retry_after_as_a_floor():
    s = EngineSettings(backoff_max_seconds=30, max_retry_after_seconds=300)
    assert backoff_delay(10**6, 120, s, random.Random(0)) == 120
    assert backoff_delay(10**6, 86_400, s, random.Random(0)) == 300


_seconds = st.floats(min_value=1e-3, max_value=1e7, allow_nan=False, allow_infinity=False)


@given(
    streak=st.integers(min_value=1, max_value=10**12),
    retry_after=st.none() | st.floats(allow_nan=False),
    base=_seconds,
    ceiling=_seconds,
    max_retry_after=_seconds,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_finite_and_bounded_for_any_streak(
    streak: int,
    retry_after: float | None,
    base: float,
    ceiling: float,
    max_retry_after: float,
    seed: int,
) -> None:
    s = EngineSettings(
        backoff_base_seconds=base,
        backoff_max_seconds=ceiling,
        max_retry_after_seconds=max_retry_after,
    )
    delay = backoff_delay(streak, retry_after, s, random.Random(seed))
    floor = min(retry_after, max_retry_after) if retry_after is not None and retry_after > 0 else 0
    assert math.isfinite(delay)
    assert 0 <= delay <= max(ceiling, floor)
    assert delay >= floor
