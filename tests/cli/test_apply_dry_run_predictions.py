"""``bulkterm apply --dry-run`` predicts the failures a real run would report, and exits 1
when it predicts any (0 only for a plan that predicts none)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest


def _status(stdout: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(stdout)["status"]
    return status


def _writes(sim: SimulatorThread) -> list[str]:
    return [k for k, n in sim.counters.items() if n and k.startswith(("PATCH", "DELETE"))]


def test_a_dry_run_predicting_a_missing_stopped_target_not_found_exits_1(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-miss", "STOPPED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--dry-run", "-o", "json", stdin=text
    )
    assert result.returncode == 1, result.stderr
    status = _status(result.stdout)
    plan = status["plan"]
    assert (plan["fail"], plan["failures"], plan["stop"]) == (1, {"NotFound": 1}, 1)
    assert "1 would fail: NotFound 1" in result.stderr
    assert "job: 1 would fail: NotFound 1 (dep-miss)" in result.stderr
    assert status["failed"] == 0  # a dry run fails nothing: it predicts
    assert _writes(simulator_thread) == []


def test_a_dry_run_of_deployments_none_of_which_exists_predicts_no_targets_found(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(
        *[("Deployment", f"dep-gone{i}", "STOPPED") for i in range(1, 5)],
        ("Deployment", "dep-gone5", "DELETED"),
    )
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--dry-run", "-o", "json", stdin=text
    )
    assert result.returncode == 1, result.stderr
    plan = _status(result.stdout)["plan"]
    assert (plan["fail"], plan["failures"]) == (5, {"NotFound": 5})
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("job: Complete DryRun")]
    assert "5 would fail: NotFound 5" in line
    assert "none of the deployments was found in resource group 'default'" in line
    assert "NoTargetsFound" in line
    assert _writes(simulator_thread) == []


def test_the_dry_run_predicts_the_failures_the_real_run_then_reports(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-stp1", Status.STOPPED)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(
        ("Deployment", "dep-run1", "STOPPED"),
        ("Deployment", "dep-stp1", "DELETED"),
        ("Deployment", "dep-miss1", "STOPPED"),  # fails NotFound
        ("Deployment", "dep-miss2", "DELETED"),  # absent is what DELETED asks: no failure
        ("Execution", "exe-gone1", "DELETED"),  # no execution exists at all: NoTargetsFound
        ("Execution", "exe-gone2", "STOPPED"),
    )
    args = ("apply", "-f", "-", "--service-key", str(key), "-o", "json")
    dry = bulkterm(*args, "--dry-run", stdin=text)
    assert dry.returncode == 1, dry.stderr
    assert _writes(simulator_thread) == []
    real = bulkterm(*args, stdin=text)
    assert real.returncode == 1, real.stderr
    plan = _status(dry.stdout)["plan"]
    final = _status(real.stdout)
    assert plan["failures"] == dict(Counter(f["reason"] for f in final["failures"]))
    assert plan["fail"] == final["failed"] == 3
    failed = next(c for c in final["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "NoTargetsFound"
    complete = next(c for c in _status(dry.stdout)["conditions"] if c["type"] == "Complete")
    assert "NoTargetsFound" in complete["message"]
