"""Knobs of the engine that are operational, not part of what the user asks for.

The spec says *what* to terminate and how patient to be overall; these say how hard to
drive the AI API while doing it. They are separate so the operator and the CLI can tune
them (flags, Helm values) without a CRD change, and tests can make everything instant.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class EngineSettings(BaseModel):
    """Operational limits of one engine run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A cap on ``spec.pollIntervalSeconds`` (tests run fast with a small one; the default
    #: never lowers what the CRD allows).
    max_poll_seconds: Annotated[float, Field(gt=0)] = 3600.0
    #: Parallel single calls (GET one, single PATCH/DELETE): a friendly bound for one endpoint.
    single_call_concurrency: Annotated[int, Field(ge=1, le=256)] = 10
    #: Parallel bulk PATCH requests.
    bulk_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    #: How long an accepted STOP may show no effect before it is considered lost and resent.
    resend_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    #: The same for an accepted DELETE. Longer, because an item being deleted may look
    #: untouched for a while when ``$select=status`` hides ``targetStatus`` (SAP: "5-10 s,
    #: sometimes more"), and a DELETE resent to it is refused, which would spend its budget.
    delete_resend_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    #: ``$top`` of list pages: the spec's default (its maximum is 100,000), so that up to
    #: 10,000 items are one page, a snapshot whose gaps need no confirming GET. A server that
    #: serves fewer rows (a 413, as another ``/lm`` endpoint answers above 1000 rows, or a
    #: short page with a larger ``count``: a silent cap) is read in the pages it serves.
    list_page_size: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    #: Exponential backoff after transient errors: base, cap, and a bound on honoured Retry-After.
    backoff_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_retry_after_seconds: Annotated[float, Field(gt=0)] = 600.0
    #: How long rounds may fail to read the AI API at all (unreachable, not the AI API, an
    #: outage) before the run says ``Stalled`` with the kind of problem; it keeps retrying.
    stall_after_seconds: Annotated[float, Field(gt=0)] = 300.0
    #: Transient failures of a target's request that together cost one unit of its retry budget.
    transient_errors_per_retry: Annotated[int, Field(ge=1)] = 5
    #: Bounds on the human-readable lists in the record (counters stay authoritative).
    max_in_flight_entries: Annotated[int, Field(ge=0, le=1000)] = 50
    max_failure_entries: Annotated[int, Field(ge=0, le=1000)] = 100
    max_plan_entries: Annotated[int, Field(ge=0, le=1000)] = 50
    #: Bound on timestamped index groups (in-flight batches, UNKNOWN since); older ones merge.
    max_index_groups: Annotated[int, Field(ge=1, le=1000)] = 32
