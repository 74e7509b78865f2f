"""The ``BulkTermination`` spec: one pydantic model for the CRD, the operator and ``bulkterm apply``.

The CRD's ``openAPIV3Schema`` in ``crds/`` says the same in Kubernetes' terms; a test keeps the two
in step. Field names on the wire are camelCase (``batchSize``); in Python they are snake_case.
``extra="forbid"`` makes a typo a clear error instead of a silently ignored field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from bulkterm.aiapi.models import (
    ID_PATTERN,
    MAX_BULK_ITEMS,
    RESOURCE_GROUP_PATTERN,
    Kind,
    Status,
    TargetStatus,
)

API_GROUP = "aiapi.bulkops.dev"
API_VERSION = "v1alpha1"
KIND = "BulkTermination"
PLURAL = "bulkterminations"
#: Targets per BulkTermination, in either form.
MAX_TARGETS = 10_000
#: Items of ``spec.targets``: what server-side apply carries with 64-character ids. Its
#: managedFields name every (kind, id) key, so the object grows with each item twice, and this
#: keeps it clear of etcd's 1.5 MiB object limit.
MAX_LISTED_TARGETS = 5_000
INT64_MAX = 2**63 - 1


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretRef(_Model):
    """A key of a Secret in the BulkTermination's own namespace holding the service-key JSON."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253)] = "serviceKey"
    #: Accepted only so that a cross-namespace reference is refused with a clear reason
    #: instead of being silently pruned; it must equal the BulkTermination's own namespace.
    namespace: Annotated[str, Field(min_length=1, max_length=63)] | None = None


class Connection(_Model):
    """Where the credentials are. URLs come only from the service key, never from the CR."""

    secret_ref: SecretRef | None = None
    resource_group: Annotated[str, Field(pattern=RESOURCE_GROUP_PATTERN)] = "default"


class Target(_Model):
    """One AI API item and the status it must reach."""

    kind: Kind = Kind.DEPLOYMENT
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    target_status: TargetStatus


class IdList(_Model):
    """The compact form: many items of one kind that must all reach one status.

    A plain list of ids is a third of the size of ``targets`` and its managedFields name each id
    once, so 10,000 ids fit what both client-side and server-side apply carry (the ``targets``
    list-map does not, see ``MAX_LISTED_TARGETS``).
    """

    target_status: TargetStatus
    ids: Annotated[
        list[Annotated[str, Field(pattern=ID_PATTERN)]],
        Field(min_length=1, max_length=MAX_TARGETS),
    ]

    @model_validator(mode="after")
    def _ids_unique(self) -> IdList:
        """The API server refuses a repeated id in this set-typed list; so do we, as it does."""
        seen: dict[str, int] = {}
        for index, id_ in enumerate(self.ids):
            if id_ in seen:
                raise ValueError(
                    f"ids[{index}]: {id_!r} is already listed at ids[{seen[id_]}]; "
                    "each id may appear once"
                )
            seen[id_] = index
        return self


#: Targets a selector may match by default, and at most.
DEFAULT_SELECTOR_MAX_TARGETS = 1_000
#: ``executableIds`` the AI API takes in one list filter.
MAX_EXECUTABLE_IDS = 1_000
_Id = Annotated[str, Field(pattern=ID_PATTERN)]


class Selector(_Model):
    """Targets found by what they are rather than listed by id: resolved once, when the run
    starts, and frozen (a run never grows while it runs; a restart resumes the same set).

    Filters the AI API has (scenario, configuration, executables, one status, schedule) are
    sent with the list request; the rest (several statuses, age by ``createdAt``, exclusions)
    are applied to what it returns. Age is never judged by ``modifiedAt``, which every status
    change moves.
    """

    kind: Kind
    target_status: TargetStatus
    scenario_id: _Id | None = None
    configuration_id: _Id | None = None
    executable_ids: (
        Annotated[list[_Id], Field(min_length=1, max_length=MAX_EXECUTABLE_IDS)] | None
    ) = None
    execution_schedule_id: _Id | None = None
    statuses: Annotated[list[Status], Field(min_length=1, max_length=7)] | None = None
    created_before: datetime | None = None
    older_than_seconds: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    exclude_ids: Annotated[list[_Id], Field(min_length=1, max_length=MAX_TARGETS)] | None = None
    #: A selector matching more fails before any write: a typo must not stop a fleet.
    max_targets: Annotated[int, Field(ge=1, le=MAX_TARGETS)] = DEFAULT_SELECTOR_MAX_TARGETS
    #: Executions only: set the schedules of the selected executions INACTIVE first, so that
    #: no new executions start during or after the run.
    pause_execution_schedules: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> Selector:
        narrowing = (
            self.scenario_id, self.configuration_id, self.executable_ids,
            self.execution_schedule_id, self.statuses, self.created_before,
            self.older_than_seconds,
        )  # fmt: skip
        if all(f is None for f in narrowing):
            raise ValueError(NO_FILTER)
        if self.kind is not Kind.EXECUTION and self.execution_schedule_id is not None:
            raise ValueError(
                "executionScheduleId: only executions have a schedule (kind: Execution)"
            )
        if self.kind is not Kind.EXECUTION and self.pause_execution_schedules:
            raise ValueError(
                "pauseExecutionSchedules: only executions have schedules (kind: Execution)"
            )
        for name, values in (("statuses", self.statuses), ("excludeIds", self.exclude_ids)):
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name}: each value may appear once")
        return self


NO_FILTER = (
    "a selector needs at least one filter (scenarioId, configurationId, executableIds, "
    "executionScheduleId, statuses, createdBefore or olderThanSeconds): it must never mean "
    "every item of the resource group"
)


class BulkTerminationSpec(_Model):
    """What to terminate and how carefully.

    The targets come in one of two forms: ``targets`` (a (kind, id, targetStatus) item each),
    or ``deployments``/``executions`` (:class:`IdList`). :attr:`targets` is the one list the
    engine and the status work with, whichever form was written: status indexes count into it.
    """

    connection: Connection = Field(default_factory=Connection)
    listed: Annotated[
        list[Target] | None,
        Field(alias="targets", min_length=1, max_length=MAX_LISTED_TARGETS),
    ] = None
    deployments: IdList | None = None
    executions: IdList | None = None
    selector: Selector | None = None
    batch_size: Annotated[int, Field(ge=1, le=MAX_BULK_ITEMS)] = MAX_BULK_ITEMS
    poll_interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    # The API server stores integers as int64 and refuses larger ones.
    active_deadline_seconds: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    #: Times a target's action may be refused or lost before the target is failed.
    backoff_limit_per_target: Annotated[int, Field(ge=0, le=100)] = 3
    #: How long a target that must be STOPPED may sit in UNKNOWN (which cannot be stopped).
    unknown_grace_period_seconds: Annotated[int, Field(ge=0, le=86400)] = 120
    dry_run: bool = False
    #: Send nothing new while true (what was sent is still watched), as a Job's ``suspend``;
    #: the one field that may change after creation.
    suspend: bool = False
    #: Write the plan (``status.plan``, with its digest) and send nothing until the annotation
    #: ``aiapi.bulkops.dev/approved-plan`` quotes that digest.
    require_approval: bool = False

    @cached_property
    def targets(self) -> tuple[Target, ...]:
        """Every target, in index order: ``spec.targets`` as written, or the ids of
        ``spec.deployments`` and then those of ``spec.executions``."""
        if self.listed is not None:
            return tuple(self.listed)
        return tuple(
            Target(kind=kind, id=id_, target_status=group.target_status)
            for kind, group in (
                (Kind.DEPLOYMENT, self.deployments),
                (Kind.EXECUTION, self.executions),
            )
            if group is not None
            for id_ in group.ids
        )

    #: The CRD's bound on ids in the compact form (None: :class:`UnboundedSpec`).
    max_ids: ClassVar[int | None] = MAX_TARGETS

    @model_validator(mode="after")
    def _one_form(self) -> BulkTerminationSpec:
        """The CRD's CEL rules: one form, and at most MAX_TARGETS ids in the compact one."""
        compact = self.deployments is not None or self.executions is not None
        if self.listed is not None and compact:
            raise ValueError(ONE_FORM)
        if self.listed is None and not compact and self.selector is None:
            raise ValueError(NO_TARGETS)
        ids = sum(len(g.ids) for g in (self.deployments, self.executions) if g is not None)
        if self.max_ids is not None and ids > self.max_ids:
            raise ValueError(too_many_ids(ids))
        return self

    @model_validator(mode="after")
    def _targets_unique(self) -> BulkTerminationSpec:
        seen: dict[tuple[Kind, str], int] = {}
        for index, target in enumerate(self.listed or ()):
            key = (target.kind, target.id)
            if key in seen:
                raise ValueError(
                    f"targets[{index}]: {target.kind.value} {target.id!r} is already "
                    f"listed at targets[{seen[key]}]; each (kind, id) may appear once"
                )
            seen[key] = index
        return self


class UnboundedIdList(IdList):
    ids: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(min_length=1)]


class UnboundedSpec(BulkTerminationSpec):
    """A spec valid in every way but its size: what ``bulkterm split`` reads, to write it out
    again as BulkTerminations the API server takes."""

    max_ids: ClassVar[int | None] = None
    listed: Annotated[list[Target] | None, Field(alias="targets", min_length=1)] = None
    deployments: UnboundedIdList | None = None
    executions: UnboundedIdList | None = None


def too_many_ids(count: int) -> str:
    return (
        f"at most {MAX_TARGETS} ids in spec.deployments.ids and spec.executions.ids together, "
        f"got {count}"
    )


#: The CRD's messages for a spec with both forms of target lists, or no targets at all.
ONE_FORM = (
    "list the targets in one of the two forms, not both: spec.targets (kind, id and "
    "targetStatus each), or spec.deployments and/or spec.executions (ids sharing one "
    "targetStatus per kind)"
)
NO_TARGETS = (
    "name the targets: spec.targets, spec.deployments and/or spec.executions, or spec.selector"
)


def run_spec_hash(spec: Mapping[str, Any]) -> str:
    """A digest of everything in a raw spec that the run acts on: all but ``suspend``, the one
    field that may change while the run goes on. Two generations of one BulkTermination with
    the same hash differ only in whether the run is suspended."""
    relevant = {key: value for key, value in spec.items() if key != "suspend"}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


#: The annotation that approves a plan (``spec.requireApproval``): the plan's digest.
APPROVED_PLAN_ANNOTATION = f"{API_GROUP}/approved-plan"
