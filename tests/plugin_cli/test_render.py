"""``kubectl bulkterm status`` as text: what a person reads of a BulkTermination's status."""

from __future__ import annotations

import copy
import io
import json

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from bulkterm.cli import main as bulkterm
from bulkterm.plugin.command import main as kubectl_bulkterm
from bulkterm.plugin.render import UnreadableStatus, as_data, ending, record_of, render
from tests.plugin_cli.samples import SELECTED, captured, selector_run, suspended


def text(obj: dict[str, object], *, all_ids: bool = False) -> list[str]:
    out = io.StringIO()
    render(obj, Console(file=out, width=100, highlight=False, soft_wrap=True), all_ids=all_ids)
    return out.getvalue().splitlines()


def test_a_running_run_shows_ready_progress_and_what_is_in_flight_by_id() -> None:
    obj = captured("running")
    sent = obj["status"]["inFlightGroups"][0]["sentAt"]  # the capture's own time
    lines = text(obj)
    assert lines[0] == "BulkTermination ml-team/running  (generation 1, observed 1)"
    assert (
        "Ready:      False Running: 1/3 finished (1 succeeded, 0 failed); 2 in flight, 0 pending"
        in lines
    )
    assert "Suspended:  no" in lines
    assert "Outcomes:   AlreadyStopped 1" in lines
    assert f"  STOP 2, sent {sent} (acceptance not yet known): d-slow-1, d-slow-2" in lines
    assert not any(line.startswith("Finished:") for line in lines)


def test_a_failed_run_shows_its_verdict_and_its_failures_grouped_by_reason() -> None:
    lines = text(captured("failed"))
    assert (
        "Finished:   Failed FailedTargets: 1 of 2 targets failed, 1 succeeded (see failures)"
        in lines
    )
    at = lines.index("Failed (1), by reason:")
    assert lines[at + 1] == "  NotFound 1: d-never-existed"
    assert lines[at + 2].startswith("    never seen in this run: the item does not exist")


def test_a_suspended_run_says_so_and_what_it_means() -> None:
    lines = text(suspended(captured("running")))
    assert "Suspended:  yes: nothing new will be sent; in-flight actions are still watched" in lines
    assert any(line.startswith("Ready:      False Suspended: ") for line in lines)


def test_a_suspend_not_yet_acknowledged_is_told_apart() -> None:
    obj = captured("running")
    obj["spec"]["suspend"] = True
    assert (
        "Suspended:  requested (spec.suspend: true), not yet acknowledged by the operator"
        in text(obj)
    )


def test_the_frozen_selection_is_shown_as_readable_ids() -> None:
    lines = text(selector_run())
    at = lines.index("Selection (frozen when the run started):")
    assert lines[at + 1] == (
        "  selector: 30 executions chosen of 36 listed (left out: 6 createdTooRecently); "
        "1 execution schedule(s) to pause first"
    )
    assert lines[at + 2] == "  resolved 2026-11-30T05:06:20Z; targets 0-29; schedules paused 1/1"
    assert lines[at + 3] == (
        f"  ids: {', '.join(SELECTED[:20])}, +10 more (--all-ids lists them all)"
    )
    everything = text(selector_run(), all_ids=True)
    assert f"  ids: {', '.join(SELECTED)}" in everything


def test_in_flight_and_failed_targets_of_a_selection_are_named_by_id() -> None:
    lines = text(selector_run())
    assert (
        "  DELETE 3, sent 2026-11-30T05:06:25Z (accepted): e027churn, e028churn, e029churn" in lines
    )
    assert "  DeleteRefused 2: e025churn, e026churn" in lines
    assert (
        "    the AI API refused the DELETE 4 times: Execution is still running (AI API code 01010090)"
        in lines
    )


def test_long_groups_are_cut_unless_all_ids_are_asked_for() -> None:
    obj = selector_run()
    obj["status"]["inFlightGroups"][0]["indexes"] = "20-29"
    assert (
        "  DELETE 10, sent 2026-11-30T05:06:25Z (accepted): e020churn, e021churn, e022churn, e023churn, e024churn, +5 more"
        in text(obj)
    )
    assert any(line.endswith("e028churn, e029churn") for line in text(obj, all_ids=True))


def test_failures_beyond_the_itemised_ones_are_counted() -> None:
    obj = selector_run()
    obj["status"]["failed"] = 5
    obj["status"]["succeeded"] = 22
    lines = text(obj)
    assert (
        "  3 more not itemised (status.failures keeps the first 2; status.failedIndexes has them all)"
        in lines
    )


def test_a_new_object_says_the_operator_has_not_visited_it() -> None:
    lines = text(captured("new"))
    assert "not yet visited by the operator: no status written" in lines


def test_a_status_of_an_older_generation_says_so() -> None:
    obj = captured("running")
    obj["metadata"]["generation"] = 2
    assert (
        "the operator has not yet acted on generation 2; this status describes generation 1"
        in text(obj)
    )


def test_without_a_readable_spec_in_flight_targets_are_shown_as_indexes() -> None:
    obj = captured("running")
    obj["spec"] = {"unknownForm": True}
    sent = obj["status"]["inFlightGroups"][0]["sentAt"]
    assert f"  STOP 2, sent {sent} (acceptance not yet known): 0-1" in text(obj)


def test_an_unreadable_status_is_one_error_not_a_traceback() -> None:
    obj = captured("running")
    obj["status"]["total"] = "many"
    with pytest.raises(UnreadableStatus, match=r"status\.total"):
        record_of(obj)


@pytest.mark.parametrize(("name", "expected"), [("complete", "Complete"), ("failed", "Failed"),
                                                ("running", None), ("new", None)])  # fmt: skip
def test_a_run_is_finished_when_complete_or_failed_is_true(name: str, expected: str | None) -> None:
    end = ending(record_of(captured(name)))
    assert (end.type if end else None) == expected


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_output_as_data_round_trips_the_status(output: str) -> None:
    obj = selector_run()
    before = copy.deepcopy(obj)
    data = as_data(obj, output)
    loaded = json.loads(data) if output == "json" else yaml.safe_load(data)
    assert loaded["status"] == before["status"]
    assert loaded["metadata"] == {"name": "churn", "namespace": "ml-team", "generation": 1}
    assert (loaded["apiVersion"], loaded["kind"]) == (
        "aiapi.bulkops.dev/v1alpha1",
        "BulkTermination",
    )


def test_the_commands_are_bulkterm_commands_too() -> None:
    listed = CliRunner().invoke(bulkterm, ["--help"]).output
    for command in ("apply", "operator", "simulator", "split", "status", "suspend", "resume"):
        assert f"  {command} " in listed
    plugin = CliRunner().invoke(kubectl_bulkterm, ["--help"]).output
    for command in ("split", "status", "suspend", "resume"):
        assert f"  {command} " in plugin


@pytest.mark.parametrize("command", ["status", "suspend", "resume"])
def test_no_kubeconfig_is_one_line_and_exit_2(command: str, tmp_path: object) -> None:
    result = CliRunner().invoke(
        kubectl_bulkterm,
        [command, "x", "--kubeconfig", "/nonexistent/kubeconfig"],
        env={"KUBECONFIG": None},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no usable kubeconfig (/nonexistent/kubeconfig): ")
    assert result.stderr.count("\n") == 1
