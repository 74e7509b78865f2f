"""Prometheus metrics of the operator (and of ``bulkterm apply`` when asked to expose them).

One registry for the process; the operator serves it on ``--metrics-address`` and
``--metrics-port``, over HTTPS to callers the Kubernetes API authenticates and authorizes
(``bulkterm.k8s.metrics_server``; this module knows no Kubernetes). Label values are bounded (endpoints and outcomes are fixed vocabularies,
never ids), so cardinality stays flat however many targets a run has.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_* (CPU, memory, open files), python_info and python_gc_* series, which
# dashboards and alerts expect of any exporter (the default registry has them; ours is our own).
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)


def endpoint_label(call: str) -> str:
    """``bulk_patch deployments`` → ``bulk_patch_deployments``: one token, easy in PromQL."""
    return "_".join(call.split())


AIAPI_CALLS = Counter(
    "bulkterm_aiapi_calls_total",
    "AI API calls by endpoint and outcome (ok, transient, auth, not_found, rejected, error).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
AIAPI_LATENCY = Histogram(
    "bulkterm_aiapi_call_duration_seconds",
    "AI API call latency by endpoint (one observation per HTTP attempt).",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "bulkterm_token_refreshes_total",
    "OAuth token requests made to the token endpoint.",
    registry=REGISTRY,
)
TARGETS = Counter(
    "bulkterm_targets_total",
    "Targets that reached an end, by outcome (succeeded, failed), counted as they finish.",
    ["outcome"],
    registry=REGISTRY,
)
TARGET_FAILURES = Counter(
    "bulkterm_target_failures_total",
    "Failed targets by reason (NotFound, CannotStopUnknown, DeadlineExceeded, ...), counted "
    "from each run's failure list as it grows (the list keeps the first 100 of a run).",
    ["reason"],
    registry=REGISTRY,
)
RUNS = Counter(
    "bulkterm_runs_total",
    "Runs (BulkTerminations) that ended, by result (complete, failed).",
    ["result"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "bulkterm_run_duration_seconds",
    "From a run's start (the first visit) to its end, for runs that ended.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
STALLS = Counter(
    "bulkterm_stalls_total",
    "Times a run stalled waiting for a human, by reason (SecretNotFound, Unauthorized, ...).",
    ["reason"],
    registry=REGISTRY,
)
STALLED_RUNS = Gauge(
    "bulkterm_stalled_bulkterminations",
    "BulkTerminations of this process stalled now (waiting for a human).",
    registry=REGISTRY,
)
ACTIVE_RUNS = Gauge(
    "bulkterm_active_bulkterminations",
    "BulkTerminations currently being reconciled by this process.",
    registry=REGISTRY,
)
RECONCILE_ROUNDS = Counter(
    "bulkterm_reconcile_rounds_total",
    "Engine rounds (observe, decide, send) across all BulkTerminations.",
    registry=REGISTRY,
)

STATUS_WRITE_FAILURES = Counter(
    "bulkterm_status_write_failures_total",
    "Status writes the API server refused or that failed for good (not outage retries).",
    registry=REGISTRY,
)
KUBE_STALLED_CALLS = Counter(
    "bulkterm_kube_stalled_calls_total",
    "Kubernetes API calls that found the API server away and were retried, by call.",
    ["call"],
    registry=REGISTRY,
)
KUBE_OUTAGES = Counter(
    "bulkterm_kube_outages_total",
    "Times the Kubernetes API server became unreachable (connection stalls).",
    registry=REGISTRY,
)
KUBE_OUTAGE_SECONDS = Counter(
    "bulkterm_kube_outage_seconds_total",
    "Seconds spent waiting for an unreachable Kubernetes API server.",
    registry=REGISTRY,
)
KUBE_REACHABLE = Gauge(
    "bulkterm_kube_reachable",
    "1 while the Kubernetes API server answers the operator's calls, 0 during an outage.",
    registry=REGISTRY,
)
KUBE_REACHABLE.set(1)
ADMISSION_VERIFIED = Gauge(
    "bulkterm_secret_use_verified",
    "1 while the admission policy that checks who may use a Secret is in place as the "
    "operator expects, 0 when runs stall with SecretUseUnverified (or fall back to name "
    "grants).",
    registry=REGISTRY,
)


#: Where ``/metrics`` is served, once it is: set by :func:`serve`, and by ``bulkterm operator``
#: when it starts its HTTPS endpoint (``bulkterm.k8s.command.start_listening``).
serving: tuple[str, int] | None = None


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Expose ``/metrics`` on ``addr:port`` in plain HTTP, with no authentication, in a
    background thread (no-op when ``port`` is 0).

    One endpoint per process, as there is one registry: the first call starts it, later calls
    do nothing. ``bulkterm operator`` starts its own endpoint (HTTPS, callers reviewed, unless
    ``--metrics-secure=false``) before kopf runs and sets :data:`serving`, so the operator's
    call of this later does nothing. Raises ``OSError`` when it cannot listen.
    """
    global serving
    if port and serving is None:
        start_http_server(port, addr=addr, registry=REGISTRY)
        serving = (addr, port)
