"""Progress written in the background: the engine never waits for a status write that need not
land before it goes on, and the writes still land in order, the newest last."""

from __future__ import annotations

import asyncio
from typing import Any

from bulkterm.k8s.throttle import StatusThrottle


def status(done: int, reason: str = "Running") -> dict[str, Any]:
    return {
        "succeeded": done,
        "conditions": [{"type": "Ready", "status": "False", "reason": reason}],
    }


class SlowServer:
    """A status endpoint whose writes take as long as the test says (``release``)."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.started: list[dict[str, Any]] = []
        self.gate = asyncio.Event()

    async def write(self, s: dict[str, Any]) -> None:
        self.started.append(s)
        await self.gate.wait()
        self.written.append(s)

    def release(self) -> None:
        self.gate.set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_background_offer_returns_before_its_write_lands() -> None:
    server = SlowServer()
    throttle = StatusThrottle(server.write, 0.0)
    assert await asyncio.wait_for(throttle.offer(status(0), wait=False), 1) is False
    await settle()
    assert server.started == [status(0)] and server.written == []
    server.release()
    await throttle.close(())
    assert server.written == [status(0)]


async def test_a_status_offered_during_a_background_write_is_written_after_it() -> None:
    server = SlowServer()
    throttle = StatusThrottle(server.write, 0.0)
    await throttle.offer(status(0), wait=False)
    await settle()
    await throttle.offer(status(1), wait=False)
    await throttle.offer(status(2), wait=False)
    server.release()
    await settle()
    await throttle.close(())
    assert server.written == [status(0), status(2)]


async def test_a_forced_offer_waits_for_the_background_write_and_lands_last() -> None:
    server = SlowServer()
    throttle = StatusThrottle(server.write, 0.0)
    await throttle.offer(status(0), wait=False)
    await settle()
    forced = asyncio.create_task(throttle.offer(status(5, "Complete"), force=True))
    await settle()
    assert not forced.done()
    server.release()
    assert await forced is True
    await throttle.close(())
    assert server.written == [status(0), status(5, "Complete")]


async def test_a_background_offer_within_the_interval_waits_for_its_slot() -> None:
    server = SlowServer()
    server.release()
    throttle = StatusThrottle(server.write, 0.2)
    await throttle.offer(status(0), force=True)
    await throttle.offer(status(1), wait=False)
    await settle()
    assert server.written == [status(0)]
    await asyncio.sleep(0.3)
    assert server.written == [status(0), status(1)]


async def test_an_urgent_status_offered_in_the_background_is_written_at_once() -> None:
    server = SlowServer()
    server.release()
    throttle = StatusThrottle(server.write, 60.0)
    await throttle.offer(status(0), force=True)
    await throttle.offer(status(1), wait=False)  # held for its slot, a minute away
    await throttle.offer(status(1, "Stalled"), wait=False, urgent=True)
    await settle()
    assert server.written == [status(0), status(1, "Stalled")]


async def test_a_failed_background_write_is_retried_with_the_newest_status() -> None:
    written: list[dict[str, Any]] = []
    failures = [True]
    gate = asyncio.Event()

    async def write(s: dict[str, Any]) -> None:
        await gate.wait()
        if failures and failures.pop():
            raise ConnectionError("API server away")
        written.append(s)

    throttle = StatusThrottle(write, 0.0)
    await throttle.offer(status(0), wait=False)
    await settle()
    await throttle.offer(status(1), wait=False)  # offered while status(0) is being written
    gate.set()
    assert await throttle.close((0.0,)) is True
    assert written == [status(1)]
