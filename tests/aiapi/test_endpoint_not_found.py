"""A 404 is evidence that an item is gone only when the AI API itself says so.

A 404 without the AI API's error envelope (``{"error": {"code", "message", …}}``) comes from
whatever serves that URL when the AI API does not, typically because the service key's
``serviceurls.AI_API_URL`` carries a wrong path. That is a configuration error naming the URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import (
    AiApiError,
    BulkUnsupportedError,
    ConfigurationError,
    EndpointNotFoundError,
    NotFoundError,
    PermanentError,
)
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator
from tests.aiapi.conftest import SECRET, TOKEN, envelope

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
STOP, DELETE = TargetStatus.STOPPED, TargetStatus.DELETED

Call = Callable[[AiApiClient], Awaitable[Any]]

#: Every call of the client, with the path it requests below the API base URL.
EVERY_CALL: list[tuple[str, Call, str]] = [
    ("meta", lambda c: c.meta(), "/v2/lm/meta"),
    ("list", lambda c: c.list_states(D), "/v2/lm/deployments"),
    ("get", lambda c: c.get_state(D, "dep-0001"), "/v2/lm/deployments/dep-0001"),
    ("count", lambda c: c.count(E), "/v2/lm/executions/$count"),
    ("bulk_patch", lambda c: c.bulk_patch(D, [("dep-0001", STOP)]), "/v2/lm/deployments"),
    ("stop", lambda c: c.stop(E, "exe-0001"), "/v2/lm/executions/exe-0001"),
    ("delete", lambda c: c.delete(D, "dep-0001"), "/v2/lm/deployments/dep-0001"),
]
IDS = [name for name, _, _ in EVERY_CALL]


def wrong_path_key(sim: Simulator) -> dict[str, Any]:
    """The simulator's key with a path segment too many: the API is not served there."""
    key = dict(sim.service_key())
    key["serviceurls"] = {"AI_API_URL": f"{sim.url}/wrong"}
    return key


def assert_no_secret(error: BaseException) -> None:
    text = f"{error} {error!r}"
    assert SECRET not in text and TOKEN not in text and "sim-secret" not in text
    assert "Bearer" not in text


@pytest.mark.parametrize(("name", "call", "path"), EVERY_CALL, ids=IDS)
async def test_a_wrong_api_url_is_a_configuration_error_naming_the_url(
    simulator: Simulator,
    client_for: Callable[..., AiApiClient],
    name: str,
    call: Call,
    path: str,
) -> None:
    simulator.add_item(D, "dep-0001", Status.RUNNING)
    simulator.add_item(E, "exe-0001", Status.RUNNING)
    client = client_for(simulator, key=wrong_path_key(simulator), max_attempts=5)
    with pytest.raises(EndpointNotFoundError) as err:
        await call(client)
    error = err.value
    assert not isinstance(error, (NotFoundError, PermanentError))  # never judged per item
    assert isinstance(error, ConfigurationError)
    assert error.status_code == 404
    assert error.url == f"{simulator.url}/wrong{path}"
    assert error.url in str(error)
    assert "AI_API_URL" in str(error)
    assert error.reason == "EndpointNotFound"
    assert_no_secret(error)
    assert simulator.state_of(D, "dep-0001") is not None  # nothing was touched
    assert simulator.violations == []


async def test_a_404_with_the_envelope_on_one_item_stays_not_found(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    client = client_for(simulator)
    for call in (
        client.get_state(D, "dep-none"),
        client.stop(D, "dep-none"),
        client.delete(E, "exe-none"),
    ):
        with pytest.raises(NotFoundError) as err:
            await call
        assert not isinstance(err.value, EndpointNotFoundError)


def plain_404(body: str = "<html><body>404 Not Found</body></html>") -> httpx.Response:
    return httpx.Response(404, text=body, headers={"Content-Type": "text/html"})


@pytest.mark.parametrize(
    "answer",
    [
        plain_404(),
        httpx.Response(404, text=""),
        httpx.Response(404, json={"message": "Not Found", "statusCode": 404}),
        httpx.Response(404, json={"error": "Not Found"}),
        httpx.Response(404, json={"error": {"status": 404}}),
        httpx.Response(404, json=["not", "an", "object"]),
    ],
    ids=["html", "empty", "other-json", "error-string", "error-without-code", "json-array"],
)
@pytest.mark.parametrize(("name", "call", "path"), EVERY_CALL, ids=IDS)
async def test_a_404_without_the_envelope_is_never_not_found(
    mock_client: Callable[..., AiApiClient],
    name: str,
    call: Call,
    path: str,
    answer: httpx.Response,
) -> None:
    client = mock_client(lambda request: answer)
    with pytest.raises(EndpointNotFoundError) as err:
        await call(client)
    assert err.value.url == f"http://ai.test{path}"
    assert_no_secret(err.value)


async def test_the_url_is_named_without_query_or_credentials(
    mock_client: Callable[..., AiApiClient],
) -> None:
    client = mock_client(lambda request: plain_404(), api_url="http://user:pa55word@ai.test/x")
    with pytest.raises(EndpointNotFoundError) as err:
        await client.list_states(D, status=Status.RUNNING)
    assert err.value.url == "http://ai.test/x/v2/lm/deployments"
    assert "pa55word" not in str(err.value) and "user" not in err.value.url
    assert "$top" not in str(err.value) and "RUNNING" not in err.value.url


async def test_the_body_of_a_plain_404_is_not_quoted(
    mock_client: Callable[..., AiApiClient],
) -> None:
    client = mock_client(lambda request: plain_404(f"no route for token {TOKEN}"))
    with pytest.raises(EndpointNotFoundError) as err:
        await client.get_state(D, "dep-0001")
    assert_no_secret(err.value)


def enveloped_404(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json=envelope("404001", "Resource not found."))


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.list_states(D), "/v2/lm/deployments"),
        (lambda c: c.count(D), "/v2/lm/deployments/$count"),
    ],
    ids=["list", "count"],
)
async def test_a_404_with_the_envelope_on_a_collection_is_not_item_evidence(
    mock_client: Callable[..., AiApiClient], call: Call, path: str
) -> None:
    """The spec declares no 404 for list and $count: whatever it says, no item is addressed,
    so it is the collection that is not served at this URL."""
    with pytest.raises(EndpointNotFoundError) as err:
        await call(mock_client(enveloped_404))
    assert err.value.code == "404001"
    assert err.value.url == f"http://ai.test{path}"
    assert "Resource not found." in str(err.value)


async def test_a_404_with_the_envelope_on_meta_is_not_found(
    mock_client: Callable[..., AiApiClient],
) -> None:
    """The spec declares ``MetaNotFound``: the server has no meta endpoint (no capabilities)."""
    with pytest.raises(NotFoundError):
        await mock_client(enveloped_404).meta()


async def test_a_404_with_the_envelope_on_a_bulk_patch_means_no_bulk_endpoint(
    mock_client: Callable[..., AiApiClient],
) -> None:
    with pytest.raises(BulkUnsupportedError):
        await mock_client(enveloped_404).bulk_patch(D, [("dep-0001", DELETE)])


async def test_a_wrong_path_is_not_retried(
    mock_client: Callable[..., AiApiClient],
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return plain_404()

    with pytest.raises(AiApiError):
        await mock_client(handler, max_attempts=5).count(D)
    assert seen == ["/v2/lm/deployments/$count"]
