"""HTTP without sockets: the real client's requests served by the real simulator app in-process.

The explorer needs every byte the engine sends to pass through the same code as over the
network (the client's encoding, retries, paging; the simulator's routing, validation and
rules), but with no socket whose timing could reorder anything, and with a hook where each
request's fault is decided. :class:`AppTransport` is an ``httpx`` transport that builds an
aiohttp request from the ``httpx`` one and hands it to the simulator's application.

Faults are decided per request by a callable, so the schedule (not the transport) owns the
randomness. Each fault is one that production shows: the connection refused before anything
was sent; a 429 or 503 the server answered without acting; a 500, 502 or 504, a timeout and a
lost answer after the server acted (the write may have happened).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum
from unittest import mock

import httpx
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict


class WireFault(Enum):
    """What happens to one request on its way to the AI API and back."""

    #: No connection: nothing reached the server.
    REFUSED = "refused"
    #: 429 with Retry-After, not acted on.
    THROTTLED = "throttled"
    #: 503 with Retry-After, not acted on.
    UNAVAILABLE = "unavailable"
    #: Acted on, then a 500 (the server failed after its change).
    ERROR_AFTER = "error_after"
    #: Acted on, then a gateway's 502.
    BAD_GATEWAY_AFTER = "bad_gateway_after"
    #: Acted on, then no answer within the client's timeout.
    TIMEOUT_AFTER = "timeout_after"
    #: Acted on, then the connection closed without an answer.
    LOST_AFTER = "lost_after"


#: Faults after which the server may have acted: a write's outcome is unknown.
ACTED_ON = frozenset(
    {
        WireFault.ERROR_AFTER,
        WireFault.BAD_GATEWAY_AFTER,
        WireFault.TIMEOUT_AFTER,
        WireFault.LOST_AFTER,
    }
)

FaultPicker = Callable[[httpx.Request], WireFault | None]


def _envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "requestId": "explorer", "target": ""}}
    return httpx.Response(status, json=body, headers=headers or {})


class AppTransport(httpx.AsyncBaseTransport):
    """Serves ``httpx`` requests with an aiohttp application, in the same event loop."""

    def __init__(
        self,
        app: web.Application,
        faults: FaultPicker | None = None,
        *,
        timeout_seconds: float = 30.0,
        retry_after: int = 2,
    ) -> None:
        self._app = app
        self._faults = faults
        self._timeout_seconds = timeout_seconds
        self._retry_after = retry_after
        if not app.frozen:
            app.freeze()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        fault = self._faults(request) if self._faults is not None else None
        await asyncio.sleep(0)  # a request is a suspension point, as on the wire
        if fault is WireFault.REFUSED:
            raise httpx.ConnectError("connection refused (explorer)", request=request)
        if fault is WireFault.THROTTLED:
            return _envelope(
                429, "429", "Too many requests.", {"Retry-After": str(self._retry_after)}
            )
        if fault is WireFault.UNAVAILABLE:
            return _envelope(
                503, "503", "Service unavailable.", {"Retry-After": str(self._retry_after)}
            )
        response = await self._serve(request, body)
        if fault is WireFault.ERROR_AFTER:
            return _envelope(500, "500", "Internal server error.")
        if fault is WireFault.BAD_GATEWAY_AFTER:
            return httpx.Response(
                502, text="<html>502 Bad Gateway</html>", headers={"Content-Type": "text/html"}
            )
        if fault is WireFault.TIMEOUT_AFTER:
            await asyncio.sleep(self._timeout_seconds)
            raise httpx.ReadTimeout("timed out waiting for the answer (explorer)", request=request)
        if fault is WireFault.LOST_AFTER:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a response (explorer)", request=request
            )
        return response

    async def _serve(self, request: httpx.Request, body: bytes) -> httpx.Response:
        loop = asyncio.get_running_loop()
        protocol = mock.Mock(_reading_paused=False)
        payload = StreamReader(protocol, 2**16, loop=loop)
        if body:
            payload.feed_data(body)
        payload.feed_eof()
        headers = CIMultiDict(request.headers.multi_items())
        headers.setdefault("Host", request.url.netloc.decode("ascii"))
        path = request.url.raw_path.decode("ascii")
        aio_request = make_mocked_request(
            request.method, path, headers=headers, app=self._app, payload=payload
        )
        answer = await self._app._handle(aio_request)
        assert isinstance(answer, web.Response), type(answer)
        assert answer.body is None or isinstance(answer.body, bytes), type(answer.body)
        content = answer.body or b""
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return httpx.Response(answer.status, headers=out_headers, content=content, request=request)
