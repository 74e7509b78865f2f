"""What a restore would do: pure, so that every rule is a unit test.

A restore brings back what a run terminated by creating, for each terminated deployment, a new
deployment from its configuration, and by setting ACTIVE again the execution schedules the run
paused. Executions are re-run only when asked: running a job again is not an undo. Nothing is
created for a target that was not running before the run (restoring would start something that
was off), for one still running now (the stop never took), or for one a journal says was
restored already (a second restore creates nothing twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine.restore_points import RestorePoint

#: Statuses before the run that mean the target served (or was starting to): only these are
#: brought back.
WAS_RUNNING = frozenset({Status.RUNNING, Status.PENDING, Status.UNKNOWN})
#: Statuses now that mean the old target still runs: nothing to bring back.
STILL_RUNNING = frozenset({Status.RUNNING, Status.PENDING})


class Left(StrEnum):
    """Why a recorded target gets no new item."""

    ALREADY_RESTORED = "AlreadyRestored"
    #: Requested by an earlier restore, whose answer is not known yet: the next restore
    #: settles it (creating it again only once no item for it has shown up).
    AWAITING_ANSWER = "AwaitingAnswer"
    WAS_NOT_RUNNING = "WasNotRunning"
    STILL_RUNNING = "StillRunning"
    NO_CONFIGURATION = "NoConfiguration"
    EXECUTIONS_NOT_ASKED = "ExecutionsNotAsked"


@dataclass(frozen=True, slots=True)
class Creation:
    """One new item to create, for the terminated ``old_id``."""

    kind: Kind
    old_id: str
    configuration_id: str


@dataclass(frozen=True)
class RestorePlan:
    creations: tuple[Creation, ...]
    #: Schedules to set ACTIVE (those the run paused that are INACTIVE now).
    schedules: tuple[str, ...]
    #: Recorded targets left alone, by why, with their ids in record order.
    left: Mapping[Left, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.creations and not self.schedules

    def configurations(self, kind: Kind) -> Counter[str]:
        return Counter(c.configuration_id for c in self.creations if c.kind is kind)


def plan_restore(
    points: Iterable[RestorePoint],
    now: Mapping[tuple[Kind, str], Status | None],
    restored: Mapping[tuple[Kind, str], str],
    *,
    executions: bool,
    awaiting: Collection[tuple[Kind, str]] = (),
    paused_schedules: Iterable[str] = (),
    inactive_schedules: Iterable[str] = (),
) -> RestorePlan:
    """``now``: each recorded target's status as just read (``None``, or absent: gone);
    ``restored``: the new id a journal holds for a target already brought back; ``awaiting``:
    targets whose creation a journal holds as requested, without an answer yet."""
    creations: list[Creation] = []
    left: dict[Left, list[str]] = {}
    for point in points:
        why = _left_because(point, now.get((point.kind, point.id)), restored, executions)
        if why is None and (point.kind, point.id) in awaiting:
            why = Left.AWAITING_ANSWER
        if why is not None:
            left.setdefault(why, []).append(point.id)
            continue
        assert point.configuration_id is not None
        creations.append(Creation(point.kind, point.id, point.configuration_id))
    inactive = set(inactive_schedules)
    schedules = tuple(s for s in dict.fromkeys(paused_schedules) if s in inactive)
    return RestorePlan(
        tuple(creations), schedules, {why: tuple(ids) for why, ids in sorted(left.items())}
    )


def _left_because(
    point: RestorePoint,
    status_now: Status | None,
    restored: Mapping[tuple[Kind, str], str],
    executions: bool,
) -> Left | None:
    if (point.kind, point.id) in restored:
        return Left.ALREADY_RESTORED
    if point.kind is Kind.EXECUTION and not executions:
        return Left.EXECUTIONS_NOT_ASKED
    if point.configuration_id is None:
        return Left.NO_CONFIGURATION
    if point.status not in WAS_RUNNING:
        return Left.WAS_NOT_RUNNING
    if status_now in STILL_RUNNING:
        return Left.STILL_RUNNING
    return None


def describe(plan: RestorePlan, *, ids_shown: int = 3) -> list[str]:
    """The plan as a person reads it before saying yes."""
    lines: list[str] = []
    for kind in Kind:
        configurations = plan.configurations(kind)
        if not configurations:
            continue
        n = sum(configurations.values())
        parts = ", ".join(f"{c} x{k}" for c, k in sorted(configurations.items()))
        lines.append(
            f"create {n} {kind.collection} from {len(configurations)} configuration(s): {parts}"
        )
    if plan.schedules:
        lines.append(
            f"set {len(plan.schedules)} execution schedule(s) ACTIVE: {', '.join(plan.schedules)}"
        )
    for why, ids in plan.left.items():
        shown = ", ".join(ids[:ids_shown]) + (
            f", +{len(ids) - ids_shown} more" if len(ids) > ids_shown else ""
        )
        lines.append(f"left alone, {why.value}: {len(ids)} ({shown})")
    if plan.empty:
        lines.append("nothing to restore")
    return lines
