"""Validation of simulator answers against SAP's official spec (``AI_CORE_API.yaml``).

The spec is found through ``$AI_CORE_API_SPEC`` or at ``shared/reference/AI_CORE_API.yaml``
beside the checkout or beside a folder above it; tests that need it skip, saying so, when it
is absent.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

REPO_ROOT = Path(__file__).resolve().parents[2]
_RELATIVE = Path("shared") / "reference" / "AI_CORE_API.yaml"
#: ``../shared/reference/AI_CORE_API.yaml`` next to the checkout, or next to any folder above
#: it (a CI clone may sit one level deeper than the working checkout).
DEFAULT_SPEC = next(
    (parent / _RELATIVE for parent in REPO_ROOT.parents if (parent / _RELATIVE).is_file()),
    REPO_ROOT.parent / _RELATIVE,
)

#: An envelope for statuses the spec does not declare (401, 403, 413, 415, 429, 5xx).
ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"$ref": "#/components/schemas/AiApiError"}},
}


def spec_path() -> Path:
    return Path(os.environ.get("AI_CORE_API_SPEC", DEFAULT_SPEC))


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document: dict[str, Any] = yaml.load(handle, Loader=loader)
        return document


def load_spec() -> dict[str, Any]:
    path = spec_path()
    if not path.is_file():
        pytest.skip(
            f"SAP's AI_CORE_API.yaml not found at {path}: set AI_CORE_API_SPEC to check wire "
            "shapes against the official spec"
        )
    return _load(path)


class Spec:
    """Looks up the schema the spec declares for an operation's answer and validates against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        operation = self.document["paths"][path][method.lower()]
        responses = operation["responses"]
        if str(status) not in responses:
            return ERROR_ENVELOPE
        response = self._resolve(responses[str(status)])
        (media,) = response["content"].values()
        schema: dict[str, Any] = media["schema"]
        return schema

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        root = {**schema, "components": self.document["components"]}
        OAS30Validator(root, format_checker=oas30_format_checker).validate(instance)

    def validate_response(self, path: str, method: str, status: int, body: Any) -> None:
        """``path`` as in the spec, e.g. ``/lm/deployments/{deploymentId}``."""
        self.validate(self.response_schema(path, method, status), body)
        if status >= 400:
            # The spec leaves "error" optional and only code/message required; SAP's SDK needs
            # the whole envelope (contract §14).
            assert set(body["error"]) >= {"code", "message", "requestId", "target"}

    def validate_schema(self, name: str, instance: Any) -> None:
        self.validate({"$ref": f"#/components/schemas/{name}"}, instance)
