"""Reading a request's query parameters the way the spec defines them; anything else is a 400.

Lists and ``$count`` of items, execution schedules and configurations: their filters and
``$top``/``$skip`` paging (``top``/``skip`` too where the config accepts them, as SAP's Python
SDK sends them). Strict where the spec is explicit (one ``status`` value, ids matching the id
pattern, at most 1000 ``executableIds``, ``$select`` only ``status``); unknown parameters are
ignored, as servers usually do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bulkterm.aiapi.models import ID_PATTERN, MAX_EXECUTABLE_IDS, Kind, ScheduleStatus, Status
from bulkterm.simulator.validation import bad_request

#: ``$top`` default and maximum (``Aitop`` in the spec).
TOP_DEFAULT = 10_000
TOP_MAXIMUM = 100_000

_ID = re.compile(ID_PATTERN)

Query = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Filters:
    """The filters shared by list and ``$count``; ``None`` means "not filtered"."""

    executable_ids: frozenset[str] | None = None
    configuration_id: str | None = None
    scenario_id: str | None = None
    execution_schedule_id: str | None = None
    status: Status | None = None


@dataclass(frozen=True)
class ListQuery:
    filters: Filters
    top: int = TOP_DEFAULT
    skip: int = 0
    select_status: bool = False


def _single(query: Query, name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"Query parameter {name} takes one value.", "MalformedRequest")
    return values[0]


def _id_param(query: Query, name: str) -> str | None:
    value = _single(query, name)
    if value is not None and not _ID.match(value):
        raise bad_request(f"Invalid {name} {value!r}: must match {ID_PATTERN}.", "MalformedRequest")
    return value


def _int_param(query: Query, name: str, *, maximum: int | None = None) -> int | None:
    value = _single(query, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(
            f"Query parameter {name} must be an integer.", "MalformedRequest"
        ) from None
    if number < 0 or (maximum is not None and number > maximum):
        limit = f"0..{maximum}" if maximum is not None else ">= 0"
        raise bad_request(f"Query parameter {name} must be {limit}.", "MalformedRequest")
    return number


def _executable_ids(query: Query) -> frozenset[str] | None:
    """``executableIds``: comma-joined (``style: form, explode: false``), each id
    pattern-checked, at most 1000 (``AiexecutableIdsList``)."""
    raw = [part for value in query.get("executableIds", ()) for part in value.split(",") if part]
    if not raw:
        return None
    for executable_id in raw:
        if not _ID.match(executable_id):
            raise bad_request(
                f"Invalid executableIds item {executable_id!r}: must match {ID_PATTERN}.",
                "MalformedRequest",
            )
    if len(raw) > MAX_EXECUTABLE_IDS:
        raise bad_request(
            f"executableIds takes at most {MAX_EXECUTABLE_IDS} ids, got {len(raw)}.",
            "MalformedRequest",
        )
    return frozenset(raw)


def filters(kind: Kind, query: Query) -> Filters:
    """``executableIds`` (comma-joined), ``configurationId``, ``scenarioId``, ``status`` and, for
    executions, ``executionScheduleId``."""
    executable_ids = _executable_ids(query)
    status_value = _single(query, "status")
    status: Status | None = None
    if status_value is not None:
        try:
            status = Status(status_value)
        except ValueError:
            raise bad_request(
                f"Invalid status {status_value!r}: one of {', '.join(Status)}.", "MalformedRequest"
            ) from None
    return Filters(
        executable_ids=executable_ids,
        configuration_id=_id_param(query, "configurationId"),
        scenario_id=_id_param(query, "scenarioId"),
        execution_schedule_id=(
            _id_param(query, "executionScheduleId") if kind is Kind.EXECUTION else None
        ),
        status=status,
    )


def list_query(kind: Kind, query: Query, *, accept_plain_top_skip: bool) -> ListQuery:
    """Filters plus ``$top``/``$skip``/``$select``; ``top``/``skip`` too when accepted.

    ``$top`` wins over ``top`` when both are given. ``$top`` above the spec's maximum
    (100000) or a negative number is a 400.
    """
    top, skip = _paging(query, accept_plain_top_skip=accept_plain_top_skip)
    select = _single(query, "$select")
    if select is not None and select != "status":
        raise bad_request(
            f"Invalid $select {select!r}: only 'status' is supported.", "MalformedRequest"
        )
    return ListQuery(
        filters=filters(kind, query), top=top, skip=skip, select_status=select == "status"
    )


def _paging(query: Query, *, accept_plain_top_skip: bool) -> tuple[int, int]:
    top = _int_param(query, "$top", maximum=TOP_MAXIMUM)
    skip = _int_param(query, "$skip")
    if accept_plain_top_skip:
        if top is None:
            top = _int_param(query, "top", maximum=TOP_MAXIMUM)
        if skip is None:
            skip = _int_param(query, "skip")
    return (TOP_DEFAULT if top is None else top), (skip or 0)


def select_status(query: Query) -> bool:
    """``$select`` of a GET by id."""
    select = _single(query, "$select")
    if select is not None and select != "status":
        raise bad_request(
            f"Invalid $select {select!r}: only 'status' is supported.", "MalformedRequest"
        )
    return select == "status"


@dataclass(frozen=True)
class ScheduleFilters:
    """The filters of ``GET /executionSchedules`` and its ``$count``: the spec has only these
    two (no ``scenarioId``: a schedule names a configuration, not a scenario)."""

    configuration_id: str | None = None
    status: ScheduleStatus | None = None


@dataclass(frozen=True)
class ScheduleListQuery:
    filters: ScheduleFilters
    top: int = TOP_DEFAULT
    skip: int = 0


def schedule_filters(query: Query) -> ScheduleFilters:
    """``configurationId`` (id pattern) and ``status`` (one of ACTIVE, INACTIVE)."""
    status_value = _single(query, "status")
    status: ScheduleStatus | None = None
    if status_value is not None:
        try:
            status = ScheduleStatus(status_value)
        except ValueError:
            raise bad_request(
                f"Invalid status {status_value!r}: one of {', '.join(ScheduleStatus)}.",
                "MalformedRequest",
            ) from None
    return ScheduleFilters(configuration_id=_id_param(query, "configurationId"), status=status)


def schedule_list_query(query: Query, *, accept_plain_top_skip: bool) -> ScheduleListQuery:
    """Filters plus ``$top``/``$skip`` (the spec declares no ``$select`` here)."""
    top, skip = _paging(query, accept_plain_top_skip=accept_plain_top_skip)
    return ScheduleListQuery(filters=schedule_filters(query), top=top, skip=skip)


@dataclass(frozen=True)
class ConfigurationQuery:
    """``GET /configurations``: the filters a selector needs (``$search`` is not modelled)."""

    scenario_id: str | None
    executable_ids: frozenset[str] | None
    top: int = TOP_DEFAULT
    skip: int = 0


def configuration_query(query: Query, *, accept_plain_top_skip: bool) -> ConfigurationQuery:
    top, skip = _paging(query, accept_plain_top_skip=accept_plain_top_skip)
    return ConfigurationQuery(
        scenario_id=_id_param(query, "scenarioId"),
        executable_ids=_executable_ids(query),
        top=top,
        skip=skip,
    )
