"""A dry run observes once, writes the plan into the record, and sends nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import Engine, EngineSettings, PlanAction, Progress
from bulkterm.simulator import SimClock, Simulator, Timings
from bulkterm.spec import BulkTerminationSpec
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, E, run_to_end, spec_of

WRITES = ("bulk_patch", "stop", "delete")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
MakeSimulator = Callable[..., Awaitable[Simulator]]


def mixed(api: FakeAiApi) -> list[tuple[Kind, str, TargetStatus]]:
    api.add(D, "dep-run1", Status.RUNNING)
    api.add(D, "dep-run2", Status.RUNNING)
    api.add(E, "exe-stop", Status.STOPPED)
    api.add(E, "exe-going", Status.STOPPING, target_status="STOPPED")
    api.add(D, "dep-done", Status.STOPPED)
    return [
        (D, "dep-run1", STOPPED),
        (D, "dep-run2", DELETED),
        (E, "exe-stop", DELETED),
        (E, "exe-going", STOPPED),
        (D, "dep-done", STOPPED),
        (D, "dep-miss", STOPPED),
        (E, "exe-miss", DELETED),
    ]


async def test_dry_run_sends_no_write(api: FakeAiApi, clock: FakeClock):
    await run_to_end(spec_of(*mixed(api), dry_run=True), api, clock)
    assert not any(key.split()[0] in WRITES for key in api.calls)
    assert api.sent == []


async def test_dry_run_plan_counts_what_would_be_stopped_deleted_waited_skipped_and_failed(
    api: FakeAiApi, clock: FakeClock
):
    final = await run_to_end(spec_of(*mixed(api), dry_run=True), api, clock)
    plan = final.plan
    assert plan is not None
    assert (plan.stop, plan.delete, plan.wait, plan.skip, plan.fail) == (2, 1, 1, 2, 1)
    assert (plan.stop_indexes, plan.delete_indexes, plan.fail_indexes) == ("0-1", "2", "5")
    assert plan.reasons == {
        "AlreadyStopped": 1,
        "Delete": 1,
        "NotFound": 2,
        "Stop": 1,
        "StopBeforeDelete": 1,
        "Stopping": 1,
    }


async def test_dry_run_plan_says_why_for_each_target(api: FakeAiApi, clock: FakeClock):
    final = await run_to_end(spec_of(*mixed(api), dry_run=True), api, clock)
    assert final.plan is not None
    entry = {e.id: e for e in final.plan.entries}["dep-run2"]
    assert (entry.observed, entry.action, entry.reason) == (
        "RUNNING",
        PlanAction.STOP,
        "StopBeforeDelete",
    )
    assert "then delete" in entry.message


async def test_dry_run_ends_complete_with_reason_dry_run_and_counts_in_the_message(
    api: FakeAiApi, clock: FakeClock
):
    final = await run_to_end(spec_of(*mixed(api), dry_run=True), api, clock)
    complete = final.condition("Complete")
    assert complete is not None and complete.reason == "DryRun"
    assert "would stop 2, delete 1" in complete.message
    assert (final.succeeded, final.failed, final.pending) == (0, 0, 7)


async def test_dry_run_plan_sample_is_bounded(api: FakeAiApi, clock: FakeClock):
    targets = []
    for n in range(80):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
        targets.append((D, f"dep-{n:04d}", STOPPED))
    settings = EngineSettings(max_plan_entries=10)
    final = await run_to_end(spec_of(*targets, dry_run=True), api, clock, settings=settings)
    assert final.plan is not None
    assert (len(final.plan.entries), final.plan.entries_omitted, final.plan.stop) == (10, 70, 80)


async def test_dry_run_retries_an_observation_that_failed_transiently(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-run1", Status.RUNNING)
    api.fail_next["get"] = [TransientError("HTTP 502", retry_after=2)]
    final = await run_to_end(spec_of((D, "dep-run1", STOPPED), dry_run=True), api, clock)
    assert final.plan is not None and final.plan.stop == 1


# --- the plan predicts the failures a real run reports (against the simulator) ---


def _engine_on(sim_clock: SimClock, spec: BulkTerminationSpec, api: AiApiClient) -> Engine:
    async def sleep(seconds: float) -> None:
        sim_clock.advance(seconds)
        await asyncio.sleep(0)

    return Engine(
        spec,
        api,
        clock=lambda: EPOCH + timedelta(seconds=sim_clock()),
        sleep=sleep,
        rng=random.Random(0),
    )


async def _dry_then_real(
    sim: Simulator, sim_clock: SimClock, spec: BulkTerminationSpec
) -> tuple[Progress, Progress]:
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        dry = await _engine_on(sim_clock, spec.model_copy(update={"dry_run": True}), client).run()
        writes = [k for k, n in sim.counters.items() if n and k.startswith(("PATCH", "DELETE"))]
        assert writes == []
        real = await asyncio.wait_for(_engine_on(sim_clock, spec, client).run(), 60)
    return dry, real


def _failure_reasons(record: Progress) -> dict[str, int]:
    return dict(Counter(f.reason for f in record.failures))


async def test_dry_run_against_the_simulator_predicts_a_missing_stopped_target_not_found(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    sim.add_item(D, "dep-run1", Status.RUNNING)
    spec = spec_of((D, "dep-run1", STOPPED), (D, "dep-miss", STOPPED), dry_run=True)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        final = await _engine_on(sim_clock, spec, client).run()
    assert final.plan is not None
    assert (final.plan.fail, final.plan.failures) == (1, {"NotFound": 1})
    complete = final.condition("Complete")
    assert complete is not None and complete.reason == "DryRun"
    assert "1 would fail: NotFound 1" in complete.message


async def test_dry_run_predicts_no_targets_found_when_none_of_a_kind_exists(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    sim.add_item(E, "exe-run1", Status.RUNNING)
    spec = spec_of(
        (D, "dep-gone1", STOPPED),
        (D, "dep-gone2", DELETED),
        (E, "exe-run1", STOPPED),
        dry_run=True,
    )
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        final = await _engine_on(sim_clock, spec, client).run()
    plan = final.plan
    assert plan is not None
    # Both deployments fail NotFound in a real run, the DELETED one too: none was found.
    assert (plan.fail, plan.failures, plan.fail_indexes) == (2, {"NotFound": 2}, "0-1")
    assert plan.stop == 1
    assert (final.failed, final.pending) == (0, 3)  # a dry run finishes nothing
    complete = final.condition("Complete")
    assert complete is not None
    assert "2 would fail: NotFound 2" in complete.message
    assert "none of the deployments was found in resource group 'default'" in complete.message
    assert "NoTargetsFound" in complete.message


async def test_the_dry_run_prediction_equals_what_the_real_run_then_reports(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    sim = await simulator_factory(clock=sim_clock, timings=Timings())
    sim.add_item(D, "dep-run1", Status.RUNNING)
    sim.add_item(D, "dep-stp1", Status.STOPPED)
    sim.add_item(D, "dep-unk1", Status.UNKNOWN, hold=True)
    sim.add_item(D, "dep-unk2", Status.UNKNOWN, hold=True)
    spec = spec_of(
        (D, "dep-run1", DELETED),
        (D, "dep-stp1", STOPPED),
        (D, "dep-miss", STOPPED),  # NotFound
        (D, "dep-miss2", DELETED),  # success NotFound, not a failure
        (D, "dep-unk1", STOPPED),  # CannotStopUnknown (no grace)
        (D, "dep-unk2", DELETED),
        (E, "exe-gone1", STOPPED),  # no execution exists: NotFound (NoTargetsFound)
        (E, "exe-gone2", DELETED),
        unknown_grace_period_seconds=0,
        active_deadline_seconds=900,
    )
    dry, real = await _dry_then_real(sim, sim_clock, spec)
    assert dry.plan is not None
    assert dry.plan.failures == {"CannotStopUnknown": 1, "NotFound": 3}
    assert dry.plan.failures == _failure_reasons(real)
    assert dry.plan.fail == real.failed == 4
    failed = real.condition("Failed")
    assert failed is not None and failed.reason == "NoTargetsFound"
    complete = dry.condition("Complete")
    assert complete is not None and "NoTargetsFound" in complete.message
