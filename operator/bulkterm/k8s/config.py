"""Operator settings, from flags or ``BULKTERM_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


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
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    metrics_port: int = Field(default=9090, ge=0, le=65535)
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
    #: the record every ``max(1, lifetime - 5..10)`` s: 10 means a keep-alive PATCH every 1-5 s
    #: per replica and a failover in 7-10 s (measured; kopf's default, 60, took 46 s).
    peering_lifetime: int = Field(default=10, ge=2, le=3600)
    #: Delay before retrying a CR whose credentials are missing or rejected.
    stalled_retry_seconds: float = Field(default=30.0, gt=0)

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
