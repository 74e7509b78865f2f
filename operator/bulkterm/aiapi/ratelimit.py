"""Client-side pacing: a concurrency cap plus an optional rate limit.

AI Core documents no control-plane rate limit, but a 10,000-target run must not turn into a
burst of thousands of GETs. The cap bounds in-flight requests; the rate is a leaky bucket from
``aiolimiter`` that lets one second's worth through at once (at least one request), then paces.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiolimiter import AsyncLimiter


class RateLimiter:
    """``async with limiter:`` waits for a free slot and, if rate-limited, for capacity."""

    def __init__(self, concurrency: int, rate_per_second: float | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._slots = asyncio.Semaphore(concurrency)
        self._rate: AsyncLimiter | None = None
        if rate_per_second is not None:
            burst = max(1.0, rate_per_second)
            self._rate = AsyncLimiter(burst, time_period=burst / rate_per_second)

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            if self._rate is not None:
                await self._rate.acquire()
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()
