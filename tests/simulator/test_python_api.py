"""The Python API other tests build on: seeding, inspection, runners and the service key."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimClock, Simulator, SimulatorConfig, SimulatorThread
from tests.plugins.simulator import simulator_config


def test_seed_is_reproducible_with_the_same_seed() -> None:
    first = Simulator(SimulatorConfig(seed=7)).seed(deployments=5, executions=5)
    second = Simulator(SimulatorConfig(seed=7)).seed(deployments=5, executions=5)
    other = Simulator(SimulatorConfig(seed=8)).seed(deployments=5, executions=5)
    assert first == second
    assert first != other


def test_seed_mixes_every_status_of_each_kind() -> None:
    seeded = Simulator(SimulatorConfig(seed=1)).seed(
        deployments=10, executions=10, resource_group="team-a"
    )
    deployments = {s for k, _, s in seeded if k is Kind.DEPLOYMENT}
    executions = {s for k, _, s in seeded if k is Kind.EXECUTION}
    assert deployments == set(Status) - {Status.COMPLETED}
    assert executions == set(Status)


def test_seeded_items_are_created_in_the_past_and_ids_match_the_pattern() -> None:
    sim = Simulator(SimulatorConfig(seed=1))
    sim.seed(deployments=5)
    now = datetime.now(tz=UTC)
    for view in sim.items(Kind.DEPLOYMENT):
        assert view.created_at < now
        assert len(view.id) == 16 and view.id.startswith("d")


def test_initial_items_come_from_the_config() -> None:
    sim = Simulator(
        SimulatorConfig(
            initial_deployments=4, initial_executions=2, initial_resource_group="team-a"
        )
    )
    assert len(sim.items(resource_group="team-a")) == 6


def test_state_of_and_item_are_none_for_unknown_items() -> None:
    sim = Simulator()
    assert sim.state_of(Kind.DEPLOYMENT, "ghost-1") is None
    assert sim.item(Kind.DEPLOYMENT, "ghost-1") is None


def test_add_item_replaces_an_item_with_the_same_id() -> None:
    sim = Simulator()
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.DEAD)
    assert [v.status for v in sim.items()] == [Status.DEAD]


def test_add_item_can_back_date_an_item() -> None:
    sim = Simulator()
    sim.add_item(
        Kind.DEPLOYMENT, "old-item", Status.RUNNING, created_at=datetime(2024, 1, 2, tzinfo=UTC)
    )
    view = sim.item(Kind.DEPLOYMENT, "old-item")
    assert view is not None and view.created_at == datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "arguments",
    [
        {"item_id": "abc"},
        {"item_id": "ok-id-1", "resource_group": "-bad-"},
        {"item_id": "ok-id-1", "target_status": "COMPLETED"},
    ],
    ids=str,
)
def test_add_item_refuses_what_the_api_could_never_show(arguments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Simulator().add_item(Kind.DEPLOYMENT, status=Status.RUNNING, **arguments)  # type: ignore[arg-type]


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = Simulator().url


def test_advance_needs_a_simulated_clock() -> None:
    with pytest.raises(TypeError):
        Simulator().advance(1)
    assert Simulator(clock=SimClock()).advance(2.5) == 2.5


async def test_async_context_manager_serves_on_a_free_port_and_stops() -> None:
    async with Simulator(simulator_config()) as sim:
        url = sim.url
        assert sim.port > 0 and url == f"http://127.0.0.1:{sim.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/_sim/health")).status_code == 200
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/_sim/health")


def test_thread_runner_serves_synchronous_clients_and_shares_state() -> None:
    with SimulatorThread(simulator_config()) as sim:
        sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING)
        headers = {"Authorization": f"Bearer {sim.issue_token()}", "AI-Resource-Group": "default"}
        response = httpx.get(f"{sim.url}/v2/lm/deployments/item-1", headers=headers)
        assert response.json()["status"] == "RUNNING"
        assert sim.counters["GET /lm/deployments/{id}"] == 1


def test_thread_fixture_is_running(simulator_thread: SimulatorThread) -> None:
    assert httpx.get(f"{simulator_thread.url}/_sim/health").status_code == 200


def test_thread_runner_start_failure_is_raised() -> None:
    with SimulatorThread(simulator_config()) as first:
        clash = SimulatorThread(simulator_config(port=first.port))
        with pytest.raises(OSError):
            clash.start()


async def test_service_key_points_at_the_simulator(simulator: Simulator) -> None:
    assert simulator.service_key() == {
        "clientid": "sim-client",
        "clientsecret": "sim-secret",
        "url": simulator.url,
        "identityzone": "sim",
        "serviceurls": {"AI_API_URL": simulator.url},
    }


async def test_written_service_key_is_readable_by_the_owner_only(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = simulator.write_service_key(tmp_path / "key.json")
    assert json.loads(path.read_text()) == simulator.service_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_client_can_get_a_token_from_the_written_key(
    simulator: Simulator, tmp_path: Path
) -> None:
    key = json.loads(simulator.write_service_key(tmp_path / "key.json").read_text())
    async with httpx.AsyncClient() as client:
        token = await client.post(
            f"{key['url']}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(key["clientid"], key["clientsecret"]),
        )
        meta = await client.get(
            f"{key['serviceurls']['AI_API_URL']}/v2/lm/meta",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
    assert meta.status_code == 200


async def test_the_shared_fixture_keeps_the_product_default_of_bulk_updates_off(
    simulator: Simulator,
) -> None:
    assert simulator.config.bulk_updates is False


@pytest.mark.simulator(bulk_updates=True)
async def test_simulator_marker_configures_the_shared_fixture(simulator: Simulator) -> None:
    assert simulator.config.bulk_updates is True


@pytest.mark.simulator(bulk_updates=True, token_expires_in=600)
class TestMarkersMerge:
    """A marker on the class (or module) and one on the test combine; the closest wins."""

    @pytest.mark.simulator(token_expires_in=60)
    def test_the_test_marker_adds_to_the_class_marker(
        self, simulator_thread: SimulatorThread
    ) -> None:
        assert simulator_thread.config.bulk_updates is True
        assert simulator_thread.config.token_expires_in == 60


@pytest.mark.parametrize(
    "overrides",
    [
        {"port": 70000},
        {"token_expires_in": 0},
        {"list_count": "all"},
        {"initial_resource_group": "-"},
    ],
    ids=str,
)
def test_invalid_config_is_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**overrides)  # type: ignore[arg-type]
