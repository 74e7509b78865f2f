"""What kstatus itself (sigs.k8s.io/cli-utils, status.Compute; built from hack/kstatus) says
about BulkTerminations captured from a real API server and operator. Flux's health checks
without healthCheckExprs, and kpt, read a resource this way.

kstatus never reads Complete or Failed: it reads ``observedGeneration`` against
``metadata.generation``, then ``Reconciling`` (InProgress) and ``Stalled`` (Failed), then, for
a kind it has no rules for, ``Ready`` (True: Current, False: InProgress); with no condition at
all the resource is Current. So a fresh object must read ``observedGeneration: 0`` from the API
server (the CRD's defaults), with no status and with ``status: {}`` alike: those cases are
asked of the real API server here, not captured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.crd.samples import valid_cr
from tests.crd.server import create
from tests.gitops.readers import (
    STATUS_OF_CAPTURE,
    TESTDATA,
    GoMissing,
    argocd_health,
    captured,
    flux_health,
    kstatus,
)
from tests.kube import Kube

#: kstatus and Flux's health expressions read every capture alike (``test_kstatus`` checks
#: that they agree object by object).
EXPECTED = STATUS_OF_CAPTURE


@pytest.fixture(scope="module")
def verdicts() -> Iterator[dict[str, dict[str, str]]]:
    try:
        yield kstatus(*sorted(TESTDATA.glob("*.yaml")))
    except GoMissing as e:
        pytest.skip(f"Go is not installed, so hack/kstatus cannot be built: {e}")


@pytest.mark.parametrize(("name", "status"), EXPECTED.items(), ids=list(EXPECTED))
def test_kstatus_on_each_captured_object(
    verdicts: dict[str, dict[str, str]], name: str, status: str
) -> None:
    assert verdicts[f"{name}.yaml"]["status"] == status


def test_every_captured_object_is_judged(verdicts: dict[str, dict[str, str]]) -> None:
    assert set(verdicts) == {f"{name}.yaml" for name in EXPECTED}


def test_a_new_object_waits_on_its_first_observed_generation(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["new.yaml"]["message"] == (
        "BulkTermination generation is 1, but latest observed generation is 0"
    )


def test_a_stalled_run_fails_with_the_stalled_message(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["stalled.yaml"]["message"] == "Secret ml-team/no-such-secret does not exist"


def test_a_running_run_shows_its_progress(verdicts: dict[str, dict[str, str]]) -> None:
    assert verdicts["running.yaml"]["message"] == (
        "1/3 finished (1 succeeded, 0 failed); 2 in flight, 0 pending"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_flux_expressions_agree_with_kstatus(
    verdicts: dict[str, dict[str, str]], name: str
) -> None:
    assert flux_health(captured(name)) == verdicts[f"{name}.yaml"]["status"]


def test_a_complete_run_is_current_through_its_ready_condition(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["complete.yaml"] == {"status": "Current", "message": "Resource is Ready"}


def _created_with_status(kube: Kube, namespace: str, status: dict[str, Any] | None) -> str:
    body = valid_cr()
    if status is not None:
        body["status"] = status
    return str(create(kube, body, namespace)["metadata"]["name"])


def _no_status(kube: Kube, namespace: str) -> str:
    return _created_with_status(kube, namespace, None)


def _empty_status(kube: Kube, namespace: str) -> str:
    # The API server drops the status of a create (the status subresource is its own).
    return _created_with_status(kube, namespace, {})


def _status_replaced_by_empty(kube: Kube, namespace: str) -> str:
    # The one way to store `status: {}`: an update of the status subresource (a client's
    # PUT). The status default applies to a missing status only; observedGeneration's own
    # default covers this one.
    name = _no_status(kube, namespace)
    stored = kube.get("bt", name, namespace=namespace)
    path = kube.path("bt", name, namespace=namespace, subresource="status")
    kube.request("PUT", path, body={**stored, "status": {}})
    return name


@pytest.mark.parametrize(
    "make", [_no_status, _empty_status, _status_replaced_by_empty],
    ids=["no status", "created with status {}", "status replaced by {}"],
)  # fmt: skip
def test_a_fresh_object_reads_in_progress_before_the_operator_writes(
    kube: Kube, namespace: str, tmp_path: Path, make: Any
) -> None:
    """As the API server returns it to Flux, kpt or ``kubectl``: generation 1 not yet
    observed, whatever status the object was created or left with (kstatus reads an object
    without ``observedGeneration`` and without conditions as Current)."""
    name = make(kube, namespace)
    obj = kube.get("bt", name, namespace=namespace)
    assert obj["status"] == {"observedGeneration": 0}
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(obj))
    try:
        verdict = kstatus(path)["fresh.yaml"]
    except GoMissing as e:
        pytest.skip(f"Go is not installed, so hack/kstatus cannot be built: {e}")
    assert verdict == {
        "status": "InProgress",
        "message": "BulkTermination generation is 1, but latest observed generation is 0",
    }
    assert flux_health(obj) == "InProgress"
    assert argocd_health(obj).status == "Progressing"
