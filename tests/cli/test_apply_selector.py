"""``bulkterm apply`` with ``spec.selector``: resolved once before any write, recorded in the
status, schedules paused first, too broad a selector refused with nothing sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.cli.test_apply import bulkterm

SELECTOR = {
    "kind": "Execution",
    "targetStatus": "DELETED",
    "scenarioId": "churn-model",
    "olderThanSeconds": 2_592_000,
    "pauseExecutionSchedules": True,
}


def _manifest(tmp_path: Path, selector: dict[str, Any], **spec: Any) -> str:
    doc = {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": "churn-cleanup"},
        "spec": {"selector": selector, **spec},
    }
    path = tmp_path / "selector.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _status(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)
    status: dict[str, Any] = doc["status"]
    return status


def test_a_selector_resolves_once_pauses_its_schedule_and_completes(tmp_path: Path) -> None:
    result = bulkterm("apply", "-f", _manifest(tmp_path, SELECTOR), "--simulator", "-o", "json")
    assert result.returncode == 0, result.stderr
    status = _status(result.stdout)
    selection = status["selection"]
    assert (selection["listed"], selection["selected"]) == (30, 24)
    assert selection["excluded"] == {"createdTooRecently": 6}
    assert (selection["schedules"], selection["schedulesPaused"]) == (["churn-model-nightly"], 1)
    assert status["total"] == status["succeeded"] == 24
    assert "1 execution schedule(s) set INACTIVE before any target was sent" in result.stderr
    assert "patch executionSchedules 1" in result.stderr


def test_the_output_records_what_restores_the_run(tmp_path: Path) -> None:
    result = bulkterm("apply", "-f", _manifest(tmp_path, SELECTOR), "--simulator", "-o", "json")
    assert result.returncode == 0, result.stderr
    status = _status(result.stdout)
    assert status["selection"]["schedulesActive"] == ["churn-model-nightly"]
    restore = status["restore"]
    assert (restore["executions"], restore["deployments"], restore["unknown"]) == (24, 0, 0)
    assert restore["configurations"] >= 1 and restore["points"]


def test_a_selector_matching_more_than_max_targets_sends_nothing(tmp_path: Path) -> None:
    path = _manifest(tmp_path, {**SELECTOR, "maxTargets": 10})
    result = bulkterm("apply", "-f", path, "--simulator", "-o", "json")
    assert result.returncode == 1
    failed = next(c for c in _status(result.stdout)["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "SelectorMatchedTooMany"
    assert "matched 24 items, more than its maxTargets of 10" in failed["message"]
    assert "bulk_patch" not in result.stderr and "patch executionSchedules" not in result.stderr


def test_a_dry_run_selector_plans_without_pausing_or_sending(tmp_path: Path) -> None:
    result = bulkterm(
        "apply", "-f", _manifest(tmp_path, SELECTOR), "--simulator", "--dry-run", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    status = _status(result.stdout)
    assert status["selection"]["schedulesPaused"] == 0
    plan = status["plan"]
    assert sum(plan.get(a, 0) for a in ("stop", "delete", "wait", "skip", "fail")) == 24
    for write in ("bulk_patch", "patch executionSchedules", "delete executions"):
        assert write not in result.stderr


def test_listed_targets_come_first_and_are_not_selected_twice(tmp_path: Path) -> None:
    listed = [{"kind": "Execution", "id": "esim0000000000000", "targetStatus": "DELETED"}]
    path = _manifest(tmp_path, SELECTOR, targets=listed)
    result = bulkterm("apply", "-f", path, "--simulator", "-o", "json")
    assert result.returncode == 0, result.stderr
    selection = _status(result.stdout)["selection"]
    assert selection["firstIndex"] == 1
    assert selection["selected"] == 23
    assert selection["excluded"]["alsoListed"] == 1
