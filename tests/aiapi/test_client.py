"""The AI API client against the simulator over real HTTP: every contract row it relies on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import (
    AuthError,
    BulkUnsupportedError,
    InvalidBatchError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Faults, Simulator
from tests.aiapi.conftest import Sleeps

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
STOP, DELETE = TargetStatus.STOPPED, TargetStatus.DELETED


@pytest.mark.simulator(bulk_updates=True)
async def test_meta_reports_bulk_updates_capability(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    caps = await client_for(simulator).meta()
    assert caps.bulk_updates.supports(D) and caps.bulk_updates.supports(E)


@pytest.mark.simulator(bulk_updates=False)
async def test_meta_reports_bulk_updates_off(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    caps = await client_for(simulator).meta()
    assert not caps.bulk_updates.supports(D) and not caps.bulk_updates.supports(E)


async def test_one_token_serves_many_calls(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    for _ in range(5):
        await client.meta()
    assert client.token_fetches == 1
    assert simulator.counters["POST /oauth/token"] == 1


async def test_concurrent_first_calls_share_one_token_request(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    await asyncio.gather(*(client.meta() for _ in range(10)))
    assert simulator.counters["POST /oauth/token"] == 1


@pytest.mark.simulator(token_expires_in=1)
async def test_token_is_refreshed_before_it_expires(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    await client.meta()
    await asyncio.sleep(1.05)
    await client.meta()
    assert client.token_fetches == 2
    assert simulator.responses["GET /lm/meta 401"] == 0


async def test_revoked_token_is_refreshed_once_on_401(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    await client.meta()
    simulator.revoke_tokens()
    await client.meta()
    assert client.token_fetches == 2


async def test_persistent_401_is_an_auth_error(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.set_faults(Faults(unauthorized_rate=1.0))
    with pytest.raises(AuthError, match="401"):
        await client_for(simulator).count(D)


async def test_wrong_client_secret_is_an_auth_error_without_the_secret(
    simulator: Simulator,
) -> None:
    key = dict(simulator.service_key())
    key["clientsecret"] = "wrong-secret-value"
    async with AiApiClient.from_service_key(key) as client:
        with pytest.raises(AuthError) as err:
            await client.meta()
    assert "wrong-secret-value" not in str(err.value)
    assert "token endpoint refused" in str(err.value)


async def test_list_pages_explicitly_and_returns_every_item(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(25):
        simulator.add_item(D, f"dep-{i:03d}", Status.RUNNING)
    items = await client_for(simulator).list_states(D, page_size=10)
    assert sorted(i.id for i in items) == [f"dep-{i:03d}" for i in range(25)]
    assert simulator.counters["GET /lm/deployments"] == 3


async def test_list_filters_by_status(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    simulator.add_item(D, "dep-stp1", Status.STOPPED)
    items = await client_for(simulator).list_states(D, status=Status.STOPPED)
    assert [(i.id, i.status) for i in items] == [("dep-stp1", Status.STOPPED)]


@pytest.mark.simulator(resource_groups=("team-b",))
async def test_resource_groups_are_isolated_by_header(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(E, "exe-a001", Status.RUNNING, resource_group="team-a")
    assert [i.id for i in await client_for(simulator, "team-a").list_states(E)] == ["exe-a001"]
    assert await client_for(simulator, "team-b").list_states(E) == []


async def test_get_state_and_not_found(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(E, "exe-0001", Status.PENDING)
    client = client_for(simulator)
    assert (await client.get_state(E, "exe-0001")).status in (Status.PENDING, Status.RUNNING)
    with pytest.raises(NotFoundError, match="404"):
        await client.get_state(E, "exe-none")


async def test_count_is_an_integer(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(7):
        simulator.add_item(D, f"dep-c{i:02d}", Status.STOPPED)
    assert await client_for(simulator).count(D) == 7
    assert await client_for(simulator).count(D, status=Status.RUNNING) == 0


@pytest.mark.simulator(bulk_updates=True)
async def test_bulk_patch_mixes_stop_and_delete(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    simulator.add_item(D, "dep-stp1", Status.STOPPED)
    results = await client_for(simulator).bulk_patch(D, [("dep-run1", STOP), ("dep-stp1", DELETE)])
    assert {r.id: r.accepted for r in results} == {"dep-run1": True, "dep-stp1": True}
    assert simulator.violations == []


@pytest.mark.simulator(bulk_updates=True)
async def test_bulk_patch_item_errors_carry_the_api_code(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-unk1", Status.UNKNOWN, hold=True)
    (result,) = await client_for(simulator).bulk_patch(D, [("dep-unk1", STOP)])
    assert not result.accepted and result.error is not None
    assert result.error.code == "01010076"


@pytest.mark.parametrize(
    ("items", "why"),
    [
        ([], "at least one"),
        ([(f"dep-{i:04d}", STOP) for i in range(101)], "at most 100"),
        ([("dep-0001", STOP), ("dep-0001", DELETE)], "appears twice"),
    ],
)
async def test_invalid_batch_is_refused_before_sending(
    simulator: Simulator,
    client_for: Callable[..., AiApiClient],
    items: list[tuple[str, TargetStatus]],
    why: str,
) -> None:
    with pytest.raises(InvalidBatchError, match=why):
        await client_for(simulator).bulk_patch(D, items)
    assert simulator.counters["PATCH /lm/deployments"] == 0


@pytest.mark.simulator(bulk_updates=False)
async def test_bulk_patch_refused_when_bulk_updates_are_off(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    with pytest.raises(BulkUnsupportedError):
        await client_for(simulator).bulk_patch(D, [("dep-run1", STOP)])


async def test_single_stop_and_delete(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(E, "exe-run1", Status.RUNNING)
    simulator.add_item(E, "exe-dead", Status.DEAD)
    client = client_for(simulator)
    await client.stop(E, "exe-run1")
    await client.delete(E, "exe-dead")
    assert simulator.state_of(E, "exe-run1") in (Status.RUNNING, Status.STOPPING, Status.STOPPED)
    item = simulator.item(E, "exe-dead")
    assert item is None or item.target_status == "DELETED"
    assert simulator.violations == []


async def test_single_stop_of_a_stopped_item_is_rejected(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-stp1", Status.STOPPED)
    with pytest.raises(PermanentError):
        await client_for(simulator).stop(D, "dep-stp1")


async def test_get_is_retried_on_429_honouring_retry_after(
    simulator: Simulator, client_for: Callable[..., AiApiClient], sleeps: Sleeps
) -> None:
    simulator.set_faults(Faults(throttle_rate=1.0, retry_after=7))
    with pytest.raises(TransientError) as err:
        await client_for(simulator, max_attempts=3).count(D)
    assert err.value.status_code == 429
    # Retry delays and the tenant-wide hold (the rest of the 7 s, all of it on a still clock).
    assert sleeps.delays and all(d >= 7 - 0.1 for d in sleeps.delays)
    assert simulator.counters["GET /lm/deployments/$count"] == 3


async def test_get_recovers_from_intermittent_5xx(
    simulator: Simulator, client_for: Callable[..., AiApiClient], sleeps: Sleeps
) -> None:
    simulator.set_faults(Faults(error_rate=0.5, error_status=503))
    client = client_for(simulator, max_attempts=10)
    for _ in range(10):
        assert await client.count(D) == 0
    assert sleeps.delays  # some were retried


async def test_get_is_retried_after_a_dropped_connection(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.set_faults(Faults(drop_rate=0.5))
    client = client_for(simulator, max_attempts=10)
    for _ in range(5):
        assert await client.count(E) == 0


async def test_patch_is_retried_on_503_because_it_was_not_executed(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    simulator.set_faults(Faults(error_rate=1.0, error_status=503, methods=("PATCH",)))
    with pytest.raises(TransientError):
        await client_for(simulator, max_attempts=3).bulk_patch(D, [("dep-run1", STOP)])
    assert simulator.counters["PATCH /lm/deployments"] == 3


@pytest.mark.simulator(bulk_updates=True)
async def test_patch_is_not_resent_when_its_outcome_is_unknown(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    simulator.set_faults(Faults(lost_response_rate=1.0, methods=("PATCH",)))
    with pytest.raises(TransientError):
        await client_for(simulator, max_attempts=5).bulk_patch(D, [("dep-run1", STOP)])
    assert simulator.counters["PATCH /lm/deployments"] == 1
    assert simulator.violations == []


async def test_patch_500_is_not_resent(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.add_item(D, "dep-run1", Status.RUNNING)
    simulator.set_faults(Faults(error_rate=1.0, error_status=500, methods=("PATCH",)))
    with pytest.raises(TransientError):
        await client_for(simulator, max_attempts=5).stop(D, "dep-run1")
    assert simulator.counters["PATCH /lm/deployments/{id}"] == 1


async def test_calls_are_counted_by_kind(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    await client.meta()
    await client.list_states(D)
    await client.count(E)
    assert client.calls == {"token": 1, "meta": 1, "list deployments": 1, "count executions": 1}


async def test_concurrency_is_capped(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.set_faults(Faults(latency_ms=50))
    client = client_for(simulator, concurrency=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(client.count(D) for _ in range(6)))
    assert loop.time() - started >= 0.14  # 6 calls, 2 at a time, 50 ms each: ≥ 3 rounds


def test_bad_resource_group_is_refused() -> None:
    key = ServiceKey.from_dict(
        {
            "clientid": "c",
            "clientsecret": "s",
            "url": "http://127.0.0.1:1",
            "serviceurls": {"AI_API_URL": "http://127.0.0.1:1"},
        }
    )
    with pytest.raises(ValueError, match="resource group"):
        AiApiClient(key, "-bad-")


@pytest.mark.simulator(resource_groups=("team-a",))
async def test_clients_can_share_one_token_cache_and_one_pacing(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    owner = client_for(simulator, concurrency=1)
    async with AiApiClient.from_service_key(
        simulator.service_key(), "team-a", tokens=owner.tokens, limiter=owner.limiter
    ) as other:
        await owner.count(D)
        await other.count(D)
        assert other.tokens is owner.tokens and other.limiter is owner.limiter
    assert simulator.counters["POST /oauth/token"] == 1
