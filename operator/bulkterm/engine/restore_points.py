"""What brings a terminated target back: its configuration, read before the run acts on it.

The AI API has no undo: a stopped deployment cannot be started again and a deleted one is gone,
but a new deployment from the same configuration serves the same model. So before the first
action on a target is sent, the run reads the target whole (the ``$select=status`` reads of
observation carry no ``configurationId``) and records its configuration and status. The record
is written with the action's in-flight entry, before the send: no record, no send.

The entries travel in the status as one gzip + base64 text grouped by configuration, so 10,000
targets stay a small part of the object (docs/limits.md), and name their own ids, so a saved
``bulkterm apply -o json`` output is enough to restore from.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine.progress import RestoreRecord


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


def encode_points(points: Iterable[RestorePoint]) -> str:
    """``[[kind, configurationId, status, [ids…]], …]`` as JSON, gzip, base64; grouped, so
    many targets of one configuration cost their ids and little else."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for point in points:
        key = (point.kind.value, point.configuration_id or "", point.status.value if point.status else "")
        groups[key].append(point.id)
    rows = [[k, c, s, sorted(ids)] for (k, c, s), ids in sorted(groups.items())]
    raw = json.dumps(rows, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_points(text: str) -> list[RestorePoint]:
    """:func:`encode_points` reversed; :class:`RestoreRecordUnreadable` if ``text`` is not
    what it wrote (a restore must never act on a misread record)."""
    if not text:
        return []
    try:
        rows = json.loads(gzip.decompress(base64.b64decode(text, validate=True)))
        points = []
        for kind, configuration, status, ids in rows:
            for item_id in ids:
                if not isinstance(item_id, str) or not isinstance(configuration, str):
                    raise TypeError("an id or configuration is not a string")
                points.append(
                    RestorePoint(
                        Kind(kind), item_id, configuration or None, Status(status) if status else None
                    )
                )
    except (ValueError, TypeError, OSError, EOFError) as exc:
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
        points=encode_points(values),
    )


def points_by_index(
    record: RestoreRecord | None, index_of: Mapping[tuple[Kind, str], int]
) -> dict[int, RestorePoint]:
    """A saved record back as entries per target index (a restarted run records each target
    once); entries for ids that are not targets of the run are dropped."""
    if record is None:
        return {}
    found: dict[int, RestorePoint] = {}
    for point in decode_points(record.points):
        index = index_of.get((point.kind, point.id))
        if index is not None:
            found[index] = point
    return found
