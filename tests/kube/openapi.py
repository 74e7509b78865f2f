"""Minimal ``/openapi/v2`` and ``/openapi/v3`` documents, enough for plain ``kubectl apply``.

``kubectl apply`` (validation "strict", the default) asks the OpenAPI v3 document of the
object's group-version whether PATCH takes the ``fieldValidation`` parameter. If it does,
kubectl leaves validation to the server (``?fieldValidation=Strict``) instead of validating
client-side against ``/openapi/v2`` (a protobuf we would otherwise have to produce). So every
resource gets a PATCH path with that parameter, and custom resources get their CRD schema as
the component (which also makes ``kubectl explain`` work). ``/openapi/v2`` is an empty
protobuf document (valid; kubectl skips client-side validation of types it does not find).

PATCH bodies do not list strategic-merge-patch, so ``kubectl apply`` on an existing custom
resource computes a JSON merge patch, as against a real server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@dataclass
class ApiResource:
    """What the OpenAPI documents need to know about one served resource."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    schema: Mapping[str, Any] | None = None  # openAPIV3Schema of a custom resource
    subresources: set[str] = field(default_factory=set)

    @property
    def group_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def openapi_path(self) -> str:
        """``api/v1`` or ``apis/GROUP/VERSION``: the key in the v3 root document."""
        return f"api/{self.version}" if not self.group else f"apis/{self.group}/{self.version}"


def _schema_name(res: ApiResource) -> str:
    """Reverse-DNS component name, as Kubernetes publishes them (``dev.bulkops.aiapi.v1alpha1.X``)."""
    if not res.group:
        return f"io.k8s.api.core.{res.version}.{res.kind}"
    return ".".join([*reversed(res.group.split(".")), res.version, res.kind])


def _gvk(res: ApiResource) -> dict[str, str]:
    return {"group": res.group, "version": res.version, "kind": res.kind}


def v3_group_version(resources: Iterable[ApiResource]) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for res in resources:
        name = _schema_name(res)
        if res.schema is not None:
            schema = dict(res.schema)
        else:
            schema = {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "description": f"{res.kind} (schema not published by the emulator).",
            }
        schema["x-kubernetes-group-version-kind"] = [_gvk(res)]
        schemas[name] = schema
        prefix = "/api" if not res.group else "/apis"
        base = f"{prefix}/{res.group_version}"
        if res.namespaced:
            base += "/namespaces/{namespace}"
        ref = {"$ref": f"#/components/schemas/{name}"}
        params = [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]
        body = {
            "content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            }
        }
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        ext = {"x-kubernetes-group-version-kind": _gvk(res)}
        named = {
            "get": {
                "operationId": f"read{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "get",
            },
            "put": {
                "operationId": f"replace{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "put",
                "parameters": params,
                "requestBody": {"content": {"application/json": {"schema": ref}}},
            },
            "patch": {
                "operationId": f"patch{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "patch",
                "parameters": params,
                "requestBody": body,
            },
            "delete": {
                "operationId": f"delete{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "delete",
            },
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                *(
                    [
                        {
                            "name": "namespace",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ]
                    if res.namespaced
                    else []
                ),
                *params,
            ],
        }
        paths[f"{base}/{res.plural}/{{name}}"] = named
        paths[f"{base}/{res.plural}"] = {
            "get": {
                "operationId": f"list{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "list",
            },
            "post": {
                "operationId": f"create{res.kind}",
                "responses": ok,
                **ext,
                "x-kubernetes-action": "post",
                "parameters": params,
                "requestBody": {"content": {"application/json": {"schema": ref}}},
            },
        }
        if "status" in res.subresources:
            paths[f"{base}/{res.plural}/{{name}}/status"] = {
                key: value for key, value in named.items() if key in {"get", "put", "patch"}
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kmock emulator)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def v3_root(resources: Iterable[ApiResource]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The ``/openapi/v3`` root document and the documents it points to, by path."""
    by_path: dict[str, list[ApiResource]] = {}
    for res in resources:
        by_path.setdefault(res.openapi_path, []).append(res)
    docs = {path: v3_group_version(items) for path, items in sorted(by_path.items())}
    root: dict[str, Any] = {"paths": {}}
    for path, doc in docs.items():
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        root["paths"][path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return root, docs


def v2_document_json() -> dict[str, Any]:
    """The JSON flavour of the (empty) v2 document, for clients that ask for JSON."""
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (kmock emulator)", "version": "v1.32.0"},
        "paths": {},
        "definitions": {},
    }
