"""Operator settings, from flags or ``BULKTERM_*`` environment variables (pydantic-settings).

Where the operator listens (``metrics_address``/``metrics_port``, ``liveness_endpoint``) and
which CAs it trusts for the AI API (``ca_bundle``) are checked here, so a bad value is a usage
error at start (exit 2, naming the flag) and not a traceback once kopf runs.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bulkterm.aiapi.settings import load_ca_bundle
from bulkterm.k8s.metrics_tls import CertificateProblem, load_certificate, server_context
from bulkterm.k8s.secret_use import DEFAULT_POLICY_NAME

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class OperatorConfig(BaseSettings):
    """Everything ``bulkterm operator`` can be told; flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="BULKTERM_", frozen=True, extra="ignore")

    #: Namespaces to watch; empty means all namespaces (cluster-wide).
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: kopf peering name; None runs standalone (one replica, no peering objects needed).
    peering: str | None = None
    #: kopf pauses every operator that sees a peer of the same priority, and all pods of a
    #: Deployment get the same flags: so, unless given, each process draws its own.
    peering_priority: int | None = Field(default=None, ge=1, le=1_000_000)
    #: kopf's health endpoint, ``http://<address>:<port>/<path>`` (the address is where it
    #: listens); None: none.
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    #: Address the Prometheus endpoint listens on (an IP address; ``0.0.0.0``: every IPv4
    #: interface, ``::`` every one, ``127.0.0.1`` this host only).
    metrics_address: str = "0.0.0.0"
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    #: Serve the metrics over HTTPS, to callers whose bearer token the Kubernetes API accepts
    #: (TokenReview) and allows ``get`` on ``/metrics`` (SubjectAccessReview), as
    #: controller-runtime does. False: plain HTTP, no check (local development).
    metrics_secure: bool = True
    #: Folder holding the metrics endpoint's ``tls.crt`` and ``tls.key`` (a mounted
    #: ``kubernetes.io/tls`` Secret, e.g. cert-manager's); None: self-signed at start-up.
    metrics_cert_dir: Path | None = None
    #: PEM file of the CAs to trust for the AI API and its token endpoint instead of the public
    #: ones (a TLS-inspecting proxy, a private CA); verification itself is never off.
    ca_bundle: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["plain", "full", "json"] = "full"
    #: At most one status write per CR per this many seconds (plus phase changes, final).
    status_interval: float = Field(default=2.0, ge=0.0, le=600.0)
    api_rate_limit: float | None = Field(default=None, gt=0)
    api_concurrency: int = Field(default=16, ge=1, le=256)
    default_ttl_seconds: int | None = Field(default=None, ge=0)
    #: How long kopf's own requests (watches, Events) wait out an unreachable API server before
    #: giving up (the operator's status writes and Secret reads wait as long as it takes).
    kube_outage_tolerance_seconds: float = Field(default=600.0, ge=10.0)
    #: With ``peering``: seconds after its last keep-alive that a peer counts as gone. A
    #: standby sleeps until the active peer's record expires and then resumes, so this bounds
    #: the failover after a SIGKILL (plus a second or two to start the daemons). kopf renews
    #: the record every ``max(1, lifetime - 5..10)`` s: 6 means a keep-alive PATCH every 1 s
    #: per replica and a failover within about 7 s, well inside 15 s under load too (10 meant
    #: 1-5 s and up to 19 s under load; kopf's default is 60). The runs' Leases expire as soon
    #: (``LeaseTiming.duration``).
    peering_lifetime: int = Field(default=6, ge=2, le=3600)
    #: Service keys with plain-HTTP URLs are refused unless this is set (a local simulator,
    #: tests): their secrets and tokens would cross the network readable.
    allow_plain_http: bool = False
    #: The ValidatingAdmissionPolicy (and its binding) that checks, when a BulkTermination is
    #: created, that its author may ``use`` the Secret it names (``bulkterm.k8s.secret_use``);
    #: the chart names both ``<release fullname>-admission``.
    admission_policy: str = Field(default=DEFAULT_POLICY_NAME, min_length=1, max_length=253)
    admission_binding: str = Field(default=DEFAULT_POLICY_NAME, min_length=1, max_length=253)
    #: Also honour a Secret's annotation naming BulkTerminations where the identity check
    #: cannot be made: weaker (the author picks the name), for clusters without the policy.
    allow_name_grants: bool = False
    #: Delay before retrying a CR whose credentials are missing or rejected.
    stalled_retry_seconds: float = Field(default=30.0, gt=0)
    #: How long a run may fail to read the AI API at all before it says Stalled (and posts a
    #: Warning Event) with the kind of problem and the host; it keeps retrying.
    stall_after_seconds: float = Field(default=300.0, ge=1.0)
    #: Namespace of the runs' Leases (one per run, ``bulkterm.k8s.leases``): the operator's own.
    #: Unset (or empty): ``POD_NAMESPACE``, else the pod's service-account namespace, else the
    #: kubeconfig context's namespace, else ``default`` (``leases.lease_namespace``).
    lease_namespace: str | None = Field(
        default=None, pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"
    )

    @field_validator("metrics_address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        """An IP address to bind (or ``localhost``): any other name would be resolved at bind
        time, to who knows what."""
        address = value.strip("[]")
        if not _is_ip_address(address) and address != "localhost":
            raise ValueError(
                f"{value!r} is not an IP address to listen on (e.g. 0.0.0.0, 127.0.0.1, ::)"
            )
        return address

    @field_validator("metrics_cert_dir", mode="before")
    @classmethod
    def _no_cert_dir_when_empty(cls, value: Any) -> Any:
        """``BULKTERM_METRICS_CERT_DIR=`` (as templates render an unset value) means none."""
        return None if value == "" else value

    @field_validator("metrics_cert_dir")
    @classmethod
    def _loadable_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Loaded once here, so a missing or broken pair stops the start with its file named."""
        if value is None:
            return None
        if not info.data.get("metrics_secure", True):
            raise ValueError("a certificate is for HTTPS, but --metrics-secure is false")
        try:
            load_certificate(server_context(), value)
        except CertificateProblem as problem:
            raise ValueError(str(problem)) from None
        return value

    @field_validator("liveness_endpoint")
    @classmethod
    def _liveness_url(cls, value: str | None) -> str | None:
        """What kopf can serve: ``http://ADDRESS:PORT/PATH`` (kopf serves plain HTTP only and
        would otherwise fail later, with a traceback, or listen somewhere unexpected)."""
        if value is None:
            return None
        example = "e.g. http://0.0.0.0:8080/healthz"
        parts = urllib.parse.urlsplit(value)
        if parts.scheme != "http":
            raise ValueError(f"{value!r}: must start with http:// ({example})")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"{value!r}: only an address, a port and a path ({example})")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{value!r}: the port is not a number in 0..65535") from None
        if not port:  # kopf reads a missing port, and port 0, as 80
            raise ValueError(f"{value!r}: name the port, 1..65535 ({example})")
        host = parts.hostname or ""
        if not _is_ip_address(host) and host != "localhost":
            raise ValueError(
                f"{value!r}: {host or 'the host'} is not an IP address to listen on ({example}, "
                "http://[::]:8080/healthz)"
            ) from None
        if not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(f"{value!r}: name the path ({example})")
        return value

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        """``BULKTERM_CA_BUNDLE=`` (as templates render an unset value) means none."""
        return None if value == "" else value

    @field_validator("ca_bundle")
    @classmethod
    def _loadable_bundle(cls, value: Path | None) -> Path | None:
        """Loaded once here, so a missing or non-PEM file stops the start, not the first run."""
        if value is not None:
            load_ca_bundle(value)
        return value

    @property
    def liveness_address(self) -> tuple[str, int] | None:
        """Where kopf's health endpoint listens, from ``liveness_endpoint``."""
        if self.liveness_endpoint is None:
            return None
        parts = urllib.parse.urlsplit(self.liveness_endpoint)
        return parts.hostname or "", parts.port or 0

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        """``BULKTERM_NAMESPACES=a,b`` (comma-separated, as the chart and shells write it)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("namespaces")
    @classmethod
    def _exact_names(cls, value: list[str]) -> list[str]:
        """Exact namespace names only: the operator then needs no cluster-wide right to list
        namespaces (kopf lists them only to match patterns, and retries a 403 for ~50 s)."""
        for name in value:
            if not _NAMESPACE.fullmatch(name):
                raise ValueError(
                    f"namespace {name!r} is not a namespace name (lowercase letters, digits "
                    "and '-', at most 63 characters; patterns such as 'team-*' are not supported)"
                )
        return value
