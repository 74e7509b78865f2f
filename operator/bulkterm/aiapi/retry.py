"""When a failed request is sent again, and after how long.

* Reads are resent after any :class:`TransientError`.
* Writes (PATCH, DELETE) only when the server certainly did not act on them
  (``not_executed``: 429, 503, no connection, no token). After a 500, 502, 504, a read
  timeout or a dropped connection the outcome is unknown and the write is never resent: the
  error goes up to the engine, which re-observes the items before it sends anything again.
  A blind resend could ask to stop an item that is already stopping, which the AI API refuses.
* The delay is exponential backoff with full jitter; ``Retry-After`` is a floor, capped.
* The budget is ``max_attempts`` attempts per call, the first included.

Hand-written rather than tenacity or stamina (evaluated): the rules that matter here, which
errors allow resending a write and full jitter from an injected RNG with ``Retry-After`` as a
capped floor, would be custom callbacks in either; stamina also replaces (not floors) the
backoff with a hook's value and has a process-wide test switch instead of an injected sleep.
What is left for a library is the ten-line loop in :meth:`RetryPolicy.run`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.settings import ClientSettings

T = TypeVar("T")


class RetryPolicy:
    """The retry rules of one client; ``sleep`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        sleep: Callable[[float], Awaitable[None]],
        rng: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._rng = rng

    @staticmethod
    def may_resend(error: TransientError, *, write: bool) -> bool:
        """Reads: always. Writes: only if the server certainly did not act on the request."""
        return not write or error.not_executed

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): a uniform draw
        below ``initial * 2**(attempt-1)`` (at most ``backoff_max``), but at least the
        server's ``Retry-After`` (at most ``retry_after_cap``)."""
        s = self.settings
        ceiling = min(s.backoff_max_seconds, s.backoff_initial_seconds * (2 ** (attempt - 1)))
        delay = ceiling * float(self._rng())
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.retry_after_cap_seconds))
        return float(delay)

    async def run(self, send: Callable[[], Awaitable[T]], *, write: bool) -> T:
        """``await send()``, again after each transient error the rules allow, within budget."""
        attempt = 1
        while True:
            try:
                return await send()
            except TransientError as error:
                if attempt >= self.settings.max_attempts or not self.may_resend(error, write=write):
                    raise
                await self._sleep(self.delay(attempt, error.retry_after))
                attempt += 1
