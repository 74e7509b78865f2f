"""``bulkterm simulator``: run the AI API simulator until Ctrl-C (or SIGTERM).

The first line printed is ``AI API simulator listening on <url>`` so scripts can read the
port chosen for ``--port 0``. The client secret is never printed: pass it with
``--client-secret`` or ``BULKTERM_SIM_CLIENT_SECRET`` and hand it on with
``--write-service-key``.

Off loopback (``--host 0.0.0.0``, a LAN address) the ``/_sim`` control API requires
``Authorization: Bearer <control token>``: the one given with ``--control-token`` /
``BULKTERM_SIM_CONTROL_TOKEN`` (never printed), else a generated one, printed once at start
(there is no other way to learn it). The start-up lines say whether ``/_sim`` is protected.

Exit codes: 0 stopped by Ctrl-C/SIGTERM; 1 cannot listen; 2 bad options, an unreadable or
invalid ``--seed-from`` manifest, or a service key that cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from bulkterm.simulator.clock import SimClock
from bulkterm.simulator.config import (
    DEFAULT_RESOURCE_GROUP,
    Faults,
    SimulatorConfig,
    Timings,
    check_control_token,
)
from bulkterm.simulator.server import Simulator


class InvalidInput(click.ClickException):
    """Exit 2 with ``Error: <message>``: the input is wrong, nothing is served."""

    exit_code = 2


class ServiceKeyNotWritten(Exception):
    """``--write-service-key`` names a file that cannot be written (the simulator stopped)."""

    def __init__(self, path: Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"cannot write the service key to {path}: {reason}")


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


def control_token_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """A usable control token (long enough, header-safe); the error never shows the value."""
    if value is not None:
        try:
            check_control_token(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


SECONDS = click.FloatRange(min=0)
RATE = click.FloatRange(0.0, 1.0)
_DEFAULT = Timings()
_CONFIG = SimulatorConfig()


def seed_from_manifests(simulator: Simulator, paths: Sequence[Path]) -> list[str]:
    """Create the targets of BulkTermination manifests, as ``bulkterm apply --simulator`` does.

    Each target gets the deterministic, realistic status of ``bulkterm.simulator.manifests.simulated_status``
    (some are already stopped, dead, finished or gone) in its manifest's resource group; a
    manifest with ``spec.selector`` also gets the population ``seed_selector`` makes for it
    (items its selector finds, and some it leaves out). Every manifest is read and checked
    before anything is seeded; :class:`InvalidInput` lists all problems. Returns one line per
    manifest saying what was seeded where.
    """
    # Imported here: only this option needs the manifest reader and the CLI's seeding rules.
    from bulkterm.manifest import Manifest, ManifestError, load_manifests
    from bulkterm.simulator.manifests import seed_selector, seed_targets

    manifests: list[tuple[Path, Manifest]] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            manifests.extend((path, m) for m in load_manifests(text, source=str(path)))
        except OSError as error:
            problems.append(f"{path}: cannot read ({error.strerror or error})")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
        except ManifestError as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput("--seed-from: " + "\n  ".join(["invalid input", *problems]))
    notes: list[str] = []
    for path, manifest in manifests:
        group = manifest.spec.connection.resource_group
        simulator.add_resource_group(group)
        before = len(simulator.items(resource_group=group))
        seed_targets(simulator, manifest.spec.targets, resource_group=group)
        created = len(simulator.items(resource_group=group)) - before
        seeded = []
        selector = manifest.spec.selector
        if manifest.spec.targets or selector is None:
            seeded.append(f"{created} of the {len(manifest.spec.targets)} targets")
        if selector is not None:
            # Created "now" by the wall clock, as the run that resolves the selector reads it.
            seed_selector(simulator, selector, resource_group=group, now=datetime.now(UTC))
            for_selector = len(simulator.items(resource_group=group)) - before - created
            seeded.append(f"{for_selector} items for the selector (some of them it leaves out)")
        notes.append(
            f"seeded {' and '.join(seeded)} of {path} ({manifest.name}) into resource group {group}"
        )
    return notes


def control_lines(simulator: Simulator) -> list[str]:
    """What start-up says about a protected ``/_sim``, and by which token; nothing when it is
    open (on loopback: the default, whose start-up lines scripts and docs already show).

    A generated token is printed here, once: it exists nowhere else. A given one never is.
    """
    config = simulator.config
    token = simulator.control_token
    if token is None:
        return []
    header = "send Authorization: Bearer <control token>"
    if token == config.control_token:
        return [
            f"  control API /_sim: protected, {header} "
            "(the one given with --control-token or BULKTERM_SIM_CONTROL_TOKEN)"
        ]
    return [
        f"  control API /_sim: protected (listening on {config.host or '*'}, beyond loopback), "
        f"{header}",
        f"  control token (generated, shown only this once): {token}",
    ]


async def serve(simulator: Simulator, service_key: Path | None, notes: Sequence[str] = ()) -> None:
    """Start, announce (then print ``notes``), wait for SIGINT/SIGTERM, stop."""
    url = await simulator.start()
    if service_key is not None:
        try:
            simulator.write_service_key(service_key)
        except OSError as error:
            await simulator.stop()
            raise ServiceKeyNotWritten(service_key, error) from None
    # Handled before anything says the simulator is ready: a Ctrl-C (or a script's SIGINT)
    # right after the key is written must stop it as any other does.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    click.echo(f"AI API simulator listening on {url}")
    click.echo(f"  AI API: {url}/v2  token: {url}/oauth/token  control: {url}/_sim")
    for line in control_lines(simulator):
        click.echo(line)
    if service_key is not None:
        click.echo(f"service key written to {service_key}")
    for note in notes:
        click.echo(note)
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
    default=_CONFIG.token_expires_in,
    type=click.IntRange(min=1),
    show_default=True,
    help="Token lifetime in seconds (XSUAA issues 43199).",
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
    "resource_groups",
    multiple=True,
    metavar="ID",
    help="A resource group that exists besides 'default' (repeatable; any other is answered "
    "403). --deployments/--executions are seeded into the first one named.",
)
@click.option(
    "--seed-from",
    "seed_from",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="MANIFEST",
    help="Create the targets of a BulkTermination YAML file in its resource group, in the "
    "realistic mix of statuses 'bulkterm apply --simulator' uses (repeatable).",
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
    "--bulk-updates/--no-bulk-updates",
    default=_CONFIG.bulk_updates,
    show_default=True,
    help="The bulkUpdates capability: report it in /lm/meta and serve bulk PATCH. Off by "
    "default, as on AI Core (enabled per template).",
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
@click.option(
    "--control-token",
    envvar="BULKTERM_SIM_CONTROL_TOKEN",
    callback=control_token_option,
    metavar="TOKEN",
    help="Bearer token /_sim requires (env BULKTERM_SIM_CONTROL_TOKEN; at least 16 "
    "characters; never printed). Default: none on loopback; off loopback a generated one, "
    "printed once at start.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
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
    resource_groups: tuple[str, ...],
    seed_from: tuple[Path, ...],
    latency_ms: float,
    error_rate: float,
    throttle_rate: float,
    retry_after: int,
    drop_rate: float,
    unauthorized_rate: float,
    lost_response_rate: float,
    bulk_updates: bool,
    max_result_rows: int | None,
    manual_clock: bool,
    service_key: Path | None,
    control_token: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    seed: int | None,
) -> None:
    """Run a local SAP AI Core AI API simulator (deployments, executions, bulk stop/delete)."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both or neither")
    try:
        config = SimulatorConfig(
            host=host,
            port=port,
            client_id=client_id,
            client_secret=client_secret,
            token_expires_in=token_expires_in,
            bulk_updates=bulk_updates,
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
            initial_resource_group=(resource_groups or (DEFAULT_RESOURCE_GROUP,))[0],
            resource_groups=resource_groups,
            max_result_rows=max_result_rows,
            control_token=control_token,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        simulator = Simulator(config, clock=SimClock() if manual_clock else None)
    except ValueError as error:  # --tls-cert/--tls-key that do not load
        raise InvalidInput(f"--tls-cert/--tls-key: {error}") from None
    notes = seed_from_manifests(simulator, seed_from) if seed_from else []
    try:
        asyncio.run(serve(simulator, service_key, notes))
    except ServiceKeyNotWritten as error:
        raise InvalidInput(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled by the loop when possible
        pass
