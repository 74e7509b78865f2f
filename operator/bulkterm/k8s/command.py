"""``bulkterm operator``: flags → :class:`OperatorConfig` (which also reads ``BULKTERM_*``) → kopf.

Defaults and environment variables live in one place, :class:`OperatorConfig`; a flag given on
the command line overrides both. Everything that can be checked before kopf runs is: invalid
settings, no Kubernetes API to talk to, and addresses the metrics or health endpoint cannot
listen on end the process with exit 2 and one line naming the flag, never a traceback.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from bulkterm import metrics
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.metrics_tls import CertificateProblem

#: Settings whose flag is not ``--`` + the field name with dashes.
FLAGS = {"namespaces": "--namespace", "kube_outage_tolerance_seconds": "--kube-outage-tolerance"}


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
    "--metrics-address",
    help="Address the Prometheus endpoint listens on (an IP address: 127.0.0.1 for this host "
    "only, :: for every interface). Env BULKTERM_METRICS_ADDRESS. Default 0.0.0.0.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Prometheus port; 0 disables. Default 9090.",
)
@click.option(
    "--metrics-secure",
    type=click.BOOL,
    help="Serve the metrics over HTTPS to callers whose bearer token the Kubernetes API "
    "accepts and allows to get /metrics (TokenReview, SubjectAccessReview). Default true. "
    "--metrics-secure=false: plain HTTP without authentication, for local development. "
    "Env BULKTERM_METRICS_SECURE.",
)
@click.option(
    "--metrics-cert-dir",
    type=click.Path(path_type=Path),
    help="Folder with tls.crt and tls.key for the HTTPS metrics endpoint (a mounted "
    "kubernetes.io/tls Secret, reloaded when it changes). Default: a self-signed certificate "
    "made at start-up. Env BULKTERM_METRICS_CERT_DIR.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=True, path_type=Path),
    help="PEM file of the CA certificates to trust for the AI API and its token endpoint "
    "instead of the public CAs (a TLS-inspecting proxy, a private CA). Env BULKTERM_CA_BUNDLE. "
    "TLS is always verified.",
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
    help="AI API requests per second per tenant (AI API URL and client id), shared by "
    "its BulkTerminations. Default unlimited.",
)
@click.option(
    "--api-concurrency",
    type=click.IntRange(1, 256),
    help="Concurrent AI API requests per tenant (AI API URL and client id), shared by its "
    "BulkTerminations. Default 16.",
)
@click.option(
    "--peering-lifetime",
    type=click.IntRange(2, 3600),
    help="Seconds a replica's peering keep-alive is trusted: a standby takes over this long "
    "after the active replica dies (within about 6 s with the default 6).",
)
@click.option(
    "--kube-outage-tolerance",
    "kube_outage_tolerance_seconds",
    type=click.FloatRange(min=10),
    help="Seconds of Kubernetes API outage the operator waits out before it gives up "
    "(default 600).",
)
@click.option(
    "--lease-namespace",
    help="Namespace of the runs' Leases. Env BULKTERM_LEASE_NAMESPACE. Default: the pod's "
    "namespace (POD_NAMESPACE, else the in-cluster one), else the kubeconfig context's, "
    "else default.",
)
@click.option(
    "--admission-policy",
    help="The ValidatingAdmissionPolicy that checks who may use a Secret (the chart's "
    "<fullname>-admission). Env BULKTERM_ADMISSION_POLICY. Default "
    "bulk-termination-operator-admission.",
)
@click.option(
    "--admission-binding",
    help="Its binding. Env BULKTERM_ADMISSION_BINDING. Default: as --admission-policy's default.",
)
@click.option(
    "--allow-name-grants",
    type=click.BOOL,
    help="Also use a Secret whose annotation aiapi.bulkops.dev/allowed-bulkterminations names "
    "the BulkTermination, where the admission policy cannot vouch for it (weaker: the author "
    "picks the name). Default false. Env BULKTERM_ALLOW_NAME_GRANTS.",
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
    problem = start_listening(config)
    if problem is not None:
        click.echo(f"error: {problem}", err=True)
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
        problems = "; ".join(_problem(error, given) for error in exc.errors())
        raise click.UsageError(f"invalid operator settings: {problems}") from None


def _problem(error: Any, given: dict[str, Any]) -> str:
    """One setting's problem, named as the user wrote it: the flag, or its variable."""
    field = str(error["loc"][0]) if error["loc"] else ""
    flag = FLAGS.get(field, "--" + field.replace("_", "-"))
    env = f"BULKTERM_{field.upper()}"
    named = flag if field in given else f"{env} (flag {flag})"
    cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
    return f"{named}: {cause if cause is not None else error['msg']}"


def start_listening(config: OperatorConfig) -> str | None:
    """Start the metrics endpoint and check the health endpoint's address is free, before
    kopf: a bind failure there would be a traceback. The problem, naming the flag, or None.

    The metrics server starts here for real, HTTPS with its callers reviewed unless
    ``--metrics-secure=false`` (``bulkterm.k8s.metrics_server``; it is the process's one, so
    the operator's own ``metrics.serve`` later is a no-op); the health endpoint is kopf's, so
    its address is only tried (bound and released) and kopf binds it moments later.
    """
    if config.metrics_port:
        from bulkterm.k8s import metrics_server  # aiohttp and kubernetes: not for --help

        try:
            server = metrics_server.serve(
                metrics.REGISTRY,
                address=config.metrics_address,
                port=config.metrics_port,
                secure=config.metrics_secure,
                cert_dir=config.metrics_cert_dir,
            )
        except OSError as error:
            return (
                f"cannot listen on --metrics-address {config.metrics_address} --metrics-port "
                f"{config.metrics_port}: {error.strerror or error}"
            )
        except CertificateProblem as problem:
            return f"cannot serve the metrics over HTTPS: --metrics-cert-dir: {problem}"
        metrics.serving = server.address
    address = config.liveness_address
    reason = None if address is None else _cannot_bind(*address)
    if reason is None:
        return None
    if address is not None and address[1] == config.metrics_port:
        reason += ": --metrics-port is the same port"
    return f"cannot listen on --liveness-endpoint {config.liveness_endpoint}: {reason}"


def _cannot_bind(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (as aiohttp would: address reuse on), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, where = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
    except OSError as error:
        return error.strerror or str(error)
    return None


def kube_credentials_problem() -> str | None:
    """Why the operator could not reach a Kubernetes API, or None if it can try.

    The same two sources, in the same order, as the operator's clients (kopf's login and
    :func:`bulkterm.k8s.kubeapi.load_client`): the in-cluster service account, then the
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
