"""What clients did to the simulator: request counters and protocol violations.

A *violation* is a request the real AI API would refuse because the client asked for
something illegal (stop a STOPPED item, delete a RUNNING one, 101 items, a duplicate id, no
``AI-Resource-Group``, a write to an unknown id…). Tests of a client assert the list is empty;
injected faults and expired tokens are never violations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from bulkterm.aiapi.models import Kind


@dataclass
class RequestContext:
    """Who asked what: stamped on every violation the request causes."""

    route: str
    #: The invoked URL as the client sent it (scheme, host, path, query): an error's ``target``.
    url: str
    request_id: str
    resource_group: str | None = None


@dataclass(frozen=True)
class ViolationSpec:
    """What a refused request did wrong, before it is stamped with route, group and time."""

    code: str
    what: str
    kind: Kind | None = None
    item_id: str | None = None


@dataclass(frozen=True)
class Violation:
    """One refused request (or one refused item of a bulk request)."""

    #: Category, e.g. ``IllegalStop``, ``IllegalDelete``, ``BeingDeleted``, ``NotFound``,
    #: ``DuplicateId``, ``TooManyItems``, ``MissingResourceGroup`` (see docs/simulator.md).
    code: str
    #: A sentence saying what was asked and why it is not allowed.
    what: str
    #: Clock time of the request (the simulator's clock, seconds).
    when: float
    #: The item concerned, when there is one.
    kind: Kind | None
    id: str | None
    #: Route key of the request, e.g. ``PATCH /lm/deployments``.
    route: str
    resource_group: str | None
    #: HTTP status answered (202 for a refused item inside a bulk response).
    http_status: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = None if self.kind is None else str(self.kind)
        return data


class Recorder:
    """Counters and violations. Not thread-safe by itself: the simulator's lock guards it."""

    def __init__(self) -> None:
        #: Requests received per route key (``"GET /lm/deployments/{id}"``), faults included.
        self.requests: Counter[str] = Counter()
        #: Answers per route key and HTTP status (``"PATCH /lm/deployments 202"``), and
        #: ``"... dropped"`` for connections closed by a fault.
        self.responses: Counter[str] = Counter()
        self.violations: list[Violation] = []

    def record(
        self, context: RequestContext, spec: ViolationSpec, http_status: int, when: float
    ) -> None:
        self.violations.append(
            Violation(
                code=spec.code,
                what=spec.what,
                when=when,
                kind=spec.kind,
                id=spec.item_id,
                route=context.route,
                resource_group=context.resource_group,
                http_status=http_status,
            )
        )

    def reset_counters(self) -> None:
        self.requests.clear()
        self.responses.clear()

    def clear_violations(self) -> None:
        self.violations.clear()
