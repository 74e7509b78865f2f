"""``bulkterm operator``: flags and environment → :class:`OperatorConfig` → ``kopf.run``."""

from __future__ import annotations

import click

from bulkterm.k8s.config import OperatorConfig


def _env(name: str) -> str:
    return f"BULKTERM_{name}"


@click.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeatable). Env BULKTERM_NAMESPACES (comma-separated).",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch all namespaces (the default).")
@click.option("--standalone", is_flag=True, help="Run without peering (the default).")
@click.option("--peering", envvar=_env("PEERING"), help="kopf peering name (for >1 replica).")
@click.option(
    "--peering-priority",
    envvar=_env("PEERING_PRIORITY"),
    type=click.IntRange(1, 1_000_000),
    help="kopf peering priority (default: random per process, so replicas never tie).",
)
@click.option(
    "--liveness-endpoint",
    envvar=_env("LIVENESS_ENDPOINT"),
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="kopf health endpoint ('' to disable).",
)
@click.option(
    "--metrics-port",
    envvar=_env("METRICS_PORT"),
    type=click.IntRange(0, 65535),
    default=9090,
    show_default=True,
    help="Prometheus /metrics port (0 disables).",
)
@click.option(
    "--log-level",
    envvar=_env("LOG_LEVEL"),
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--log-format",
    envvar=_env("LOG_FORMAT"),
    type=click.Choice(["plain", "full", "json"]),
    default="full",
    show_default=True,
)
@click.option(
    "--status-interval",
    envvar=_env("STATUS_INTERVAL"),
    type=click.FloatRange(0, 600),
    default=2.0,
    show_default=True,
    help="Minimum seconds between status writes of one BulkTermination.",
)
@click.option(
    "--api-rate-limit",
    envvar=_env("API_RATE_LIMIT"),
    type=click.FloatRange(min=0, min_open=True),
    help="AI API requests per second per BulkTermination (default: unlimited).",
)
@click.option(
    "--api-concurrency",
    envvar=_env("API_CONCURRENCY"),
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Concurrent AI API requests per BulkTermination.",
)
@click.option(
    "--default-ttl-seconds",
    envvar=_env("DEFAULT_TTL_SECONDS"),
    type=click.IntRange(min=0),
    help="ttlSecondsAfterFinished for resources that set none.",
)
def operator_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    peering: str | None,
    peering_priority: int | None,
    liveness_endpoint: str,
    metrics_port: int,
    log_level: str,
    log_format: str,
    status_interval: float,
    api_rate_limit: float | None,
    api_concurrency: int,
    default_ttl_seconds: int | None,
) -> None:
    """Run the operator that reconciles BulkTermination resources."""
    import os

    if not namespaces and os.environ.get(_env("NAMESPACES")):
        namespaces = tuple(
            n.strip() for n in os.environ[_env("NAMESPACES")].split(",") if n.strip()
        )
    if all_namespaces and namespaces:
        raise click.UsageError("--all-namespaces and --namespace exclude each other")
    if standalone and peering:
        raise click.UsageError("--standalone and --peering exclude each other")
    config = OperatorConfig(
        namespaces=list(namespaces),
        peering=peering or None,
        peering_priority=peering_priority,
        liveness_endpoint=liveness_endpoint or None,
        metrics_port=metrics_port,
        log_level=log_level.upper(),
        log_format=log_format,
        status_interval=status_interval,
        api_rate_limit=api_rate_limit,
        api_concurrency=api_concurrency,
        default_ttl_seconds=default_ttl_seconds,
    )
    run(config)


def run(config: OperatorConfig) -> None:
    from bulkterm.k8s import handlers

    handlers.run_operator(config)
