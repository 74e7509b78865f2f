"""List paging ends, whatever the server does with ``$top`` and ``$skip``.

An insertion at the front between two page reads shifts later items to higher positions, so
the next page repeats one (de-duplicated by id); a deletion shifts them to lower positions, so
``$skip`` jumps over one (the engine confirms absences from multi-page lists with GETs).
A server that ignores ``$skip``, or that keeps producing new ids, must not keep the client
paging for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import (
    ListPagingError,
    NotAiApiError,
    PermanentError,
    ResultTooLargeError,
)
from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator

D = Kind.DEPLOYMENT


def item(n: int) -> dict[str, Any]:
    return {"id": f"dep-{n:05d}", "status": "RUNNING"}


class Collection:
    """A list endpoint over ``items`` that honours ``$top``/``$skip`` unless told otherwise."""

    def __init__(self, size: int, *, count: str = "total", cap: int | None = None) -> None:
        self.items = [item(n) for n in range(size)]
        self.count = count
        #: Rows served per page at most, whatever ``$top`` says (and saying nothing).
        self.cap = cap
        self.requests: list[tuple[int, int]] = []
        self.honour_skip = True
        #: Called after each answer (to insert or delete between page reads).
        self.after_page: Callable[[int], None] = lambda page: None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        top = int(request.url.params["$top"])
        skip = int(request.url.params["$skip"]) if self.honour_skip else 0
        self.requests.append((top, skip))
        top = top if self.cap is None else min(top, self.cap)
        page = self.items[skip : skip + top]
        count = len(self.items) if self.count == "total" else len(page)
        answer = httpx.Response(200, json={"count": count, "resources": list(page)})
        self.after_page(len(self.requests))
        return answer


async def test_pages_until_a_short_page(mock_client: Callable[..., AiApiClient]) -> None:
    server = Collection(25)
    items = await mock_client(server).list_states(D, page_size=10)
    assert [i.id for i in items] == [f"dep-{n:05d}" for n in range(25)]
    assert server.requests == [(10, 0), (10, 10), (10, 20)]


async def test_an_exact_multiple_ends_on_an_empty_page(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Collection(20)
    assert len(await mock_client(server).list_states(D, page_size=10)) == 20
    assert server.requests == [(10, 0), (10, 10), (10, 20)]


async def test_a_server_ignoring_skip_does_not_loop_for_ever(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Collection(25)
    server.honour_skip = False
    with pytest.raises(ListPagingError, match=r"\$skip") as err:
        await mock_client(server).list_states(D, page_size=10)
    assert isinstance(err.value, PermanentError)
    assert len(server.requests) == 2


async def test_a_server_inventing_ids_is_stopped_by_the_count_of_the_first_page(
    mock_client: Callable[..., AiApiClient],
) -> None:
    calls = 0

    def endless(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        page = [item(calls * 100 + n) for n in range(10)]
        return httpx.Response(200, json={"count": 25, "resources": page})

    with pytest.raises(ListPagingError, match="25"):
        await mock_client(endless).list_states(D, page_size=10)
    # 25 items are 3 pages; a little slack for insertions, then it stops.
    assert 3 < calls <= 6  # budget: pages + max(2, pages)


async def test_insertions_at_the_front_between_pages_repeat_items_once(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Collection(25)
    inserted = iter(range(1000, 1003))

    def insert_one(page: int) -> None:
        server.items.insert(0, item(next(inserted)))

    server.after_page = insert_one
    items = await mock_client(server).list_states(D, page_size=10)
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids))
    assert {f"dep-{n:05d}" for n in range(25)} <= set(ids)


async def test_many_insertions_stay_within_the_slack(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Collection(100)
    fresh = iter(range(1000, 2000))

    def insert_three(page: int) -> None:
        for _ in range(3):
            server.items.insert(0, item(next(fresh)))

    server.after_page = insert_three
    items = await mock_client(server).list_states(D, page_size=10)
    assert {f"dep-{n:05d}" for n in range(100)} <= {i.id for i in items}


async def test_a_deletion_between_pages_lets_skip_jump_over_one(
    mock_client: Callable[..., AiApiClient],
) -> None:
    """Documented, not prevented: the missing item is for the engine to confirm with a GET."""
    server = Collection(25)
    server.after_page = lambda page: server.items.pop(0) if page == 1 else None
    ids = {i.id for i in await mock_client(server).list_states(D, page_size=10)}
    assert "dep-00010" not in ids  # shifted onto page one after it was read
    assert len(ids) == 24


async def test_a_count_of_the_page_alone_does_not_cut_the_walk_short(
    mock_client: Callable[..., AiApiClient],
) -> None:
    """``count`` may be read as the page's own size (the spec allows both readings)."""
    server = Collection(95, count="page")
    items = await mock_client(server).list_states(D, page_size=10)
    assert len(items) == 95


@pytest.mark.simulator(list_count="page")
async def test_simulator_counting_pages_lists_everything(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(45):
        simulator.add_item(D, f"dep-{i:03d}", Status.RUNNING)
    items = await client_for(simulator).list_states(D, page_size=10)
    assert len(items) == 45
    assert simulator.counters["GET /lm/deployments"] == 5


async def test_a_page_without_resources_is_not_the_ai_api_talking(
    mock_client: Callable[..., AiApiClient],
) -> None:
    answer = httpx.Response(200, json={"count": 0})
    with pytest.raises(NotAiApiError, match="resources"):
        await mock_client(lambda request: answer).list_states(D)


async def test_a_short_page_with_a_larger_count_names_the_rows_the_server_serves(
    mock_client: Callable[..., AiApiClient],
) -> None:
    """A silent cap: 8 rows for ``$top=10`` while the count says 25. Ending the walk there
    would read 17 existing items as absent."""
    server = Collection(25, cap=8)
    with pytest.raises(ResultTooLargeError, match="counts 25") as err:
        await mock_client(server).list_states(D, page_size=10)
    assert err.value.limit == 8
    assert server.requests == [(10, 0)]


async def test_a_silent_cap_is_paged_through_in_pages_of_its_size(
    mock_client: Callable[..., AiApiClient],
) -> None:
    server = Collection(25, cap=8)
    assert len(await mock_client(server).list_states(D, page_size=8)) == 25


@pytest.mark.simulator(max_result_rows=10)
async def test_a_413_naming_its_maximum_gives_that_maximum(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(25):
        simulator.add_item(D, f"dep-{i:03d}", Status.RUNNING)
    with pytest.raises(ResultTooLargeError) as err:
        await client_for(simulator).list_states(D, page_size=20)
    assert (err.value.limit, err.value.status_code) == (10, 413)
    assert len(await client_for(simulator).list_states(D, page_size=10)) == 25


def too_large(request: httpx.Request) -> httpx.Response:
    """A 413 that does not say how many rows would do."""
    return httpx.Response(413, json={"error": {"code": "413", "message": "too large"}})


async def test_a_413_without_a_maximum_halves_the_page(
    mock_client: Callable[..., AiApiClient],
) -> None:
    with pytest.raises(ResultTooLargeError) as err:
        await mock_client(too_large).list_states(D, page_size=1000)
    assert err.value.limit == 500


async def test_a_413_on_a_page_of_one_row_is_an_ordinary_refusal(
    mock_client: Callable[..., AiApiClient],
) -> None:
    with pytest.raises(PermanentError) as err:
        await mock_client(too_large).list_states(D, page_size=1)
    assert not isinstance(err.value, ResultTooLargeError)


@pytest.mark.simulator(silent_page_rows=1000, list_count="page")
async def test_a_silent_cap_that_counts_only_its_page_is_caught_by_one_probe(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    """Nothing in a capped page says so when ``count`` is the page's own length: one row
    past its end is asked for, and it exists."""
    for i in range(1_500):
        simulator.add_item(D, f"dep-{i:05d}", Status.RUNNING)
    with pytest.raises(ResultTooLargeError) as err:
        await client_for(simulator).list_states(D, page_size=10_000)
    assert err.value.limit == 1000
    assert simulator.counters["GET /lm/deployments"] == 2


async def test_a_page_proven_whole_is_not_probed_again_nor_a_smaller_one(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(1_200):
        simulator.add_item(D, f"dep-{i:05d}", Status.RUNNING)
    client = client_for(simulator)
    assert len(await client.list_states(D, page_size=10_000)) == 1_200
    assert simulator.counters["GET /lm/deployments"] == 2  # the page, and the probe past it
    assert len(await client.list_states(D, page_size=10_000)) == 1_200
    assert simulator.counters["GET /lm/deployments"] == 3  # proven: no probe
    assert len(await client.list_states(D, page_size=10_000, status=Status.RUNNING)) == 1_200
    assert simulator.counters["GET /lm/deployments"] == 4  # same path, same server


async def test_a_page_under_a_thousand_rows_is_never_probed(
    simulator: Simulator, client_for: Callable[..., AiApiClient]
) -> None:
    for i in range(999):
        simulator.add_item(D, f"dep-{i:05d}", Status.RUNNING)
    await client_for(simulator).list_states(D, page_size=10_000)
    assert simulator.counters["GET /lm/deployments"] == 1
