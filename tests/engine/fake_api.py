"""An in-memory AI API that enforces the contract's rules and remembers every breach.

It implements the :class:`~bulkterm.aiapi.base.AiApi` protocol the engine talks to, with
the lifecycle of contract §4/§8 (STOP → STOPPING → STOPPED; DELETE → targetStatus DELETED
→ gone), driven by a fake clock that only moves when the engine sleeps. That makes every
run deterministic and free of races: what the engine observed in a round is exactly what
the API holds when the round's requests arrive, so any rule broken is the engine's fault.

Breaches are *recorded* (``violations``) and answered the way the API would (a per-item
error), so tests can assert "no violations" at the end instead of crashing mid-run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bulkterm.aiapi.errors import (
    AuthError,
    BulkUnsupportedError,
    InvalidBatchError,
    NotFoundError,
    PermanentError,
)
from bulkterm.aiapi.models import (
    ID_PATTERN,
    MAX_BULK_ITEMS,
    ApiErrorBody,
    BulkItemResult,
    BulkUpdates,
    Capabilities,
    ItemState,
    ItemSummary,
    Kind,
    ScheduleStatus,
    ScheduleSummary,
    Status,
    TargetStatus,
)

START = datetime(2025, 1, 1, tzinfo=UTC)

STOPPABLE = {Status.PENDING, Status.RUNNING}
DELETABLE = {Status.STOPPED, Status.DEAD, Status.UNKNOWN, Status.COMPLETED}


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class Item:
    kind: Kind
    id: str
    status: Status
    target_status: str | None
    #: When a STOP was accepted; a STOP that arrives while this is set hits a moving item.
    stop_accepted_at: datetime | None = None
    delete_accepted_at: datetime | None = None
    created_at: datetime = START
    configuration_id: str = "fake-configuration"
    scenario_id: str = "fake-scenario"
    executable_id: str = "fake-executable"
    execution_schedule_id: str | None = None


@dataclass
class Schedule:
    """An execution schedule: while ACTIVE it starts an execution every ``period_seconds``."""

    id: str
    configuration_id: str
    scenario_id: str
    status: ScheduleStatus
    period_seconds: float
    next_run: datetime
    created_at: datetime
    modified_at: datetime
    runs: int = 0


@dataclass(frozen=True)
class Sent:
    """One item of one write request, with the item's state when the request arrived."""

    at: datetime
    request: int
    kind: Kind
    id: str
    action: TargetStatus
    via: str
    status_before: Status | None
    target_status_before: str | None
    stop_accepted_at: datetime | None
    delete_accepted_at: datetime | None


@dataclass
class FakeAiApi:
    clock: FakeClock
    bulk_updates: BulkUpdates = field(
        default_factory=lambda: BulkUpdates(deployments=True, executions=True)
    )
    #: Seconds from an accepted STOP to STOPPING, and on to STOPPED.
    stop_lag_seconds: float = 0.0
    stop_seconds: float = 2.0
    #: Seconds from an accepted DELETE to the item disappearing.
    delete_seconds: float = 3.0
    #: False mimics ``$select=status`` leaving ``targetStatus`` out.
    report_target_status: bool = True

    calls: Counter[str] = field(default_factory=Counter)
    items: dict[tuple[Kind, str], Item] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: Errors to raise on the next calls of a method ("meta", "list", "get", "count",
    #: "bulk_patch", "stop", "delete", "list_schedules", "pause_schedule"), in order.
    fail_next: dict[str, list[Exception]] = field(default_factory=dict)
    #: Per-item errors to give (in order) to the next writes of an id.
    refuse: dict[str, list[ApiErrorBody]] = field(default_factory=dict)
    #: Ids whose writes are accepted but never take effect (a lost action).
    ineffective: set[str] = field(default_factory=set)
    #: Kinds whose bulk PATCH the server refuses although meta advertises it.
    bulk_refused: set[Kind] = field(default_factory=set)
    #: When set, every call raises this (e.g. an AuthError for revoked credentials).
    always_fail: Exception | None = None

    #: Highest number of single calls (GET one, stop, delete) in progress at once.
    max_concurrent_singles: int = 0
    _concurrent: int = 0

    _events: list[tuple[datetime, int, tuple[Kind, str], str, Status | None]] = field(
        default_factory=list
    )
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _requests: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- setting up the world ---

    def add(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        target_status: str | None = None,
        *,
        created_at: datetime | None = None,
        configuration_id: str = "fake-configuration",
        scenario_id: str = "fake-scenario",
        executable_id: str = "fake-executable",
        execution_schedule_id: str | None = None,
    ) -> None:
        if target_status is None:
            target_status = "RUNNING" if kind is Kind.DEPLOYMENT else "COMPLETED"
        self.items[(kind, item_id)] = Item(
            kind,
            item_id,
            status,
            target_status,
            created_at=created_at or self.clock.now(),
            configuration_id=configuration_id,
            scenario_id=scenario_id,
            executable_id=executable_id,
            execution_schedule_id=execution_schedule_id if kind is Kind.EXECUTION else None,
        )

    def add_schedule(
        self,
        schedule_id: str,
        *,
        configuration_id: str = "fake-configuration",
        scenario_id: str = "fake-scenario",
        status: ScheduleStatus = ScheduleStatus.ACTIVE,
        period_seconds: float = 3600.0,
    ) -> None:
        """A schedule that, while ACTIVE, starts a PENDING execution every period (the
        first one period from now), as the simulator's do."""
        now = self.clock.now()
        self.schedules[schedule_id] = Schedule(
            schedule_id,
            configuration_id,
            scenario_id,
            status,
            period_seconds,
            next_run=now + timedelta(seconds=period_seconds),
            created_at=now,
            modified_at=now,
        )

    def add_stopping(self, kind: Kind, item_id: str, after: float) -> None:
        """An item someone else is already stopping; it reaches STOPPED ``after`` seconds on."""
        self.add(kind, item_id, Status.STOPPING, target_status="STOPPED")
        self.items[(kind, item_id)].stop_accepted_at = self.clock.now()
        self._push(self.clock.now() + timedelta(seconds=after), (kind, item_id), "stopped", None)

    def schedule(self, kind: Kind, item_id: str, after: float, status: Status | None) -> None:
        """A change that happens on its own (``None`` = the item vanishes, e.g. TTL)."""
        self._push(self.clock.now() + timedelta(seconds=after), (kind, item_id), "set", status)

    def status_of(self, kind: Kind, item_id: str) -> Status | None:
        self._advance()
        item = self.items.get((kind, item_id))
        return item.status if item else None

    def writes_to(self, item_id: str) -> list[Sent]:
        return [s for s in self.sent if s.id == item_id]

    # --- the lifecycle ---

    def _push(self, at: datetime, key: tuple[Kind, str], what: str, status: Status | None) -> None:
        heapq.heappush(self._events, (at, next(self._seq), key, what, status))

    def _run_schedules(self, now: datetime) -> None:
        for schedule in self.schedules.values():
            while schedule.status is ScheduleStatus.ACTIVE and schedule.next_run <= now:
                schedule.runs += 1
                self.add(
                    Kind.EXECUTION,
                    f"{schedule.id}-run-{schedule.runs}",
                    Status.PENDING,
                    created_at=schedule.next_run,
                    configuration_id=schedule.configuration_id,
                    scenario_id=schedule.scenario_id,
                    execution_schedule_id=schedule.id,
                )
                schedule.next_run += timedelta(seconds=schedule.period_seconds)

    def _advance(self) -> None:
        now = self.clock.now()
        self._run_schedules(now)
        while self._events and self._events[0][0] <= now:
            _, _, key, what, status = heapq.heappop(self._events)
            item = self.items.get(key)
            if item is None:
                continue
            if what == "remove" or (what == "set" and status is None):
                del self.items[key]
            elif what == "stopping":
                if item.status in STOPPABLE:
                    item.status = Status.STOPPING
            elif what == "stopped":
                if item.status in (Status.STOPPING, *STOPPABLE):
                    item.status = Status.STOPPED
            elif what == "set" and status is not None:
                # Spontaneous changes do not override a stop or delete in progress.
                if item.stop_accepted_at is None and item.delete_accepted_at is None:
                    item.status = status

    def _state(self, item: Item) -> ItemState:
        return ItemState(
            id=item.id,
            status=item.status,
            target_status=item.target_status if self.report_target_status else None,
        )

    def _enter(
        self, method: str, kind: Kind | None = None, n: int = 1, label: str | None = None
    ) -> None:
        """Count the call under the real client's label; raise what the test queued."""
        self.calls[label or (f"{method} {kind.collection}" if kind else method)] += n
        self._advance()
        if self.always_fail is not None:
            raise self.always_fail
        queue = self.fail_next.get(method)
        if queue:
            raise queue.pop(0)

    # --- the AiApi protocol ---

    async def meta(self) -> Capabilities:
        self._enter("meta")
        return Capabilities(bulk_updates=self.bulk_updates)

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        self._advance()  # the page count below must see the world as of now
        found = [
            i
            for i in self.items.values()
            if i.kind is kind and (status is None or i.status is status)
        ]
        self._enter("list", kind, n=max(1, math.ceil(len(found) / page_size)))
        await asyncio.sleep(0)
        return [self._state(i) for i in found]

    async def list_items(
        self,
        kind: Kind,
        *,
        scenario_id: str | None = None,
        configuration_id: str | None = None,
        executable_ids: Sequence[str] | None = None,
        status: Status | None = None,
        execution_schedule_id: str | None = None,
        page_size: int = 1000,
    ) -> list[ItemSummary]:
        """The client's filters, refused as the client refuses them (``ValueError``)."""
        for value in (
            scenario_id,
            configuration_id,
            execution_schedule_id,
            *(executable_ids or ()),
        ):
            if value is not None and not re.fullmatch(ID_PATTERN, value):
                raise ValueError(f"{value!r} does not match {ID_PATTERN}")
        if executable_ids is not None and not executable_ids:
            raise ValueError("executable_ids is empty: give None for no executable filter")
        if execution_schedule_id is not None and kind is not Kind.EXECUTION:
            raise ValueError("execution_schedule_id filters executions only")
        self._advance()
        found = [
            i
            for i in self.items.values()
            if i.kind is kind
            and (status is None or i.status is status)
            and (scenario_id is None or i.scenario_id == scenario_id)
            and (configuration_id is None or i.configuration_id == configuration_id)
            and (executable_ids is None or i.executable_id in executable_ids)
            and (execution_schedule_id is None or i.execution_schedule_id == execution_schedule_id)
        ]
        parts = 1 if executable_ids is None else math.ceil(len(set(executable_ids)) / 1000)
        self._enter("list", kind, n=max(parts, math.ceil(len(found) / page_size)))
        await asyncio.sleep(0)
        return [
            ItemSummary(
                id=i.id,
                status=i.status,
                created_at=i.created_at,
                modified_at=i.created_at,
                configuration_id=i.configuration_id,
                scenario_id=i.scenario_id,
                executable_id=i.executable_id,
                target_status=i.target_status,
                execution_schedule_id=i.execution_schedule_id,
            )
            for i in found
        ]

    async def list_execution_schedules(
        self,
        *,
        scenario_id: str | None = None,
        configuration_id: str | None = None,
        status: ScheduleStatus | None = None,
    ) -> list[ScheduleSummary]:
        self._enter("list_schedules", label="list executionSchedules")
        await asyncio.sleep(0)
        return [
            ScheduleSummary(
                id=s.id,
                status=s.status,
                configuration_id=s.configuration_id,
                name=f"schedule {s.id}",
                cron="0 * * * *",
                created_at=s.created_at,
                modified_at=s.modified_at,
            )
            for s in self.schedules.values()
            if (scenario_id is None or s.scenario_id == scenario_id)
            and (configuration_id is None or s.configuration_id == configuration_id)
            and (status is None or s.status is status)
        ]

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        self._enter("pause_schedule", label="patch executionSchedules")
        await asyncio.sleep(0)
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            raise NotFoundError(f"execution schedule {schedule_id} not found", status_code=404)
        schedule.status = ScheduleStatus.INACTIVE
        schedule.modified_at = self.clock.now()

    async def _single_call_latency(self) -> None:
        self._concurrent += 1
        self.max_concurrent_singles = max(self.max_concurrent_singles, self._concurrent)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            self._concurrent -= 1

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        self._enter("get", kind)
        await self._single_call_latency()
        item = self.items.get((kind, item_id))
        if item is None:
            raise NotFoundError(f"{kind.value} {item_id} not found", status_code=404)
        state = self._state(item)
        if full:  # the whole item always carries targetStatus
            state = state.model_copy(update={"target_status": item.target_status})
        return state

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        self._enter("count", kind)
        return sum(
            1
            for i in self.items.values()
            if i.kind is kind and (status is None or i.status is status)
        )

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        ids = [i for i, _ in items]
        if len(items) > MAX_BULK_ITEMS:
            self.violations.append(f"bulk request with {len(items)} items")
            raise InvalidBatchError("more than 100 items")
        if len(set(ids)) != len(ids):
            self.violations.append(f"bulk request with a duplicate id: {sorted(ids)}")
            raise InvalidBatchError("duplicate id")
        if not items:
            self.violations.append("empty bulk request")
            raise InvalidBatchError("empty")
        self._enter("bulk_patch", kind)
        if not self.bulk_updates.supports(kind) or kind in self.bulk_refused:
            if not self.bulk_updates.supports(kind):
                self.violations.append(f"bulk PATCH of {kind.collection} while meta says off")
            raise BulkUnsupportedError("bulk updates are not enabled", status_code=400)
        request = next(self._requests)
        await asyncio.sleep(0)
        results: list[BulkItemResult] = []
        for item_id, action in items:
            error = self._write(kind, item_id, action, "bulk", request)
            if error is None:
                results.append(BulkItemResult(id=item_id, message="modification scheduled"))
            else:
                results.append(BulkItemResult(id=item_id, error=error))
        return results

    async def stop(self, kind: Kind, item_id: str) -> None:
        self._enter("stop", kind)
        await self._single_call_latency()
        self._single(kind, item_id, TargetStatus.STOPPED)

    async def delete(self, kind: Kind, item_id: str) -> None:
        self._enter("delete", kind)
        await self._single_call_latency()
        self._single(kind, item_id, TargetStatus.DELETED)

    def _single(self, kind: Kind, item_id: str, action: TargetStatus) -> None:
        error = self._write(kind, item_id, action, "single", next(self._requests))
        if error is None:
            return
        if error.code == "404":
            raise NotFoundError(error.message, status_code=404, code=error.code)
        raise PermanentError(error.message, status_code=400, code=error.code)

    def _write(
        self, kind: Kind, item_id: str, action: TargetStatus, via: str, request: int
    ) -> ApiErrorBody | None:
        """Apply one write like the API would; record what it hit; return a per-item error."""
        now = self.clock.now()
        item = self.items.get((kind, item_id))
        self.sent.append(
            Sent(
                at=now,
                request=request,
                kind=kind,
                id=item_id,
                action=action,
                via=via,
                status_before=item.status if item else None,
                target_status_before=item.target_status if item else None,
                stop_accepted_at=item.stop_accepted_at if item else None,
                delete_accepted_at=item.delete_accepted_at if item else None,
            )
        )
        queue = self.refuse.get(item_id)
        if queue:
            return queue.pop(0)
        if item is None:
            return ApiErrorBody(code="404", message=f"{kind.value} {item_id} not found")
        if action is TargetStatus.STOPPED:
            if item.status not in STOPPABLE:
                self.violations.append(f"STOP of {item_id} in status {item.status}")
                if item.status is Status.UNKNOWN:
                    return ApiErrorBody(
                        code="01010076",
                        message="Invalid Request, Current status UNKNOWN cannot be changed..",
                    )
                return ApiErrorBody(code="400", message=f"cannot stop in status {item.status}")
            if item_id in self.ineffective:
                return None
            item.stop_accepted_at = now
            item.target_status = "STOPPED"
            start = now + timedelta(seconds=self.stop_lag_seconds)
            self._push(start, (kind, item_id), "stopping", None)
            self._push(
                start + timedelta(seconds=self.stop_seconds), (kind, item_id), "stopped", None
            )
            if self.stop_lag_seconds == 0:
                item.status = Status.STOPPING
            return None
        if item.status not in DELETABLE:
            self.violations.append(f"DELETE of {item_id} in status {item.status}")
            return ApiErrorBody(code="400", message=f"cannot delete in status {item.status}")
        if item_id in self.ineffective:
            return None
        item.delete_accepted_at = now
        item.target_status = "DELETED"
        self._push(now + timedelta(seconds=self.delete_seconds), (kind, item_id), "remove", None)
        return None


def refusal(code: str = "400", message: str = "refused") -> ApiErrorBody:
    return ApiErrorBody(code=code, message=message)


def auth_error() -> AuthError:
    return AuthError("HTTP 401 from the AI API", status_code=401)
