"""The progress record: the ``BulkTermination`` status and what ``bulkterm apply`` prints.

``Progress.model_dump(by_alias=True, exclude_none=True, mode="json")`` *is* the status
shape (style-anchors §4): Job-like counters and compressed index ranges so it stays small
for 10,000 targets, kstatus conditions so Flux, Argo CD and ``kubectl wait`` can read it,
and enough in-flight state that a restarted engine can continue from it plus fresh
observations without re-sending anything already accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_serializer
from pydantic.alias_generators import to_camel

from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.engine.decisions import Action
from bulkterm.engine.indexes import expand


class _Record(BaseModel):
    # extra="ignore": the operator may add fields (observedGeneration) or a newer version may
    # have written some; a record must still load so the run can resume.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @field_serializer("*", mode="wrap", when_used="json")
    def _whole_seconds(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        # Kubernetes timestamps (metav1.Time) have second precision; so does every time here.
        if isinstance(value, datetime):
            value = value.replace(microsecond=0)
        return handler(value)


class ConditionType(StrEnum):
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    READY = "Ready"
    COMPLETE = "Complete"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class Condition(_Record):
    """A Kubernetes condition (``metav1.Condition`` shape)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class InFlightEntry(_Record):
    """A target whose accepted action is awaited; a human-sized sample of ``inFlightGroups``."""

    index: int
    kind: Kind
    id: str
    action: Action
    sent_at: datetime
    attempt: int


class InFlightGroup(_Record):
    """Targets (as index ranges) whose ``action`` was sent at ``sentAt``: the resume source."""

    action: Action
    sent_at: datetime
    indexes: str
    #: True once the AI API accepted the action (its item in the 202 answer, or its
    #: ``targetStatus`` read back). Absent while that is unknown: the group is written before
    #: the send, and a restart must then read the item whole to learn whether it went out.
    accepted: bool | None = None


class AttemptGroup(_Record):
    """Unfinished targets that already used ``attempts`` sends and ``retries`` of their budget."""

    attempts: int
    retries: int
    indexes: str


class UnknownGroup(_Record):
    """Targets that must be STOPPED and have been UNKNOWN (unstoppable) since ``since``."""

    since: datetime
    indexes: str


class Failure(_Record):
    """Why a target failed; the list is capped, the ``failed`` counter is authoritative."""

    index: int
    kind: Kind
    id: str
    reason: str
    message: str
    code: str | None = None
    attempts: int = 0
    last_attempt_time: datetime | None = None


class BulkUpdatesRecord(_Record):
    deployments: bool = False
    executions: bool = False


class CapabilitiesRecord(_Record):
    """What the AI API said it supports (``GET /v2/lm/meta``), as used by this run."""

    bulk_updates: BulkUpdatesRecord = Field(default_factory=BulkUpdatesRecord)


class SelectionRecord(_Record):
    """What ``spec.selector`` resolved to when the run started: frozen for the run, so a
    restart works on the same ids instead of asking the AI API again."""

    kind: Kind
    target_status: TargetStatus
    resolved_at: datetime
    #: Items the AI API listed for the selector's server-side filters.
    listed: int
    #: Items chosen; they are the targets ``firstIndex`` .. ``firstIndex + selected - 1``.
    selected: int
    first_index: int
    #: Listed items not chosen, by why (``status``, ``createdTooRecently``, ``excludeIds``,
    #: ``alreadyAtTarget``, ``alsoListed``).
    excluded: dict[str, int] = Field(default_factory=dict)
    #: The chosen ids, gzip + base64 (``bulkterm.engine.selection.encode_ids``).
    ids: str
    #: Execution schedules to set INACTIVE before any send (``pauseExecutionSchedules``).
    schedules: list[str] = Field(default_factory=list)
    #: How many of ``schedules`` are INACTIVE now (paused, or found paused or gone).
    schedules_paused: int = 0
    #: Those of ``schedules`` that were ACTIVE before the run paused any: what a restore
    #: sets ACTIVE again. ``None`` until read (recorded before the first pause).
    schedules_active: list[str] | None = None


class RestoreRecord(_Record):
    """What brings back the targets this run stopped or deleted: each one's configuration and
    its status before the run's first action on it, read before that action was sent."""

    #: Targets recorded, by kind.
    deployments: int = 0
    executions: int = 0
    #: Distinct configurations among them.
    configurations: int = 0
    #: Recorded without a configuration: gone before it could be read, or refused whole by
    #: the API (nothing to restore).
    unknown: int = 0
    #: The entries, gzip + base64 (``bulkterm.engine.restore_points.encode_points``), naming
    #: targets by their index in the run's targets (the spec's, then the selection's).
    points: str = ""


class PlanAction(StrEnum):
    STOP = "Stop"
    DELETE = "Delete"
    WAIT = "Wait"
    SKIP = "Skip"
    FAIL = "Fail"


class PlanEntry(_Record):
    index: int
    kind: Kind
    id: str
    observed: str
    action: PlanAction
    reason: str
    message: str


class Plan(_Record):
    """What a dry run found and would do: counts, index ranges per action, reasons, a sample."""

    stop: int = 0
    delete: int = 0
    wait: int = 0
    skip: int = 0
    fail: int = 0
    stop_indexes: str = ""
    delete_indexes: str = ""
    wait_indexes: str = ""
    skip_indexes: str = ""
    fail_indexes: str = ""
    #: How many targets each reason applies to (``{"AlreadyStopped": 3, "Stop": 40}``).
    reasons: dict[str, int] = Field(default_factory=dict)
    #: The ``fail`` targets by the reason a real run would record in ``status.failures``
    #: (``{"NotFound": 2, "CannotStopUnknown": 1}``); the counts add up to ``fail``.
    failures: dict[str, int] = Field(default_factory=dict)
    entries: list[PlanEntry] = Field(default_factory=list)
    #: Targets left out of ``entries`` to keep the record small.
    entries_omitted: int = 0
    #: A digest of exactly this plan: every target (kind, id, target status) and what would
    #: be done with each, and why (:func:`bulkterm.engine.planning.plan_digest`). Approving a
    #: run (``spec.requireApproval``) means quoting it.
    digest: str = ""


class Progress(_Record):
    """The whole record. Invariant: ``total == pending + active + succeeded + failed``."""

    #: Set by the operator layer, never by the engine.
    observed_generation: int | None = None
    total: int = 0
    #: Not finished and no action in flight (not yet sent, or waiting on the item).
    pending: int = 0
    #: An action was sent and its effect is awaited.
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    #: "finished/total", for the printer column; derived, never read back.
    progress: str = "0/0"
    completed_indexes: str = ""
    failed_indexes: str = ""
    #: Open targets seen to exist in this run (resume state): only these can be "gone";
    #: one never seen is "not found".
    seen_indexes: str = ""
    #: Resume state (complete, bounded): omitted when empty.
    in_flight_groups: list[InFlightGroup] | None = None
    attempt_groups: list[AttemptGroup] | None = None
    unknown_since: list[UnknownGroup] | None = None
    in_flight: list[InFlightEntry] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)
    #: Success reasons and how many targets each (Stopped, Deleted, AlreadyStopped, …).
    outcomes: dict[str, int] = Field(default_factory=dict)
    start_time: datetime | None = None
    #: Set only when the run completes successfully (Job semantics).
    completion_time: datetime | None = None
    capabilities: CapabilitiesRecord | None = None
    conditions: list[Condition] = Field(default_factory=list)
    plan: Plan | None = None
    #: The plan digest the run was approved with (``spec.requireApproval``): once set, the
    #: run sends without asking again.
    approved_plan: str | None = None
    selection: SelectionRecord | None = None
    restore: RestoreRecord | None = None

    def sent(self) -> dict[tuple[Action, datetime], set[int]]:
        """The targets in flight per action and send time, answered or not: what was sent.
        (Answers split a group in two, ``accepted: true`` for the answered part.)"""
        out: dict[tuple[Action, datetime], set[int]] = {}
        for group in self.in_flight_groups or ():
            out.setdefault((group.action, group.sent_at), set()).update(expand(group.indexes))
        return out

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def terminal(self) -> bool:
        """Complete or Failed is True: the run is over and never resumes (Job semantics)."""
        return any(
            c.type in (ConditionType.COMPLETE, ConditionType.FAILED) and c.status == "True"
            for c in self.conditions
        )

    def summary(self) -> str:
        """One line of counts, as the run's condition messages end."""
        return counts(self.total, self.succeeded, self.failed, self.active)

    def to_status(self) -> dict[str, object]:
        """The JSON the CR status holds and the CLI prints; empty lists and strings are left
        out (they read as noise in ``kubectl describe``, and load back as their defaults)."""
        dumped = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return {k: v for k, v in dumped.items() if v != "" and v != []}


def counts(total: int, succeeded: int, failed: int, active: int) -> str:
    """``3/10 finished (2 succeeded, 1 failed); 4 in flight, 3 pending``."""
    finished = succeeded + failed
    return (
        f"{finished}/{total} finished ({succeeded} succeeded, {failed} failed); "
        f"{active} in flight, {total - finished - active} pending"
    )


class Phase(StrEnum):
    RUNNING = "Running"
    RETRYING = "Retrying"
    STALLED = "Stalled"
    COMPLETE = "Complete"
    FAILED = "Failed"
    #: ``spec.suspend``: nothing new is sent; what was sent is still watched (Job's suspend).
    SUSPENDED = "Suspended"
    #: ``spec.requireApproval``: the plan is written and nothing is sent until it is approved.
    AWAITING_APPROVAL = "AwaitingApproval"


@dataclass(frozen=True, slots=True)
class Situation:
    """Where the run stands, from which every condition follows (style-anchors §4.3)."""

    phase: Phase
    #: CamelCase reason of the decisive condition (Running, Retrying, Unauthorized,
    #: AllTargetsTerminated, DryRun, FailedTargets, DeadlineExceeded).
    reason: str
    message: str


def build_conditions(
    previous: Sequence[Condition],
    situation: Situation,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """The full condition list for ``situation``, written as a whole (merge patches replace lists).

    Terminal conditions never flip back, like Job's, so once Complete or Failed is True the
    previous list is returned unchanged (apart from ``observedGeneration``).
    ``lastTransitionTime`` moves only when a condition's status changes.
    """
    prior = {c.type: c for c in previous}
    if any(
        prior.get(t) is not None and prior[t].status == "True"
        for t in (ConditionType.COMPLETE, ConditionType.FAILED)
    ):
        if observed_generation is None:
            return list(previous)
        return [c.model_copy(update={"observed_generation": observed_generation}) for c in previous]

    p, reason, msg = situation.phase, situation.reason, situation.message
    rows: list[tuple[ConditionType, bool, str]]
    if p is Phase.RUNNING:
        rows = [
            (ConditionType.RECONCILING, True, reason),
            (ConditionType.STALLED, False, reason),
            (ConditionType.READY, False, reason),
        ]
    elif p is Phase.RETRYING:
        rows = [
            (ConditionType.RECONCILING, True, reason),
            (ConditionType.STALLED, False, reason),
            (ConditionType.READY, False, "Running"),
        ]
    elif p in (Phase.STALLED, Phase.SUSPENDED, Phase.AWAITING_APPROVAL):
        # Waiting on a person, so not reconciling; Stalled only when something is wrong.
        rows = [
            (ConditionType.RECONCILING, False, reason),
            (ConditionType.STALLED, p is Phase.STALLED, reason),
            (ConditionType.READY, False, reason),
        ]
        if p is Phase.SUSPENDED:
            rows.append((ConditionType.SUSPENDED, True, reason))
    elif p is Phase.COMPLETE:
        ready_reason = "Complete" if reason == "AllTargetsTerminated" else reason
        rows = [
            (ConditionType.RECONCILING, False, "Complete"),
            (ConditionType.STALLED, False, "Complete"),
            (ConditionType.READY, True, ready_reason),
            (ConditionType.COMPLETE, True, reason),
        ]
    else:
        rows = [
            (ConditionType.RECONCILING, False, "Failed"),
            (ConditionType.STALLED, True, reason),
            (ConditionType.READY, False, "Failed"),
            (ConditionType.FAILED, True, reason),
        ]
    if p is not Phase.SUSPENDED and ConditionType.SUSPENDED in prior:
        # As a Job's: once suspended, the condition stays, False after the resume.
        rows.append((ConditionType.SUSPENDED, False, "Resumed"))
    result: list[Condition] = []
    for type_, true, why in rows:
        status: Literal["True", "False"] = "True" if true else "False"
        old = prior.get(type_)
        ltt = old.last_transition_time if old is not None and old.status == status else now
        result.append(
            Condition(
                type=type_.value,
                status=status,
                reason=why,
                message=msg,
                last_transition_time=ltt,
                observed_generation=observed_generation,
            )
        )
    return result


def with_observed_generation(progress: Progress, generation: int) -> Progress:
    """The record as the operator writes it: ``observedGeneration`` on top and on each condition."""
    return progress.model_copy(
        update={
            "observed_generation": generation,
            "conditions": [
                c.model_copy(update={"observed_generation": generation})
                for c in progress.conditions
            ],
        }
    )
