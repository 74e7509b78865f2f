"""The ``BulkTermination`` spec: one pydantic model for the CRD, the operator and ``bulkterm apply``.

The CRD's ``openAPIV3Schema`` in ``crds/`` says the same in Kubernetes' terms; a test keeps the two
in step. Field names on the wire are camelCase (``batchSize``); in Python they are snake_case.
``extra="forbid"`` makes a typo a clear error instead of a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from bulkterm.aiapi.models import (
    ID_PATTERN,
    MAX_BULK_ITEMS,
    RESOURCE_GROUP_PATTERN,
    Kind,
    TargetStatus,
)

API_GROUP = "aiapi.bulkops.dev"
API_VERSION = "v1alpha1"
KIND = "BulkTermination"
PLURAL = "bulkterminations"
MAX_TARGETS = 10_000
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


class BulkTerminationSpec(_Model):
    """What to terminate and how carefully."""

    connection: Connection = Field(default_factory=Connection)
    targets: Annotated[list[Target], Field(min_length=1, max_length=MAX_TARGETS)]
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

    @model_validator(mode="after")
    def _targets_unique(self) -> BulkTerminationSpec:
        seen: dict[tuple[Kind, str], int] = {}
        for index, target in enumerate(self.targets):
            key = (target.kind, target.id)
            if key in seen:
                raise ValueError(
                    f"targets[{index}]: {target.kind.value} {target.id!r} is already "
                    f"listed at targets[{seen[key]}]; each (kind, id) may appear once"
                )
            seen[key] = index
        return self
