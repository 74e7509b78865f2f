"""``bulkterm apply`` with a resource group the tenant does not have: the AI API answers 403
before anything is written. That is refused input, exit 2, and the message says which resource
group at which AI API URL was refused, never a secret."""

from __future__ import annotations

from pathlib import Path

import yaml

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest


def _writes(sim: SimulatorThread) -> list[str]:
    return [k for k, n in sim.counters.items() if n and k.startswith(("PATCH", "DELETE"))]


def _assert_no_secret(sim: SimulatorThread, text: str) -> None:
    assert sim.config.client_secret not in text
    assert "Bearer" not in text and "eyJ" not in text  # no token (a JWT starts eyJ)


def test_a_resource_group_the_tenant_lacks_exits_2_naming_the_group_and_the_url(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    simulator_thread.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    text = manifest(("Deployment", "dep-run1", "STOPPED"), ("Execution", "exe-0001", "DELETED"))
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--resource-group", "nope", stdin=text
    )
    assert result.returncode == 2, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: job:")]
    assert f"the AI API at {simulator_thread.url}" in line
    assert "refused resource group 'nope'" in line
    assert "HTTP 403" in line and "--resource-group" in line
    assert "Traceback" not in result.stderr
    assert _writes(simulator_thread) == []
    assert simulator_thread.state_of(Kind.DEPLOYMENT, "dep-run1") is Status.RUNNING
    _assert_no_secret(simulator_thread, result.stdout + result.stderr)


def test_a_resource_group_from_the_manifest_is_named_with_its_field(
    simulator_thread: SimulatorThread, tmp_path: Path
) -> None:
    key = simulator_thread.write_service_key(tmp_path / "key.json")
    doc = yaml.safe_load(manifest(("Deployment", "dep-0001", "STOPPED")))
    doc["spec"]["connection"] = {"resourceGroup": "team-b"}
    result = bulkterm(
        "apply", "-f", "-", "--service-key", str(key), "--dry-run", stdin=yaml.safe_dump(doc)
    )
    assert result.returncode == 2, result.stderr
    assert "refused resource group 'team-b'" in result.stderr
    assert "spec.connection.resourceGroup" in result.stderr
    assert simulator_thread.url in result.stderr
    assert _writes(simulator_thread) == []
    _assert_no_secret(simulator_thread, result.stdout + result.stderr)
