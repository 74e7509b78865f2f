"""Settings of the simulator: how long each phase lasts, which faults to inject, and the rest.

Plain frozen dataclasses so that tests, the CLI and the ``/_sim`` control API build them the
same way; a change at runtime replaces the whole object (``dataclasses.replace``), so a
request never sees half of an update.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from bulkterm.aiapi.models import RESOURCE_GROUP_PATTERN


def _check_seconds(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None:
        if not optional:
            raise ValueError(f"{name} must be a number of seconds")
        return
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class Timings:
    """How long an item stays in each status before it moves on by itself (seconds of the clock).

    ``None`` for ``unknown_seconds`` keeps items UNKNOWN for ever (a deployment stuck in sync);
    ``None`` for ``execution_run_seconds`` means executions never complete (a long training run).
    """

    #: UNKNOWN → PENDING (the runtime has picked the item up).
    unknown_seconds: float | None = 2.0
    #: PENDING → RUNNING (or → DEAD for items configured to die).
    pending_seconds: float = 3.0
    #: RUNNING → COMPLETED, executions only.
    execution_run_seconds: float | None = 60.0
    #: RUNNING → DEAD for a RUNNING item configured to die.
    dead_after_seconds: float = 3.0
    #: An accepted stop: RUNNING/PENDING (with ``targetStatus: STOPPED``) → STOPPING. The window
    #: where the target is already STOPPED but the status is not yet STOPPING is real (SAP's
    #: cleanup scripts have a branch for it), so it is modelled.
    stop_delay_seconds: float = 0.5
    #: STOPPING → STOPPED.
    stopping_seconds: float = 3.0
    #: An accepted delete: item still listed with ``targetStatus: DELETED`` → gone (404).
    #: SAP: "around 5-10 seconds, sometimes more".
    deletion_seconds: float = 8.0

    def __post_init__(self) -> None:
        _check_seconds("unknown_seconds", self.unknown_seconds, optional=True)
        _check_seconds("pending_seconds", self.pending_seconds)
        _check_seconds("execution_run_seconds", self.execution_run_seconds, optional=True)
        _check_seconds("dead_after_seconds", self.dead_after_seconds)
        _check_seconds("stop_delay_seconds", self.stop_delay_seconds)
        _check_seconds("stopping_seconds", self.stopping_seconds)
        _check_seconds("deletion_seconds", self.deletion_seconds)

    @classmethod
    def fast(cls, scale: float = 0.05) -> Timings:
        """Every phase ``scale`` times the default (tests: the whole lifecycle in well under 1 s)."""
        base = cls()
        unknown, run = base.unknown_seconds, base.execution_run_seconds
        return cls(
            unknown_seconds=None if unknown is None else unknown * scale,
            pending_seconds=base.pending_seconds * scale,
            execution_run_seconds=None if run is None else run * scale,
            dead_after_seconds=base.dead_after_seconds * scale,
            stop_delay_seconds=base.stop_delay_seconds * scale,
            stopping_seconds=base.stopping_seconds * scale,
            deletion_seconds=base.deletion_seconds * scale,
        )


@dataclass(frozen=True)
class Faults:
    """Misbehaviour injected into AI API requests, decided per request by the seeded RNG.

    Rates are probabilities in [0, 1], checked in this order: dropped connection, 5xx, 429,
    forced 401; then the request is served, and ``lost_response_rate`` may drop the connection
    *after* the change was applied (the nastiest case for a client: did my PATCH happen?).
    Faults never hit ``/_sim`` and, unless ``include_token_endpoint``, not ``/oauth/token``.
    """

    #: Fixed delay added to every request, milliseconds (real time, not the simulated clock).
    latency_ms: float = 0.0
    #: Extra random delay, uniform in [0, latency_jitter_ms].
    latency_jitter_ms: float = 0.0
    #: Close the connection without answering, before the request is processed.
    drop_rate: float = 0.0
    #: Answer ``error_status`` (5xx) with an error envelope.
    error_rate: float = 0.0
    error_status: int = 503
    #: Answer 429 with ``Retry-After: retry_after`` seconds.
    throttle_rate: float = 0.0
    retry_after: int = 1
    #: Answer 401 as if the bearer token had expired early or been revoked.
    unauthorized_rate: float = 0.0
    #: Process the request, then close the connection instead of sending the answer.
    lost_response_rate: float = 0.0
    #: Restrict faults to these HTTP methods (e.g. ``("PATCH",)``); ``None`` = all methods.
    methods: tuple[str, ...] | None = None
    #: Also inject faults into ``POST /oauth/token``.
    include_token_endpoint: bool = False

    def __post_init__(self) -> None:
        for name in (
            "drop_rate",
            "error_rate",
            "throttle_rate",
            "unauthorized_rate",
            "lost_response_rate",
        ):
            _check_rate(name, getattr(self, name))
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency_ms and latency_jitter_ms must be >= 0")
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 5xx status, got {self.error_status}")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.methods is not None:
            object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))

    @property
    def active(self) -> bool:
        """Whether any fault or delay is configured (skips RNG draws when not)."""
        return any(
            (
                self.latency_ms,
                self.latency_jitter_ms,
                self.drop_rate,
                self.error_rate,
                self.throttle_rate,
                self.unauthorized_rate,
                self.lost_response_rate,
            )
        )


#: HTTP statuses a bulk PATCH may be refused with when ``bulkUpdates`` is off. The real
#: behaviour is unknown (no report found); 400 is the only non-2xx the spec declares.
BULK_REFUSAL_STATUSES = (400, 403, 404, 405, 501)


#: The resource group every tenant has (AI Core creates it with the tenant).
DEFAULT_RESOURCE_GROUP = "default"


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes one simulator instance. The defaults are a faithful AI Core."""

    host: str = "127.0.0.1"
    #: 0 picks a free port; read it back from ``Simulator.url``.
    port: int = 0
    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    #: ``expires_in`` of issued tokens: 43199 (12 h less a second) as XSUAA issues them. SAP's
    #: Python SDK refetches a token on every call when this is <= 3600.
    token_expires_in: int = 43199
    #: The ``bulkUpdates`` capability for both kinds (``/_sim/capabilities`` sets them apart).
    #: Off by default, as on AI Core: "The feature is set to false by default" (it is enabled
    #: per template). Turn it on for anything about bulk PATCH.
    bulk_updates: bool = False
    #: HTTP status of the refusal of a bulk PATCH while ``bulkUpdates`` is off.
    bulk_refusal_status: int = 400
    timings: Timings = field(default_factory=Timings)
    faults: Faults = field(default_factory=Faults)
    #: Seed of every random choice (ids, seeded statuses, faults): same seed, same run.
    seed: int | None = None
    #: Items created at start-up (see ``Simulator.seed``).
    initial_deployments: int = 0
    initial_executions: int = 0
    #: Resource group of the initial items; it exists even when they are 0.
    initial_resource_group: str = DEFAULT_RESOURCE_GROUP
    #: Resource groups that exist besides ``default``, ``initial_resource_group`` and every
    #: group items are seeded into (``add_item``, ``seed``, ``/_sim/items``) or created in
    #: (``add_resource_group``, ``/_sim/resource-groups``). A request naming any other group
    #: gets 403 "RBAC Access denied", as AI Core answers for a group the tenant lacks.
    resource_groups: tuple[str, ...] = ()
    #: ``count`` of a list: ``"total"`` = all matching items before ``$top``/``$skip``;
    #: ``"page"`` = the number of resources returned. The spec ("number of the resource
    #: instances in the list") allows both readings.
    list_count: str = "total"
    #: Honour ``top``/``skip`` without ``$`` (what SAP's Python SDK sends). Whether AI Core does
    #: is unverified; turn off to see what a client that relies on it would do.
    accept_plain_top_skip: bool = True
    #: Answer 413 when a list would return more rows than this (a ceiling seen on another
    #: ``/v2/lm`` endpoint at 1000). ``None``: no ceiling beyond the spec's ``$top`` maximum.
    max_result_rows: int | None = None
    #: Serve at most this many rows per list page whatever ``$top`` asks, saying nothing
    #: (``count`` stays what ``list_count`` says). No AI Core endpoint is known to do this;
    #: it is how a client that trusts a short page as the end of the list gets caught.
    silent_page_rows: int | None = None
    #: Whether ``$select=status`` keeps ``targetStatus``. SAP's Python SDK cannot parse a
    #: ``$select=status`` answer that has it, so AI Core evidently leaves it out.
    select_status_includes_target_status: bool = False
    #: Whether a bulk DELETE may delete a COMPLETED execution. Off: SAP's bulk pages say "only
    #: stopped, dead or unknown ... can be deleted". A single DELETE always may (the status
    #: table and the delete-an-execution page: "Completed, Dead, Stopped, or Unknown").
    bulk_delete_completed: bool = False
    #: Serve execution schedules (``/lm/executionSchedules``) and say so in ``/lm/meta``
    #: (``capabilities.executionSchedules``). Off: their paths are not served (plain 404),
    #: as on a runtime without schedules.
    execution_schedules: bool = True
    #: Serve the ``/_sim`` control API (seed, faults, clock, token revocation).
    control_api: bool = True
    #: The bearer token every ``/_sim`` request must carry (``Authorization: Bearer <token>``).
    #: ``None``: ``/_sim`` is open on a loopback ``host`` (nothing else can reach it) and, on any
    #: other, :class:`~bulkterm.simulator.server.Simulator` generates one (read it back from
    #: ``Simulator.control_token``). Never in ``repr``.
    control_token: str | None = field(default=None, repr=False)
    #: Serve HTTPS with this certificate chain (PEM) and its private key; both or neither.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only (see :func:`is_loopback`)."""
        return is_loopback(self.host)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.token_expires_in <= 0:
            raise ValueError("token_expires_in must be > 0")
        if self.bulk_refusal_status not in BULK_REFUSAL_STATUSES:
            raise ValueError(f"bulk_refusal_status must be one of {BULK_REFUSAL_STATUSES}")
        if self.list_count not in ("total", "page"):
            raise ValueError('list_count must be "total" or "page"')
        if self.initial_deployments < 0 or self.initial_executions < 0:
            raise ValueError("initial item counts must be >= 0")
        if self.max_result_rows is not None and self.max_result_rows < 1:
            raise ValueError("max_result_rows must be >= 1")
        if self.silent_page_rows is not None and self.silent_page_rows < 1:
            raise ValueError("silent_page_rows must be >= 1")
        object.__setattr__(self, "resource_groups", tuple(self.resource_groups))
        for group in (self.initial_resource_group, *self.resource_groups):
            if not re.match(RESOURCE_GROUP_PATTERN, group):
                raise ValueError(f"invalid resource group id {group!r}")
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret must not be empty")
        if self.control_token is not None:
            check_control_token(self.control_token)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")


#: The shortest control token accepted: 16 characters of ``secrets.token_urlsafe`` carry
#: 96 bits; anything shorter could be guessed by whoever can reach the port.
MIN_CONTROL_TOKEN_LENGTH = 16


def check_control_token(token: str) -> None:
    """A token a client can send in a header and nobody can guess; ``ValueError`` names the
    rule broken, never the token."""
    if len(token) < MIN_CONTROL_TOKEN_LENGTH:
        raise ValueError(
            f"the control token must be at least {MIN_CONTROL_TOKEN_LENGTH} characters long "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(
            "the control token must be printable ASCII without spaces (it is sent in a header)"
        )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on the loopback interface only.

    ``localhost`` and loopback addresses (127.0.0.0/8, ::1) are; the wildcards (``""``,
    ``0.0.0.0``, ``::``), other addresses and other names are not: a name is not resolved,
    so one that happens to point at 127.0.0.1 still counts as reachable from elsewhere.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
