"""A finished run acknowledges a later spec change without acting on it."""

from __future__ import annotations

from typing import Any

from bulkterm.k8s.status import acknowledgement, ignored_message, unacknowledged


def _finished(observed: int = 1) -> dict[str, Any]:
    return {
        "observedGeneration": observed,
        "conditions": [
            {
                "type": "Complete",
                "status": "True",
                "reason": "AllTargetsTerminated",
                "message": "all 3 targets reached their target status (3 Stopped)",
                "lastTransitionTime": "2026-11-30T01:00:00Z",
                "observedGeneration": observed,
            }
        ],
    }


def test_a_finished_run_behind_its_generation_is_unacknowledged() -> None:
    assert unacknowledged(_finished(observed=1), generation=2)
    assert not unacknowledged(_finished(observed=2), generation=2)


def test_a_running_or_new_run_is_the_reconciler_s_not_the_acknowledger_s() -> None:
    assert not unacknowledged({"observedGeneration": 0}, generation=1)
    assert not unacknowledged(None, generation=2)


def test_the_acknowledgement_moves_observed_generation_and_keeps_the_verdict() -> None:
    patch = acknowledgement(_finished(), generation=2)
    assert patch["observedGeneration"] == 2
    (condition,) = patch["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Complete",
        "True",
        "AllTargetsTerminated",
    )
    assert condition["lastTransitionTime"] == "2026-11-30T01:00:00Z"
    assert condition["observedGeneration"] == 2
    assert condition["message"].startswith("all 3 targets reached their target status")
    assert "changed to generation 2 after the run finished and was ignored" in condition["message"]


def test_a_second_change_replaces_the_note_instead_of_stacking_it() -> None:
    once = {**_finished(), **acknowledgement(_finished(), generation=2)}
    twice = acknowledgement(once, generation=3)
    message = twice["conditions"][0]["message"]
    assert message.count("the spec changed") == 1
    assert "generation 3" in message


def test_a_change_during_the_run_is_not_said_to_come_after_it() -> None:
    """The run went on with the spec it started with: that is what the note says, never that
    the change came after the end."""
    patch = acknowledgement(_finished(), generation=2, ran=1)
    assert patch["observedGeneration"] == 2
    (condition,) = patch["conditions"]
    assert (condition["status"], condition["reason"]) == ("True", "AllTargetsTerminated")
    assert condition["lastTransitionTime"] == "2026-11-30T01:00:00Z"
    message = condition["message"]
    assert message.startswith("all 3 targets reached their target status")
    assert "after the run finished" not in message
    assert "changed to generation 2 while the run was running and was ignored" in message
    assert "the run went on with the spec of generation 1" in message


def test_a_later_change_replaces_the_note_of_a_change_during_the_run() -> None:
    during = {**_finished(), **acknowledgement(_finished(), generation=2, ran=1)}
    after = acknowledgement(during, generation=3)
    message = after["conditions"][0]["message"]
    assert message.count("the spec changed") == 1
    assert "changed to generation 3 after the run finished" in message


def test_the_event_says_when_the_change_came() -> None:
    assert "after the run finished" in ignored_message(2)
    during = ignored_message(2, ran=1)
    assert "while the run was running" in during
    assert "after the run finished" not in during
    assert "a BulkTermination runs once" in during
