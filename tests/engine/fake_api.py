"""The AI API the engine tests run against: the simulator's backend, called in-process.

:class:`FakeAiApi` implements the :class:`~bulkterm.aiapi.base.AiApi` protocol by calling
:class:`~bulkterm.simulator.backend.Backend` directly (no HTTP, no sockets). Requests are
built as the real client builds them and read by the simulator's own request readers; answers
and refusals are read back by the real client's readers (:mod:`bulkterm.aiapi.wire`,
:mod:`bulkterm.aiapi.bulk`, :class:`~bulkterm.aiapi.paging.Lister`), so the engine gets the
models and typed errors :class:`~bulkterm.aiapi.client.AiApiClient` gives for the same
answers, and what the API allows is the simulator's rules alone. The client's retries,
tokens and pacing are left out: each call is one attempt, and the engine's handling of its
errors is what is under test.

The backend runs on a :class:`FakeClock` that moves only when the engine sleeps, so what the
engine observed in a round is exactly what the API holds when the round's requests arrive:
any rule broken is the engine's fault, and the simulator records it (:attr:`violations`).
Items change only when told to (no UNKNOWN → PENDING → RUNNING flow, executions never
complete): an accepted stop takes ``stop_lag_seconds`` to show STOPPING and ``stop_seconds``
more to reach STOPPED, an accepted delete ``delete_seconds`` to take the item away.

Test hooks: :attr:`fail_next` and :attr:`always_fail` raise an error instead of sending a
call (what the client raises for an outage or revoked credentials); :attr:`refuse`,
:attr:`ineffective` and :attr:`bulk_refused` are the simulator's write faults;
:meth:`schedule` plans a change the item makes by itself; :attr:`items` lets a test change or
remove an item behind the engine's back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bulkterm.aiapi import queries as client_queries
from bulkterm.aiapi import wire
from bulkterm.aiapi.bulk import as_unsupported, bulk_body, bulk_results
from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
)
from bulkterm.aiapi.models import (
    BulkItemResult,
    BulkUpdates,
    Capabilities,
    ItemState,
    Kind,
    ScheduleStatus,
    Status,
    TargetStatus,
)
from bulkterm.aiapi.paging import Lister
from bulkterm.simulator import SimulatorConfig, Timings, validation
from bulkterm.simulator import queries as sim_queries
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.faults import InjectedRefusal
from bulkterm.simulator.recording import RequestContext, Violation
from bulkterm.simulator.store import ItemView
from bulkterm.simulator.wire import JSON, ApiFailure, api_error

START = datetime(2025, 1, 1, tzinfo=UTC)
#: Where the fake API pretends to be (error targets, deployment URLs); nothing listens there.
BASE_URL = "https://fake-ai-api.invalid"
RESOURCE_GROUP = "default"
#: Which :attr:`FakeAiApi.fail_next` queue a request of each list answers from.
_LIST_HOOKS = {
    "list deployments": "list",
    "list executions": "list",
    "list executionSchedules": "list_schedules",
    "list configurations": "list_schedules",
}


class FakeClock:
    """Time that moves only when someone sleeps; called, it gives epoch seconds."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.current.timestamp()

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


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


class ItemHandle:
    """One item of :attr:`FakeAiApi.items`: setting ``status`` is a change the item makes by
    itself, now."""

    def __init__(self, backend: Backend, kind: Kind, item_id: str) -> None:
        self._backend, self._kind, self._id = backend, kind, item_id

    @property
    def status(self) -> Status | None:
        view = self._backend.item(self._kind, self._id)
        return None if view is None else view.status

    @status.setter
    def status(self, status: Status) -> None:
        self._backend.plan_change(self._kind, self._id, 0, status)


class Items:
    """The API's items by ``(kind, id)``: a view of the backend, to change behind the engine's
    back (``del items[key]`` or ``pop``: someone else deleted it at once). Assigning one
    API's ``items`` to another makes both serve the same items."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self.backend.item(*key) is not None

    def __getitem__(self, key: tuple[Kind, str]) -> ItemHandle:
        if key not in self:
            raise KeyError(key)
        return ItemHandle(self.backend, *key)

    def __delitem__(self, key: tuple[Kind, str]) -> None:
        if not self.backend.remove_item(*key):
            raise KeyError(key)

    def pop(self, key: tuple[Kind, str], default: Any = None) -> ItemView | Any:
        view = self.backend.item(*key)
        self.backend.remove_item(*key)
        return default if view is None else view


class FakeAiApi:
    """An :class:`~bulkterm.aiapi.base.AiApi` over an in-process simulator backend."""

    def __init__(
        self,
        clock: FakeClock,
        bulk_updates: BulkUpdates | None = None,
        stop_lag_seconds: float = 0.0,
        stop_seconds: float = 2.0,
        delete_seconds: float = 3.0,
        report_target_status: bool = True,
    ) -> None:
        """``report_target_status`` False hides ``targetStatus`` under ``$select=status``
        (what AI Core does); the bulk capability is on for both kinds unless given."""
        self.clock = clock
        timings = Timings(
            unknown_seconds=None,
            pending_seconds=float("inf"),
            execution_run_seconds=None,
            stop_delay_seconds=stop_lag_seconds,
            stopping_seconds=stop_seconds,
            deletion_seconds=delete_seconds,
        )
        config = SimulatorConfig(
            seed=0,
            timings=timings,
            select_status_includes_target_status=report_target_status,
        )
        self.backend = Backend(config, clock, wall_origin=clock())
        bulk = bulk_updates or BulkUpdates(deployments=True, executions=True)
        for kind in Kind:
            self.backend.set_bulk_updates(bulk.supports(kind), kind)
        self.resource_group = RESOURCE_GROUP
        #: Requests made, under the real client's labels (``"list deployments"``, ``"meta"``…).
        self.calls: Counter[str] = Counter()
        self.sent: list[Sent] = []
        #: Errors to raise instead of the next calls of a method ("meta", "list", "get",
        #: "count", "bulk_patch", "stop", "delete", "list_schedules", "pause_schedule").
        self.fail_next: dict[str, list[Exception]] = {}
        #: When set, every call raises this (e.g. an AuthError for revoked credentials).
        self.always_fail: Exception | None = None
        #: Highest number of single calls (GET one, stop, delete) in progress at once.
        self.max_concurrent_singles = 0
        self._concurrent = 0
        self._requests = itertools.count(1)
        self._lists = Lister(self._fetch)

    # --- the world, and the simulator's fault hooks ---

    @property
    def items(self) -> Items:
        return Items(self.backend)

    @items.setter
    def items(self, items: Items) -> None:
        self.backend = items.backend

    @property
    def violations(self) -> list[Violation]:
        """Requests the AI API refused because the client should not have sent them."""
        with self.backend.lock:
            return list(self.backend.recorder.violations)

    @property
    def refuse(self) -> dict[str, list[InjectedRefusal]]:
        """Per id, the errors its next writes get, whatever its state."""
        return self.backend.injector.refusals

    @property
    def ineffective(self) -> set[str]:
        """Ids whose writes are accepted but never take effect (a lost action)."""
        return self.backend.injector.ineffective

    @property
    def bulk_refused(self) -> set[Kind]:
        """Kinds whose bulk PATCH the server refuses although meta advertises it."""
        return self.backend.injector.bulk_refused

    def add(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        target_status: str | None = None,
        *,
        created_at: datetime | None = None,
        configuration_id: str | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        execution_schedule_id: str | None = None,
    ) -> None:
        self.backend.add_item(
            kind,
            item_id,
            status,
            target_status=target_status,
            created_at=created_at,
            configuration_id=configuration_id,
            scenario_id=scenario_id,
            executable_id=executable_id,
            execution_schedule_id=execution_schedule_id,
        )

    def add_schedule(
        self,
        schedule_id: str,
        *,
        configuration_id: str = "fake-configuration",
        scenario_id: str | None = None,
        status: ScheduleStatus = ScheduleStatus.ACTIVE,
        period_seconds: float = 3600.0,
    ) -> None:
        """A schedule that, while ACTIVE, starts an execution every period (the first one
        period from now)."""
        self.backend.add_schedule(
            schedule_id,
            configuration_id=configuration_id,
            scenario_id=scenario_id,
            status=status,
            period_seconds=period_seconds,
        )

    def add_stopping(self, kind: Kind, item_id: str, after: float) -> None:
        """An item someone else is already stopping; it reaches STOPPED ``after`` seconds on."""
        self.backend.add_item(kind, item_id, Status.STOPPING, target_status="STOPPED", hold=True)
        self.backend.plan_change(kind, item_id, after, Status.STOPPED)

    def schedule(self, kind: Kind, item_id: str, after: float, status: Status | None) -> None:
        """A change that happens on its own (``None`` = the item vanishes, e.g. TTL)."""
        self.backend.plan_change(kind, item_id, after, status)

    def status_of(self, kind: Kind, item_id: str) -> Status | None:
        view = self.backend.item(kind, item_id)
        return None if view is None else view.status

    def writes_to(self, item_id: str) -> list[Sent]:
        return [s for s in self.sent if s.id == item_id]

    # --- one request ---

    def _enter(self, hook: str, label: str) -> None:
        """Count the request under the real client's label; raise what the test queued."""
        self.calls[label] += 1
        if self.always_fail is not None:
            raise self.always_fail
        queue = self.fail_next.get(hook)
        if queue:
            raise queue.pop(0)

    async def _call(
        self,
        hook: str,
        label: str,
        route: str,
        handle: Callable[[RequestContext], object],
        *,
        item_id: str = "",
        single: bool = False,
    ) -> httpx.Response:
        """One request (``route`` as the simulator names it, ``"GET /lm/deployments/{id}"``):
        counted, maybe failed by a test hook, then answered by ``handle``."""
        self._enter(hook, label)
        if single:
            self._concurrent += 1
            self.max_concurrent_singles = max(self.max_concurrent_singles, self._concurrent)
        try:
            await asyncio.sleep(0)
            if single:
                await asyncio.sleep(0)
        finally:
            self._concurrent -= single
        path = route.split()[1].replace("{id}", item_id)
        return self._serve(label, route, path, handle)

    def _serve(
        self, label: str, route: str, path: str, handle: Callable[[RequestContext], object]
    ) -> httpx.Response:
        """The answer to one request as the client would receive it; a refusal is recorded
        (when the client caused it) and raised as the client's typed error."""
        method = route.split()[0]
        context = RequestContext(
            route=route,
            url=f"{BASE_URL}/v2{path}",
            request_id=self.backend.request_id(),
            resource_group=RESOURCE_GROUP,
        )
        request = httpx.Request(method, context.url)
        try:
            body = handle(context)
        except ApiFailure as failure:
            if failure.violation is not None:
                self.backend.record(context, failure.violation, failure.status)
            error = api_error(
                failure.code, failure.message, context.request_id, context.url, failure.details
            )
            answer = httpx.Response(
                failure.status, json={"error": error}, headers=failure.headers, request=request
            )
            raise wire.error_for(label, answer, context.url) from None
        if isinstance(body, int):
            return httpx.Response(200, text=str(body), request=request)
        return httpx.Response(200 if method == "GET" else 202, json=body, request=request)

    async def _fetch(self, label: str, path: str, query: Mapping[str, str]) -> httpx.Response:
        """One page of a list (what :class:`Lister` asks for), read by the simulator."""
        params = {name: [value] for name, value in query.items()}
        plain = self.backend.config.accept_plain_top_skip

        def handle(context: RequestContext) -> JSON:
            if path == "/lm/executionSchedules":
                listed = sim_queries.schedule_list_query(params, accept_plain_top_skip=plain)
                return self.backend.list_schedules(RESOURCE_GROUP, listed)
            if path == "/lm/configurations":
                wanted = sim_queries.configuration_query(params, accept_plain_top_skip=plain)
                return self.backend.list_configurations(RESOURCE_GROUP, wanted)
            kind = Kind.DEPLOYMENT if path == "/lm/deployments" else Kind.EXECUTION
            page = sim_queries.list_query(kind, params, accept_plain_top_skip=plain)
            return self.backend.list_items(kind, RESOURCE_GROUP, page, BASE_URL)

        try:
            return await self._call(_LIST_HOOKS[label], label, f"GET {path}", handle)
        except NotFoundError as exc:
            raise wire.collection_not_served(label, exc, f"{BASE_URL}/v2{path}") from None

    def _note_writes(self, kind: Kind, items: Sequence[tuple[str, TargetStatus]], via: str) -> None:
        """Remember each item of a write request as the API holds it when the request arrives."""
        request = next(self._requests)
        for item_id, action in items:
            seen = self.backend.item(kind, item_id)
            self.sent.append(
                Sent(
                    at=self.clock.now(),
                    request=request,
                    kind=kind,
                    id=item_id,
                    action=action,
                    via=via,
                    status_before=None if seen is None else seen.status,
                    target_status_before=None if seen is None else seen.target_status,
                    stop_accepted_at=None if seen is None else seen.stop_accepted_at,
                    delete_accepted_at=None if seen is None else seen.delete_accepted_at,
                )
            )

    # --- the AiApi protocol ---

    async def meta(self) -> Capabilities:
        answer = await self._call("meta", "meta", "GET /lm/meta", lambda _: self.backend.meta())
        return wire.capabilities(answer)

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        params = {"$select": "status", "$top": str(page_size)}
        if status is not None:
            params["status"] = status.value
        return await self._lists.walk(
            f"list {kind.collection}",
            f"/lm/{kind.collection}",
            params,
            page_size,
            lambda r: wire.page(r, kind),
        )

    # Selector reads walk the lists exactly as the client does (its filters, its checks, its
    # paging through ``self._lists``): the client's own methods, on this transport.
    list_items = AiApiClient.list_items
    list_execution_schedules = AiApiClient.list_execution_schedules

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        ident = client_queries.checked_id("execution schedule id", schedule_id)
        change = validation.schedule_modification({"status": "INACTIVE"})
        await self._call(
            "pause_schedule",
            "patch executionSchedules",
            "PATCH /lm/executionSchedules/{id}",
            lambda _: self.backend.modify_schedule(RESOURCE_GROUP, ident, change),
            item_id=ident,
        )

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        def handle(context: RequestContext) -> JSON:
            ident = validation.item_id(kind, item_id)
            return self.backend.get_item(kind, RESOURCE_GROUP, ident, not full, BASE_URL)

        route = f"GET /lm/{kind.collection}/{{id}}"
        answer = await self._call(
            "get", f"get {kind.collection}", route, handle, item_id=item_id, single=True
        )
        return wire.item_state(wire.json_object(answer), kind)

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        params = {} if status is None else {"status": [status.value]}

        def handle(context: RequestContext) -> int:
            return self.backend.count(kind, RESOURCE_GROUP, sim_queries.filters(kind, params))

        route = f"GET /lm/{kind.collection}/$count"
        return wire.count(
            await self._call("count", f"count {kind.collection}", route, handle), kind
        )

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        """As the client: ``InvalidBatchError`` before sending a batch the API would refuse,
        ``BulkUnsupportedError`` when the API refuses bulk PATCH as such."""
        body = bulk_body(kind, items)

        def handle(context: RequestContext) -> JSON:
            refusal = self.backend.bulk_refusal(kind)
            if refusal is not None:
                raise refusal
            parsed = validation.bulk_items(kind, body)
            self._note_writes(kind, parsed, "bulk")
            return self.backend.bulk_modify(kind, RESOURCE_GROUP, parsed, context)

        label = f"bulk_patch {kind.collection}"
        try:
            answer = await self._call("bulk_patch", label, f"PATCH /lm/{kind.collection}", handle)
        except (NotFoundError, PermanentError) as exc:
            unsupported = as_unsupported(exc, label)
            if unsupported is None:
                raise
            raise unsupported from None
        return bulk_results(answer, kind)

    async def stop(self, kind: Kind, item_id: str) -> None:
        def handle(context: RequestContext) -> JSON:
            ident = validation.item_id(kind, item_id)
            change = validation.modification(kind, ident, {"targetStatus": "STOPPED"})
            self._note_writes(kind, [(ident, TargetStatus.STOPPED)], "single")
            return self.backend.modify(kind, RESOURCE_GROUP, ident, change)

        route = f"PATCH /lm/{kind.collection}/{{id}}"
        await self._call(
            "stop", f"stop {kind.collection}", route, handle, item_id=item_id, single=True
        )

    async def delete(self, kind: Kind, item_id: str) -> None:
        def handle(context: RequestContext) -> JSON:
            ident = validation.item_id(kind, item_id)
            self._note_writes(kind, [(ident, TargetStatus.DELETED)], "single")
            return self.backend.delete(kind, RESOURCE_GROUP, ident)

        route = f"DELETE /lm/{kind.collection}/{{id}}"
        await self._call(
            "delete", f"delete {kind.collection}", route, handle, item_id=item_id, single=True
        )


def refusal(code: str = "400", message: str = "refused") -> InjectedRefusal:
    """An error the API answers the next write of an item with (see :attr:`FakeAiApi.refuse`)."""
    return InjectedRefusal(code, message)


def auth_error() -> AuthError:
    return AuthError("HTTP 401 from the AI API", status_code=401)
