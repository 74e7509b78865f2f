"""The CRD as a YAML document, the shipped examples, and a valid BulkTermination to vary."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "bulktermination.yaml"
EXAMPLES = ROOT / "examples"


def yaml_documents(path: Path) -> list[Any]:
    """The non-empty documents of a (multi-document) YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def crd_document() -> dict[str, Any]:
    """The one CustomResourceDefinition in ``crds/bulktermination.yaml``."""
    (crd,) = [d for d in yaml_documents(CRD_PATH) if d.get("kind") == "CustomResourceDefinition"]
    return dict(crd)


def walk_schema(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """Every sub-schema with its path: ``.spec.targets[].id``; additionalProperties as ``.*``."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk_schema(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from walk_schema(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from walk_schema(schema["additionalProperties"], f"{path}.*")


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every BulkTermination in ``examples/``, with an id like ``small.yaml#0``."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")) if EXAMPLES.is_dir() else []:
        for index, doc in enumerate(yaml_documents(path)):
            if doc.get("kind") == "BulkTermination":
                found.append((f"{path.relative_to(EXAMPLES)}#{index}", doc))
    return found


def valid_cr(**spec: Any) -> dict[str, Any]:
    """A minimal valid BulkTermination; keyword arguments override spec fields."""
    body: dict[str, Any] = {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": "nightly-cleanup", "namespace": "ml-team"},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "targets": [
                {
                    "kind": "Deployment",
                    "id": "aa97b177-9383-4934-8543-0f91a7a0283a",
                    "targetStatus": "STOPPED",
                },
                {"kind": "Execution", "id": "e6f1a0c2d3b4", "targetStatus": "DELETED"},
            ],
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body
