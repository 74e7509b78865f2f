"""The pace of status writes: at most one per interval, urgent and forced ones at once.

A large run polls every few seconds for an hour; writing its status on every poll would be
thousands of writes per CR and a watch event for every client of the API server. So progress is
written at most once per ``interval``; an urgent status (a change of phase, the run's reporter
decides) is written at once, and a forced one (a checkpoint) at once and waited for. A status
held back is flushed when its slot comes, so the last state always lands.

The throttle never looks into a status: what to write is decided before it (the run's
reporter), and whether a write changes anything after it (the status writer's patch).

An offer can leave the write to the background (``wait=False``): the caller goes on at once and
the throttle writes the status when its slot comes. Progress is offered that way, so a run never
waits for a write that need not land before it goes on (on a large CR the API server takes a
second or more to store one, docs/adr/0003). Writes stay in order: one at a time, under one
lock, and a background write never overtakes a newer one.
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


class StatusThrottle:
    """Takes statuses; writes each when it may be written, the newest last."""

    def __init__(
        self,
        write: Writer,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._last_at = float("-inf")
        self._held: dict[str, Any] | None = None
        self._held_urgent = False
        self._flusher: asyncio.Task[None] | None = None
        #: When the flusher will write (while it sleeps), and whether it is writing now.
        self._flush_due = float("inf")
        self._flushing = False
        self._lock = asyncio.Lock()
        self.writes = 0
        self.failures = 0
        #: The API server answered 404: the resource is gone, nothing more is written.
        self.gone = False

    async def offer(
        self,
        status: dict[str, Any],
        *,
        force: bool = False,
        wait: bool = True,
        urgent: bool = False,
    ) -> bool:
        """Write ``status`` now if it may be (the first, a forced or an ``urgent`` one, or its
        slot has come), else hold it back for its slot.

        Returns whether ``status`` is on the server when this returns: True if it was written
        now; False if it is held back (throttled) or its write failed (it is then retried in
        the background). For a forced offer, False always means the write failed.
        ``wait=False`` (ignored with ``force``): never wait for a write; what would be written
        now is written in the background at once."""
        if self.gone:
            return False
        if not wait and not force:
            return self._hold(status, urgent)
        async with self._lock:
            if self.gone:
                return False
            due = self._due(urgent)
            if force or self._clock() >= due:
                self._held = None  # older than this one (its producer waits for this offer)
                return await self._write_now(status)
            self._held, self._held_urgent = status, urgent
            self._schedule(due)
            return False

    def _hold(self, status: dict[str, Any], urgent: bool) -> bool:
        """The offer that does not wait: hold ``status`` and see that the flusher writes it."""
        self._held, self._held_urgent = status, urgent
        due = self._due(urgent)
        if self._flusher is not None and not self._flusher.done():
            if self._flushing or due >= self._flush_due:
                return False  # the running flusher writes it (after its write, if writing)
            self._flusher.cancel()  # asleep until later than this status may be written
        self._start_flusher(due)
        return False

    def _due(self, urgent: bool) -> float:
        """When a status may be written: at once the first and an urgent one, else after the
        interval since the last write."""
        if urgent or self.writes == 0:
            return self._clock()
        return self._last_at + self._interval

    async def close(
        self,
        retry_delays: tuple[float, ...] = CLOSE_RETRY_DELAYS,
        *,
        stop: asyncio.Event | None = None,
    ) -> bool:
        """Write what is held back (if anything) and stop the background flush.

        Returns False if the API server refused the last status even after retries, or the
        resource is ``gone``. ``stop``, once set, ends the retries at once (the operator is
        stopping: it must exit within its grace period, not wait out a refusal)."""
        await self._cancel_flusher()
        for delay in (*retry_delays, None):
            async with self._lock:
                written = self._held is None or await self._write_now(self._held)
            await self._cancel_flusher()  # close() does its own retrying
            if self.gone:
                return False
            if written:
                return True
            if delay is None or (stop is not None and stop.is_set()):
                return False
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return False

    async def _cancel_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not asyncio.current_task():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    def _schedule(self, due: float) -> None:
        if self._flusher is None or self._flusher.done():
            self._start_flusher(due)

    def _start_flusher(self, due: float) -> None:
        self._flush_due = due
        self._flusher = asyncio.create_task(self._flush_at(due))

    async def _flush_at(self, due: float) -> None:
        """Write what is held when ``due``; and again for what was held meanwhile (a
        background offer during the write), when that one's slot comes."""
        while True:
            await asyncio.sleep(max(0.0, due - self._clock()))
            async with self._lock:
                held = self._held
                if held is None:
                    return
                self._flushing = True
                try:
                    if not await self._write_now(held):
                        return  # _write_now has scheduled the retry
                finally:
                    self._flushing = False
                if self._held is None:
                    return
                due = self._due(self._held_urgent)
                self._flush_due = due

    async def _write_now(self, status: dict[str, Any]) -> bool:
        """Write ``status``; on failure keep it held and try again later, never raise:
        a hiccup of the API server must not abort the run whose progress it records."""
        try:
            await self._write(status)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                # Deleted (its finalizer already gone): no retry, no warning; the run is over
                # and its owner says so once (see ``gone``).
                self.gone = True
                self._held = None
                return False
            self.failures += 1
            metrics.STATUS_WRITE_FAILURES.inc()
            code = getattr(exc, "status", None)
            log.warning(
                "status write failed (%s%s); retrying",
                type(exc).__name__,
                f" HTTP {code}" if code else "",
            )
            if self._held is None:  # else a newer status came meanwhile: that one is retried
                self._held = status
            if self._flusher is asyncio.current_task():
                self._flusher = None  # it returns after this: a new one retries
            # Else (a forced offer, close()) a flusher that is still there retries it: replacing
            # it would leave it running unseen, and close() could not stop it (each failed
            # write left one more, every one retrying a refused write for ever).
            self._schedule(self._clock() + max(self._interval, 1.0))
            return False
        self._last_at = self._clock()
        if self._held is status:  # a status held while this one was written stays held
            self._held = None
        self.writes += 1
        return True
