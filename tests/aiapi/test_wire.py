"""Reading the wire without a server: error envelopes, URLs fit for messages, the 404 rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import (
    AuthError,
    EndpointNotFoundError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.aiapi.wire import error_envelope, error_for, public_url, scrub


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, text="", headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "01010076", "message": "Invalid Request"}}, ("01010076", "Invalid")),
        ({"error": {"code": 404, "message": "Not found", "requestId": "r"}}, ("404", "Not found")),
        ({"error": {"code": "X"}}, None),
        ({"error": {"message": "no code"}}, None),
        ({"error": {"code": True, "message": "m"}}, None),
        ({"error": {"code": "X", "message": {"nested": 1}}}, None),
        ({"error": "Not Found"}, None),
        ({"code": "X", "message": "top level"}, None),
        ("<html>404</html>", None),
        (None, None),
    ],
)
def test_only_the_spec_envelope_counts(body: Any, expected: tuple[str, str] | None) -> None:
    envelope = error_envelope(answer(404, body))
    if expected is None:
        assert envelope is None
    else:
        assert envelope is not None
        assert (envelope.code, envelope.message[: len(expected[1])]) == expected


def test_the_api_message_is_cut() -> None:
    envelope = error_envelope(answer(400, {"error": {"code": "C", "message": "x" * 5000}}))
    assert envelope is not None and len(envelope.message) == 256


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://api.ai.example/v2/lm/deployments?$top=10",
            "https://api.ai.example/v2/lm/deployments",
        ),
        ("https://u:p@api.ai.example:8443/x#frag", "https://api.ai.example:8443/x"),
        ("http://[::1]:9000/v2/lm/meta?token=abc", "http://[::1]:9000/v2/lm/meta"),
    ],
)
def test_public_url_drops_query_credentials_and_fragment(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_scrub_removes_every_secret() -> None:
    assert scrub("a tok b tok", ["tok", ""]) == "a [redacted] b [redacted]"


URL = "http://ai.test/v2/lm/deployments/dep-1"


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (404, {"error": {"code": "N", "message": "gone"}}, NotFoundError),
        (404, "Not Found", EndpointNotFoundError),
        (403, {"error": {"code": "F", "message": "RBAC"}}, AuthError),
        (401, None, AuthError),
        (400, {"error": {"code": "B", "message": "bad"}}, PermanentError),
        (412, None, PermanentError),
        (429, None, TransientError),
        (500, None, TransientError),
        (502, "<html>bad gateway</html>", TransientError),
    ],
)
def test_error_for_maps_statuses_to_types(status: int, body: Any, error_type: type) -> None:
    error = error_for("get deployments", answer(status, body), URL)
    assert type(error) is error_type
    assert error.status_code == status


@pytest.mark.parametrize(
    ("status", "not_executed"), [(429, True), (503, True), (500, False), (502, False), (504, False)]
)
def test_only_429_and_503_say_the_server_did_not_act(status: int, not_executed: bool) -> None:
    error = error_for("stop deployments", answer(status, None, **{"Retry-After": "4"}), URL)
    assert isinstance(error, TransientError)
    assert error.not_executed is not_executed and error.sent
    assert error.retry_after == 4


async def test_count_asks_for_text_and_every_write_names_its_media_type(
    mock_client: Callable[..., AiApiClient],
) -> None:
    seen: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen[f"{request.method} {path}"] = request.headers
        if path.endswith("/$count"):
            return httpx.Response(200, text="3", headers={"Content-Type": "text/plain"})
        if request.method == "PATCH" and path == "/v2/lm/deployments":
            return httpx.Response(202, json={"deployments": [{"id": "dep-0001"}]})
        return httpx.Response(202, json={"id": "dep-0001", "message": "ok"})

    client = mock_client(handler)
    assert await client.count(Kind.DEPLOYMENT) == 3
    await client.bulk_patch(Kind.DEPLOYMENT, [("dep-0001", TargetStatus.STOPPED)])
    await client.stop(Kind.DEPLOYMENT, "dep-0001")
    assert "text/plain" in seen["GET /v2/lm/deployments/$count"]["accept"]
    assert seen["PATCH /v2/lm/deployments"]["content-type"] == "application/merge-patch+json"
    assert seen["PATCH /v2/lm/deployments/dep-0001"]["content-type"] == "application/json"
