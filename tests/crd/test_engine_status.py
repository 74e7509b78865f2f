"""The engine's status record fits the CRD's status schema: nothing pruned, nothing refused.

A field the engine writes but the schema lacks would be silently dropped by the API server (and
resume state lost); a list longer than its maxItems would make every status write fail. The
record is written to the real API server's status subresource and read back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bulkterm.aiapi.models import Kind
from bulkterm.engine.decisions import Action
from bulkterm.engine.progress import (
    AttemptGroup,
    BulkUpdatesRecord,
    CapabilitiesRecord,
    Condition,
    Failure,
    InFlightEntry,
    InFlightGroup,
    Plan,
    PlanAction,
    PlanEntry,
    Progress,
    UnknownGroup,
    with_observed_generation,
)
from bulkterm.engine.settings import EngineSettings
from tests.kube import Kube

#: Status fields the operator adds to the engine's record (``bulkterm.k8s.status``).
OPERATOR_WRITES = {"observedGeneration", "runSpecHash"}


def _record_schema() -> dict[str, Any]:
    return Progress.model_json_schema(by_alias=True, mode="serialization")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = {
            **defs[node["$ref"].rsplit("/", 1)[1]],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            node = {**_resolve(options[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
    return node


def _compare(
    crd: dict[str, Any], py: dict[str, Any], defs: dict[str, Any], path: str, problems: list[str]
) -> None:
    py = _resolve(py, defs)
    if "enum" in py and crd.get("enum") is not None and sorted(crd["enum"]) != sorted(py["enum"]):
        problems.append(f"{path}: enum: CRD {crd['enum']} != engine {py['enum']}")
    if py.get("type") == "object" and "properties" in py:
        crd_props = crd.get("properties", {})
        for name in sorted(set(py["properties"]) - set(crd_props)):
            problems.append(f"{path}.{name}: written by the engine, missing in the CRD")
        for name in sorted(set(crd_props) - set(py["properties"]) - OPERATOR_WRITES):
            problems.append(f"{path}.{name}: in the CRD, never written by the engine")
        for name in set(py["properties"]) & set(crd_props):
            _compare(crd_props[name], py["properties"][name], defs, f"{path}.{name}", problems)
    elif py.get("type") == "array" and "items" in py:
        _compare(crd.get("items", {}), py["items"], defs, f"{path}[]", problems)
    elif py.get("type") == "object" and isinstance(py.get("additionalProperties"), dict):
        extra = crd.get("additionalProperties")
        if not isinstance(extra, dict):
            problems.append(f"{path}: a map in the engine, not in the CRD")


def test_the_fields_match(openapi: dict[str, Any]) -> None:
    record = _record_schema()
    problems: list[str] = []
    _compare(openapi["properties"]["status"], record, record.get("$defs", {}), ".status", problems)
    assert problems == []


def _full_record() -> Progress:
    t = datetime(2026, 11, 28, 20, 47, tzinfo=UTC)
    return Progress(
        total=4,
        pending=1,
        active=1,
        succeeded=1,
        failed=1,
        progress="2/4",
        completed_indexes="0",
        failed_indexes="1",
        in_flight_groups=[InFlightGroup(action=Action.STOP, sent_at=t, indexes="2", accepted=True)],
        attempt_groups=[AttemptGroup(attempts=2, retries=1, indexes="1-2")],
        unknown_since=[UnknownGroup(since=t, indexes="3")],
        in_flight=[
            InFlightEntry(
                index=2, kind=Kind.DEPLOYMENT, id="d0002", action=Action.STOP, sent_at=t, attempt=1
            )
        ],
        failures=[
            Failure(
                index=1,
                kind=Kind.EXECUTION,
                id="e0001",
                reason="NotFound",
                message="HTTP 404",
                code="404",
                attempts=2,
                last_attempt_time=t,
            )
        ],
        outcomes={"Stopped": 1},
        start_time=t,
        completion_time=t,
        capabilities=CapabilitiesRecord(bulk_updates=BulkUpdatesRecord(deployments=True)),
        conditions=[
            Condition(
                type="Ready",
                status="False",
                reason="Running",
                message="2/4",
                last_transition_time=t,
            )
        ],
        plan=Plan(
            stop=1,
            stop_indexes="2",
            reasons={"Running": 1},
            entries=[
                PlanEntry(
                    index=2,
                    kind=Kind.DEPLOYMENT,
                    id="d0002",
                    observed="RUNNING",
                    action=PlanAction.STOP,
                    reason="Running",
                    message="would be stopped",
                )
            ],
            entries_omitted=0,
        ),
    )


def test_a_full_record_survives_a_status_patch_unchanged(
    kube: Kube, namespace: str, stored: dict[str, Any]
) -> None:
    name = stored["metadata"]["name"]
    status = with_observed_generation(_full_record(), 1).to_status()
    kube.patch_status("bt", name, status, namespace=namespace)
    assert kube.get("bt", name, namespace=namespace)["status"] == status


def test_the_engine_caps_fit_the_schema(openapi: dict[str, Any]) -> None:
    status = openapi["properties"]["status"]["properties"]
    settings = EngineSettings()
    assert settings.max_in_flight_entries <= status["inFlight"]["maxItems"]
    assert settings.max_failure_entries <= status["failures"]["maxItems"]
    assert settings.max_plan_entries <= status["plan"]["properties"]["entries"]["maxItems"]
    assert 2 * settings.max_index_groups <= status["inFlightGroups"]["maxItems"]  # per action
    assert settings.max_index_groups <= status["unknownSince"]["maxItems"]
