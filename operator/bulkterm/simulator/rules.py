"""Which status changes the AI API allows, as pure functions (no clock, no HTTP, no store).

The table (SAP's Launchpad and AI Core pages):

============  ====  ======================  =====================
status        Stop  Delete (deployment)     Delete (execution)
============  ====  ======================  =====================
UNKNOWN       no    yes                     yes
PENDING       yes   no                      no
RUNNING       yes   no                      no
STOPPING      no    no                      no
STOPPED       no    yes                     yes
DEAD          no    yes                     yes
COMPLETED     no    no (never happens)      yes
============  ====  ======================  =====================

An item already being deleted (``targetStatus: DELETED``) accepts nothing more.

The same answer serves a bulk item (a per-item ``error`` inside a 202) and a single PATCH or
DELETE (412 at request level, 404 for an unknown id). Only ``01010076`` is a documented AI Core
code; the other codes are the simulator's own (listed in ``docs/simulator.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bulkterm.aiapi.models import Kind, Status, TargetStatus

#: Stop refused for the current status (documented for UNKNOWN: "Invalid Request, Current
#: status UNKNOWN cannot be changed..").
CODE_CANNOT_STOP = "01010076"
#: Delete refused for the current status (simulator's code).
CODE_CANNOT_DELETE = "01010077"
#: Change refused because the item is being deleted (simulator's code).
CODE_BEING_DELETED = "01010078"
#: No such item in this resource group (simulator's code).
CODE_NOT_FOUND = "01010040"
#: Malformed request: body, parameters or headers (simulator's code).
CODE_BAD_REQUEST = "01000400"
CODE_UNAUTHORIZED = "01000401"
CODE_FORBIDDEN = "01000403"
CODE_BULK_UNSUPPORTED = "01000405"
CODE_RESULT_TOO_LARGE = "01000413"
CODE_UNSUPPORTED_MEDIA_TYPE = "01000415"
CODE_THROTTLED = "01000429"
CODE_SERVER_ERROR = "01000500"

#: HTTP status of a single PATCH/DELETE refused because of the item's status. The spec
#: declares 412 ("precondition failed") on exactly these operations; SAP's docs give the
#: 01010076 text without its HTTP status.
STATUS_REFUSED = 412

STOPPABLE = frozenset({Status.PENDING, Status.RUNNING})
DELETABLE = frozenset({Status.UNKNOWN, Status.STOPPED, Status.DEAD})


class RefusalReason(StrEnum):
    """Why a change was refused; also the ``code`` of the recorded violation."""

    NOT_FOUND = "NotFound"
    BEING_DELETED = "BeingDeleted"
    CANNOT_STOP = "IllegalStop"
    CANNOT_DELETE = "IllegalDelete"
    CANNOT_RECONFIGURE = "IllegalReconfiguration"


@dataclass(frozen=True)
class Refusal:
    """A refused change: the API error to answer and the HTTP status for a single-item call."""

    reason: RefusalReason
    code: str
    message: str
    http_status: int


def not_found(kind: Kind, item_id: str) -> Refusal:
    return Refusal(RefusalReason.NOT_FOUND, CODE_NOT_FOUND, f"{kind} {item_id} not found.", 404)


def deletable(kind: Kind, status: Status, *, bulk: bool, bulk_delete_completed: bool) -> bool:
    """Whether DELETE is allowed in ``status`` (COMPLETED: executions, and in bulk only if set)."""
    if status in DELETABLE:
        return True
    if status is Status.COMPLETED and kind is Kind.EXECUTION:
        return bulk_delete_completed or not bulk
    return False


def check_change(
    kind: Kind,
    item_id: str,
    status: Status,
    target_status: str,
    requested: TargetStatus,
    *,
    bulk: bool,
    bulk_delete_completed: bool = True,
) -> Refusal | None:
    """``None`` if the change may happen, else why not.

    ``target_status`` is the item's current target (``DELETED`` = being deleted). A repeated
    stop while the item is still RUNNING/PENDING on its way to STOPPING is allowed: the status
    table allows stopping those statuses, and the change is a no-op.
    """
    if target_status == TargetStatus.DELETED:
        return Refusal(
            RefusalReason.BEING_DELETED,
            CODE_BEING_DELETED,
            f"Invalid Request, {kind} {item_id} is being deleted and cannot be changed.",
            STATUS_REFUSED,
        )
    if requested is TargetStatus.STOPPED:
        if status in STOPPABLE:
            return None
        return Refusal(
            RefusalReason.CANNOT_STOP,
            CODE_CANNOT_STOP,
            f"Invalid Request, Current status {status} cannot be changed..",
            STATUS_REFUSED,
        )
    if deletable(kind, status, bulk=bulk, bulk_delete_completed=bulk_delete_completed):
        return None
    return Refusal(
        RefusalReason.CANNOT_DELETE,
        CODE_CANNOT_DELETE,
        f"Invalid Request, {kind} in status {status} cannot be deleted; "
        "only STOPPED, DEAD or UNKNOWN items can be deleted.",
        STATUS_REFUSED,
    )


#: A configuration change of a deployment refused for its status (simulator's code).
CODE_CANNOT_RECONFIGURE = "01010079"


def check_reconfiguration(
    kind: Kind, item_id: str, status: Status, target_status: str
) -> Refusal | None:
    """A deployment may switch configuration only while RUNNING or PENDING (spec)."""
    if target_status == TargetStatus.DELETED:
        return check_change(kind, item_id, status, target_status, TargetStatus.STOPPED, bulk=False)
    if status in STOPPABLE and target_status != TargetStatus.STOPPED:
        return None
    return Refusal(
        RefusalReason.CANNOT_RECONFIGURE,
        CODE_CANNOT_RECONFIGURE,
        f"Invalid Request, the configuration of a {kind} in status {status} cannot be changed; "
        "only RUNNING and PENDING deployments can.",
        STATUS_REFUSED,
    )
