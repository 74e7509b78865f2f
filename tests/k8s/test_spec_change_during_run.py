"""A spec change that reaches a running BulkTermination (the CRD refuses every change, so only
one the API server could not block: an older CRD without the order rules, a CRD replaced by
hand) is told as what it was: a change *while the run ran*, never one "after the run finished".

The operator learns of it from the API server's answers to its own status writes (each names
the CR's generation when the write landed): a change answered before the run's terminal write
is acknowledged by that very write; one only its answer shows, by the next write. Either way
the verdict and the indexes stay those of the spec the run started with, and the message says
so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.reconciler import is_terminal
from bulkterm.simulator import Simulator
from tests.k8s.support import REF, FakeEvents, FakeKube, condition, reconciler, spec

pytestmark = pytest.mark.simulator(bulk_updates=True)

CHANGED = REF.generation + 1
TARGETS = (("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-run2", "STOPPED"))


class SpecChangedAt(FakeKube):
    """The spec moves to generation ``CHANGED`` once ``when(status)`` holds for a write: from
    that write's answer on, the server reports the new generation."""

    def __init__(self, sim: Simulator, when: Any) -> None:
        super().__init__(sim)
        self.generation = REF.generation
        self._when = when

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int | None:
        if self._when(status):
            self.generation = CHANGED
        return await super().patch_status(namespace, name, status)


def _seed(simulator: Simulator) -> None:
    for _, item_id, _ in TARGETS:
        simulator.add_item(Kind.DEPLOYMENT, item_id, Status.RUNNING)


def _notes(kube: FakeKube, events: FakeEvents) -> list[str]:
    messages = [str(c.get("message", "")) for c in kube.status["conditions"]]
    return messages + [m for _, _, m in events.posted]


async def test_a_change_answered_during_the_run_is_acknowledged_as_during_it(
    simulator: Simulator, events: FakeEvents
) -> None:
    _seed(simulator)
    kube = SpecChangedAt(simulator, lambda status: "startTime" in status)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    await reconciler(kube, events, spec(*TARGETS)).run(asyncio.Event())
    status = kube.status
    complete = condition(status, "Complete")
    assert (complete["status"], complete["reason"]) == ("True", "AllTargetsTerminated")
    assert status["observedGeneration"] == CHANGED
    assert all(c["observedGeneration"] == CHANGED for c in status["conditions"])
    during = f"the spec changed to generation {CHANGED} while the run was running"
    assert during in complete["message"]
    assert f"the run went on with the spec of generation {REF.generation}" in complete["message"]
    assert not any("after the run finished" in m for m in _notes(kube, events))
    ignored = [m for t, r, m in events.posted if r == "SpecChangeIgnored"]
    assert (
        len(ignored) == 1 and during in ignored[0] and events.posted[-1][1] == "SpecChangeIgnored"
    )
    # The acknowledgement rode with the terminal write: no status ever said "finished, not
    # observed" for a spec the server already had at a newer generation.
    terminal = [w for w in kube.writes if "conditions" in w and is_terminal(w)]
    assert terminal and all(w.get("observedGeneration") == CHANGED for w in terminal)


async def test_a_change_only_the_terminal_write_answers_is_acknowledged_next(
    simulator: Simulator, events: FakeEvents
) -> None:
    """The change landed between the run's last write and its terminal one: it came before the
    end was on the server, so it was a change during the run too."""
    _seed(simulator)
    kube = SpecChangedAt(simulator, is_terminal)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    await reconciler(kube, events, spec(*TARGETS)).run(asyncio.Event())
    status = kube.status
    assert status["observedGeneration"] == CHANGED
    complete = condition(status, "Complete")
    assert complete["status"] == "True"
    assert f"changed to generation {CHANGED} while the run was running" in complete["message"]
    assert not any("after the run finished" in m for m in _notes(kube, events))
    assert [r for _, r, _ in events.posted].count("SpecChangeIgnored") == 1


async def test_no_change_no_acknowledgement(simulator: Simulator, events: FakeEvents) -> None:
    _seed(simulator)
    kube = SpecChangedAt(simulator, lambda status: False)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    await reconciler(kube, events, spec(*TARGETS)).run(asyncio.Event())
    status = kube.status
    assert status["observedGeneration"] == REF.generation
    assert "spec changed" not in condition(status, "Complete")["message"]
    assert "SpecChangeIgnored" not in events.reasons()
