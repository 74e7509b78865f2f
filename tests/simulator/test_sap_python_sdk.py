"""SAP's official Python client (``ai_api_client_sdk``, from ``sap-ai-sdk-base`` 3.4, the SAP
Cloud SDK for AI's base client that succeeds the archived ``ai-api-client-sdk``) works against
the simulator.

The SDK builds its model objects with required constructor arguments, so this is the test
that the simulator's answers carry what a real AI Core sends (contract §14).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ai_api = pytest.importorskip(
    "ai_api_client_sdk.ai_api_v2_client", reason="sap-ai-sdk-base not installed"
)

from ai_api_client_sdk.exception import (  # type: ignore[import-untyped]  # noqa: E402
    AIAPINotFoundException,
    AIAPIPreconditionFailedException,
)
from ai_api_client_sdk.models.base_models import BasicModifyRequest  # type: ignore[import-untyped]  # noqa: E402
from ai_api_client_sdk.models.status import Status as SdkStatus  # type: ignore[import-untyped]  # noqa: E402
from ai_api_client_sdk.models.target_status import TargetStatus as SdkTarget  # type: ignore[import-untyped]  # noqa: E402

from bulkterm.aiapi.models import Kind, Status  # noqa: E402
from bulkterm.simulator import SimClock, SimulatorThread, Timings  # noqa: E402
from tests.plugins.simulator import simulator_config  # noqa: E402


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    # A clock that stands still: statuses change only when the test says so.
    # Bulk updates on: the SDK's bulk_modify is under test (AI Core's default is off).
    config = simulator_config(timings=Timings(), bulk_updates=True)
    with SimulatorThread(config, clock=SimClock()) as simulator:
        for n in range(12):
            status = Status.RUNNING if n % 2 else Status.STOPPED
            simulator.add_item(
                Kind.DEPLOYMENT, f"dep-{n:02d}", status, configuration_id="sim-config-chat"
            )
        simulator.add_item(Kind.DEPLOYMENT, "dep-unknown", Status.UNKNOWN)
        simulator.add_item(Kind.EXECUTION, "exe-running", Status.RUNNING)
        simulator.add_item(Kind.EXECUTION, "exe-completed", Status.COMPLETED)
        simulator.add_item(Kind.EXECUTION, "exe-dead", Status.DEAD)
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Any:
    return ai_api.AIAPIV2Client(
        base_url=sim.url + "/v2/lm",
        auth_url=sim.url + "/oauth/token",
        client_id="sim-client",
        client_secret="sim-secret",
        resource_group="default",
    )


def test_sdk_reads_meta_with_bulk_updates(client: Any) -> None:
    meta = client.meta.get()
    assert meta.ai_api.capabilities.bulk_updates.deployments is True
    assert meta.ai_api.capabilities.bulk_updates.executions is True


def test_sdk_queries_with_filters_and_pages_with_top_and_skip(client: Any) -> None:
    running = client.deployment.query(
        status=SdkStatus.RUNNING,
        configuration_id="sim-config-chat",
        executable_ids=["sim-executable-chat"],
    )
    page = client.deployment.query(top=5, skip=10)
    assert running.count == 6 and {d.status for d in running.resources} == {SdkStatus.RUNNING}
    assert [d.id for d in page.resources] == ["dep-10", "dep-11", "dep-unknown"]
    assert page.count == 13


def test_sdk_gets_an_item_whole_and_by_status(client: Any) -> None:
    whole = client.deployment.get("dep-01")
    status_only = client.deployment.get("dep-01", select="status")
    execution = client.execution.get("exe-completed", select="status")
    assert (whole.status, whole.target_status) == (SdkStatus.RUNNING, SdkTarget.RUNNING)
    assert status_only.status == SdkStatus.RUNNING
    assert execution.status == SdkStatus.COMPLETED


def test_sdk_counts(client: Any) -> None:
    assert client.deployment.count() == 13
    assert client.deployment.count(status=SdkStatus.STOPPED) == 6
    assert client.execution.count() == 3


def test_sdk_bulk_modify_mixes_stop_and_delete(client: Any, sim: SimulatorThread) -> None:
    result = client.deployment.bulk_modify(
        [
            BasicModifyRequest("dep-01", SdkTarget.STOPPED),
            BasicModifyRequest("dep-00", SdkTarget.DELETED),
            BasicModifyRequest("dep-unknown", SdkTarget.DELETED),
            BasicModifyRequest("dep-02", SdkTarget.STOPPED),
        ]
    )
    outcomes = {r.id: getattr(r, "message", None) or r.error.code for r in result.deployments}
    assert outcomes == {
        "dep-01": "Deployment modification scheduled",
        "dep-00": "Deployment modification scheduled",
        "dep-unknown": "Deployment modification scheduled",
        "dep-02": "01010076",
    }
    assert client.deployment.get("dep-00").target_status == SdkTarget.DELETED
    assert [v.id for v in sim.violations] == ["dep-02"]


def test_sdk_bulk_modifies_executions(client: Any, sim: SimulatorThread) -> None:
    result = client.execution.bulk_modify(
        [
            BasicModifyRequest("exe-running", SdkTarget.STOPPED),
            BasicModifyRequest("exe-dead", SdkTarget.DELETED),
        ]
    )
    assert [r.message for r in result.executions] == ["Execution modification scheduled"] * 2
    assert sim.violations == []


def test_sdk_single_modify_and_delete(client: Any, sim: SimulatorThread) -> None:
    stopped = client.deployment.modify("dep-03", target_status=SdkTarget.STOPPED)
    deleted = client.execution.delete("exe-completed")
    assert stopped.message == "Deployment modification scheduled"
    assert deleted.message == "Deletion scheduled"
    sim.advance(
        sim.timings.stop_delay_seconds + sim.timings.stopping_seconds + sim.timings.deletion_seconds
    )
    assert client.deployment.get("dep-03").status == SdkStatus.STOPPED
    with pytest.raises(AIAPINotFoundException):
        client.execution.get("exe-completed")


def test_sdk_creates_items(client: Any) -> None:
    deployment = client.deployment.create(configuration_id="sim-config-chat")
    execution = client.execution.create(configuration_id="sim-config-train-nightly")
    assert deployment.status == SdkStatus.UNKNOWN and deployment.deployment_url
    assert execution.status == SdkStatus.UNKNOWN


def test_sdk_maps_refusals_to_its_exceptions(client: Any) -> None:
    with pytest.raises(AIAPIPreconditionFailedException) as refused:
        client.deployment.delete("dep-01")
    with pytest.raises(AIAPINotFoundException):
        client.deployment.modify("ghost-1", target_status=SdkTarget.STOPPED)
    assert refused.value.status_code == 412
