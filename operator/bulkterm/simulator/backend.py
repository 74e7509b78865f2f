"""The simulated AI API without HTTP: the item store, the operations and what they record.

Every public method takes one lock, so the aiohttp handlers (event-loop thread) and a test
calling :meth:`Backend.add_item` from another thread never see a half-applied change. Nothing
here awaits; HTTP concerns (headers, bodies, faults) live in :mod:`bulkterm.simulator.app`.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkterm.aiapi.models import (
    ID_PATTERN,
    RESOURCE_GROUP_PATTERN,
    Kind,
    ScheduleStatus,
    Status,
    TargetStatus,
)
from bulkterm.simulator.auth import TokenIssuer
from bulkterm.simulator.clock import Clock
from bulkterm.simulator.config import DEFAULT_RESOURCE_GROUP, Faults, SimulatorConfig, Timings
from bulkterm.simulator.lifecycle import INITIAL_TARGET, ItemRecord, schedule, settle
from bulkterm.simulator.recording import Recorder, Violation
from bulkterm.simulator.rules import (
    CODE_BULK_UNSUPPORTED,
    CODE_NOT_FOUND,
    CODE_RESULT_TOO_LARGE,
    Refusal,
    check_change,
    check_reconfiguration,
    not_found,
)
from bulkterm.simulator.schedules import (
    DEFAULT_CRON,
    DEFAULT_PERIOD_SECONDS,
    ScheduleRecord,
    ScheduleView,
    due_runs,
    schedule_json,
)
from bulkterm.simulator.seeding import (
    CONFIGURATIONS,
    Configuration,
    configuration_for,
    new_id,
    status_at,
)
from bulkterm.simulator.validation import (
    ConfigurationQuery,
    Creation,
    Filters,
    ListQuery,
    Modification,
    ScheduleFilters,
    ScheduleListQuery,
    ScheduleModification,
    bad_request,
)
from bulkterm.simulator.wire import (
    JSON,
    ApiFailure,
    ViolationSpec,
    api_error,
    configuration_json,
    deployment_url,
    full_item,
    status_item,
)

#: Version the simulator claims in ``/lm/meta``: the spec it follows.
API_VERSION = "2.42.0"

_MODIFIED_MESSAGE = {
    Kind.DEPLOYMENT: "Deployment modification scheduled",
    Kind.EXECUTION: "Execution modification scheduled",
}
#: Live create messages differ from the spec examples (contract §6.2, §12).
_CREATED_MESSAGE = {Kind.DEPLOYMENT: "Deployment scheduled.", Kind.EXECUTION: "Execution scheduled"}
_DELETED_MESSAGE = "Deletion scheduled"
#: The spec's examples: no live text of these answers is known (contract §6.3).
_SCHEDULE_MODIFIED = "Execution Schedule modified"
_SCHEDULE_DELETED = "Execution Schedule deleted"
#: ``targetStatus`` values an item can show (the spec's read enums).
_TARGETS = {
    Kind.DEPLOYMENT: frozenset({"RUNNING", "STOPPED", "DELETED"}),
    Kind.EXECUTION: frozenset({"COMPLETED", "RUNNING", "STOPPED", "DELETED"}),
}


@dataclass
class RequestContext:
    """Who asked what: stamped on every violation the request causes."""

    route: str
    #: The invoked URL as the client sent it (scheme, host, path, query): an error's ``target``.
    url: str
    request_id: str
    resource_group: str | None = None


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


def _matches(record: ItemRecord, filters: Filters) -> bool:
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


def _schedule_matches(record: ScheduleRecord, filters: ScheduleFilters) -> bool:
    return (filters.status is None or record.status is filters.status) and (
        filters.configuration_id is None or record.configuration_id == filters.configuration_id
    )


def _page_or_refuse(rows: list[JSON], limit: int | None, what: str) -> None:
    """The 413 another ``/v2/lm`` endpoint answers for too many rows (contract §5.2)."""
    if limit is not None and len(rows) > limit:
        message = f"Result set exceeds the maximum of {limit} rows. Use $top and $skip to paginate."
        raise ApiFailure(
            413,
            CODE_RESULT_TOO_LARGE,
            message,
            violation=ViolationSpec("ResultTooLarge", f"{what}: {message}"),
        )


def _rng(seed: int | None, stream: str) -> random.Random:
    # Separate streams: faults drawn per request must not shift the ids of seeded items.
    return random.Random(None if seed is None else f"{seed}:{stream}")


class Backend:
    """State and operations of one simulated AI API endpoint (all resource groups)."""

    def __init__(self, config: SimulatorConfig, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.clock: Clock = clock or time.monotonic
        self._clock_origin = self.clock()
        self._wall_origin = time.time()
        self.timings: Timings = config.timings
        self.faults: Faults = config.faults
        #: The ``bulkUpdates`` capability per kind (changeable at runtime).
        self.bulk_updates: dict[Kind, bool] = {
            Kind.DEPLOYMENT: config.bulk_updates,
            Kind.EXECUTION: config.bulk_updates,
        }
        self.recorder = Recorder()
        self.tokens = TokenIssuer(
            config.client_id, config.client_secret, config.token_expires_in, self.clock, self.wall
        )
        self.data_rng = _rng(config.seed, "data")
        self.fault_rng = _rng(config.seed, "faults")
        self._items: dict[tuple[str, Kind], dict[str, ItemRecord]] = {}
        #: The tenant's resource groups: any other is answered 403 (they are never forgotten).
        self._groups: set[str] = {
            DEFAULT_RESOURCE_GROUP,
            config.initial_resource_group,
            *config.resource_groups,
        }
        #: Execution schedules per resource group, in creation order.
        self._schedules: dict[str, dict[str, ScheduleRecord]] = {}
        #: Configurations items and schedules of a group use: ``(group, id)`` → configuration
        #: and its creation (wall) time, so a configuration keeps one scenario and executable.
        self._configurations: dict[tuple[str, str], tuple[Configuration, float]] = {}
        self._seq = itertools.count()
        self._request_ids = itertools.count(1)

    # -- time and ids ---------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def wall(self, at: float) -> float:
        """Wall-clock epoch seconds of clock time ``at`` (timestamps on the wire)."""
        return self._wall_origin + (at - self._clock_origin)

    def request_id(self) -> str:
        with self.lock:
            return f"sim-{next(self._request_ids):012d}"

    # -- store ----------------------------------------------------------------------------

    def _bucket(self, resource_group: str, kind: Kind) -> dict[str, ItemRecord]:
        return self._items.setdefault((resource_group, kind), {})

    def _live(self, resource_group: str, kind: Kind, item_id: str) -> ItemRecord | None:
        if kind is Kind.EXECUTION:
            self._run_schedules(resource_group)
        bucket = self._items.get((resource_group, kind))
        record = None if bucket is None else bucket.get(item_id)
        if bucket is None or record is None:
            return None
        if settle(record, self.now(), self.timings, self.wall):
            return record
        del bucket[item_id]
        return None

    def _live_all(self, resource_group: str, kind: Kind) -> list[ItemRecord]:
        if kind is Kind.EXECUTION:
            self._run_schedules(resource_group)
        bucket = self._items.get((resource_group, kind))
        if not bucket:
            return []
        now = self.now()
        gone = [i for i, r in bucket.items() if not settle(r, now, self.timings, self.wall)]
        for item_id in gone:
            del bucket[item_id]
        return list(bucket.values())

    def _new_id(self, kind: Kind) -> str:
        while True:
            candidate = new_id(kind, self.data_rng)
            if not any(candidate in b for (_, k), b in self._items.items() if k is kind):
                return candidate

    def _view(self, record: ItemRecord) -> ItemView:
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
        )

    # -- seeding and inspection (Python API) ----------------------------------------------

    def add_item(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        *,
        resource_group: str = "default",
        target_status: str | None = None,
        goes_dead: bool = False,
        hold: bool = False,
        configuration_id: str | None = None,
        execution_schedule_id: str | None = None,
        created_at: datetime | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
    ) -> None:
        """Put one item in ``status`` now (replacing any item with that id in the group).

        ``target_status`` defaults to what the status implies: STOPPED for STOPPING/STOPPED,
        otherwise the kind's initial target (RUNNING / COMPLETED). ``DELETED`` seeds an item
        whose deletion is in progress. ``scenario_id``/``executable_id`` place the item's
        configuration (``configuration_id``, required with them) in that scenario; a
        configuration keeps the scenario it was first given (:meth:`configuration`).
        """
        kind, status = Kind(kind), Status(status)
        if not re.match(ID_PATTERN, item_id):
            raise ValueError(f"item id {item_id!r} does not match {ID_PATTERN}")
        if not re.match(RESOURCE_GROUP_PATTERN, resource_group):
            raise ValueError(f"resource group {resource_group!r} does not match the spec's pattern")
        if target_status is not None and target_status not in _TARGETS[kind]:
            raise ValueError(f"target_status of a {kind} is one of {sorted(_TARGETS[kind])}")
        if created_at is not None and created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (e.g. datetime.now(UTC))")
        with self.lock:
            self._groups.add(resource_group)
            now = self.now()
            wall_now = self.wall(now)
            created = wall_now if created_at is None else created_at.timestamp()
            if configuration_id is None:
                if scenario_id is not None or executable_id is not None:
                    raise ValueError("scenario_id and executable_id need a configuration_id")
                configuration_id = self.data_rng.choice(CONFIGURATIONS[kind]).id
            configuration = self.configuration(
                resource_group,
                kind,
                configuration_id,
                scenario_id=scenario_id,
                executable_id=executable_id,
                created=created,
            )
            target = target_status or (
                "STOPPED" if status in (Status.STOPPING, Status.STOPPED) else INITIAL_TARGET[kind]
            )
            record = ItemRecord(
                kind=kind,
                id=item_id,
                resource_group=resource_group,
                status=status,
                target_status=str(target),
                status_since=now,
                created_at=created,
                modified_at=max(created, wall_now),
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
                record.deleting_since = now
                record.last_operation = "DELETE"
            self._bucket(resource_group, kind)[item_id] = record

    def seed(
        self, deployments: int = 0, executions: int = 0, resource_group: str = "default"
    ) -> list[tuple[Kind, str, Status]]:
        """Create items with fresh ids in a mix of statuses, created up to 3 days ago."""
        created: list[tuple[Kind, str, Status]] = []
        with self.lock:
            self.add_resource_group(resource_group)
            wall_now = self.wall(self.now())
            for kind, count in ((Kind.DEPLOYMENT, deployments), (Kind.EXECUTION, executions)):
                for index in range(count):
                    item_id = self._new_id(kind)
                    status = status_at(kind, index)
                    age = self.data_rng.uniform(60.0, 3 * 24 * 3600.0)
                    self.add_item(
                        kind,
                        item_id,
                        status,
                        resource_group=resource_group,
                        created_at=datetime.fromtimestamp(wall_now - age, tz=UTC),
                    )
                    created.append((kind, item_id, status))
        return created

    def configuration(
        self,
        resource_group: str,
        kind: Kind,
        configuration_id: str,
        *,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        created: float | None = None,
    ) -> Configuration:
        """The configuration ``configuration_id`` of the group, registered on first use.

        First use takes the scenario and executable given, else the catalogue's (or made-up
        ones for an id the catalogue lacks). Later uses must agree: a configuration belongs
        to one scenario and one executable (``ValueError`` otherwise).
        """
        if not re.match(ID_PATTERN, configuration_id):
            raise ValueError(f"configuration id {configuration_id!r} does not match {ID_PATTERN}")
        for name, value in (("scenario id", scenario_id), ("executable id", executable_id)):
            if value is not None and not re.match(ID_PATTERN, value):
                raise ValueError(f"{name} {value!r} does not match {ID_PATTERN}")
        with self.lock:
            key = (resource_group, configuration_id)
            known = self._configurations.get(key)
            stamp = self.wall(self.now()) if created is None else created
            if known is None:
                base = configuration_for(kind, configuration_id)
                configuration = Configuration(
                    base.id,
                    base.name,
                    scenario_id or base.scenario_id,
                    executable_id or base.executable_id,
                )
                self._configurations[key] = (configuration, stamp)
                return configuration
            configuration, since = known
            for name, given, held in (
                ("scenario", scenario_id, configuration.scenario_id),
                ("executable", executable_id, configuration.executable_id),
            ):
                if given is not None and given != held:
                    raise ValueError(
                        f"configuration {configuration_id} belongs to {name} {held}, not {given}"
                    )
            if stamp < since:  # a back-dated item: the configuration is at least as old
                self._configurations[key] = (configuration, stamp)
            return configuration

    def item(self, kind: Kind, item_id: str, resource_group: str = "default") -> ItemView | None:
        with self.lock:
            record = self._live(resource_group, Kind(kind), item_id)
            return None if record is None else self._view(record)

    def items(self, kind: Kind | None = None, resource_group: str | None = None) -> list[ItemView]:
        """Every live item, optionally of one kind and/or one resource group."""
        with self.lock:
            self._run_all_schedules()
            keys = [
                (group, k)
                for group, k in self._items
                if (kind is None or k is Kind(kind))
                and (resource_group is None or group == resource_group)
            ]
            return [self._view(r) for group, k in keys for r in self._live_all(group, k)]

    def clear_items(self) -> None:
        """Forget every item, and the execution schedules and configurations that made them."""
        with self.lock:
            self._items.clear()
            self._schedules.clear()
            self._configurations.clear()

    def add_resource_group(self, resource_group: str) -> None:
        """Make ``resource_group`` exist (no-op if it does), as creating it in AI Core would."""
        if not re.match(RESOURCE_GROUP_PATTERN, resource_group):
            raise ValueError(f"resource group {resource_group!r} does not match the spec's pattern")
        with self.lock:
            self._groups.add(resource_group)

    def has_resource_group(self, resource_group: str) -> bool:
        with self.lock:
            return resource_group in self._groups

    def resource_groups(self) -> list[str]:
        """Every resource group that exists, sorted (with items or not)."""
        with self.lock:
            return sorted(self._groups)

    # -- runtime settings ------------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.faults = faults

    def set_timings(self, timings: Timings) -> None:
        """New durations apply to every phase from now on, counted from when it began."""
        with self.lock:
            for group, kind in list(self._items):
                self._live_all(group, kind)  # settle under the old timings first
            self.timings = timings

    def set_bulk_updates(self, enabled: bool, kind: Kind | None = None) -> None:
        with self.lock:
            for each in (Kind(kind),) if kind is not None else tuple(Kind):
                self.bulk_updates[each] = enabled

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{group: {collection: {status: n, "deleting": n}}}`` of the live items."""
        with self.lock:
            self._run_all_schedules()
            result: dict[str, dict[str, dict[str, int]]] = {}
            for group, kind in sorted(self._items, key=lambda key: (key[0], str(key[1]))):
                counts: dict[str, int] = {}
                for record in self._live_all(group, kind):
                    counts[str(record.status)] = counts.get(str(record.status), 0) + 1
                    if record.deleting:
                        counts["deleting"] = counts.get("deleting", 0) + 1
                result.setdefault(group, {})[kind.collection] = counts
            return result

    # -- recording -------------------------------------------------------------------------

    def record(self, context: RequestContext, spec: ViolationSpec, http_status: int) -> None:
        with self.lock:
            self.recorder.violations.append(
                Violation(
                    code=spec.code,
                    what=spec.what,
                    when=self.now(),
                    kind=spec.kind,
                    id=spec.item_id,
                    route=context.route,
                    resource_group=context.resource_group,
                    http_status=http_status,
                )
            )

    def _refuse(self, refusal: Refusal, kind: Kind, item_id: str) -> ApiFailure:
        return ApiFailure(
            refusal.http_status,
            refusal.code,
            refusal.message,
            violation=ViolationSpec(str(refusal.reason), refusal.message, kind, item_id),
        )

    # -- operations ------------------------------------------------------------------------

    def meta(self) -> JSON:
        """``MetaCapabilities``: schema defaults except what the simulator actually does."""
        with self.lock:
            bulk = self.bulk_updates
            return {
                "runtimeIdentifier": "aicore",
                "runtimeApiVersion": API_VERSION,
                "description": "bulkterm AI API simulator (not SAP AI Core)",
                "aiApi": {
                    "version": API_VERSION,
                    "capabilities": {
                        "multitenant": True,
                        "shareable": True,
                        "staticDeployments": False,
                        "userDeployments": True,
                        "userExecutions": True,
                        "timeToLiveDeployments": False,
                        "executionSchedules": self.config.execution_schedules,
                        "logs": {"executions": False, "deployments": False},
                        "bulkUpdates": {
                            "executions": bulk[Kind.EXECUTION],
                            "deployments": bulk[Kind.DEPLOYMENT],
                        },
                    },
                    "limits": {
                        "executions": {"maxRunningCount": -1},
                        "deployments": {"maxRunningCount": -1},
                        "timeToLiveDeployments": {"minimum": "10m", "maximum": "-1"},
                    },
                },
                "extensions": {"resourceGroups": {"version": "1.0.0"}},
            }

    def _matching(self, kind: Kind, resource_group: str, filters: Filters) -> list[ItemRecord]:
        return [r for r in self._live_all(resource_group, kind) if _matches(r, filters)]

    def list_items(self, kind: Kind, resource_group: str, query: ListQuery, base_url: str) -> JSON:
        """``{"count", "resources"}`` in creation order, paged by ``$top``/``$skip``."""
        with self.lock:
            matching = self._matching(kind, resource_group, query.filters)
            top = query.top
            if self.config.silent_page_rows is not None:
                top = min(top, self.config.silent_page_rows)
            page = matching[query.skip : query.skip + top]
            limit = self.config.max_result_rows
            if limit is not None and len(page) > limit:
                message = (
                    f"Result set exceeds the maximum of {limit} rows. "
                    "Use $top and $skip to paginate."
                )
                raise ApiFailure(
                    413,
                    CODE_RESULT_TOO_LARGE,
                    message,
                    violation=ViolationSpec("ResultTooLarge", message, kind),
                )
            include_target = self.config.select_status_includes_target_status
            resources = [
                status_item(r, include_target_status=include_target)
                if query.select_status
                else full_item(r, base_url)
                for r in page
            ]
            count = len(matching) if self.config.list_count == "total" else len(resources)
            return {"count": count, "resources": resources}

    def count(self, kind: Kind, resource_group: str, filters: Filters) -> int:
        with self.lock:
            return len(self._matching(kind, resource_group, filters))

    def get_item(
        self, kind: Kind, resource_group: str, item_id: str, select: bool, base_url: str
    ) -> JSON:
        """One item; 404 when unknown or gone (polling a deleted item is not a violation)."""
        with self.lock:
            record = self._live(resource_group, kind, item_id)
            if record is None:
                refusal = not_found(kind, item_id)
                raise ApiFailure(404, refusal.code, refusal.message)
            if select:
                include_target = self.config.select_status_includes_target_status
                return status_item(record, include_target_status=include_target)
            return full_item(record, base_url)

    def create(self, kind: Kind, resource_group: str, creation: Creation, base_url: str) -> JSON:
        """A new item, UNKNOWN with the kind's initial target, as AI Core answers a POST."""
        with self.lock:
            item_id = self._new_id(kind)
            self.add_item(
                kind,
                item_id,
                Status.UNKNOWN,
                resource_group=resource_group,
                configuration_id=creation.configuration_id,
            )
            record = self._bucket(resource_group, kind)[item_id]
            record.ttl = creation.ttl
            body: JSON = {"id": item_id, "message": _CREATED_MESSAGE[kind]}
            if kind is Kind.DEPLOYMENT:
                body["deploymentUrl"] = deployment_url(base_url, item_id)
            body["status"] = str(Status.UNKNOWN)
            if creation.ttl is not None:
                body["ttl"] = creation.ttl
            return body

    def bulk_modify(
        self,
        kind: Kind,
        resource_group: str,
        items: Iterable[tuple[str, TargetStatus]],
        context: RequestContext,
    ) -> JSON:
        """Apply each item on its own; refused items come back as ``{id, error}`` in the 202."""
        with self.lock:
            results: list[JSON] = []
            for item_id, requested in items:
                record = self._live(resource_group, kind, item_id)
                refusal = (
                    not_found(kind, item_id)
                    if record is None
                    else check_change(
                        kind,
                        item_id,
                        record.status,
                        record.target_status,
                        requested,
                        bulk=True,
                        bulk_delete_completed=self.config.bulk_delete_completed,
                    )
                )
                if refusal is not None:
                    error = api_error(
                        refusal.code, refusal.message, context.request_id, context.url
                    )
                    results.append({"id": item_id, "error": error})
                    action = "stop" if requested is TargetStatus.STOPPED else "delete"
                    spec = ViolationSpec(
                        str(refusal.reason),
                        f"bulk {action} of {kind} {item_id} refused: {refusal.message}",
                        kind,
                        item_id,
                    )
                    self.record(context, spec, 202)
                    continue
                assert record is not None
                schedule(record, requested, self.now(), self.wall)
                results.append({"id": item_id, "message": _MODIFIED_MESSAGE[kind]})
            return {kind.collection: results}

    def bulk_refusal(self, kind: Kind) -> ApiFailure | None:
        """The refusal of a bulk PATCH while ``bulkUpdates`` is off for ``kind``."""
        with self.lock:
            if self.bulk_updates[kind]:
                return None
        status = self.config.bulk_refusal_status
        message = (
            f"Bulk updates of {kind.collection} are not enabled "
            f"(meta: aiApi.capabilities.bulkUpdates.{kind.collection} is false)."
        )
        headers = {"Allow": "GET, POST"} if status == 405 else None
        return ApiFailure(
            status,
            CODE_BULK_UNSUPPORTED,
            message,
            violation=ViolationSpec("BulkUpdatesDisabled", message, kind),
            headers=headers,
        )

    def modify(
        self, kind: Kind, resource_group: str, item_id: str, modification: Modification
    ) -> JSON:
        """Single PATCH: the bulk rules, answered at request level (404/412)."""
        with self.lock:
            record = self._live(resource_group, kind, item_id)
            if record is None:
                raise self._refuse(not_found(kind, item_id), kind, item_id)
            if modification.stop:
                refusal = check_change(
                    kind,
                    item_id,
                    record.status,
                    record.target_status,
                    TargetStatus.STOPPED,
                    bulk=False,
                )
                if refusal is not None:
                    raise self._refuse(refusal, kind, item_id)
                schedule(record, TargetStatus.STOPPED, self.now(), self.wall)
            else:
                refusal = check_reconfiguration(kind, item_id, record.status, record.target_status)
                if refusal is not None:
                    raise self._refuse(refusal, kind, item_id)
                assert modification.configuration_id is not None
                configuration = configuration_for(kind, modification.configuration_id)
                record.latest_running_configuration_id = record.configuration_id
                record.configuration_id = configuration.id
                record.configuration_name = configuration.name
                record.last_operation = "UPDATE"
                record.modified_at = self.wall(self.now())
            return {"id": item_id, "message": _MODIFIED_MESSAGE[kind]}

    def delete(self, kind: Kind, resource_group: str, item_id: str) -> JSON:
        """Single DELETE; answered with the live text, not the spec example (contract §6.2)."""
        with self.lock:
            record = self._live(resource_group, kind, item_id)
            if record is None:
                raise self._refuse(not_found(kind, item_id), kind, item_id)
            refusal = check_change(
                kind, item_id, record.status, record.target_status, TargetStatus.DELETED, bulk=False
            )
            if refusal is not None:
                raise self._refuse(refusal, kind, item_id)
            schedule(record, TargetStatus.DELETED, self.now(), self.wall)
            return {"id": item_id, "message": _DELETED_MESSAGE, "targetStatus": "DELETED"}

    # -- execution schedules ---------------------------------------------------------------

    def _run_schedules(self, resource_group: str) -> None:
        """Start every execution the group's ACTIVE schedules owe by now, each at its due time
        (so its lifecycle has moved on as far as it would have)."""
        schedules = self._schedules.get(resource_group)
        if not schedules:
            return
        now = self.now()
        for record in schedules.values():
            for at in due_runs(record, now, self.wall):
                self._spawn(record, at)

    def _run_all_schedules(self) -> None:
        for group in list(self._schedules):
            self._run_schedules(group)

    def _spawn(self, schedule_record: ScheduleRecord, at: float) -> None:
        kind = Kind.EXECUTION
        group = schedule_record.resource_group
        configuration = self.configuration(group, kind, schedule_record.configuration_id)
        stamp = self.wall(at)
        item_id = self._new_id(kind)
        schedule_record.runs += 1
        self._bucket(group, kind)[item_id] = ItemRecord(
            kind=kind,
            id=item_id,
            resource_group=group,
            status=Status.UNKNOWN,
            target_status=INITIAL_TARGET[kind],
            status_since=at,
            created_at=stamp,
            modified_at=stamp,
            configuration_id=configuration.id,
            configuration_name=configuration.name,
            scenario_id=configuration.scenario_id,
            executable_id=configuration.executable_id,
            seq=next(self._seq),
            execution_schedule_id=schedule_record.id,
        )

    def add_schedule(
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
        """Seed one execution schedule (replacing one with the same id in the group).

        ACTIVE, it starts an execution of ``configuration_id`` every ``period_seconds`` of the
        clock from now on (``cron`` is shown, not interpreted).
        """
        status = ScheduleStatus(status)
        if not re.match(ID_PATTERN, schedule_id):
            raise ValueError(f"schedule id {schedule_id!r} does not match {ID_PATTERN}")
        if not re.match(RESOURCE_GROUP_PATTERN, resource_group):
            raise ValueError(f"resource group {resource_group!r} does not match the spec's pattern")
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
        with self.lock:
            self._groups.add(resource_group)
            now = self.now()
            wall_now = self.wall(now)
            created = wall_now if created_at is None else created_at.timestamp()
            self.configuration(
                resource_group,
                Kind.EXECUTION,
                configuration_id,
                scenario_id=scenario_id,
                executable_id=executable_id,
                created=created,
            )
            self._run_schedules(resource_group)  # a replaced schedule owes its runs first
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

    def execution_schedule(
        self, schedule_id: str, resource_group: str = "default"
    ) -> ScheduleView | None:
        with self.lock:
            self._run_schedules(resource_group)
            record = self._schedules.get(resource_group, {}).get(schedule_id)
            return None if record is None else ScheduleView.of(record)

    def schedules(self, resource_group: str | None = None) -> list[ScheduleView]:
        """Every schedule, optionally of one resource group, in creation order per group."""
        with self.lock:
            groups = [g for g in self._schedules if resource_group in (None, g)]
            for group in groups:
                self._run_schedules(group)
            return [ScheduleView.of(r) for g in groups for r in self._schedules[g].values()]

    def _schedule_record(self, resource_group: str, schedule_id: str) -> ScheduleRecord:
        self._run_schedules(resource_group)
        record = self._schedules.get(resource_group, {}).get(schedule_id)
        if record is None:
            message = f"Execution schedule {schedule_id} not found."
            raise ApiFailure(404, CODE_NOT_FOUND, message)
        return record

    def list_schedules(self, resource_group: str, query: ScheduleListQuery) -> JSON:
        """``AiExecutionScheduleList`` in creation order, paged by ``$top``/``$skip``."""
        with self.lock:
            self._run_schedules(resource_group)
            matching = [
                r
                for r in self._schedules.get(resource_group, {}).values()
                if _schedule_matches(r, query.filters)
            ]
            page = [schedule_json(r) for r in matching[query.skip : query.skip + query.top]]
            _page_or_refuse(page, self.config.max_result_rows, "list executionSchedules")
            count = len(matching) if self.config.list_count == "total" else len(page)
            return {"count": count, "resources": page}

    def count_schedules(self, resource_group: str, filters: ScheduleFilters) -> int:
        with self.lock:
            self._run_schedules(resource_group)
            schedules = self._schedules.get(resource_group, {}).values()
            return sum(1 for r in schedules if _schedule_matches(r, filters))

    def get_schedule(self, resource_group: str, schedule_id: str) -> JSON:
        with self.lock:
            return schedule_json(self._schedule_record(resource_group, schedule_id))

    def modify_schedule(
        self, resource_group: str, schedule_id: str, change: ScheduleModification
    ) -> JSON:
        """Apply a PATCH: runs due before it are started first; setting ACTIVE restarts the
        period from now (missed runs are not caught up), INACTIVE stops further runs. Setting
        the status a schedule already has is accepted and changes nothing."""
        with self.lock:
            record = self._schedule_record(resource_group, schedule_id)
            now = self.now()
            if change.configuration_id is not None:
                self.configuration(resource_group, Kind.EXECUTION, change.configuration_id)
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
            record.modified_at = self.wall(now)
            return {"id": schedule_id, "message": _SCHEDULE_MODIFIED}

    def delete_schedule(self, resource_group: str, schedule_id: str) -> JSON:
        """Gone at once; the executions it started stay (with its ``executionScheduleId``)."""
        with self.lock:
            self._schedule_record(resource_group, schedule_id)
            del self._schedules[resource_group][schedule_id]
            return {"id": schedule_id, "message": _SCHEDULE_DELETED}

    # -- configurations --------------------------------------------------------------------

    def list_configurations(self, resource_group: str, query: ConfigurationQuery) -> JSON:
        """``AiConfigurationList`` of the configurations the group's items and schedules use
        (the simulator knows no others), in the order they were first used."""
        with self.lock:
            matching = [
                (configuration, created)
                for (group, _), (configuration, created) in self._configurations.items()
                if group == resource_group
                and (query.scenario_id is None or configuration.scenario_id == query.scenario_id)
                and (
                    query.executable_ids is None
                    or configuration.executable_id in query.executable_ids
                )
            ]
            page = [
                configuration_json(configuration, created)
                for configuration, created in matching[query.skip : query.skip + query.top]
            ]
            _page_or_refuse(page, self.config.max_result_rows, "list configurations")
            count = len(matching) if self.config.list_count == "total" else len(page)
            return {"count": count, "resources": page}
