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
import time
from collections.abc import Awaitable, Callable
from typing import Any

Writer = Callable[[dict[str, Any]], Awaitable[None]]


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

    async def offer(self, status: dict[str, Any], *, force: bool = False) -> None:
        async with self._lock:
            if status == self._last:
                self._held = None
                self.skipped += 1
                return
            due = self._last_at + self._interval
            phase_changed = self._last is None or phase_of(status) != phase_of(self._last)
            if force or phase_changed or self._clock() >= due:
                await self._write_now(status)
                return
            self._held = status
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_at(due))

    async def close(self) -> None:
        """Write what is held back (if anything) and stop the background flush."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        async with self._lock:
            if self._held is not None:
                await self._write_now(self._held)

    async def _flush_at(self, due: float) -> None:
        await asyncio.sleep(max(0.0, due - self._clock()))
        async with self._lock:
            if self._held is not None:
                await self._write_now(self._held)

    async def _write_now(self, status: dict[str, Any]) -> None:
        await self._write(status)
        self._last = status
        self._last_at = self._clock()
        self._held = None
        self.writes += 1
