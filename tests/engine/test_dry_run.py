"""A dry run observes once, writes the plan into the record, and sends nothing."""

from __future__ import annotations

from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import EngineSettings, PlanAction
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, E, run_to_end, spec_of

WRITES = ("bulk_patch", "stop", "delete")


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
