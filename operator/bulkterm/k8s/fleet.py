"""Many BulkTerminations, one AI API: the reads every run of a tenant and resource group make
alike are made once.

Each run polls by listing whole kinds (``$select=status``, paged): a hundred runs of a hundred
targets would list the same ten thousand items a hundred times per poll, where one run of ten
thousand lists them once. So the runs of one tenant, credentials and resource group share a
:class:`SharedReads`:

* a list or ``$count`` already under way, or finished less than ``max_age`` seconds ago, is
  shared, **but only with runs whose last write finished before it started**: no run ever
  sees a listing older than its own last accepted write, which is exactly the guarantee an
  unshared listing gave it (the AI API changes status asynchronously anyway);
* ``GET /meta`` (capabilities) is read once per ``meta_ttl``.

Bulk PATCHes are merged too, into shared requests of at most 100 items
(:class:`~bulkterm.k8s.bulkmerge.BulkMerger`); each run gets back exactly its items' answers.

Single STOPs and DELETEs asked by several runs at once are sent once. What was accepted, or
may have been, is remembered (:class:`~bulkterm.k8s.accepted.AcceptedActions`): an action
already under way answers a later submission of it, reads show it as ``targetStatus`` would,
and no run writes to an item while another's write to it is unanswered or of unknown outcome.
Item GETs stay each run's own. The shared calls go through the client of the
:class:`SharedReads`, which outlives every run that uses it, so a run that ends never cancels a
listing or a write another run waits for. (:class:`~bulkterm.k8s.clients.ClientPool` gives a
run that same client for its own calls too; each run still counts its own writes.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bulkterm.aiapi.base import AiApi, ForwardingApi
from bulkterm.aiapi.models import (
    BulkItemResult,
    Capabilities,
    ItemState,
    Kind,
    Status,
    TargetStatus,
)
from bulkterm.k8s.accepted import AcceptedActions, maybe_acted_on
from bulkterm.k8s.bulkmerge import BulkMerger

T = TypeVar("T")

#: How old a shared listing may be for a run whose last write finished before it started.
MAX_AGE_SECONDS = 2.0
#: Capabilities do not change during a run; a new tenant configuration shows within this.
META_TTL_SECONDS = 60.0


@dataclass
class _Flight:
    started: float
    task: asyncio.Future[Any]


class SharedReads:
    """The reads of one tenant, credentials and resource group, shared by its runs (and their
    merged bulk PATCHes, :attr:`bulk`)."""

    def __init__(
        self,
        reader: AiApi,
        *,
        max_age: float = MAX_AGE_SECONDS,
        meta_ttl: float = META_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.accepted = AcceptedActions(clock)
        #: Single STOPs and DELETEs sent and not yet answered, shared by the runs asking them.
        self.singles: dict[tuple[Kind, str, TargetStatus], asyncio.Future[None]] = {}
        self.bulk = BulkMerger(reader, accepted=self.accepted, singles=self.singles)
        self._max_age = max_age
        self._meta_ttl = meta_ttl
        self._clock = clock
        self._flights: dict[tuple[Any, ...], _Flight] = {}

    async def _share(
        self,
        key: tuple[Any, ...],
        not_before: float,
        max_age: float,
        call: Callable[[], Awaitable[T]],
    ) -> tuple[T, float]:
        """The result, and when the read that produced it began."""
        now = self._clock()
        flight = self._flights.get(key)
        if flight is not None and self._usable(flight, not_before, max_age, now):
            result: T = await asyncio.shield(flight.task)
            return result, flight.started
        task: asyncio.Future[T] = asyncio.ensure_future(call())
        # Every run that waited may have been cancelled meanwhile (a run ends, a replica
        # stops): the error is then nobody's, and must not be logged as never retrieved.
        task.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._flights[key] = _Flight(now, task)
        return await asyncio.shield(task), now

    @staticmethod
    def _usable(flight: _Flight, not_before: float, max_age: float, now: float) -> bool:
        if flight.started <= not_before:
            return False  # it may not show this run's last write
        if not flight.task.done():
            return True
        if flight.task.cancelled() or flight.task.exception() is not None:
            return False  # an error is each run's to retry
        return now - flight.started <= max_age

    async def meta(self) -> Capabilities:
        meta, _ = await self._share(("meta",), float("-inf"), self._meta_ttl, self.reader.meta)
        return meta

    async def list_states(
        self, kind: Kind, *, status: Status | None, page_size: int, not_before: float
    ) -> list[ItemState]:
        states, started = await self._share(
            ("list", kind, status, page_size),
            not_before,
            self._max_age,
            lambda: self.reader.list_states(kind, status=status, page_size=page_size),
        )
        return [self.accepted.overlay(kind, s, started) for s in states]  # each run its own

    async def count(self, kind: Kind, *, status: Status | None, not_before: float) -> int:
        count, _ = await self._share(
            ("count", kind, status),
            not_before,
            self._max_age,
            lambda: self.reader.count(kind, status=status),
        )
        return count

    async def close(self) -> None:
        """Cancel what nobody waits for any more (the last run has left)."""
        await self.bulk.close()
        for flight in self._flights.values():
            flight.task.cancel()
        await asyncio.gather(*(f.task for f in self._flights.values()), return_exceptions=True)
        self._flights.clear()
        # A single write shared by runs that have all left: it must not go on with a client
        # that closes next.
        singles = list(self.singles.values())
        for single in singles:
            single.cancel()
        await asyncio.gather(*singles, return_exceptions=True)


class FleetApi(ForwardingApi):
    """One run's view of the AI API: its own writes and item reads, the shared listings and
    merged bulk requests.

    Remembers when its last write finished, so that no shared listing older than that reaches
    it (see :class:`SharedReads`)."""

    def __init__(
        self, own: AiApi, shared: SharedReads, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(own)
        #: This run's writes, each counted once per call: ``own`` may serve other runs too,
        #: so its counter is not this run's.
        self.calls = Counter()
        self._shared = shared
        self._clock = clock
        self._last_write = float("-inf")

    async def _write(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        finally:
            # Also after an error: the write may have reached the server.
            self._last_write = self._clock()

    async def meta(self) -> Capabilities:
        return await self._shared.meta()

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        return await self._shared.list_states(
            kind, status=status, page_size=page_size, not_before=self._last_write
        )

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        return await self._shared.count(kind, status=status, not_before=self._last_write)

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        read_at = self._clock()
        state = await super().get_state(kind, item_id, full=full)
        if full:
            self._shared.accepted.learn(kind, state)
            return state
        return self._shared.accepted.overlay(kind, state, read_at)

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        # Counted here as this run's batch (the merged request is the shared client's).
        self.calls[f"bulk_patch {kind.collection}"] += 1
        return await self._write(lambda: self._shared.bulk.submit(kind, items, id(self)))

    async def stop(self, kind: Kind, item_id: str) -> None:
        await self._single(kind, item_id, TargetStatus.STOPPED)

    async def delete(self, kind: Kind, item_id: str) -> None:
        await self._single(kind, item_id, TargetStatus.DELETED)

    async def _single(self, kind: Kind, item_id: str, action: TargetStatus) -> None:
        """A single STOP or DELETE: sent once for all runs of the group. One already under
        way (accepted, or sent by another run and not yet answered) is this run's answer
        too, so two runs never race two writes to one item."""
        shared = self._shared
        if shared.accepted.covers(kind, item_id, action):
            return
        held = shared.accepted.held_for(kind, item_id, id(self)) or shared.bulk.writing(
            kind, item_id, action
        )
        if held is not None:
            raise held
        key = (kind, item_id, action)
        flight = shared.singles.get(key)
        if flight is None:
            # Through the shared client, not this run's: a run that ends (its own client
            # closed) must not break a write the other runs wait for.
            reader = shared.reader
            own = reader.stop if action is TargetStatus.STOPPED else reader.delete
            writer = id(self)

            async def send() -> None:
                try:
                    await own(kind, item_id)
                except Exception as e:
                    if maybe_acted_on(e):
                        shared.accepted.note(kind, item_id, action, maybe=True, writer=writer)
                    raise
                # Noted before the answer is handed out: no run may ask in between.
                shared.accepted.note(kind, item_id, action)

            flight = shared.singles[key] = asyncio.ensure_future(send())
            flight.add_done_callback(lambda _: shared.singles.pop(key, None))
            flight.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.calls[
            f"{'stop' if action is TargetStatus.STOPPED else 'delete'} {kind.collection}"
        ] += 1
        await self._write(lambda: asyncio.shield(flight))

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        self.calls["patch executionSchedules"] += 1
        await self._write(lambda: super(FleetApi, self).pause_execution_schedule(schedule_id))
