"""The restore plan's rules, one each: what is created, and why the rest is left alone."""

from __future__ import annotations

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine.restore_points import RestorePoint
from bulkterm.restore.plan import Creation, Left, describe, plan_restore

D, E = Kind.DEPLOYMENT, Kind.EXECUTION


def point(item_id: str, status: Status | None = Status.RUNNING, kind: Kind = D,
          configuration: str | None = "cfg-a") -> RestorePoint:  # fmt: skip
    return RestorePoint(kind, item_id, configuration, status)


def test_a_deployment_that_ran_and_is_gone_is_created_again_from_its_configuration() -> None:
    plan = plan_restore([point("dep-1")], {}, {}, executions=False)
    assert plan.creations == (Creation(D, "dep-1", "cfg-a"),)


def test_a_deployment_that_was_off_before_the_run_is_left_alone() -> None:
    plan = plan_restore([point("dep-1", Status.STOPPED)], {}, {}, executions=False)
    assert plan.creations == () and plan.left == {Left.WAS_NOT_RUNNING: ("dep-1",)}


def test_a_deployment_still_running_is_left_alone() -> None:
    plan = plan_restore([point("dep-1")], {(D, "dep-1"): Status.RUNNING}, {}, executions=False)
    assert plan.left == {Left.STILL_RUNNING: ("dep-1",)}


def test_a_restored_deployment_is_not_created_twice() -> None:
    plan = plan_restore([point("dep-1")], {}, {(D, "dep-1"): "dep-new"}, executions=False)
    assert plan.left == {Left.ALREADY_RESTORED: ("dep-1",)} and plan.empty


def test_a_creation_awaiting_its_answer_is_not_requested_again() -> None:
    plan = plan_restore([point("dep-1")], {}, {}, executions=False, awaiting={(D, "dep-1")})
    assert plan.left == {Left.AWAITING_ANSWER: ("dep-1",)}


def test_executions_are_created_again_only_when_asked() -> None:
    recorded = [point("exe-1", kind=E)]
    assert plan_restore(recorded, {}, {}, executions=False).left == {
        Left.EXECUTIONS_NOT_ASKED: ("exe-1",)
    }
    assert plan_restore(recorded, {}, {}, executions=True).creations == (
        Creation(E, "exe-1", "cfg-a"),
    )


def test_a_target_gone_before_it_was_read_has_nothing_to_restore() -> None:
    plan = plan_restore([point("dep-1", None, configuration=None)], {}, {}, executions=False)
    assert plan.left == {Left.NO_CONFIGURATION: ("dep-1",)}


def test_only_paused_schedules_that_are_inactive_now_are_set_active() -> None:
    plan = plan_restore([], {}, {}, executions=False, paused_schedules=["s-1", "s-2"],
                        inactive_schedules=["s-2", "s-3"])  # fmt: skip
    assert plan.schedules == ("s-2",)


def test_the_plan_reads_as_counts_by_configuration_and_reasons() -> None:
    recorded = [point("dep-1"), point("dep-2"), point("dep-3", configuration="cfg-b"),
                point("dep-4", Status.DEAD)]  # fmt: skip
    lines = describe(plan_restore(recorded, {}, {}, executions=False))
    assert lines == [
        "create 3 deployments from 2 configuration(s): cfg-a x2, cfg-b x1",
        "left alone, WasNotRunning: 1 (dep-4)",
    ]
