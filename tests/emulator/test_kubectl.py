"""kubectl against the emulator: apply, get, wait, patch, explain, delete — no --validate=false."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import yaml

from tests.kube import KubeEmulator
from tests.plugins.kube import ROOT, Kubectl

BT = """\
apiVersion: aiapi.bulkops.dev/v1alpha1
kind: BulkTermination
metadata: {name: nightly, namespace: ml-team}
spec:
  connection: {secretRef: {name: aicore-service-key}}
  targets:
    - {id: aa97b177-9383-4934, targetStatus: STOPPED}
    - {kind: Execution, id: e6f1a0c2d3b4, targetStatus: DELETED}
"""
READY = {
    "observedGeneration": 1,
    "progress": "2/2",
    "failed": 0,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Complete",
            "message": "2/2 terminated",
            "lastTransitionTime": "2026-11-28T20:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


def test_apply_get_wait_delete(kube: KubeEmulator, kubectl: Kubectl) -> None:
    applied = kubectl("apply", "-f", "-", input=BT)
    assert applied.returncode == 0, applied.stderr
    assert "bulktermination.aiapi.bulkops.dev/nightly created" in applied.stdout
    again = kubectl("apply", "-f", "-", input=BT)
    # "configured", not "unchanged": the server defaulted targets[0].kind, so kubectl's
    # three-way merge patch resends the list (a real API server behaves the same).
    assert again.returncode == 0 and "nightly configured" in again.stdout, again.stderr
    before = kube.get("bt", "nightly", namespace="ml-team")["metadata"]["resourceVersion"]
    kubectl("apply", "-f", "-", input=BT, check=True)
    after = kube.get("bt", "nightly", namespace="ml-team")["metadata"]["resourceVersion"]
    assert before == after  # the server saw a no-op

    got = json.loads(
        kubectl("get", "bt", "nightly", "-n", "ml-team", "-o", "json", check=True).stdout
    )
    assert got["spec"]["targets"][0]["kind"] == "Deployment"  # defaulted by the server
    assert (
        yaml.safe_load(
            kubectl("get", "bterm/nightly", "-n", "ml-team", "-o", "yaml", check=True).stdout
        )["metadata"]["uid"]
        == got["metadata"]["uid"]
    )

    threading.Timer(
        0.3, kube.patch_status, ("bt", "nightly", READY), {"namespace": "ml-team"}
    ).start()
    started = time.monotonic()
    waited = kubectl(
        "wait", "bt/nightly", "-n", "ml-team", "--for=condition=Ready", "--timeout=10s"
    )
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    assert time.monotonic() - started < 5

    deleted = kubectl("delete", "bt/nightly", "-n", "ml-team")
    assert deleted.returncode == 0, deleted.stderr
    assert kube.get_or_none("bt", "nightly", namespace="ml-team") is None


def test_printer_columns(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=BT, check=True)
    kube.patch_status("bt", "nightly", READY, namespace="ml-team")
    table = kubectl("get", "bt", "-n", "ml-team", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "PROGRESS", "FAILED", "AGE"]
    assert table[1].split()[:4] == ["nightly", "Complete", "2/2", "0"]
    wide = kubectl("get", "aiapi", "-A", "-o", "wide", check=True).stdout.splitlines()
    assert wide[0].split() == [
        "NAMESPACE",
        "NAME",
        "STATUS",
        "PROGRESS",
        "FAILED",
        "AGE",
        "ACTIVE",
        "START",
        "COMPLETED",
        "MESSAGE",
    ]
    assert wide[1].split()[:5] == ["ml-team", "nightly", "Complete", "2/2", "0"]
    assert wide[1].rstrip().endswith("2/2 terminated")


def test_get_watch_prints_rows(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=BT, check=True)
    threading.Timer(
        0.3, kube.patch_status, ("bt", "nightly", READY), {"namespace": "ml-team"}
    ).start()
    watched = kubectl("get", "bt", "-n", "ml-team", "--watch", "--request-timeout=1s")
    lines = watched.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PROGRESS", "FAILED", "AGE"]
    assert lines[-1].split()[:4] == ["nightly", "Complete", "2/2", "0"]


def test_wait_for_deletion_with_a_finalizer(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=BT, check=True)
    kube.patch(
        "bt", "nightly", {"metadata": {"finalizers": ["example.com/hold"]}}, namespace="ml-team"
    )
    kubectl("delete", "bt/nightly", "-n", "ml-team", "--wait=false", check=True)
    threading.Timer(
        0.3, kube.remove_finalizers, ("bt", "nightly"), {"namespace": "ml-team"}
    ).start()
    waited = kubectl("wait", "bt/nightly", "-n", "ml-team", "--for=delete", "--timeout=10s")
    assert waited.returncode == 0, waited.stderr


def test_patch_and_immutability(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=BT, check=True)
    labelled = kubectl(
        "patch",
        "bt/nightly",
        "-n",
        "ml-team",
        "--type=merge",
        "-p",
        '{"metadata": {"labels": {"team": "ml"}}}',
    )
    assert labelled.returncode == 0, labelled.stderr
    refused = kubectl(
        "patch", "bt/nightly", "-n", "ml-team", "--type=merge", "-p", '{"spec": {"batchSize": 5}}'
    )
    assert refused.returncode != 0
    assert "spec is immutable" in refused.stderr


def test_apply_validates_on_the_server(kubectl: Kubectl) -> None:
    bad = BT.replace("targetStatus: STOPPED", "targetStatus: PAUSED")
    refused = kubectl("apply", "-f", "-", input=bad)
    assert refused.returncode != 0
    assert "spec.targets[0].targetStatus" in refused.stderr
    unknown = BT.replace("spec:\n", "spec:\n  speed: fast\n")
    strict = kubectl("apply", "-f", "-", input=unknown)
    assert strict.returncode != 0
    assert 'unknown field "spec.speed"' in strict.stderr


def test_explain(kubectl: Kubectl) -> None:
    explained = kubectl("explain", "bt.spec.targets.targetStatus")
    assert explained.returncode == 0, explained.stderr
    assert "STOPPED stops a running item" in explained.stdout


def test_examples_apply(kubectl: Kubectl) -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        applied = kubectl("apply", "-f", str(path))
        assert applied.returncode == 0, f"{path.name}: {applied.stderr}"


def test_crd_apply_and_established(kube_factory: Callable[..., KubeEmulator]) -> None:
    bare = kube_factory()  # no CRD installed yet
    applied = bare.kubectl("apply", "-f", str(ROOT / "crds" / "bulktermination.yaml"))
    assert applied.returncode == 0, applied.stderr
    waited = bare.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=10s",
        "crd/bulkterminations.aiapi.bulkops.dev",
    )
    assert waited.returncode == 0, waited.stderr
    listed = bare.kubectl("api-resources", "--api-group=aiapi.bulkops.dev")
    assert "bt,bterm" in listed.stdout
