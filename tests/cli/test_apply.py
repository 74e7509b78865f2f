"""``bulkterm apply`` as users run it: a subprocess, real files, real HTTP to a simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread

ROOT = Path(__file__).resolve().parents[2]
BULKTERM = [sys.executable, "-m", "bulkterm.cli"]


def bulkterm(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AICORE_")}
    # The simulators' keys are plain HTTP on loopback: allowed, as the option says.
    full_env["BULKTERM_ALLOW_PLAIN_HTTP"] = "true"
    full_env.update(env or {})
    return subprocess.run(
        [*BULKTERM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=ROOT,
    )


def manifest(*targets: tuple[str, str, str], name: str = "job", **spec: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "aiapi.bulkops.dev/v1alpha1",
            "kind": "BulkTermination",
            "metadata": {"name": name},
            "spec": {
                "pollIntervalSeconds": 1,
                "targets": [{"kind": k, "id": i, "targetStatus": t} for k, i, t in targets],
                **spec,
            },
        }
    )


def test_demo_manifest_on_the_embedded_simulator_succeeds() -> None:
    result = bulkterm("apply", "-f", "examples/small.yaml", "--simulator", "-o", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)["status"]
    assert (status["succeeded"], status["failed"], status["progress"]) == (3, 0, "3/3")
    assert "AI API calls:" in result.stderr


def test_the_embedded_simulator_turns_bulk_updates_on_and_says_so() -> None:
    """The simulator's own default is off (a faithful AI Core may lack it); the demo shows the
    bulk path, and says which one it shows."""
    result = bulkterm("apply", "-f", "examples/bulktermination.yaml", "--simulator", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert "embedded AI API simulator at http://127.0.0.1:" in result.stderr
    assert "(bulkUpdates on)" in result.stderr
    bulk = json.loads(result.stdout)["status"]["capabilities"]["bulkUpdates"]
    assert bulk == {"deployments": True, "executions": True}
    assert "bulk_patch" in result.stderr  # the AI API calls line: the bulk path was taken


def test_bad_manifest_exits_2_naming_document_field_and_id(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest(("Deployment", "no way", "STOPPED")))
    result = bulkterm("apply", "-f", str(bad), "--simulator")
    assert result.returncode == 2
    assert f"{bad}: document 1 (job): spec.targets[0].id (id 'no way')" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_suspended_manifest_is_refused_with_nothing_sent_but_may_be_looked_at() -> None:
    suspended = manifest(("Deployment", "dep-0001", "STOPPED"), suspend=True)
    refused = bulkterm("apply", "-f", "-", "--simulator", stdin=suspended)
    assert refused.returncode == 2
    assert "job: spec.suspend is true" in refused.stderr and "nothing was sent" in refused.stderr
    assert refused.stdout == ""
    looked = bulkterm("apply", "-f", "-", "--simulator", "--dry-run", stdin=suspended)
    assert looked.returncode == 0, looked.stderr


def test_manifest_from_stdin() -> None:
    result = bulkterm(
        "apply", "-f", "-", "--simulator", stdin=manifest(("Execution", "exe-0001", "DELETED"))
    )
    assert result.returncode == 0, result.stderr


def test_missing_credentials_exit_2_and_explain() -> None:
    result = bulkterm("apply", "-f", "-", stdin=manifest(("Deployment", "dep-0001", "STOPPED")))
    assert result.returncode == 2
    assert "AICORE_SERVICE_KEY" in result.stderr and "Traceback" not in result.stderr


def test_failed_targets_exit_1_and_are_listed(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-miss", "STOPPED"))
    result = bulkterm("apply", "-f", "-", "--service-key", str(key), stdin=text)
    assert result.returncode == 1, result.stderr
    status = yaml.safe_load(result.stdout)["status"]
    assert status["failed"] == 1 and status["failures"][0]["id"] == "dep-miss"
    assert "job: 1 failed: NotFound 1 (dep-miss)" in result.stderr
    assert "job: Failed FailedTargets: 1 of 2 targets failed, 1 succeeded" in result.stderr
    assert simulator_thread.state_of(Kind.DEPLOYMENT, "dep-run1") in (
        Status.STOPPING,
        Status.STOPPED,
    )


def test_failures_are_summarised_by_reason_with_the_terminal_condition(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    """Not only in the YAML on stdout: stderr says why, per reason, with the first few ids."""
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(*[("Deployment", f"dep-m{i:03d}", "STOPPED") for i in range(1, 6)])
    result = bulkterm("apply", "-f", "-", "--service-key", str(key), stdin=text)
    assert result.returncode == 1, result.stderr
    assert "job: 5 failed: NotFound 5 (dep-m001, dep-m002, dep-m003, +2 more)" in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("job: Failed ")]
    assert line.startswith("job: Failed NoTargetsFound: none of the deployments was found")
    assert simulator_thread.config.client_secret not in result.stdout + result.stderr


def test_environment_credentials_are_used(simulator_thread: SimulatorThread) -> None:
    simulator_thread.add_item(Kind.EXECUTION, "exe-stp1", Status.STOPPED)
    env = {"AICORE_SERVICE_KEY": json.dumps(simulator_thread.service_key())}
    result = bulkterm(
        "apply", "-f", "-", stdin=manifest(("Execution", "exe-stp1", "DELETED")), env=env
    )
    assert result.returncode == 0, result.stderr
    assert simulator_thread.config.client_secret not in result.stdout + result.stderr


def test_dry_run_sends_no_write_and_reports_the_plan(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-stp1", Status.STOPPED)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "DELETED"), ("Deployment", "dep-stp1", "STOPPED"))
    result = bulkterm("apply", "-f", "-", "--service-key", str(key), "--dry-run", stdin=text)
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load(result.stdout)["status"]["plan"]
    assert (plan["stop"], plan["skip"]) == (1, 1)
    writes = [k for k in simulator_thread.counters if k.startswith(("PATCH", "DELETE"))]
    assert writes == []


def test_rejected_credentials_exit_2_without_leaking_the_secret(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    key = dict(simulator_thread.service_key())
    key["clientsecret"] = "definitely-wrong-secret"
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    result = bulkterm(
        "apply",
        "-f",
        "-",
        "--service-key",
        str(path),
        stdin=manifest(("Deployment", "dep-0001", "STOPPED")),
    )
    assert result.returncode == 2, result.stderr  # nothing was sent: as documented in --help
    assert "credentials rejected" in result.stderr and "nothing was sent" in result.stderr
    assert "definitely-wrong-secret" not in result.stdout + result.stderr
    assert sum(v for k, v in simulator_thread.counters.items() if "/oauth/" not in k) == 0


def test_help_documents_every_exit_code() -> None:
    result = bulkterm("apply", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for fragment in (
        "0 all targets reached",
        "1 some",
        "2 invalid input or credentials (nothing was sent)",
        "130 interrupted (Ctrl-C",
        "143 terminated (SIGTERM",
    ):
        assert fragment in text, text


def test_invalid_resource_group_exits_2_before_anything_is_sent(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-0001", "STOPPED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--resource-group", "-bad-", stdin=text
    )
    assert result.returncode == 2
    assert "resource group" in result.stderr and "Traceback" not in result.stderr
    assert sum(simulator_thread.counters.values()) == 0


def test_x509_key_with_unloadable_pem_exits_2(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "clientid": "c",
                "certificate": "not a pem",
                "key": "not a key",
                "certurl": "http://127.0.0.1:9",
                "serviceurls": {"AI_API_URL": "http://127.0.0.1:9"},
            }
        )
    )
    result = bulkterm(
        "apply",
        "-f",
        "-",
        "--service-key",
        str(key),
        stdin=manifest(("Deployment", "dep-0001", "STOPPED")),
    )
    assert result.returncode == 2
    assert "PEM" in result.stderr and "Traceback" not in result.stderr


def _interrupt_mid_run(sig: signal.Signals) -> tuple[int, str, str]:
    """Start the 120-target demo, wait until items are mid-transition, send ``sig``."""
    proc = subprocess.Popen(
        [*BULKTERM, "apply", "-f", "examples/bulktermination.yaml", "--simulator", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # wait until some items are under way (sent, not yet finished)
        seen.append(line)
        if ("active 0," not in line and "done:" in line) or time.monotonic() > deadline:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, "".join(seen) + err


def test_ctrl_c_exits_130_and_still_prints_the_status_so_far() -> None:
    code, out, err = _interrupt_mid_run(signal.SIGINT)
    assert code == 130, err
    status = json.loads(out)["status"]
    assert status["total"] == 120 and "interrupted" in err
    assert "Traceback" not in err


def test_sigterm_is_handled_like_ctrl_c_and_exits_143() -> None:
    """A cancelled CI job: the status so far on stdout, the reason on stderr, 128 + 15."""
    code, out, err = _interrupt_mid_run(signal.SIGTERM)
    assert code == 143, err
    status = json.loads(out)["status"]
    assert status["total"] == 120 and status["active"] + status["pending"] > 0
    assert "interrupted (SIGTERM)" in err
    assert "Traceback" not in err


def test_an_unreachable_api_is_named_on_stderr_and_timeout_ends_the_run(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    from tests.kube import free_port

    key = dict(simulator_thread.service_key())
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here: connections are refused
    key["serviceurls"] = {"AI_API_URL": dead}
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key_file), "--timeout", "4", "-o", "json",
        stdin=manifest(("Deployment", "dep-0001", "STOPPED")),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    retry_lines = [line for line in result.stderr.splitlines() if "transient AI API error" in line]
    assert len(retry_lines) == 1, result.stderr  # one line per retry episode, not per request
    assert "connect" in retry_lines[0].lower()
    status = json.loads(result.stdout)["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert "last error:" in failed["message"] and "connect" in failed["message"].lower()


def test_a_wrong_api_url_fails_naming_the_url_never_succeeds(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-0001", Status.RUNNING)
    key = dict(simulator_thread.service_key())
    key["serviceurls"] = {"AI_API_URL": f"{simulator_thread.url}/wrong"}
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key_file), "-o", "json",
        stdin=manifest(("Deployment", "dep-0001", "DELETED")),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"{simulator_thread.url}/wrong" in result.stderr
    assert "AI_API_URL" in result.stderr
    assert simulator_thread.state_of(Kind.DEPLOYMENT, "dep-0001") is Status.RUNNING
