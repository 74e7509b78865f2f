"""The ``/_sim`` control API: seed items, set faults and timings, read counters and violations.

For pipelines and demos that drive the simulator from outside Python (curl, another
language). Bodies use the same snake_case names as the Python API and the CLI, not the AI
API's camelCase, so one vocabulary covers all three.

Whoever reaches ``/_sim`` can reseed the tenant, inject faults and revoke every token, so with
a control token (``SimulatorConfig.control_token``, always one when the simulator listens
beyond loopback) every ``/_sim`` request must carry ``Authorization: Bearer <token>``: without
it, or with another, the answer is 401 with ``{"error": ...}`` and nothing is read or changed.
The AI API's own routes are not affected: they check their OAuth tokens as before.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, fields
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bulkterm.aiapi.models import ID_PATTERN, RESOURCE_GROUP_PATTERN, Kind, ScheduleStatus, Status
from bulkterm.simulator.app import BACKEND
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.clock import SimClock
from bulkterm.simulator.config import Faults, Timings
from bulkterm.simulator.schedules import DEFAULT_CRON, DEFAULT_PERIOD_SECONDS, ScheduleView
from bulkterm.simulator.store import ItemView

T = TypeVar("T")

_KIND_NAMES = {
    **{kind.value.lower(): kind for kind in Kind},
    **{kind.collection: kind for kind in Kind},
}


class ControlError(Exception):
    """A control request that cannot be served: answered 400 (or ``status``) with a message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedItem(_Body):
    kind: Kind
    id: str = Field(pattern=ID_PATTERN)
    status: Status
    target_status: str | None = Field(default=None, pattern="^(RUNNING|COMPLETED|STOPPED|DELETED)$")
    goes_dead: bool = False
    hold: bool = False
    configuration_id: str | None = Field(default=None, pattern=ID_PATTERN)
    execution_schedule_id: str | None = Field(default=None, pattern=ID_PATTERN)
    #: Back-dates the item (RFC 3339 with an offset), for selection by age.
    created_at: AwareDatetime | None = None
    #: With ``configuration_id``: the scenario and executable of that configuration.
    scenario_id: str | None = Field(default=None, pattern=ID_PATTERN)
    executable_id: str | None = Field(default=None, pattern=ID_PATTERN)


class SeedSchedule(_Body):
    """An execution schedule: ``cron`` is shown, ``period_seconds`` is how often it runs."""

    id: str = Field(pattern=ID_PATTERN)
    configuration_id: str = Field(pattern=ID_PATTERN)
    status: ScheduleStatus = ScheduleStatus.ACTIVE
    period_seconds: float = Field(default=DEFAULT_PERIOD_SECONDS, gt=0)
    cron: str = Field(default=DEFAULT_CRON, min_length=1)
    name: str | None = Field(default=None, max_length=256)
    scenario_id: str | None = Field(default=None, pattern=ID_PATTERN)
    executable_id: str | None = Field(default=None, pattern=ID_PATTERN)
    created_at: AwareDatetime | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


class SeedRequest(_Body):
    resource_group: str = Field(default="default", pattern=RESOURCE_GROUP_PATTERN)
    deployments: int = Field(default=0, ge=0)
    executions: int = Field(default=0, ge=0)
    items: list[SeedItem] = Field(default_factory=list)
    execution_schedules: list[SeedSchedule] = Field(default_factory=list)


class ResourceGroupRequest(_Body):
    resource_group: str = Field(pattern=RESOURCE_GROUP_PATTERN)


class CapabilitiesRequest(_Body):
    bulk_updates: bool | dict[str, bool]


class AdvanceRequest(_Body):
    seconds: float = Field(ge=0)


def _kind(value: str) -> Kind:
    kind = _KIND_NAMES.get(value.lower())
    if kind is None:
        raise ControlError(f"unknown kind {value!r}: Deployment or Execution")
    return kind


def view_json(view: ItemView) -> dict[str, Any]:
    data = asdict(view)
    data["kind"] = str(view.kind)
    data["status"] = str(view.status)
    data["created_at"] = view.created_at.isoformat()
    data["modified_at"] = view.modified_at.isoformat()
    return data


def schedule_json(view: ScheduleView) -> dict[str, Any]:
    data = asdict(view)
    data["status"] = str(view.status)
    for key in ("created_at", "modified_at", "start", "end"):
        value = getattr(view, key)
        data[key] = None if value is None else value.isoformat()
    return data


def settings(cls: type[T], current: T, body: object, *, merge: bool) -> T:
    """A new ``Faults``/``Timings`` from a JSON body: over the current one (PATCH) or defaults."""
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(body) - names)
    if unknown:
        raise ControlError(f"unknown fields {unknown}; known: {sorted(names)}")
    base = asdict(current) if merge else {}  # type: ignore[call-overload]
    try:
        return TypeAdapter(cls).validate_python({**base, **body})
    except (ValidationError, ValueError, TypeError) as error:
        raise ControlError(str(error)) from None


def _parse(model: type[BaseModel], body: object) -> Any:
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as error:
        raise ControlError(str(error)) from None


async def _body(request: web.Request) -> object:
    if not request.can_read_body:
        return None
    try:
        return await request.json()
    except ValueError:
        raise ControlError("body is not valid JSON") from None


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ControlError as error:
        return web.json_response({"error": str(error)}, status=error.status)


#: ``WWW-Authenticate`` of a refused control request (RFC 6750), naming what it protects.
CONTROL_CHALLENGE = 'Bearer realm="bulkterm-simulator-control"'


def require_control_token(token: str) -> Middleware:
    """Middleware: a ``/_sim`` request passes only with ``Authorization: Bearer <token>``.

    Checked before routing to a handler, so a refused request changes nothing; compared in
    constant time; the answer never echoes what was sent.
    """
    expected = token.encode()

    @web.middleware
    async def control_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            message = (
                "the control API needs Authorization: Bearer <control token> (the token "
                "`bulkterm simulator` printed at start, or the one given with --control-token "
                "or BULKTERM_SIM_CONTROL_TOKEN)"
            )
        elif not hmac.compare_digest(given.strip().encode(), expected):
            message = "wrong control token: nothing was done"
        else:
            response: web.StreamResponse = await handler(request)
            return response
        return web.json_response(
            {"error": message}, status=401, headers={"WWW-Authenticate": CONTROL_CHALLENGE}
        )

    return control_auth


def _backend(request: web.Request) -> Backend:
    return request.app[BACKEND]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def state(request: web.Request) -> web.Response:
    backend = _backend(request)
    return web.json_response(
        {
            "now": backend.now(),
            "simulated_clock": isinstance(backend.clock, SimClock),
            "bulk_updates": {k.collection: v for k, v in backend.bulk_updates.items()},
            "resource_groups": backend.resource_groups(),
            "timings": asdict(backend.timings),
            "faults": asdict(backend.faults),
            "items": backend.summary(),
        }
    )


async def list_items(request: web.Request) -> web.Response:
    kind = request.query.get("kind")
    group = request.query.get("resource_group")
    views = _backend(request).items(None if kind is None else _kind(kind), group)
    return web.json_response([view_json(v) for v in views])


async def get_item(request: web.Request) -> web.Response:
    kind = _kind(request.match_info["kind"])
    group = request.query.get("resource_group", "default")
    view = _backend(request).item(kind, request.match_info["item_id"], group)
    if view is None:
        raise ControlError("no such item (never seeded, or deleted)", status=404)
    return web.json_response(view_json(view))


async def seed_items(request: web.Request) -> web.Response:
    seed: SeedRequest = _parse(SeedRequest, await _body(request))
    backend = _backend(request)
    backend.add_resource_group(seed.resource_group)
    created: list[dict[str, str]] = []
    try:
        for schedule in seed.execution_schedules:
            backend.add_schedule(
                schedule.id,
                configuration_id=schedule.configuration_id,
                resource_group=seed.resource_group,
                status=schedule.status,
                period_seconds=schedule.period_seconds,
                cron=schedule.cron,
                name=schedule.name,
                scenario_id=schedule.scenario_id,
                executable_id=schedule.executable_id,
                created_at=schedule.created_at,
                start=schedule.start,
                end=schedule.end,
            )
            created.append(
                {"kind": "ExecutionSchedule", "id": schedule.id, "status": str(schedule.status)}
            )
        for item in seed.items:
            backend.add_item(
                item.kind,
                item.id,
                item.status,
                resource_group=seed.resource_group,
                target_status=item.target_status,
                goes_dead=item.goes_dead,
                hold=item.hold,
                configuration_id=item.configuration_id,
                execution_schedule_id=item.execution_schedule_id,
                created_at=item.created_at,
                scenario_id=item.scenario_id,
                executable_id=item.executable_id,
            )
            created.append({"kind": str(item.kind), "id": item.id, "status": str(item.status)})
    except ValueError as error:  # e.g. a configuration given two scenarios
        raise ControlError(str(error)) from None
    for kind, item_id, status in backend.seed(
        seed.deployments, seed.executions, seed.resource_group
    ):
        created.append({"kind": str(kind), "id": item_id, "status": str(status)})
    return web.json_response(
        {"resource_group": seed.resource_group, "created": created}, status=201
    )


async def list_schedules(request: web.Request) -> web.Response:
    group = request.query.get("resource_group")
    views = _backend(request).schedules(group)
    return web.json_response([schedule_json(v) for v in views])


async def list_resource_groups(request: web.Request) -> web.Response:
    return web.json_response({"resource_groups": _backend(request).resource_groups()})


async def add_resource_group(request: web.Request) -> web.Response:
    body: ResourceGroupRequest = _parse(ResourceGroupRequest, await _body(request))
    _backend(request).add_resource_group(body.resource_group)
    return web.json_response({"resource_group": body.resource_group}, status=201)


async def clear_items(request: web.Request) -> web.Response:
    _backend(request).clear_items()
    return web.json_response({"cleared": True})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(asdict(_backend(request).faults))


async def put_faults(request: web.Request) -> web.Response:
    backend = _backend(request)
    merge = request.method == "PATCH"
    faults = settings(Faults, backend.faults, await _body(request), merge=merge)
    backend.set_faults(faults)
    return web.json_response(asdict(faults))


async def get_timings(request: web.Request) -> web.Response:
    return web.json_response(asdict(_backend(request).timings))


async def put_timings(request: web.Request) -> web.Response:
    backend = _backend(request)
    merge = request.method == "PATCH"
    timings = settings(Timings, backend.timings, await _body(request), merge=merge)
    backend.set_timings(timings)
    return web.json_response(asdict(timings))


async def put_capabilities(request: web.Request) -> web.Response:
    body: CapabilitiesRequest = _parse(CapabilitiesRequest, await _body(request))
    backend = _backend(request)
    if isinstance(body.bulk_updates, bool):
        backend.set_bulk_updates(body.bulk_updates)
    else:
        for name, enabled in body.bulk_updates.items():
            backend.set_bulk_updates(enabled, _kind(name))
    return web.json_response(
        {"bulk_updates": {k.collection: v for k, v in backend.bulk_updates.items()}}
    )


async def get_counters(request: web.Request) -> web.Response:
    backend = _backend(request)
    with backend.lock:
        recorder = backend.recorder
        return web.json_response(
            {"requests": dict(recorder.requests), "responses": dict(recorder.responses)}
        )


async def reset_counters(request: web.Request) -> web.Response:
    backend = _backend(request)
    with backend.lock:
        backend.recorder.reset_counters()
    return web.json_response({"reset": True})


async def get_violations(request: web.Request) -> web.Response:
    backend = _backend(request)
    with backend.lock:
        return web.json_response([v.as_dict() for v in backend.recorder.violations])


async def clear_violations(request: web.Request) -> web.Response:
    backend = _backend(request)
    with backend.lock:
        backend.recorder.clear_violations()
    return web.json_response({"cleared": True})


async def advance_clock(request: web.Request) -> web.Response:
    body: AdvanceRequest = _parse(AdvanceRequest, await _body(request))
    clock = _backend(request).clock
    if not isinstance(clock, SimClock):
        raise ControlError("the simulator runs on a real clock; start it with a SimClock", 409)
    return web.json_response({"now": clock.advance(body.seconds)})


async def revoke_tokens(request: web.Request) -> web.Response:
    backend = _backend(request)
    with backend.lock:
        backend.tokens.revoke_all()
    return web.json_response({"revoked": True})


async def reset(request: web.Request) -> web.Response:
    """Forget items, counters and violations (tokens stay valid)."""
    backend = _backend(request)
    backend.clear_items()
    with backend.lock:
        backend.recorder.reset_counters()
        backend.recorder.clear_violations()
    return web.json_response({"reset": True})


def add_control_routes(app: web.Application, token: str | None = None) -> None:
    """Mount the control API at ``/_sim``; with ``token``, every request must carry it."""
    guards = [] if token is None else [require_control_token(token)]
    sub = web.Application(middlewares=[*guards, control_errors])
    sub[BACKEND] = app[BACKEND]
    router = sub.router
    router.add_get("/health", health)
    router.add_get("/state", state)
    router.add_get("/items", list_items)
    router.add_post("/items", seed_items)
    router.add_get("/resource-groups", list_resource_groups)
    router.add_post("/resource-groups", add_resource_group)
    router.add_delete("/items", clear_items)
    router.add_get("/items/{kind}/{item_id}", get_item)
    router.add_get("/execution-schedules", list_schedules)
    router.add_get("/faults", get_faults)
    router.add_put("/faults", put_faults)
    router.add_patch("/faults", put_faults)
    router.add_get("/timings", get_timings)
    router.add_put("/timings", put_timings)
    router.add_patch("/timings", put_timings)
    router.add_put("/capabilities", put_capabilities)
    router.add_get("/counters", get_counters)
    router.add_delete("/counters", reset_counters)
    router.add_get("/violations", get_violations)
    router.add_delete("/violations", clear_violations)
    router.add_post("/clock/advance", advance_clock)
    router.add_post("/tokens/revoke", revoke_tokens)
    router.add_post("/reset", reset)
    app.add_subapp("/_sim", sub)
