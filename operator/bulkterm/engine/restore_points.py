"""What brings a terminated target back: its configuration, read before the run acts on it.

The AI API has no undo: a stopped deployment cannot be started again and a deleted one is gone,
but a new deployment from the same configuration serves the same model. So before the first
action on a target is sent, the run reads the target whole (the ``$select=status`` reads of
observation carry no ``configurationId``) and records its configuration and status. The record
is written with the action's in-flight entry, before the send: no record, no send.

The entries travel in the status as one gzip + base64 text grouped by configuration and status,
naming targets by index, so 10,000 targets stay a small part of the object (docs/limits.md). The
ids are the spec's and the frozen selection's: a restore reads the object whole, spec and status
(``kubectl get -o yaml``, or ``bulkterm apply -o json``, which prints both).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine.indexes import compress, expand
from bulkterm.engine.progress import RestoreRecord
from bulkterm.spec import Target


@dataclass(frozen=True, slots=True)
class RestorePoint:
    """One target as it was before the run's first action on it."""

    kind: Kind
    id: str
    #: ``None`` when the target was gone before it could be read: nothing to bring back.
    configuration_id: str | None
    #: Its status then (``None`` with ``configuration_id``).
    status: Status | None


class RestoreRecordUnreadable(ValueError):
    """``status.restore.points`` is not what :func:`encode_points` wrote."""


def encode_points(points: Mapping[int, RestorePoint]) -> str:
    """``[[configurationId, status, "index ranges"], …]`` as JSON, gzip, base64: grouped by
    configuration and status, and by target index (the ids are the spec's and the frozen
    selection's), so 10,000 targets of a few configurations cost a few bytes."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, point in points.items():
        status = point.status.value if point.status else ""
        groups[(point.configuration_id or "", status)].append(index)
    rows = [[c, s, compress(idx)] for (c, s), idx in sorted(groups.items())]
    raw = json.dumps(rows, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_points(text: str, targets: Sequence[Target]) -> dict[int, RestorePoint]:
    """:func:`encode_points` reversed over the run's ``targets``;
    :class:`RestoreRecordUnreadable` if ``text`` is not what it wrote for them (a restore must
    never act on a misread record)."""
    if not text:
        return {}
    try:
        rows = json.loads(gzip.decompress(base64.b64decode(text, validate=True)))
        points: dict[int, RestorePoint] = {}
        for configuration, status, ranges in rows:
            if not isinstance(configuration, str) or not isinstance(ranges, str):
                raise TypeError("a configuration or index range is not a string")
            for index in expand(ranges):
                if index >= len(targets):
                    raise IndexError(f"index {index} is past the run's {len(targets)} targets")
                target = targets[index]
                points[index] = RestorePoint(
                    target.kind,
                    target.id,
                    configuration or None,
                    Status(status) if status else None,
                )
    except (ValueError, TypeError, IndexError, OSError, EOFError) as exc:
        raise RestoreRecordUnreadable(
            f"status.restore.points is unreadable ({exc.__class__.__name__}: {exc})"
        ) from None
    return points


def restore_record(points: Mapping[int, RestorePoint]) -> RestoreRecord | None:
    """The status's ``restore``: counts a reader can take in, and the entries."""
    if not points:
        return None
    values = list(points.values())
    return RestoreRecord(
        deployments=sum(p.kind is Kind.DEPLOYMENT for p in values),
        executions=sum(p.kind is Kind.EXECUTION for p in values),
        configurations=len({p.configuration_id for p in values if p.configuration_id}),
        unknown=sum(p.configuration_id is None for p in values),
        points=encode_points(points),
    )


def points_of(record: RestoreRecord | None, targets: Sequence[Target]) -> dict[int, RestorePoint]:
    """A saved record back as entries per target index (a restarted run records each target
    once)."""
    return {} if record is None else decode_points(record.points, targets)
