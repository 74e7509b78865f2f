"""The pace of status writes: at most one per interval; the first, urgent and forced ones at once.

(Whether a write changes anything is the status writer's: tests/k8s/test_status_writer.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from bulkterm.k8s.throttle import StatusThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status(done: int, reason: str = "Running") -> dict[str, Any]:
    return {
        "succeeded": done,
        "conditions": [{"type": "Ready", "status": "False", "reason": reason}],
    }


async def make(interval: float = 2.0) -> tuple[StatusThrottle, list[dict[str, Any]], Clock]:
    written: list[dict[str, Any]] = []

    async def write(s: dict[str, Any]) -> None:
        written.append(s)

    clock = Clock()
    return StatusThrottle(write, interval, clock=clock), written, clock


async def test_first_status_is_written_at_once() -> None:
    throttle, written, _ = await make()
    await throttle.offer(status(0))
    assert written == [status(0)]


async def test_counter_changes_within_the_interval_are_held_back() -> None:
    throttle, written, clock = await make()
    await throttle.offer(status(0))
    clock.now += 0.5
    await throttle.offer(status(1))
    await throttle.offer(status(2))
    assert written == [status(0)]
    await throttle.close()
    assert written == [status(0), status(2)]


async def test_a_change_after_the_interval_is_written() -> None:
    throttle, written, clock = await make()
    await throttle.offer(status(0))
    clock.now += 2.0
    await throttle.offer(status(1))
    assert written[-1] == status(1)


async def test_an_urgent_status_is_written_immediately() -> None:
    throttle, written, clock = await make()
    await throttle.offer(status(0))
    clock.now += 0.1
    await throttle.offer(status(0, reason="Complete"), urgent=True)
    assert written[-1] == status(0, reason="Complete")


async def test_forced_write_ignores_the_interval() -> None:
    throttle, written, clock = await make()
    await throttle.offer(status(0))
    clock.now += 0.1
    await throttle.offer(status(5), force=True)
    assert written[-1] == status(5)


async def test_held_back_change_is_flushed_when_its_slot_comes() -> None:
    throttle, written, _ = await make(interval=0.05)
    await throttle.offer(status(0))
    await throttle.offer(status(1))
    await asyncio.sleep(0.2)
    assert written[-1] == status(1)
    await throttle.close()
    assert len(written) == 2


async def test_a_failed_write_is_retried_and_never_raises() -> None:
    written: list[dict[str, Any]] = []
    failures = [RuntimeError("API server unavailable")]

    async def flaky(s: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        written.append(s)

    throttle = StatusThrottle(flaky, 0.01)
    await throttle.offer(status(1))  # fails, held for a retry
    assert written == [] and throttle.failures == 1
    assert await throttle.close(retry_delays=(0.01,)) is True
    assert written == [status(1)]


async def test_close_reports_a_final_write_that_never_landed() -> None:
    async def broken(s: dict[str, Any]) -> None:
        raise RuntimeError("API server unavailable")

    throttle = StatusThrottle(broken, 0.01)
    await throttle.offer(status(1), force=True)
    assert await throttle.close(retry_delays=(0.01, 0.01)) is False
    assert throttle.failures == 4


async def test_close_stops_retrying_a_refused_write_once_the_operator_is_stopping() -> None:
    """The run ended on its own just before SIGTERM set ``stop``: the retries of its last
    write (1, 2, 4, 8 s) must not outlast the stop, or kopf cancels the daemon 5 s later."""

    async def refused(s: dict[str, Any]) -> None:
        raise RuntimeError("HTTP 401")

    throttle = StatusThrottle(refused, 0.01)
    await throttle.offer(status(1), force=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = asyncio.get_running_loop().time()
    assert await throttle.close(retry_delays=(1.0, 2.0, 4.0, 8.0), stop=stop) is False
    assert asyncio.get_running_loop().time() - started < 0.5


async def test_offer_tells_whether_the_status_is_on_the_server() -> None:
    written: list[dict[str, Any]] = []
    failures = [RuntimeError("API server unavailable")]

    async def flaky(s: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        written.append(s)

    clock = Clock()
    throttle = StatusThrottle(flaky, 2.0, clock=clock)
    assert await throttle.offer(status(0), force=True) is False  # the write failed
    assert await throttle.offer(status(0), force=True) is True  # written now
    clock.now += 0.1
    assert await throttle.offer(status(1)) is False  # held back for its slot
    assert await throttle.close() is True
    assert written == [status(0), status(1)]
