"""``kubectl bulkterm`` on a real API server, run by the real kubectl: the ``kubectl-bulkterm``
executable is found on the PATH (krew's convention) and reads and patches BulkTerminations
with the kubeconfig kubectl uses. No operator runs: each BulkTermination gets a status captured
from a real operator (or made with the engine's own encoder) through its /status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kube import Kube
from tests.kube.client import KUBECTL
from tests.plugin_cli.samples import SELECTED, captured, selector_run

BT = "bulkterminations"
EXECUTABLE = Path(sys.executable).parent / "kubectl-bulkterm"
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A directory holding only ``kubectl-bulkterm``, as krew's bin directory would."""
    assert EXECUTABLE.exists(), f"{EXECUTABLE} is missing: run `make install`"
    folder = tmp_path / "krew-bin"
    folder.mkdir()
    (folder / "kubectl-bulkterm").symlink_to(EXECUTABLE)
    return folder


def kubectl_bulkterm(
    kube: Kube, plugin_dir: Path, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = kube.env(kubeconfig, PATH=f"{plugin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return subprocess.run(
        [KUBECTL, "bulkterm", *args], env=env, capture_output=True, text=True, timeout=60
    )


def put(kube: Kube, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create the object without its status, then write the status as the operator would."""
    name = obj["metadata"]["name"]
    kube.create(
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {"name": name, "namespace": namespace},
            "spec": obj["spec"],
        }
    )
    return kube.patch_status(BT, name, obj["status"], namespace=namespace)


def test_kubectl_finds_the_plugin_on_the_path(kube: Kube, plugin_dir: Path) -> None:
    env = kube.env(PATH=f"{plugin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    listed = subprocess.run(
        [KUBECTL, "plugin", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert str(plugin_dir / "kubectl-bulkterm") in listed.stdout


@pytest.mark.namespace("ml-team")
def test_status_prints_ready_progress_in_flight_failures_and_the_selection(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    put(kube, namespace, selector_run())
    result = kubectl_bulkterm(kube, plugin_dir, "status", "churn", "-n", namespace)
    assert result.returncode == 0, result.stderr
    # The README's example is this run's output, word for word.
    assert f"$ kubectl bulkterm status churn -n ml-team\n{result.stdout}```" in README.read_text()
    lines = result.stdout.splitlines()
    assert lines[0] == f"BulkTermination {namespace}/churn  (generation 1, observed 1)"
    assert lines[1:5] == [
        "Ready:      False Running: 27/30 finished (25 succeeded, 2 failed); 3 in flight, 0 pending",
        "Suspended:  no",
        "Progress:   27/30 finished (25 succeeded, 2 failed); 3 in flight, 0 pending",
        "Outcomes:   Deleted 25",
    ]
    assert (
        "  DELETE 3, sent 2026-11-30T05:06:25Z (accepted): e027churn, e028churn, e029churn" in lines
    )
    assert "  DeleteRefused 2: e025churn, e026churn" in lines
    assert f"  ids: {', '.join(SELECTED[:20])}, +10 more (--all-ids lists them all)" in lines
    every = kubectl_bulkterm(kube, plugin_dir, "status", "churn", "-n", namespace, "--all-ids")
    assert f"  ids: {', '.join(SELECTED)}" in every.stdout.splitlines()


def test_status_output_json_round_trips_the_stored_status(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    stored = put(kube, namespace, captured("running"))
    result = kubectl_bulkterm(kube, plugin_dir, "status", "running", "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["status"] == stored["status"]
    assert printed["metadata"] == {"name": "running", "namespace": namespace, "generation": 1}


def test_suspend_and_resume_patch_spec_suspend_and_move_the_generation(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    put(kube, namespace, captured("running"))
    suspended = kubectl_bulkterm(kube, plugin_dir, "suspend", "running", "-n", namespace)
    assert suspended.returncode == 0, suspended.stderr
    assert "nothing new will be sent; in-flight actions are still watched" in suspended.stdout
    obj = kube.get(BT, "running", namespace=namespace)
    assert (obj["spec"]["suspend"], obj["metadata"]["generation"]) == (True, 2)

    again = kubectl_bulkterm(kube, plugin_dir, "suspend", "running", "-n", namespace)
    assert again.returncode == 0, again.stderr
    assert "already suspended; nothing changed" in again.stdout
    assert kube.get(BT, "running", namespace=namespace)["metadata"]["generation"] == 2

    resumed = kubectl_bulkterm(kube, plugin_dir, "resume", "running", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed (spec.suspend: false, generation 3)" in resumed.stdout
    obj = kube.get(BT, "running", namespace=namespace)
    assert (obj["spec"]["suspend"], obj["metadata"]["generation"]) == (False, 3)


def test_suspending_a_finished_run_is_refused_and_changes_nothing(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    put(kube, namespace, captured("failed"))
    result = kubectl_bulkterm(kube, plugin_dir, "suspend", "failed", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: bulktermination.aiapi.bulkops.dev/failed in namespace {namespace} is already "
        "finished (Failed FailedTargets): a finished run never sends again, so suspend would "
        "do nothing\n"
    )
    obj = kube.get(BT, "failed", namespace=namespace)
    assert obj["metadata"]["generation"] == 1
    assert obj["spec"].get("suspend", False) is False


@pytest.mark.parametrize("command", ["status", "suspend", "resume"])
def test_a_missing_name_is_one_line_and_exit_1(
    kube: Kube, namespace: str, plugin_dir: Path, command: str
) -> None:
    result = kubectl_bulkterm(kube, plugin_dir, command, "nope", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr == (
        f'error: bulkterminations.aiapi.bulkops.dev "nope" not found in namespace {namespace}\n'
    )
    assert result.stdout == ""


def test_a_forbidden_read_is_one_line_and_exit_1_in_the_contexts_namespace(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    put(kube, namespace, captured("running"))
    kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "nobody", "namespace": namespace}}
    )  # fmt: skip
    kubeconfig = kube.token_kubeconfig("nobody", namespace)
    result = kubectl_bulkterm(kube, plugin_dir, "status", "running", kubeconfig=kubeconfig)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        'error: bulkterminations.aiapi.bulkops.dev "running" is forbidden'
    )
    assert f'in the namespace "{namespace}"' in result.stderr


def test_bulkterm_status_is_the_same_command(kube: Kube, namespace: str, plugin_dir: Path) -> None:
    put(kube, namespace, captured("failed"))
    bulkterm = Path(sys.executable).parent / "bulkterm"
    result = subprocess.run(
        [str(bulkterm), "status", "failed", "-n", namespace],
        env=kube.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "  NotFound 1: d-never-existed" in result.stdout.splitlines()


def test_plan_shows_what_would_be_done_and_the_digest_to_approve(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    gated = captured("awaiting-approval")
    put(kube, namespace, gated)
    digest = gated["status"]["plan"]["digest"]
    result = kubectl_bulkterm(kube, plugin_dir, "plan", gated["metadata"]["name"], "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert "Would:" in result.stdout and "stop 1, delete 0, wait on 0, leave 0, fail 0" in (
        result.stdout
    )
    assert "Digest:" in result.stdout and digest in result.stdout


def test_approve_asks_and_writes_the_digest_only_when_told_yes(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    gated = captured("awaiting-approval")
    name = gated["metadata"]["name"]
    put(kube, namespace, gated)
    digest = gated["status"]["plan"]["digest"]
    env = kube.env(None, PATH=f"{plugin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    declined = subprocess.run(
        [KUBECTL, "bulkterm", "approve", name, "-n", namespace],
        env=env, input="n\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert declined.returncode == 1
    assert "not approved; nothing changed" in declined.stderr
    annotations = kube.get(BT, name, namespace=namespace)["metadata"].get("annotations") or {}
    assert "aiapi.bulkops.dev/approved-plan" not in annotations

    approved = kubectl_bulkterm(kube, plugin_dir, "approve", name, "-n", namespace, "--yes")
    assert approved.returncode == 0, approved.stderr
    assert f"approved: aiapi.bulkops.dev/approved-plan={digest}" in approved.stdout
    annotations = kube.get(BT, name, namespace=namespace)["metadata"]["annotations"]
    assert annotations["aiapi.bulkops.dev/approved-plan"] == digest


def test_approve_refuses_a_bulktermination_that_needs_no_approval(
    kube: Kube, namespace: str, plugin_dir: Path
) -> None:
    put(kube, namespace, captured("running"))
    name = captured("running")["metadata"]["name"]
    refused = kubectl_bulkterm(kube, plugin_dir, "approve", name, "-n", namespace, "--yes")
    assert refused.returncode == 1
    assert "does not require approval" in refused.stderr
