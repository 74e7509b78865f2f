"""The deployments and executions of every resource group, seeded and looked at.

Records settle lazily (:func:`~bulkterm.simulator.lifecycle.settle`) whenever they are looked
at, so looking is also where time takes effect: an item whose deletion has completed leaves
the store at the first look after that. Before executions are looked at, ``before_executions``
lets the execution schedules start the runs they owe by then, so no look misses one.

Not thread-safe by itself: :class:`~bulkterm.simulator.backend.Backend` holds its lock around
every call.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkterm.aiapi.models import (
    ID_PATTERN,
    RESOURCE_GROUP_PATTERN,
    Kind,
    Status,
    TargetStatus,
)
from bulkterm.simulator.clock import Timebase
from bulkterm.simulator.config import Timings
from bulkterm.simulator.configurations import ConfigurationBook
from bulkterm.simulator.lifecycle import INITIAL_TARGET, ItemRecord, PlannedChange, plan, settle
from bulkterm.simulator.queries import Filters
from bulkterm.simulator.seeding import CONFIGURATIONS, Configuration, new_id, status_at

#: ``targetStatus`` values an item can show (the spec's read enums).
_TARGETS = {
    Kind.DEPLOYMENT: frozenset({"RUNNING", "STOPPED", "DELETED"}),
    Kind.EXECUTION: frozenset({"COMPLETED", "RUNNING", "STOPPED", "DELETED"}),
}


@dataclass(frozen=True)
class ItemView:
    """A read-only snapshot of one item as the simulator sees it now (``Simulator.item``)."""

    kind: Kind
    id: str
    resource_group: str
    status: Status
    target_status: str
    #: Deletion accepted, item still visible (``targetStatus: DELETED``).
    deleting: bool
    configuration_id: str
    configuration_name: str
    scenario_id: str
    executable_id: str
    execution_schedule_id: str | None
    goes_dead: bool
    hold: bool
    created_at: datetime
    modified_at: datetime
    #: When the API accepted a stop, and a delete, of the item (``None``: it did not).
    stop_accepted_at: datetime | None = None
    delete_accepted_at: datetime | None = None


def matches(record: ItemRecord, filters: Filters) -> bool:
    """Whether the item passes every filter of a list or ``$count``."""
    return (
        (filters.status is None or record.status is filters.status)
        and (filters.executable_ids is None or record.executable_id in filters.executable_ids)
        and (
            filters.configuration_id is None or record.configuration_id == filters.configuration_id
        )
        and (filters.scenario_id is None or record.scenario_id == filters.scenario_id)
        and (
            filters.execution_schedule_id is None
            or record.execution_schedule_id == filters.execution_schedule_id
        )
    )


def check_status(kind: Kind, status: Status | None) -> None:
    """AI Core's deployments never complete: COMPLETED is an execution's status only."""
    if kind is Kind.DEPLOYMENT and status is Status.COMPLETED:
        raise ValueError("a deployment never completes: COMPLETED is an execution's status")


def check_group(resource_group: str) -> None:
    if not re.match(RESOURCE_GROUP_PATTERN, resource_group):
        raise ValueError(f"resource group {resource_group!r} does not match the spec's pattern")


class ItemStore:
    """Every item, keyed by resource group and kind, with the ids they were given."""

    def __init__(
        self,
        time: Timebase,
        timings: Timings,
        configurations: ConfigurationBook,
        rng: random.Random,
    ) -> None:
        self.time = time
        #: Phase durations; replaced as a whole by :meth:`set_timings`.
        self.timings = timings
        self.configurations = configurations
        #: Ids and ages of seeded items (a stream of its own: faults must not shift them).
        self.rng = rng
        #: Called with a resource group before its executions are looked at.
        self.before_executions: Callable[[str], None] = lambda resource_group: None
        self._items: dict[tuple[str, Kind], dict[str, ItemRecord]] = {}
        self._seq = itertools.count()

    # -- looking --------------------------------------------------------------------------

    def live(self, resource_group: str, kind: Kind, item_id: str) -> ItemRecord | None:
        """The item settled to now; ``None`` when it never existed or is gone."""
        if kind is Kind.EXECUTION:
            self.before_executions(resource_group)
        bucket = self._items.get((resource_group, kind))
        record = None if bucket is None else bucket.get(item_id)
        if bucket is None or record is None:
            return None
        if settle(record, self.time.now(), self.timings, self.time.wall):
            return record
        del bucket[item_id]
        return None

    def live_all(self, resource_group: str, kind: Kind) -> list[ItemRecord]:
        """Every item of the group and kind, settled to now, in creation order."""
        if kind is Kind.EXECUTION:
            self.before_executions(resource_group)
        bucket = self._items.get((resource_group, kind))
        if not bucket:
            return []
        now = self.time.now()
        wall = self.time.wall
        gone = [i for i, r in bucket.items() if not settle(r, now, self.timings, wall)]
        for item_id in gone:
            del bucket[item_id]
        return list(bucket.values())

    def matching(self, kind: Kind, resource_group: str, filters: Filters) -> list[ItemRecord]:
        return [r for r in self.live_all(resource_group, kind) if matches(r, filters)]

    def buckets(self) -> list[tuple[str, Kind]]:
        """``(group, kind)`` of every bucket, in the order they were first filled."""
        return list(self._items)

    def view(self, record: ItemRecord) -> ItemView:
        def stamp(at: float | None) -> datetime | None:
            return None if at is None else datetime.fromtimestamp(self.time.wall(at), tz=UTC)

        return ItemView(
            kind=record.kind,
            id=record.id,
            resource_group=record.resource_group,
            status=record.status,
            target_status=record.target_status,
            deleting=record.deleting,
            configuration_id=record.configuration_id,
            configuration_name=record.configuration_name,
            scenario_id=record.scenario_id,
            executable_id=record.executable_id,
            execution_schedule_id=record.execution_schedule_id,
            goes_dead=record.goes_dead,
            hold=record.hold,
            created_at=datetime.fromtimestamp(record.created_at, tz=UTC),
            modified_at=datetime.fromtimestamp(record.modified_at, tz=UTC),
            stop_accepted_at=stamp(record.stop_accepted_at),
            delete_accepted_at=stamp(record.delete_accepted_at),
        )

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{group: {collection: {status: n, "deleting": n}}}`` of the live items."""
        result: dict[str, dict[str, dict[str, int]]] = {}
        for group, kind in sorted(self._items, key=lambda key: (key[0], str(key[1]))):
            counts: dict[str, int] = {}
            for record in self.live_all(group, kind):
                counts[str(record.status)] = counts.get(str(record.status), 0) + 1
                if record.deleting:
                    counts["deleting"] = counts.get("deleting", 0) + 1
            result.setdefault(group, {})[kind.collection] = counts
        return result

    # -- changing -------------------------------------------------------------------------

    def new_id(self, kind: Kind) -> str:
        """A fresh id no item of the kind has, in any group."""
        while True:
            candidate = new_id(kind, self.rng)
            if not any(candidate in b for (_, k), b in self._items.items() if k is kind):
                return candidate

    def add(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        *,
        resource_group: str,
        configuration: Configuration,
        created: float,
        at: float,
        target_status: str | None = None,
        goes_dead: bool = False,
        hold: bool = False,
        execution_schedule_id: str | None = None,
    ) -> ItemRecord:
        """Store an item in ``status`` as of clock time ``at``, replacing one with its id."""
        wall_at = self.time.wall(at)
        target = target_status or (
            "STOPPED" if status in (Status.STOPPING, Status.STOPPED) else INITIAL_TARGET[kind]
        )
        record = ItemRecord(
            kind=kind,
            id=item_id,
            resource_group=resource_group,
            status=status,
            target_status=str(target),
            status_since=at,
            created_at=created,
            modified_at=max(created, wall_at),
            configuration_id=configuration.id,
            configuration_name=configuration.name,
            scenario_id=configuration.scenario_id,
            executable_id=configuration.executable_id,
            seq=next(self._seq),
            execution_schedule_id=execution_schedule_id if kind is Kind.EXECUTION else None,
            goes_dead=goes_dead,
            hold=hold,
        )
        if status is not Status.UNKNOWN:
            record.submission_time = created
        if status not in (Status.UNKNOWN, Status.PENDING):
            record.start_time = created
        if status in (Status.COMPLETED, Status.DEAD, Status.STOPPED):
            record.completion_time = record.modified_at
        if record.target_status == TargetStatus.DELETED:
            record.deleting_since = at
            record.last_operation = "DELETE"
        self._items.setdefault((resource_group, kind), {})[item_id] = record
        return record

    def add_item(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        *,
        resource_group: str,
        target_status: str | None = None,
        goes_dead: bool = False,
        hold: bool = False,
        configuration_id: str | None = None,
        execution_schedule_id: str | None = None,
        created_at: datetime | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
    ) -> ItemRecord:
        """An item seeded now (:meth:`Backend.add_item <bulkterm.simulator.backend.Backend.add_item>`
        says what each argument means); ``ValueError`` for arguments the API could not show."""
        if not re.match(ID_PATTERN, item_id):
            raise ValueError(f"item id {item_id!r} does not match {ID_PATTERN}")
        check_status(kind, status)
        check_group(resource_group)
        if target_status is not None and target_status not in _TARGETS[kind]:
            raise ValueError(f"target_status of a {kind} is one of {sorted(_TARGETS[kind])}")
        if created_at is not None and created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (e.g. datetime.now(UTC))")
        now = self.time.now()
        created = self.time.wall(now) if created_at is None else created_at.timestamp()
        if configuration_id is None:
            if scenario_id is not None or executable_id is not None:
                raise ValueError("scenario_id and executable_id need a configuration_id")
            configuration_id = self.rng.choice(CONFIGURATIONS[kind]).id
        configuration = self.configurations.configuration(
            resource_group,
            kind,
            configuration_id,
            scenario_id=scenario_id,
            executable_id=executable_id,
            created=created,
        )
        return self.add(
            kind,
            item_id,
            status,
            resource_group=resource_group,
            configuration=configuration,
            created=created,
            at=now,
            target_status=target_status,
            goes_dead=goes_dead,
            hold=hold,
            execution_schedule_id=execution_schedule_id,
        )

    def seed(
        self, deployments: int, executions: int, resource_group: str
    ) -> list[tuple[Kind, str, Status]]:
        """Items with fresh ids in the status mix of :mod:`seeding`, created up to 3 days ago."""
        created: list[tuple[Kind, str, Status]] = []
        wall_now = self.time.wall(self.time.now())
        for kind, count in ((Kind.DEPLOYMENT, deployments), (Kind.EXECUTION, executions)):
            for index in range(count):
                item_id = self.new_id(kind)
                status = status_at(kind, index)
                age = self.rng.uniform(60.0, 3 * 24 * 3600.0)
                self.add_item(
                    kind,
                    item_id,
                    status,
                    resource_group=resource_group,
                    created_at=datetime.fromtimestamp(wall_now - age, tz=UTC),
                )
                created.append((kind, item_id, status))
        return created

    def plan(
        self, kind: Kind, item_id: str, resource_group: str, after: float, status: Status | None
    ) -> None:
        """Make the item take ``status`` (``None``: vanish) ``after`` seconds from now."""
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        check_status(kind, status)
        record = self.live(resource_group, kind, item_id)
        if record is None:
            raise ValueError(f"no {kind} {item_id} in resource group {resource_group}")
        plan(record, PlannedChange(self.time.now() + after, status))

    def remove(self, kind: Kind, item_id: str, resource_group: str) -> bool:
        """Forget the item at once (``False``: there was none)."""
        return self._items.get((resource_group, kind), {}).pop(item_id, None) is not None

    def set_timings(self, timings: Timings) -> None:
        """New durations apply to every phase from now on, counted from when it began."""
        for group, kind in self.buckets():
            self.live_all(group, kind)  # settle under the old timings first
        self.timings = timings

    def clear(self) -> None:
        self._items.clear()
