"""A Secret's bounds: what its key may be spent on (resource groups, STOP or DELETE, how many
targets). A run outside them stalls ``OutsideSecretBounds`` before its key is even parsed, and
proceeds by itself once the Secret's owner widens them."""

from __future__ import annotations

import asyncio
import json

import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.k8s.secret_bounds import (
    MAX_TARGETS,
    RESOURCE_GROUPS,
    TARGET_STATUSES,
    SecretProblem,
    SecretUse,
    check_bounds,
)
from bulkterm.k8s.secret_use import GRANT_ANNOTATION
from bulkterm.simulator import Simulator
from bulkterm.spec import BulkTerminationSpec
from tests.k8s.support import NS, FakeEvents, FakeKube, condition, reconciler, spec

STOP_ONLY = {TARGET_STATUSES: "STOPPED"}


def use(group: str = "default", *statuses: TargetStatus, targets: int = 3) -> SecretUse:
    return SecretUse(group, frozenset(statuses or {TargetStatus.STOPPED}), targets)


def test_a_secret_without_bounds_may_be_spent_on_anything() -> None:
    check_bounds(None, NS, "aicore", use("any", TargetStatus.DELETED, targets=100_000))
    check_bounds({GRANT_ANNOTATION: "*"}, NS, "aicore", use("any", TargetStatus.DELETED))


def test_each_bound_crossed_is_named_with_the_value_it_refuses() -> None:
    bounds = {RESOURCE_GROUPS: "team-a-*, default", TARGET_STATUSES: "STOPPED", MAX_TARGETS: "50"}
    check_bounds(bounds, NS, "aicore", use("team-a-prod", targets=50))
    with pytest.raises(SecretProblem) as refused:
        check_bounds(bounds, NS, "aicore", use("team-b", TargetStatus.DELETED, targets=51))
    assert refused.value.reason == "OutsideSecretBounds"
    message = refused.value.message
    assert f"Secret {NS}/aicore" in message
    assert "resource group 'team-b'" in message and RESOURCE_GROUPS in message
    assert "target status DELETED" in message and TARGET_STATUSES in message
    assert "51 targets" in message and f"{MAX_TARGETS} of 50" in message


@pytest.mark.parametrize(
    "bounds",
    [{TARGET_STATUSES: "STOPPED,REMOVED"}, {MAX_TARGETS: "ten"}, {MAX_TARGETS: "0"}],
    ids=["unknown-status", "not-a-number", "zero"],
)
def test_a_bound_that_cannot_be_read_fails_closed(bounds: dict[str, str]) -> None:
    with pytest.raises(SecretProblem) as refused:
        check_bounds(bounds, NS, "aicore", use())
    assert refused.value.reason == "InvalidSecretBounds"
    assert next(iter(bounds)) in refused.value.message


def test_a_selector_counts_with_its_max_targets() -> None:
    body = BulkTerminationSpec.model_validate(
        {
            "connection": {"secretRef": {"name": "aicore"}},
            "targets": [
                {"kind": "Deployment", "id": "dep-0001", "targetStatus": "DELETED"},
                {"kind": "Deployment", "id": "dep-0002", "targetStatus": "DELETED"},
            ],
            "selector": {
                "kind": "Execution",
                "targetStatus": "STOPPED",
                "statuses": ["RUNNING"],
                "maxTargets": 40,
            },
        }
    )
    assert SecretUse.of(body) == SecretUse(
        "default", frozenset({TargetStatus.DELETED, TargetStatus.STOPPED}), 42
    )


async def _stalled(kube: FakeKube) -> dict[str, str]:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if kube.writes and condition(kube.status, "Stalled")["status"] == "True":
            return condition(kube.status, "Stalled")
    raise AssertionError(f"never stalled: {kube.status}")


async def test_a_run_outside_the_bounds_sends_nothing_and_resumes_once_they_are_widened(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-gone1", Status.STOPPED)
    kube = FakeKube(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    kube.annotations[(NS, "aicore")].update(STOP_ONLY)
    task = asyncio.create_task(
        reconciler(kube, events, spec(("Deployment", "dep-gone1", "DELETED"))).run(asyncio.Event())
    )
    stalled = await _stalled(kube)
    assert stalled["reason"] == "OutsideSecretBounds"
    assert "target status DELETED" in stalled["message"]
    assert events.warnings() == ["OutsideSecretBounds"]
    assert sum(simulator.counters.values()) == 0  # not even a token request
    assert simulator.config.client_secret not in json.dumps(kube.writes) + json.dumps(events.posted)

    kube.annotations[(NS, "aicore")][TARGET_STATUSES] = "STOPPED,DELETED"
    await asyncio.wait_for(task, 10)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert simulator.item(Kind.DEPLOYMENT, "dep-gone1") is None
