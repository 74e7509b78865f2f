"""HTTPS only: ``bulkterm apply`` refuses a service key with plain-HTTP URLs unless told
otherwise (``--allow-plain-http``), before any request."""

from __future__ import annotations

from pathlib import Path

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest


def test_a_plain_http_key_is_refused_with_exit_2_and_nothing_sent(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), stdin=text,
        env={"BULKTERM_ALLOW_PLAIN_HTTP": "false"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "plain HTTP" in result.stderr and "--allow-plain-http" in result.stderr
    assert sum(simulator_thread.counters.values()) == 0
    assert simulator_thread.config.client_secret not in result.stderr + result.stdout


def test_the_option_lets_a_plain_http_key_run(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--allow-plain-http", stdin=text,
        env={"BULKTERM_ALLOW_PLAIN_HTTP": "false"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
