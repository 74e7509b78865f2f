"""Off loopback, ``/_sim`` answers only requests that carry the control token.

Whoever reaches ``/_sim`` can reseed the tenant, inject faults and revoke every token, so a
simulator listening beyond loopback (``host="0.0.0.0"`` here: bound on every interface, reached
over 127.0.0.1) requires ``Authorization: Bearer <control token>``; a request without it, or
with another, gets 401 and changes nothing. On loopback ``/_sim`` stays open unless a token is
configured. The AI API's own routes are not affected either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Faults, Simulator, SimulatorConfig
from bulkterm.simulator.app import BACKEND
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.config import is_loopback
from bulkterm.simulator.control import add_control_routes
from tests.simulator.conftest import http_client

TOKEN = "a-control-token-for-tests-0123456789"
OFF_LOOPBACK = pytest.mark.simulator(host="0.0.0.0")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending the simulator's control token."""
    assert sim.control_token is not None
    async with http_client(sim.url, headers=bearer(sim.control_token)) as client:
        yield client


def control_routes() -> list[tuple[str, str]]:
    """Every (method, path) the control API serves, with sample path parameters."""
    app = web.Application()
    app[BACKEND] = Backend(SimulatorConfig())
    add_control_routes(app)
    (sub,) = [r.get_info()["app"] for r in app.router.resources() if "app" in r.get_info()]
    routes = []
    for route in sub.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical.replace("{kind}", "deployments")
        routes.append((route.method, "/_sim" + path.replace("{item_id}", "d-1")))
    return routes


# -- off loopback ----------------------------------------------------------------------------


@OFF_LOOPBACK
def test_off_loopback_the_simulator_generates_a_long_random_token(sim: Simulator) -> None:
    assert sim.control_token is not None and len(sim.control_token) >= 32
    assert sim.control_token != Simulator(SimulatorConfig(host="0.0.0.0")).control_token


@OFF_LOOPBACK
async def test_off_loopback_a_request_without_the_token_gets_401_with_a_json_error(
    raw: httpx.AsyncClient,
) -> None:
    response = await raw.get("/_sim/health")
    assert response.status_code == 401
    assert "Authorization: Bearer <control token>" in response.json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@OFF_LOOPBACK
@pytest.mark.parametrize(("method", "path"), control_routes())
async def test_off_loopback_every_control_route_refuses_a_request_without_the_token(
    raw: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await raw.request(method, path, json={})
    assert response.status_code == 401, f"{method} {path}"


@OFF_LOOPBACK
async def test_a_wrong_token_seeds_nothing(sim: Simulator, raw: httpx.AsyncClient) -> None:
    body = {"items": [{"kind": "Deployment", "id": "d0000001", "status": "RUNNING"}]}
    response = await raw.post("/_sim/items", json=body, headers=bearer(TOKEN))
    assert response.status_code == 401
    assert response.json() == {"error": "wrong control token: nothing was done"}
    assert sim.items() == []


@OFF_LOOPBACK
async def test_a_wrong_token_sets_no_fault(sim: Simulator, raw: httpx.AsyncClient) -> None:
    response = await raw.put("/_sim/faults", json={"error_rate": 1.0}, headers=bearer(TOKEN))
    assert response.status_code == 401
    assert sim.faults == Faults()


@OFF_LOOPBACK
async def test_a_wrong_token_revokes_no_token(sim: Simulator, raw: httpx.AsyncClient) -> None:
    issued = sim.issue_token()
    refused = await raw.post("/_sim/tokens/revoke", headers=bearer(TOKEN))
    listed = await raw.get(
        "/v2/lm/deployments", headers={**bearer(issued), "AI-Resource-Group": "default"}
    )
    assert (refused.status_code, listed.status_code) == (401, 200)


@OFF_LOOPBACK
async def test_another_scheme_carrying_the_token_is_refused(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    assert sim.control_token is not None
    response = await raw.get("/_sim/health", headers={"Authorization": sim.control_token})
    assert response.status_code == 401


@OFF_LOOPBACK
async def test_off_loopback_the_token_opens_the_control_api(
    sim: Simulator, control: httpx.AsyncClient
) -> None:
    body = {"items": [{"kind": "Deployment", "id": "d0000001", "status": "RUNNING"}]}
    assert (await control.post("/_sim/items", json=body)).status_code == 201
    assert sim.state_of(Kind.DEPLOYMENT, "d0000001") is Status.RUNNING


@OFF_LOOPBACK
async def test_off_loopback_the_ai_api_needs_no_control_token(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret,
    }
    token = (await raw.post("/oauth/token", data=form)).json()["access_token"]
    listed = await raw.get(
        "/v2/lm/deployments", headers={**bearer(token), "AI-Resource-Group": "default"}
    )
    assert listed.status_code == 200


@pytest.mark.simulator(host="0.0.0.0", control_token=TOKEN)
async def test_off_loopback_a_configured_token_is_used_instead_of_a_generated_one(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    assert sim.control_token == TOKEN
    assert (await raw.get("/_sim/health", headers=bearer(TOKEN))).status_code == 200


@pytest.mark.simulator(host="0.0.0.0", control_api=False)
def test_without_a_control_api_there_is_no_token(sim: Simulator) -> None:
    assert sim.control_token is None


# -- on loopback -----------------------------------------------------------------------------


def test_on_loopback_no_token_is_generated(sim: Simulator) -> None:
    assert sim.control_token is None


async def test_on_loopback_the_control_api_stays_open(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/_sim/health")).status_code == 200


@pytest.mark.simulator(control_token=TOKEN)
async def test_on_loopback_a_configured_token_is_required_too(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    without = await raw.post("/_sim/reset")
    with_token = await raw.post("/_sim/reset", headers=bearer(TOKEN))
    assert (without.status_code, with_token.status_code) == (401, 200)


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.10", False),
        ("sim.example", False),  # a name is not resolved: it may point anywhere
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short", "at least 16 characters"),
        ("sixteen chars ok but spaced", "without spaces"),
        ("töken-with-umlaut-0123456789", "printable ASCII"),
    ],
)
def test_a_weak_or_unsendable_control_token_is_refused_without_echoing_it(
    token: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        SimulatorConfig(control_token=token)
    assert token not in str(caught.value)


def test_the_control_token_is_not_in_the_configs_repr() -> None:
    assert TOKEN not in repr(SimulatorConfig(control_token=TOKEN))
