"""The AI API client: every call the product makes to SAP AI Core, with retries done right.

Retries are where bulk tools go wrong, so the rules are explicit:

* Reads (GET) are retried on 429, 5xx, timeouts and connection failures, with exponential
  backoff and full jitter, honouring ``Retry-After``.
* Writes (PATCH, DELETE) are retried only when the server certainly did not act on them:
  429, 503 and failures to connect. After a 500, a read timeout or a dropped
  connection the outcome is unknown; the error goes up to the engine, which re-observes the
  items before it sends anything again. A blind resend could ask to stop an item that is
  already stopping, which the AI API refuses.
* A 401 invalidates the cached token and the request is repeated once with a fresh one.

Errors are typed (:mod:`bulkterm.aiapi.errors`) and their messages carry HTTP status, the API's
own error code and message, never a token or a secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field

from bulkterm import metrics
from bulkterm.aiapi.auth import TokenProvider, parse_retry_after
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import (
    AiApiError,
    AuthError,
    BulkUnsupportedError,
    CredentialsError,
    InvalidBatchError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from bulkterm.aiapi.models import (
    MAX_BULK_ITEMS,
    RESOURCE_GROUP_PATTERN,
    BulkItemResult,
    BulkUpdates,
    Capabilities,
    ItemState,
    Kind,
    Status,
    TargetStatus,
)
from bulkterm.aiapi.ratelimit import RateLimiter

MERGE_PATCH = "application/merge-patch+json"
CLIENT_TYPE = "bulk-termination-operator"
#: Status codes after which a write certainly was not executed, so it is safe to resend.
#: (502/504 are not: a gateway may have forwarded the request before it gave up.)
_WRITE_SAFE_RETRY = frozenset({429, 503})
_MAX_MESSAGE = 256


class ClientSettings(BaseModel):
    """Tuning of the client; defaults suit AI Core, tests shrink the delays."""

    model_config = ConfigDict(frozen=True)

    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=30.0, ge=0)
    retry_after_cap_seconds: float = Field(default=120.0, ge=0)
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    page_size: int = Field(default=1000, ge=1, le=10000)


class AiApiClient:
    """Async client for one AI API endpoint and one resource group. Implements ``AiApi``."""

    def __init__(
        self,
        key: ServiceKey,
        resource_group: str | None = None,
        settings: ClientSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        group = resource_group or key.resource_group or "default"
        if not re.fullmatch(RESOURCE_GROUP_PATTERN, group):
            raise ValueError(f"resource group {group!r} does not match {RESOURCE_GROUP_PATTERN}")
        self.key = key
        self.resource_group = group
        self.settings = settings or ClientSettings()
        self.calls: Counter[str] = Counter()
        self._sleep = sleep
        self._rng = rng
        self._limiter = RateLimiter(self.settings.concurrency, self.settings.rate_limit_per_second)
        timeout = httpx.Timeout(
            self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds
        )
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            verify=_tls_context(key),
            headers={"AI-Client-Type": CLIENT_TYPE, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=self.settings.concurrency),
        )
        self._tokens = TokenProvider(key, self._http, on_fetch=self._count_token)

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
        await self._http.aclose()

    @property
    def token_fetches(self) -> int:
        return self._tokens.fetches

    def _count_token(self) -> None:
        self.calls["token"] += 1
        metrics.TOKEN_REFRESHES.inc()

    # -- calls ---------------------------------------------------------------------------

    async def meta(self) -> Capabilities:
        """``GET /v2/lm/meta`` (no resource group). Absent ``bulkUpdates`` means off."""
        response = await self._call("meta", "GET", "/lm/meta", resource_group=False)
        body = _json_object(response)
        ai_api = _sub_object(body, "aiApi")
        bulk = _sub_object(_sub_object(ai_api, "capabilities"), "bulkUpdates")
        return Capabilities(
            runtimeIdentifier=body.get("runtimeIdentifier"),
            api_version=ai_api.get("version"),
            bulk_updates=BulkUpdates(
                deployments=bulk.get("deployments") is True,
                executions=bulk.get("executions") is True,
            ),
        )

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
        (contract §5.2), so the client never relies on the default. Items are de-duplicated by
        id: a deletion between two pages shifts items forward and can repeat one.
        """
        size = page_size or self.settings.page_size
        params: dict[str, str] = {"$select": "status", "$top": str(size)}
        if status is not None:
            params["status"] = status.value
        if configuration_id:
            params["configurationId"] = configuration_id
        if scenario_id:
            params["scenarioId"] = scenario_id
        if executable_ids:
            params["executableIds"] = ",".join(executable_ids)
        seen: dict[str, ItemState] = {}
        skip = 0
        while True:
            params["$skip"] = str(skip)
            response = await self._call(
                f"list {kind.collection}", "GET", f"/lm/{kind.collection}", params=params
            )
            resources = _json_object(response).get("resources")
            if not isinstance(resources, list):
                raise PermanentError(f"list {kind.collection}: response has no 'resources' list")
            for raw in resources:
                item = _item_state(raw, kind)
                seen.setdefault(item.id, item)
            if len(resources) < size:
                return list(seen.values())
            skip += size

    async def get_state(self, kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        response = await self._call(
            f"get {kind.collection}",
            "GET",
            f"/lm/{kind.collection}/{_path_id(item_id)}",
            params=None if full else {"$select": "status"},
        )
        return _item_state(_json_object(response), kind)

    async def count(self, kind: Kind, *, status: Status | None = None) -> int:
        params = {"status": status.value} if status is not None else None
        response = await self._call(
            f"count {kind.collection}", "GET", f"/lm/{kind.collection}/$count", params=params
        )
        try:
            return int(response.text.strip())
        except ValueError:
            raise PermanentError(f"count {kind.collection}: response is not an integer") from None

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        """One bulk PATCH. Invalid batches are refused here, before anything is sent."""
        validate_batch(items)
        body = {
            kind.collection: [{"id": i, "targetStatus": TargetStatus(t).value} for i, t in items]
        }
        try:
            response = await self._call(
                f"bulk_patch {kind.collection}",
                "PATCH",
                f"/lm/{kind.collection}",
                json_body=body,
                content_type=MERGE_PATCH,
                write=True,
            )
        except (PermanentError, NotFoundError) as exc:
            # 404 on the collection itself, 405/501, or a 4xx saying so: no bulk endpoint here.
            if isinstance(exc, NotFoundError) or _means_bulk_unsupported(exc):
                raise BulkUnsupportedError(
                    exc.message, status_code=exc.status_code, code=exc.code
                ) from None
            raise
        answered = _json_object(response).get(kind.collection)
        if not isinstance(answered, list):
            raise PermanentError(f"bulk_patch {kind.collection}: 202 without a result list")
        results = []
        for raw in answered:
            try:
                results.append(BulkItemResult.model_validate(raw))
            except ValueError:
                continue  # an item we cannot read is treated as unanswered: the engine re-observes
        return results

    async def stop(self, kind: Kind, item_id: str) -> None:
        await self._call(
            f"stop {kind.collection}",
            "PATCH",
            f"/lm/{kind.collection}/{_path_id(item_id)}",
            json_body={"targetStatus": TargetStatus.STOPPED.value},
            write=True,
        )

    async def delete(self, kind: Kind, item_id: str) -> None:
        await self._call(
            f"delete {kind.collection}",
            "DELETE",
            f"/lm/{kind.collection}/{_path_id(item_id)}",
            write=True,
        )

    # -- transport -----------------------------------------------------------------------

    async def _call(
        self,
        label: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content_type: str | None = None,
        resource_group: bool = True,
        write: bool = False,
    ) -> httpx.Response:
        url = self.key.api_url + path
        refreshed_after_401 = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(
                    label, method, url, params, json_body, content_type, resource_group
                )
            except _Unauthorized as exc:
                if refreshed_after_401:
                    raise AuthError(
                        f"{label}: HTTP 401 even with a fresh token", status_code=401
                    ) from None
                refreshed_after_401 = True
                self._tokens.invalidate(exc.token)
                attempt -= 1
                continue
            except TransientError as exc:
                retryable = not write or exc.not_executed
                if not retryable or attempt >= self.settings.max_attempts:
                    raise
                await self._sleep(self._backoff(attempt, exc.retry_after))

    async def _attempt(
        self,
        label: str,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        content_type: str | None,
        resource_group: bool,
    ) -> httpx.Response:
        async with self._limiter:
            token = await self._tokens.token()
            headers = {"Authorization": f"Bearer {token}"}
            if resource_group:
                headers["AI-Resource-Group"] = self.resource_group
            if content_type is not None:
                headers["Content-Type"] = content_type
            self.calls[label] += 1
            started = time.monotonic()
            try:
                content = None
                if json_body is not None:
                    content = json.dumps(json_body).encode()
                    headers.setdefault("Content-Type", "application/json")
                response = await self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                self._observe(label, "transient", started)
                raise TransientError(
                    f"{label}: cannot connect ({type(exc).__name__})", not_executed=True
                ) from None
            except httpx.TimeoutException as exc:
                self._observe(label, "transient", started)
                raise TransientError(f"{label}: timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                self._observe(label, "transient", started)
                raise TransientError(f"{label}: connection failed ({type(exc).__name__})") from None
        code = response.status_code
        if 200 <= code < 300:
            self._observe(label, "ok", started)
            return response
        api_code, api_message, request_id = _error_body(response)
        detail = f"{label}: HTTP {code}" + (f" {api_code}" if api_code else "")
        if api_message:
            detail += f": {api_message}"
        kw: dict[str, Any] = {"status_code": code, "code": api_code, "request_id": request_id}
        if code == 401:
            self._observe(label, "auth", started)
            raise _Unauthorized(token)
        if code == 403:
            self._observe(label, "auth", started)
            raise AuthError(detail, **kw)
        if code == 404:
            self._observe(label, "not_found", started)
            raise NotFoundError(detail, **kw)
        if code == 429 or code >= 500:
            self._observe(label, "transient", started)
            raise TransientError(
                detail,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                not_executed=code in _WRITE_SAFE_RETRY,
                **kw,
            )
        self._observe(label, "rejected", started)
        raise PermanentError(detail, **kw)

    def _observe(self, label: str, outcome: str, started: float) -> None:
        metrics.AIAPI_CALLS.labels(label, outcome).inc()
        metrics.AIAPI_LATENCY.labels(label).observe(time.monotonic() - started)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; ``Retry-After`` is a floor, capped."""
        s = self.settings
        ceiling = min(s.backoff_max_seconds, s.backoff_initial_seconds * (2 ** (attempt - 1)))
        delay = ceiling * float(self._rng())
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.retry_after_cap_seconds))
        return float(delay)


class _Unauthorized(Exception):
    """Internal: a 401 with this token; the caller refreshes once and repeats."""

    def __init__(self, token: str) -> None:
        super().__init__("HTTP 401")
        self.token = token


def validate_batch(items: Sequence[tuple[str, TargetStatus]]) -> None:
    """Refuse what the AI API would refuse: empty, above 100 items, an id twice, bad status."""
    if not items:
        raise InvalidBatchError("a bulk request needs at least one item")
    if len(items) > MAX_BULK_ITEMS:
        raise InvalidBatchError(
            f"a bulk request may hold at most {MAX_BULK_ITEMS} items, got {len(items)}"
        )
    seen: set[str] = set()
    for item_id, target in items:
        if item_id in seen:
            raise InvalidBatchError(f"id {item_id!r} appears twice in one bulk request")
        seen.add(item_id)
        if target not in (TargetStatus.STOPPED, TargetStatus.DELETED):
            raise InvalidBatchError(f"id {item_id!r}: targetStatus must be STOPPED or DELETED")


def _means_bulk_unsupported(exc: AiApiError) -> bool:
    if exc.status_code in (405, 501):
        return True
    text = f"{exc.code or ''} {exc.message}".lower()
    refusals = ("not supported", "unsupported", "disabled", "not enabled")
    return "bulk" in text and any(phrase in text for phrase in refusals)


def _path_id(item_id: str) -> str:
    # Ids are validated against ^[\w.-]{4,64}$ upstream; quoting keeps a stray id harmless.
    return httpx.URL("/" + item_id).raw_path.decode()[1:]


def _sub_object(parent: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PermanentError(f"HTTP {response.status_code}: response is not JSON") from None
    if not isinstance(body, dict):
        raise PermanentError(f"HTTP {response.status_code}: response is not a JSON object")
    return body


def _item_state(raw: Any, kind: Kind) -> ItemState:
    try:
        return ItemState.model_validate(raw)
    except ValueError:
        raise PermanentError(f"{kind.collection}: an item lacks a valid id or status") from None


def _error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    code = error.get("code")
    message = error.get("message")
    request_id = error.get("requestId")
    return (
        str(code) if code is not None else None,
        str(message)[:_MAX_MESSAGE] if message is not None else None,
        str(request_id) if request_id is not None else None,
    )


def _tls_context(key: ServiceKey) -> ssl.SSLContext | bool:
    """For x509 keys, an SSL context with the client certificate loaded.

    ``ssl`` can only load PEM from files, so the PEMs are written to a private temporary
    directory and removed as soon as they are loaded.
    """
    if key.certificate is None or key.private_key is None:
        return True
    context = ssl.create_default_context()
    with tempfile.TemporaryDirectory(prefix="bulkterm-") as tmp:
        cert = Path(tmp) / "cert.pem"
        pkey = Path(tmp) / "key.pem"
        for path, secret in ((cert, key.certificate), (pkey, key.private_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret.get_secret_value())
        try:
            context.load_cert_chain(cert, pkey)
        except (ssl.SSLError, ValueError):
            raise CredentialsError(
                "service key: 'certificate' and 'key' are not a valid PEM pair"
            ) from None
    return context
