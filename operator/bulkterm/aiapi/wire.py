"""What the AI API's answers mean: response bodies to models, error answers to typed errors.

Pure functions of an ``httpx.Response`` (no I/O), so each reading of the wire is testable
without a server. The truth for shapes is the spec (``AI_CORE_API.yaml``): lists are
``{"count", "resources"}``, errors are ``{"error": {"code", "message", "requestId", "target",
"details"}}`` with ``code`` and ``message`` required.

Which 404 means what:

* With the envelope, on one item (``GET``/``PATCH``/``DELETE /{id}``): the item is not there
  (:class:`NotFoundError`); on ``/lm/meta`` (the spec's ``MetaNotFound``) too.
* Without the envelope, on any path: the AI API does not serve that URL at all, usually a
  wrong ``serviceurls.AI_API_URL`` (:class:`EndpointNotFoundError`). Never "item gone".
* On list and ``$count``, whatever the body: the spec declares no 404 there, and no item is
  addressed, so it is also :class:`EndpointNotFoundError` (decided by the client, which knows
  the path; see :func:`collection_not_served`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from bulkterm.aiapi.auth import parse_retry_after
from bulkterm.aiapi.errors import (
    AiApiError,
    AuthError,
    EndpointNotFoundError,
    NotAiApiError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from bulkterm.aiapi.models import (
    BulkUpdates,
    Capabilities,
    ItemState,
    ItemSummary,
    Kind,
    ScheduleSummary,
)

#: Status codes after which the server certainly did not act on a request, so a write may be
#: sent again. 500, 502 and 504 are not: the service, or a gateway that forwarded the request
#: before it gave up, may have acted.
NOT_EXECUTED_STATUSES = frozenset({429, 503})
#: The API's own messages are cut to this many characters in ours.
MAX_MESSAGE = 256
_REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class ErrorEnvelope:
    """The AI API's error body (``AiApiError`` in the spec)."""

    code: str
    message: str
    request_id: str | None


def error_envelope(response: httpx.Response) -> ErrorEnvelope | None:
    """The AI API's error body, or ``None`` when the answer has none.

    An envelope is a JSON object whose ``error`` is an object with the spec's required
    ``code`` and ``message``. Anything else (HTML, plain text, ``{"error": "Not Found"}``, a
    gateway's own JSON) did not come from the AI API.
    """
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code, message, request_id = error.get("code"), error.get("message"), error.get("requestId")
    if not isinstance(code, str | int) or isinstance(code, bool) or not isinstance(message, str):
        return None
    return ErrorEnvelope(
        code=str(code),
        message=message[:MAX_MESSAGE],
        request_id=str(request_id) if request_id is not None else None,
    )


def public_url(url: str | httpx.URL) -> str:
    """``url`` fit for a message: no query (it may carry tokens), fragment or credentials."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced (an API that echoes a header must not leak it)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def error_for(
    label: str, response: httpx.Response, url: str, *, secrets: Iterable[str] = ()
) -> AiApiError:
    """The typed error for a non-2xx answer (401 included: the caller refreshes first).

    ``url`` is the request URL as sent (it is reported without its query); ``secrets`` are
    removed from the API's message.
    """
    code = response.status_code
    envelope = error_envelope(response)
    where = public_url(url)
    if code == 404 and envelope is None:
        return EndpointNotFoundError(
            f"{label}: HTTP 404 without the AI API's error body from {where}: the AI API is not "
            "served at this URL; check serviceurls.AI_API_URL in the service key",
            url=where,
        )
    detail = f"{label}: HTTP {code}"
    kw: dict[str, Any] = {"status_code": code}
    if envelope is not None:
        detail += f" {envelope.code}: {scrub(envelope.message, secrets)}"
        kw.update(code=envelope.code, request_id=envelope.request_id)
    if code in (401, 403):
        return AuthError(detail, **kw)
    if code == 404:
        return NotFoundError(detail, **kw)
    if code == 429 or code >= 500:
        return TransientError(
            detail,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            not_executed=code in NOT_EXECUTED_STATUSES,
            **kw,
        )
    return PermanentError(detail, **kw)


def collection_not_served(label: str, error: NotFoundError, url: str) -> EndpointNotFoundError:
    """A 404 with the envelope on list or ``$count``: the collection is not served here."""
    where = public_url(url)
    return EndpointNotFoundError(
        f"{error.message} (from {where}: the spec declares no 404 for {label.split()[0]}, so the "
        "collection is not served at this URL; check serviceurls.AI_API_URL and the resource "
        "group)",
        url=where,
        status_code=error.status_code,
        code=error.code,
        request_id=error.request_id,
    )


# -- bodies --------------------------------------------------------------------------------


def _foreign(response: httpx.Response, what: str) -> NotAiApiError:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    url = response.request.url
    port = f":{url.port}" if url.port else ""
    return NotAiApiError(
        f"{url.scheme}://{url.host}{port} answered HTTP {response.status_code} with {what} "
        f"({kind}): not the AI API; check serviceurls.AI_API_URL in the service key"
    )


def json_object(response: httpx.Response) -> dict[str, Any]:
    """A 2xx answer's JSON object; anything else is not the AI API talking."""
    try:
        body = response.json()
    except ValueError:
        raise _foreign(response, "a body that is not JSON") from None
    if not isinstance(body, dict):
        raise _foreign(response, "JSON that is not an object")
    return body


def sub_object(parent: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def capabilities(response: httpx.Response) -> Capabilities:
    """``GET /lm/meta``; an absent ``bulkUpdates`` or ``executionSchedules`` means off (the
    schema's defaults)."""
    body = json_object(response)
    if not isinstance(body.get("aiApi"), dict):
        raise _foreign(response, "JSON without the aiApi object the spec requires of /meta")
    ai_api = sub_object(body, "aiApi")
    capabilities = sub_object(ai_api, "capabilities")
    bulk = sub_object(capabilities, "bulkUpdates")
    return Capabilities(
        runtimeIdentifier=body.get("runtimeIdentifier"),
        api_version=ai_api.get("version"),
        execution_schedules=capabilities.get("executionSchedules") is True,
        bulk_updates=BulkUpdates(
            deployments=bulk.get("deployments") is True,
            executions=bulk.get("executions") is True,
        ),
    )


class Identified(Protocol):
    """What paging needs of a listed resource: its id."""

    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items and the ``count`` it reports (``None`` if unusable)."""

    items: list[T]
    count: int | None


def page_of(response: httpx.Response, label: str, parse: Callable[[Any], T]) -> Page[T]:
    """A ``{"count", "resources"}`` answer, each resource read by ``parse``."""
    body = json_object(response)
    resources = body.get("resources")
    if not isinstance(resources, list):
        raise _foreign(response, f"JSON without the 'resources' list of {label}")
    count = body.get("count")
    usable = isinstance(count, int) and not isinstance(count, bool) and count >= 0
    return Page([parse(raw) for raw in resources], count if usable else None)


def page(response: httpx.Response, kind: Kind) -> Page[ItemState]:
    return page_of(response, f"list {kind.collection}", lambda raw: item_state(raw, kind))


def summary_page(response: httpx.Response, kind: Kind) -> Page[ItemSummary]:
    """A page of full items, read as :class:`ItemSummary`."""

    def parse(raw: Any) -> ItemSummary:
        try:
            return ItemSummary.model_validate(raw)
        except ValueError:
            raise PermanentError(
                f"list {kind.collection}: an item lacks a valid id, status, configurationId or "
                "createdAt (RFC 3339 with an offset)"
            ) from None

    return page_of(response, f"list {kind.collection}", parse)


def schedule_page(response: httpx.Response) -> Page[ScheduleSummary]:
    def parse(raw: Any) -> ScheduleSummary:
        try:
            return ScheduleSummary.model_validate(raw)
        except ValueError:
            raise PermanentError(
                "list executionSchedules: a schedule lacks a valid id, status (ACTIVE or "
                "INACTIVE), configurationId, name, cron, createdAt or modifiedAt"
            ) from None

    return page_of(response, "list executionSchedules", parse)


@dataclass(frozen=True, slots=True)
class ConfigurationRef:
    """The part of an ``AiConfiguration`` that places it: which scenario it belongs to."""

    id: str
    scenario_id: str


def configuration_page(response: httpx.Response) -> Page[ConfigurationRef]:
    def parse(raw: Any) -> ConfigurationRef:
        ident = raw.get("id") if isinstance(raw, dict) else None
        scenario = raw.get("scenarioId") if isinstance(raw, dict) else None
        if not isinstance(ident, str) or not isinstance(scenario, str):
            raise PermanentError("list configurations: a configuration lacks id or scenarioId")
        return ConfigurationRef(ident, scenario)

    return page_of(response, "list configurations", parse)


def item_state(raw: Any, kind: Kind) -> ItemState:
    try:
        return ItemState.model_validate(raw)
    except ValueError:
        raise PermanentError(f"{kind.collection}: an item lacks a valid id or status") from None


def created_id(response: httpx.Response, kind: Kind) -> str:
    """The ``id`` of a 202 to a POST (``AiDeploymentCreationResponse``/``AiExecutionCreationResponse``)."""
    body = json_object(response)
    item_id = body.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise PermanentError(f"create {kind.collection}: the answer names no id")
    return item_id


def count(response: httpx.Response, kind: Kind) -> int:
    """``$count`` answers a plain-text integer."""
    try:
        return int(response.text.strip())
    except ValueError:
        raise PermanentError(f"count {kind.collection}: response is not an integer") from None


def path_id(item_id: str) -> str:
    """``item_id`` as a path segment. Ids are validated against ``^[\\w.-]{4,64}$`` upstream;
    quoting keeps a stray id harmless."""
    return httpx.URL("/" + item_id).raw_path.decode()[1:]
