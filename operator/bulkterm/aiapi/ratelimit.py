"""Client-side pacing: a concurrency cap, an optional rate limit, and the server's word.

AI Core documents no control-plane rate limit, but a 10,000-target run must not turn into a
burst of thousands of GETs. The cap bounds in-flight requests; the rate is a leaky bucket from
``aiolimiter`` that lets one second's worth through at once (at least one request), then paces.

A ``Retry-After`` (429, 503) is about the tenant, not the one request that got it: the limiter
is shared by every client of a tenant (every CR in the operator), so :meth:`RateLimiter.hold`
makes all of them wait, instead of each run spending a request to learn the same thing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

from aiolimiter import AsyncLimiter


class RateLimiter:
    """``async with limiter:`` waits for a free slot and, if rate-limited, for capacity."""

    def __init__(
        self,
        concurrency: int,
        rate_per_second: float | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._slots = asyncio.Semaphore(concurrency)
        #: Event-loop time before which no request may start (a server's ``Retry-After``).
        self._resume_at = 0.0
        self._sleep = sleep
        self._rate: AsyncLimiter | None = None
        if rate_per_second is not None:
            burst = max(1.0, rate_per_second)
            self._rate = AsyncLimiter(burst, time_period=burst / rate_per_second)

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds`` (extends, never shortens, a hold under way)."""
        if seconds > 0:
            resume_at = asyncio.get_running_loop().time() + seconds
            self._resume_at = max(self._resume_at, resume_at)

    @property
    def held_for(self) -> float:
        """Seconds until requests may start again (0 when not held)."""
        return max(0.0, self._resume_at - asyncio.get_running_loop().time())

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            if self._rate is not None:
                await self._rate.acquire()
            await self._wait_out_hold()
        except BaseException:
            self._slots.release()
            raise

    async def _wait_out_hold(self) -> None:
        """Sleep until a hold ends; again while it was extended meanwhile.

        Checked with the slot (and rate token) in hand, so that requests already queued for a
        slot when a ``Retry-After`` came in do not start as soon as one frees. Keeping the
        slot while asleep costs nothing: no request may start during the hold anyway.

        A hold counts as waited out once slept through (an injected sleep need not move the
        loop's clock); only an extension made during the sleep is slept for again.
        """
        slept_until: float | None = None
        while (wait := self.held_for) > 0 and self._resume_at != slept_until:
            slept_until = self._resume_at
            await self._sleep(wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()
