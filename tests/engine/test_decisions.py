"""The decision table of DESIGN.md, row by row, for deployments and executions alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import (
    Action,
    Fault,
    InFlight,
    Limits,
    Memory,
    Observation,
    Source,
    Verdict,
    decide,
)
from bulkterm.engine.decisions import (
    remember_accepted,
    remember_not_found,
    remember_observation,
    remember_refused,
    remember_sent,
    remember_transient,
)
from bulkterm.spec import Target
from tests.engine.fake_api import START as T0

LIMITS = Limits(
    resend_timeout=timedelta(seconds=60), unknown_grace=timedelta(seconds=120), backoff_limit=3
)
KINDS = pytest.mark.parametrize("kind", list(Kind))
STOPPED, DELETED = TargetStatus.STOPPED, TargetStatus.DELETED


def target(kind: Kind, goal: TargetStatus) -> Target:
    return Target(kind=kind, id="item-0001", target_status=goal)


def seen(status: Status, target_status: str | None = None) -> Observation:
    return Observation(status=status, target_status=target_status)


def decide_for(
    kind: Kind,
    goal: TargetStatus,
    obs: Observation | None,
    mem: Memory | None = None,
    *,
    after: float = 0,
):
    return decide(
        target(kind, goal), obs, mem or Memory(), now=T0 + timedelta(seconds=after), limits=LIMITS
    )


# --- PENDING, RUNNING ---


@KINDS
@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING])
@pytest.mark.parametrize("goal", [STOPPED, DELETED])
def test_pending_or_running_item_is_stopped_first(kind, status, goal):
    d = decide_for(kind, goal, seen(status))
    assert (d.verdict, d.action) == (Verdict.SEND, Action.STOP)


@KINDS
def test_running_item_bound_for_deletion_says_it_will_be_deleted_after_the_stop(kind):
    d = decide_for(kind, DELETED, seen(Status.RUNNING))
    assert d.reason == "StopBeforeDelete"


@KINDS
@pytest.mark.parametrize("goal", [STOPPED, DELETED])
def test_running_item_with_a_stop_already_scheduled_is_waited_on(kind, goal):
    d = decide_for(kind, goal, seen(Status.RUNNING, "STOPPED"))
    assert (d.verdict, d.reason) == (Verdict.WAIT, "StopRequested")


# --- STOPPING ---


@KINDS
@pytest.mark.parametrize("goal", [STOPPED, DELETED])
def test_stopping_item_is_waited_on(kind, goal):
    d = decide_for(kind, goal, seen(Status.STOPPING, "STOPPED"))
    assert (d.verdict, d.reason) == (Verdict.WAIT, "Stopping")


# --- STOPPED ---


@KINDS
def test_stopped_item_is_done_when_it_must_be_stopped(kind):
    d = decide_for(kind, STOPPED, seen(Status.STOPPED))
    assert (d.verdict, d.reason) == (Verdict.DONE, "AlreadyStopped")


@KINDS
def test_stopped_item_counts_as_stopped_by_us_when_our_stop_was_accepted(kind):
    d = decide_for(kind, STOPPED, seen(Status.STOPPED), Memory(stop_accepted=True))
    assert (d.verdict, d.reason) == (Verdict.DONE, "Stopped")


@KINDS
def test_stopped_item_is_deleted_when_it_must_be_deleted(kind):
    d = decide_for(kind, DELETED, seen(Status.STOPPED))
    assert (d.verdict, d.action) == (Verdict.SEND, Action.DELETE)


@KINDS
def test_accepted_stop_does_not_hold_back_the_delete_once_stopped(kind):
    mem = Memory(in_flight=InFlight(Action.STOP, T0), stop_accepted=True)
    d = decide_for(kind, DELETED, seen(Status.STOPPED, "STOPPED"), mem, after=1)
    assert (d.verdict, d.action) == (Verdict.SEND, Action.DELETE)


# --- DEAD ---


@KINDS
def test_dead_item_is_done_and_says_it_was_already_dead(kind):
    d = decide_for(kind, STOPPED, seen(Status.DEAD))
    assert (d.verdict, d.reason) == (Verdict.DONE, "AlreadyDead")


@KINDS
def test_dead_item_is_deleted_when_it_must_be_deleted(kind):
    d = decide_for(kind, DELETED, seen(Status.DEAD))
    assert (d.verdict, d.action) == (Verdict.SEND, Action.DELETE)


# --- COMPLETED (executions; deployments handled defensively) ---


@KINDS
def test_completed_item_is_done_and_says_it_was_already_completed(kind):
    d = decide_for(kind, STOPPED, seen(Status.COMPLETED))
    assert (d.verdict, d.reason) == (Verdict.DONE, "AlreadyCompleted")


@KINDS
def test_completed_item_is_deleted_when_it_must_be_deleted(kind):
    d = decide_for(kind, DELETED, seen(Status.COMPLETED))
    assert (d.verdict, d.action) == (Verdict.SEND, Action.DELETE)


@KINDS
def test_refused_delete_of_a_completed_item_fails_with_the_apis_reason(kind):
    mem = Memory(retries=4, attempts=4, last_error=Fault("0101099", "cannot delete COMPLETED"))
    d = decide_for(kind, DELETED, seen(Status.COMPLETED), mem)
    assert (d.verdict, d.reason, d.code) == (Verdict.FAIL, "RetriesExhausted", "0101099")
    assert "cannot delete COMPLETED" in d.message


# --- UNKNOWN ---


@KINDS
def test_unknown_item_that_must_be_stopped_is_given_a_grace_period(kind):
    mem = remember_observation(Memory(), seen(Status.UNKNOWN), T0)
    d = decide_for(kind, STOPPED, seen(Status.UNKNOWN), mem, after=119)
    assert (d.verdict, d.reason) == (Verdict.WAIT, "UnknownStatus")
    assert d.wake_at == T0 + timedelta(seconds=120)


@KINDS
def test_unknown_item_that_must_be_stopped_fails_after_the_grace_period(kind):
    mem = remember_observation(Memory(), seen(Status.UNKNOWN), T0)
    d = decide_for(kind, STOPPED, seen(Status.UNKNOWN), mem, after=120)
    assert (d.verdict, d.reason, d.code) == (Verdict.FAIL, "CannotStopUnknown", "01010076")


@KINDS
def test_unknown_item_that_must_be_deleted_is_deleted_without_a_stop(kind):
    d = decide_for(kind, DELETED, seen(Status.UNKNOWN))
    assert (d.verdict, d.action) == (Verdict.SEND, Action.DELETE)


def test_unknown_since_survives_repeated_unknown_observations_and_clears_on_change():
    first = remember_observation(Memory(), seen(Status.UNKNOWN), T0)
    again = remember_observation(first, seen(Status.UNKNOWN), T0 + timedelta(seconds=30))
    resolved = remember_observation(again, seen(Status.PENDING), T0 + timedelta(seconds=40))
    assert again.unknown_since == T0
    assert resolved.unknown_since is None


# --- deletion in progress ---


@KINDS
@pytest.mark.parametrize("status", [Status.STOPPED, Status.DEAD, Status.UNKNOWN, Status.COMPLETED])
def test_item_being_deleted_is_waited_on(kind, status):
    d = decide_for(kind, DELETED, seen(status, "DELETED"))
    assert (d.verdict, d.reason) == (Verdict.WAIT, "DeletionInProgress")


@KINDS
def test_stopped_item_being_deleted_by_someone_else_is_done_for_a_stop_target(kind):
    d = decide_for(kind, STOPPED, seen(Status.STOPPED, "DELETED"))
    assert (d.verdict, d.reason) == (Verdict.DONE, "AlreadyStopped")


# --- gone ---


@KINDS
def test_missing_item_never_seen_in_this_run_is_not_found_not_already_deleted(kind):
    d = decide_for(kind, DELETED, Observation.not_found())
    assert (d.verdict, d.reason) == (Verdict.DONE, "NotFound")
    assert "never seen" in d.message


@KINDS
def test_item_seen_then_removed_by_someone_else_is_removed(kind):
    mem = remember_observation(Memory(), seen(Status.STOPPED), T0)
    d = decide_for(kind, DELETED, Observation.not_found(), mem)
    assert (d.verdict, d.reason) == (Verdict.DONE, "Removed")


@KINDS
def test_item_gone_after_a_restart_with_an_unconfirmed_delete_is_removed_not_deleted(kind):
    # Counting it "Deleted" would claim a DELETE no answer or read back ever confirmed.
    mem = Memory(in_flight=InFlight(Action.DELETE, T0), unconfirmed=True, seen=True)
    d = decide_for(kind, DELETED, Observation.not_found(Source.GET), mem, after=5)
    assert (d.verdict, d.reason) == (Verdict.DONE, "Removed")
    assert "cannot tell" in d.message


@KINDS
def test_item_that_vanished_after_its_stop_was_accepted_reached_its_target(kind):
    mem = remember_observation(Memory(), seen(Status.RUNNING), T0)
    mem = remember_accepted(mem, Action.STOP)
    d = decide_for(kind, STOPPED, Observation.not_found(), mem)
    assert (d.verdict, d.reason) == (Verdict.DONE, "Removed")
    assert "after its STOP was accepted" in d.message


@KINDS
def test_missing_item_after_our_accepted_delete_was_deleted(kind):
    mem = Memory(in_flight=InFlight(Action.DELETE, T0), delete_accepted=True)
    d = decide_for(kind, DELETED, Observation.not_found(), mem, after=5)
    assert (d.verdict, d.reason) == (Verdict.DONE, "Deleted")


@KINDS
def test_missing_item_that_must_be_stopped_fails_not_found(kind):
    d = decide_for(kind, STOPPED, Observation.not_found(Source.GET))
    assert (d.verdict, d.reason) == (Verdict.FAIL, "NotFound")


@KINDS
def test_a_404_right_after_unknown_is_checked_once_more_before_it_is_believed(kind):
    gone = Observation.not_found(Source.GET)
    once = remember_observation(remember_observation(Memory(), seen(Status.UNKNOWN), T0), gone, T0)
    twice = remember_observation(once, gone, T0)
    assert decide_for(kind, DELETED, gone, once).reason == "ConfirmingNotFound"
    assert decide_for(kind, DELETED, gone, twice).reason == "Removed"


# --- in flight, resend timeout, re-observation, retry budget ---


def test_unobserved_target_is_not_acted_on():
    d = decide_for(Kind.DEPLOYMENT, STOPPED, None)
    assert (d.verdict, d.reason) == (Verdict.WAIT, "NotObserved")


def test_accepted_stop_is_not_resent_while_the_item_has_not_moved_yet():
    mem = Memory(in_flight=InFlight(Action.STOP, T0), stop_accepted=True, attempts=1)
    d = decide_for(Kind.DEPLOYMENT, STOPPED, seen(Status.RUNNING), mem, after=59)
    assert (d.verdict, d.reason) == (Verdict.WAIT, "AwaitingEffect")
    assert d.wake_at == T0 + timedelta(seconds=60)


def test_accepted_stop_without_effect_is_resent_after_the_timeout_and_spends_a_retry():
    mem = Memory(in_flight=InFlight(Action.STOP, T0), stop_accepted=True, attempts=1)
    d = decide_for(Kind.DEPLOYMENT, STOPPED, seen(Status.RUNNING), mem, after=60)
    assert (d.verdict, d.action, d.lost) == (Verdict.SEND, Action.STOP, True)
    assert remember_sent(mem, d, T0).retries == 1


def test_accepted_delete_is_given_longer_to_show_than_a_stop():
    limits = Limits(
        resend_timeout=timedelta(seconds=60),
        unknown_grace=timedelta(0),
        backoff_limit=3,
        delete_resend_timeout=timedelta(seconds=600),
    )
    mem = Memory(in_flight=InFlight(Action.DELETE, T0), delete_accepted=True, attempts=1)
    later = T0 + timedelta(seconds=300)
    d = decide(
        target(Kind.DEPLOYMENT, DELETED), seen(Status.STOPPED), mem, now=later, limits=limits
    )
    assert (d.verdict, d.reason) == (Verdict.WAIT, "AwaitingEffect")


def test_lost_actions_exhaust_the_budget_like_refusals():
    mem = Memory(in_flight=InFlight(Action.STOP, T0), attempts=4, retries=3)
    d = decide_for(Kind.DEPLOYMENT, STOPPED, seen(Status.RUNNING), mem, after=60)
    assert (d.verdict, d.reason) == (Verdict.FAIL, "RetriesExhausted")


def test_refused_target_is_sent_again_on_a_fresh_observation_spending_a_retry():
    mem = remember_refused(Memory(attempts=1), Fault("400", "nope"))
    assert mem.retries == 1 and mem.in_flight is None
    fresh = remember_observation(mem, seen(Status.RUNNING), T0)
    assert decide_for(Kind.DEPLOYMENT, STOPPED, seen(Status.RUNNING), fresh).action is Action.STOP


def test_target_is_retried_up_to_its_budget_then_fails_with_the_last_api_error():
    mem = Memory()
    for _ in range(3):
        mem = remember_refused(mem, Fault("0102", "busy"))
        mem = remember_observation(mem, seen(Status.RUNNING), T0)
        assert decide_for(Kind.EXECUTION, STOPPED, seen(Status.RUNNING), mem).verdict is (
            Verdict.SEND
        )
    mem = remember_observation(
        remember_refused(mem, Fault("0102", "busy")), seen(Status.RUNNING), T0
    )
    d = decide_for(Kind.EXECUTION, STOPPED, seen(Status.RUNNING), mem)
    assert (d.verdict, d.reason, d.code) == (Verdict.FAIL, "RetriesExhausted", "0102")


def test_zero_backoff_limit_makes_the_first_refusal_final():
    limits = Limits(resend_timeout=timedelta(60), unknown_grace=timedelta(0), backoff_limit=0)
    mem = remember_observation(
        remember_refused(Memory(), Fault("x", "no")), seen(Status.RUNNING), T0
    )
    d = decide(target(Kind.DEPLOYMENT, STOPPED), seen(Status.RUNNING), mem, now=T0, limits=limits)
    assert d.reason == "RetriesExhausted"


def test_request_level_transient_failures_never_spend_a_retry():
    mem = Memory(in_flight=InFlight(Action.STOP, T0))
    for _ in range(1000):
        mem = remember_transient(mem, Fault(None, "HTTP 500"))
    assert (mem.retries, mem.in_flight) == (0, None)
    assert mem.last_error == Fault(None, "HTTP 500")


def test_a_404_on_a_single_write_spends_a_retry_every_few_times():
    mem = Memory()
    for _ in range(4):
        mem = remember_not_found(mem, Fault("404", "not found"), per_retry=5)
    assert mem.retries == 0
    assert remember_not_found(mem, Fault("404", "not found"), per_retry=5).retries == 1


def test_refusal_does_not_prevent_success_when_the_item_reached_its_target_anyway():
    mem = remember_observation(
        remember_refused(Memory(retries=9), Fault("x", "no")), seen(Status.STOPPED), T0
    )
    d = decide_for(Kind.DEPLOYMENT, STOPPED, seen(Status.STOPPED), mem)
    assert d.verdict is Verdict.DONE


# --- the safety rules, over every observation and memory ---

statuses = st.sampled_from(list(Status))
observations = st.one_of(
    st.none(),
    st.builds(
        Observation,
        status=statuses,
        target_status=st.sampled_from([None, "RUNNING", "COMPLETED", "STOPPED", "DELETED"]),
    ),
    st.builds(Observation.not_found, st.sampled_from(list(Source))),
)
memories = st.builds(
    Memory,
    in_flight=st.one_of(
        st.none(),
        st.builds(
            InFlight,
            st.sampled_from(list(Action)),
            st.integers(0, 200).map(lambda s: T0 + timedelta(seconds=s)),
        ),
    ),
    attempts=st.integers(0, 6),
    retries=st.integers(0, 6),
    stop_accepted=st.booleans(),
    delete_accepted=st.booleans(),
    last_status=st.one_of(st.none(), statuses),
    unknown_since=st.one_of(st.none(), st.just(T0)),
    gone_streak=st.integers(0, 3),
    seen=st.booleans(),
    unconfirmed=st.booleans(),
)


@given(
    kind=st.sampled_from(list(Kind)),
    goal=st.sampled_from(list(TargetStatus)),
    obs=observations,
    mem=memories,
    after=st.integers(0, 400),
)
def test_decisions_never_break_the_api_rules(kind, goal, obs, mem, after):
    d = decide_for(kind, goal, obs, mem, after=after)
    if d.verdict is not Verdict.SEND:
        return
    assert obs is not None and not obs.gone
    assert obs.target_status != "DELETED", "acted on an item already being deleted"
    if d.action is Action.DELETE:
        assert goal is DELETED
        assert obs.status not in (Status.RUNNING, Status.PENDING, Status.STOPPING)
    else:
        assert obs.status in (Status.RUNNING, Status.PENDING)
        assert obs.target_status != "STOPPED", "stopped an item already being stopped"
    assert not (goal is STOPPED and obs.status is Status.STOPPED), "acted on an item at target"
