"""Execution schedules: when an ACTIVE schedule starts its next execution, and its wire shape.

AI Core runs a schedule by its ``cron``; the simulator does not interpret cron expressions
(a test cannot wait for midnight). Each schedule carries a simulator-side ``period_seconds``
instead: while ACTIVE it starts one execution every period of the simulator's clock, the
first one period after it was created or last set ACTIVE, and only between its ``start`` and
``end`` (wall times, as on the wire). An INACTIVE schedule starts none, and setting it ACTIVE
again does not catch up on the runs it missed.

Like item statuses, runs are computed lazily: whenever executions or schedules of a resource
group are looked at, every run that has become due is replayed at its exact due time, so
what a client sees does not depend on how often it polls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkterm.aiapi.models import ScheduleStatus
from bulkterm.simulator.wire import JSON, timestamp

#: Period of a schedule that does not say (AI Core's cron examples run hourly at most).
DEFAULT_PERIOD_SECONDS = 3600.0
DEFAULT_CRON = "0 * * * *"
#: Periods a single look may replay per schedule (runs, and periods skipped before ``start``):
#: a clock moved a year past a one-second period would otherwise create millions of
#: executions in one request. The next look goes on from there.
MAX_CATCH_UP_RUNS = 10_000


@dataclass
class ScheduleRecord:
    """One execution schedule as the simulator stores it (mutable; guarded by the lock).

    ``next_run`` is a clock time; ``created_at``, ``modified_at``, ``start`` and ``end`` are
    wall times (epoch seconds), because they are shown on the wire.
    """

    id: str
    resource_group: str
    name: str
    cron: str
    configuration_id: str
    status: ScheduleStatus
    period_seconds: float
    next_run: float
    created_at: float
    modified_at: float
    start: float
    end: float | None = None
    #: Executions started so far.
    runs: int = 0

    @property
    def active(self) -> bool:
        return self.status is ScheduleStatus.ACTIVE


@dataclass(frozen=True)
class ScheduleView:
    """A read-only snapshot of one schedule (``Simulator.execution_schedule``)."""

    id: str
    resource_group: str
    name: str
    cron: str
    configuration_id: str
    status: ScheduleStatus
    period_seconds: float
    created_at: datetime
    modified_at: datetime
    start: datetime
    end: datetime | None
    runs: int

    @classmethod
    def of(cls, record: ScheduleRecord) -> ScheduleView:
        return cls(
            id=record.id,
            resource_group=record.resource_group,
            name=record.name,
            cron=record.cron,
            configuration_id=record.configuration_id,
            status=record.status,
            period_seconds=record.period_seconds,
            created_at=datetime.fromtimestamp(record.created_at, tz=UTC),
            modified_at=datetime.fromtimestamp(record.modified_at, tz=UTC),
            start=datetime.fromtimestamp(record.start, tz=UTC),
            end=None if record.end is None else datetime.fromtimestamp(record.end, tz=UTC),
            runs=record.runs,
        )


def due_runs(record: ScheduleRecord, now: float, wall: Callable[[float], float]) -> list[float]:
    """Clock times of the runs due by ``now`` (advancing ``next_run`` past them).

    Runs before ``start`` are skipped; after ``end`` none is due again. At most
    :data:`MAX_CATCH_UP_RUNS` periods per call: the next look starts the rest.
    """
    if not record.active:
        return []
    runs: list[float] = []
    for _ in range(MAX_CATCH_UP_RUNS):
        if record.next_run > now:
            break
        at = record.next_run
        record.next_run = at + record.period_seconds
        stamp = wall(at)
        if record.end is not None and stamp > record.end:
            record.next_run = float("inf")
            break
        if stamp >= record.start:
            runs.append(at)
    return runs


def schedule_json(record: ScheduleRecord) -> JSON:
    """An ``AiExecutionSchedule``; ``start`` is always shown (the spec: "defaults to now")."""
    body: JSON = {
        "id": record.id,
        "name": record.name,
        "cron": record.cron,
        "configurationId": record.configuration_id,
        "status": str(record.status),
        "start": timestamp(record.start),
    }
    if record.end is not None:
        body["end"] = timestamp(record.end)
    body["createdAt"] = timestamp(record.created_at)
    body["modifiedAt"] = timestamp(record.modified_at)
    return body
