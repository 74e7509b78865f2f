"""Injected faults: 5xx, 429 with Retry-After, dropped connections, early 401s, lost answers, delay."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Faults, Simulator
from tests.simulator.conftest import http_client
from tests.simulator.helpers import bulk

FORM = {
    "grant_type": "client_credentials",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
}


@pytest.mark.simulator(faults=Faults(error_rate=1.0))
async def test_error_rate_answers_503_with_an_error_envelope(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get("/v2/lm/deployments")
    assert response.status_code == 503
    assert set(response.json()["error"]) >= {"code", "message", "requestId", "target"}


@pytest.mark.simulator(faults=Faults(error_rate=1.0, error_status=502))
async def test_error_status_is_configurable(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v2/lm/meta")).status_code == 502


@pytest.mark.simulator(faults=Faults(throttle_rate=1.0, retry_after=7))
async def test_throttle_rate_answers_429_with_retry_after(api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/lm/deployments")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


@pytest.mark.simulator(faults=Faults(drop_rate=1.0))
async def test_drop_rate_closes_the_connection_without_an_answer(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.TransportError):
        await api.get("/v2/lm/deployments")
    assert sim.responses["GET /lm/deployments dropped"] == 1


@pytest.mark.simulator(faults=Faults(unauthorized_rate=1.0))
async def test_unauthorized_rate_answers_401_to_valid_tokens(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get("/v2/lm/deployments")
    assert response.status_code == 401
    assert sim.violations == []


@pytest.mark.simulator(bulk_updates=True)
@pytest.mark.simulator(faults=Faults(lost_response_rate=1.0))
async def test_lost_response_applies_the_change_but_the_client_never_hears(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    with pytest.raises(httpx.TransportError):
        await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    view = sim.item(Kind.DEPLOYMENT, "running-1")
    assert view is not None and view.target_status == "STOPPED"


@pytest.mark.simulator(bulk_updates=True)
@pytest.mark.simulator(faults=Faults(error_rate=1.0, methods=("PATCH",)))
async def test_faults_can_be_limited_to_some_methods(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    listed = await api.get("/v2/lm/deployments")
    patched = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    assert (listed.status_code, patched.status_code) == (200, 503)


@pytest.mark.simulator(faults=Faults(error_rate=1.0))
async def test_token_endpoint_and_control_api_are_spared_by_default(raw: httpx.AsyncClient) -> None:
    token = await raw.post("/oauth/token", data=FORM)
    control = await raw.get("/_sim/health")
    assert (token.status_code, control.status_code) == (200, 200)


@pytest.mark.simulator(faults=Faults(throttle_rate=1.0, include_token_endpoint=True))
async def test_token_endpoint_faults_can_be_turned_on(raw: httpx.AsyncClient) -> None:
    assert (await raw.post("/oauth/token", data=FORM)).status_code == 429


@pytest.mark.simulator(faults=Faults(latency_ms=50))
async def test_latency_delays_every_answer(api: httpx.AsyncClient) -> None:
    started = time.monotonic()
    await api.get("/v2/lm/meta")
    assert time.monotonic() - started >= 0.05


async def test_same_seed_gives_the_same_faults(
    simulator_factory: Callable[..., Awaitable[Simulator]],
) -> None:
    async def outcomes() -> list[int]:
        sim = await simulator_factory(seed=42, faults=Faults(error_rate=0.3, throttle_rate=0.3))
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        async with http_client(sim.url, headers=headers) as client:
            return [(await client.get("/v2/lm/meta")).status_code for _ in range(30)]

    first, second = await outcomes(), await outcomes()
    assert first == second
    assert {200, 429, 503} <= set(first)


async def test_faults_are_not_violations(sim: Simulator, api: httpx.AsyncClient) -> None:
    sim.set_faults(Faults(error_rate=0.5, throttle_rate=0.5))
    for _ in range(10):
        await api.get("/v2/lm/deployments")
    assert sim.violations == []


def test_fault_rates_outside_zero_to_one_are_rejected() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
