"""The progress record is the CR status: its shape, its bounds, and its conditions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bulkterm.aiapi.models import Status
from bulkterm.engine import (
    Condition,
    EngineSettings,
    Phase,
    Progress,
    Situation,
    build_conditions,
    with_observed_generation,
)
from tests.engine.fake_api import START, FakeAiApi, FakeClock
from tests.engine.support import STOPPED, D, make_run, run_to_end, spec_of, wait_until
from tests.hosts import CallbackHost

LATER = START + timedelta(minutes=5)
RUNNING = Situation(Phase.RUNNING, "Running", "0/3 finished")


def by_type(conditions: list[Condition]) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in conditions}


# --- conditions (style-anchors §4.3) ---


def test_first_visit_has_reconciling_stalled_and_ready_and_nothing_terminal():
    assert by_type(build_conditions([], RUNNING, now=START)) == {
        "Reconciling": ("True", "Running"),
        "Stalled": ("False", "Running"),
        "Ready": ("False", "Running"),
    }


def test_transient_trouble_keeps_reconciling_with_reason_retrying():
    retrying = Situation(Phase.RETRYING, "Retrying", "HTTP 503; retrying in 4s")
    assert by_type(build_conditions([], retrying, now=START))["Reconciling"] == (
        "True",
        "Retrying",
    )


def test_unauthorized_stalls_without_being_terminal():
    stalled = Situation(Phase.STALLED, "Unauthorized", "401")
    got = by_type(build_conditions([], stalled, now=START))
    assert got == {
        "Reconciling": ("False", "Unauthorized"),
        "Stalled": ("True", "Unauthorized"),
        "Ready": ("False", "Unauthorized"),
    }


def test_success_sets_ready_and_complete():
    done = Situation(Phase.COMPLETE, "AllTargetsTerminated", "3/3")
    got = by_type(build_conditions([], done, now=START))
    assert got["Ready"] == ("True", "Complete")
    assert got["Complete"] == ("True", "AllTargetsTerminated")
    assert "Failed" not in got


def test_failure_sets_failed_and_stalled_with_the_same_reason():
    failed = Situation(Phase.FAILED, "DeadlineExceeded", "deadline")
    got = by_type(build_conditions([], failed, now=START))
    assert got["Failed"] == ("True", "DeadlineExceeded")
    assert got["Stalled"] == ("True", "DeadlineExceeded")
    assert "Complete" not in got


def test_reconciling_and_stalled_are_never_both_true():
    for phase, reason in [
        (Phase.RUNNING, "Running"),
        (Phase.RETRYING, "Retrying"),
        (Phase.STALLED, "Unauthorized"),
        (Phase.COMPLETE, "AllTargetsTerminated"),
        (Phase.FAILED, "FailedTargets"),
    ]:
        got = by_type(build_conditions([], Situation(phase, reason, ""), now=START))
        assert not (got["Reconciling"][0] == "True" and got["Stalled"][0] == "True")


def test_last_transition_time_moves_only_when_the_status_changes():
    first = build_conditions([], RUNNING, now=START)
    retrying = build_conditions(first, Situation(Phase.RETRYING, "Retrying", "503"), now=LATER)
    times = {c.type: c.last_transition_time for c in retrying}
    assert times["Reconciling"] == START  # still True; only reason and message changed
    stalled = build_conditions(retrying, Situation(Phase.STALLED, "Unauthorized", ""), now=LATER)
    assert {c.type: c.last_transition_time for c in stalled}["Stalled"] == LATER


def test_terminal_conditions_never_flip_back():
    done = build_conditions([], Situation(Phase.COMPLETE, "AllTargetsTerminated", ""), now=START)
    again = build_conditions(done, RUNNING, now=LATER)
    assert again == done


def test_observed_generation_goes_on_every_condition():
    conditions = build_conditions([], RUNNING, now=START, observed_generation=3)
    assert {c.observed_generation for c in conditions} == {3}


def test_the_operator_can_stamp_observed_generation_on_a_record():
    record = Progress(conditions=build_conditions([], RUNNING, now=START))
    stamped = with_observed_generation(record, 7).to_status()
    assert stamped["observedGeneration"] == 7
    assert all(c["observedGeneration"] == 7 for c in stamped["conditions"])  # type: ignore[attr-defined]


# --- the record's shape ---


async def test_status_is_camel_case_json_without_nulls(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    status = final.to_status()
    assert {"completedIndexes", "startTime", "completionTime"} <= status.keys()
    assert "failedIndexes" not in status and "failures" not in status  # empty: left out
    assert status["capabilities"] == {"bulkUpdates": {"deployments": True, "executions": True}}
    assert status["startTime"] == "2025-01-01T00:00:00Z"  # RFC 3339, whole seconds, UTC
    assert "observedGeneration" not in status
    assert None not in status.values()


async def test_record_round_trips_through_its_json(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert Progress.model_validate(final.to_status()).to_status() == final.to_status()


async def test_record_holds_no_credentials(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    spec = spec_of(
        (D, "dep-0001", STOPPED), connection={"secretRef": {"name": "aicore-key", "key": "k"}}
    )
    final = await run_to_end(spec, api, clock)
    assert "aicore-key" not in final.model_dump_json()


async def test_in_flight_sample_is_bounded_while_the_groups_cover_every_target(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=100)
    for n in range(200):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
    spec = spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(200)])
    run = make_run(spec, api, clock, settings=EngineSettings(max_in_flight_entries=50))
    task = asyncio.create_task(run())
    await wait_until(lambda: any(s.active == 200 for s in run.snapshots))
    task.cancel()
    mid = next(s for s in run.snapshots if s.active == 200)
    assert len(mid.in_flight) == 50
    assert mid.in_flight_groups is not None
    assert [g.indexes for g in mid.in_flight_groups] == ["0-199"]


async def test_failures_list_is_capped_while_the_failed_counter_counts_all(
    api: FakeAiApi, clock: FakeClock
):
    spec = spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(150)])
    final = await run_to_end(spec, api, clock, settings=EngineSettings(max_failure_entries=100))
    assert (final.failed, len(final.failures)) == (150, 100)
    assert final.failed_indexes == "0-149"


async def test_progress_reads_finished_over_total(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(
        spec_of((D, "dep-0001", STOPPED), (D, "dep-miss", STOPPED)), api, clock
    )
    assert final.progress == "2/2"


async def test_first_report_comes_before_any_api_call(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    calls_at_first_report: list[int] = []
    run = make_run(spec_of((D, "dep-0001", STOPPED)), api, clock)

    async def on_progress(p: Progress) -> None:
        calls_at_first_report.append(sum(api.calls.values()))

    await run.engine.run(CallbackHost(on_progress))
    assert calls_at_first_report[0] == 0
