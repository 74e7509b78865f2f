"""The operator's run metrics: targets counted as they finish, failures by reason, runs by
result and duration, stalls; read from the registry the metrics page serves."""

from __future__ import annotations

import asyncio

from bulkterm import metrics
from bulkterm.aiapi.models import Kind
from bulkterm.engine import Progress
from bulkterm.engine.progress import Failure
from bulkterm.simulator import Simulator
from tests.k8s.support import NS, FakeEvents, FakeKube, reconciler, running_for_deletion, spec


def _value(name: str, **labels: str) -> float:
    labels = {metrics.RUN_NAMESPACE: NS, **labels}  # the run-level series name the namespace
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _failure(n: int, reason: str) -> Failure:
    return Failure(index=n, kind=Kind.DEPLOYMENT, id=f"dep-{n:04d}", reason=reason, message="x")


def test_targets_are_counted_as_they_finish_not_at_the_end(simulator: Simulator) -> None:
    rec = reconciler(FakeKube(simulator), FakeEvents(), spec(("Deployment", "dep-0001", "STOPPED")))
    before = _value("bulkterm_targets_total", outcome="succeeded")
    rec._host._count(Progress(total=10, succeeded=2, pending=8))  # where the run stood when taken
    rec._host._count(Progress(total=10, succeeded=5, pending=5))
    assert _value("bulkterm_targets_total", outcome="succeeded") == before + 3
    rec._host._count(Progress(total=10, succeeded=7, failed=1, pending=2))
    assert _value("bulkterm_targets_total", outcome="succeeded") == before + 5


def test_failures_are_counted_by_reason_once_each(simulator: Simulator) -> None:
    rec = reconciler(FakeKube(simulator), FakeEvents(), spec(("Deployment", "dep-0001", "STOPPED")))
    before = _value("bulkterm_target_failures_total", reason="NotFound")
    rec._host._count(Progress(total=3, pending=3))
    one = [_failure(0, "NotFound")]
    rec._host._count(Progress(total=3, failed=1, pending=2, failures=one))
    rec._host._count(Progress(total=3, failed=1, pending=2, failures=one))  # the same record again
    two = [*one, _failure(1, "NotFound")]
    rec._host._count(Progress(total=3, failed=2, pending=1, failures=two))
    assert _value("bulkterm_target_failures_total", reason="NotFound") == before + 2


async def test_a_finished_run_is_counted_with_its_duration(simulator: Simulator) -> None:
    kube = FakeKube.with_key(simulator)
    targets = running_for_deletion(simulator, 2, stopping=0.2, deletion=0.2)
    runs = _value("bulkterm_runs_total", result="complete")
    observed = _value("bulkterm_run_duration_seconds_count")
    await reconciler(kube, FakeEvents(), spec(*targets)).run(asyncio.Event())
    assert _value("bulkterm_runs_total", result="complete") == runs + 1
    assert _value("bulkterm_run_duration_seconds_count") == observed + 1


async def test_a_stall_is_counted_by_reason_and_left_when_the_run_stops(
    simulator: Simulator,
) -> None:
    kube = FakeKube(simulator)  # no Secret at all
    stalls = _value("bulkterm_stalls_total", reason="SecretNotFound")
    stop = asyncio.Event()
    rec = reconciler(kube, FakeEvents(), spec(("Deployment", "dep-0001", "STOPPED")))
    task = asyncio.create_task(rec.run(stop))
    for _ in range(100):
        if _value("bulkterm_stalled_bulkterminations") >= 1:
            break
        await asyncio.sleep(0.02)
    assert _value("bulkterm_stalls_total", reason="SecretNotFound") == stalls + 1
    assert _value("bulkterm_stalled_bulkterminations") == 1
    stop.set()
    await task
    assert _value("bulkterm_stalled_bulkterminations") == 0
