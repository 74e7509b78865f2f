"""Fixtures of the simulator's own tests: a simulator on a hand-moved clock and an HTTP client.

``sim`` runs with the default (slow) timings on a :class:`SimClock`, so nothing changes unless
a test calls ``clock.advance``: every expectation about statuses is exact. Override its config
with ``@pytest.mark.simulator(...)`` on the test, its class or its module (merged, the closest
winning), the marker the shared fixtures read too.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bulkterm.simulator import SimClock, Simulator, Timings
from tests.plugins.simulator import marked_overrides, simulator_config
from tests.simulator.certs import Pki, make_test_pki


@functools.cache
def _tls() -> ssl.SSLContext:
    # Building a default context per client costs ~0.1 s; the simulator is plain HTTP anyway.
    return ssl.create_default_context()


def http_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=10, verify=_tls(), **kwargs)


@pytest.fixture
def clock(sim_clock: SimClock) -> SimClock:
    return sim_clock


@pytest.fixture
async def sim(request: pytest.FixtureRequest, clock: SimClock) -> AsyncIterator[Simulator]:
    overrides = marked_overrides(request)
    overrides.setdefault("timings", Timings())
    async with Simulator(simulator_config(**overrides), clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client already holding a token and ``AI-Resource-Group: default``."""
    headers = {"Authorization": f"Bearer {sim.issue_token()}", "AI-Resource-Group": "default"}
    async with http_client(sim.url, headers=headers) as client:
        yield client


@pytest.fixture
async def raw(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no headers at all (auth and resource-group tests)."""
    async with http_client(sim.url) as client:
        yield client


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1 (openssl), shared by the session."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))
