"""BulkTerminations for the kubectl plugin's tests: statuses captured from a real API server and
operator (Argo CD's health testdata, ``make gitops-testdata``), and one run of a selector whose
status is made with the engine's own encoder and condition builder."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bulkterm.engine import Condition, Phase, Situation, build_conditions
from bulkterm.engine.selection import encode_ids

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "deploy" / "argocd" / "aiapi.bulkops.dev" / "BulkTermination" / "testdata"

SELECTED = [f"e{i:03d}churn" for i in range(30)]
AT = datetime(2026, 11, 30, 5, 6, 20, tzinfo=UTC)


def captured(name: str) -> dict[str, Any]:
    """``running``, ``failed``, ``complete``, … as captured (metadata, spec and status)."""
    return dict(yaml.safe_load((TESTDATA / f"{name}.yaml").read_text()))


def suspended(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ``spec.suspend: true`` acknowledged, as the operator writes it."""
    obj = copy.deepcopy(obj)
    obj["spec"]["suspend"] = True
    status = obj["status"]
    situation = Situation(Phase.SUSPENDED, "Suspended", status["conditions"][0]["message"])
    previous = [Condition.model_validate(c) for c in status["conditions"]]
    status["conditions"] = [
        c.model_dump(by_alias=True, exclude_none=True, mode="json")
        for c in build_conditions(previous, situation, now=AT, observed_generation=1)
    ]
    return obj


def selector_run(name: str = "churn", namespace: str = "ml-team") -> dict[str, Any]:
    """A selector that chose 30 executions: 25 deleted, 3 deletes in flight, 2 failed."""
    spec = {
        "connection": {"secretRef": {"name": "aicore-service-key", "key": "serviceKey"}},
        "selector": {
            "kind": "Execution",
            "targetStatus": "DELETED",
            "scenarioId": "churn-model",
            "olderThanSeconds": 2592000,
        },
    }
    message = "27/30 finished (25 succeeded, 2 failed); 3 in flight, 0 pending"
    conditions = build_conditions(
        [], Situation(Phase.RUNNING, "Running", message), now=AT, observed_generation=1
    )
    status = {
        "observedGeneration": 1,
        "total": 30,
        "pending": 0,
        "active": 3,
        "succeeded": 25,
        "failed": 2,
        "progress": "27/30",
        "completedIndexes": "0-24",
        "failedIndexes": "25-26",
        "seenIndexes": "27-29",
        "inFlightGroups": [
            {
                "action": "DELETE",
                "sentAt": "2026-11-30T05:06:25Z",
                "indexes": "27-29",
                "accepted": True,
            },
        ],
        "inFlight": [
            {
                "index": i,
                "kind": "Execution",
                "id": SELECTED[i],
                "action": "DELETE",
                "sentAt": "2026-11-30T05:06:25Z",
                "attempt": 1,
            }
            for i in (27, 28, 29)
        ],
        "failures": [
            {
                "index": i,
                "kind": "Execution",
                "id": SELECTED[i],
                "reason": "DeleteRefused",
                "code": "01010090",
                "attempts": 4,
                "message": "the AI API refused the DELETE 4 times: Execution is still running",
            }
            for i in (25, 26)
        ],
        "outcomes": {"Deleted": 25},
        "startTime": "2026-11-30T05:06:20Z",
        "conditions": [
            c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in conditions
        ],
        "selection": {
            "kind": "Execution",
            "targetStatus": "DELETED",
            "resolvedAt": "2026-11-30T05:06:20Z",
            "listed": 36,
            "selected": 30,
            "firstIndex": 0,
            "excluded": {"createdTooRecently": 6},
            "ids": encode_ids(SELECTED),
            "schedules": ["sched-churn"],
            "schedulesPaused": 1,
        },
    }
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec,
        "status": status,
    }
