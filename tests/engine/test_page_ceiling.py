"""One list page per kind while the server serves it, and the truth when it serves less.

The engine asks for 10,000 rows a page (the spec's default ``$top``; its maximum is 100,000).
One page is a snapshot: an id missing from it is gone, with no confirming GET. A server that
serves fewer rows per page (a 413 naming its maximum, or a short page whose ``count`` says
more) is read in the pages it serves, and absences from those multi-page lists are confirmed
one by one again, so the report still equals what the AI API shows.
"""

from __future__ import annotations

import asyncio

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import EngineSettings, Progress
from bulkterm.simulator import SimClock, Simulator, Timings
from tests.engine.support import Run
from tests.engine.test_against_simulator import (
    Case,
    MakeSimulator,
    Watched,
    assert_outcome,
    engine_for,
    mixed_cases,
    seed,
    spec_for,
)

D = Kind.DEPLOYMENT
GET_ONE = ("GET /lm/deployments/{id}", "GET /lm/executions/{id}")
LISTS = ("GET /lm/deployments", "GET /lm/executions")


async def run(
    make_simulator: MakeSimulator, clock: SimClock, *, crowd: int = 0, **config: object
) -> tuple[Simulator, list[Case], Progress]:
    """The mixed run among ``crowd`` more deployments nobody names."""
    sim = await make_simulator(clock=clock, timings=Timings(), bulk_updates=True, **config)
    cases = mixed_cases(250)
    seed(sim, cases)
    for n in range(crowd):
        sim.add_item(D, f"crowd-{n:05d}", Status.RUNNING)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        engine = engine_for(spec_for(cases), api, clock, settings=EngineSettings())
        final = await asyncio.wait_for(Run(engine)(), 60)
    return sim, cases, final


def missing(cases: list[Case]) -> int:
    return sum(1 for c in cases if c.status is None)


async def test_a_collection_of_one_page_shows_absence_without_a_get(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    """2,400 deployments: one page of 10,000 rows per look (at 1,000 rows it was three
    pages, and every missing id cost a GET)."""
    sim, cases, final = await run(simulator_factory, sim_clock, crowd=2_250)
    assert missing(cases) > 0
    assert_outcome(sim, cases, final)
    assert sum(sim.counters[route] for route in GET_ONE) == 0
    looks = sim.counters["GET /lm/executions"]
    assert sim.counters["GET /lm/deployments"] <= looks + 1
    assert sim.violations == []


async def test_a_server_answering_413_is_read_in_pages_of_the_maximum_it_names(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim, cases, final = await run(simulator_factory, sim_clock, max_result_rows=40)
    assert_outcome(sim, cases, final)
    # Learned once per kind and run: one 413 each, then pages of 40 rows.
    assert sim.responses["GET /lm/deployments 413"] == 1
    assert sim.responses["GET /lm/executions 413"] == 1
    assert sum(sim.counters[route] for route in GET_ONE) >= missing(cases)
    assert [v.code for v in sim.violations] == ["ResultTooLarge", "ResultTooLarge"]


async def test_a_server_capping_pages_silently_is_caught_by_the_count_and_paged(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    """Trusting the first short page here would report every item past row 40 as gone."""
    sim, cases, final = await run(simulator_factory, sim_clock, silent_page_rows=40)
    assert_outcome(sim, cases, final)
    assert sum(sim.counters[route] for route in GET_ONE) >= missing(cases)
    assert sim.violations == []


async def test_a_server_capping_pages_silently_and_counting_only_the_page_is_caught_by_a_probe(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    """The worst server: 1,000 rows a page whatever ``$top`` says, and a ``count`` that is the
    page's own length. Read as one page, the 1,500 deployments past row 1,000 would all be
    "gone"; one row asked for past the page's end shows they are not."""
    sim, cases, final = await run(
        simulator_factory, sim_clock, crowd=2_000, silent_page_rows=1000, list_count="page"
    )
    assert_outcome(sim, cases, final)
    # Deployments (3,000 with the crowd) are multi-page now: their missing ids are confirmed.
    missing_deployments = sum(1 for c in cases if c.status is None and c.kind is D)
    assert sim.counters["GET /lm/deployments/{id}"] >= missing_deployments
    assert sim.violations == []
