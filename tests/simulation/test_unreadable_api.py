"""A run that cannot read the AI API at all is not a quiet run: after ``stall_after_seconds``
it says Stalled, with the kind of problem and the host, and keeps trying; it runs again
when the API answers again."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import httpx

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import ConditionType, Engine, EngineSettings, Progress
from bulkterm.simulator import Simulator, SimulatorConfig
from bulkterm.simulator.server import build_app
from bulkterm.spec import BulkTerminationSpec, Target
from tests.hosts import CallbackHost
from tests.simulation import vtime
from tests.simulation.bridge import AppTransport

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
URL = "http://127.0.0.1:9"


class _Broken(httpx.AsyncBaseTransport):
    """Until ``healed``: every AI API request meets ``how`` (the token endpoint works)."""

    def __init__(self, inner: AppTransport, how: str) -> None:
        self.inner, self.how, self.healed, self.requests = inner, how, False, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.healed or request.url.path.endswith("/oauth/token"):
            return await self.inner.handle_async_request(request)
        self.requests += 1
        if self.how == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, html="<html>Welcome to the portal</html>")


def _stalls(how: str) -> tuple[list[Progress], Progress, int]:
    async def main() -> tuple[list[Progress], Progress, int]:
        loop = asyncio.get_running_loop()
        sim = Simulator(SimulatorConfig(seed=1), clock=loop.time)
        sim._url = URL
        sim.add_item(Kind.DEPLOYMENT, "dep-0001", Status.RUNNING)
        broken = _Broken(AppTransport(build_app(sim.backend)), how)
        spec = BulkTerminationSpec.model_validate(
            {
                "targets": [
                    Target(kind=Kind.DEPLOYMENT, id="dep-0001", target_status=TargetStatus.STOPPED)
                ]
            }
        )
        seen: list[Progress] = []
        healed_at: list[int] = []

        async def on_progress(record: Progress) -> None:
            seen.append(record)
            stalled = record.condition(ConditionType.STALLED)
            if stalled is not None and stalled.status == "True" and not healed_at:
                healed_at.append(broken.requests)
                await asyncio.sleep(600)  # ten minutes more of it, then the API is back
                broken.healed = True

        async with AiApiClient.from_service_key(
            sim.service_key(), "default", transport=broken, rng=random.Random(0).random
        ) as client:
            engine = Engine(
                spec,
                client,
                settings=EngineSettings(stall_after_seconds=120),
                clock=lambda: EPOCH + timedelta(seconds=loop.time()),
                rng=random.Random(0),
            )
            final = await engine.run(CallbackHost(on_progress))
        return seen, final, healed_at[0] if healed_at else -1

    return vtime.run(main())


def _first_stall(seen: list[Progress]) -> tuple[Progress, str, str]:
    for record in seen:
        c = record.condition(ConditionType.STALLED)
        if c is not None and c.status == "True":
            return record, c.reason or "", c.message or ""
    raise AssertionError("never stalled")


def test_an_api_that_answers_html_stalls_not_the_ai_api_naming_the_host_then_recovers() -> None:
    seen, final, _ = _stalls("portal")
    record, reason, message = _first_stall(seen)
    assert reason == "NotTheAiApi"
    assert "127.0.0.1:9" in message and "could not be read for" in message
    started = record.start_time
    assert started is not None
    assert final.condition(ConditionType.COMPLETE) is not None
    assert final.succeeded == 1


def test_an_unreachable_api_stalls_naming_the_host_and_keeps_retrying() -> None:
    seen, final, requests_at_stall = _stalls("refused")
    _, reason, message = _first_stall(seen)
    assert reason == "AiApiUnreachable"
    assert "127.0.0.1:9" in message and "still retrying" in message
    assert requests_at_stall > 0
    assert final.succeeded == 1  # it kept trying and finished once the API was back
