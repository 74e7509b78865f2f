"""The AI API client: every call the product makes to SAP AI Core, one method each.

The parts, each with one job:

* :mod:`~bulkterm.aiapi.transport` — HTTP, TLS, the bearer token, pacing, counters: one
  request in, a 2xx response or a typed error out;
* :mod:`~bulkterm.aiapi.retry` — when a failed request is sent again (reads after any
  transient error, writes only when the server certainly did not act), and after how long;
* :mod:`~bulkterm.aiapi.wire` — what an answer means: bodies to models, errors to types;
* :mod:`~bulkterm.aiapi.paging` — walking a paged list until it has certainly ended;
* :mod:`~bulkterm.aiapi.queries` — the filters of a request, checked before it is sent;
* :mod:`~bulkterm.aiapi.bulk` — what a bulk PATCH may hold and what its 202 says.

Errors are typed (:mod:`bulkterm.aiapi.errors`) and their messages carry HTTP status, the
request URL without its query, the API's own error code and message, never a token or a secret.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from bulkterm.aiapi import queries, wire
from bulkterm.aiapi.auth import TokenProvider
from bulkterm.aiapi.bulk import (
    MERGE_PATCH,
    as_unsupported,
    bulk_body,
    bulk_results,
    validate_batch,
)
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import (
    NotFoundError,
    PermanentError,
)
from bulkterm.aiapi.models import (
    RESOURCE_GROUP_PATTERN,
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
from bulkterm.aiapi.paging import Lister
from bulkterm.aiapi.ratelimit import RateLimiter
from bulkterm.aiapi.retry import RetryPolicy
from bulkterm.aiapi.settings import ClientSettings
from bulkterm.aiapi.transport import CLIENT_TYPE, Transport

__all__ = ["CLIENT_TYPE", "MERGE_PATCH", "AiApiClient", "ClientSettings", "validate_batch"]


class AiApiClient:
    """Async client for one AI API endpoint and one resource group. Implements ``AiApi``.

    ``transport`` is an ``httpx`` transport (tests pass ``httpx.MockTransport``); ``sleep``
    and ``rng`` drive the retry backoff. ``tokens`` and ``limiter`` share another client's
    token cache (same service key) and pacing (same tenant) instead of building new ones.
    """

    def __init__(
        self,
        key: ServiceKey,
        resource_group: str | None = None,
        settings: ClientSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        tokens: TokenProvider | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        group = resource_group or key.resource_group or "default"
        if not re.fullmatch(RESOURCE_GROUP_PATTERN, group):
            raise ValueError(f"resource group {group!r} does not match {RESOURCE_GROUP_PATTERN}")
        self.key = key
        self.resource_group = group
        self.settings = settings or ClientSettings()
        self._transport = Transport(
            key, self.settings, transport=transport, tokens=tokens, limiter=limiter, sleep=sleep
        )
        self._retry = RetryPolicy(self.settings, sleep=sleep, rng=rng)
        self._lists = Lister(
            lambda label, path, query: self._collection_call(label, path, params=query)
        )
        #: Requests made, keyed ``"<method> <collection>"`` (``"list deployments"``), plus
        #: ``"meta"`` and ``"token"``. Each attempt counts once when it is handed to HTTP; an
        #: attempt that could not get a token is not counted.
        self.calls = self._transport.calls

    @classmethod
    def from_service_key(
        cls,
        key: ServiceKey | Mapping[str, Any] | str | os.PathLike[str],
        resource_group: str | None = None,
        settings: ClientSettings | None = None,
        **kwargs: Any,
    ) -> AiApiClient:
        return cls(ServiceKey.load(key), resource_group, settings, **kwargs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def token_fetches(self) -> int:
        return self._transport.token_fetches

    @property
    def tokens(self) -> TokenProvider:
        """This client's token cache, to pass as ``tokens=`` to clients with the same key."""
        return self._transport.tokens

    @property
    def limiter(self) -> RateLimiter:
        """This client's pacing, to pass as ``limiter=`` to clients of the same tenant."""
        return self._transport.limiter

    # -- calls ---------------------------------------------------------------------------

    async def meta(self) -> Capabilities:
        """``GET /v2/lm/meta`` (no resource group). Absent ``bulkUpdates`` means off.

        The spec's ``MetaNotFound`` (a 404 with the envelope) is :class:`NotFoundError`."""
        response = await self._call("meta", "GET", "/lm/meta", resource_group=False)
        return wire.capabilities(response)

    async def list_states(
        self,
        kind: Kind,
        *,
        status: Status | None = None,
        page_size: int | None = None,
        configuration_id: str | None = None,
        scenario_id: str | None = None,
        executable_ids: Sequence[str] | None = None,
    ) -> list[ItemState]:
        """All matching items with ``$select=status``, paged explicitly with ``$top``/``$skip``.

        The spec's default ``$top`` is 10,000 but other ``/lm`` endpoints cap results at 1,000
        rows (and say so with a 413), so the client never relies on the default. Items are de-duplicated by
        id; how the walk ends, and why it cannot loop, is in :mod:`bulkterm.aiapi.paging`.
        Raises :class:`ListPagingError` when the list cannot be paged to its end, and
        :class:`EndpointNotFoundError` on any 404 (the spec declares none for lists).
        """
        size = page_size or self.settings.page_size
        label = f"list {kind.collection}"
        params: dict[str, str] = {"$select": "status", "$top": str(size)}
        if status is not None:
            params["status"] = status.value
        if configuration_id:
            params["configurationId"] = configuration_id
        if scenario_id:
            params["scenarioId"] = scenario_id
        if executable_ids:
            params["executableIds"] = ",".join(executable_ids)
        return await self._lists.walk(
            label, f"/lm/{kind.collection}", params, size, lambda r: wire.page(r, kind)
        )

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
        """Every item of ``kind`` matching all the given filters, each as an
        :class:`ItemSummary` (``createdAt``, ``scenarioId``, ``configurationId``,
        ``targetStatus``, ``executionScheduleId``…), for a selector to resolve.

        The filters are the spec's server-side ones; everything else (age, several statuses,
        ``targetStatus``, exclusions) is the caller's to filter. The items are read whole:
        the spec's ``$select`` offers only ``status``, whose answer lacks ``scenarioId``,
        ``targetStatus`` and ``executionScheduleId``. Paging as :meth:`list_states`
        (:class:`ListPagingError`, :class:`EndpointNotFoundError`).

        ``executable_ids`` are split into requests of at most the spec's 1000 ids and at most
        6000 URL-encoded characters (gateways limit request lines, often to 8 KB), and the
        answers merged (each item has one executable, so the parts do not overlap). Bad
        filters raise ``ValueError`` before anything is sent: an id outside
        the id pattern, an empty ``executable_ids`` (``None`` means no filter; an empty
        list would silently mean everything), ``execution_schedule_id`` for deployments
        (the spec has no such filter there, and a server ignoring it would list them all).
        """
        size = queries.page_size(page_size)
        label = f"list {kind.collection}"
        params: dict[str, str] = {"$top": str(size)}
        if status is not None:
            params["status"] = Status(status).value
        for name, value in (
            ("scenarioId", scenario_id),
            ("configurationId", configuration_id),
            ("executionScheduleId", execution_schedule_id),
        ):
            if value is not None:
                params[name] = queries.checked_id(name, value)
        if execution_schedule_id is not None and kind is not Kind.EXECUTION:
            raise ValueError(
                "execution_schedule_id filters executions only: deployments have no "
                "executionScheduleId filter in the AI API"
            )
        path = f"/lm/{kind.collection}"
        chunks = queries.executable_id_chunks(executable_ids)
        found: dict[str, ItemSummary] = {}
        for chunk in chunks:
            if chunk is not None:
                params["executableIds"] = ",".join(chunk)
            for item in await self._lists.walk(
                label, path, params, size, lambda r: wire.summary_page(r, kind)
            ):
                found.setdefault(item.id, item)
        return list(found.values())

    async def list_execution_schedules(
        self,
        *,
        scenario_id: str | None = None,
        configuration_id: str | None = None,
        status: ScheduleStatus | None = None,
        page_size: int = 1000,
    ) -> list[ScheduleSummary]:
        """Every execution schedule matching all the given filters.

        ``configurationId`` and ``status`` are the spec's server-side filters. A schedule
        names a configuration, not a scenario, and the spec has no ``scenarioId`` filter for
        schedules, so ``scenario_id`` is resolved first: the scenario's configurations
        (``GET /lm/configurations?scenarioId=``, counted as ``"list configurations"``),
        then the schedules of those. Paging and errors as :meth:`list_items`; a runtime
        without schedules (``/lm/meta``: ``executionSchedules`` false) answers
        :class:`EndpointNotFoundError`.
        """
        size = queries.page_size(page_size)
        params: dict[str, str] = {"$top": str(size)}
        if configuration_id is not None:
            params["configurationId"] = queries.checked_id("configurationId", configuration_id)
        if status is not None:
            params["status"] = ScheduleStatus(status).value
        allowed: set[str] | None = None
        if scenario_id is not None:
            scenario = queries.checked_id("scenarioId", scenario_id)
            configurations = await self._lists.walk(
                "list configurations",
                "/lm/configurations",
                {"$top": str(size), "scenarioId": scenario},
                size,
                wire.configuration_page,
            )
            allowed = {c.id for c in configurations if c.scenario_id == scenario}
            if not allowed or (configuration_id is not None and configuration_id not in allowed):
                return []
        schedules = await self._lists.walk(
            "list executionSchedules", "/lm/executionSchedules", params, size, wire.schedule_page
        )
        return [s for s in schedules if allowed is None or s.configuration_id in allowed]

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        """``PATCH /lm/executionSchedules/{id}`` with ``{"status": "INACTIVE"}``: the schedule
        starts no new execution. Pausing a paused schedule is fine (the same PATCH again)."""
        await self.set_execution_schedule_status(schedule_id, ScheduleStatus.INACTIVE)

    async def set_execution_schedule_status(self, schedule_id: str, status: ScheduleStatus) -> None:
        """``PATCH /lm/executionSchedules/{id}`` with ``{"status": ...}``. A write: resent only
        when the server certainly did not act (see :mod:`~bulkterm.aiapi.retry`), though the
        same status twice is harmless. :class:`NotFoundError` when the schedule does not
        exist (the AI API's 404); ``ValueError`` for an id outside the spec's pattern, before
        anything is sent."""
        ident = queries.checked_id("execution schedule id", schedule_id)
        await self._call(
            "patch executionSchedules",
            "PATCH",
            f"/lm/executionSchedules/{wire.path_id(ident)}",
            json_body={"status": status.value},
            write=True,
        )

    async def create(self, kind: Kind, configuration_id: str) -> str:
        """``POST /lm/deployments`` or ``/lm/executions`` from a configuration: the new item's
        id. Never resent once it may have reached the server (a second POST is a second
        item); ``ValueError`` for an id outside the spec's pattern, before anything is sent."""
        ident = queries.checked_id("configurationId", configuration_id)
        response = await self._call(
            f"create {kind.collection}",
            "POST",
            f"/lm/{kind.collection}",
            json_body={"configurationId": ident},
            write=True,
        )
        return wire.created_id(response, kind)

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        response = await self._call(
            f"get {kind.collection}",
            "GET",
            f"/lm/{kind.collection}/{wire.path_id(item_id)}",
            params=None if full else {"$select": "status"},
        )
        return wire.item_state(wire.json_object(response), kind)

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        """``$count``; :class:`EndpointNotFoundError` on any 404 (the spec declares none)."""
        params = {"status": status.value} if status is not None else None
        response = await self._collection_call(
            f"count {kind.collection}",
            f"/lm/{kind.collection}/$count",
            params=params,
            accept="text/plain, application/json",  # the count is text; errors are JSON
        )
        return wire.count(response, kind)

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        """One bulk PATCH. Invalid batches are refused here, before anything is sent.

        A 404 with the envelope on the collection, 405/501, or a 4xx saying so: no bulk
        endpoint here (:class:`BulkUnsupportedError`, the engine falls back to single calls).
        A 404 without the envelope: :class:`EndpointNotFoundError`, like every call.
        """
        body = bulk_body(kind, items)
        label = f"bulk_patch {kind.collection}"
        try:
            response = await self._call(
                label,
                "PATCH",
                f"/lm/{kind.collection}",
                json_body=body,
                content_type=MERGE_PATCH,
                write=True,
            )
        except (NotFoundError, PermanentError) as exc:
            unsupported = as_unsupported(exc, label)
            if unsupported is None:
                raise
            raise unsupported from None
        return bulk_results(response, kind)

    async def stop(self, kind: Kind, item_id: str) -> None:
        await self._call(
            f"stop {kind.collection}",
            "PATCH",
            f"/lm/{kind.collection}/{wire.path_id(item_id)}",
            json_body={"targetStatus": TargetStatus.STOPPED.value},
            write=True,
        )

    async def delete(self, kind: Kind, item_id: str) -> None:
        await self._call(
            f"delete {kind.collection}",
            "DELETE",
            f"/lm/{kind.collection}/{wire.path_id(item_id)}",
            write=True,
        )

    # -- plumbing ------------------------------------------------------------------------

    async def _call(
        self,
        label: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        resource_group: bool = True,
        write: bool = False,
    ) -> httpx.Response:
        """One call, with the retries :class:`RetryPolicy` allows for a read or a write."""
        url = self.key.api_url + path
        headers: dict[str, str] = {}
        if resource_group:
            headers["AI-Resource-Group"] = self.resource_group
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept

        def send() -> Awaitable[httpx.Response]:
            return self._transport.request(
                label, method, url, params=params, headers=headers, json_body=json_body
            )

        return await self._retry.run(send, write=write)

    async def _collection_call(
        self,
        label: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        accept: str | None = None,
    ) -> httpx.Response:
        """A GET of a whole collection (list, ``$count``): no 404 can mean an item is gone."""
        try:
            return await self._call(label, "GET", path, params=params, accept=accept)
        except NotFoundError as exc:
            raise wire.collection_not_served(label, exc, self.key.api_url + path) from None
