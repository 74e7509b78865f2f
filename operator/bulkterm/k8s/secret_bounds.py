"""What a Secret's owner lets its key be spent on: resource groups, STOP or DELETE, how many.

A grant says *who* may use a service key; bounds say *for what*. The owner of a Secret sets
them as annotations, beside the grant, and the operator checks them where it reads the Secret,
before the key is parsed: a BulkTermination outside them stalls with ``OutsideSecretBounds``,
and nothing is sent to the AI API. Without a bound annotation that dimension is unbounded.

============================================ =================================================
annotation                                   value
============================================ =================================================
``aiapi.bulkops.dev/allowed-resource-groups`` comma-separated resource groups (shell-style
                                             patterns allowed: ``team-a-*``)
``aiapi.bulkops.dev/allowed-target-statuses`` ``STOPPED``, or ``STOPPED,DELETED``
``aiapi.bulkops.dev/max-targets``             the most targets one run may name: listed ones
                                             plus its selector's ``maxTargets``
============================================ =================================================

A bound that cannot be read (an unknown status, a count that is not a positive integer) fails
closed with ``InvalidSecretBounds``: the owner meant to limit something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bulkterm.aiapi.models import TargetStatus
from bulkterm.spec import API_GROUP, BulkTerminationSpec

RESOURCE_GROUPS = f"{API_GROUP}/allowed-resource-groups"
TARGET_STATUSES = f"{API_GROUP}/allowed-target-statuses"
MAX_TARGETS = f"{API_GROUP}/max-targets"
OUTSIDE_BOUNDS = "OutsideSecretBounds"
INVALID_BOUNDS = "InvalidSecretBounds"


class SecretProblem(Exception):
    """Why a Secret's value cannot be had (here: the use is outside its bounds, or they cannot
    be read); ``reason`` becomes the Stalled condition's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SecretUse:
    """What a run would spend a key on."""

    resource_group: str
    target_statuses: frozenset[TargetStatus]
    #: The most targets the run can have: the listed ones plus its selector's maxTargets.
    targets: int

    @classmethod
    def of(cls, spec: BulkTerminationSpec) -> SecretUse:
        statuses = {t.target_status for t in spec.targets}
        most = len(spec.targets)
        if spec.selector is not None:
            statuses.add(spec.selector.target_status)
            most += spec.selector.max_targets
        return cls(spec.connection.resource_group, frozenset(statuses), most)


def check_bounds(
    annotations: Mapping[str, str] | None, namespace: str, secret: str, use: SecretUse
) -> None:
    """Raise :class:`SecretProblem` unless ``use`` is within the bounds Secret
    ``namespace/secret`` sets; the message names every bound crossed and how."""
    notes = annotations or {}
    where = f"Secret {namespace}/{secret}"
    crossed: list[str] = []
    groups = entries(notes.get(RESOURCE_GROUPS))
    if groups is not None and not any(fnmatchcase(use.resource_group, g) for g in groups):
        crossed.append(
            f"resource group {use.resource_group!r} is not among its {RESOURCE_GROUPS} "
            f"({', '.join(groups) or 'none'})"
        )
    allowed = _statuses(notes.get(TARGET_STATUSES), where)
    if allowed is not None:
        refused = sorted(s.value for s in use.target_statuses - allowed)
        if refused:
            crossed.append(
                f"target status {', '.join(refused)} is not allowed by its {TARGET_STATUSES} "
                f"({', '.join(sorted(s.value for s in allowed)) or 'none'})"
            )
    most = _count(notes.get(MAX_TARGETS), where)
    if most is not None and use.targets > most:
        crossed.append(
            f"the run may reach {use.targets} targets (listed ones plus the selector's "
            f"maxTargets), more than its {MAX_TARGETS} of {most}"
        )
    if crossed:
        raise SecretProblem(
            OUTSIDE_BOUNDS,
            f"{where} may not be spent on this BulkTermination: {'; '.join(crossed)}; nothing "
            "was sent (the Secret's owner widens the bounds, or the spec narrows its use)",
        )


def entries(value: str | None) -> list[str] | None:
    """A comma-separated annotation's entries, spaces around them dropped (None: no
    annotation)."""
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _statuses(value: str | None, where: str) -> frozenset[TargetStatus] | None:
    listed = entries(value)
    if listed is None:
        return None
    known = {s.value: s for s in TargetStatus}
    unknown = [e for e in listed if e.upper() not in known]
    if unknown:
        raise SecretProblem(
            INVALID_BOUNDS,
            f"{where}: {TARGET_STATUSES} lists {', '.join(map(repr, unknown))}; allowed are "
            f"{', '.join(known)} (comma-separated)",
        )
    return frozenset(known[e.upper()] for e in listed)


def _count(value: str | None, where: str) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or int(text) < 1:
        raise SecretProblem(
            INVALID_BOUNDS, f"{where}: {MAX_TARGETS} must be a positive integer, not {value!r}"
        )
    return int(text)
