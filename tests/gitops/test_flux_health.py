"""Flux's verdict on BulkTerminations with the healthCheckExprs of deploy/flux/kustomization.yaml.

The CEL expressions are evaluated, in the order Flux's StatusEvaluator applies them, against
objects captured from a real API server and operator (hack/gitops/capture.py).
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.gitops.readers import (
    FLUX_KUSTOMIZATION,
    ROOT,
    STATUS_OF_CAPTURE,
    captured,
    flux_expressions,
    flux_health,
    load,
)

#: kstatus and Flux's health expressions read every capture alike (``test_kstatus`` checks
#: that they agree object by object).
EXPECTED = STATUS_OF_CAPTURE


@pytest.mark.parametrize(("name", "verdict"), EXPECTED.items(), ids=list(EXPECTED))
def test_flux_verdict_on_each_captured_object(name: str, verdict: str) -> None:
    assert flux_health(captured(name)) == verdict


def test_a_spec_change_after_finish_is_in_progress_through_the_generation_check() -> None:
    # The expressions alone would say Current: Flux's observedGeneration check decides.
    obj = copy.deepcopy(captured("spec-changed"))
    del obj["status"]["observedGeneration"]
    assert flux_health(obj) == "Current"


def test_a_new_object_is_in_progress_through_the_status_default() -> None:
    # status: {observedGeneration: 0} (the CRD's default) against generation 1.
    obj = captured("new")
    assert obj["status"] == {"observedGeneration": 0}
    assert flux_health(obj) == "InProgress"


def test_a_status_without_conditions_is_in_progress_not_an_error() -> None:
    obj = copy.deepcopy(captured("new"))
    obj["status"]["observedGeneration"] = 1
    assert flux_health(obj) == "InProgress"


def test_the_expressions_are_for_the_served_version_of_the_crd() -> None:
    crd = next(
        d
        for d in yaml.safe_load_all((ROOT / "crds" / "bulktermination.yaml").read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    )
    served = {f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"] if v["served"]}
    (entry,) = load(FLUX_KUSTOMIZATION)["spec"]["healthCheckExprs"]
    assert entry["apiVersion"] in served
    assert entry["kind"] == crd["spec"]["names"]["kind"]


def test_the_kustomization_waits_for_the_health_checks() -> None:
    spec = load(FLUX_KUSTOMIZATION)["spec"]
    assert spec["wait"] is True
    assert set(flux_expressions()) == {"current", "failed"}
