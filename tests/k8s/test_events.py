"""Events of one run: milestones as they happen, progress aggregated."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bulkterm.aiapi.models import Kind
from bulkterm.engine import Failure, Progress
from bulkterm.engine.reporting import Milestone, RunEvent
from bulkterm.k8s.events import RunEvents
from tests.k8s.support import FakeEvents


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def record(**fields: Any) -> Progress:
    return Progress(total=10, progress="0/10", **fields)


def test_batches_are_aggregated_per_interval() -> None:
    sink, clock, calls = FakeEvents(), Clock(), Counter[str]()
    events = RunEvents(sink, interval=10.0, clock=clock)
    events.count_calls(calls)
    calls["bulk_patch deployments"] += 1
    events.progress(record())
    calls["bulk_patch deployments"] += 2
    calls["list deployments"] += 50  # reads are not batches
    clock.now = 5.0
    events.progress(record())
    clock.now = 11.0
    events.progress(record())
    assert [m for _, r, m in sink.posted if r == "BatchSubmitted"] == [
        "1 write request(s) sent to the AI API; 0/10 finished, 0 in flight",
        "2 write request(s) sent to the AI API; 0/10 finished, 0 in flight",
    ]


def test_a_new_client_counts_from_zero() -> None:
    """After a stall the run continues with a new client whose counter starts again."""
    sink = FakeEvents()
    events = RunEvents(sink, interval=0.0)
    first = Counter({"bulk_patch deployments": 5})
    events.count_calls(first)
    events.progress(record())
    second = Counter({"bulk_patch deployments": 2})
    events.count_calls(second)
    events.progress(record(), final=True)
    assert sink.reasons() == ["BatchSubmitted", "BatchSubmitted"]
    assert sink.posted[1][2].startswith("2 write request(s)")


def test_each_failed_target_is_reported_once() -> None:
    sink = FakeEvents()
    events = RunEvents(sink)
    failures = [
        Failure(index=i, kind=Kind.DEPLOYMENT, id=f"dep-{i:03d}", reason="NotFound", message="")
        for i in range(7)
    ]
    events.progress(record(failures=failures[:2]))
    events.progress(record(failures=failures))
    assert [m for _, r, m in sink.posted if r == "TargetFailed"] == [
        "2 target(s) failed: Deployment dep-000: NotFound; Deployment dep-001: NotFound",
        "5 target(s) failed: Deployment dep-002: NotFound; Deployment dep-003: NotFound; "
        "Deployment dep-004: NotFound; Deployment dep-005: NotFound; "
        "Deployment dep-006: NotFound",
    ]


def test_a_stall_is_a_warning_under_its_own_reason() -> None:
    sink = FakeEvents()
    RunEvents(sink).milestone(
        RunEvent(Milestone.STALLED, "SecretNotFound", "Secret ml-team/aicore does not exist")
    )
    assert sink.posted == [("Warning", "SecretNotFound", "Secret ml-team/aicore does not exist")]
