"""Running the simulator: :class:`Simulator` in an event loop, :class:`SimulatorThread` beside
synchronous code (SAP's ``requests``-based SDK, CLI tests).

Both expose the same inspection and control methods (:class:`SimulatorControls`), which
only touch the lock-guarded :class:`~bulkterm.simulator.backend.Backend`, so calling them from
the test thread while the server thread serves requests is safe.

Listening beyond loopback, the ``/_sim`` control API requires a bearer token: the config's, or
one generated here (``control_token``). With ``tls_cert``/``tls_key`` it serves HTTPS, so
clients' certificate checks (and ``--ca-bundle``) can be tried against it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator.app import BACKEND, add_api_routes, api_middleware
from bulkterm.simulator.backend import Backend, ItemView
from bulkterm.simulator.clock import Clock, SimClock
from bulkterm.simulator.config import Faults, SimulatorConfig, Timings
from bulkterm.simulator.control import add_control_routes
from bulkterm.simulator.recording import Violation
from bulkterm.simulator.schedules import DEFAULT_CRON, DEFAULT_PERIOD_SECONDS, ScheduleView

#: Longest request line served: the spec allows 1000 ``executableIds`` of up to 64 characters
#: (about 67 KB URL-encoded), far beyond aiohttp's 8 KB default. Gateways in front of AI Core
#: have limits of their own; the client keeps its requests short anyway.
MAX_REQUEST_LINE = 128 * 1024


def build_app(backend: Backend, control_token: str | None = None) -> web.Application:
    """The aiohttp application: AI API routes, and ``/_sim`` unless the config turns it off
    (requiring ``control_token`` when given)."""
    app = web.Application(
        middlewares=[api_middleware], handler_args={"max_line_size": MAX_REQUEST_LINE}
    )
    app[BACKEND] = backend
    add_api_routes(app)
    if backend.config.control_api:
        add_control_routes(app, control_token)
    return app


def control_token_for(config: SimulatorConfig) -> str | None:
    """The token ``/_sim`` requires: the config's; else, beyond loopback, a fresh random one
    (anyone who can reach the port could otherwise reseed the tenant or revoke its tokens);
    else none."""
    if not config.control_api:
        return None
    if config.control_token is not None:
        return config.control_token
    return None if config.loopback else secrets.token_urlsafe(32)


def server_tls(config: SimulatorConfig) -> ssl.SSLContext | None:
    """The server side of HTTPS from ``tls_cert``/``tls_key``; ``ValueError`` naming the file
    and why when they do not load (missing, unreadable, not PEM, not a pair)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    for path in (config.tls_cert, config.tls_key):
        try:
            path.read_bytes()
        except OSError as error:
            raise ValueError(
                f"cannot serve HTTPS: {path}: cannot read ({error.strerror or error})"
            ) from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (ssl.SSLError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ValueError(
            f"cannot serve HTTPS: {config.tls_cert} and {config.tls_key} are not a PEM "
            f"certificate and its private key ({reason})"
        ) from None
    return context


def _url_host(host: str) -> str:
    """A host clients can connect to: wildcard binds are reached over loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class SimulatorControls:
    """Seeding, inspection and runtime control, shared by both runners."""

    backend: Backend
    #: What every ``/_sim`` request must carry as ``Authorization: Bearer``; ``None``: open.
    control_token: str | None

    @property
    def url(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def config(self) -> SimulatorConfig:
        return self.backend.config

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    # -- items -------------------------------------------------------------------------

    def add_item(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        *,
        resource_group: str = "default",
        target_status: str | None = None,
        goes_dead: bool = False,
        hold: bool = False,
        configuration_id: str | None = None,
        execution_schedule_id: str | None = None,
        created_at: datetime | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
    ) -> None:
        """Seed one item in ``status`` (replaces an item with the same id in the group); the
        resource group exists from then on.

        ``goes_dead``: PENDING/RUNNING end in DEAD instead of RUNNING/COMPLETED. ``hold``: the
        status never changes (a stuck item); deletion still completes. ``created_at``
        back-dates the item (for age-based selection); default now. ``scenario_id`` and
        ``executable_id`` put its configuration (``configuration_id``, required with them)
        in that scenario, for selection by scenario or executable.
        """
        self.backend.add_item(
            kind,
            item_id,
            status,
            resource_group=resource_group,
            target_status=target_status,
            goes_dead=goes_dead,
            hold=hold,
            configuration_id=configuration_id,
            execution_schedule_id=execution_schedule_id,
            created_at=created_at,
            scenario_id=scenario_id,
            executable_id=executable_id,
        )

    def seed(
        self, deployments: int = 0, executions: int = 0, resource_group: str = "default"
    ) -> list[tuple[Kind, str, Status]]:
        """Create items with fresh ids in a mix of every status (reproducible with a seed)."""
        return self.backend.seed(deployments, executions, resource_group)

    def state_of(self, kind: Kind, item_id: str, resource_group: str = "default") -> Status | None:
        """The item's status now; ``None`` once it is gone (deleted, or never existed)."""
        view = self.backend.item(kind, item_id, resource_group)
        return None if view is None else view.status

    def item(self, kind: Kind, item_id: str, resource_group: str = "default") -> ItemView | None:
        """The whole item now (``deleting`` shows a deletion in progress); ``None`` if gone."""
        return self.backend.item(kind, item_id, resource_group)

    def items(self, kind: Kind | None = None, resource_group: str | None = None) -> list[ItemView]:
        return self.backend.items(kind, resource_group)

    def clear_items(self) -> None:
        """Forget every item and execution schedule (resource groups stay: they belong to the
        tenant, not to items)."""
        self.backend.clear_items()

    # -- execution schedules -----------------------------------------------------------------

    def add_execution_schedule(
        self,
        schedule_id: str,
        *,
        configuration_id: str,
        resource_group: str = "default",
        status: ScheduleStatus = ScheduleStatus.ACTIVE,
        period_seconds: float = DEFAULT_PERIOD_SECONDS,
        cron: str = DEFAULT_CRON,
        name: str | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        created_at: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Seed one execution schedule (replaces one with the same id in the group).

        While ACTIVE it starts an execution of ``configuration_id`` (with its
        ``executionScheduleId``) every ``period_seconds`` of the simulator's clock, the first
        one period from now; ``cron`` is shown on the wire, not interpreted. ``scenario_id``
        and ``executable_id`` place the configuration as :meth:`add_item` does.
        """
        self.backend.add_schedule(
            schedule_id,
            configuration_id=configuration_id,
            resource_group=resource_group,
            status=status,
            period_seconds=period_seconds,
            cron=cron,
            name=name,
            scenario_id=scenario_id,
            executable_id=executable_id,
            created_at=created_at,
            start=start,
            end=end,
        )

    def execution_schedule(
        self, schedule_id: str, resource_group: str = "default"
    ) -> ScheduleView | None:
        """The schedule now (its runs so far started); ``None`` if deleted or never seeded."""
        return self.backend.execution_schedule(schedule_id, resource_group)

    def execution_schedules(self, resource_group: str | None = None) -> list[ScheduleView]:
        return self.backend.schedules(resource_group)

    # -- resource groups -------------------------------------------------------------------

    def add_resource_group(self, resource_group: str) -> None:
        """Make a resource group exist; requests naming a group that does not get 403."""
        self.backend.add_resource_group(resource_group)

    def resource_groups(self) -> list[str]:
        """Every existing resource group, sorted: ``default``, the config's, the seeded ones."""
        return self.backend.resource_groups()

    # -- counters and violations ---------------------------------------------------------

    @property
    def counters(self) -> Counter[str]:
        """A snapshot of requests per route key, e.g. ``counters["PATCH /lm/deployments"]``."""
        with self.backend.lock:
            return Counter(self.backend.recorder.requests)

    @property
    def responses(self) -> Counter[str]:
        """A snapshot of answers per route key and status, e.g. ``"GET /lm/meta 200"``."""
        with self.backend.lock:
            return Counter(self.backend.recorder.responses)

    @property
    def violations(self) -> list[Violation]:
        """A snapshot of the protocol violations recorded so far (empty for a correct client)."""
        with self.backend.lock:
            return list(self.backend.recorder.violations)

    def reset_counters(self) -> None:
        with self.backend.lock:
            self.backend.recorder.reset_counters()

    def clear_violations(self) -> None:
        with self.backend.lock:
            self.backend.recorder.clear_violations()

    # -- runtime settings ----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.backend.faults

    def set_faults(self, faults: Faults) -> None:
        self.backend.set_faults(faults)

    @property
    def timings(self) -> Timings:
        return self.backend.timings

    def set_timings(self, timings: Timings) -> None:
        self.backend.set_timings(timings)

    def set_bulk_updates(self, enabled: bool, kind: Kind | None = None) -> None:
        """Turn the ``bulkUpdates`` capability on/off for one kind or both."""
        self.backend.set_bulk_updates(enabled, kind)

    def issue_token(self) -> str:
        """A valid bearer token without the HTTP round trip (for raw-HTTP tests)."""
        with self.backend.lock:
            return self.backend.tokens.issue()

    def revoke_tokens(self) -> None:
        """Invalidate every issued token: the next call of each client gets a 401."""
        with self.backend.lock:
            self.backend.tokens.revoke_all()

    def advance(self, seconds: float) -> float:
        """Move a :class:`SimClock` forward; a real clock cannot be moved (``TypeError``)."""
        clock = self.backend.clock
        if not isinstance(clock, SimClock):
            raise TypeError("advance() needs the simulator to run on a SimClock")
        return clock.advance(seconds)

    # -- service key ---------------------------------------------------------------------

    def service_key(self) -> dict[str, Any]:
        """A secret-based AI Core service key pointing at this simulator."""
        base = self.url
        return {
            "clientid": self.config.client_id,
            "clientsecret": self.config.client_secret,
            "url": base,
            "identityzone": "sim",
            "serviceurls": {"AI_API_URL": base},
        }

    def write_service_key(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`service_key` as JSON, readable by the owner only (it holds a secret)."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.service_key(), handle, indent=2)
            handle.write("\n")
        os.chmod(target, 0o600)
        return target


class Simulator(SimulatorControls):
    """The AI API simulator in the current event loop.

    >>> async with Simulator(SimulatorConfig(seed=1)) as sim:   # doctest: +SKIP
    ...     sim.add_item(Kind.DEPLOYMENT, "d-1234", Status.RUNNING)
    ...     client = AIAPIV2Client(base_url=sim.url + "/v2/lm", auth_url=sim.url + "/oauth/token", ...)
    """

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.backend = Backend(config or SimulatorConfig(), clock)
        cfg = self.backend.config
        if cfg.initial_deployments or cfg.initial_executions:
            self.backend.seed(
                cfg.initial_deployments, cfg.initial_executions, cfg.initial_resource_group
            )
        self.control_token = control_token_for(cfg)
        #: Raises ``ValueError`` here, before anything listens, for files that do not load.
        self._tls = server_tls(cfg)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL without ``/v2`` (the ``AI_API_URL`` and the token host of the key)."""
        if self._url is None:
            raise RuntimeError("the simulator is not running: await start() first")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> str:
        """Listen on ``config.host:config.port`` (0 = a free port) and return the base URL."""
        if self._runner is not None:
            return self.url
        app = build_app(self.backend, self.control_token)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, ssl_context=self._tls)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        self._runner = runner
        scheme = "http" if self._tls is None else "https"
        self._url = f"{scheme}://{_url_host(self.config.host)}:{port}"
        return self._url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class SimulatorThread(SimulatorControls):
    """A :class:`Simulator` serving from its own event loop in a daemon thread.

    >>> with SimulatorThread(SimulatorConfig()) as sim:   # doctest: +SKIP
    ...     requests.get(sim.url + "/_sim/health")
    """

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.simulator = Simulator(config, clock)
        self.backend = self.simulator.backend
        self.control_token = self.simulator.control_token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.simulator.url

    @property
    def port(self) -> int:
        return self.simulator.port

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            return self.url
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.simulator.start())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.simulator.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=serve, name="bulkterm-simulator", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
