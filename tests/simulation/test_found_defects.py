"""Defects the fault explorer found, each pinned by the smallest schedule that shows it.

These run the real engine and client against the real simulator application, in-process on
virtual time (:mod:`tests.simulation.vtime`, :mod:`tests.simulation.bridge`).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import Engine, Progress
from bulkterm.simulator import Simulator, SimulatorConfig
from bulkterm.simulator.server import build_app
from bulkterm.spec import BulkTerminationSpec, Target
from tests.simulation import vtime
from tests.simulation.bridge import AppTransport, FaultPicker, WireFault

D = Kind.DEPLOYMENT
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


async def _run(
    sim: Simulator, targets: list[tuple[Kind, str, TargetStatus]], faults: FaultPicker
) -> Progress:
    loop = asyncio.get_running_loop()
    sim._url = "http://127.0.0.1:9"
    transport = AppTransport(build_app(sim.backend), faults)
    spec = BulkTerminationSpec.model_validate(
        {
            "targets": [Target(kind=k, id=i, target_status=t) for k, i, t in targets],
            "pollIntervalSeconds": 5,
            "activeDeadlineSeconds": 3600,
        }
    )
    async with AiApiClient.from_service_key(
        sim.service_key(), "default", transport=transport, rng=random.Random(0).random
    ) as client:
        engine = Engine(
            spec,
            client,
            clock=lambda: EPOCH + timedelta(seconds=loop.time()),
            rng=random.Random(0),
        )
        return await engine.run()


def _first_write_answer_lost() -> FaultPicker:
    lost: list[str] = []

    def pick(request: httpx.Request) -> WireFault | None:
        if request.method in ("PATCH", "DELETE") and not lost:
            lost.append(str(request.url))
            return WireFault.LOST_AFTER
        return None

    return pick


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk-patch", "single-deletes"])
def test_a_write_whose_answer_was_lost_is_never_sent_again_to_items_it_reached(
    bulk: bool,
) -> None:
    async def main() -> tuple[Simulator, Progress]:
        loop = asyncio.get_running_loop()
        sim = Simulator(SimulatorConfig(seed=1, bulk_updates=bulk), clock=loop.time)
        ids = [f"dep-{n:04d}" for n in range(20)]
        for item_id in ids:
            sim.add_item(D, item_id, Status.STOPPED)
        final = await _run(
            sim, [(D, i, TargetStatus.DELETED) for i in ids], _first_write_answer_lost()
        )
        return sim, final

    sim, final = vtime.run(main())
    assert [v.what for v in sim.violations] == []
    assert final.succeeded == 20 and final.failed == 0
    assert sim.items(D) == []


def test_a_silently_capped_list_counting_only_its_page_reports_the_truth() -> None:
    async def main() -> tuple[Simulator, Progress, list[tuple[str, TargetStatus, Status]]]:
        loop = asyncio.get_running_loop()
        config = SimulatorConfig(seed=2, silent_page_rows=500, list_count="page")
        sim = Simulator(config, clock=loop.time)
        cases = []
        for n in range(1100):
            status = Status.RUNNING if n % 2 else Status.STOPPED
            goal = TargetStatus.DELETED if n % 3 else TargetStatus.STOPPED
            sim.add_item(D, f"dep-{n:04d}", status)
            cases.append((f"dep-{n:04d}", goal, status))
        final = await _run(sim, [(D, i, g) for i, g, _ in cases], lambda _: None)
        return sim, final, cases

    sim, final, cases = vtime.run(main())
    wrong = [
        (i, g, sim.state_of(D, i))
        for i, g, _ in cases
        if (sim.state_of(D, i) is not None) == (g is TargetStatus.DELETED)
    ]
    assert wrong == []
    assert final.failures == [] and final.succeeded == 1100
    assert "NotFound" not in final.outcomes


def _first_list_after_the_count_unreadable() -> FaultPicker:
    """Every attempt of the first list read fails (the client's retries included)."""
    failed: list[str] = []

    def pick(request: httpx.Request) -> WireFault | None:
        path = request.url.path
        if request.method == "GET" and path.endswith("/deployments") and len(failed) < 5:
            failed.append(path)
            return WireFault.BAD_GATEWAY_AFTER
        return None

    return pick


def test_a_capped_list_is_checked_against_the_count_even_when_the_first_list_failed() -> None:
    """Explorer seed 37796: the ``$count`` was read, the list after it failed, and the next
    round's list (one short page, counting only itself) was taken as the whole list."""

    async def main() -> tuple[Simulator, Progress]:
        loop = asyncio.get_running_loop()
        config = SimulatorConfig(seed=3, silent_page_rows=4, list_count="page")
        sim = Simulator(config, clock=loop.time)
        for n in range(7):
            sim.add_item(D, f"dep-{n:04d}", Status.RUNNING)
        targets = [(D, f"dep-{n:04d}", TargetStatus.STOPPED) for n in range(7)]
        return sim, await _run(sim, targets, _first_list_after_the_count_unreadable())

    sim, final = vtime.run(main())
    assert "NotFound" not in final.outcomes
    assert final.succeeded == 7
    assert [sim.state_of(D, f"dep-{n:04d}") for n in range(7)] == [Status.STOPPED] * 7
