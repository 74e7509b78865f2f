"""``bulkterm operator``: flags → :class:`OperatorConfig` (which also reads ``BULKTERM_*``) → kopf.

Defaults and environment variables live in one place, :class:`OperatorConfig`; a flag given on
the command line overrides both.
"""

from __future__ import annotations

import os
from typing import Any

import click
from pydantic import ValidationError

from bulkterm.k8s.config import OperatorConfig


@click.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeatable). Env BULKTERM_NAMESPACES=a,b. Default: all.",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch all namespaces (the default).")
@click.option("--standalone", is_flag=True, help="Run without peering (the default).")
@click.option(
    "--peering", help="kopf peering name, for more than one replica. Env BULKTERM_PEERING."
)
@click.option(
    "--peering-priority",
    type=click.IntRange(1, 1_000_000),
    help="kopf peering priority (default: random per process, so replicas never tie).",
)
@click.option(
    "--liveness-endpoint",
    help="kopf health endpoint; '' disables. Default http://0.0.0.0:8080/healthz.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Prometheus port; 0 disables. Default 9090.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Default INFO.",
)
@click.option("--log-format", type=click.Choice(["plain", "full", "json"]), help="Default full.")
@click.option(
    "--status-interval",
    type=click.FloatRange(0, 600),
    help="Minimum seconds between status writes of one BulkTermination. Default 2.",
)
@click.option(
    "--api-rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="AI API requests per second per BulkTermination. Default unlimited.",
)
@click.option(
    "--api-concurrency",
    type=click.IntRange(1, 256),
    help="Concurrent AI API requests per BulkTermination. Default 16.",
)
@click.option(
    "--peering-lifetime",
    type=click.IntRange(2, 3600),
    help="Seconds a replica's peering keep-alive is trusted: a standby takes over this long "
    "after the active replica dies (measured: 7-10 s with the default 10).",
)
@click.option(
    "--kube-outage-tolerance",
    "kube_outage_tolerance_seconds",
    type=click.FloatRange(min=10),
    help="Seconds of Kubernetes API outage the operator waits out before it gives up "
    "(default 600).",
)
@click.option(
    "--default-ttl-seconds",
    type=click.IntRange(min=0),
    help="ttlSecondsAfterFinished for resources that set none.",
)
def operator_command(**params: Any) -> None:
    """Run the operator that reconciles BulkTermination resources.

    Every option can also be set as BULKTERM_<OPTION> (e.g. BULKTERM_STATUS_INTERVAL=5).
    """
    config = build_config(**params)
    problem = kube_credentials_problem()
    if problem is not None:
        # Before kopf: it would log a traceback and retry every 60 s, for ever.
        click.echo(f"error: no Kubernetes API to connect to: {problem}", err=True)
        click.get_current_context().exit(2)
    from bulkterm.k8s import handlers

    handlers.run_operator(config)


def build_config(
    namespaces: tuple[str, ...] = (),
    all_namespaces: bool = False,
    standalone: bool = False,
    **options: Any,
) -> OperatorConfig:
    """Flags given on the command line over ``BULKTERM_*`` over defaults; a clear usage error
    for anything inconsistent or invalid."""
    if all_namespaces and namespaces:
        raise click.UsageError("--all-namespaces and --namespace exclude each other")
    if standalone and options.get("peering"):
        raise click.UsageError("--standalone and --peering exclude each other")
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if namespaces:
        given["namespaces"] = list(namespaces)
    elif all_namespaces:
        given["namespaces"] = []
    if standalone:
        given["peering"] = None
    if given.get("liveness_endpoint") == "":
        given["liveness_endpoint"] = None
    if "log_level" in given:
        given["log_level"] = given["log_level"].upper()
    try:
        return OperatorConfig(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise click.UsageError(f"invalid operator settings: {problems}") from None


def kube_credentials_problem() -> str | None:
    """Why the operator could not reach a Kubernetes API, or None if it can try.

    The same two sources, in the same order, as the operator's clients (kopf's login and
    :func:`bulkterm.k8s.kubeapi._load_client`): the in-cluster service account, then the
    kubeconfig (``KUBECONFIG``, else ``~/.kube/config``). The answer names what was tried.
    """
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config import incluster_config

    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=k8s.Configuration()
        )
        return None
    except k8s_config.ConfigException as exc:
        host = incluster_config.SERVICE_HOST_ENV_NAME
        port = incluster_config.SERVICE_PORT_ENV_NAME
        token = incluster_config.SERVICE_TOKEN_FILENAME
        if not os.environ.get(host) or not os.environ.get(port):
            in_cluster = f"not in a cluster ({host}/{port} not set)"
        elif not os.path.isfile(token):
            in_cluster = (
                f"in a cluster ({host} is set) but there is no service account token {token}"
            )
        else:
            in_cluster = f"in-cluster configuration unusable ({exc})"
    setting = os.environ.get("KUBECONFIG")
    if setting:
        paths = [p for p in setting.split(os.pathsep) if p]
        named, note = f"KUBECONFIG={setting}", ""
    else:
        paths = [os.path.expanduser("~/.kube/config")]
        named, note = paths[0], " (KUBECONFIG is not set)"
    if not any(os.path.exists(p) for p in paths):
        missing = "does not exist" if len(paths) == 1 else "none of these files exists"
        return f"{in_cluster}, and no kubeconfig: {named} {missing}{note}"
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=setting, client_configuration=k8s.Configuration()
        )
    except Exception as exc:  # ConfigException, a YAML error, an unreadable file, …
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"{in_cluster}, and kubeconfig {named}{note} is unusable: {reason}"
    return None
