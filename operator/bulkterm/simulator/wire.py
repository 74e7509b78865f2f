"""What goes on the wire: item JSON, error envelopes and timestamps, shaped by the spec.

Optional fields are left out rather than sent as ``null``: the spec's types are not nullable,
and SAP's Python SDK passes every key it receives to a constructor, so the set of keys matters
as much as their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from bulkterm.aiapi.models import Kind
from bulkterm.simulator.lifecycle import ItemRecord
from bulkterm.simulator.recording import ViolationSpec
from bulkterm.simulator.rules import CODE_RESULT_TOO_LARGE
from bulkterm.simulator.seeding import Configuration

T = TypeVar("T")

JSON = dict[str, Any]


def timestamp(epoch: float) -> str:
    """RFC 3339 UTC with whole seconds: the format SAP's SDK parses first (``...Z``)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_url(base_url: str, item_id: str) -> str:
    return f"{base_url}/v2/inference/deployments/{item_id}"


def full_item(record: ItemRecord, base_url: str) -> JSON:
    """An ``AiDeployment``/``AiExecution`` (also valid as the ``...ResponseWithDetails``)."""
    body: JSON = {"id": record.id}
    if record.kind is Kind.DEPLOYMENT:
        body["deploymentUrl"] = deployment_url(base_url, record.id)
    body.update(
        configurationId=record.configuration_id,
        configurationName=record.configuration_name,
        executableId=record.executable_id,
        scenarioId=record.scenario_id,
        status=str(record.status),
        targetStatus=str(record.target_status),
    )
    if record.status_message is not None:
        body["statusMessage"] = record.status_message
    if record.kind is Kind.DEPLOYMENT:
        body["lastOperation"] = record.last_operation
        if record.latest_running_configuration_id is not None:
            body["latestRunningConfigurationId"] = record.latest_running_configuration_id
        if record.ttl is not None:
            body["ttl"] = record.ttl
        body["details"] = {
            "scaling": {"backendDetails": {}},
            "resources": {"backendDetails": {}},
        }
    else:
        body["outputArtifacts"] = []
        if record.execution_schedule_id is not None:
            body["executionScheduleId"] = record.execution_schedule_id
    body["createdAt"] = timestamp(record.created_at)
    body["modifiedAt"] = timestamp(record.modified_at)
    for key, value in (
        ("submissionTime", record.submission_time),
        ("startTime", record.start_time),
        ("completionTime", record.completion_time),
    ):
        if value is not None:
            body[key] = timestamp(value)
    return body


def status_item(record: ItemRecord, *, include_target_status: bool) -> JSON:
    """The ``$select=status`` form: exactly what SAP's SDK's ``*GetStatusResponse`` accepts."""
    body: JSON = {
        "id": record.id,
        "configurationId": record.configuration_id,
        "status": str(record.status),
    }
    if include_target_status:
        body["targetStatus"] = str(record.target_status)
    body["createdAt"] = timestamp(record.created_at)
    body["modifiedAt"] = timestamp(record.modified_at)
    return body


def configuration_json(configuration: Configuration, created_at: float) -> JSON:
    """An ``AiConfiguration`` without bindings (the simulator does not model them)."""
    return {
        "id": configuration.id,
        "name": configuration.name,
        "scenarioId": configuration.scenario_id,
        "executableId": configuration.executable_id,
        "parameterBindings": [],
        "inputArtifactBindings": [],
        "createdAt": timestamp(created_at),
    }


def api_error(
    code: str, message: str, request_id: str, target: str, details: JSON | None = None
) -> JSON:
    """An ``AiApiError``; SAP's SDK needs ``requestId`` and ``target`` too, not only the
    spec's required ``code`` and ``message``."""
    error: JSON = {"code": code, "message": message, "requestId": request_id, "target": target}
    if details is not None:
        error["details"] = details
    return error


class ApiFailure(Exception):
    """A request-level refusal: answered as ``{"error": {...}}`` with ``status``.

    ``violation`` is set when the client asked for something the API does not allow (recorded
    for tests to assert on); it is ``None`` for injected faults and for expired tokens.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        violation: ViolationSpec | None = None,
        headers: dict[str, str] | None = None,
        details: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.violation = violation
        self.headers = headers or {}
        self.details = details


def refuse_too_many_rows(rows: int, limit: int | None, what: str, kind: Kind | None = None) -> None:
    """The 413 a ``/v2/lm`` list answers when a page would hold more than ``limit`` rows
    (seen on another endpoint of the AI API, at 1000 rows); ``what`` names the list."""
    if limit is not None and rows > limit:
        message = f"Result set exceeds the maximum of {limit} rows. Use $top and $skip to paginate."
        raise ApiFailure(
            413,
            CODE_RESULT_TOO_LARGE,
            message,
            violation=ViolationSpec("ResultTooLarge", f"{what}: {message}", kind),
        )


def paged(
    matching: Sequence[T],
    skip: int,
    top: int,
    *,
    max_rows: int | None,
    list_count: str,
    what: str,
    kind: Kind | None = None,
) -> tuple[list[T], int]:
    """The ``$skip``/``$top`` page of ``matching`` (a 413 above ``max_rows``, see
    :func:`refuse_too_many_rows`) and the ``count`` a list answers with it: every match
    (``list_count`` ``"total"``, as the spec says) or, as a silently capped server does, the
    page's own."""
    page = list(matching[skip : skip + top])
    refuse_too_many_rows(len(page), max_rows, what, kind)
    return page, len(matching) if list_count == "total" else len(page)
