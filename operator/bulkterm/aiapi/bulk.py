"""The bulk PATCH: what one request may hold, its body, and reading its answer.

The AI API takes at most 100 items per request, each id once, each ``STOPPED`` or
``DELETED``, STOP and DELETE mixed. Per-item failures arrive inside the 202 as
``{"id", "error": {...}}``; the request as a whole is never answered 404 or 412 (an item
that is not there, or has moved on, is that item's error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bulkterm.aiapi.errors import (
    AiApiError,
    BulkUnsupportedError,
    EndpointNotFoundError,
    InvalidBatchError,
    NotFoundError,
    PermanentError,
)
from bulkterm.aiapi.models import MAX_BULK_ITEMS, BulkItemResult, Kind, TargetStatus
from bulkterm.aiapi.wire import json_object

MERGE_PATCH = "application/merge-patch+json"


def validate_batch(items: Sequence[tuple[str, TargetStatus]]) -> None:
    """Refuse what the AI API would refuse: empty, above 100 items, an id twice, bad status."""
    if not items:
        raise InvalidBatchError("a bulk request needs at least one item")
    if len(items) > MAX_BULK_ITEMS:
        raise InvalidBatchError(
            f"a bulk request may hold at most {MAX_BULK_ITEMS} items, got {len(items)}"
        )
    seen: set[str] = set()
    for item_id, target in items:
        if item_id in seen:
            raise InvalidBatchError(f"id {item_id!r} appears twice in one bulk request")
        seen.add(item_id)
        if target not in (TargetStatus.STOPPED, TargetStatus.DELETED):
            raise InvalidBatchError(f"id {item_id!r}: targetStatus must be STOPPED or DELETED")


def bulk_body(kind: Kind, items: Sequence[tuple[str, TargetStatus]]) -> dict[str, Any]:
    """``{"deployments": [{"id", "targetStatus"}, …]}``, after :func:`validate_batch`."""
    validate_batch(items)
    return {kind.collection: [{"id": i, "targetStatus": TargetStatus(t).value} for i, t in items]}


def bulk_results(response: httpx.Response, kind: Kind) -> list[BulkItemResult]:
    """The per-item results of a 202. An item that cannot be read is left out: to the engine
    it is unanswered, and it re-observes the item."""
    answered = json_object(response).get(kind.collection)
    if not isinstance(answered, list):
        raise PermanentError(f"bulk_patch {kind.collection}: 202 without a result list")
    results = []
    for raw in answered:
        try:
            results.append(BulkItemResult.model_validate(raw))
        except ValueError:
            continue
    return results


def means_bulk_unsupported(error: AiApiError, label: str = "") -> bool:
    """Whether a refusal of a bulk PATCH says the server has no bulk updates (405, 501, or a
    4xx whose API code or message says bulk is unsupported or disabled). ``label``, the
    call's own prefix of the message, is not read: it always says "bulk"."""
    if error.status_code in (405, 501):
        return True
    said = error.message.removeprefix(f"{label}: ") if label else error.message
    text = f"{error.code or ''} {said}".lower()
    refusals = ("not supported", "unsupported", "disabled", "not enabled")
    return "bulk" in text and any(phrase in text for phrase in refusals)


def as_unsupported(error: AiApiError, label: str) -> BulkUnsupportedError | None:
    """The refusal of a bulk PATCH as "no bulk endpoint here", or None when it is another
    refusal: a 404 with the envelope on the collection, 405/501, or a 4xx saying so. (A 404
    without the envelope is a URL the AI API does not serve at all: not this.)"""
    if isinstance(error, EndpointNotFoundError):
        return None
    if not isinstance(error, NotFoundError) and not means_bulk_unsupported(error, label):
        return None
    return BulkUnsupportedError(
        error.message,
        status_code=error.status_code,
        code=error.code,
        request_id=error.request_id,
    )
