"""Fixtures of the AI API client tests.

* ``sleeps`` — records the client's backoff delays instead of sleeping them.
* ``client_for`` — ``client_for(simulator, resource_group="default", **ClientSettings)``: a
  client of a running simulator (see ``tests/plugins/simulator.py``), closed at teardown.
* ``mock_client`` — ``mock_client(handler, **ClientSettings)``: a client whose every request,
  the token request included, is answered by ``handler`` (an ``httpx.MockTransport``), for
  server behaviour the simulator does not have: ignoring ``$skip``, inventing ids, errors
  without the AI API's envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.simulator import Simulator

SECRET = "s3cr3t-client-secret"
TOKEN = "tok-9f8e7d6c5b4a"
MOCK_BASE = "http://ai.test"

Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps:
    """Records backoff delays instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client_for(sleeps: Sleeps) -> AsyncIterator[Callable[..., AiApiClient]]:
    made: list[AiApiClient] = []

    def make(
        sim: Simulator,
        resource_group: str = "default",
        *,
        key: dict[str, Any] | None = None,
        **settings: Any,
    ) -> AiApiClient:
        client = AiApiClient.from_service_key(
            key or sim.service_key(), resource_group, ClientSettings(**settings), sleep=sleeps
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def mock_key(api_url: str = MOCK_BASE) -> ServiceKey:
    return ServiceKey.from_dict(
        {
            "clientid": "client",
            "clientsecret": SECRET,
            "url": MOCK_BASE,
            "serviceurls": {"AI_API_URL": api_url},
        }
    )


def token_answer(request: httpx.Request) -> httpx.Response | None:
    """The token endpoint's answer, or ``None`` when ``request`` is not for it."""
    if request.url.path != "/oauth/token":
        return None
    return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})


def envelope(code: str, message: str) -> dict[str, Any]:
    """The AI API's error body (``AiApiError`` in the spec)."""
    return {"error": {"code": code, "message": message, "requestId": "req-1", "target": "/x"}}


@pytest.fixture
async def mock_client(sleeps: Sleeps) -> AsyncIterator[Callable[..., AiApiClient]]:
    made: list[AiApiClient] = []

    def make(handler: Handler, *, api_url: str = MOCK_BASE, **settings: Any) -> AiApiClient:
        def answer(request: httpx.Request) -> httpx.Response:
            return token_answer(request) or handler(request)

        client = AiApiClient(
            mock_key(api_url),
            "default",
            ClientSettings(**settings),
            transport=httpx.MockTransport(answer),
            sleep=sleeps,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
