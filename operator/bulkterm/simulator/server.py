"""Running the simulator: :class:`Simulator` in an event loop, :class:`SimulatorThread` beside
synchronous code (SAP's ``requests``-based SDK, CLI tests).

Both expose the same Python API for seeding, inspection and control
(:class:`~bulkterm.simulator.python_api.SimulatorControls`).

Listening beyond loopback, the ``/_sim`` control API requires a bearer token: the config's, or
one generated here (``control_token``). With ``tls_cert``/``tls_key`` it serves HTTPS, so
clients' certificate checks (and ``--ca-bundle``) can be tried against it.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import threading
from types import TracebackType

from aiohttp import web

from bulkterm.simulator.app import BACKEND, add_api_routes, api_middleware
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.clock import Clock
from bulkterm.simulator.config import SimulatorConfig
from bulkterm.simulator.control import add_control_routes
from bulkterm.simulator.python_api import SimulatorControls

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
