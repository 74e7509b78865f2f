"""Custom resources as the real API server takes them: what it admits, fills in, prunes, refuses.

Every bad spec in the table is refused twice: by the API server (``kubectl apply``) and by
``bulkterm apply``'s manifest loader, each naming the field. Creates are dry runs with strict
field validation unless a test needs the object stored.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bulkterm.manifest import ManifestError, load_manifests
from bulkterm.spec import NO_TARGETS, ONE_FORM
from tests.crd.samples import example_documents, valid_cr
from tests.crd.server import admit, create, problems, refusal
from tests.kube import Kube, KubeApiError


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a dotted path (``spec.targets.0.id``); value ``...`` deletes it."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = copy.deepcopy(value)
        else:
            node[last] = copy.deepcopy(value)

    return mutate


SELECTOR = {"kind": "Deployment", "targetStatus": "STOPPED", "scenarioId": "scenario-1"}


def _compact_instead(
    deployments: dict[str, Any], executions: dict[str, Any] | None = None
) -> Callable[[dict[str, Any]], None]:
    """A mutation replacing ``spec.targets`` by the compact form."""

    def mutate(body: dict[str, Any]) -> None:
        del body["spec"]["targets"]
        body["spec"]["deployments"] = copy.deepcopy(deployments)
        if executions is not None:
            body["spec"]["executions"] = copy.deepcopy(executions)

    return mutate


def _target(id_: str, kind: str | None = None, status: str = "STOPPED") -> dict[str, Any]:
    target = {"id": id_, "targetStatus": status}
    return target if kind is None else {"kind": kind, **target}


# --- what is admitted ---------------------------------------------------------------------------


def test_examples_exist() -> None:
    assert example_documents(), "examples/ has no BulkTermination"


@pytest.mark.parametrize("doc", [pytest.param(d, id=i) for i, d in example_documents()])
def test_example_is_admitted_with_strict_field_validation(
    kube: Kube, namespace: str, doc: dict[str, Any]
) -> None:
    admitted = admit(kube, doc, namespace)
    assert admitted["apiVersion"] == "aiapi.bulkops.dev/v1alpha1"
    for form in ("targets", "deployments", "executions"):
        assert admitted["spec"].get(form) == doc["spec"].get(form)


def test_minimal_cr_is_admitted_with_every_default_filled_in(kube: Kube, namespace: str) -> None:
    body = valid_cr()
    del body["spec"]["connection"]
    body["spec"]["targets"] = [{"id": "d1234", "targetStatus": "STOPPED"}]
    assert admit(kube, body, namespace)["spec"] == {
        "connection": {"resourceGroup": "default"},
        "targets": [{"kind": "Deployment", "id": "d1234", "targetStatus": "STOPPED"}],
        "batchSize": 100,
        "pollIntervalSeconds": 10,
        "backoffLimitPerTarget": 3,
        "unknownGracePeriodSeconds": 120,
        "dryRun": False,
        "requireApproval": False,
        "suspend": False,
    }


def test_a_selector_alone_is_admitted_with_its_defaults(kube: Kube, namespace: str) -> None:
    body = valid_cr()
    del body["spec"]["targets"]
    body["spec"]["selector"] = {
        "kind": "Execution",
        "targetStatus": "DELETED",
        "executionScheduleId": "sch-0001",
        "statuses": ["COMPLETED", "DEAD"],
        "createdBefore": "2026-11-01T00:00:00Z",
        "pauseExecutionSchedules": True,
    }
    selector = admit(kube, body, namespace)["spec"]["selector"]
    assert selector["maxTargets"] == 1000
    assert selector["pauseExecutionSchedules"] is True


def test_a_new_object_reads_not_yet_observed_until_the_operator_writes(
    kube: Kube, namespace: str
) -> None:
    """kstatus reads a status without ``observedGeneration`` as Current (it never reads
    Ready); the schema's status default makes a new object's generation 1 unobserved (0), so
    Flux and ``kubectl wait`` see InProgress even while no operator watches the namespace."""
    stored = create(kube, valid_cr(), namespace)
    assert stored["metadata"]["generation"] == 1
    assert stored["status"] == {"observedGeneration": 0}
    read = kube.get("bt", stored["metadata"]["name"], namespace=namespace)
    assert read["status"] == {"observedGeneration": 0}


def test_secret_key_defaults_to_service_key(kube: Kube, namespace: str) -> None:
    assert admit(kube, valid_cr(), namespace)["spec"]["connection"]["secretRef"] == {
        "name": "aicore-service-key",
        "key": "serviceKey",
    }


def test_null_optional_fields_are_dropped(kube: Kube, namespace: str) -> None:
    body = valid_cr(activeDeadlineSeconds=None, connection={"secretRef": None})
    spec = admit(kube, body, namespace)["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert spec["connection"] == {"resourceGroup": "default"}


def test_same_id_with_different_kinds_is_admitted(kube: Kube, namespace: str) -> None:
    targets = [
        {"kind": "Deployment", "id": "abcd", "targetStatus": "STOPPED"},
        {"kind": "Execution", "id": "abcd", "targetStatus": "STOPPED"},
    ]
    assert admit(kube, valid_cr(targets=targets), namespace)["spec"]["targets"] == targets


def test_five_thousand_listed_targets_with_the_longest_ids_are_stored(
    kube: Kube, namespace: str
) -> None:
    """Stored for real, not a dry run: the object with its managedFields (which name every
    (kind, id) key of the list-map) must also fit etcd's request limit (1.5 MiB by default).
    6,000 such targets did not: hence the ``spec.targets`` maximum of 5,000."""
    targets = [_target(f"{i:064d}", "Deployment", "DELETED") for i in range(5_000)]
    created = create(kube, valid_cr(targets=targets), namespace)
    assert len(created["spec"]["targets"]) == 5_000


def _compact(deployments: list[str], executions: list[str]) -> dict[str, Any]:
    body = valid_cr()
    del body["spec"]["targets"]
    body["spec"]["deployments"] = {"targetStatus": "STOPPED", "ids": deployments}
    body["spec"]["executions"] = {"targetStatus": "DELETED", "ids": executions}
    return body


def test_ten_thousand_compact_ids_with_the_longest_ids_are_stored(
    kube: Kube, namespace: str
) -> None:
    ids = [f"{i:064d}" for i in range(5_000)]
    created = create(kube, _compact(ids, ids), namespace)
    assert len(created["spec"]["deployments"]["ids"]) == 5_000
    assert len(created["spec"]["executions"]["ids"]) == 5_000


def test_the_compact_form_keeps_the_order_of_its_ids(kube: Kube, namespace: str) -> None:
    """Status counts targets by index into these lists: the server must store them as sent."""
    ids = ["d0003", "d0001", "d0002"]
    assert admit(kube, _compact(ids, ["e0001"]), namespace)["spec"]["deployments"]["ids"] == ids


# --- what is refused, by the API server and by the manifest loader alike -----------------------

ID_PATTERN = "should match '^[A-Za-z0-9_.-]{4,64}$'"
RG_PATTERN = "should match '^[a-zA-Z0-9][a-zA-Z0-9.-]{1,251}[a-zA-Z0-9]$'"

BAD: list[Any] = [
    # (mutation, the field named, a fragment of the API server's message about it)
    pytest.param(
        _set("spec.targets.0.id", "abc"),
        "spec.targets[0].id",
        "should be at least 4 chars long",
        id="id-too-short",
    ),
    pytest.param(
        _set("spec.targets.0.id", "a" * 65),
        "spec.targets[0].id",
        "Too long: may not be more than 64 bytes",
        id="id-too-long",
    ),
    pytest.param(
        _set("spec.targets.0.id", "abc/def"), "spec.targets[0].id", ID_PATTERN, id="id-with-slash"
    ),
    pytest.param(
        _set("spec.targets.0.id", "abc def"), "spec.targets[0].id", ID_PATTERN, id="id-with-space"
    ),
    pytest.param(
        _set("spec.targets.0.id", "déployé"),
        "spec.targets[0].id",
        ID_PATTERN,
        id="id-non-ascii-word-chars",
    ),
    pytest.param(
        _set("spec.targets.0.id", ...), "spec.targets[0].id", "Required value", id="id-missing"
    ),
    pytest.param(
        _set("spec.targets.0.targetStatus", "RUNNING"),
        "spec.targets[0].targetStatus",
        'Unsupported value: "RUNNING": supported values: "STOPPED", "DELETED"',
        id="unknown-targetStatus",
    ),
    pytest.param(
        _set("spec.targets.0.targetStatus", "stopped"),
        "spec.targets[0].targetStatus",
        'Unsupported value: "stopped"',
        id="lowercase-targetStatus",
    ),
    pytest.param(
        _set("spec.targets.0.targetStatus", ...),
        "spec.targets[0].targetStatus",
        "Required value",
        id="targetStatus-missing",
    ),
    pytest.param(
        _set("spec.targets.0.kind", "Pod"),
        "spec.targets[0].kind",
        'Unsupported value: "Pod": supported values: "Deployment", "Execution"',
        id="unknown-kind",
    ),
    pytest.param(
        _set("spec.batchSize", 0),
        "spec.batchSize",
        "should be greater than or equal to 1",
        id="batchSize-0",
    ),
    pytest.param(
        _set("spec.batchSize", 101),
        "spec.batchSize",
        "should be less than or equal to 100",
        id="batchSize-101",
    ),
    pytest.param(
        _set("spec.batchSize", "5"),
        "spec.batchSize",
        "must be of type integer",
        id="batchSize-string",
    ),
    pytest.param(
        _set("spec.pollIntervalSeconds", 0),
        "spec.pollIntervalSeconds",
        "should be greater than or equal to 1",
        id="pollInterval-0",
    ),
    pytest.param(
        _set("spec.pollIntervalSeconds", 3601),
        "spec.pollIntervalSeconds",
        "should be less than or equal to 3600",
        id="pollInterval-3601",
    ),
    pytest.param(
        _set("spec.activeDeadlineSeconds", 0),
        "spec.activeDeadlineSeconds",
        "should be greater than or equal to 1",
        id="deadline-0",
    ),
    pytest.param(
        _set("spec.ttlSecondsAfterFinished", -1),
        "spec.ttlSecondsAfterFinished",
        "should be greater than or equal to 0",
        id="ttl-negative",
    ),
    pytest.param(
        _set("spec.backoffLimitPerTarget", 101),
        "spec.backoffLimitPerTarget",
        "should be less than or equal to 100",
        id="backoff-101",
    ),
    pytest.param(
        _set("spec.backoffLimitPerTarget", -1),
        "spec.backoffLimitPerTarget",
        "should be greater than or equal to 0",
        id="backoff-negative",
    ),
    pytest.param(
        _set("spec.unknownGracePeriodSeconds", 86401),
        "spec.unknownGracePeriodSeconds",
        "should be less than or equal to 86400",
        id="grace-86401",
    ),
    pytest.param(
        _set("spec.dryRun", "yes"), "spec.dryRun", "must be of type boolean", id="dryRun-string"
    ),
    pytest.param(
        _set("spec.targets", []),
        "spec.targets",
        "should have at least 1 items",
        id="no-targets",
    ),
    pytest.param(
        _set("spec.targets", [_target(f"d{i:05d}") for i in range(5_001)]),
        "spec.targets",
        "Too many: 5001: must have at most 5000 items",
        id="5001-targets",
    ),
    pytest.param(_set("spec.targets", ...), "spec", NO_TARGETS, id="targets-missing"),
    pytest.param(
        _set("spec.selector", {"kind": "Deployment", "targetStatus": "STOPPED"}),
        "spec.selector",
        "a selector needs at least one filter",
        id="selector-without-filter",
    ),
    pytest.param(
        _set("spec.selector", {**SELECTOR, "executionScheduleId": "sch-0001"}),
        "spec.selector",
        "executionScheduleId: only executions have a schedule",
        id="schedule-of-a-deployment",
    ),
    pytest.param(
        _set("spec.selector", {**SELECTOR, "pauseExecutionSchedules": True}),
        "spec.selector",
        "pauseExecutionSchedules: only executions have schedules",
        id="pause-schedules-of-deployments",
    ),
    pytest.param(
        _set("spec.selector", {**SELECTOR, "statuses": ["RUNNING", "GONE"]}),
        "spec.selector.statuses[1]",
        "Unsupported value",
        id="selector-unknown-status",
    ),
    pytest.param(
        _set("spec.selector", {**SELECTOR, "maxTargets": 10_001}),
        "spec.selector.maxTargets",
        "should be less than or equal to 10000",
        id="selector-maxTargets-over",
    ),
    pytest.param(
        _set("spec.selector", {**SELECTOR, "olderThanSeconds": 0}),
        "spec.selector.olderThanSeconds",
        "should be greater than or equal to 1",
        id="selector-age-zero",
    ),
    pytest.param(
        _set("spec.deployments", {"targetStatus": "STOPPED", "ids": ["d0001"]}),
        "spec",
        ONE_FORM,
        id="both-forms",
    ),
    pytest.param(
        _compact_instead({"targetStatus": "STOPPED", "ids": ["d0001", "d0002", "d0001"]}),
        "spec.deployments.ids[2]",
        'Duplicate value: "d0001"',
        id="compact-duplicate-id",
    ),
    pytest.param(
        _compact_instead({"targetStatus": "STOPPED", "ids": ["d0001", "d 0002"]}),
        "spec.deployments.ids[1]",
        ID_PATTERN,
        id="compact-bad-id",
    ),
    pytest.param(
        _compact_instead({"targetStatus": "STOPPED", "ids": []}),
        "spec.deployments.ids",
        "should have at least 1 items",
        id="compact-no-ids",
    ),
    pytest.param(
        _compact_instead({"ids": ["d0001"]}),
        "spec.deployments.targetStatus",
        "Required value",
        id="compact-without-targetStatus",
    ),
    pytest.param(
        _compact_instead(
            {"targetStatus": "STOPPED", "ids": [f"d{i:05d}" for i in range(6_000)]},
            {"targetStatus": "DELETED", "ids": [f"e{i:05d}" for i in range(4_001)]},
        ),
        "spec",
        "spec.deployments.ids and spec.executions.ids hold at most 10000 ids together",
        id="compact-10001-ids",
    ),
    pytest.param(_set("spec", ...), "spec", "Required value", id="spec-missing"),
    pytest.param(
        _set("spec.targets", [_target("abcd"), _target("abcd", status="DELETED")]),
        "spec.targets[1]",
        'Duplicate value: {"id":"abcd","kind":"Deployment"}',
        id="duplicate-id",
    ),
    pytest.param(
        _set("spec.targets", [_target("abcd"), _target("abcd", "Deployment")]),
        "spec.targets[1]",
        'Duplicate value: {"id":"abcd","kind":"Deployment"}',
        id="duplicate-after-defaulting",
    ),
    pytest.param(
        _set("spec.connection.secretRef", {"key": "k"}),
        "spec.connection.secretRef.name",
        "Required value",
        id="secretRef-without-name",
    ),
    pytest.param(
        _set("spec.connection.secretRef.name", ""),
        "spec.connection.secretRef.name",
        "should be at least 1 chars long",
        id="secretRef-empty-name",
    ),
    pytest.param(
        _set("spec.connection.resourceGroup", "-bad"),
        "spec.connection.resourceGroup",
        RG_PATTERN,
        id="resourceGroup-leading-dash",
    ),
    pytest.param(
        _set("spec.connection.resourceGroup", "ab"),
        "spec.connection.resourceGroup",
        RG_PATTERN,
        id="resourceGroup-too-short",
    ),
    pytest.param(
        _set("spec.foo", 1),
        "spec.foo",
        'strict decoding error: unknown field "spec.foo"',
        id="unknown-field",
    ),
    pytest.param(
        _set("spec.targets.0.foo", 1),
        "spec.targets[0].foo",
        'strict decoding error: unknown field "spec.targets[0].foo"',
        id="unknown-target-field",
    ),
]


def _cr_with(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = valid_cr()
    mutate(body)
    return body


@pytest.mark.parametrize(("mutate", "field", "fragment"), BAD)
def test_api_server_refuses_bad_spec(
    kube: Kube,
    namespace: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    fragment: str,
) -> None:
    named = problems(refusal(kube, _cr_with(mutate), namespace))
    assert any(f == field and fragment in message for f, message in named), named


def _names(problem: str, field: str) -> bool:
    """Whether a loader problem names ``field`` itself (not a longer path starting with it).

    Field checks read ``spec.targets[0].id (id 'abc'): why``; checks of the whole spec (model
    validators) put the path at the start of their message: ``spec: targets[1]: why``.
    """
    path = re.escape(field).replace(r"spec\.", r"spec(?:\.|: )", 1)
    return re.search(rf"(?:^|: ){path}(?![\w.\[])", problem) is not None


@pytest.mark.parametrize(("mutate", "field", "fragment"), BAD)
def test_manifest_loader_refuses_bad_spec(
    mutate: Callable[[dict[str, Any]], None], field: str, fragment: str
) -> None:
    text = yaml.safe_dump(_cr_with(mutate), allow_unicode=True, sort_keys=False)
    with pytest.raises(ManifestError) as refused:
        load_manifests(text, source="m.yaml")
    assert any(_names(p, field) for p in refused.value.problems), refused.value.problems


# --- edge cases: the API server and the manifest loader must take the same view ----------------


INT64_MAX = 2**63 - 1

EDGES: list[Any] = [
    # (mutation); each once disagreed (bulkterm apply refused or accepted what the API server
    # did not): nulls dropped then defaulted, 5.0 read as 5, int64 bounds, metadata checks
    pytest.param(_set("spec.activeDeadlineSeconds", INT64_MAX), id="deadline-int64-max"),
    pytest.param(
        _set("spec.activeDeadlineSeconds", INT64_MAX + 1),
        id="deadline-above-int64",
    ),
    pytest.param(
        _set("spec.ttlSecondsAfterFinished", 10**30),
        id="ttl-above-int64",
    ),
    pytest.param(
        _set("spec.batchSize", 5.0),
        id="batchSize-integral-float",
    ),
    pytest.param(_set("spec.activeDeadlineSeconds", 1.5), id="deadline-fraction"),
    pytest.param(_set("spec.activeDeadlineSeconds", None), id="deadline-null"),
    pytest.param(_set("spec.connection.secretRef", None), id="secretRef-null"),
    *[
        pytest.param(
            _set(path, None),
            id=f"{path.removeprefix('spec.').replace('.0.', '[0].')}-null",
        )
        for path in (
            "spec.batchSize",
            "spec.dryRun",
            "spec.connection",
            "spec.connection.resourceGroup",
            "spec.targets.0.kind",
        )
    ],
    pytest.param(_set("spec.targets.0.id", 12345678), id="id-number"),
    pytest.param(_set("spec.targets.0.id", "abcd\n"), id="id-trailing-newline"),
    pytest.param(
        _set("spec.connection.resourceGroup", "abcd\n"), id="resourceGroup-trailing-newline"
    ),
    pytest.param(_set("spec.connection.secretRef.name", "é" * 253), id="secret-name-253-chars"),
    pytest.param(_set("spec.connection.secretRef.name", "é" * 254), id="secret-name-254-chars"),
    pytest.param(_set("spec.connection.secretRef.namespace", ""), id="secret-namespace-empty"),
    pytest.param(_set("spec.connection.secretRef.key", ""), id="secret-key-empty"),
    pytest.param(
        _set("metadata.name", "Nightly_Cleanup"),
        id="metadata-name-not-a-dns-subdomain",
    ),
    pytest.param(
        _set("metadata.foo", 1),
        id="unknown-metadata-field",
    ),
    pytest.param(
        _set("foo", 1),
        id="unknown-top-level-field",
    ),
]


def _server_admits(kube: Kube, namespace: str, body: dict[str, Any]) -> bool:
    try:
        admit(kube, body, namespace)
    except KubeApiError as refused:
        assert refused.status in (400, 422), refused
        return False
    return True


def _loader_admits(body: dict[str, Any]) -> bool:
    try:
        load_manifests(yaml.safe_dump(body, allow_unicode=True), source="m.yaml")
    except ManifestError:
        return False
    return True


@pytest.mark.parametrize("mutate", EDGES)
def test_api_server_and_manifest_loader_take_the_same_view(
    kube: Kube, namespace: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    body = _cr_with(mutate)
    server, loader = _server_admits(kube, namespace, body), _loader_admits(body)
    assert server == loader, f"API server admits: {server}; manifest loader: {loader}"


# --- status: written by the operator through the status subresource ----------------------------

BAD_STATUS: list[Any] = [
    # (status merge patch, the field named, a fragment of the API server's message about it)
    pytest.param(
        {"inFlight": [{"index": i} for i in range(51)]},
        "status.inFlight",
        "Too many: 51: must have at most 50 items",
        id="status-inFlight-51",
    ),
    pytest.param(
        {"conditions": [{"type": "Ready", "status": "Maybe"}]},
        "status.conditions[0].status",
        'Unsupported value: "Maybe": supported values: "True", "False", "Unknown"',
        id="status-condition-status",
    ),
    pytest.param(
        {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
        "status.conditions[1]",
        'Duplicate value: {"type":"Ready"}',
        id="status-duplicate-condition",
    ),
    pytest.param(
        {"startTime": "yesterday"},
        "status.startTime",
        'must be of type date-time: "yesterday"',
        id="status-bad-time",
    ),
    pytest.param(
        {"failed": -1},
        "status.failed",
        "should be greater than or equal to 0",
        id="status-negative-counter",
    ),
]


@pytest.mark.parametrize(("status", "field", "fragment"), BAD_STATUS)
def test_api_server_refuses_bad_status(
    kube: Kube,
    namespace: str,
    stored: dict[str, Any],
    status: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    name = stored["metadata"]["name"]
    with pytest.raises(KubeApiError) as refused:
        kube.patch_status("bt", name, status, namespace=namespace)
    assert refused.value.status == 422
    named = problems(refused.value)
    assert any(f == field and fragment in message for f, message in named), named


# --- pruning: what the server drops instead of refusing -----------------------------------------


def test_unknown_spec_field_is_pruned_when_field_validation_is_ignore(
    kube: Kube, namespace: str
) -> None:
    admitted = admit(kube, valid_cr(foo=1), namespace, field_validation="Ignore")
    assert admitted["spec"] == admit(kube, valid_cr(), namespace)["spec"]


def test_kopf_private_status_fields_are_pruned(
    kube: Kube, namespace: str, stored: dict[str, Any]
) -> None:
    """kopf's status progress storage (``status.kopf``) and handler results never reach etcd:
    the operator keeps kopf's state in annotations (``bulkterm.k8s.handlers``)."""
    name = stored["metadata"]["name"]
    status = {"kopf": {"progress": {}}, "create_fn": {"ok": 1}, "total": 2}
    kube.patch_status("bt", name, status, namespace=namespace)
    assert kube.get("bt", name, namespace=namespace)["status"] == {
        "observedGeneration": 0,
        "total": 2,
    }


def _engine_shaped_status() -> dict[str, Any]:
    t = "2026-11-28T20:47:00Z"
    return {
        "observedGeneration": 1,
        "total": 120,
        "pending": 40,
        "active": 30,
        "succeeded": 45,
        "failed": 5,
        "progress": "50/120",
        "completedIndexes": "0-44",
        "failedIndexes": "45-49",
        "startTime": t,
        "inFlight": [
            {
                "index": 50,
                "kind": "Deployment",
                "id": "d051a",
                "action": "STOP",
                "sentAt": t,
                "attempt": 1,
            }
        ],
        "failures": [
            {
                "index": 45,
                "kind": "Execution",
                "id": "e046a",
                "reason": "Forbidden",
                "message": "HTTP 403",
                "code": 403,
                "attempts": 3,
                "lastAttemptTime": "2026-11-28T20:47:00.123456+00:00",
            },
            {
                "index": 46,
                "kind": "Execution",
                "id": "e047a",
                "reason": "Refused",
                "message": "AI API error",
                "code": "03021",
                "attempts": 1,
            },
        ],
        "outcomes": {"Stopped": 40, "AlreadyTerminated": 5},
        "capabilities": {"bulkUpdates": {"deployments": True, "executions": False}},
        "plan": {
            "stop": 3,
            "stopIndexes": "0-2",
            "reasons": {"Running": 3},
            "entries": [
                {
                    "index": 0,
                    "kind": "Deployment",
                    "id": "d001a",
                    "observed": "RUNNING",
                    "action": "Stop",
                    "reason": "Running",
                    "message": "would be stopped",
                }
            ],
            "entriesOmitted": 2,
        },
        "inFlightGroups": [{"action": "STOP", "sentAt": t, "indexes": "50-79"}],
        "attemptGroups": [{"attempts": 1, "retries": 0, "indexes": "50-79"}],
        "unknownSince": [{"since": t, "indexes": "80"}],
        "conditions": [
            {
                "type": "Reconciling",
                "status": "True",
                "reason": "Running",
                "message": "50/120 terminated, 5 failed",
                "lastTransitionTime": t,
                "observedGeneration": 1,
            },
            {
                "type": "Stalled",
                "status": "False",
                "reason": "Running",
                "message": "",
                "lastTransitionTime": t,
                "observedGeneration": 1,
            },
            {
                "type": "Ready",
                "status": "False",
                "reason": "Running",
                "message": "",
                "lastTransitionTime": t,
                "observedGeneration": 1,
            },
        ],
    }


def test_engine_shaped_status_survives_a_status_patch_unchanged(
    kube: Kube, namespace: str, stored: dict[str, Any]
) -> None:
    """Nothing pruned, nothing refused: every field the operator writes is in the schema."""
    name = stored["metadata"]["name"]
    status = _engine_shaped_status()
    kube.patch_status("bt", name, status, namespace=namespace)
    assert kube.get("bt", name, namespace=namespace)["status"] == status
