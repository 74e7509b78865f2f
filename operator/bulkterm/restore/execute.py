"""Carrying out a restore plan against the AI API, journalled ahead (see :mod:`.journal`).

Creations go out in batches: each batch is journalled as requested before its POSTs are sent,
and completed with the new ids after. The client's rate limit and concurrency cap pace every
call, as for a run; there is no bulk create in the AI API, so each creation is one POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bulkterm.aiapi.errors import AiApiError, AuthError, NotFoundError, TransientError
from bulkterm.aiapi.models import (
    ItemState,
    ItemSummary,
    Kind,
    ScheduleStatus,
    ScheduleSummary,
    Status,
)
from bulkterm.engine.restore_points import RestorePoint
from bulkterm.restore.journal import Journal, JournalEntry, JournalStore
from bulkterm.restore.plan import Creation, RestorePlan

#: How far before its request an item may have been created and still be that request's
#: result (the client's and the AI API's clocks differ).
CLOCK_SKEW = timedelta(seconds=60)
#: How long after its request a created item may still be missing from a list.
LIST_LAG = timedelta(minutes=2)
BATCH = 50


class RestoreApi(Protocol):
    """The AI API calls a restore makes (:class:`~bulkterm.aiapi.client.AiApiClient`)."""

    async def list_states(self, kind: Kind, *, page_size: int | None = None) -> list[ItemState]: ...

    async def list_items(
        self, kind: Kind, *, configuration_id: str | None = None
    ) -> list[ItemSummary]: ...

    async def list_execution_schedules(self) -> list[ScheduleSummary]: ...

    async def create(self, kind: Kind, configuration_id: str) -> str: ...

    async def set_execution_schedule_status(
        self, schedule_id: str, status: ScheduleStatus
    ) -> None: ...


@dataclass
class RestoreReport:
    created: list[JournalEntry] = field(default_factory=list)
    #: Requested earlier without a known answer, and found created since.
    adopted: list[JournalEntry] = field(default_factory=list)
    failed: list[tuple[Creation, str]] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    schedule_failures: list[tuple[str, str]] = field(default_factory=list)
    #: Still without a known answer: the next restore settles them.
    unsettled: list[JournalEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.schedule_failures or self.unsettled)


async def current_states(
    api: RestoreApi, points: Sequence[RestorePoint]
) -> dict[tuple[Kind, str], Status | None]:
    """Each recorded target's status now; absent from its list: gone."""
    states: dict[tuple[Kind, str], Status | None] = {}
    for kind in {p.kind for p in points}:
        listed = {s.id: s.status for s in await api.list_states(kind)}
        for point in points:
            if point.kind is kind:
                states[(kind, point.id)] = listed.get(point.id)
    return states


async def inactive_schedules(api: RestoreApi, paused: Sequence[str]) -> list[str]:
    if not paused:
        return []
    statuses = {s.id: s.status for s in await api.list_execution_schedules()}
    return [s for s in paused if statuses.get(s) == ScheduleStatus.INACTIVE]


async def settle(
    api: RestoreApi, journal: Journal, store: JournalStore, recorded: set[str], now: datetime
) -> list[JournalEntry]:
    """Every requested entry without an answer: given the item created for it since, if one is
    found unclaimed. One not found is dropped (so that it is created again) only once it was
    requested :data:`LIST_LAG` ago: a list may not show an item created a moment before, and
    dropping it then would make a second. Returns the adopted."""
    pending = journal.unsettled()
    if not pending:
        return []
    claimed = {e.new_id for e in journal.entries if e.new_id} | recorded
    adopted: list[JournalEntry] = []
    for kind, configuration in sorted({(e.kind, e.configuration_id) for e in pending}):
        items = await api.list_items(kind, configuration_id=configuration)
        fresh = sorted(
            (i for i in items if i.id not in claimed), key=lambda i: (i.created_at, i.id)
        )
        waiting = sorted(
            (e for e in pending if (e.kind, e.configuration_id) == (kind, configuration)),
            key=lambda e: e.requested_at,
        )
        for entry in waiting:
            match = next(
                (i for i in fresh if i.created_at >= entry.requested_at - CLOCK_SKEW), None
            )
            if match is None:
                if now - entry.requested_at > LIST_LAG:
                    journal.entries.remove(entry)
                continue
            fresh.remove(match)
            claimed.add(match.id)
            entry.new_id = match.id
            adopted.append(entry)
    store.save(journal)
    return adopted


async def carry_out(
    api: RestoreApi,
    plan: RestorePlan,
    journal: Journal,
    store: JournalStore,
    *,
    now: Callable[[], datetime],
    recorded: set[str],
    on_created: Callable[[JournalEntry], None] = lambda _: None,
) -> RestoreReport:
    """Create what ``plan`` says, then set its schedules ACTIVE. ``recorded``: the old ids
    (never taken for a new item). :class:`AuthError` stops it (the journal says how far)."""
    report = RestoreReport()
    for first in range(0, len(plan.creations), BATCH):
        batch = plan.creations[first : first + BATCH]
        entries = [
            JournalEntry(
                kind=c.kind,
                old_id=c.old_id,
                configuration_id=c.configuration_id,
                requested_at=now(),
            )
            for c in batch
        ]
        journal.entries.extend(entries)
        store.save(journal)  # requested before sent: a crash leaves entries to settle
        answers = await asyncio.gather(
            *(api.create(c.kind, c.configuration_id) for c in batch), return_exceptions=True
        )
        doubtful = False
        refused: AuthError | None = None
        for creation, entry, answer in zip(batch, entries, answers, strict=True):
            if isinstance(answer, str):
                entry.new_id = answer
                report.created.append(entry)
                on_created(entry)
            elif isinstance(answer, AuthError):
                journal.entries.remove(entry)
                refused = answer
            elif isinstance(answer, TransientError) and not answer.not_executed:
                doubtful = True  # maybe created: settled below by looking
            elif isinstance(answer, AiApiError):
                journal.entries.remove(entry)
                report.failed.append((creation, str(answer)))
            else:
                store.save(journal)
                raise answer
        store.save(journal)  # every answer of the batch kept before a refusal ends it
        if refused is not None:
            raise refused
        if doubtful:
            for entry in await settle(api, journal, store, recorded, now()):
                report.adopted.append(entry)
                on_created(entry)
    for schedule in plan.schedules:
        try:
            await api.set_execution_schedule_status(schedule, ScheduleStatus.ACTIVE)
            report.activated.append(schedule)
        except NotFoundError:
            report.schedule_failures.append((schedule, "the schedule no longer exists"))
        except AuthError:
            raise
        except AiApiError as exc:
            report.schedule_failures.append((schedule, str(exc)))
    report.unsettled = journal.unsettled()
    return report
