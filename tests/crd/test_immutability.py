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
    "Invalid value: spec is immutable once created; create a new BulkTermination to change "
    "connection, batching, deadlines, dryRun or the form of the targets"
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


def test_reordered_targets_are_accepted_a_known_hole(kube: Kube, stored: dict[str, Any]) -> None:
    """A known hole, kept visible: CEL equality of list-maps ignores order on the API server.

    ``self == oldSelf`` cannot tell a reordered ``spec.targets`` (and no cheap rule can: an
    ordered comparison needs ``map()`` over up to 10,000 items, a cost risk for the CRD). The
    object's ``metadata.generation`` moves, though, and with everything else immutable a
    generation above the one a run started with can only mean this: the operator must not
    trust stored indexes then.
    """
    reordered = list(reversed(stored["spec"]["targets"]))
    updated = _patch(kube, stored, {"spec": {"targets": reordered}})
    assert updated["spec"]["targets"] == reordered
    assert updated["metadata"]["generation"] == 2


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


def test_reordered_compact_ids_are_accepted_the_same_known_hole(
    kube: Kube, stored_compact: dict[str, Any]
) -> None:
    """Set-typed lists compare without order in CEL too; the generation moves, and the
    operator refuses to resume on a generation above the one its run started with."""
    patch = {"spec": {"deployments": {"targetStatus": "STOPPED", "ids": ["d0002", "d0001"]}}}
    updated = _patch(kube, stored_compact, patch)
    assert updated["spec"]["deployments"]["ids"] == ["d0002", "d0001"]
    assert updated["metadata"]["generation"] == 2
