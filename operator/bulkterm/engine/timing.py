"""How long to wait: after transient errors, and between polls.

Kept apart from the loop so both curves can be tested as plain functions with a seeded
random source, and so a shared executor can later apply one backoff per endpoint.
"""

from __future__ import annotations

import math
import random

from bulkterm.engine.settings import EngineSettings


def backoff_delay(
    streak: int, retry_after: float | None, settings: EngineSettings, rng: random.Random
) -> float:
    """Delay after the ``streak``-th transient failure in a row.

    Exponential with "equal jitter" (half fixed, half random) so that many runs hit by the
    same outage do not come back in lockstep; a server's ``Retry-After`` is a floor, since
    coming back earlier would only earn another 429.
    """
    try:
        # base * 2**(streak - 1), exact and without an intermediate power that could overflow
        growth = math.ldexp(settings.backoff_base_seconds, max(0, streak - 1))
    except OverflowError:  # past the largest float (~1,025 rounds), so past any ceiling
        growth = math.inf
    ceiling = min(settings.backoff_max_seconds, growth)
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, settings.max_retry_after_seconds))
    return delay


def poll_interval(spec_seconds: int, settings: EngineSettings) -> float:
    """``pollIntervalSeconds`` means what it says: one look at the open targets per interval.

    At 10,000 targets a look is ten list pages, so polling faster "while things move" would
    multiply the calls of every run. The only earlier wake-ups are decisions falling due (a resend timeout, an UNKNOWN grace period), and
    transient errors can only make the wait longer (backoff, ``Retry-After``).
    """
    return min(float(spec_seconds), settings.max_poll_seconds)
