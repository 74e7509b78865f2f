"""The CRD as a kubectl user meets it: applied, explained, listed with its printer columns."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.crd.samples import CRD_PATH
from tests.kube import Kube
from tests.plugins.kube import Kubectl


def test_kubectl_apply_of_the_crd_succeeds(kubectl: Kubectl) -> None:
    """Server-side validation of the CRD itself, the way the README installs it."""
    applied = kubectl("apply", "-f", str(CRD_PATH))
    assert applied.returncode == 0, applied.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/bulkterminations." in applied.stdout


def test_kubectl_explain_lists_the_spec_fields(kubectl: Kubectl) -> None:
    # The server publishes a new CRD's OpenAPI a moment after it is Established.
    deadline = time.monotonic() + 30
    while (explained := kubectl("explain", "bt.spec", "--recursive")).returncode != 0:
        assert time.monotonic() < deadline, explained.stderr
        time.sleep(0.2)
    listing = explained.stdout.split("FIELDS:", 1)[1]
    fields = {line.split()[0] for line in listing.splitlines() if line.strip()}
    assert {
        "targets",
        "kind",
        "id",
        "targetStatus",
        "connection",
        "secretRef",
        "resourceGroup",
        "batchSize",
        "pollIntervalSeconds",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimitPerTarget",
        "unknownGracePeriodSeconds",
        "dryRun",
    } <= fields


def _ago(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _ago(timedelta(minutes=1)),
    }


def test_kubectl_get_shows_status_progress_and_failures(
    kube: Kube, kubectl: Kubectl, namespace: str, stored: dict[str, Any]
) -> None:
    name = stored["metadata"]["name"]
    running = {
        "progress": "50/120",
        "failed": 5,
        "active": 30,
        "conditions": [_ready("False", "Running", "50/120 terminated, 5 failed")],
    }
    kube.patch_status("bt", name, running, namespace=namespace)
    header, row = kubectl("get", "bt", "-n", namespace, check=True).stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "PROGRESS", "FAILED", "AGE"]
    assert row.split()[:4] == [name, "Running", "50/120", "5"]


def test_kubectl_get_wide_adds_active_start_completed_and_message(
    kube: Kube, kubectl: Kubectl, namespace: str, stored: dict[str, Any]
) -> None:
    name = stored["metadata"]["name"]
    complete = {
        "progress": "120/120",
        "failed": 0,
        "active": 0,
        "startTime": _ago(timedelta(days=3, minutes=30)),
        "completionTime": _ago(timedelta(days=2, minutes=30)),
        "conditions": [_ready("True", "Complete", "120/120 terminated")],
    }
    kube.patch_status("bt", name, complete, namespace=namespace)
    wide = kubectl("get", "bt", "-n", namespace, "-o", "wide", check=True).stdout
    header, row = wide.splitlines()
    assert header.split() == [
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
    cells = row.split()
    assert cells[:4] == [name, "Complete", "120/120", "0"]
    assert cells[5:8] == ["0", "3d", "2d"]
    assert row.rstrip().endswith("120/120 terminated")
