"""The AI API's operations on deployments and executions: list, count, read, create, stop,
reconfigure and delete, as the :class:`~bulkterm.simulator.store.ItemStore` sees them.

Whether a change may happen is :mod:`bulkterm.simulator.rules`' answer alone; what an accepted
change does over time is :mod:`bulkterm.simulator.lifecycle`'s. A bulk PATCH applies each item
on its own and answers refusals per item inside its 202; a single PATCH or DELETE answers them
at request level (404 for an unknown id, 412 for a status that does not allow it).

Not thread-safe by itself: :class:`~bulkterm.simulator.backend.Backend` holds its lock around
every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator.clock import Timebase
from bulkterm.simulator.config import SimulatorConfig
from bulkterm.simulator.faults import FaultInjector, InjectedRefusal
from bulkterm.simulator.lifecycle import ItemRecord, schedule
from bulkterm.simulator.queries import Filters, ListQuery
from bulkterm.simulator.recording import RequestContext, ViolationSpec
from bulkterm.simulator.rules import (
    CODE_BAD_REQUEST,
    STATUS_REFUSED,
    Refusal,
    check_change,
    check_reconfiguration,
    not_found,
)
from bulkterm.simulator.seeding import configuration_for
from bulkterm.simulator.store import ItemStore
from bulkterm.simulator.validation import Creation, Modification
from bulkterm.simulator.wire import (
    JSON,
    ApiFailure,
    api_error,
    deployment_url,
    full_item,
    paged,
    status_item,
)

_MODIFIED_MESSAGE = {
    Kind.DEPLOYMENT: "Deployment modification scheduled",
    Kind.EXECUTION: "Execution modification scheduled",
}
#: AI Core's live answers to a create differ from the spec's examples (the deployment's ends
#: with a full stop, the execution's does not).
_CREATED_MESSAGE = {Kind.DEPLOYMENT: "Deployment scheduled.", Kind.EXECUTION: "Execution scheduled"}
#: AI Core's live answer to a single DELETE, not the spec's example.
_DELETED_MESSAGE = "Deletion scheduled"

#: Records a violation of the request being served: ``(context, what, HTTP status)``.
Record = Callable[[RequestContext, ViolationSpec, int], None]


def _refused(refusal: Refusal, kind: Kind, item_id: str) -> ApiFailure:
    return ApiFailure(
        refusal.http_status,
        refusal.code,
        refusal.message,
        violation=ViolationSpec(str(refusal.reason), refusal.message, kind, item_id),
    )


def _injected(refusal: InjectedRefusal) -> ApiFailure:
    return ApiFailure(STATUS_REFUSED, refusal.code, refusal.message)


class ItemOperations:
    """The requests on items of one simulated endpoint (every resource group)."""

    def __init__(
        self,
        time: Timebase,
        config: SimulatorConfig,
        store: ItemStore,
        faults: FaultInjector,
        record: Record,
    ) -> None:
        self.time = time
        self.config = config
        self.store = store
        self.faults = faults
        self.record = record

    def _status_item(self, record: ItemRecord) -> JSON:
        include = self.config.select_status_includes_target_status
        return status_item(record, include_target_status=include)

    def list(self, kind: Kind, resource_group: str, query: ListQuery, base_url: str) -> JSON:
        """``{"count", "resources"}`` in creation order, paged by ``$top``/``$skip``."""
        matching = self.store.matching(kind, resource_group, query.filters)
        top = query.top
        if self.config.silent_page_rows is not None:
            top = min(top, self.config.silent_page_rows)
        page, count = paged(
            matching,
            query.skip,
            top,
            max_rows=self.config.max_result_rows,
            list_count=self.config.list_count,
            what=f"list {kind.collection}",
            kind=kind,
        )
        resources = [
            self._status_item(r) if query.select_status else full_item(r, base_url) for r in page
        ]
        return {"count": count, "resources": resources}

    def count(self, kind: Kind, resource_group: str, filters: Filters) -> int:
        return len(self.store.matching(kind, resource_group, filters))

    def get(
        self, kind: Kind, resource_group: str, item_id: str, select: bool, base_url: str
    ) -> JSON:
        """One item; 404 when unknown or gone (polling a deleted item is not a violation)."""
        record = self.store.live(resource_group, kind, item_id)
        if record is None:
            refusal = not_found(kind, item_id)
            raise ApiFailure(404, refusal.code, refusal.message)
        return self._status_item(record) if select else full_item(record, base_url)

    def create(self, kind: Kind, resource_group: str, creation: Creation, base_url: str) -> JSON:
        """A new item, UNKNOWN with the kind's initial target, as AI Core answers a POST; a
        400 for a configuration the resource group does not have (AI Core checks the
        configuration synchronously; the spec declares only 202 and 400)."""
        if not self.store.configurations.known(resource_group, kind, creation.configuration_id):
            raise ApiFailure(
                400,
                CODE_BAD_REQUEST,
                f"Configuration {creation.configuration_id} not found in resource group "
                f"{resource_group}.",
            )
        item_id = self.store.new_id(kind)
        record = self.store.add_item(
            kind,
            item_id,
            Status.UNKNOWN,
            resource_group=resource_group,
            configuration_id=creation.configuration_id,
        )
        record.ttl = creation.ttl
        body: JSON = {"id": item_id, "message": _CREATED_MESSAGE[kind]}
        if kind is Kind.DEPLOYMENT:
            body["deploymentUrl"] = deployment_url(base_url, item_id)
        body["status"] = str(Status.UNKNOWN)
        if creation.ttl is not None:
            body["ttl"] = creation.ttl
        return body

    def _apply(self, record: ItemRecord, requested: TargetStatus) -> None:
        """An accepted stop or delete takes effect, unless a fault loses it."""
        if record.id not in self.faults.ineffective:
            schedule(record, requested, self.time.now(), self.time.wall)

    def bulk_modify(
        self,
        kind: Kind,
        resource_group: str,
        items: Iterable[tuple[str, TargetStatus]],
        context: RequestContext,
    ) -> JSON:
        """Apply each item on its own; refused items come back as ``{id, error}`` in the 202."""
        results: list[JSON] = []
        for item_id, requested in items:
            injected = self.faults.refusal(item_id)
            if injected is not None:
                error = api_error(injected.code, injected.message, context.request_id, context.url)
                results.append({"id": item_id, "error": error})
                continue
            record = self.store.live(resource_group, kind, item_id)
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
                error = api_error(refusal.code, refusal.message, context.request_id, context.url)
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
            self._apply(record, requested)
            results.append({"id": item_id, "message": _MODIFIED_MESSAGE[kind]})
        return {kind.collection: results}

    def modify(
        self, kind: Kind, resource_group: str, item_id: str, modification: Modification
    ) -> JSON:
        """Single PATCH: the bulk rules, answered at request level (404/412)."""
        injected = self.faults.refusal(item_id)
        if injected is not None:
            raise _injected(injected)
        record = self.store.live(resource_group, kind, item_id)
        if record is None:
            raise _refused(not_found(kind, item_id), kind, item_id)
        if modification.stop:
            refusal = check_change(
                kind, item_id, record.status, record.target_status, TargetStatus.STOPPED, bulk=False
            )
            if refusal is not None:
                raise _refused(refusal, kind, item_id)
            self._apply(record, TargetStatus.STOPPED)
        else:
            refusal = check_reconfiguration(kind, item_id, record.status, record.target_status)
            if refusal is not None:
                raise _refused(refusal, kind, item_id)
            assert modification.configuration_id is not None
            configuration = configuration_for(kind, modification.configuration_id)
            record.latest_running_configuration_id = record.configuration_id
            record.configuration_id = configuration.id
            record.configuration_name = configuration.name
            record.last_operation = "UPDATE"
            record.modified_at = self.time.wall(self.time.now())
        return {"id": item_id, "message": _MODIFIED_MESSAGE[kind]}

    def delete(self, kind: Kind, resource_group: str, item_id: str) -> JSON:
        """Single DELETE, answered with AI Core's live text."""
        injected = self.faults.refusal(item_id)
        if injected is not None:
            raise _injected(injected)
        record = self.store.live(resource_group, kind, item_id)
        if record is None:
            raise _refused(not_found(kind, item_id), kind, item_id)
        refusal = check_change(
            kind, item_id, record.status, record.target_status, TargetStatus.DELETED, bulk=False
        )
        if refusal is not None:
            raise _refused(refusal, kind, item_id)
        self._apply(record, TargetStatus.DELETED)
        return {"id": item_id, "message": _DELETED_MESSAGE, "targetStatus": "DELETED"}
