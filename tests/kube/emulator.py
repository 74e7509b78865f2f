"""A Kubernetes API emulator for end-to-end tests: kmock 0.8's ``KubernetesEmulator``, completed.

Stock kmock 0.8 cannot serve an unchanged kopf operator, the ``kubernetes`` client or kubectl
(see ``/work/shared/reference/kubernetes-emulation.md`` and ``tests/emulator/test_stock_gaps.py``).
:class:`ApiEmulator` keeps kmock's object store (``emulator.objects[...]`` assertions), its
discovery, its request log and its DSL (user reactions such as ``emulator['patch', ...] << 500``
still take precedence, for fault injection), and replaces the resource endpoints with an
API-server-like implementation:

- server-side ``metadata``: monotonic ``resourceVersion``, ``uid``, ``namespace``,
  ``creationTimestamp``, ``generation`` (bumped on spec changes only), ``generateName``;
- POST answers 201; 409 on name clashes and stale ``resourceVersion`` preconditions; 422 for
  failed JSON-patch ``test`` operations and invalid objects (with ``details.causes``);
- merge patch, JSON patch, PUT, server-side apply (approximated as a merge); strategic merge
  patch is 415 for custom resources (as on a real server) and a merge for built-ins;
- the status subresource is isolated both ways; no-op writes keep the resourceVersion;
- deletion with finalizers (``deletionTimestamp``; gone when the last finalizer is removed);
- list with kind/apiVersion/resourceVersion, label and field selectors, ``limit``/``continue``;
- watch that subscribes before it streams the snapshot, resumes from a ``resourceVersion``
  (410 Gone when it was compacted away), honours ``timeoutSeconds``, ``sendInitialEvents`` and
  streams ``application/json``;
- ``GET /api/v1/namespaces`` (namespaces are created on first use);
- CRDs: creating one makes its resource discoverable (with shortNames, categories,
  subresources); custom resources are defaulted, pruned and validated (OpenAPI, list-map keys,
  CEL via celpy) as on a real server; ``/openapi/v2`` and ``/openapi/v3`` so that plain
  ``kubectl apply`` and ``kubectl explain`` work; Table output with printer columns (also in
  watches, for ``kubectl get -w``).

Not emulated: admission webhooks, RBAC/authentication, garbage collection (ownerReferences,
namespace deletion leaves its objects), graceful pod deletion, field managers and real
server-side apply/strategic merge, bookmarks other than the initial-events one, CRD version
conversion, protobuf, HTTPS, aggregated discovery (kubectl falls back), ``dryRun`` beyond
"do not persist". It relies on kmock internals, hence the pin ``kmock==0.8``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import gzip
import importlib.metadata
import importlib.resources
import json
import math
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import enums, parsing, rendering
from typing_extensions import override

from tests.kube import openapi, schema, selectors, tables
from tests.kube.patches import PatchError, PatchTestFailed, json_patch, merge_patch

CRD_RESOURCE = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = ("", "v1", "namespaces")
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "managedFields",
    "selfLink",
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as apiserver's generateName suffixes


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An API error answered as a ``v1 Status``."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> aiohttp.web.Response:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = dict(self.details)
        return aiohttp.web.json_response(body, status=self.code)


@dataclass
class CrdVersion:
    """What the emulator keeps of one served version of a CRD."""

    group: str
    version: str
    plural: str
    kind: str
    list_kind: str
    namespaced: bool
    schema: dict[str, Any] | None
    status_subresource: bool
    printer_columns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Resolved:
    """The resource a request addresses."""

    group: str
    version: str
    plural: str
    info: kmock.ResourceInfo
    crd: CrdVersion | None

    @property
    def key(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def kind(self) -> str:
        return self.info.kind or self.plural.capitalize()

    @property
    def namespaced(self) -> bool:
        return bool(self.info.namespaced)

    @property
    def status_subresource(self) -> bool:
        return self.crd.status_subresource if self.crd else "status" in self.info.subresources

    @property
    def tracks_generation(self) -> bool:
        return self.crd is not None or (self.group, self.plural) == CRD_RESOURCE[::2]

    @property
    def qualified(self) -> str:
        return self.plural if not self.group else f"{self.plural}.{self.group}"


@dataclass
class Event:
    rv: int
    resource: tuple[str, str, str]
    type: str
    obj: dict[str, Any]


def parse_path(path: str) -> parsing.ParsedPath:
    """kmock's path parser, plus ``/api/v1/namespaces[/NAME]`` (stock: a ValueError → 500)."""
    parts = [p for p in path.strip("/").split("/") if p]
    version: str | None
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 2 and parts[0] == "apis":
        group = parts[1]
        version = parts[2] if len(parts) >= 3 else None
        rest = parts[3:]
    else:
        return parsing.ParsedPath()
    namespace = None
    if rest and rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) >= 2 else None
    subresource = "/".join(rest[2:]) or None
    return parsing.ParsedPath(group, version, plural, namespace, name, subresource)


@functools.cache
def _bundled_resources() -> str:
    """kmock's bundled discovery data (``load_bundled()`` without its deprecated API use)."""
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(data.read_bytes()).decode("utf-8")


def _header(request: rendering.Request, name: str) -> str:
    """A request header, case-insensitively (kmock's ``Request.headers`` is a plain dict)."""
    if request._raw_request is not None:
        return str(request._raw_request.headers.get(name, ""))
    lowered = name.lower()
    return next((str(v) for k, v in request.headers.items() if k.lower() == lowered), "")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


@attrs.define(kw_only=True)
class ApiEmulator(kmock.KubernetesEmulator):
    """kmock's ``KubernetesEmulator`` with the API-server behaviour kopf and kubectl rely on."""

    #: Reject custom resources that fail their CRD's schema or CEL rules (422), as a server does.
    validate: bool = True
    #: Create a namespace on first use instead of answering 404.
    auto_namespaces: bool = True
    #: Versions kept per object in ``.objects[...].history`` (the rest is dropped, oldest first).
    history_limit: int = 20
    #: Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    event_log_limit: int = 20_000
    #: Requests kept in kmock's request log.
    request_log_limit: int = 5_000
    #: Reported by ``/version``.
    server_version: tuple[int, int] = (1, 32)

    _rv: int = attrs.field(default=0, init=False)
    _log: list[Event] = attrs.field(factory=list, init=False)
    _log_dropped: int = attrs.field(default=0, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _watchers: set[asyncio.Event] = attrs.field(factory=set, init=False)
    _crds: dict[tuple[str, str, str], CrdVersion] = attrs.field(factory=dict, init=False)
    _openapi_cache: tuple[int, Any] | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    @override
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_data(_bundled_resources())  # built-ins of a recent K3s: secrets, …
        for name in ("default", "kube-system"):
            self._ensure_namespace(name)

    # -----------------------------------------------------------------------------------------
    # Entry point: parse with our path parser, then serve the API or fall back to kmock.

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._parse_request(raw_request)
            self._requests.append(request)
            if len(self._requests) > self.request_log_limit:
                del self._requests[: len(self._requests) - self.request_log_limit // 2]
            try:
                return await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
        except Exception as e:
            if self._errors:
                self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    async def _parse_request(self, raw: aiohttp.web.BaseRequest) -> rendering.Request:
        body = await raw.read()
        text = await raw.text()
        data: Any = None
        if body:
            if raw.content_type == APPLY or raw.content_type.endswith("yaml"):
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError:
                    data = None
            else:
                try:
                    data = json.loads(body)
                except ValueError:
                    data = None
        k8s = parse_path(raw.path)
        resource = (
            None
            if k8s.group is None
            else kmock.resource(group=k8s.group, version=k8s.version, plural=k8s.plural)
        )
        method = enums.method(raw.method)
        action = parsing.guess_k8s(k8s, method, dict(raw.query))
        if method == enums.method.GET and _truthy(raw.query.get("watch")):
            action = enums.action.WATCH
        elif method == enums.method.PUT and k8s.name is not None:
            action = enums.action.UPDATE
        return rendering.Request(
            id=len(self._requests),
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            data=data,
            body=body,
            text=text,
            action=action,
            resource=resource,
            namespace=k8s.namespace,
            name=k8s.name,
            subresource=k8s.subresource,
        )

    @override
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        is_api = request.resource is not None and request.resource.plural is not None
        is_openapi = path == "/openapi/v2" or path.startswith("/openapi/v3")
        if not (is_api or is_openapi):
            return await super(kmock.KubernetesEmulator, self)._handle(request)  # discovery
        intercepted = await self._user_reaction(request)
        if intercepted is not None:
            return intercepted
        try:
            if is_openapi:
                return self._serve_openapi(request)
            return await self._serve_resource(request)
        except ApiError as e:
            return e.response()

    async def _user_reaction(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """Reactions added by tests (``emulator[...] << ...``) win over the emulated API."""
        for payload in self._payloads:
            priorities = payload.priorities
            if priorities and priorities[0] == -math.inf:
                continue  # kmock's own fallbacks
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    # -----------------------------------------------------------------------------------------
    # Discovery (kmock's, corrected) and version.

    @override
    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        major, minor = self.server_version
        return {
            "major": str(major),
            "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.0",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23",
            "compiler": "gc",
            "platform": "linux/amd64",
            "emulator": f"kmock {importlib.metadata.version('kmock')}",
        }

    @override
    async def _serve_api(self, request: rendering.Request) -> rendering.Payload:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": request.url.host or ""}
            ],
        }

    @override
    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        group, version = request.resource.group or "", request.resource.version
        resources = [r for r in self.resources if r.group == group and r.version == version]
        if not resources:
            raise kmock.KubernetesResourceNotFoundError()
        entries: list[dict[str, Any]] = []
        for res in sorted(resources, key=lambda r: r.plural or ""):
            info = self.resources[res]
            entries.append(
                {
                    "name": res.plural,
                    "singularName": info.singular or "",
                    "namespaced": bool(info.namespaced),
                    "kind": info.kind or (res.plural or "").capitalize(),
                    "verbs": sorted(info.verbs),
                    **({"shortNames": sorted(info.shortnames)} if info.shortnames else {}),
                    **({"categories": sorted(info.categories)} if info.categories else {}),
                }
            )
            for sub in sorted(info.subresources):
                entries.append(
                    {
                        "name": f"{res.plural}/{sub}",
                        "singularName": "",
                        "namespaced": bool(info.namespaced),
                        "kind": info.kind or "",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": version if not group else f"{group}/{version}",
            "resources": entries,
        }

    # -----------------------------------------------------------------------------------------
    # Resolution and storage.

    def resolve(self, group: str, version: str, plural: str) -> Resolved:
        key = kmock.resource(group, version, plural)
        if key not in self.resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Resolved(
            group, version, plural, self.resources[key], self._crds.get((group, version, plural))
        )

    def find(self, name: str) -> Resolved:
        """A resource as kubectl would find it: ``bt``, ``bulkterminations``, ``BulkTermination``,
        ``bulkterminations.aiapi.bulkops.dev``, ``v1/secrets``, ``events.v1``, …"""
        spec = kmock.resource(name)
        alias = (spec.plural or "").lower()
        candidates: list[kmock.resource] = []
        for res in self.resources:
            if spec.group is not None and res.group != spec.group:
                continue
            if spec.version is not None and res.version != spec.version:
                continue
            info = self.resources[res]
            names = {res.plural, info.singular, (info.kind or "").lower(), *info.shortnames}
            if alias in {n for n in names if n}:
                candidates.append(res)
        if not candidates:
            raise KeyError(name)
        # Custom resources first, then the core group, then by group name (stable).
        candidates.sort(
            key=lambda r: (
                (r.group or "", r.version or "", r.plural or "") not in self._crds,
                r.group != "",
                r.group or "",
            )
        )
        best = candidates[0]
        return self.resolve(best.group or "", best.version or "", best.plural or "")

    def _current(self, res: Resolved, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (res.key, namespace if res.namespaced else None, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj.last.raw

    def _store(self, res: Resolved, obj: dict[str, Any], event: str) -> None:
        meta = obj["metadata"]
        key = (res.key, meta.get("namespace") if res.namespaced else None, meta["name"])
        if key in self.objects:
            history = self.objects[key].history
            history.append(obj)
            if len(history) > self.history_limit:
                del history[: len(history) - self.history_limit]
        else:
            self.objects[key] = obj
        self._emit(res, event, obj)

    def _remove(self, res: Resolved, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (res.key, meta.get("namespace") if res.namespaced else None, meta["name"])
        self.objects[key].delete()
        self._emit(res, "DELETED", obj)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, res: Resolved, event_type: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._log.append(Event(rv, (res.group, res.version, res.plural), event_type, obj))
        if len(self._log) > self.event_log_limit:
            drop = len(self._log) - self.event_log_limit // 2
            self._compacted_rv = self._log[drop - 1].rv
            del self._log[:drop]
            self._log_dropped += drop
        for waiter in self._watchers:
            waiter.set()

    def _ensure_namespace(self, name: str) -> None:
        res = self.resolve(*NAMESPACES)
        if self._current(res, None, name) is None:
            rv = self._next_rv()
            self._store(
                res,
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "uid": str(uuid.uuid4()),
                        "creationTimestamp": now_rfc3339(),
                        "resourceVersion": str(rv),
                        "labels": {"kubernetes.io/metadata.name": name},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
                "ADDED",
            )

    # -----------------------------------------------------------------------------------------
    # Resource endpoints.

    async def _serve_resource(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        res = self.resolve(
            request.resource.group or "",
            request.resource.version or "",
            request.resource.plural or "",
        )
        ns = request.namespace if res.namespaced else None
        name, sub = request.name, request.subresource
        method = request.method.value.upper()
        params = request.params
        if sub not in (None, "status") or (sub == "status" and not res.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and _truthy(params.get("watch")):
            return await self._watch(request, res, ns)
        if method == "GET" and name is None:
            return self._list(request, res, ns)
        if method == "GET" and name is not None:
            obj = self._get_or_404(res, ns, name)
            return self._respond(request, res, obj)
        if method == "POST" and name is None:
            return self._create(request, res, ns, request.data)
        if method == "PUT" and name is not None:
            return self._replace(request, res, ns, name, sub)
        if method == "PATCH" and name is not None:
            return self._patch(request, res, ns, name, sub)
        if method == "DELETE" and name is not None and sub is None:
            obj = self._get_or_404(res, ns, name)
            status, result = self._delete(request, res, obj, request.data or {})
            return aiohttp.web.json_response(result, status=status)
        if method == "DELETE" and name is None:
            return self._delete_collection(request, res, ns)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")

    def _get_or_404(self, res: Resolved, ns: str | None, name: str) -> dict[str, Any]:
        if res.namespaced and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self._current(res, ns, name)
        if obj is None:
            raise ApiError(
                404,
                "NotFound",
                f'{res.qualified} "{name}" not found',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        return obj

    def _respond(
        self, request: rendering.Request, res: Resolved, obj: dict[str, Any], status: int = 200
    ) -> aiohttp.web.Response:
        if "as=Table" in _header(request, "Accept"):
            columns = res.crd.printer_columns if res.crd else None
            include = request.params.get("includeObject", "Metadata")
            return aiohttp.web.json_response(
                tables.table(
                    [obj],
                    columns,
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    include_object=include,
                )
            )
        return aiohttp.web.json_response(obj, status=status)

    def _matching(
        self, request: rendering.Request, res: Resolved, ns: str | None
    ) -> list[dict[str, Any]]:
        try:
            by_label = selectors.label_selector(request.params.get("labelSelector"))
            by_field = selectors.field_selector(request.params.get("fieldSelector"))
        except selectors.SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from None
        found: list[dict[str, Any]] = []
        for (key, obj_ns, _), obj in list(self.objects.items()):
            if key != res.key or obj.deleted or (ns is not None and obj_ns != ns):
                continue
            raw = obj.last.raw
            if by_label(raw) and by_field(raw):
                found.append(raw)
        found.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return found

    def _list(
        self, request: rendering.Request, res: Resolved, ns: str | None
    ) -> aiohttp.web.Response:
        items = self._matching(request, res, ns)
        rv = str(self._rv)
        meta: dict[str, Any] = {"resourceVersion": rv}
        start = 0
        if token := request.params.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(token))["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "invalid continue token") from None
        limit = int(request.params.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        if end < len(items):
            meta["continue"] = base64.b64encode(json.dumps({"start": end}).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        items = items[start:end]
        if "as=Table" in _header(request, "Accept"):
            columns = res.crd.printer_columns if res.crd else None
            include = request.params.get("includeObject", "Metadata")
            return aiohttp.web.json_response(
                tables.table(items, columns, resource_version=rv, include_object=include)
            )
        kind = (res.crd.list_kind if res.crd else None) or f"{res.kind}List"
        return aiohttp.web.json_response(
            {"apiVersion": res.api_version, "kind": kind, "metadata": meta, "items": items}
        )

    # --- create --------------------------------------------------------------------------------

    def _create(
        self,
        request: rendering.Request,
        res: Resolved,
        ns: str | None,
        body: Any,
        *,
        status: int = 201,
    ) -> aiohttp.web.Response:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        if body.get("kind") not in (None, res.kind):
            raise ApiError(
                400, "BadRequest", f"the kind {body.get('kind')!r} does not match {res.kind!r}"
            )
        meta = dict(body.get("metadata") or {})
        if res.namespaced:
            ns = ns or meta.get("namespace")
            if not ns:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does "
                    "not match the namespace sent on the request",
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for key in _SYSTEM_META:
            meta.pop(key, None)
        name: str = meta.get("name") or ""
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise self._invalid(
                    res, "", [".metadata.name: Required value: name or generateName is required"]
                )
            for _ in range(100):
                name = prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))
                if self._current(res, ns, name) is None:
                    break
            meta["name"] = name
        if self._current(res, ns, name) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.qualified} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        if (
            res.namespaced
            and ns is not None
            and self._current(self.resolve(*NAMESPACES), None, ns) is None
        ):
            if not self.auto_namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            self._ensure_namespace(ns)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if res.tracks_generation:
            meta["generation"] = 1
        obj: dict[str, Any] = {
            **body,
            "apiVersion": res.api_version,
            "kind": res.kind,
            "metadata": meta,
        }
        if res.crd is not None and res.crd.status_subresource:
            obj.pop("status", None)
        obj = self._admit(request, res, obj, None)
        if (res.group, res.version, res.plural) == CRD_RESOURCE:
            obj = self._accept_crd(obj)
        if request.params.get("dryRun") == "All":
            return self._respond(request, res, obj, status)
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(self._next_rv())}
        self._store(res, obj, "ADDED")
        if (res.group, res.version, res.plural) == CRD_RESOURCE:
            self._register_crd(obj)
        return self._respond(request, res, obj, status)

    # --- update (PUT, PATCH) ---------------------------------------------------------------------

    def _replace(
        self, request: rendering.Request, res: Resolved, ns: str | None, name: str, sub: str | None
    ) -> aiohttp.web.Response:
        old = self._get_or_404(res, ns, name)
        body = request.data
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        if (body.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        if res.crd is not None and not (body.get("metadata") or {}).get("resourceVersion"):
            raise self._invalid(
                res,
                name,
                [".metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"],
            )
        return self._write(request, res, old, body, sub)

    def _patch(
        self, request: rendering.Request, res: Resolved, ns: str | None, name: str, sub: str | None
    ) -> aiohttp.web.Response:
        content_type = _header(request, "Content-Type").split(";")[0].strip()
        patch = request.data
        if patch is None:
            raise ApiError(400, "BadRequest", "the patch body is not valid JSON/YAML")
        old = self._current(res, ns, name)
        if old is None and content_type == APPLY and sub is None:
            return self._create(
                request,
                res,
                ns,
                {**patch, "metadata": {**(patch.get("metadata") or {}), "name": name}},
            )
        if old is None:
            old = self._get_or_404(res, ns, name)
        try:
            if content_type == MERGE:
                new = merge_patch(old, patch)
            elif content_type == JSONPATCH:
                new = json_patch(old, patch)
            elif content_type == STRATEGIC and res.crd is not None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an "
                    "unknown format - accepted media types include: "
                    f"{JSONPATCH}, {MERGE}, {APPLY}",
                )
            elif content_type in (STRATEGIC, APPLY):
                # Approximations: strategic merge and server-side apply as a JSON merge.
                update = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
                new = merge_patch(old, update)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"unsupported patch content type {content_type!r}"
                )
        except PatchTestFailed as e:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {e}",
            ) from None
        except PatchError as e:
            raise ApiError(422, "Invalid", str(e)) from None
        return self._write(request, res, old, new, sub)

    def _write(
        self,
        request: rendering.Request,
        res: Resolved,
        old: dict[str, Any],
        new: Any,
        sub: str | None,
    ) -> aiohttp.web.Response:
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the object must be a JSON object")
        old_meta = old["metadata"]
        new_meta = dict(new.get("metadata") or {})
        wanted_rv = new_meta.get("resourceVersion")
        if wanted_rv not in (None, "") and wanted_rv != old_meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {res.qualified} "
                f'"{old_meta["name"]}": the object has been modified; please apply '
                "your changes to the latest version and try again",
            )
        if sub == "status":
            obj = dict(old)
            if new.get("status") is None:
                obj.pop("status", None)
            else:
                obj["status"] = new["status"]
        else:
            for key in (*_SYSTEM_META, "name", "namespace"):
                if key in old_meta:
                    new_meta[key] = old_meta[key]
                else:
                    new_meta.pop(key, None)
            obj = {
                **new,
                "apiVersion": old["apiVersion"],
                "kind": old["kind"],
                "metadata": new_meta,
            }
            if res.status_subresource:
                if "status" in old:
                    obj["status"] = old["status"]
                else:
                    obj.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(new_meta.get("finalizers") or []) - set(
                    old_meta.get("finalizers") or []
                )
                if added:
                    raise self._invalid(
                        res,
                        old_meta["name"],
                        [
                            f".metadata.finalizers: Forbidden: no new finalizers can be added if the "
                            f"object is being deleted, found new finalizers {sorted(added)}"
                        ],
                    )
        obj = self._admit(request, res, obj, old)
        if (res.group, res.version, res.plural) == CRD_RESOURCE:
            obj = self._accept_crd(obj)
        if obj == old:
            return self._respond(request, res, old)  # a no-op write changes nothing
        meta = dict(obj["metadata"])
        if res.tracks_generation and self._spec_part(res, obj) != self._spec_part(res, old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if request.params.get("dryRun") == "All":
            return self._respond(request, res, {**obj, "metadata": meta})
        meta["resourceVersion"] = str(self._next_rv())
        obj["metadata"] = meta
        self._store(res, obj, "MODIFIED")
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            obj = {**obj, "metadata": {**meta, "resourceVersion": str(self._next_rv())}}
            self._remove(res, obj)
            self._after_delete(res, obj)
        elif (res.group, res.version, res.plural) == CRD_RESOURCE:
            self._register_crd(obj)
        return self._respond(request, res, obj)

    @staticmethod
    def _spec_part(res: Resolved, obj: Mapping[str, Any]) -> dict[str, Any]:
        skip = {"metadata", "status"} if res.status_subresource else {"metadata"}
        return {k: v for k, v in obj.items() if k not in skip}

    def _invalid(self, res: Resolved, name: str, errors: list[str]) -> ApiError:
        """A 422 ``Invalid`` Status; ``errors`` are ``.field.path: message`` strings."""
        causes = []
        for error in errors:
            path, _, message = error.partition(": ")
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": message,
                    "field": path.lstrip(".") or "<root>",
                }
            )
        listed = [f"{c['field']}: {c['message']}" for c in causes]
        return ApiError(
            422,
            "Invalid",
            f'{res.kind}.{res.group} "{name}" is invalid: '
            + (listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"),
            {"name": name, "group": res.group, "kind": res.kind, "causes": causes},
        )

    def _admit(
        self,
        request: rendering.Request,
        res: Resolved,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Defaulting, pruning and (if enabled) validation of custom resources."""
        if res.crd is None or res.crd.schema is None:
            return obj
        strict = request.params.get("fieldValidation") == "Strict"
        if old is None:
            admitted, errors, pruned = schema.admit(res.crd.schema, obj)
        else:
            admitted, errors, pruned = schema.admit(res.crd.schema, obj, old)
        if strict and pruned:
            unknown = ", ".join(f'unknown field "{p.lstrip(".")}"' for p in pruned)
            raise ApiError(
                400,
                "BadRequest",
                f'{res.kind} in version "{res.version}" cannot be '
                f"handled as a {res.kind}: strict decoding error: {unknown}",
            )
        if errors and self.validate:
            raise self._invalid(res, obj["metadata"].get("name", ""), errors)
        return dict(admitted)

    # --- delete ----------------------------------------------------------------------------------

    def _delete(
        self, request: rendering.Request, res: Resolved, obj: dict[str, Any], options: Any
    ) -> tuple[int, dict[str, Any]]:
        meta = obj["metadata"]
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise ApiError(
                409,
                "Conflict",
                "Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise ApiError(409, "Conflict", "Precondition failed: resourceVersion mismatch")
        dry_run = request.params.get("dryRun") == "All" or (
            isinstance(options, dict) and "All" in (options.get("dryRun") or [])
        )
        if dry_run:
            return 200, obj
        # Like the API server: 202 only when asked for cascading (orphanDependents=false).
        accepted = (
            202 if isinstance(options, dict) and options.get("orphanDependents") is False else 200
        )
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return accepted, obj
            new_meta = {**meta, "deletionTimestamp": now_rfc3339(), "deletionGracePeriodSeconds": 0}
            if res.tracks_generation:
                new_meta["generation"] = int(meta.get("generation") or 0) + 1
            new_meta["resourceVersion"] = str(self._next_rv())
            obj = {**obj, "metadata": new_meta}
            self._store(res, obj, "MODIFIED")
            return accepted, obj
        obj = {**obj, "metadata": {**meta, "resourceVersion": str(self._next_rv())}}
        self._remove(res, obj)
        self._after_delete(res, obj)
        return 200, obj

    def _delete_collection(
        self, request: rendering.Request, res: Resolved, ns: str | None
    ) -> aiohttp.web.Response:
        deleted = [
            self._delete(request, res, obj, request.data or {})[1]
            for obj in self._matching(request, res, ns)
        ]
        return aiohttp.web.json_response(
            {
                "apiVersion": res.api_version,
                "kind": f"{res.kind}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": deleted,
            }
        )

    def _after_delete(self, res: Resolved, obj: dict[str, Any]) -> None:
        if (res.group, res.version, res.plural) == CRD_RESOURCE:
            self._unregister_crd(obj)

    # --- watch -----------------------------------------------------------------------------------

    async def _watch(
        self, request: rendering.Request, res: Resolved, ns: str | None
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        try:
            by_label = selectors.label_selector(params.get("labelSelector"))
            by_field = selectors.field_selector(params.get("fieldSelector"))
        except selectors.SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from None
        name = request.name

        def wanted(obj: Mapping[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            return (
                (ns is None or meta.get("namespace") == ns)
                and (name is None or meta.get("name") == name)
                and by_label(obj)
                and by_field(obj)
            )

        # Subscribe and snapshot in one step (no await in between): no event can fall between.
        waiter = asyncio.Event()
        self._watchers.add(waiter)
        since = params.get("resourceVersion") or ""
        initial: list[dict[str, Any]] = []
        gone = False
        send_initial = _truthy(params.get("sendInitialEvents"))
        if since in ("", "0") or send_initial:
            initial = [
                {"type": "ADDED", "object": obj}
                for obj in self._matching(request, res, ns)
                if wanted(obj)
            ]
            position = self._log_dropped + len(self._log)
        else:
            try:
                start_rv = int(since)
            except ValueError:
                self._watchers.discard(waiter)
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}") from None
            gone = start_rv < self._compacted_rv
            position = self._log_dropped + next(
                (i for i, ev in enumerate(self._log) if ev.rv > start_rv), len(self._log)
            )
        as_table = "as=Table" in _header(request, "Accept")
        columns = res.crd.printer_columns if res.crd else None
        include = params.get("includeObject", "Metadata")
        headers_sent = False

        def render(event: dict[str, Any]) -> dict[str, Any]:
            """As Table rows for ``kubectl get -w`` (column definitions only once)."""
            nonlocal headers_sent
            if not as_table or event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                return event
            obj = event["object"]
            rendered = tables.table(
                [obj],
                columns,
                include_object=include,
                resource_version=obj["metadata"].get("resourceVersion", ""),
            )
            if headers_sent:
                rendered["columnDefinitions"] = []
            headers_sent = True
            return {"type": event["type"], "object": rendered}

        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout
        resource = (res.group, res.version, res.plural)
        assert request._raw_request is not None
        response = aiohttp.web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        try:
            await response.prepare(request._raw_request)
            if gone:
                await self._write_event(response, self._gone_event(since))
                return response
            for event in initial:
                await self._write_event(response, render(event))
            if send_initial and _truthy(params.get("allowWatchBookmarks")):
                await self._write_event(
                    response,
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "apiVersion": res.api_version,
                            "kind": res.kind,
                            "metadata": {
                                "resourceVersion": str(self._rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    },
                )
            while not self._closing:
                waiter.clear()
                if position < self._log_dropped:
                    await self._write_event(response, self._gone_event(since))
                    return response
                batch = self._log[position - self._log_dropped :]
                position += len(batch)
                for ev in batch:
                    if ev.resource == resource and wanted(ev.obj):
                        await self._write_event(
                            response, render({"type": ev.type, "object": ev.obj})
                        )
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return response
                try:
                    await asyncio.wait_for(waiter.wait(), timeout=remaining)
                except TimeoutError:
                    return response
            return response
        except (ConnectionError, asyncio.CancelledError):
            return response
        finally:
            self._watchers.discard(waiter)
            if response.prepared:
                try:
                    await response.write_eof()
                except (ConnectionError, RuntimeError):
                    pass

    def close_watches(self) -> None:
        """End all watch streams (before the server shuts down)."""
        self._closing = True
        for waiter in self._watchers:
            waiter.set()

    @staticmethod
    async def _write_event(response: aiohttp.web.StreamResponse, event: Mapping[str, Any]) -> None:
        await response.write(json.dumps(event).encode() + b"\n")

    @staticmethod
    def _gone_event(since: str) -> dict[str, Any]:
        return {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since}",
                "reason": "Expired",
                "code": 410,
            },
        }

    # -----------------------------------------------------------------------------------------
    # CRDs.

    def _accept_crd(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Check a CRD a little (rules compile) and give it the status controllers would set."""
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        problems: list[str] = []
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            problems.append("spec: group, names.plural and names.kind are required")
        if obj["metadata"].get("name") != f"{names.get('plural')}.{spec.get('group')}":
            problems.append('metadata.name: must be spec.names.plural+"."+spec.group')
        for ver in spec.get("versions") or []:
            openapi_schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            for path, rule in schema.cel_rules(openapi_schema or {}):
                try:
                    schema._cel_program(rule["rule"])
                except Exception as e:
                    problems.append(f"{path}: x-kubernetes-validations: compilation failed: {e}")
        if problems:
            raise ApiError(
                422,
                "Invalid",
                "CustomResourceDefinition.apiextensions.k8s.io "
                f'"{obj["metadata"].get("name")}" is invalid: ' + "; ".join(problems),
            )
        accepted = {
            "plural": names["plural"],
            "kind": names["kind"],
            "singular": names.get("singular") or names["plural"],
            "listKind": names.get("listKind") or f"{names['kind']}List",
        }
        for key in ("shortNames", "categories"):
            if names.get(key):
                accepted[key] = names[key]
        stamp = (obj.get("status") or {}).get("conditions", [{}])[0].get(
            "lastTransitionTime"
        ) or now_rfc3339()
        status = {
            "acceptedNames": accepted,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": stamp,
                },
            ],
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
        }
        return {**obj, "status": status}

    def _register_crd(self, obj: Mapping[str, Any]) -> None:
        self._unregister_crd(obj, delete_objects=False)
        spec = obj["spec"]
        names = spec["names"]
        for ver in spec.get("versions", []):
            if not ver.get("served", True):
                continue
            subresources = ver.get("subresources") or {}
            crd_version = CrdVersion(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                kind=names["kind"],
                list_kind=names.get("listKind") or f"{names['kind']}List",
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
                status_subresource="status" in subresources,
                printer_columns=list(ver.get("additionalPrinterColumns") or []),
            )
            self._crds[(spec["group"], ver["name"], names["plural"])] = crd_version
            self.resources[kmock.resource(spec["group"], ver["name"], names["plural"])] = (
                kmock.ResourceInfo(
                    kind=names["kind"],
                    singular=names.get("singular") or names["plural"],
                    namespaced=crd_version.namespaced,
                    verbs={
                        "create",
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "update",
                        "watch",
                    },
                    shortnames=set(names.get("shortNames") or []),
                    categories=set(names.get("categories") or []),
                    subresources={s for s in subresources if s in {"status", "scale"}},
                )
            )
        self._openapi_cache = None

    def _unregister_crd(self, obj: Mapping[str, Any], *, delete_objects: bool = True) -> None:
        spec = obj.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural")
        for key in [k for k in self._crds if k[0] == spec.get("group") and k[2] == plural]:
            crd_version = self._crds.pop(key)
            res_key = kmock.resource(*key)
            if delete_objects:
                res = Resolved(*key, self.resources[res_key], crd_version)
                for (rkey, _, _), stored in list(self.objects.items()):
                    if rkey == res_key and not stored.deleted:
                        raw = stored.last.raw
                        raw["metadata"] = {
                            **raw["metadata"],
                            "resourceVersion": str(self._next_rv()),
                        }
                        self._remove(res, raw)
            if res_key in self.resources:
                del self.resources[res_key]
        self._openapi_cache = None

    def install_crd_now(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create a CRD directly (in the server's loop), as if POSTed."""
        res = self.resolve(*CRD_RESOURCE)
        request = rendering.Request(method="POST")
        response = self._create(request, res, None, dict(crd))
        assert isinstance(response.body, bytes)
        return dict(json.loads(response.body))

    # -----------------------------------------------------------------------------------------
    # OpenAPI.

    def _api_resources(self) -> Iterable[openapi.ApiResource]:
        for res in self.resources:
            info = self.resources[res]
            if not res.plural or res.version is None or not info.kind:
                continue
            crd = self._crds.get((res.group or "", res.version, res.plural))
            yield openapi.ApiResource(
                group=res.group or "",
                version=res.version,
                plural=res.plural,
                kind=info.kind,
                namespaced=bool(info.namespaced),
                schema=crd.schema if crd else None,
                subresources=set(info.subresources),
            )

    def _serve_openapi(self, request: rendering.Request) -> aiohttp.web.Response:
        path = request.url.path
        if path == "/openapi/v2":
            if "protobuf" in _header(request, "Accept"):
                # An empty message is a valid (empty) gnostic OpenAPI v2 Document.
                return aiohttp.web.Response(body=b"", content_type=openapi.OPENAPI_V2_PROTOBUF)
            return aiohttp.web.json_response(openapi.v2_document_json())
        if self._openapi_cache is None or self._openapi_cache[0] != len(self.resources):
            self._openapi_cache = (len(self.resources), openapi.v3_root(self._api_resources()))
        root, docs = self._openapi_cache[1]
        if path in ("/openapi/v3", "/openapi/v3/"):
            return aiohttp.web.json_response(root)
        doc = docs.get(path.removeprefix("/openapi/v3/"))
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return aiohttp.web.json_response(doc)
