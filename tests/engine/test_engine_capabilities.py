"""Bulk PATCH only where ``/meta`` allows it; otherwise single calls with bounded concurrency."""

from __future__ import annotations

from bulkterm.aiapi.errors import NotFoundError
from bulkterm.aiapi.models import BulkUpdates, Kind, Status
from bulkterm.engine import EngineSettings
from tests.engine.fake_api import FakeAiApi, FakeClock, refusal
from tests.engine.support import DELETED, STOPPED, D, E, reasons, run_to_end, spec_of


def no_bulk(clock: FakeClock) -> FakeAiApi:
    return FakeAiApi(clock, bulk_updates=BulkUpdates(deployments=False, executions=False))


async def test_meta_is_read_once_per_run(api: FakeAiApi, clock: FakeClock):
    for n in range(5):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    await run_to_end(spec_of(*[(D, f"dep-{n:04d}", DELETED) for n in range(5)]), api, clock)
    assert api.calls["meta"] == 1


async def test_without_bulk_updates_items_are_stopped_and_deleted_one_call_each(clock: FakeClock):
    api = no_bulk(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    api.add(E, "exe-0001", Status.STOPPED)
    final = await run_to_end(
        spec_of((D, "dep-0001", DELETED), (E, "exe-0001", DELETED)), api, clock
    )
    assert final.succeeded == 2
    assert (api.calls["stop deployments"], api.calls["delete deployments"]) == (1, 1)
    assert api.calls["delete executions"] == 1
    assert not any(k.startswith("bulk_patch") for k in api.calls)
    assert api.violations == []


async def test_bulk_updates_are_judged_per_kind(clock: FakeClock):
    api = FakeAiApi(clock, bulk_updates=BulkUpdates(deployments=True, executions=False))
    api.add(D, "dep-0001", Status.RUNNING)
    api.add(E, "exe-0001", Status.RUNNING)
    final = await run_to_end(
        spec_of((D, "dep-0001", STOPPED), (E, "exe-0001", STOPPED)), api, clock
    )
    assert (api.calls["bulk_patch deployments"], api.calls["stop executions"]) == (1, 1)
    assert final.capabilities is not None
    assert final.capabilities.bulk_updates.deployments is True
    assert final.capabilities.bulk_updates.executions is False


async def test_bulk_patch_refused_as_unsupported_falls_back_to_single_calls(
    api: FakeAiApi, clock: FakeClock
):
    api.bulk_refused.add(Kind.DEPLOYMENT)
    for n in range(3):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    final = await run_to_end(spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(3)]), api, clock)
    assert final.outcomes == {"Stopped": 3}
    assert api.calls["bulk_patch deployments"] == 1
    assert api.calls["stop deployments"] == 3
    assert final.capabilities is not None
    assert final.capabilities.bulk_updates.deployments is False


async def test_single_calls_run_with_bounded_concurrency(clock: FakeClock):
    api = no_bulk(clock)
    for n in range(40):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    spec = spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(40)])
    await run_to_end(spec, api, clock, settings=EngineSettings(single_call_concurrency=4))
    assert api.calls["stop deployments"] == 40
    assert 1 < api.max_concurrent_singles <= 4


async def test_single_delete_answered_404_costs_no_retry_and_ends_as_removed(
    clock: FakeClock,
):
    class VanishingOnDelete(FakeAiApi):
        async def delete(self, kind: Kind, item_id: str) -> None:
            self.items.pop((kind, item_id), None)
            self.calls[f"delete {kind.collection}"] += 1
            raise NotFoundError("not found", status_code=404)

    api = VanishingOnDelete(clock, bulk_updates=BulkUpdates())
    api.add(D, "dep-0001", Status.STOPPED)
    spec = spec_of((D, "dep-0001", DELETED), backoff_limit_per_target=0)
    final = await run_to_end(spec, api, clock)
    assert final.outcomes == {"Removed": 1}  # seen STOPPED, then gone
    assert final.failed == 0


async def test_single_call_rejection_is_recorded_against_the_target(clock: FakeClock):
    api = no_bulk(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    api.refuse["dep-0001"] = [refusal("412", "precondition failed")]
    spec = spec_of((D, "dep-0001", STOPPED), backoff_limit_per_target=0)
    final = await run_to_end(spec, api, clock)
    assert reasons(final) == {"dep-0001": "RetriesExhausted"}
    assert final.failures[0].code == "412"


async def test_single_call_rejection_within_budget_is_retried(clock: FakeClock):
    api = no_bulk(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    api.refuse["dep-0001"] = [refusal("412", "precondition failed")]
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert final.outcomes == {"Stopped": 1}
    assert api.calls["stop deployments"] == 2


async def test_a_completed_execution_is_deleted_with_the_single_call_even_with_bulk_on(
    clock: FakeClock,
) -> None:
    api = FakeAiApi(clock)  # bulk updates on for both kinds
    api.add(E, "exe-done", Status.COMPLETED)
    api.add(E, "exe-dead", Status.DEAD)
    final = await run_to_end(
        spec_of((E, "exe-done", DELETED), (E, "exe-dead", DELETED)), api, clock
    )
    assert final.outcomes == {"Deleted": 2}
    assert [(w.id, w.via) for w in api.sent] == [("exe-dead", "bulk"), ("exe-done", "single")]


async def test_a_bulk_delete_refused_for_an_item_now_completed_is_sent_as_the_single_call(
    clock: FakeClock,
) -> None:
    api = FakeAiApi(clock)
    api.add(E, "exe-0001", Status.STOPPED)
    api.refuse["exe-0001"] = [refusal("01010099", "Invalid request")]
    api.add(E, "exe-0001", Status.STOPPED)
    original = api.bulk_patch

    async def completes_meanwhile(kind, items):  # type: ignore[no-untyped-def]
        answer = await original(kind, items)
        api.items[(E, "exe-0001")].status = Status.COMPLETED  # the look was stale
        return answer

    api.bulk_patch = completes_meanwhile  # type: ignore[method-assign]
    final = await run_to_end(
        spec_of((E, "exe-0001", DELETED), backoff_limit_per_target=0), api, clock
    )
    assert final.outcomes == {"Deleted": 1}
    assert [w.via for w in api.sent] == ["bulk", "single"]


async def test_a_refused_bulk_delete_is_not_retried_as_a_single_call_for_the_words_of_its_message(
    clock: FakeClock,
) -> None:
    api = FakeAiApi(clock)
    api.add(E, "exe-0001", Status.STOPPED)
    api.refuse["exe-0001"] = [refusal("01010099", "Status COMPLETED cannot be deleted in bulk")]
    await run_to_end(spec_of((E, "exe-0001", DELETED), backoff_limit_per_target=1), api, clock)
    assert [w.via for w in api.sent] == ["bulk", "bulk"]  # re-observed STOPPED: bulk again
