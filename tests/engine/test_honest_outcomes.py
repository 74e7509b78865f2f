"""Honest outcomes: for every target the report equals what the AI API shows, and nothing the
API had accepted is sent twice, through misconfiguration, restarts, partial refusals, slow
lifecycles and outages.

Most cases run the engine with the real HTTP client against the simulator on its manual clock
(hours of simulated time in a second); the simulator is the judge of what happened.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import AuthError, EndpointNotFoundError
from bulkterm.aiapi.models import BulkItemResult, Kind, Status, TargetStatus
from bulkterm.engine import EngineSettings, Progress
from bulkterm.engine.decisions import Action
from bulkterm.engine.progress import InFlightGroup
from bulkterm.simulator import Faults, SimClock, Simulator, Timings
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, Run, run_to_end, spec_of
from tests.engine.test_against_simulator import (
    EPOCH,
    Case,
    MakeSimulator,
    Watched,
    assert_outcome,
    engine_for,
    mixed_cases,
    seed,
    spec_for,
)
from tests.hosts import CallbackHost


def deployments(
    sim: Simulator, n: int, status: Status, resource_group: str = "default"
) -> list[str]:
    """``n`` deployments in one status on the simulator; their ids."""
    ids = [f"dep-{i:04d}" for i in range(n)]
    for item_id in ids:
        sim.add_item(D, item_id, status, resource_group=resource_group)
    return ids


def accepted_writes(api: Watched) -> Counter[tuple[Kind, str, TargetStatus]]:
    return Counter((w.kind, w.id, w.action) for w in api.writes if w.accepted)


async def test_a_wrong_resource_group_ends_no_targets_found_and_touches_nothing(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    ids = deployments(sim, 30, Status.RUNNING, resource_group="team-a")
    spec = spec_of(*[(D, i, DELETED) for i in ids])  # resourceGroup left at "default"
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec, api, sim_clock))(), 30)
    failed = final.condition("Failed")
    assert failed is not None and failed.reason == "NoTargetsFound"
    assert "resource group 'default'" in failed.message and sim.url in failed.message
    assert (final.failed, final.succeeded, final.outcomes) == (30, 0, {})
    assert {f.reason for f in final.failures} == {"NotFound"}
    assert api.writes == []
    assert [sim.state_of(D, i, "team-a") for i in ids] == [Status.RUNNING] * 30


async def test_a_delete_recorded_before_a_crash_but_never_sent_is_sent_after_the_restart(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    # 150 STOPPED items listed in pages of 50: absence from such a list proves nothing.
    sim = await simulator_factory(clock=sim_clock, timings=Timings(deletion_seconds=2))
    ids = deployments(sim, 150, Status.STOPPED)
    spec = spec_of(*[(D, i, DELETED) for i in ids])
    saved = Progress(
        total=150,
        pending=0,
        active=150,
        progress="0/150",
        start_time=EPOCH,
        seen_indexes="0-149",
        in_flight_groups=[InFlightGroup(action=Action.DELETE, sent_at=EPOCH, indexes="0-149")],
    )
    settings = EngineSettings(list_page_size=50)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        engine = engine_for(spec, api, sim_clock, saved, settings)
        final = await asyncio.wait_for(Run(engine)(), 60)
    assert final.outcomes == {"Deleted": 150}
    assert sim.items(D) == []
    assert set(accepted_writes(api).values()) == {1}  # each DELETE sent exactly once
    assert sim.violations == []


async def test_nothing_is_sent_while_the_record_of_the_send_cannot_be_saved(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    ids = deployments(sim, 10, Status.RUNNING)
    spec = spec_of(*[(D, i, STOPPED) for i in ids])
    refusals = 3
    sends_seen_when_refused: list[int] = []

    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        engine = engine_for(spec, api, sim_clock)

        async def on_progress(record: Progress) -> bool:
            nonlocal refusals
            if record.active and refusals:
                refusals -= 1
                sends_seen_when_refused.append(len(api.writes))
                return False  # the status write was refused (HTTP 500)
            return True

        final = await asyncio.wait_for(engine.run(CallbackHost(on_progress)), 30)
    assert sends_seen_when_refused == [0, 0, 0]
    assert final.outcomes == {"Stopped": 10}
    assert set(accepted_writes(api).values()) == {1}


class RefusesOneBulkRequest(Watched):
    """The second bulk PATCH of the run is refused for the credentials (403), unsent."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.bulk_calls = 0

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        self.bulk_calls += 1
        if self.bulk_calls == 2:
            raise AuthError("RBAC Access denied", status_code=403)
        return await super().bulk_patch(kind, items)


async def test_a_403_on_one_of_several_bulk_requests_keeps_the_others_accepted(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(
        clock=sim_clock, timings=Timings(stop_delay_seconds=5), bulk_updates=True
    )
    ids = deployments(sim, 30, Status.RUNNING)
    spec = spec_of(*[(D, i, STOPPED) for i in ids], batch_size=10)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = RefusesOneBulkRequest(client, sim)
        engine = engine_for(spec, api, sim_clock)
        try:
            await asyncio.wait_for(engine.run(), 30)
        except AuthError:
            pass
        else:
            raise AssertionError("the 403 must stall the run")
        saved = Progress.model_validate(engine.progress.to_status())
        assert saved.active == 20  # the two accepted requests are remembered
        second = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec, second, sim_clock, saved))(), 30)
    assert final.outcomes == {"Stopped": 30}
    everything = accepted_writes(api) + accepted_writes(second)
    assert len(everything) == 30 and set(everything.values()) == {1}


async def test_a_45_minute_deletion_is_waited_for_without_spending_retries(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(clock=sim_clock, timings=Timings(deletion_seconds=45 * 60))
    sim.add_item(D, "dep-slow", Status.STOPPED)
    spec = spec_of((D, "dep-slow", DELETED), backoff_limit_per_target=0)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec, api, sim_clock))(), 60)
    assert sim_clock() >= 45 * 60, (final.outcomes, final.failures)
    assert final.outcomes == {"Deleted": 1} and final.failed == 0
    assert accepted_writes(api) == Counter({(D, "dep-slow", TargetStatus.DELETED): 1})


async def test_twelve_minutes_of_500s_on_bulk_patch_fail_no_target(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    ids = deployments(sim, 20, Status.RUNNING)
    sim.set_faults(Faults(error_rate=1.0, error_status=500, methods=("PATCH",)))
    spec = spec_of(*[(D, i, STOPPED) for i in ids], backoff_limit_per_target=1)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        engine = engine_for(spec, api, sim_clock)
        base_sleep = engine._sleep

        async def sleep(seconds: float) -> None:
            await base_sleep(seconds)
            if sim_clock() > 12 * 60:
                sim.set_faults(Faults())  # the outage ends

        engine._sleep = sleep
        run = Run(engine)
        final = await asyncio.wait_for(run(), 60)
    assert final.outcomes == {"Stopped": 20} and final.failed == 0
    retrying = [c for s in run.snapshots for c in s.conditions if c.type == "Reconciling"]
    assert any(c.reason == "Retrying" and "HTTP 500" in c.message for c in retrying)


async def test_a_target_removed_after_its_stop_was_accepted_reached_its_target(
    clock: FakeClock,
) -> None:
    class RemovedAfterStop(FakeAiApi):
        async def bulk_patch(
            self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
        ) -> list[BulkItemResult]:
            answer = await super().bulk_patch(kind, items)
            for item_id, _ in items:
                self.items.pop((kind, item_id), None)  # someone else deletes it at once
            return answer

    api = RemovedAfterStop(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    api.add(D, "dep-0002", Status.STOPPED)
    final = await run_to_end(
        spec_of((D, "dep-0001", STOPPED), (D, "dep-0002", STOPPED)), api, clock
    )
    assert final.failed == 0
    assert final.outcomes == {"AlreadyStopped": 1, "Removed": 1}


def test_resend_timeouts_are_long_enough_to_read_before_resending() -> None:
    # The engine reads a slow action whole at its resend timeout instead of resending it:
    # the timeouts are when to look, not when to give up.
    settings = EngineSettings()
    assert timedelta(seconds=settings.delete_resend_timeout_seconds) >= timedelta(minutes=1)


class Killed(Exception):
    """The process died at a status write."""


def kill_cases() -> list[Case]:
    return mixed_cases(48)


async def run_killed_at(
    make_simulator: MakeSimulator, write: int, *, saved_before_death: bool
) -> tuple[Simulator, list[Case], Progress, list[Watched]]:
    """Run until status write number ``write``, die there (after or before that write was
    saved), then run a new engine from the last saved record to the end."""
    clock = SimClock()
    sim = await make_simulator(
        clock=clock, timings=Timings(stop_delay_seconds=3.0, execution_run_seconds=None)
    )
    cases = kill_cases()
    seed(sim, cases)
    spec = spec_for(cases)
    apis: list[Watched] = []
    saved: Progress | None = None
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        first = Watched(client, sim)
        apis.append(first)
        writes = 0

        async def on_progress(record: Progress) -> None:
            nonlocal writes, saved
            writes += 1
            if writes == write:
                if saved_before_death:
                    saved = Progress.model_validate(record.to_status())
                raise Killed()
            saved = Progress.model_validate(record.to_status())

        try:
            engine = engine_for(spec, first, clock)
            final = await asyncio.wait_for(engine.run(CallbackHost(on_progress)), 60)
        except Killed:
            clock.advance(2)
            second = Watched(client, sim)
            apis.append(second)
            engine = engine_for(spec, second, clock, saved)
            final = await asyncio.wait_for(Run(engine)(), 60)
    return sim, cases, final, apis


@pytest.mark.parametrize("saved_before_death", [True, False], ids=["after-write", "during-write"])
async def test_a_kill_at_every_status_write_keeps_the_report_true_and_sends_nothing_twice(
    simulator_factory: MakeSimulator, saved_before_death: bool
) -> None:
    writes_in_a_whole_run = 0

    async def count(record: Progress) -> None:
        nonlocal writes_in_a_whole_run
        writes_in_a_whole_run += 1

    clock = SimClock()
    sim = await simulator_factory(
        clock=clock, timings=Timings(stop_delay_seconds=3.0, execution_run_seconds=None)
    )
    cases = kill_cases()
    seed(sim, cases)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        await engine_for(spec_for(cases), Watched(client, sim), clock).run(CallbackHost(count))
    assert writes_in_a_whole_run >= 3, writes_in_a_whole_run

    for write in range(1, writes_in_a_whole_run + 1):
        sim, cases, final, apis = await run_killed_at(
            simulator_factory, write, saved_before_death=saved_before_death
        )
        assert_outcome(sim, cases, final)
        accepted = Counter(
            (w.kind, w.id, w.action) for api in apis for w in api.writes if w.accepted
        )
        assert max(accepted.values()) == 1, f"killed at write {write}: {accepted.most_common(3)}"
        assert sim.violations == [], f"killed at write {write}"


async def test_a_wrong_api_url_stalls_the_run_naming_the_url_and_sends_nothing(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    sim.add_item(D, "dep-0001", Status.RUNNING)
    key = dict(sim.service_key())
    key["serviceurls"] = {"AI_API_URL": f"{sim.url}/wrong"}  # a path the API does not serve
    spec = spec_of((D, "dep-0001", DELETED))
    async with AiApiClient.from_service_key(key, "default") as client:
        api = Watched(client, sim)
        engine = engine_for(spec, api, sim_clock)
        with pytest.raises(EndpointNotFoundError):
            await asyncio.wait_for(engine.run(), 30)
    stalled = engine.progress.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == "EndpointNotFound" and f"{sim.url}/wrong" in stalled.message
    assert engine.progress.succeeded == 0 and api.writes == []
    assert sim.state_of(D, "dep-0001") is Status.RUNNING


async def test_a_stop_that_shows_only_after_five_minutes_is_waited_for_not_resent(
    simulator_factory: MakeSimulator, sim_clock: SimClock
) -> None:
    # The STOP is accepted at once (targetStatus STOPPED) but the status stays RUNNING for
    # 5 minutes, far past the 60 s resend timeout of a STOP.
    sim = await simulator_factory(clock=sim_clock, timings=Timings(stop_delay_seconds=300))
    ids = deployments(sim, 5, Status.RUNNING)
    spec = spec_of(*[(D, i, STOPPED) for i in ids], backoff_limit_per_target=0)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec, api, sim_clock))(), 60)
    assert sim_clock() >= 300
    assert final.outcomes == {"Stopped": 5} and final.failed == 0
    assert set(accepted_writes(api).values()) == {1} and len(accepted_writes(api)) == 5
