"""The CRD is well-formed: names, structural schema, descriptions, printer columns, cheap CEL."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.crd.samples import CRD_PATH, walk_schema, yaml_documents
from tests.kube import Kube


def test_identity(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "bulkterminations.aiapi.bulkops.dev"
    spec = crd["spec"]
    assert spec["group"] == "aiapi.bulkops.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "BulkTermination",
        "listKind": "BulkTerminationList",
        "plural": "bulkterminations",
        "singular": "bulktermination",
        "shortNames": ["bt", "bterm"],
        "categories": ["aiapi"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_matches_the_python_constants(crd: dict[str, Any]) -> None:
    from bulkterm import spec as pyspec

    assert crd["spec"]["group"] == pyspec.API_GROUP
    assert crd["spec"]["versions"][0]["name"] == pyspec.API_VERSION
    assert crd["spec"]["names"]["kind"] == pyspec.KIND
    assert crd["spec"]["names"]["plural"] == pyspec.PLURAL


def test_every_field_is_described(openapi: dict[str, Any]) -> None:
    """What ``kubectl explain`` shows. Not ``.metadata``: the API server refuses a CRD whose
    schema says anything about metadata but name and generateName, a description included."""
    undescribed = [p or "." for p, sub in walk_schema(openapi) if not sub.get("description")]
    assert undescribed == [".metadata"]


def test_every_field_is_typed(openapi: dict[str, Any]) -> None:
    untyped = [
        p or "."
        for p, sub in walk_schema(openapi)
        if "type" not in sub and not sub.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


def test_the_api_server_establishes_the_crd_as_written(kube: Kube, crd: dict[str, Any]) -> None:
    """The server checked the schema when the ``kube`` fixture installed the CRD (structural,
    defaults valid against their schemas, CEL rules compiled and within the cost budget) and
    serves the versions exactly as written."""
    name = "customresourcedefinitions/bulkterminations.aiapi.bulkops.dev"
    installed = kube.request("GET", f"/apis/apiextensions.k8s.io/v1/{name}")
    conditions = {c["type"]: c["status"] for c in installed["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert installed["spec"]["versions"] == crd["spec"]["versions"]


def test_no_schema_combinators_or_refs(openapi: dict[str, Any]) -> None:
    """Stricter than the server (which allows combinators without types or defaults): one
    plain schema per field, so the CRD, ``kubectl explain`` and the pydantic model line up."""
    for path, sub in walk_schema(openapi):
        for key in ("allOf", "anyOf", "oneOf", "not", "$ref"):
            assert key not in sub, f"{path}: {key}"


def test_no_preserve_unknown_fields(openapi: dict[str, Any]) -> None:
    """Everything is typed: unknown fields are pruned (or refused with strict validation)."""
    preserved = [
        p for p, sub in walk_schema(openapi) if sub.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert preserved == []


def test_list_map_keys_are_required_or_defaulted(openapi: dict[str, Any]) -> None:
    maps = [
        (p, sub) for p, sub in walk_schema(openapi) if sub.get("x-kubernetes-list-type") == "map"
    ]
    assert {p for p, _ in maps} == {".spec.targets", ".status.conditions"}
    for path, sub in maps:
        items = sub["items"]
        for key in sub["x-kubernetes-list-map-keys"]:
            assert key in items.get("required", []) or "default" in items["properties"][key], (
                f"{path}: list-map key {key!r} must be required or defaulted"
            )


def test_targets_shape(openapi: dict[str, Any]) -> None:
    targets = openapi["properties"]["spec"]["properties"]["targets"]
    assert (targets["minItems"], targets["maxItems"]) == (1, 5_000)
    assert targets["x-kubernetes-list-map-keys"] == ["kind", "id"]
    items = targets["items"]["properties"]
    assert items["kind"]["enum"] == ["Deployment", "Execution"]
    assert items["kind"]["default"] == "Deployment"
    assert items["id"]["pattern"] == r"^[A-Za-z0-9_.-]{4,64}$"
    assert items["targetStatus"]["enum"] == ["STOPPED", "DELETED"]


@pytest.mark.parametrize("kind", ["deployments", "executions"])
def test_compact_shape(openapi: dict[str, Any], kind: str) -> None:
    compact = openapi["properties"]["spec"]["properties"][kind]
    assert compact["required"] == ["targetStatus", "ids"]
    ids = compact["properties"]["ids"]
    assert (ids["minItems"], ids["maxItems"]) == (1, 10_000)
    assert ids["x-kubernetes-list-type"] == "set"  # the API server refuses a repeated id
    assert ids["items"]["pattern"] == r"^[A-Za-z0-9_.-]{4,64}$"
    assert compact["properties"]["targetStatus"]["enum"] == ["STOPPED", "DELETED"]


def test_status_is_fully_typed(openapi: dict[str, Any]) -> None:
    status = openapi["properties"]["status"]
    assert set(status["properties"]) == {
        "observedGeneration",
        "runSpecHash",
        "total",
        "pending",
        "active",
        "succeeded",
        "failed",
        "progress",
        "completedIndexes",
        "failedIndexes",
        "seenIndexes",
        "inFlightGroups",
        "attemptGroups",
        "unknownSince",
        "startTime",
        "completionTime",
        "inFlight",
        "failures",
        "outcomes",
        "capabilities",
        "plan",
        "approvedPlan",
        "selection",
        "restore",
        "conditions",
    }
    assert status["properties"]["inFlight"]["maxItems"] == 50
    assert status["properties"]["failures"]["maxItems"] == 100
    action = status["properties"]["inFlight"]["items"]["properties"]["action"]
    assert action["enum"] == ["STOP", "DELETE"]
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert condition["status"]["enum"] == ["True", "False", "Unknown"]


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"], c.get("priority", 0))
        for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    ready = '.status.conditions[?(@.type=="Ready")]'
    assert columns == [
        ("Status", "string", f"{ready}.reason", 0),
        ("Progress", "string", ".status.progress", 0),
        ("Failed", "integer", ".status.failed", 0),
        ("Age", "date", ".metadata.creationTimestamp", 0),
        ("Active", "integer", ".status.active", 1),
        ("Start", "date", ".status.startTime", 1),
        ("Completed", "date", ".status.completionTime", 1),
        ("Message", "string", f"{ready}.message", 1),
    ]
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        assert column.get("description"), column["name"]


def test_cel_rules_are_cheap(openapi: dict[str, Any]) -> None:
    """Proxies for the API server's static CEL cost estimate.

    A rule inside a list's items is evaluated once per item, so its estimated cost is
    multiplied by maxItems (10,000 here): no rule may sit under an array. Within a rule's
    scope every string has a maxLength and every list a maxItems, so size estimates are finite.
    The one iteration allowed is ``map`` in the order rules, which compare a list with its old
    value (run on updates only); the API server measures them at maxItems in
    ``test_immutability``.
    """
    rules = [
        (path, rule)
        for path, sub in walk_schema(openapi)
        for rule in sub.get("x-kubernetes-validations", [])
    ]
    assert {path for path, _ in rules} == {
        ".spec",
        ".spec.targets",
        ".spec.deployments",
        ".spec.executions",
        ".spec.selector",
    }
    for path, rule in rules:
        assert ".all(" not in rule["rule"] and ".exists" not in rule["rule"], (
            f"{path}: a rule iterating a list of up to 10,000 ids is too costly"
        )
        assert ".map(" not in rule["rule"] or "oldSelf" in rule["rule"], (
            f"{path}: only the order rules (transition rules) may iterate a list"
        )
    for path, rule in rules:
        assert "[]" not in path, f"{path}: a rule under a list is multiplied by its maxItems"
        assert rule.get("message"), f"{path}: rules need a clear message"
        scope = dict(walk_schema(openapi))[path]
        for sub_path, sub in walk_schema(scope, path):
            if sub.get("type") == "string" and "enum" not in sub:
                assert "maxLength" in sub, f"{sub_path}: unbounded string in CEL scope"
            if sub.get("type") == "array":
                assert "maxItems" in sub, f"{sub_path}: unbounded list in CEL scope"


def test_crd_yaml_is_one_document() -> None:
    assert len(yaml_documents(CRD_PATH)) == 1


def test_yamllint_clean() -> None:
    config = {
        "extends": "default",
        "rules": {"document-start": "disable", "line-length": {"max": 100}},
    }
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-d", json.dumps(config), str(CRD_PATH)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
