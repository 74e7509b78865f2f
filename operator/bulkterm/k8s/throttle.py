"""Throttled, de-duplicated status writes.

A 10,000-target run polls every few seconds for an hour; writing status on every poll would be
thousands of writes per CR and a watch event for every client of the API server. So a write
happens only when the status differs from the last one written, and then at most once per
``interval`` — except a change of phase (a condition's status or reason), which is written at
once, and the final write, which is forced. A change held back is flushed when its slot comes,
so the last state always lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bulkterm import metrics

Writer = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger(__name__)
#: Pauses between the attempts of the final write when the API server keeps failing.
CLOSE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)


def phase_of(status: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """The part of a status whose change must be written immediately."""
    conditions = status.get("conditions") or []
    return tuple(
        sorted(
            (str(c.get("type")), str(c.get("status")), str(c.get("reason")))
            for c in conditions
            if isinstance(c, dict)
        )
    )


class StatusThrottle:
    """Offers statuses; writes the ones that matter, when they may be written."""

    def __init__(
        self,
        write: Writer,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        last_written: dict[str, Any] | None = None,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._last: dict[str, Any] | None = last_written
        self._last_at = float("-inf")
        self._held: dict[str, Any] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.writes = 0
        self.skipped = 0
        self.failures = 0

    async def offer(self, status: dict[str, Any], *, force: bool = False) -> bool:
        """Write ``status`` now if it may be, else hold it back for its slot.

        Returns whether ``status`` is on the server when this returns: True if it was written
        now or equals the last status written; False if it is held back (throttled) or its
        write failed (it is then retried in the background). For a forced offer, False
        always means the write failed."""
        async with self._lock:
            if status == self._last:
                self._held = None
                self.skipped += 1
                return True
            due = self._last_at + self._interval
            phase_changed = self._last is None or phase_of(status) != phase_of(self._last)
            if force or phase_changed or self._clock() >= due:
                return await self._write_now(status)
            self._held = status
            self._schedule(due)
            return False

    async def close(self, retry_delays: tuple[float, ...] = CLOSE_RETRY_DELAYS) -> bool:
        """Write what is held back (if anything) and stop the background flush.

        Returns False if the API server refused the last status even after retries."""
        await self._cancel_flusher()
        for delay in (*retry_delays, None):
            async with self._lock:
                written = self._held is None or await self._write_now(self._held)
            await self._cancel_flusher()  # close() does its own retrying
            if written:
                return True
            if delay is None:
                return False
            await asyncio.sleep(delay)
        return False

    async def _cancel_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not asyncio.current_task():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    def _schedule(self, due: float) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_at(due))

    async def _flush_at(self, due: float) -> None:
        await asyncio.sleep(max(0.0, due - self._clock()))
        async with self._lock:
            if self._held is not None:
                await self._write_now(self._held)

    async def _write_now(self, status: dict[str, Any]) -> bool:
        """Write ``status``; on failure keep it held and try again later, never raise:
        a hiccup of the API server must not abort the run whose progress it records."""
        try:
            await self._write(status)
        except Exception as exc:
            self.failures += 1
            metrics.STATUS_WRITE_FAILURES.inc()
            code = getattr(exc, "status", None)
            log.warning(
                "status write failed (%s%s); retrying",
                type(exc).__name__,
                f" HTTP {code}" if code else "",
            )
            self._held = status
            self._flusher = None
            self._schedule(self._clock() + max(self._interval, 1.0))
            return False
        self._last = status
        self._last_at = self._clock()
        self._held = None
        self.writes += 1
        return True
