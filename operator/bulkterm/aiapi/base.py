"""The interface the engine needs from an AI API client.

The engine is written against this protocol, not against :class:`~bulkterm.aiapi.client.AiApiClient`,
so that unit tests can drive it with an in-memory fake and so that a shared, coalescing executor
(many BulkTerminations, one endpoint) can be slotted in later without touching the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from bulkterm.aiapi.models import (
    BulkItemResult,
    Capabilities,
    ItemState,
    ItemSummary,
    Kind,
    ScheduleStatus,
    ScheduleSummary,
    Status,
    TargetStatus,
)


class AiApi(Protocol):
    """Calls of the AI API for one endpoint and one resource group."""

    #: Calls made so far, keyed ``"<method> <kind>"`` e.g. ``"bulk_patch deployments"``,
    #: ``"list deployments"``, ``"get executions"``, ``"list executionSchedules"``,
    #: ``"patch executionSchedules"``, ``"list configurations"``, ``"token"``, ``"meta"``.
    calls: Counter[str]

    async def meta(self) -> Capabilities:
        """``GET /v2/lm/meta``."""
        ...

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        """Every item of ``kind`` (``$select=status``, explicit ``$top``/``$skip`` paging).

        Raises ``ListPagingError`` when the list cannot be paged to its end (the server
        ignores ``$skip``), ``EndpointNotFoundError`` on a 404 (the spec declares none)."""
        ...

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
        """Every item matching all the given server-side filters, with what a selector needs
        (``createdAt``, ``scenarioId``, ``targetStatus``, ``executionScheduleId``…).

        Paged like :meth:`list_states`; more than 1000 ``executable_ids`` are split into
        several requests. ``ValueError`` before sending for an id outside the spec's pattern,
        an empty ``executable_ids`` or ``execution_schedule_id`` with deployments."""
        ...

    async def list_execution_schedules(
        self,
        *,
        scenario_id: str | None = None,
        configuration_id: str | None = None,
        status: ScheduleStatus | None = None,
    ) -> list[ScheduleSummary]:
        """Every execution schedule matching the filters (``scenario_id`` through the
        scenario's configurations: schedules have no scenario filter of their own)."""
        ...

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        """Set the schedule INACTIVE (a write: retried only when surely not executed);
        already INACTIVE is fine; ``NotFoundError`` when it does not exist."""
        ...

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        """One item; raises ``NotFoundError`` on the AI API's own 404 (its error envelope),
        ``EndpointNotFoundError`` on a 404 without it (the URL is not served: no evidence
        about the item).

        ``$select=status`` by default, which leaves ``targetStatus`` out; ``full=True`` reads
        the whole item, the only way to see that a stop or a deletion is already under way.
        """
        ...

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        """``GET /v2/lm/{collection}/$count``; ``EndpointNotFoundError`` on a 404."""
        ...

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        """One bulk PATCH; raises ``InvalidBatchError`` before sending >100 items or a duplicate id."""
        ...

    async def stop(self, kind: Kind, item_id: str) -> None:
        """Single ``PATCH /{id}`` with ``{"targetStatus": "STOPPED"}``.

        Writes raise ``TransientError`` with ``not_executed`` False when the outcome is
        unknown (the server may have acted), ``sent`` False when nothing left the client."""
        ...

    async def delete(self, kind: Kind, item_id: str) -> None:
        """Single ``DELETE /{id}``."""
        ...


class ForwardingApi:
    """An :class:`AiApi` that hands every call to ``inner``: the base of the wrappers that
    change a few calls (:class:`~bulkterm.k8s.fleet.FleetApi` shares reads and merges bulk
    requests, :class:`~bulkterm.k8s.leases.ExclusiveApi` holds writes for the run's lease) and
    must pass the rest through unchanged. Other attributes (``key``, ``resource_group``) are
    the inner client's."""

    def __init__(self, inner: AiApi) -> None:
        self.inner = inner
        #: The inner client's counter itself, so that counts add up through any wrapping.
        self.calls: Counter[str] = inner.calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def meta(self) -> Capabilities:
        return await self.inner.meta()

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        return await self.inner.list_states(kind, status=status, page_size=page_size)

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
        return await self.inner.list_items(
            kind,
            scenario_id=scenario_id,
            configuration_id=configuration_id,
            executable_ids=executable_ids,
            status=status,
            execution_schedule_id=execution_schedule_id,
            page_size=page_size,
        )

    async def list_execution_schedules(
        self,
        *,
        scenario_id: str | None = None,
        configuration_id: str | None = None,
        status: ScheduleStatus | None = None,
    ) -> list[ScheduleSummary]:
        return await self.inner.list_execution_schedules(
            scenario_id=scenario_id, configuration_id=configuration_id, status=status
        )

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        await self.inner.pause_execution_schedule(schedule_id)

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        return await self.inner.get_state(kind, item_id, full=full)

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        return await self.inner.count(kind, status=status)

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        return await self.inner.bulk_patch(kind, items)

    async def stop(self, kind: Kind, item_id: str) -> None:
        await self.inner.stop(kind, item_id)

    async def delete(self, kind: Kind, item_id: str) -> None:
        await self.inner.delete(kind, item_id)
