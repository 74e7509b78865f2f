"""``bulkterm simulator``: run the AI API simulator until Ctrl-C (or SIGTERM).

The first line printed is ``AI API simulator listening on <url>`` so scripts can read the
port chosen for ``--port 0``. The client secret is never printed: pass it with
``--client-secret`` or ``BULKTERM_SIM_CLIENT_SECRET`` and hand it on with
``--write-service-key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from bulkterm.simulator.clock import SimClock
from bulkterm.simulator.config import Faults, SimulatorConfig, Timings
from bulkterm.simulator.server import Simulator


def seconds_or_never(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A number of seconds, or ``never`` (the phase does not end by itself)."""
    if value is None or value.lower() == "never":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number of seconds nor 'never'") from None
    if seconds < 0:
        raise click.BadParameter("seconds must be >= 0")
    return seconds


SECONDS = click.FloatRange(min=0)
RATE = click.FloatRange(0.0, 1.0)
_DEFAULT = Timings()


async def serve(simulator: Simulator, service_key: Path | None) -> None:
    """Start, announce, wait for SIGINT/SIGTERM, stop."""
    url = await simulator.start()
    if service_key is not None:
        simulator.write_service_key(service_key)
    click.echo(f"AI API simulator listening on {url}")
    click.echo(f"  AI API: {url}/v2  token: {url}/oauth/token  control: {url}/_sim")
    if service_key is not None:
        click.echo(f"service key written to {service_key}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
        click.echo("simulator stopped")


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    show_default=True,
    help="Port to bind; 0 picks a free one (the URL is printed).",
)
@click.option(
    "--client-id",
    default="sim-client",
    show_default=True,
    envvar="BULKTERM_SIM_CLIENT_ID",
    help="OAuth client id the token endpoint accepts.",
)
@click.option(
    "--client-secret",
    default="sim-secret",
    envvar="BULKTERM_SIM_CLIENT_SECRET",
    help="OAuth client secret (env BULKTERM_SIM_CLIENT_SECRET; never printed).",
)
@click.option(
    "--token-expires-in",
    default=3600,
    type=click.IntRange(min=1),
    show_default=True,
    help="Token lifetime in seconds.",
)
@click.option(
    "--unknown-seconds",
    callback=seconds_or_never,
    default=str(_DEFAULT.unknown_seconds),
    show_default=True,
    metavar="SECONDS|never",
    help="UNKNOWN → PENDING, or 'never'.",
)
@click.option(
    "--pending-seconds",
    type=SECONDS,
    default=_DEFAULT.pending_seconds,
    show_default=True,
    help="PENDING → RUNNING.",
)
@click.option(
    "--run-seconds",
    callback=seconds_or_never,
    default=str(_DEFAULT.execution_run_seconds),
    show_default=True,
    metavar="SECONDS|never",
    help="Executions RUNNING → COMPLETED, or 'never'.",
)
@click.option(
    "--dead-after-seconds",
    type=SECONDS,
    default=_DEFAULT.dead_after_seconds,
    show_default=True,
    help="RUNNING → DEAD for items set to die.",
)
@click.option(
    "--stop-delay-seconds",
    type=SECONDS,
    default=_DEFAULT.stop_delay_seconds,
    show_default=True,
    help="Accepted stop → STOPPING.",
)
@click.option(
    "--stopping-seconds",
    type=SECONDS,
    default=_DEFAULT.stopping_seconds,
    show_default=True,
    help="STOPPING → STOPPED.",
)
@click.option(
    "--deletion-seconds",
    type=SECONDS,
    default=_DEFAULT.deletion_seconds,
    show_default=True,
    help="Accepted delete → gone (404).",
)
@click.option(
    "--deployments",
    default=0,
    type=click.IntRange(min=0),
    show_default=True,
    help="Deployments to seed, in a mix of statuses.",
)
@click.option(
    "--executions",
    default=0,
    type=click.IntRange(min=0),
    show_default=True,
    help="Executions to seed, in a mix of statuses.",
)
@click.option(
    "--resource-group",
    default="default",
    show_default=True,
    help="Resource group of the seeded items.",
)
@click.option("--latency-ms", type=SECONDS, default=0.0, help="Delay added to every request.")
@click.option("--error-rate", type=RATE, default=0.0, help="Share of requests answered 503.")
@click.option("--throttle-rate", type=RATE, default=0.0, help="Share answered 429.")
@click.option(
    "--retry-after",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Retry-After seconds of a 429.",
)
@click.option(
    "--drop-rate", type=RATE, default=0.0, help="Share of connections dropped unanswered."
)
@click.option(
    "--unauthorized-rate", type=RATE, default=0.0, help="Share answered 401 (token expired early)."
)
@click.option(
    "--lost-response-rate",
    type=RATE,
    default=0.0,
    help="Share processed and then dropped (the answer is lost).",
)
@click.option(
    "--no-bulk-updates",
    is_flag=True,
    help="Report bulkUpdates false in /lm/meta and refuse bulk PATCH.",
)
@click.option(
    "--max-result-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Answer 413 when a list page would exceed this many rows.",
)
@click.option(
    "--manual-clock", is_flag=True, help="Time stands still except for POST /_sim/clock/advance."
)
@click.option(
    "--write-service-key",
    "service_key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a service key for this simulator to FILE (mode 0600).",
)
@click.option("--seed", type=int, default=None, help="Seed of ids, statuses and faults.")
def simulator_command(
    host: str,
    port: int,
    client_id: str,
    client_secret: str,
    token_expires_in: int,
    unknown_seconds: float | None,
    pending_seconds: float,
    run_seconds: float | None,
    dead_after_seconds: float,
    stop_delay_seconds: float,
    stopping_seconds: float,
    deletion_seconds: float,
    deployments: int,
    executions: int,
    resource_group: str,
    latency_ms: float,
    error_rate: float,
    throttle_rate: float,
    retry_after: int,
    drop_rate: float,
    unauthorized_rate: float,
    lost_response_rate: float,
    no_bulk_updates: bool,
    max_result_rows: int | None,
    manual_clock: bool,
    service_key: Path | None,
    seed: int | None,
) -> None:
    """Run a local SAP AI Core AI API simulator (deployments, executions, bulk stop/delete)."""
    try:
        config = SimulatorConfig(
            host=host,
            port=port,
            client_id=client_id,
            client_secret=client_secret,
            token_expires_in=token_expires_in,
            bulk_updates=not no_bulk_updates,
            timings=Timings(
                unknown_seconds=unknown_seconds,
                pending_seconds=pending_seconds,
                execution_run_seconds=run_seconds,
                dead_after_seconds=dead_after_seconds,
                stop_delay_seconds=stop_delay_seconds,
                stopping_seconds=stopping_seconds,
                deletion_seconds=deletion_seconds,
            ),
            faults=Faults(
                latency_ms=latency_ms,
                error_rate=error_rate,
                throttle_rate=throttle_rate,
                retry_after=retry_after,
                drop_rate=drop_rate,
                unauthorized_rate=unauthorized_rate,
                lost_response_rate=lost_response_rate,
            ),
            seed=seed,
            initial_deployments=deployments,
            initial_executions=executions,
            initial_resource_group=resource_group,
            max_result_rows=max_result_rows,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    simulator = Simulator(config, clock=SimClock() if manual_clock else None)
    try:
        asyncio.run(serve(simulator, service_key))
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled by the loop when possible
        pass
