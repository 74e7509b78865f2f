"""Whole runs against the in-memory AI API: each target ends where the decision table says."""

from __future__ import annotations

from bulkterm.aiapi.models import Status, TargetStatus
from bulkterm.engine import EngineSettings
from tests.engine.fake_api import FakeAiApi, FakeClock, refusal
from tests.engine.support import DELETED, STOPPED, D, E, reasons, run_to_end, spec_of


async def test_running_deployment_is_stopped(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert api.status_of(D, "dep-0001") is Status.STOPPED
    assert final.outcomes == {"Stopped": 1}
    assert api.violations == []


async def test_running_item_bound_for_deletion_gets_a_stop_then_a_delete_in_separate_requests(
    api: FakeAiApi, clock: FakeClock
):
    api.add(E, "exe-0001", Status.RUNNING)
    final = await run_to_end(spec_of((E, "exe-0001", DELETED)), api, clock)
    writes = api.writes_to("exe-0001")
    assert [w.action for w in writes] == [TargetStatus.STOPPED, TargetStatus.DELETED]
    assert writes[0].request != writes[1].request
    assert api.status_of(E, "exe-0001") is None
    assert final.outcomes == {"Deleted": 1}


async def test_pending_item_is_stopped_like_a_running_one(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.PENDING)
    await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert api.status_of(D, "dep-0001") is Status.STOPPED


async def test_items_already_at_their_target_are_left_alone(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.STOPPED)
    api.add(E, "exe-0001", Status.DEAD)
    api.add(E, "exe-0002", Status.COMPLETED)
    spec = spec_of(
        (D, "dep-0001", STOPPED),
        (E, "exe-0001", STOPPED),
        (E, "exe-0002", STOPPED),
        (D, "dep-gone", DELETED),
    )
    final = await run_to_end(spec, api, clock)
    assert api.sent == []
    assert final.outcomes == {
        "AlreadyCompleted": 1,
        "AlreadyDead": 1,
        "AlreadyStopped": 1,
        "NotFound": 1,
    }
    assert final.condition("Complete") is not None


async def test_dead_and_completed_items_bound_for_deletion_are_deleted_without_a_stop(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-dead", Status.DEAD)
    api.add(E, "exe-done", Status.COMPLETED)
    spec = spec_of((D, "dep-dead", DELETED), (E, "exe-done", DELETED))
    final = await run_to_end(spec, api, clock)
    assert [w.action for w in api.sent] == [TargetStatus.DELETED, TargetStatus.DELETED]
    assert final.outcomes == {"Deleted": 2}


async def test_missing_item_that_must_be_stopped_fails_the_run(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    spec = spec_of((D, "dep-0001", STOPPED), (D, "dep-miss", STOPPED))
    final = await run_to_end(spec, api, clock)
    assert reasons(final) == {"dep-miss": "NotFound"}
    assert (final.succeeded, final.failed) == (1, 1)
    failed = final.condition("Failed")
    assert failed is not None and failed.reason == "FailedTargets"
    assert final.completion_time is None


async def test_unknown_item_that_must_be_stopped_fails_once_the_grace_period_is_over(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-unkn", Status.UNKNOWN)
    spec = spec_of((D, "dep-unkn", STOPPED), unknown_grace_period_seconds=30)
    final = await run_to_end(spec, api, clock)
    assert api.sent == []
    (failure,) = final.failures
    assert (failure.reason, failure.code) == ("CannotStopUnknown", "01010076")
    assert sum(clock.slept) >= 30


async def test_unknown_item_that_resolves_within_the_grace_period_is_stopped(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-unkn", Status.UNKNOWN)
    api.schedule(D, "dep-unkn", 20, Status.RUNNING)
    final = await run_to_end(spec_of((D, "dep-unkn", STOPPED)), api, clock)
    assert final.outcomes == {"Stopped": 1}
    assert api.violations == []


async def test_unknown_item_bound_for_deletion_is_deleted_directly(
    api: FakeAiApi, clock: FakeClock
):
    api.add(E, "exe-unkn", Status.UNKNOWN)
    await run_to_end(spec_of((E, "exe-unkn", DELETED)), api, clock)
    assert [w.action for w in api.sent] == [TargetStatus.DELETED]


async def test_refused_delete_of_a_completed_execution_fails_with_the_apis_own_code(
    api: FakeAiApi, clock: FakeClock
):
    api.add(E, "exe-done", Status.COMPLETED)
    api.refuse["exe-done"] = [refusal("0101099", "COMPLETED cannot be deleted")] * 10
    spec = spec_of((E, "exe-done", DELETED), backoff_limit_per_target=2)
    final = await run_to_end(spec, api, clock)
    (failure,) = final.failures
    assert (failure.reason, failure.code, failure.attempts) == ("RetriesExhausted", "0101099", 3)
    assert "COMPLETED cannot be deleted" in failure.message


async def test_items_not_in_the_spec_are_never_touched(api: FakeAiApi, clock: FakeClock):
    for n in range(20):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    await run_to_end(spec_of((D, "dep-0003", STOPPED), (D, "dep-0004", DELETED)), api, clock)
    assert {w.id for w in api.sent} == {"dep-0003", "dep-0004"}
    assert sum(api.status_of(D, f"dep-{n:04d}") is Status.RUNNING for n in range(20)) == 18


async def test_success_sets_completion_time_and_the_complete_condition(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    complete, ready = final.condition("Complete"), final.condition("Ready")
    assert complete is not None and complete.reason == "AllTargetsTerminated"
    assert ready is not None and ready.status == "True"
    assert final.completion_time is not None and final.start_time is not None


async def test_item_that_dies_while_being_stopped_is_done(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.STOPPING, target_status="STOPPED")
    api.schedule(D, "dep-0001", 1, Status.DEAD)
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert final.outcomes == {"AlreadyDead": 1}
    assert api.sent == []


async def test_250_mixed_targets_are_sent_in_as_few_bulk_requests_as_the_rules_allow(
    api: FakeAiApi, clock: FakeClock
):
    targets = []
    for n in range(150):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
        targets.append((D, f"dep-{n:04d}", STOPPED))
    for n in range(100):
        api.add(E, f"exe-{n:04d}", Status.STOPPED)
        targets.append((E, f"exe-{n:04d}", DELETED))
    final = await run_to_end(spec_of(*targets), api, clock)
    assert final.succeeded == 250
    assert api.calls["bulk_patch deployments"] == 2
    assert api.calls["bulk_patch executions"] == 1
    assert api.violations == []


async def test_spec_batch_size_caps_every_request(api: FakeAiApi, clock: FakeClock):
    for n in range(25):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    spec = spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(25)], batch_size=10)
    await run_to_end(spec, api, clock)
    sizes: dict[int, int] = {}
    for w in api.sent:
        sizes[w.request] = sizes.get(w.request, 0) + 1
    assert sorted(sizes.values()) == [5, 10, 10]


async def test_settings_are_optional_and_defaults_finish_a_run(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(
        spec_of((D, "dep-0001", STOPPED)), api, clock, settings=EngineSettings()
    )
    assert final.succeeded == 1
