"""A selector, resolved: which AI API items it names, decided once, when a run starts.

The AI API filters a list by scenario, configuration, executables, execution schedule and one
status; everything else a selector says (several statuses, age by ``createdAt``, exclusions)
is decided here, from what the list returned. Pure but for :func:`resolve`, which makes the
one list request, so the choice is property-testable.

The result is frozen: a run works on the ids chosen at its start and never on ones that appear
later (a schedule starting new executions mid-run does not grow it), and a restart reads the
same ids back from the record (:func:`encode_ids`) instead of asking again.
"""

from __future__ import annotations

import base64
import gzip
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import NotFoundError
from bulkterm.aiapi.models import Kind, ScheduleStatus, Status, TargetStatus
from bulkterm.engine.progress import (
    SelectionRecord,
)
from bulkterm.spec import BulkTerminationSpec, Selector, Target

#: Statuses an item needs no action in, by target status: a selector without ``statuses``
#: leaves them out, so that ``maxTargets`` counts work to do, not history.
ALREADY_THERE = {
    TargetStatus.STOPPED: frozenset({Status.STOPPED, Status.COMPLETED, Status.DEAD}),
    TargetStatus.DELETED: frozenset[Status](),
}

# Why a listed item was not selected (the keys of ``Selection.excluded``).
NOT_IN_STATUSES = "status"
ALREADY = "alreadyAtTarget"
TOO_NEW = "createdTooRecently"
EXCLUDED = "excludeIds"
ALSO_LISTED = "alsoListed"


class ListedItem(Protocol):
    """What the AI API's list says of an item, as far as selection needs it."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> Status: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def execution_schedule_id(self) -> str | None: ...


class SelectionTooLarge(Exception):
    """More items matched than ``maxTargets`` allows: nothing may be sent."""

    def __init__(self, matched: int, limit: int) -> None:
        super().__init__(
            f"the selector matched {matched} items, more than its maxTargets of {limit}; "
            "narrow the selector (or raise maxTargets) and create a new BulkTermination"
        )
        self.matched = matched
        self.limit = limit


@dataclass(frozen=True)
class Selection:
    """The ids a selector chose, and why the other listed items were not chosen."""

    kind: Kind
    target_status: TargetStatus
    ids: tuple[str, ...]
    #: Items the AI API listed for the server-side filters.
    listed: int
    excluded: dict[str, int] = field(default_factory=dict)
    #: Schedules of the chosen executions (and the selector's own), sorted.
    schedules: tuple[str, ...] = ()

    def targets(self) -> list[Target]:
        return [Target(kind=self.kind, id=i, target_status=self.target_status) for i in self.ids]


def server_filters(selector: Selector) -> dict[str, Any]:
    """The list request's filters: what the AI API can decide itself."""
    filters: dict[str, Any] = {
        "scenario_id": selector.scenario_id,
        "configuration_id": selector.configuration_id,
        "executable_ids": list(selector.executable_ids) if selector.executable_ids else None,
    }
    if selector.kind is Kind.EXECUTION:
        filters["execution_schedule_id"] = selector.execution_schedule_id
    if selector.statuses is not None and len(selector.statuses) == 1:
        filters["status"] = selector.statuses[0]
    return {k: v for k, v in filters.items() if v is not None}


def cutoff(selector: Selector, now: datetime) -> datetime | None:
    """Items created at or after this time are too new (None: no age filter)."""
    bounds = [selector.created_before] if selector.created_before else []
    if selector.older_than_seconds is not None:
        bounds.append(now - timedelta(seconds=selector.older_than_seconds))
    return min(bounds) if bounds else None


def choose(
    selector: Selector,
    items: Iterable[ListedItem],
    *,
    now: datetime,
    already: Collection[str] = (),
) -> Selection:
    """The items ``selector`` names among ``items``, oldest first; ``already`` holds the ids
    of this kind the BulkTermination lists itself (they are its targets once, not twice).
    Raises :class:`SelectionTooLarge` past ``maxTargets``."""
    wanted = frozenset(selector.statuses) if selector.statuses else None
    skip_done = ALREADY_THERE[selector.target_status] if wanted is None else frozenset()
    too_new = cutoff(selector, now)
    excluded_ids = frozenset(selector.exclude_ids or ())
    excluded: Counter[str] = Counter()
    chosen: list[ListedItem] = []
    seen: set[str] = set()
    listed = 0
    for item in items:
        if item.id in seen:
            continue  # a list page repeated an item: it is one item
        seen.add(item.id)
        listed += 1
        if wanted is not None and item.status not in wanted:
            excluded[NOT_IN_STATUSES] += 1
        elif item.status in skip_done:
            excluded[ALREADY] += 1
        elif too_new is not None and (item.created_at is None or item.created_at >= too_new):
            excluded[TOO_NEW] += 1
        elif item.id in excluded_ids:
            excluded[EXCLUDED] += 1
        elif item.id in already:
            excluded[ALSO_LISTED] += 1
        else:
            chosen.append(item)
    if len(chosen) > selector.max_targets:
        raise SelectionTooLarge(len(chosen), selector.max_targets)
    chosen.sort(key=lambda i: (i.created_at is None, i.created_at or now, i.id))
    schedules = {i.execution_schedule_id for i in chosen if i.execution_schedule_id}
    if selector.execution_schedule_id:
        schedules.add(selector.execution_schedule_id)
    return Selection(
        kind=selector.kind,
        target_status=selector.target_status,
        ids=tuple(i.id for i in chosen),
        listed=listed,
        excluded=dict(sorted(excluded.items())),
        schedules=tuple(sorted(schedules)) if selector.kind is Kind.EXECUTION else (),
    )


async def resolve(
    selector: Selector, api: AiApi, *, now: datetime, already: Collection[str] = ()
) -> Selection:
    """One list request with the server-side filters, then :func:`choose`."""
    items = await api.list_items(selector.kind, **server_filters(selector))
    return choose(selector, items, now=now, already=already)


def encode_ids(ids: Sequence[str]) -> str:
    """Ids for the status record: gzip, then base64, so that the ids of a full run stay a
    small part of the status object."""
    return base64.b64encode(gzip.compress("\n".join(ids).encode(), mtime=0)).decode()


def decode_ids(text: str) -> tuple[str, ...]:
    """:func:`encode_ids` reversed; ``ValueError`` if ``text`` is not what it wrote."""
    try:
        raw = gzip.decompress(base64.b64decode(text, validate=True)).decode()
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(
            f"the recorded selection is unreadable ({exc.__class__.__name__})"
        ) from None
    return tuple(raw.split("\n")) if raw else ()


# --- a run's targets: the spec's own, then the selector's, frozen in the record --------------

#: Reason of the Failed condition when a selector matches more than ``maxTargets``.
TOO_MANY = "SelectorMatchedTooMany"
#: Reason of the Failed condition when the record's selection cannot be read back.
UNREADABLE = "SelectionUnreadable"


class SelectionRefused(Exception):
    """The run must end Failed before any write: ``reason`` and ``message`` say why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def run_targets(
    spec: BulkTerminationSpec,
    api: AiApi,
    record: SelectionRecord | None,
    *,
    now: datetime,
) -> tuple[list[Target], SelectionRecord | None]:
    """The targets of a run and the selection record to keep with its status.

    Without a selector: ``spec.targets``. With one: ``spec.targets`` and then the ids the
    selector resolved to, from ``record`` when the run already resolved it (a restart), else
    from one list request now. Raises :class:`SelectionRefused` (nothing sent yet)."""
    listed = list(spec.targets)
    selector = spec.selector
    if selector is None:
        return listed, None
    if record is not None:
        return recorded_targets(spec, record), record
    already = {t.id for t in listed if t.kind is selector.kind}
    try:
        selection = await resolve(selector, api, now=now, already=already)
    except SelectionTooLarge as exc:
        raise SelectionRefused(TOO_MANY, f"spec.selector: {exc}") from None
    fresh = SelectionRecord(
        kind=selection.kind,
        target_status=selection.target_status,
        resolved_at=now,
        listed=selection.listed,
        selected=len(selection.ids),
        first_index=len(listed),
        excluded=selection.excluded,
        ids=encode_ids(selection.ids),
        schedules=list(selection.schedules) if selector.pause_execution_schedules else [],
    )
    return listed + selection.targets(), fresh


def recorded_targets(spec: BulkTerminationSpec, record: SelectionRecord | None) -> list[Target]:
    """The targets of a run that resolved its selector already: ``spec.targets``, then the
    recorded selection. Raises :class:`SelectionRefused` if the record is unreadable."""
    listed = list(spec.targets)
    if record is None:
        return listed
    try:
        ids = decode_ids(record.ids)
    except ValueError as exc:
        raise SelectionRefused(UNREADABLE, f"status.selection: {exc}") from None
    return listed + Selection(record.kind, record.target_status, ids, record.listed).targets()


async def note_active_schedules(api: AiApi, record: SelectionRecord) -> SelectionRecord:
    """The record with ``schedulesActive``: which of its schedules are ACTIVE, read once
    before the first is paused (what a restore sets ACTIVE again, and only that)."""
    if record.schedules_active is not None or not record.schedules:
        return record
    active = {s.id for s in await api.list_execution_schedules(status=ScheduleStatus.ACTIVE)}
    noted = [schedule for schedule in record.schedules if schedule in active]
    return record.model_copy(update={"schedules_active": noted})


async def pause_schedules(api: AiApi, record: SelectionRecord) -> SelectionRecord:
    """Set the record's schedules INACTIVE (idempotent: a paused one stays paused, a deleted
    one starts nothing either); returns the record with ``schedulesPaused`` brought up to date.
    AI API errors other than a missing schedule propagate: no target may be sent before its
    schedule is paused."""
    paused = record.schedules_paused
    for schedule_id in record.schedules[paused:]:
        try:
            await api.pause_execution_schedule(schedule_id)
        except NotFoundError:
            pass
        paused += 1
    return record.model_copy(update={"schedules_paused": paused})


def describe_selection(record: SelectionRecord) -> str:
    """One line: what the selector chose, and why the rest was left."""
    kind = record.kind.collection
    line = f"selector: {record.selected} {kind} chosen of {record.listed} listed"
    if record.excluded:
        reasons = ", ".join(f"{n} {why}" for why, n in record.excluded.items())
        line += f" (left out: {reasons})"
    if record.schedules:
        line += f"; {len(record.schedules)} execution schedule(s) to pause first"
    return line
