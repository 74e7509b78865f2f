"""Reading request headers, path ids and bodies the way the spec defines them; anything else
is a 400 (or 403).

Pure functions of the parsed request: each returns what the operation needs or raises
:class:`~bulkterm.simulator.wire.ApiFailure` carrying the violation to record. They are strict
where the spec or SAP's docs are explicit (≤100 unique ids per bulk request, ``targetStatus``
only STOPPED or DELETED) and lenient where servers usually are (unknown item properties are
ignored). Query parameters are :mod:`bulkterm.simulator.queries`' to read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bulkterm.aiapi.models import (
    ID_PATTERN,
    MAX_BULK_ITEMS,
    RESOURCE_GROUP_PATTERN,
    Kind,
    ScheduleStatus,
    TargetStatus,
)
from bulkterm.simulator.recording import ViolationSpec
from bulkterm.simulator.rules import CODE_BAD_REQUEST, CODE_FORBIDDEN
from bulkterm.simulator.wire import ApiFailure

_ID = re.compile(ID_PATTERN)
_RESOURCE_GROUP = re.compile(RESOURCE_GROUP_PATTERN)
_TTL = re.compile(r"^[0-9]+[mMhHdD]$")


def bad_request(
    message: str, violation: str, *, kind: Kind | None = None, item_id: str | None = None
) -> ApiFailure:
    """A 400 whose violation code names what was wrong (``DuplicateId``, ``TooManyItems``…)."""
    return ApiFailure(
        400,
        CODE_BAD_REQUEST,
        message,
        violation=ViolationSpec(violation, message, kind, item_id),
    )


#: AI Core's answer for a resource group the token may not use or the tenant lacks (SAP's
#: troubleshooting page: "403 - forbidden: RBAC Access denied").
RBAC_DENIED = "RBAC Access denied"


def resource_group(header: str | None, exists: Callable[[str], bool]) -> str:
    """The ``AI-Resource-Group`` header: required on every deployment/execution operation.

    Missing or outside the spec's pattern: 400. A well-formed group that does not exist: 403.
    """
    if header is None or header == "":
        raise bad_request("Missing header AI-Resource-Group.", "MissingResourceGroup")
    if not _RESOURCE_GROUP.match(header):
        raise bad_request(
            f"Invalid AI-Resource-Group {header!r}: must match {RESOURCE_GROUP_PATTERN}.",
            "InvalidResourceGroup",
        )
    if not exists(header):
        raise ApiFailure(
            403,
            CODE_FORBIDDEN,
            RBAC_DENIED,
            violation=ViolationSpec(
                "UnknownResourceGroup", f"resource group {header} does not exist: {RBAC_DENIED}"
            ),
        )
    return header


def item_id(kind: Kind, value: str) -> str:
    if not _ID.match(value):
        raise bad_request(
            f"Invalid {kind.lower()} id {value!r}: must match {ID_PATTERN}.",
            "InvalidId",
            kind=kind,
            item_id=value,
        )
    return value


def bulk_items(kind: Kind, body: object) -> list[tuple[str, TargetStatus]]:
    """A bulk PATCH body: ``{"<collection>": [{"id", "targetStatus"}, ...]}``, 1..100 unique ids.

    The collection key must match the path (SAP's own doc once sent ``executions`` to
    ``/deployments``); any other top-level key is refused for the same reason.
    """
    key = kind.collection
    if not isinstance(body, dict):
        raise bad_request(
            f'Body must be a JSON object {{"{key}": [...]}}.', "MalformedRequest", kind=kind
        )
    unexpected = sorted(set(body) - {key})
    if unexpected or key not in body:
        found = ", ".join(unexpected) if unexpected else "none"
        raise bad_request(
            f'A bulk PATCH of {key} takes {{"{key}": [...]}}; unexpected or missing keys: {found}.',
            "WrongCollectionKey",
            kind=kind,
        )
    items = body[key]
    if not isinstance(items, list):
        raise bad_request(f"{key} must be an array.", "MalformedRequest", kind=kind)
    if not items:
        raise bad_request(f"{key} must contain at least 1 item.", "EmptyBatch", kind=kind)
    if len(items) > MAX_BULK_ITEMS:
        raise bad_request(
            f"{key} must contain at most {MAX_BULK_ITEMS} items, got {len(items)}.",
            "TooManyItems",
            kind=kind,
        )
    parsed: list[tuple[str, TargetStatus]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(f"{key}[{index}] must be an object.", "MalformedRequest", kind=kind)
        ident, target = item.get("id"), item.get("targetStatus")
        if not isinstance(ident, str) or not _ID.match(ident):
            raise bad_request(
                f"{key}[{index}].id must be a string matching {ID_PATTERN}.",
                "InvalidId",
                kind=kind,
                item_id=ident if isinstance(ident, str) else None,
            )
        try:
            requested = TargetStatus(target) if isinstance(target, str) else None
        except ValueError:
            requested = None
        if requested is None:
            raise bad_request(
                f"{key}[{index}].targetStatus must be STOPPED or DELETED, got {target!r}.",
                "InvalidTargetStatus",
                kind=kind,
                item_id=ident,
            )
        if ident in seen:
            raise bad_request(
                f"Duplicate id {ident} in {key}: an id may appear only once per request.",
                "DuplicateId",
                kind=kind,
                item_id=ident,
            )
        seen.add(ident)
        parsed.append((ident, requested))
    return parsed


@dataclass(frozen=True)
class Modification:
    """A single PATCH: stop, or (deployments only) switch to another configuration."""

    stop: bool
    configuration_id: str | None = None


def modification(kind: Kind, item: str, body: object) -> Modification:
    """``{"targetStatus": "STOPPED"}`` (only value) or, for deployments, ``{"configurationId"}``."""
    if not isinstance(body, dict):
        raise bad_request(
            "Body must be a JSON object.", "MalformedRequest", kind=kind, item_id=item
        )
    target = body.get("targetStatus")
    configuration = body.get("configurationId") if kind is Kind.DEPLOYMENT else None
    if target is not None and configuration is not None:
        raise bad_request(
            "Give either targetStatus or configurationId, not both.",
            "MalformedRequest",
            kind=kind,
            item_id=item,
        )
    if target is not None:
        if target != TargetStatus.STOPPED:
            raise bad_request(
                f"targetStatus must be STOPPED, got {target!r}; delete with DELETE.",
                "InvalidTargetStatus",
                kind=kind,
                item_id=item,
            )
        return Modification(stop=True)
    if configuration is not None:
        if not isinstance(configuration, str) or not _ID.match(configuration):
            raise bad_request(
                f"configurationId must match {ID_PATTERN}.",
                "MalformedRequest",
                kind=kind,
                item_id=item,
            )
        return Modification(stop=False, configuration_id=configuration)
    wanted = "targetStatus or configurationId" if kind is Kind.DEPLOYMENT else "targetStatus"
    raise bad_request(f"Body must contain {wanted}.", "MalformedRequest", kind=kind, item_id=item)


@dataclass(frozen=True)
class Creation:
    configuration_id: str
    ttl: str | None = None


def creation(kind: Kind, body: object) -> Creation:
    """``{"configurationId": ...}`` (+ ``ttl`` for deployments)."""
    if not isinstance(body, dict):
        raise bad_request("Body must be a JSON object.", "MalformedRequest", kind=kind)
    configuration = body.get("configurationId")
    if not isinstance(configuration, str) or not _ID.match(configuration):
        raise bad_request(
            f"configurationId is required and must match {ID_PATTERN}.",
            "MalformedRequest",
            kind=kind,
        )
    ttl = body.get("ttl") if kind is Kind.DEPLOYMENT else None
    if ttl is not None and (not isinstance(ttl, str) or not _TTL.match(ttl)):
        raise bad_request(
            "ttl must be a number followed by m, h or d (e.g. 24H).", "MalformedRequest", kind=kind
        )
    return Creation(configuration_id=configuration, ttl=ttl)


# -- execution schedules -------------------------------------------------------------------


def schedule_id(value: str) -> str:
    if not _ID.match(value):
        raise bad_request(
            f"Invalid execution schedule id {value!r}: must match {ID_PATTERN}.", "InvalidId"
        )
    return value


@dataclass(frozen=True)
class ScheduleModification:
    """What a ``PATCH /executionSchedules/{id}`` changes; ``None`` leaves a field as it is."""

    cron: str | None = None
    start: float | None = None
    end: float | None = None
    configuration_id: str | None = None
    status: ScheduleStatus | None = None


#: The properties of ``AiExecutionScheduleModificationRequest``.
SCHEDULE_FIELDS = ("cron", "start", "end", "configurationId", "status")


def _date_time(name: str, value: object) -> float:
    """An OpenAPI ``date-time`` (RFC 3339, with an offset) as epoch seconds."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise bad_request(
        f"{name} must be an RFC 3339 date-time with an offset (e.g. 2025-01-01T00:00:00Z), "
        f"got {value!r}.",
        "MalformedRequest",
    )


def schedule_modification(body: object) -> ScheduleModification:
    """The spec's ``AiExecutionScheduleModificationRequest``: any of ``cron``, ``start``,
    ``end``, ``configurationId``, ``status`` (ACTIVE/INACTIVE); at least one of them."""
    if not isinstance(body, dict):
        raise bad_request("Body must be a JSON object.", "MalformedRequest")
    if not any(name in body for name in SCHEDULE_FIELDS):
        raise bad_request(
            f"Body must contain at least one of {', '.join(SCHEDULE_FIELDS)}.", "MalformedRequest"
        )
    cron = body.get("cron")
    if cron is not None and (not isinstance(cron, str) or not cron.strip()):
        raise bad_request("cron must be a non-empty string.", "MalformedRequest")
    configuration = body.get("configurationId")
    if configuration is not None and (
        not isinstance(configuration, str) or not _ID.match(configuration)
    ):
        raise bad_request(f"configurationId must match {ID_PATTERN}.", "MalformedRequest")
    status: ScheduleStatus | None = None
    if body.get("status") is not None:
        try:
            status = ScheduleStatus(body["status"])
        except ValueError:
            raise bad_request(
                f"status must be ACTIVE or INACTIVE, got {body['status']!r}.", "MalformedRequest"
            ) from None
    start = None if body.get("start") is None else _date_time("start", body["start"])
    end = None if body.get("end") is None else _date_time("end", body["end"])
    if start is not None and end is not None and end <= start:
        raise bad_request("end must be later than start.", "MalformedRequest")
    return ScheduleModification(
        cron=cron, start=start, end=end, configuration_id=configuration, status=status
    )
