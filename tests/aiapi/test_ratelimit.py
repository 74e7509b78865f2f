"""Client-side pacing: at most ``concurrency`` requests in flight, at most ``rate`` per second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.models import Kind
from bulkterm.aiapi.ratelimit import RateLimiter
from tests.aiapi.conftest import envelope, mock_key, token_answer


async def _enter_times(limiter: RateLimiter, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []

    async def one() -> None:
        async with limiter:
            times.append(loop.time() - start)

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


async def test_a_burst_of_one_second_passes_then_the_rate_holds() -> None:
    times = await _enter_times(RateLimiter(concurrency=50, rate_per_second=20), 30)
    assert times[19] < 0.1  # the first 20 at once
    assert times[-1] >= 0.45  # the other 10 at 20/s


async def test_a_rate_below_one_per_second_still_lets_one_through() -> None:
    times = await _enter_times(RateLimiter(concurrency=4, rate_per_second=0.5), 1)
    assert times[0] < 0.1


async def test_without_a_rate_only_the_concurrency_is_capped() -> None:
    limiter = RateLimiter(concurrency=2)
    inside = peak = 0

    async def one() -> None:
        nonlocal inside, peak
        async with limiter:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(one() for _ in range(6)))
    assert peak == 2


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    limiter = RateLimiter(concurrency=1, rate_per_second=1)
    async with limiter:
        waiter = asyncio.create_task(_enter_times(limiter, 1))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with asyncio.timeout(2):
        async with limiter:  # the slot is free again (the token comes within a second)
            pass


@pytest.mark.parametrize(("concurrency", "rate"), [(0, None), (1, 0.0), (1, -1.0)])
def test_nonsense_settings_are_refused(concurrency: int, rate: float | None) -> None:
    with pytest.raises(ValueError):
        RateLimiter(concurrency, rate)


async def test_the_client_paces_its_requests(mock_client: Callable[..., AiApiClient]) -> None:
    client = mock_client(lambda request: httpx.Response(200, text="0"), rate_limit_per_second=20)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(client.count(Kind.DEPLOYMENT) for _ in range(30)))
    assert loop.time() - started >= 0.45


async def test_a_retry_after_holds_every_client_of_the_tenant() -> None:
    """One run's 429 tells the tenant's other runs to wait too, before they send anything."""
    held: list[float] = []

    async def record(seconds: float) -> None:
        held.append(seconds)

    limiter = RateLimiter(concurrency=10, sleep=record)
    served = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal served
        if (token := token_answer(request)) is not None:
            return token
        served += 1
        if served == 1:
            body = envelope("429", "Too many requests")
            return httpx.Response(429, json=body, headers={"Retry-After": "30"})
        return httpx.Response(200, text="0")

    def client() -> AiApiClient:
        return AiApiClient(
            mock_key(),
            "default",
            ClientSettings(max_attempts=1),  # the 429 comes up instead of being retried
            transport=httpx.MockTransport(answer),
            sleep=record,
            limiter=limiter,
        )

    async with client() as first, client() as second:
        with pytest.raises(TransientError):
            await first.count(Kind.DEPLOYMENT)
        assert held == []
        assert limiter.held_for > 29
        assert await second.count(Kind.DEPLOYMENT) == 0
    assert len(held) == 1 and 29 < held[0] <= 30  # waited out the first one's Retry-After
    assert served == 2


async def test_a_retry_after_never_shortens_a_hold() -> None:
    limiter = RateLimiter(concurrency=1)
    limiter.hold(60)
    limiter.hold(5)
    assert limiter.held_for > 59


HOLD = 0.2  # a short real Retry-After
SLACK = 0.005  # the event loop may wake a timer up to its clock resolution early


async def test_requests_queued_for_a_slot_wait_out_a_retry_after() -> None:
    """A 429 to the request in flight holds those already queued behind it, not only newcomers."""
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(concurrency=1)
    hold_ends = 0.0
    started: list[float] = []

    async def first() -> None:
        nonlocal hold_ends
        async with limiter:
            await asyncio.sleep(0.01)  # in flight while the other seven queue for the slot
            limiter.hold(HOLD)  # its answer: 429, Retry-After
            hold_ends = loop.time() + limiter.held_for

    async def queued() -> None:
        async with limiter:
            started.append(loop.time())

    await asyncio.gather(first(), *(queued() for _ in range(7)))
    assert len(started) == 7
    assert min(started) >= hold_ends - SLACK


async def test_a_hold_extended_while_waiting_is_waited_out_too() -> None:
    """Another client's 429 during the hold pushes its end back for everyone still waiting."""
    loop = asyncio.get_running_loop()
    hold_ends = 0.0
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal hold_ends
        slept.append(seconds)
        await asyncio.sleep(seconds / 2)
        if len(slept) == 1:  # halfway through the first wait: another 429
            limiter.hold(HOLD)
            hold_ends = loop.time() + limiter.held_for
        await asyncio.sleep(seconds / 2)

    limiter = RateLimiter(concurrency=1, sleep=sleep)
    started: list[float] = []

    async def first() -> None:
        nonlocal hold_ends
        async with limiter:
            await asyncio.sleep(0.01)
            limiter.hold(HOLD)
            hold_ends = loop.time() + limiter.held_for

    async def queued() -> None:
        async with limiter:
            started.append(loop.time())

    await asyncio.gather(first(), *(queued() for _ in range(3)))
    assert len(started) == 3
    assert min(started) >= hold_ends - SLACK
