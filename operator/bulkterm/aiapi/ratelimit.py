"""Client-side pacing: a concurrency cap plus an optional token bucket.

AI Core documents no control-plane rate limit, but a 10,000-target run must not turn into a
burst of thousands of GETs. The cap bounds in-flight requests; the bucket bounds the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType


class RateLimiter:
    """``async with limiter:`` waits for a free slot and, if rate-limited, for a token."""

    def __init__(
        self,
        concurrency: int,
        rate_per_second: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._slots = asyncio.Semaphore(concurrency)
        self._rate = rate_per_second
        self._burst = max(1.0, rate_per_second or 1.0)
        self._tokens = self._burst
        self._clock = clock
        self._updated = clock()
        self._bucket_lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            if self._rate is not None:
                await self._take_token()
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

    async def _take_token(self) -> None:
        assert self._rate is not None
        async with self._bucket_lock:
            while True:
                now = self._clock()
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self._rate)
