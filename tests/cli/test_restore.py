"""``bulkterm restore -f``: from a saved ``bulkterm apply -o json`` output, against the
simulator over real HTTP: one new deployment per terminated one, from its configuration;
nothing twice; nothing for what was not running; asks first."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest
from tests.plugins.simulator import FAST_TIMINGS

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
pytestmark = pytest.mark.simulator(bulk_updates=True)


def _terminated(sim: SimulatorThread, tmp_path: Path) -> tuple[Path, Path]:
    """Three RUNNING deployments of two configurations and one STOPPED one, all DELETED by
    ``bulkterm apply``; its output saved."""
    for n, configuration in enumerate(["cfg-a", "cfg-a", "cfg-b"]):
        sim.add_item(D, f"dep-run{n}", Status.RUNNING, configuration_id=configuration)
    sim.add_item(D, "dep-off0", Status.STOPPED, configuration_id="cfg-c")
    key = sim.write_service_key(tmp_path / "key.json")
    spec = [("Deployment", i, "DELETED") for i in ("dep-run0", "dep-run1", "dep-run2", "dep-off0")]
    path = tmp_path / "job.yaml"
    path.write_text(manifest(*spec, pollIntervalSeconds=1))
    result = bulkterm("apply", "-f", str(path), "--service-key", str(key), "-o", "json")
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "job.status.json"
    saved.write_text(result.stdout)
    assert sim.items(D) == []
    return saved, key


def _restore(saved: Path, key: Path, *more: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return bulkterm("restore", "-f", str(saved), "--service-key", str(key), *more, stdin=stdin)


def test_a_restore_brings_back_one_deployment_per_deleted_running_one_from_its_configuration(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    result = _restore(saved, key, "--yes")
    assert result.returncode == 0, result.stderr
    assert "create 3 deployments from 2 configuration(s): cfg-a x2, cfg-b x1" in result.stdout
    assert "left alone, WasNotRunning: 1 (dep-off0)" in result.stdout
    created = [line for line in result.stdout.splitlines() if " → " in line]
    assert len(created) == 3 and any(line.startswith("Deployment dep-run0 → ") for line in created)
    items = simulator_thread.items(D)
    assert sorted(i.configuration_id for i in items) == ["cfg-a", "cfg-a", "cfg-b"]
    assert all(i.id not in {"dep-run0", "dep-run1", "dep-run2"} for i in items)


def test_a_second_restore_creates_nothing(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    assert _restore(saved, key, "--yes").returncode == 0
    again = _restore(saved, key, "--yes")
    assert again.returncode == 0, again.stderr
    assert "left alone, AlreadyRestored: 3" in again.stdout
    assert "nothing to restore" in again.stdout
    assert len(simulator_thread.items(D)) == 3


def test_a_declined_plan_creates_nothing(simulator_thread: SimulatorThread, tmp_path: Path) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    result = _restore(saved, key, stdin="n\n")
    assert result.returncode == 1
    assert "Restore? [y/N]" in result.stdout
    assert "not restored; nothing changed" in result.stderr
    assert simulator_thread.items(D) == []


def test_a_creation_whose_answer_was_lost_is_found_not_made_twice(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    """The journal holds a creation requested but never answered (the process died after the
    POST): the next restore finds the item it made instead of making another."""
    saved, key = _terminated(simulator_thread, tmp_path)
    journal = tmp_path / "job.status.json.restore-journal.json"
    result = _restore(saved, key, "--yes")
    assert result.returncode == 0, result.stderr
    written = json.loads(journal.read_text())
    for entry in written["entries"]:
        entry["newId"] = None  # as if no answer had been recorded
    journal.write_text(json.dumps(written))
    again = _restore(saved, key, "--yes")
    assert again.returncode == 0, again.stderr
    assert "3 creation(s) of an earlier restore settled from the AI API" in again.stdout
    assert len(simulator_thread.items(D)) == 3


def test_a_file_without_a_restore_record_says_so(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved = tmp_path / "empty.json"
    saved.write_text(json.dumps({"kind": "BulkTermination", "metadata": {"name": "x"},
        "spec": {"deployments": {"targetStatus": "STOPPED", "ids": ["dep-0001"]}}, "status": {
        "conditions": [{"type": "Complete", "status": "True", "reason": "Completed",
                        "message": "done", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))  # fmt: skip
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    result = _restore(saved, key, "--yes")
    assert result.returncode == 0, result.stderr
    assert "the run recorded nothing to restore" in result.stdout


def test_a_damaged_journal_stops_the_restore_naming_it(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    (tmp_path / "job.status.json.restore-journal.json").write_text("{not json")
    result = _restore(saved, key, "--yes")
    assert result.returncode == 2
    assert "restore-journal.json is unreadable" in result.stderr
    assert "Traceback" not in result.stderr
    assert simulator_thread.items(D) == []


def test_a_saved_status_without_its_spec_is_refused_saying_what_to_save(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    whole = json.loads(saved.read_text())
    del whole["spec"]
    saved.write_text(json.dumps(whole))
    result = _restore(saved, key, "--yes")
    assert result.returncode == 2
    assert "holds no spec, so the recorded targets cannot be named" in result.stderr
    assert simulator_thread.items(D) == []


@pytest.mark.simulator(timings=replace(FAST_TIMINGS, execution_run_seconds=None))
def test_executions_are_run_again_only_when_asked(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(E, "exe-run0", Status.RUNNING, configuration_id="cfg-train")
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    path = tmp_path / "job.yaml"
    path.write_text(manifest(("Execution", "exe-run0", "STOPPED"), pollIntervalSeconds=1))
    applied = bulkterm("apply", "-f", str(path), "--service-key", str(key), "-o", "json")
    assert applied.returncode == 0, applied.stderr
    saved = tmp_path / "job.status.json"
    saved.write_text(applied.stdout)

    without = _restore(saved, key, "--yes")
    assert without.returncode == 0, without.stderr
    assert "left alone, ExecutionsNotAsked: 1 (exe-run0)" in without.stdout
    assert len(simulator_thread.items(E)) == 1

    asked = _restore(saved, key, "--yes", "--executions")
    assert asked.returncode == 0, asked.stderr
    assert "create 1 executions from 1 configuration(s): cfg-train x1" in asked.stdout
    new = [i for i in simulator_thread.items(E) if i.id != "exe-run0"]
    assert [i.configuration_id for i in new] == ["cfg-train"]


def test_an_unusable_service_key_is_refused_naming_it_and_nothing_is_created(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, _ = _terminated(simulator_thread, tmp_path)
    bad = tmp_path / "bad-key.json"
    bad.write_text('{"clientid": "x"}')
    result = _restore(saved, bad, "--yes")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert simulator_thread.items(D) == []


def test_a_journal_of_another_run_is_not_used(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    saved, key = _terminated(simulator_thread, tmp_path)
    journal = tmp_path / "job.status.json.restore-journal.json"
    journal.write_text(json.dumps({"source": "/elsewhere/other.json other", "entries": []}))
    result = _restore(saved, key, "--yes")
    assert result.returncode == 2
    assert "belongs to '/elsewhere/other.json other'" in result.stderr
    assert simulator_thread.items(D) == []
