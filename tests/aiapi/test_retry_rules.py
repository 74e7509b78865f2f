"""When the client sends a request again, and what its errors say about a write.

Reads are resent on any transient error. Writes only where the outcome is known, i.e. the
server certainly did not act: 429, 503, a failure to connect, or no token to send it with.
After a 500, 502, 504, a read timeout or a dropped connection the write's outcome is unknown:
it is never resent, and its error says so (``not_executed`` False).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import AuthError, TransientError
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Faults, Simulator
from tests.aiapi.conftest import SECRET, TOKEN, Sleeps, envelope

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
STOP = TargetStatus.STOPPED

Call = Callable[[AiApiClient], Awaitable[Any]]
WRITES: list[tuple[str, Call, str]] = [
    ("bulk_patch", lambda c: c.bulk_patch(D, [("dep-0001", STOP)]), "PATCH"),
    ("stop", lambda c: c.stop(D, "dep-0001"), "PATCH"),
    ("delete", lambda c: c.delete(D, "dep-0001"), "DELETE"),
]
READS: list[tuple[str, Call, str]] = [
    ("meta", lambda c: c.meta(), "GET"),
    ("list", lambda c: c.list_states(D), "GET"),
    ("get", lambda c: c.get_state(D, "dep-0001"), "GET"),
    ("count", lambda c: c.count(D), "GET"),
]


class Failing:
    """Answers every API request with ``fault`` (a status or an exception to raise)."""

    def __init__(self, fault: int | type[Exception], retry_after: str | None = None) -> None:
        self.fault = fault
        self.retry_after = retry_after
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if isinstance(self.fault, int):
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return httpx.Response(self.fault, json=envelope("E1", "failed"), headers=headers)
        raise self.fault("injected", request=request)


UNKNOWN_OUTCOME: list[int | type[Exception]] = [
    500,
    502,
    504,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
]
NOT_EXECUTED: list[int | type[Exception]] = [429, 503, httpx.ConnectError, httpx.ConnectTimeout]


def _name(fault: int | type[Exception]) -> str:
    return str(fault) if isinstance(fault, int) else fault.__name__


@pytest.mark.parametrize("fault", UNKNOWN_OUTCOME, ids=_name)
@pytest.mark.parametrize(("name", "call", "method"), WRITES, ids=[w[0] for w in WRITES])
async def test_a_write_whose_outcome_is_unknown_is_sent_once(
    mock_client: Callable[..., AiApiClient],
    name: str,
    call: Call,
    method: str,
    fault: int | type[Exception],
) -> None:
    server = Failing(fault)
    with pytest.raises(TransientError) as err:
        await call(mock_client(server, max_attempts=5))
    assert server.sent == 1
    assert err.value.sent and not err.value.not_executed


@pytest.mark.parametrize("fault", NOT_EXECUTED, ids=_name)
@pytest.mark.parametrize(("name", "call", "method"), WRITES, ids=[w[0] for w in WRITES])
async def test_a_write_the_server_did_not_act_on_is_resent(
    mock_client: Callable[..., AiApiClient],
    name: str,
    call: Call,
    method: str,
    fault: int | type[Exception],
) -> None:
    server = Failing(fault)
    with pytest.raises(TransientError) as err:
        await call(mock_client(server, max_attempts=3))
    assert server.sent == 3
    assert err.value.not_executed
    assert err.value.sent is isinstance(fault, int)  # no connection: the request never left


@pytest.mark.parametrize("fault", UNKNOWN_OUTCOME + NOT_EXECUTED, ids=_name)
@pytest.mark.parametrize(("name", "call", "method"), READS, ids=[r[0] for r in READS])
async def test_a_read_is_resent_on_any_transient_error(
    mock_client: Callable[..., AiApiClient],
    name: str,
    call: Call,
    method: str,
    fault: int | type[Exception],
) -> None:
    server = Failing(fault)
    with pytest.raises(TransientError):
        await call(mock_client(server, max_attempts=3))
    assert server.sent == 3


async def test_retry_after_is_a_floor_and_is_capped(
    mock_client: Callable[..., AiApiClient], sleeps: Sleeps
) -> None:
    with pytest.raises(TransientError) as err:
        await mock_client(Failing(429, "9"), max_attempts=3).stop(D, "dep-0001")
    assert err.value.retry_after == 9
    # The retry's own delays, and the tenant-wide hold (what is left of the 9 s when the
    # retry comes back: the whole of it on the tests' clock, which does not move).
    assert sleeps.delays and all(d >= 9 - 0.1 for d in sleeps.delays)
    sleeps.delays.clear()
    client = mock_client(Failing(503, "3600"), max_attempts=2, retry_after_cap_seconds=60)
    with pytest.raises(TransientError):
        await client.count(D)
    assert sleeps.delays[0] == 60
    assert all(60 - 0.1 <= d <= 60 for d in sleeps.delays)


async def test_backoff_is_exponential_with_full_jitter_and_a_ceiling(
    mock_client: Callable[..., AiApiClient], sleeps: Sleeps
) -> None:
    client = mock_client(
        Failing(500),
        max_attempts=8,
        backoff_initial_seconds=1,
        backoff_max_seconds=10,
    )
    with pytest.raises(TransientError):
        await client.count(D)
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    assert len(sleeps.delays) == len(ceilings)
    assert all(0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))


async def test_the_attempt_budget_bounds_the_resends(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Failing(503)
    with pytest.raises(TransientError):
        await mock_client(server, max_attempts=1).count(D)
    assert server.sent == 1


# -- no token: the write was never sent ------------------------------------------------------


TOKEN_FAULTS = {
    "5xx": Faults(error_rate=1.0, error_status=500, methods=("POST",), include_token_endpoint=True),
    "dropped": Faults(drop_rate=1.0, methods=("POST",), include_token_endpoint=True),
    "slow": Faults(latency_ms=400, methods=("POST",), include_token_endpoint=True),
}


@pytest.mark.parametrize("fault", list(TOKEN_FAULTS), ids=list(TOKEN_FAULTS))
@pytest.mark.parametrize(("name", "call", "method"), WRITES, ids=[w[0] for w in WRITES])
async def test_a_write_without_a_token_was_never_sent(
    simulator: Simulator,
    client_for: Callable[..., AiApiClient],
    name: str,
    call: Call,
    method: str,
    fault: str,
) -> None:
    simulator.add_item(D, "dep-0001", Status.RUNNING)
    simulator.set_faults(TOKEN_FAULTS[fault])
    client = client_for(simulator, max_attempts=2, timeout_seconds=0.1)
    with pytest.raises(TransientError) as err:
        await call(client)
    error = err.value
    assert error.sent is False and error.not_executed is True
    assert "token" in str(error)
    assert SECRET not in str(error) and "sim-secret" not in str(error)
    # Nothing reached the AI API, nothing was counted as sent; the token was asked again.
    writes = sum(n for route, n in simulator.counters.items() if route.startswith(method))
    assert writes == 0
    assert all(not label.startswith(f"{name} ") for label in client.calls)
    assert simulator.counters["POST /oauth/token"] == 2
    assert simulator.state_of(D, "dep-0001") is not None


async def test_a_read_without_a_token_is_retried_and_then_succeeds(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    simulator.set_faults(
        Faults(error_rate=0.5, error_status=503, methods=("POST",), include_token_endpoint=True)
    )
    client = client_for(simulator, max_attempts=20)
    assert await client.count(D) == 0


async def test_a_refused_token_is_still_an_auth_error(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    key = dict(simulator.service_key())
    key["clientsecret"] = SECRET
    with pytest.raises(AuthError) as err:
        await client_for(simulator, key=key).stop(D, "dep-0001")
    assert SECRET not in str(err.value)


async def test_transient_errors_never_show_the_token(
    mock_client: Callable[..., AiApiClient],
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["Authorization"]
        return httpx.Response(503, json=envelope("E", f"bad header {auth}"))

    with pytest.raises(TransientError) as err:
        await mock_client(echo, max_attempts=1).count(D)
    assert TOKEN not in str(err.value)


def test_transient_error_defaults_keep_the_engines_reading() -> None:
    """Code that builds a TransientError by hand (the engine's fakes) gets the old meaning."""
    plain = TransientError("HTTP 502", retry_after=2)
    assert plain.sent and not plain.not_executed and plain.retry_after == 2
    unsent = TransientError("no token", sent=False)
    assert unsent.not_executed  # never sent implies not executed
