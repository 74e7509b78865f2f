"""How one item's status moves by itself over time, computed lazily from the clock.

Each record remembers its status and when (clock time) it entered it. When anything looks at
the item, :func:`settle` replays every transition that has become due, each at its exact due
time, so the outcome does not depend on how often or when the item is polled.

Flows (SAP's state-flow diagrams): UNKNOWN → PENDING → RUNNING (deployments stay RUNNING;
executions go on to COMPLETED); PENDING/RUNNING → DEAD for items configured to die; an accepted
stop → STOPPING → STOPPED; an accepted delete keeps the status frozen, shows
``targetStatus: DELETED`` and then the item is gone.

Besides its flow, an item may carry *planned changes*: a status it takes, or its vanishing, at
a set clock time, whatever the timings say (it dies, completes, resolves, is removed by its
TTL or by someone else). They are replayed in time order with the flow. A stop or delete the
API accepts supersedes the planned status changes (the item is then on its way to STOPPED or
gone), but not a planned vanishing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator.config import Timings

#: The target a freshly created item has (Java e2e for deployments, JS mock for executions).
INITIAL_TARGET = {Kind.DEPLOYMENT: "RUNNING", Kind.EXECUTION: "COMPLETED"}

_FINAL = frozenset({Status.COMPLETED, Status.DEAD, Status.STOPPED})


@dataclass(frozen=True)
class PlannedChange:
    """The item takes ``status`` at clock time ``at``; ``None``: it vanishes then."""

    at: float
    status: Status | None


@dataclass
class ItemRecord:
    """One deployment or execution as the simulator stores it (mutable; guarded by the lock).

    ``status_since`` and ``deleting_since`` are clock times; ``*_at``/``*_time`` are wall
    times (epoch seconds) because they are only ever shown on the wire.
    """

    kind: Kind
    id: str
    resource_group: str
    status: Status
    target_status: str
    status_since: float
    created_at: float
    modified_at: float
    configuration_id: str
    configuration_name: str
    scenario_id: str
    executable_id: str
    seq: int
    execution_schedule_id: str | None = None
    ttl: str | None = None
    goes_dead: bool = False
    #: Stuck: the status never changes, not even after an accepted stop (deletion still
    #: completes). Models deployments stuck in UNKNOWN, PENDING or STOPPING.
    hold: bool = False
    deleting_since: float | None = None
    submission_time: float | None = None
    start_time: float | None = None
    completion_time: float | None = None
    last_operation: str = "CREATE"
    latest_running_configuration_id: str | None = None
    #: Clock times the API accepted a stop and a delete of the item (seeded states have none).
    stop_accepted_at: float | None = None
    delete_accepted_at: float | None = None
    #: Changes outside the flow, in time order (see the module's docstring).
    planned: list[PlannedChange] = field(default_factory=list)

    @property
    def deleting(self) -> bool:
        return self.deleting_since is not None

    @property
    def status_message(self) -> str | None:
        """AI Core shows a "not found" text while a deployment is still UNKNOWN (transient)."""
        if self.kind is Kind.DEPLOYMENT and self.status is Status.UNKNOWN:
            return f"Deployment ID {self.id} not found"
        return None


def next_transition(record: ItemRecord, timings: Timings) -> tuple[Status, float] | None:
    """The next status the item moves to by itself and after how long in the current one."""
    if record.hold or record.deleting:
        return None
    status = record.status
    stopping = record.target_status == TargetStatus.STOPPED
    if stopping and status in (Status.PENDING, Status.RUNNING):
        return Status.STOPPING, timings.stop_delay_seconds
    if status is Status.UNKNOWN:
        if timings.unknown_seconds is None:
            return None
        return Status.PENDING, timings.unknown_seconds
    if status is Status.PENDING:
        return (Status.DEAD if record.goes_dead else Status.RUNNING), timings.pending_seconds
    if status is Status.RUNNING:
        if record.goes_dead:
            return Status.DEAD, timings.dead_after_seconds
        run = timings.execution_run_seconds
        if record.kind is Kind.EXECUTION and run is not None:
            return Status.COMPLETED, run
        return None
    if status is Status.STOPPING:
        return Status.STOPPED, timings.stopping_seconds
    return None


def enter(record: ItemRecord, status: Status, at: float, wall: Callable[[float], float]) -> None:
    """Put the item in ``status`` as of clock time ``at``, stamping the wire timestamps."""
    record.status = status
    record.status_since = at
    stamp = wall(at)
    record.modified_at = stamp
    if status is Status.PENDING and record.submission_time is None:
        record.submission_time = stamp
    if status is Status.RUNNING and record.start_time is None:
        record.start_time = stamp
    if status in _FINAL:
        record.completion_time = stamp


def settle(
    record: ItemRecord, now: float, timings: Timings, wall: Callable[[float], float]
) -> bool:
    """Apply every transition and planned change due by ``now``, each at its own time, in
    time order; ``False`` means the item is gone (deleted or vanished)."""
    while True:
        change = record.planned[0] if record.planned and record.planned[0].at <= now else None
        if record.deleting_since is not None:
            end = record.deleting_since + timings.deletion_seconds
            if change is None or change.at >= end:
                return now < end
            record.planned.pop(0)
            if change.status is None:
                return False
            continue  # a deletion in progress freezes the status
        step = next_transition(record, timings)
        due = None if step is None else record.status_since + step[1]
        if change is not None and (due is None or change.at <= due):
            record.planned.pop(0)
            if change.status is None:
                return False
            enter(record, change.status, change.at, wall)
            continue
        if step is None or due is None or now < due:
            return True
        enter(record, step[0], due, wall)


def plan(record: ItemRecord, change: PlannedChange) -> None:
    """Add a planned change, keeping them in time order (equal times: first planned first)."""
    later = next((i for i, c in enumerate(record.planned) if c.at > change.at), None)
    record.planned.insert(len(record.planned) if later is None else later, change)


def schedule(
    record: ItemRecord, requested: TargetStatus, now: float, wall: Callable[[float], float]
) -> None:
    """Apply an accepted STOP or DELETE (the rules in :mod:`rules` were checked by the caller)."""
    record.modified_at = wall(now)
    record.last_operation = "UPDATE" if requested is TargetStatus.STOPPED else "DELETE"
    record.planned = [c for c in record.planned if c.status is None]
    if requested is TargetStatus.DELETED:
        record.target_status = TargetStatus.DELETED
        record.deleting_since = now
        record.delete_accepted_at = now
        return
    if record.stop_accepted_at is None:
        record.stop_accepted_at = now
    if record.target_status != TargetStatus.STOPPED:
        record.target_status = TargetStatus.STOPPED
        # The stop delay counts from the request, not from when the status began.
        record.status_since = now
