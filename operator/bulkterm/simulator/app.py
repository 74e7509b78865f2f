"""The HTTP face of the simulator: AI API routes, the token endpoint, auth and fault injection.

Order of events for every AI API request, mirroring a gateway in front of AI Core: count the
request → injected delay → injected fault (drop, 5xx, 429, 401) → bearer token → handler
(resource group, body, operation) → maybe lose the response → count the answer. Refusals are
raised as :class:`ApiFailure` and rendered here as ``{"error": {...}}`` whose ``target`` is the
invoked URL; the ones the client caused are recorded as violations on the way out. A path the
AI API does not serve is a plain-text 404 without the envelope: what a wrong URL gets in the
wild, from whatever serves the host.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from bulkterm.aiapi.models import Kind
from bulkterm.simulator import queries, validation
from bulkterm.simulator.auth import TokenCheck, TokenError
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.faults import NO_FAULT, Decision, FaultKind
from bulkterm.simulator.recording import RequestContext, ViolationSpec
from bulkterm.simulator.rules import (
    CODE_BAD_REQUEST,
    CODE_SERVER_ERROR,
    CODE_THROTTLED,
    CODE_UNAUTHORIZED,
    CODE_UNSUPPORTED_MEDIA_TYPE,
)
from bulkterm.simulator.wire import ApiFailure, api_error

BACKEND = web.AppKey("backend", Backend)
#: The request being served (set by the middleware, read by handlers in the same task).
_CONTEXT: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("simulator_request")

TOKEN_ROUTE = "POST /oauth/token"
#: Request body media types the spec declares: bulk PATCH is a JSON merge patch, create and
#: single PATCH are plain JSON.
JSON_MEDIA = "application/json"
MERGE_PATCH_MEDIA = "application/merge-patch+json"
_COLLECTION = "{collection:deployments|executions}"
_KINDS = {kind.collection: kind for kind in Kind}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_key(request: web.Request) -> str | None:
    """``"PATCH /lm/deployments"``, ``"GET /lm/executions/{id}"``…

    ``None`` outside the AI API and the token endpoint (``/_sim``, a browser asking for ``/``):
    those are not counted, faulted or authenticated.
    """
    path = request.path
    if not path.startswith(("/v2/", "/oauth/")):
        return None
    info = request.match_info
    if info.http_exception is not None:
        return f"{request.method} {path}"
    canonical = info.route.resource.canonical if info.route.resource is not None else path
    key = canonical.removeprefix("/v2")
    key = key.replace("{collection}", info.get("collection", "")).replace("{item_id}", "{id}")
    return f"{request.method} {key}"


def current_context() -> RequestContext:
    """The context the middleware set for the request this task is serving."""
    return _CONTEXT.get()


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def invoked_url(request: web.Request) -> str:
    """The URL as the client sent it, query included (``raw_path`` keeps its encoding)."""
    return f"{base_url(request)}{request.raw_path}"


def _error_response(failure: ApiFailure, ctx: RequestContext) -> web.Response:
    error = api_error(failure.code, failure.message, ctx.request_id, ctx.url, failure.details)
    return web.json_response({"error": error}, status=failure.status, headers=failure.headers)


def _not_served(backend: Backend, ctx: RequestContext, request: web.Request) -> web.Response:
    """A path the AI API does not serve: plain text, no envelope (recorded as a violation)."""
    message = f"{request.method} {request.path}: no such operation in the AI API."
    backend.record(ctx, ViolationSpec("UnknownRoute", message), 404)
    return web.Response(status=404, text="404: Not Found", content_type="text/plain")


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a reset / empty reply)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def _fault_failure(fault: FaultKind, backend: Backend) -> ApiFailure:
    faults = backend.faults
    if fault is FaultKind.SERVER_ERROR:
        return ApiFailure(faults.error_status, CODE_SERVER_ERROR, "Injected server error.")
    if fault is FaultKind.THROTTLE:
        return ApiFailure(
            429,
            CODE_THROTTLED,
            "Too many requests.",
            headers={"Retry-After": str(faults.retry_after)},
        )
    return ApiFailure(
        401,
        CODE_UNAUTHORIZED,
        "Invalid or expired token.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _authenticate(backend: Backend, request: web.Request) -> None:
    with backend.lock:
        check = backend.tokens.check(request.headers.get("Authorization"))
    if check is TokenCheck.VALID:
        return
    header = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if check is TokenCheck.MISSING:
        message = "Missing bearer token: send Authorization: Bearer <token>."
        raise ApiFailure(
            401,
            CODE_UNAUTHORIZED,
            message,
            violation=ViolationSpec("MissingToken", message),
            headers={"WWW-Authenticate": "Bearer"},
        )
    text = "Token expired." if check is TokenCheck.EXPIRED else "Invalid bearer token."
    raise ApiFailure(401, CODE_UNAUTHORIZED, text, headers=header)


def _method_failure(exc: web.HTTPException) -> ApiFailure:
    """A path the AI API serves, with a method it does not (405, enveloped)."""
    message = f"{exc.reason}: no such operation in the AI API."
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiFailure(
        exc.status,
        CODE_BAD_REQUEST,
        message,
        violation=ViolationSpec("MethodNotAllowed", message),
        headers=headers,
    )


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_key(request)
    if route is None:
        return await handler(request)
    backend = request.app[BACKEND]
    ctx = RequestContext(route=route, url=invoked_url(request), request_id=backend.request_id())
    _CONTEXT.set(ctx)
    with backend.lock:
        backend.recorder.requests[route] += 1
        spared = route == TOKEN_ROUTE and not backend.faults.include_token_endpoint
        decision: Decision = NO_FAULT if spared else backend.injector.decide(request.method)
    if decision.delay_seconds > 0:
        await asyncio.sleep(decision.delay_seconds)
    if decision.fault is FaultKind.DROP:
        return _finish(backend, route, _drop(request), dropped=True)
    try:
        if decision.fault is not None:
            raise _fault_failure(decision.fault, backend)
        if route != TOKEN_ROUTE:
            _authenticate(backend, request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status != 404:
                raise _method_failure(exc) from None
            response = _not_served(backend, ctx, request)
    except ApiFailure as failure:
        if failure.violation is not None:
            backend.record(ctx, failure.violation, failure.status)
        response = _error_response(failure, ctx)
    if decision.lose_response:
        return _finish(backend, route, _drop(request), dropped=True)
    return _finish(backend, route, response)


def _finish(
    backend: Backend, route: str, response: web.StreamResponse, *, dropped: bool = False
) -> web.StreamResponse:
    outcome = "dropped" if dropped else str(response.status)
    with backend.lock:
        backend.recorder.responses[f"{route} {outcome}"] += 1
    return response


# -- helpers shared by handlers ------------------------------------------------------------


def _kind(request: web.Request) -> Kind:
    return _KINDS[request.match_info["collection"]]


def _resource_group(request: web.Request) -> str:
    backend = request.app[BACKEND]
    header = request.headers.get("AI-Resource-Group")
    try:
        group = validation.resource_group(header, backend.has_resource_group)
    except ApiFailure as failure:
        if failure.status == 403:  # well-formed but unknown: the violation names it
            current_context().resource_group = header
        raise
    current_context().resource_group = group
    return group


def _query(request: web.Request) -> dict[str, list[str]]:
    return {key: request.query.getall(key) for key in set(request.query.keys())}


async def _json_body(request: web.Request, media_type: str) -> object:
    """The JSON body; 415 unless sent as ``media_type`` (parameters such as ``charset`` are
    fine), 400 for JSON that does not parse."""
    if request.content_type != media_type:
        sent = request.headers.get("Content-Type", "none")
        message = f"Unsupported Content-Type {sent}: send {media_type}."
        raise ApiFailure(
            415,
            CODE_UNSUPPORTED_MEDIA_TYPE,
            message,
            violation=ViolationSpec("UnsupportedMediaType", message),
        )
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise validation.bad_request("Body is not valid JSON.", "MalformedRequest") from None


# -- handlers ------------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: client credentials in the form body or as HTTP Basic."""
    backend = request.app[BACKEND]
    form = await request.post()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    issuer = f"{base_url(request)}/oauth/token"
    try:
        with backend.lock:
            grant = backend.tokens.grant(fields, request.headers.get("Authorization"), issuer)
    except TokenError as error:
        name = "InvalidClient" if error.error == "invalid_client" else "UnsupportedGrantType"
        backend.record(
            current_context(),
            ViolationSpec(name, f"token request refused: {error.description}"),
            error.status,
        )
        return web.json_response(
            {"error": error.error, "error_description": error.description}, status=error.status
        )
    return web.json_response(
        {
            "access_token": grant.access_token,
            "token_type": "bearer",
            "expires_in": grant.expires_in,
            "scope": "uaa.resource",
            "jti": grant.access_token[-32:],
        }
    )


async def meta(request: web.Request) -> web.Response:
    return web.json_response(request.app[BACKEND].meta())


async def list_items(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    query = queries.list_query(
        kind, _query(request), accept_plain_top_skip=backend.config.accept_plain_top_skip
    )
    return web.json_response(backend.list_items(kind, group, query, base_url(request)))


async def count(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    filters = queries.filters(kind, _query(request))
    return web.Response(text=str(backend.count(kind, group, filters)), content_type="text/plain")


async def create(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    creation = validation.creation(kind, await _json_body(request, JSON_MEDIA))
    body = backend.create(kind, group, creation, base_url(request))
    location = f"{base_url(request)}/v2/lm/{kind.collection}/{body['id']}"
    return web.json_response(body, status=202, headers={"Location": location})


async def bulk_modify(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    refusal = backend.bulk_refusal(kind)
    if refusal is not None:
        raise refusal
    items = validation.bulk_items(kind, await _json_body(request, MERGE_PATCH_MEDIA))
    return web.json_response(backend.bulk_modify(kind, group, items, current_context()), status=202)


async def get_item(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    item = validation.item_id(kind, request.match_info["item_id"])
    select = queries.select_status(_query(request))
    return web.json_response(backend.get_item(kind, group, item, select, base_url(request)))


async def modify(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    item = validation.item_id(kind, request.match_info["item_id"])
    change = validation.modification(kind, item, await _json_body(request, JSON_MEDIA))
    return web.json_response(backend.modify(kind, group, item, change), status=202)


async def delete(request: web.Request) -> web.Response:
    backend, kind = request.app[BACKEND], _kind(request)
    group = _resource_group(request)
    item = validation.item_id(kind, request.match_info["item_id"])
    return web.json_response(backend.delete(kind, group, item), status=202)


def _schedules_served(request: web.Request) -> Backend:
    """The backend, when it serves execution schedules; otherwise the path is not served."""
    backend = request.app[BACKEND]
    if not backend.config.execution_schedules:
        raise web.HTTPNotFound()
    return backend


async def list_schedules(request: web.Request) -> web.Response:
    backend = _schedules_served(request)
    group = _resource_group(request)
    query = queries.schedule_list_query(
        _query(request), accept_plain_top_skip=backend.config.accept_plain_top_skip
    )
    return web.json_response(backend.list_schedules(group, query))


async def count_schedules(request: web.Request) -> web.Response:
    backend = _schedules_served(request)
    group = _resource_group(request)
    filters = queries.schedule_filters(_query(request))
    return web.Response(
        text=str(backend.count_schedules(group, filters)), content_type="text/plain"
    )


async def get_schedule(request: web.Request) -> web.Response:
    backend = _schedules_served(request)
    group = _resource_group(request)
    schedule = validation.schedule_id(request.match_info["item_id"])
    return web.json_response(backend.get_schedule(group, schedule))


async def modify_schedule(request: web.Request) -> web.Response:
    backend = _schedules_served(request)
    group = _resource_group(request)
    schedule = validation.schedule_id(request.match_info["item_id"])
    change = validation.schedule_modification(await _json_body(request, JSON_MEDIA))
    return web.json_response(backend.modify_schedule(group, schedule, change), status=202)


async def delete_schedule(request: web.Request) -> web.Response:
    backend = _schedules_served(request)
    group = _resource_group(request)
    schedule = validation.schedule_id(request.match_info["item_id"])
    return web.json_response(backend.delete_schedule(group, schedule), status=202)


async def list_configurations(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    group = _resource_group(request)
    query = queries.configuration_query(
        _query(request), accept_plain_top_skip=backend.config.accept_plain_top_skip
    )
    return web.json_response(backend.list_configurations(group, query))


def add_api_routes(app: web.Application) -> None:
    """The token endpoint and the AI API operations the product uses (spec v2.42.0):
    deployments and executions, execution schedules (read, pause, delete) and the list of
    configurations (what a selector by scenario needs to find a scenario's schedules)."""
    router = app.router
    router.add_post("/oauth/token", token)
    router.add_get("/v2/lm/meta", meta)
    # $count before {item_id}: "$count" must not be read as an id.
    router.add_get(f"/v2/lm/{_COLLECTION}/$count", count)
    router.add_get(f"/v2/lm/{_COLLECTION}", list_items)
    router.add_post(f"/v2/lm/{_COLLECTION}", create)
    router.add_patch(f"/v2/lm/{_COLLECTION}", bulk_modify)
    router.add_get(f"/v2/lm/{_COLLECTION}/{{item_id}}", get_item)
    router.add_patch(f"/v2/lm/{_COLLECTION}/{{item_id}}", modify)
    router.add_delete(f"/v2/lm/{_COLLECTION}/{{item_id}}", delete)
    router.add_get("/v2/lm/executionSchedules/$count", count_schedules)
    router.add_get("/v2/lm/executionSchedules", list_schedules)
    router.add_get("/v2/lm/executionSchedules/{item_id}", get_schedule)
    router.add_patch("/v2/lm/executionSchedules/{item_id}", modify_schedule)
    router.add_delete("/v2/lm/executionSchedules/{item_id}", delete_schedule)
    router.add_get("/v2/lm/configurations", list_configurations)
