"""Transient errors, refusals, lost actions, revoked credentials and the run's deadline."""

from __future__ import annotations

import itertools

import pytest

from bulkterm.aiapi.errors import AuthError, TransientError
from bulkterm.aiapi.models import Status
from bulkterm.engine import EngineSettings
from tests.engine.fake_api import FakeAiApi, FakeClock, auth_error, refusal
from tests.engine.support import DELETED, STOPPED, D, E, make_run, reasons, run_to_end, spec_of


def http_503(retry_after: float | None = None) -> TransientError:
    return TransientError("HTTP 503 from the AI API", retry_after=retry_after, status_code=503)


async def test_transient_error_backs_off_for_at_least_retry_after(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["bulk_patch"] = [http_503(retry_after=30)]
    run = make_run(spec_of((D, "dep-0001", STOPPED)), api, clock)
    final = await run()
    assert final.outcomes == {"Stopped": 1}
    assert 30 <= max(clock.slept) < 31
    retrying = [p.condition("Reconciling") for p in run.snapshots]
    assert any(c is not None and c.reason == "Retrying" for c in retrying)
    assert "HTTP 503" in next(c.message for c in retrying if c and c.reason == "Retrying")


async def test_transient_errors_do_not_spend_the_targets_retry_budget(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["bulk_patch"] = [http_503(), http_503(), http_503()]
    spec = spec_of((D, "dep-0001", STOPPED), backoff_limit_per_target=0)
    final = await run_to_end(spec, api, clock)
    assert final.outcomes == {"Stopped": 1}


async def test_an_outage_of_bulk_patch_spends_no_retries_and_the_deadline_names_the_error(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["bulk_patch"] = [http_503() for _ in range(500)]
    spec = spec_of(
        (D, "dep-0001", STOPPED), backoff_limit_per_target=1, active_deadline_seconds=720
    )
    settings = EngineSettings(transient_errors_per_retry=3, backoff_max_seconds=2)
    final = await run_to_end(spec, api, clock, settings=settings)
    assert reasons(final) == {"dep-0001": "DeadlineExceeded"}
    assert api.calls["bulk_patch deployments"] > 6  # far past the budget of 1 retry
    assert "last error: HTTP 503" in final.failures[0].message
    failed = final.condition("Failed")
    assert failed is not None and "last error: HTTP 503" in failed.message


async def test_a_run_recovers_from_an_outage_longer_than_the_retry_budget(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["bulk_patch"] = [http_503() for _ in range(40)]
    spec = spec_of((D, "dep-0001", STOPPED), backoff_limit_per_target=1)
    settings = EngineSettings(transient_errors_per_retry=3, backoff_max_seconds=2)
    final = await run_to_end(spec, api, clock, settings=settings)
    assert final.outcomes == {"Stopped": 1}
    assert final.failed == 0


async def test_transient_errors_while_observing_are_retried(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["get"] = [http_503(), http_503()]
    api.fail_next["meta"] = [http_503()]
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    assert final.outcomes == {"Stopped": 1}


async def test_per_item_error_is_recorded_and_the_item_looked_at_again_before_a_resend(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    api.refuse["dep-0001"] = [refusal("0103", "try later")]
    final = await run_to_end(spec_of((D, "dep-0001", STOPPED)), api, clock)
    first, second = api.writes_to("dep-0001")
    assert second.at > first.at  # a later round, i.e. after a fresh observation
    assert final.outcomes == {"Stopped": 1}


async def test_per_item_errors_exhaust_the_budget_with_the_apis_code_and_message(
    api: FakeAiApi, clock: FakeClock
):
    api.add(E, "exe-0001", Status.RUNNING)
    api.refuse["exe-0001"] = [refusal("0103", "try later")] * 10
    spec = spec_of((E, "exe-0001", STOPPED), backoff_limit_per_target=3)
    final = await run_to_end(spec, api, clock)
    (failure,) = final.failures
    assert (failure.reason, failure.code, failure.attempts) == ("RetriesExhausted", "0103", 4)
    assert "try later" in failure.message
    assert failure.last_attempt_time is not None


async def test_accepted_stop_without_effect_is_resent_only_after_the_resend_timeout(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-lost", Status.RUNNING)
    api.ineffective.add("dep-lost")
    spec = spec_of((D, "dep-lost", STOPPED), backoff_limit_per_target=2)
    settings = EngineSettings(resend_timeout_seconds=10)
    final = await run_to_end(spec, api, clock, settings=settings)
    times = [w.at for w in api.writes_to("dep-lost")]
    assert len(times) == 3
    assert all((b - a).total_seconds() >= 10 for a, b in itertools.pairwise(times))
    assert reasons(final) == {"dep-lost": "RetriesExhausted"}


async def test_auth_error_stalls_the_run_and_is_raised(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    api.always_fail = auth_error()
    run = make_run(spec_of((D, "dep-0001", STOPPED)), api, clock)
    with pytest.raises(AuthError):
        await run()
    last = run.snapshots[-1]
    stalled, reconciling = last.condition("Stalled"), last.condition("Reconciling")
    assert stalled is not None and (stalled.status, stalled.reason) == ("True", "Unauthorized")
    assert reconciling is not None and reconciling.status == "False"
    assert not last.terminal


async def test_auth_error_while_sending_leaves_nothing_in_flight(api: FakeAiApi, clock: FakeClock):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["bulk_patch"] = [auth_error()]
    run = make_run(spec_of((D, "dep-0001", STOPPED)), api, clock)
    with pytest.raises(AuthError):
        await run()
    assert run.snapshots[-1].active == 0
    assert run.engine.progress.in_flight == []


async def test_a_stalled_run_carries_on_from_its_record_once_credentials_work(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    api.fail_next["list"] = [auth_error()]
    api.fail_next["get"] = [auth_error()]
    spec = spec_of((D, "dep-0001", STOPPED))
    first = make_run(spec, api, clock)
    with pytest.raises(AuthError):
        await first()
    final = await run_to_end(spec, api, clock, record=first.snapshots[-1])
    stalled = final.condition("Stalled")
    assert stalled is not None and stalled.status == "False"
    assert final.outcomes == {"Stopped": 1}


async def test_deadline_fails_every_unfinished_target(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=10_000)
    api.add(D, "dep-slow", Status.RUNNING)
    api.add(D, "dep-fast", Status.STOPPED)
    spec = spec_of((D, "dep-slow", STOPPED), (D, "dep-fast", STOPPED), active_deadline_seconds=60)
    final = await run_to_end(spec, api, clock)
    assert reasons(final) == {"dep-slow": "DeadlineExceeded"}
    assert "last seen STOPPING" in final.failures[0].message
    failed = final.condition("Failed")
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert final.completion_time is None
    assert (final.succeeded, final.failed) == (1, 1)


async def test_sleeps_never_overshoot_the_deadline(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=10_000)
    api.add(D, "dep-slow", Status.RUNNING)
    spec = spec_of((D, "dep-slow", DELETED), active_deadline_seconds=45, poll_interval_seconds=30)
    await run_to_end(spec, api, clock)
    assert sum(clock.slept) == 45
