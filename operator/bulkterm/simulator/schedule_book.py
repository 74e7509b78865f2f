"""The execution schedules of every resource group, and the operations on them.

A schedule starts its executions into the :class:`~bulkterm.simulator.store.ItemStore`
lazily: before any look at a group's executions or schedules, every run that has become due
is started at its own due time (see :mod:`bulkterm.simulator.schedules`), so its lifecycle
has moved on as far as it would have.

Not thread-safe by itself: :class:`~bulkterm.simulator.backend.Backend` holds its lock around
every call.
"""

from __future__ import annotations

import re
from datetime import datetime

from bulkterm.aiapi.models import ID_PATTERN, Kind, ScheduleStatus, Status
from bulkterm.simulator.clock import Timebase
from bulkterm.simulator.config import SimulatorConfig
from bulkterm.simulator.configurations import ConfigurationBook
from bulkterm.simulator.queries import ScheduleFilters, ScheduleListQuery
from bulkterm.simulator.rules import CODE_NOT_FOUND
from bulkterm.simulator.schedules import (
    DEFAULT_CRON,
    DEFAULT_PERIOD_SECONDS,
    ScheduleRecord,
    ScheduleView,
    due_runs,
    schedule_json,
)
from bulkterm.simulator.store import ItemStore, check_group
from bulkterm.simulator.validation import ScheduleModification, bad_request
from bulkterm.simulator.wire import JSON, ApiFailure, paged

#: The spec's examples: no live text of these answers is known.
_MODIFIED = "Execution Schedule modified"
_DELETED = "Execution Schedule deleted"


def _matches(record: ScheduleRecord, filters: ScheduleFilters) -> bool:
    return (filters.status is None or record.status is filters.status) and (
        filters.configuration_id is None or record.configuration_id == filters.configuration_id
    )


class ScheduleBook:
    """Schedules per resource group, in creation order."""

    def __init__(
        self,
        time: Timebase,
        config: SimulatorConfig,
        store: ItemStore,
        configurations: ConfigurationBook,
    ) -> None:
        self.time = time
        self.config = config
        self.store = store
        self.configurations = configurations
        self._schedules: dict[str, dict[str, ScheduleRecord]] = {}

    # -- runs ------------------------------------------------------------------------------

    def run_due(self, resource_group: str) -> None:
        """Start every execution the group's ACTIVE schedules owe by now, each at its due time."""
        schedules = self._schedules.get(resource_group)
        if not schedules:
            return
        now = self.time.now()
        for record in schedules.values():
            for at in due_runs(record, now, self.time.wall):
                self._spawn(record, at)

    def run_all_due(self) -> None:
        for group in list(self._schedules):
            self.run_due(group)

    def _spawn(self, schedule: ScheduleRecord, at: float) -> None:
        group = schedule.resource_group
        configuration = self.configurations.configuration(
            group, Kind.EXECUTION, schedule.configuration_id
        )
        schedule.runs += 1
        self.store.add(
            Kind.EXECUTION,
            self.store.new_id(Kind.EXECUTION),
            Status.UNKNOWN,
            resource_group=group,
            configuration=configuration,
            created=self.time.wall(at),
            at=at,
            execution_schedule_id=schedule.id,
        )

    # -- seeding and inspection ------------------------------------------------------------

    def add(
        self,
        schedule_id: str,
        *,
        configuration_id: str,
        resource_group: str = "default",
        status: ScheduleStatus = ScheduleStatus.ACTIVE,
        period_seconds: float = DEFAULT_PERIOD_SECONDS,
        cron: str = DEFAULT_CRON,
        name: str | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        created_at: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Seed one schedule, replacing one with its id in the group (``Backend.add_schedule``)."""
        status = ScheduleStatus(status)
        if not re.match(ID_PATTERN, schedule_id):
            raise ValueError(f"schedule id {schedule_id!r} does not match {ID_PATTERN}")
        check_group(resource_group)
        if not period_seconds > 0:
            raise ValueError(f"period_seconds must be > 0, got {period_seconds}")
        if not cron.strip():
            raise ValueError("cron must not be empty")
        if name is not None and len(name) > 256:
            raise ValueError("name is at most 256 characters (AiExecutionSchedule.name)")
        for label, value in (("created_at", created_at), ("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{label} must be timezone-aware (e.g. datetime.now(UTC))")
        if start is not None and end is not None and end <= start:
            raise ValueError("end must be later than start")
        now = self.time.now()
        wall_now = self.time.wall(now)
        created = wall_now if created_at is None else created_at.timestamp()
        self.configurations.configuration(
            resource_group,
            Kind.EXECUTION,
            configuration_id,
            scenario_id=scenario_id,
            executable_id=executable_id,
            created=created,
        )
        self.run_due(resource_group)  # a replaced schedule owes its runs first
        self._schedules.setdefault(resource_group, {})[schedule_id] = ScheduleRecord(
            id=schedule_id,
            resource_group=resource_group,
            name=name or f"schedule {schedule_id}",
            cron=cron,
            configuration_id=configuration_id,
            status=status,
            period_seconds=float(period_seconds),
            next_run=now + period_seconds,
            created_at=created,
            modified_at=max(created, wall_now),
            start=created if start is None else start.timestamp(),
            end=None if end is None else end.timestamp(),
        )

    def view(self, schedule_id: str, resource_group: str) -> ScheduleView | None:
        self.run_due(resource_group)
        record = self._schedules.get(resource_group, {}).get(schedule_id)
        return None if record is None else ScheduleView.of(record)

    def views(self, resource_group: str | None = None) -> list[ScheduleView]:
        """Every schedule, optionally of one resource group, in creation order per group."""
        groups = [g for g in self._schedules if resource_group in (None, g)]
        for group in groups:
            self.run_due(group)
        return [ScheduleView.of(r) for g in groups for r in self._schedules[g].values()]

    def clear(self) -> None:
        self._schedules.clear()

    # -- operations ------------------------------------------------------------------------

    def _record(self, resource_group: str, schedule_id: str) -> ScheduleRecord:
        self.run_due(resource_group)
        record = self._schedules.get(resource_group, {}).get(schedule_id)
        if record is None:
            message = f"Execution schedule {schedule_id} not found."
            raise ApiFailure(404, CODE_NOT_FOUND, message)
        return record

    def list(self, resource_group: str, query: ScheduleListQuery) -> JSON:
        """``AiExecutionScheduleList`` in creation order, paged by ``$top``/``$skip``."""
        self.run_due(resource_group)
        matching = [
            r
            for r in self._schedules.get(resource_group, {}).values()
            if _matches(r, query.filters)
        ]
        page, count = paged(
            matching,
            query.skip,
            query.top,
            max_rows=self.config.max_result_rows,
            list_count=self.config.list_count,
            what="list executionSchedules",
        )
        return {"count": count, "resources": [schedule_json(r) for r in page]}

    def count(self, resource_group: str, filters: ScheduleFilters) -> int:
        self.run_due(resource_group)
        schedules = self._schedules.get(resource_group, {}).values()
        return sum(1 for r in schedules if _matches(r, filters))

    def get(self, resource_group: str, schedule_id: str) -> JSON:
        return schedule_json(self._record(resource_group, schedule_id))

    def modify(self, resource_group: str, schedule_id: str, change: ScheduleModification) -> JSON:
        """Apply a PATCH: runs due before it are started first; setting ACTIVE restarts the
        period from now (missed runs are not caught up), INACTIVE stops further runs. Setting
        the status a schedule already has is accepted and changes nothing."""
        record = self._record(resource_group, schedule_id)
        now = self.time.now()
        if change.configuration_id is not None:
            self.configurations.configuration(
                resource_group, Kind.EXECUTION, change.configuration_id
            )
            record.configuration_id = change.configuration_id
        if change.cron is not None:
            record.cron = change.cron
        start = record.start if change.start is None else change.start
        end = record.end if change.end is None else change.end
        if end is not None and end <= start:
            raise bad_request("end must be later than start.", "MalformedRequest")
        record.start, record.end = start, end
        if change.end is not None and record.next_run == float("inf"):
            record.next_run = now + record.period_seconds
        if change.status is not None and change.status is not record.status:
            record.status = change.status
            if change.status is ScheduleStatus.ACTIVE:
                record.next_run = now + record.period_seconds
        record.modified_at = self.time.wall(now)
        return {"id": schedule_id, "message": _MODIFIED}

    def delete(self, resource_group: str, schedule_id: str) -> JSON:
        """Gone at once; the executions it started stay (with its ``executionScheduleId``)."""
        self._record(resource_group, schedule_id)
        del self._schedules[resource_group][schedule_id]
        return {"id": schedule_id, "message": _DELETED}
