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

from bulkterm.aiapi.models import ID_PATTERN, RESOURCE_GROUP_PATTERN, Kind, Status, TargetStatus
from bulkterm.simulator.auth import TokenIssuer
from bulkterm.simulator.clock import Clock
from bulkterm.simulator.config import DEFAULT_RESOURCE_GROUP, Faults, SimulatorConfig, Timings
from bulkterm.simulator.lifecycle import INITIAL_TARGET, ItemRecord, schedule, settle
from bulkterm.simulator.recording import Recorder, Violation
from bulkterm.simulator.rules import (
    CODE_BULK_UNSUPPORTED,
    CODE_RESULT_TOO_LARGE,
    Refusal,
    check_change,
    check_reconfiguration,
    not_found,
)
from bulkterm.simulator.seeding import CONFIGURATIONS, configuration_for, new_id, status_at
from bulkterm.simulator.validation import Creation, Filters, ListQuery, Modification
from bulkterm.simulator.wire import (
    JSON,
    ApiFailure,
    ViolationSpec,
    api_error,
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
        bucket = self._items.get((resource_group, kind))
        record = None if bucket is None else bucket.get(item_id)
        if bucket is None or record is None:
            return None
        if settle(record, self.now(), self.timings, self.wall):
            return record
        del bucket[item_id]
        return None

    def _live_all(self, resource_group: str, kind: Kind) -> list[ItemRecord]:
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
    ) -> None:
        """Put one item in ``status`` now (replacing any item with that id in the group).

        ``target_status`` defaults to what the status implies: STOPPED for STOPPING/STOPPED,
        otherwise the kind's initial target (RUNNING / COMPLETED). ``DELETED`` seeds an item
        whose deletion is in progress.
        """
        kind, status = Kind(kind), Status(status)
        if not re.match(ID_PATTERN, item_id):
            raise ValueError(f"item id {item_id!r} does not match {ID_PATTERN}")
        if not re.match(RESOURCE_GROUP_PATTERN, resource_group):
            raise ValueError(f"resource group {resource_group!r} does not match the spec's pattern")
        if target_status is not None and target_status not in _TARGETS[kind]:
            raise ValueError(f"target_status of a {kind} is one of {sorted(_TARGETS[kind])}")
        with self.lock:
            self._groups.add(resource_group)
            now = self.now()
            wall_now = self.wall(now)
            if configuration_id is None:
                configuration = self.data_rng.choice(CONFIGURATIONS[kind])
            else:
                configuration = configuration_for(kind, configuration_id)
            created = wall_now if created_at is None else created_at.timestamp()
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

    def item(self, kind: Kind, item_id: str, resource_group: str = "default") -> ItemView | None:
        with self.lock:
            record = self._live(resource_group, Kind(kind), item_id)
            return None if record is None else self._view(record)

    def items(self, kind: Kind | None = None, resource_group: str | None = None) -> list[ItemView]:
        """Every live item, optionally of one kind and/or one resource group."""
        with self.lock:
            keys = [
                (group, k)
                for group, k in self._items
                if (kind is None or k is Kind(kind))
                and (resource_group is None or group == resource_group)
            ]
            return [self._view(r) for group, k in keys for r in self._live_all(group, k)]

    def clear_items(self) -> None:
        with self.lock:
            self._items.clear()

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
                        "executionSchedules": False,
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
            page = matching[query.skip : query.skip + query.top]
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
