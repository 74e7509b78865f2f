"""The chart's RBAC, proven by a real API server rather than by reading YAML.

For each scope the chart offers (all namespaces; ``watchNamespaces``), the operator runs out of
cluster with a token of the chart's own ServiceAccount, so it has exactly the rendered RBAC.
One run per scope does real work (a CR that completes, one that fails) while the API server's
audit log records every request the operator makes. Then:

- enough: no request was refused (no 403 in the audit log nor in the operator's log), the
  first status is written within 5 s of creation, and both CRs reach their terminal state;
- no more than enough: every single grant of every Role and ClusterRole of the release is
  removed in turn, and the API server's authorizer (SubjectAccessReview) must then refuse at
  least one request the operator really made. A grant no request needs fails the test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.leases import LeaseTiming
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, secret, timings
from tests.e2e.scrape import scrape_until, service_account_token
from tests.kube import Kube, free_port
from tests.plugins.helm import Release, install_release
from tests.plugins.kube import namespace_for

pytestmark = pytest.mark.e2e
BT = "bulkterminations"

Grant = tuple[str, str, str]  # apiGroup, resource (with /subresource), verb


@dataclass
class Run:
    scope: str
    namespace: str
    release: Release
    operator: OperatorProcess
    requests: list[dict[str, Any]]
    first_status_seconds: float
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)


def _grants(rule: dict[str, Any]) -> list[tuple[Grant, tuple[str, ...]]]:
    names = tuple(rule.get("resourceNames") or ())
    return [
        ((group, resource, verb), names)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def _rules_without(rules: list[dict[str, Any]], dropped: Grant) -> list[dict[str, Any]]:
    kept = []
    for rule in rules:
        for (group, resource, verb), names in _grants(rule):
            if (group, resource, verb) == dropped:
                continue
            kept.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
            if names:
                kept[-1]["resourceNames"] = list(names)
    return kept


def _allowed(kube: Kube, request: dict[str, Any]) -> bool:
    ref = request["objectRef"]
    attributes = {
        "verb": request["verb"],
        "group": ref.get("apiGroup", ""),
        "resource": ref["resource"],
        "subresource": ref.get("subresource", ""),
        "namespace": ref.get("namespace", ""),
        "name": ref.get("name", ""),
    }
    review = kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": request["user"]["username"],
                "groups": request["user"].get("groups", []),
                "resourceAttributes": attributes,
            },
        },
    )
    return bool(review["status"].get("allowed"))


SCOPES = {
    "all-namespaces": {},
    "watchNamespaces": {"watchNamespaces": ["<namespace>"]},
    "all-namespaces-peering": {"replicaCount": 2},
    "watchNamespaces-peering": {"watchNamespaces": ["<namespace>"], "replicaCount": 2},
}


@pytest.fixture(scope="module", params=sorted(SCOPES))
def run(
    request: pytest.FixtureRequest,
    kube: Kube,
    helm_bin: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """One real run per scope, with the audit log of everything the operator asked for."""
    from tests.plugins.simulator import simulator_config

    scope = str(request.param)
    namespace = namespace_for(f"rbac-{scope}")
    kube.create_namespace(namespace)
    workdir = tmp_path_factory.mktemp(f"rbac-{scope}")
    values: dict[str, Any] = {
        key: [namespace] if key == "watchNamespaces" else value
        for key, value in SCOPES[scope].items()
    }
    # Prometheus, as the chart binds it: the run scrapes /metrics as it would.
    scraper = {"kind": "ServiceAccount", "name": "scraper", "namespace": namespace}
    values["metrics"] = {"readers": [scraper]}
    release = install_release(
        helm_bin, kube, workdir, "rbac-" + namespace.rsplit("-", 1)[-1], namespace, values
    )
    # Stopping takes longer than the lease's renewal interval, so a renewal is part of the run.
    stopping = LeaseTiming().renew_every + 1.5
    sim = SimulatorThread(simulator_config(timings=timings(stopping=stopping))).__enter__()
    # The chart's own flags for scope and peering (the rest suit a local process).
    flags = [a for a in release.operator_args() if a.startswith("--peering")]
    metrics_port = free_port()
    operator = OperatorProcess(
        kube,
        namespace,
        workdir,
        *flags,
        "--metrics-port",
        str(metrics_port),
        kubeconfig=release.kubeconfig(),
        namespaced="--all-namespaces" not in release.operator_args(),
        lease_namespace=release.namespace,
    )
    try:
        sim.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
        sim.add_item(Kind.EXECUTION, "exe-run1", Status.RUNNING)
        kube.create(secret(namespace, sim.service_key()))
        mark = kube.plane.audit_mark()
        operator.start()
        created = time.monotonic()
        kube.create(
            bulk_termination(
                namespace,
                "mixed",
                ("Deployment", "dep-run1", "DELETED"),
                ("Execution", "exe-run1", "STOPPED"),
            )
        )
        kube.wait_for(BT, "mixed", lambda o: bool(o.get("status")), namespace=namespace, timeout=30)
        first_status = time.monotonic() - created
        kube.create(bulk_termination(namespace, "missing", ("Deployment", "dep-nope", "STOPPED")))
        objects = {
            name: kube.wait_for(BT, name, has_condition(cond), namespace=namespace, timeout=60)
            for name, cond in (("mixed", "Complete"), ("missing", "Failed"))
        }
        kube.delete(BT, "missing", namespace=namespace)  # the finalizer path, too
        kube.wait_gone(BT, "missing", namespace=namespace, timeout=30)
        token = service_account_token(kube, namespace, "scraper")
        scraped = scrape_until(metrics_port, token, lambda r: r.status_code == 200)
        assert scraped.status_code == 200, scraped.text
        user = f"system:serviceaccount:{namespace}:{release.service_account}"
        requests = [
            e
            for e in kube.plane.audit_events(mark)
            if e.get("user", {}).get("username") == user and e.get("objectRef")
        ]
        yield Run(scope, namespace, release, operator, requests, first_status, objects)
    finally:
        operator.stop()
        sim.__exit__(None, None, None)
        kube.purge(BT, namespace)
        release.helm("uninstall", release.name, "-n", namespace)
        kube.delete("namespaces", namespace, namespace="")


def test_both_resources_reach_their_terminal_state(run: Run) -> None:
    assert run.objects["mixed"]["status"]["progress"] == "2/2"
    assert run.objects["missing"]["status"]["failures"][0]["reason"] == "NotFound"


def test_the_first_status_is_written_within_five_seconds(run: Run) -> None:
    assert run.first_status_seconds < 5, run.first_status_seconds


def test_no_request_of_the_operator_is_refused(run: Run) -> None:
    refused = [
        (e["verb"], e["requestURI"])
        for e in run.requests
        if e.get("responseStatus", {}).get("code") == 403
    ]
    assert refused == []
    log = run.operator.log()
    # A 403 as a status code, not the milliseconds of a timestamp ("14:43:51.403Z").
    refused_in_log = re.search(r"(?<![.\d])403(?!\d)", log)
    assert refused_in_log is None and "Forbidden" not in log, log[-3000:]


def test_the_operator_made_requests_through_its_own_identity(run: Run) -> None:
    resources = {e["objectRef"]["resource"] for e in run.requests}
    assert {"bulkterminations", "secrets", "events"} <= resources


def test_every_granted_rule_is_needed_by_a_real_run(kube: Kube, run: Run) -> None:
    roles = [
        (doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace", ""), doc["rules"])
        for doc in run.release.manifest()
        if doc["kind"] in ("Role", "ClusterRole")
        # For Prometheus to be bound to, not the operator (tests/e2e/test_metrics_auth.py).
        and not doc["metadata"]["name"].endswith("-metrics-reader")
    ]
    assert roles
    distinct = {
        (
            e["verb"],
            e["objectRef"].get("apiGroup", ""),
            e["objectRef"]["resource"],
            e["objectRef"].get("subresource", ""),
            e["objectRef"].get("namespace", ""),
            e["objectRef"].get("name", ""),
        ): e
        for e in run.requests
    }
    unneeded = []
    for kind, name, namespace, rules in roles:
        resource = "rbac.authorization.k8s.io/v1/" + kind
        grants = {grant for rule in rules for grant, _ in _grants(rule)}
        for dropped in sorted(grants):
            kube.patch(
                resource, name, {"rules": _rules_without(rules, dropped)}, namespace=namespace
            )
            try:
                # The authorizer's cache follows the change within moments.
                deadline = time.monotonic() + 5
                while all(_allowed(kube, e) for e in distinct.values()):
                    if time.monotonic() > deadline:
                        unneeded.append((kind, name, dropped))
                        break
                    time.sleep(0.2)
            finally:
                kube.patch(resource, name, {"rules": rules}, namespace=namespace)
    assert unneeded == [], f"grants no request of a real run needs: {unneeded}"
