"""The spec is immutable once created: the CRD's CEL rules, evaluated by the real API server on
merge PATCHes of a stored BulkTermination (the way ``kubectl edit`` or ``kubectl patch`` would).

A merge patch replaces a list as a whole, so a patch of ``spec.targets`` sends the new list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.crd.samples import valid_cr
from tests.crd.server import create, problems
from tests.kube import Kube, KubeApiError

TARGETS_IMMUTABLE = (
    "Invalid value: targets are immutable: status tracks progress by index into this list; "
    "create a new BulkTermination for a different set of targets"
)
SPEC_IMMUTABLE = (
    "Invalid value: spec is immutable once created, spec.suspend excepted; create a new "
    "BulkTermination to change connection, batching, deadlines, dryRun or the form of the targets"
)


def _patch(kube: Kube, stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    meta = stored["metadata"]
    return kube.patch("bt", meta["name"], patch, namespace=meta["namespace"])


def _refused(kube: Kube, stored: dict[str, Any], patch: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(KubeApiError) as refused:
        _patch(kube, stored, patch)
    assert refused.value.status == 422
    return problems(refused.value)


def test_patching_the_same_spec_is_accepted(kube: Kube, stored: dict[str, Any]) -> None:
    updated = _patch(kube, stored, {"spec": stored["spec"]})
    assert updated["metadata"]["generation"] == 1


def test_suspend_may_change_both_ways_and_nothing_else_with_it(
    kube: Kube, stored: dict[str, Any]
) -> None:
    for generation, value in ((2, True), (3, False)):
        changed = _patch(kube, stored, {"spec": {"suspend": value}})
        assert (changed["spec"]["suspend"], changed["metadata"]["generation"]) == (
            value,
            generation,
        )
    refused = _refused(kube, stored, {"spec": {"suspend": True, "dryRun": True}})
    assert refused == [("spec", SPEC_IMMUTABLE)]


def test_metadata_changes_are_accepted(kube: Kube, stored: dict[str, Any]) -> None:
    updated = _patch(kube, stored, {"metadata": {"labels": {"team": "ml"}}})
    assert updated["metadata"]["labels"] == {"team": "ml"}


def test_status_changes_are_accepted(kube: Kube, stored: dict[str, Any]) -> None:
    meta = stored["metadata"]
    updated = kube.patch_status(
        "bt", meta["name"], {"total": 2, "pending": 2}, namespace=meta["namespace"]
    )
    assert updated["status"] == {"observedGeneration": 0, "total": 2, "pending": 2}


def _changed_id(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**targets[0], "id": "other-id"}, *targets[1:]]


def _changed_target_status(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**targets[0], "targetStatus": "DELETED"}, *targets[1:]]


def _removed(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return targets[:1]


def _added(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*targets, {"kind": "Deployment", "id": "new-id", "targetStatus": "STOPPED"}]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_changed_id, id="id"),
        pytest.param(_changed_target_status, id="targetStatus"),
        pytest.param(_removed, id="removed"),
        pytest.param(_added, id="added"),
    ],
)
def test_changing_targets_is_refused_with_the_targets_message(
    kube: Kube,
    stored: dict[str, Any],
    change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    """Only the targets rule speaks: the spec rule leaves target changes to it."""
    patch = {"spec": {"targets": change(stored["spec"]["targets"])}}
    assert _refused(kube, stored, patch) == [("spec.targets", TARGETS_IMMUTABLE)]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"batchSize": 10}, id="batchSize"),
        pytest.param({"pollIntervalSeconds": 60}, id="pollIntervalSeconds"),
        pytest.param({"backoffLimitPerTarget": 0}, id="backoffLimitPerTarget"),
        pytest.param({"unknownGracePeriodSeconds": 0}, id="unknownGracePeriodSeconds"),
        pytest.param({"dryRun": True}, id="dryRun"),
        pytest.param({"connection": {"resourceGroup": "other-group"}}, id="resourceGroup"),
        pytest.param({"connection": {"secretRef": {"name": "other"}}}, id="secretRef"),
        pytest.param({"activeDeadlineSeconds": 60}, id="deadline-added"),
        pytest.param({"ttlSecondsAfterFinished": 60}, id="ttl-added"),
    ],
)
def test_changing_the_rest_of_the_spec_is_refused_with_the_spec_message(
    kube: Kube, stored: dict[str, Any], spec: dict[str, Any]
) -> None:
    assert _refused(kube, stored, {"spec": spec}) == [("spec", SPEC_IMMUTABLE)]


TARGETS_ORDER_IMMUTABLE = (
    "Invalid value: the order of spec.targets is immutable too: status tracks progress by "
    "index into this list; create a new BulkTermination for a different order"
)


def test_reordered_targets_are_refused_with_the_order_message(
    kube: Kube, stored: dict[str, Any]
) -> None:
    """CEL equality of list-maps ignores order on the API server (``self == oldSelf`` alone let
    a reorder through, and the status' indexes then pointed into the new order): the order
    rule compares the (kind, id) keys as a plain, ordered list."""
    reordered = list(reversed(stored["spec"]["targets"]))
    assert _refused(kube, stored, {"spec": {"targets": reordered}}) == [
        ("spec.targets", TARGETS_ORDER_IMMUTABLE)
    ]
    assert _patch(kube, stored, {"metadata": {"labels": {"x": "y"}}})["metadata"]["generation"] == 1


def test_swapping_the_kinds_of_one_id_is_a_reorder_too(kube: Kube, namespace: str) -> None:
    """The order key is (kind, id), not the id alone: the same id may be listed once per kind."""
    targets = [
        {"kind": "Deployment", "id": "abcd", "targetStatus": "STOPPED"},
        {"kind": "Execution", "id": "abcd", "targetStatus": "STOPPED"},
    ]
    stored = create(kube, valid_cr(targets=targets), namespace)
    patch = {"spec": {"targets": list(reversed(targets))}}
    assert _refused(kube, stored, patch) == [("spec.targets", TARGETS_ORDER_IMMUTABLE)]


# --- the compact form ------------------------------------------------------------------------

DEPLOYMENTS_IMMUTABLE = (
    "Invalid value: spec.deployments is immutable: status tracks progress by index into its "
    "ids; create a new BulkTermination for a different set of targets"
)


@pytest.fixture
def stored_compact(kube: Kube, namespace: str) -> dict[str, Any]:
    body = valid_cr()
    del body["spec"]["targets"]
    body["spec"]["deployments"] = {"targetStatus": "STOPPED", "ids": ["d0001", "d0002"]}
    return create(kube, body, namespace)


@pytest.mark.parametrize(
    "deployments",
    [
        pytest.param({"targetStatus": "STOPPED", "ids": ["d0001", "d0003"]}, id="id"),
        pytest.param({"targetStatus": "DELETED", "ids": ["d0001", "d0002"]}, id="targetStatus"),
        pytest.param({"targetStatus": "STOPPED", "ids": ["d0001"]}, id="removed"),
        pytest.param({"targetStatus": "STOPPED", "ids": ["d0001", "d0002", "d0009"]}, id="added"),
    ],
)
def test_changing_compact_ids_is_refused_with_their_message(
    kube: Kube, stored_compact: dict[str, Any], deployments: dict[str, Any]
) -> None:
    patch = {"spec": {"deployments": deployments}}
    assert _refused(kube, stored_compact, patch) == [("spec.deployments", DEPLOYMENTS_IMMUTABLE)]


def test_adding_the_other_kind_is_refused_with_the_spec_message(
    kube: Kube, stored_compact: dict[str, Any]
) -> None:
    patch = {"spec": {"executions": {"targetStatus": "DELETED", "ids": ["e0001"]}}}
    assert _refused(kube, stored_compact, patch) == [("spec", SPEC_IMMUTABLE)]


def _order_message(kind: str) -> str:
    return (
        f"Invalid value: the order of spec.{kind}.ids is immutable too: status counts targets "
        "by index into these ids; create a new BulkTermination for a different order"
    )


@pytest.mark.parametrize("kind", ["deployments", "executions"])
def test_reordered_compact_ids_are_refused_with_the_order_message(
    kube: Kube, namespace: str, kind: str
) -> None:
    """Set-typed lists compare without order in CEL too; status counts targets by index into
    these ids."""
    body = valid_cr()
    del body["spec"]["targets"]
    body["spec"][kind] = {"targetStatus": "STOPPED", "ids": ["i0001", "i0002", "i0003"]}
    stored = create(kube, body, namespace)
    patch = {"spec": {kind: {"targetStatus": "STOPPED", "ids": ["i0001", "i0003", "i0002"]}}}
    assert _refused(kube, stored, patch) == [(f"spec.{kind}", _order_message(kind))]


SELECTOR_ORDER_IMMUTABLE = (
    "Invalid value: the order of the selector's lists (executableIds, statuses, excludeIds) is "
    "immutable like the rest of the spec; create a new BulkTermination to change it"
)


@pytest.mark.parametrize("field", ["executableIds", "statuses", "excludeIds"])
def test_reordered_selector_lists_are_refused_with_the_order_message(
    kube: Kube, namespace: str, field: str
) -> None:
    """No index points into them, but a reorder would move the generation of a spec that is
    immutable: the operator would take it for a change it cannot honour."""
    values = {
        "executableIds": ["exe-0001", "exe-0002"],
        "statuses": ["RUNNING", "PENDING"],
        "excludeIds": ["d0001", "d0002"],
    }
    selector = {"kind": "Deployment", "targetStatus": "STOPPED", **values}
    body = valid_cr(selector=selector)
    del body["spec"]["targets"]
    stored = create(kube, body, namespace)
    patch = {"spec": {"selector": {**selector, field: list(reversed(values[field]))}}}
    assert _refused(kube, stored, patch) == [("spec.selector", SELECTOR_ORDER_IMMUTABLE)]


# --- the order rules at the largest lists the CRD admits (CEL cost, measured by the server) ---
#
# The order rules iterate their lists (``map``), so their cost grows with maxItems: the API
# server must accept the CRD (static estimate, checked when it is installed), and evaluate the
# rules on the longest lists within its runtime budget (per rule and per request). A rule out of
# budget is refused with a cost message, not the rule's own; one that never ran refuses
# nothing. Swapping the last two items makes the comparison walk the whole list.


def _longest_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:063d}" for i in range(count)]


def _swap_last_two(items: list[Any]) -> list[Any]:
    return [*items[:-2], items[-1], items[-2]]


def test_the_order_rule_holds_at_five_thousand_targets_of_the_longest_ids(
    kube: Kube, namespace: str
) -> None:
    kinds = ("Deployment", "Execution")
    targets = [
        {"kind": kinds[i % 2], "id": id_, "targetStatus": "DELETED"}
        for i, id_ in enumerate(_longest_ids("t", 5_000))
    ]
    stored = create(kube, valid_cr(targets=targets), namespace)
    assert len(stored["spec"]["targets"]) == 5_000
    patch = {"spec": {"targets": _swap_last_two(targets)}}
    assert _refused(kube, stored, patch) == [("spec.targets", TARGETS_ORDER_IMMUTABLE)]
    # Updates that keep the spec (kopf's finalizer, labels) pass the rules within budget.
    labelled = _patch(kube, stored, {"metadata": {"labels": {"team": "ml"}}})
    assert labelled["metadata"]["labels"] == {"team": "ml"}
    assert _patch(kube, stored, {"spec": {"targets": targets}})["metadata"]["generation"] == 1


def test_the_order_rule_holds_at_ten_thousand_compact_ids_of_the_longest_kind(
    kube: Kube, namespace: str
) -> None:
    ids = _longest_ids("d", 10_000)
    body = valid_cr()
    del body["spec"]["targets"]
    body["spec"]["deployments"] = {"targetStatus": "STOPPED", "ids": ids}
    stored = create(kube, body, namespace)
    patch = {"spec": {"deployments": {"targetStatus": "STOPPED", "ids": _swap_last_two(ids)}}}
    assert _refused(kube, stored, patch) == [("spec.deployments", _order_message("deployments"))]
    labelled = _patch(kube, stored, {"metadata": {"labels": {"team": "ml"}}})
    assert labelled["metadata"]["labels"] == {"team": "ml"}


def test_the_order_rule_holds_at_the_longest_selector_lists(kube: Kube, namespace: str) -> None:
    excluded = _longest_ids("e", 10_000)
    selector = {
        "kind": "Deployment",
        "targetStatus": "STOPPED",
        "executableIds": _longest_ids("x", 1_000),
        "statuses": ["UNKNOWN", "PENDING", "RUNNING", "COMPLETED", "DEAD", "STOPPING", "STOPPED"],
        "excludeIds": excluded,
    }
    stored = create(kube, valid_cr(selector=selector), namespace)
    patch = {"spec": {"selector": {**selector, "excludeIds": _swap_last_two(excluded)}}}
    assert _refused(kube, stored, patch) == [("spec.selector", SELECTOR_ORDER_IMMUTABLE)]
    labelled = _patch(kube, stored, {"metadata": {"labels": {"team": "ml"}}})
    assert labelled["metadata"]["labels"] == {"team": "ml"}
