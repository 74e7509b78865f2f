"""A target's memory never says "unconfirmed" without an action in flight to confirm: the
explorer found a run that crashed (promise 3) when a newer send, answered 429 or refused,
cleared the in-flight action but left the older send's doubt behind (seed 30335)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkterm.engine.decisions import (
    Action,
    Decision,
    Fault,
    InFlight,
    Memory,
    Verdict,
    remember_accepted,
    remember_not_found,
    remember_not_sent,
    remember_refused,
    remember_sent,
    remember_transient,
    remember_under_way,
    remember_unknown,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAULT = Fault(None, "x")


def _send(action: Action):  # type: ignore[no-untyped-def]
    return lambda m: remember_sent(m, Decision(Verdict.SEND, "Stop", "", action=action), NOW)


STEPS = {
    "send stop": _send(Action.STOP),
    "send delete": _send(Action.DELETE),
    "accepted stop": lambda m: remember_accepted(m, Action.STOP),
    "accepted delete": lambda m: remember_accepted(m, Action.DELETE),
    "under way": lambda m: remember_under_way(m, Action.DELETE, NOW),
    "not sent": remember_not_sent,
    "refused": lambda m: remember_refused(m, FAULT),
    "not found": lambda m: remember_not_found(m, FAULT, per_retry=3),
    "unknown answer": lambda m: remember_unknown(m, FAULT),
    "transient": lambda m: remember_transient(m, FAULT),
}
RESTORED_UNCONFIRMED = Memory(in_flight=InFlight(Action.STOP, NOW), unconfirmed=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(STEPS)), max_size=8), st.booleans())
def test_unconfirmed_always_has_an_action_in_flight(steps: list[str], restored: bool) -> None:
    mem = RESTORED_UNCONFIRMED if restored else Memory()
    for step in steps:
        mem = STEPS[step](mem)
        assert not mem.unconfirmed or mem.in_flight is not None, (steps, mem)


def test_seed_30335_keeps_every_promise() -> None:
    from tests.simulation.explorer import explore

    result = explore(30335)
    assert result.ok, "\n".join([result.description, *result.broken])
