"""One token cache and one rate limiter per AI API tenant (URL + client id) in the operator
process, whatever the number of BulkTerminations and resource groups using it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AuthError
from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.fleet import FleetApi
from bulkterm.simulator import Simulator
from tests.k8s.support import (
    REF,
    FakeEvents,
    FakeKube,
    condition,
    reconciler,
    running_for_deletion,
    spec,
)

TOKEN = "POST /oauth/token"


def key_of(sim: Simulator, **changes: Any) -> ServiceKey:
    return ServiceKey.from_dict({**sim.service_key(), **changes})


async def test_two_resources_of_one_tenant_fetch_one_token(simulator: Simulator) -> None:
    pool = ClientPool(ClientSettings())
    first = running_for_deletion(simulator, 5, stopping=0.3, deletion=0.2, prefix="dep-a")
    second = running_for_deletion(
        simulator, 5, stopping=0.3, deletion=0.2, prefix="dep-b", resource_group="rg-b"
    )
    body_b = spec(*second, connection={"secretRef": {"name": "aicore"}, "resourceGroup": "rg-b"})
    kube_a, kube_b = FakeKube.with_key(simulator), FakeKube.with_key(simulator)
    await asyncio.gather(
        reconciler(kube_a, FakeEvents(), spec(*first), clients=pool).run(asyncio.Event()),
        reconciler(
            kube_b, FakeEvents(), body_b, ref=dataclasses.replace(REF, name="b"), clients=pool
        ).run(asyncio.Event()),
    )
    assert condition(kube_a.status, "Complete")["status"] == "True"
    assert condition(kube_b.status, "Complete")["status"] == "True"
    assert simulator.counters[TOKEN] == 1
    assert pool.tenants == 0  # released when the last user is done


async def test_without_a_shared_pool_each_resource_fetches_its_own(simulator: Simulator) -> None:
    """The counterpart that shows the test above can fail."""
    kube = FakeKube.with_key(simulator)
    first = running_for_deletion(simulator, 3, stopping=0.3, deletion=0.2, prefix="dep-a")
    second = running_for_deletion(simulator, 3, stopping=0.3, deletion=0.2, prefix="dep-b")
    await asyncio.gather(
        reconciler(kube, FakeEvents(), spec(*first)).run(asyncio.Event()),
        reconciler(kube, FakeEvents(), spec(*second), ref=dataclasses.replace(REF, name="b")).run(
            asyncio.Event()
        ),
    )
    assert simulator.counters[TOKEN] == 2


async def test_resource_groups_share_the_tenant_token(simulator: Simulator) -> None:
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "other-group") as b:
        assert (a.resource_group, b.resource_group) == ("default", "other-group")
        await a.meta()
        await b.meta()
        assert pool.tenants == 1
        assert a.tokens is b.tokens and a.limiter is b.limiter
    assert simulator.counters[TOKEN] == 1
    assert pool.tenants == 0


async def test_new_credentials_never_reuse_the_old_token(simulator: Simulator) -> None:
    """A rotated Secret (same client id, other secret) gets its own token: a wrong new secret
    is refused even while a token from the old one is cached."""
    pool = ClientPool(ClientSettings(max_attempts=1))
    async with pool.client(key_of(simulator), None) as old:
        await old.count(Kind.DEPLOYMENT)
        async with pool.client(key_of(simulator, clientsecret="rotated-wrong"), None) as new:
            assert new.tokens is not old.tokens and new.limiter is old.limiter
            with pytest.raises(AuthError):
                await new.count(Kind.DEPLOYMENT)
        await old.count(Kind.DEPLOYMENT)  # the old credentials keep their token
        assert pool.tenants == 1
    assert simulator.counters[TOKEN] == 2


async def test_other_client_ids_are_other_tenants(simulator: Simulator) -> None:
    pool = ClientPool(ClientSettings())
    async with (
        pool.client(key_of(simulator), None) as a,
        pool.client(key_of(simulator, clientid="someone-else"), None) as b,
    ):
        assert pool.tenants == 2
        assert a.limiter is not b.limiter and a.tokens is not b.tokens
        assert a.limiter is not b.limiter
    assert pool.tenants == 0


async def test_the_rate_limit_holds_for_the_tenant_not_per_client(simulator: Simulator) -> None:
    """10 requests/s for the tenant: 20 requests from two clients take about a second (the
    bucket holds 10), where two private limiters would let all 20 through at once."""
    pool = ClientPool(ClientSettings(rate_limit_per_second=10))
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        await a.list_items(Kind.DEPLOYMENT)  # the token, outside the measurement
        started = time.monotonic()
        # (list_items: each run's own request; listings of states are shared, see below)
        await asyncio.gather(*(c.list_items(Kind.DEPLOYMENT) for c in (a, b) for _ in range(10)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.8


async def test_a_key_the_client_cannot_use_is_refused_before_anything_is_shared(
    simulator: Simulator,
) -> None:
    pool = ClientPool(ClientSettings())
    with pytest.raises(ValueError, match="resource group"):
        async with pool.client(key_of(simulator), "Not A Group!"):
            pass
    assert pool.tenants == 0


async def test_leased_clients_are_fleet_views_over_ai_api_clients(simulator: Simulator) -> None:
    pool = ClientPool(ClientSettings())
    async with pool.client(key_of(simulator), None) as api:
        assert isinstance(api, FleetApi)
        assert isinstance(api.inner, AiApiClient)


# --- the runs of one group share their listings --------------------------------------------

LIST = "GET /lm/deployments"


async def test_runs_of_one_group_share_a_listing_under_way(simulator: Simulator) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-0001", Status.RUNNING)
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        seen = await asyncio.gather(a.list_states(Kind.DEPLOYMENT), b.list_states(Kind.DEPLOYMENT))
        assert [[s.id for s in states] for states in seen] == [["dep-0001"], ["dep-0001"]]
        assert seen[0] is not seen[1]  # each run keeps its own list
    assert simulator.counters[LIST] == 1


async def test_a_listing_from_before_a_runs_last_write_is_not_shared_with_it(
    simulator: Simulator,
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-0001", Status.RUNNING)
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        await a.list_states(Kind.DEPLOYMENT)
        await b.stop(Kind.DEPLOYMENT, "dep-0001")
        await b.list_states(Kind.DEPLOYMENT)  # must not be a's, from before
        assert simulator.counters[LIST] == 2
        await a.list_states(Kind.DEPLOYMENT)  # a wrote nothing: b's fresh listing serves it
        assert simulator.counters[LIST] == 2


async def test_other_resource_groups_list_for_themselves(simulator: Simulator) -> None:
    simulator.add_resource_group("other-group")
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "other-group") as b:
        await asyncio.gather(a.list_states(Kind.DEPLOYMENT), b.list_states(Kind.DEPLOYMENT))
    assert simulator.counters[LIST] == 2


async def test_capabilities_are_read_once_for_many_runs(simulator: Simulator) -> None:
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        for _ in range(3):
            await a.meta()
            await b.meta()
    assert simulator.counters["GET /lm/meta"] == 1
