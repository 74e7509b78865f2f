"""A finished run acknowledges a later spec change without acting on it."""

from __future__ import annotations

from typing import Any

from bulkterm.k8s.status import acknowledgement, unacknowledged


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
