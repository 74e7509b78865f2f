"""Prometheus metrics of the operator (and of ``bulkterm apply`` when asked to expose them).

One registry for the process; the operator serves it on ``--metrics-address`` and
``--metrics-port``, over HTTPS to callers the Kubernetes API authenticates and authorizes
(``bulkterm.k8s.metrics_server``; this module knows no Kubernetes). Label values are bounded (endpoints and outcomes are fixed vocabularies,
never ids), so cardinality stays flat however many targets a run has.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from importlib import metadata
from typing import ParamSpec, TypeVar

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


#: The label of the run-level series naming the namespace of the BulkTermination (never its
#: name: namespaces are few, names are not). Not ``namespace``: Prometheus gives every series
#: of a scrape target the target's ``namespace`` (the operator's), which the chart's rules and
#: dashboard select by, and would rename a scraped ``namespace`` to ``exported_namespace``.
#: ``bulkterm apply`` (no cluster) would use ``""``.
RUN_NAMESPACE = "bulktermination_namespace"


def endpoint_label(call: str) -> str:
    """``bulk_patch deployments`` → ``bulk_patch_deployments``: one token, easy in PromQL."""
    return "_".join(call.split())


AIAPI_CALLS = Counter(
    "bulkterm_aiapi_calls_total",
    "AI API calls by endpoint and outcome (ok, transient, auth, not_found, rejected).",
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
    "Targets that reached an end, by outcome (succeeded, failed) and the BulkTermination's "
    "namespace, counted as they finish.",
    ["outcome", RUN_NAMESPACE],
    registry=REGISTRY,
)
TARGET_FAILURES = Counter(
    "bulkterm_target_failures_total",
    "Failed targets by reason (NotFound, CannotStopUnknown, DeadlineExceeded, ...), counted "
    "from each run's failure list as it grows (the list keeps the first 100 of a run), and by "
    "the BulkTermination's namespace.",
    ["reason", RUN_NAMESPACE],
    registry=REGISTRY,
)
RUNS = Counter(
    "bulkterm_runs_total",
    "Runs (BulkTerminations) that ended, by result (complete, failed) and namespace.",
    ["result", RUN_NAMESPACE],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "bulkterm_run_duration_seconds",
    "From a run's start (the first visit) to its end, for runs that ended, by namespace.",
    [RUN_NAMESPACE],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
STALLS = Counter(
    "bulkterm_stalls_total",
    "Times a run stalled waiting for a human, by reason (SecretNotFound, Unauthorized, ...) "
    "and the BulkTermination's namespace.",
    ["reason", RUN_NAMESPACE],
    registry=REGISTRY,
)
STALLED_RUNS = Gauge(
    "bulkterm_stalled_bulkterminations",
    "BulkTerminations of this process stalled now (waiting for a human), by namespace.",
    [RUN_NAMESPACE],
    registry=REGISTRY,
)
ACTIVE_RUNS = Gauge(
    "bulkterm_active_bulkterminations",
    "BulkTerminations currently being reconciled by this process, by namespace.",
    [RUN_NAMESPACE],
    registry=REGISTRY,
)
RECONCILE_ROUNDS = Counter(
    "bulkterm_reconcile_rounds_total",
    "Engine rounds (observe, decide, send) of the BulkTerminations of a namespace.",
    [RUN_NAMESPACE],
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

# -- what every controller-runtime controller exports, in this operator's terms -------------

RECONCILES = Counter(
    "bulkterm_reconcile_total",
    "Handler invocations that ended, by handler (reconcile: a run's daemon; expire: the TTL "
    "daemon of a finished BulkTermination; acknowledge: one tick of the timer that "
    "acknowledges a spec change after the end) and result: success (the handler did what it "
    "was started for: the run ended, the CR was deleted or acknowledged), requeue (it stopped "
    "before that: the operator stopping or paused by peering, the run handed over to another "
    "replica, a conflict; kopf or a peer starts it again), error (it raised; kopf retries it). "
    "controller_runtime_reconcile_total.",
    ["handler", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "bulkterm_reconcile_duration_seconds",
    "How long each handler invocation ran, by handler (see bulkterm_reconcile_total): a "
    "reconcile daemon runs for as long as its run does in this process, so its durations are "
    "runs' lengths, not controller-runtime's short passes (those are "
    "bulkterm_reconcile_rounds_total). controller_runtime_reconcile_time_seconds.",
    ["handler"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "bulkterm_kube_requests_total",
    "The operator's own Kubernetes API requests (Secrets, status writes, deletes, Leases, "
    "admission policy reads; not kopf's watches and patches), each attempt once, by HTTP "
    'method and status code ("<error>": no answer, as a connection refused or timed out). '
    "rest_client_requests_total.",
    ["method", "code"],
    registry=REGISTRY,
)
ACTIVE_REPLICA = Gauge(
    "bulkterm_active_replica",
    "1 while this replica handles BulkTerminations: always when standalone; with kopf "
    "peering while kopf has not paused it for a live peer of higher (or equal) priority. "
    "0 while it stands by.",
    registry=REGISTRY,
)
ACTIVE_REPLICA.set(1)
BUILD_INFO = Gauge(
    "bulkterm_build_info",
    "Always 1; the labels say what runs: the operator's version, the commit it was built from "
    "(BULKTERM_COMMIT, else unknown), the Python and kopf versions.",
    ["version", "commit", "python", "kopf"],
    registry=REGISTRY,
)


def _version(distribution: str, fallback: str = "unknown") -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return fallback


def build_labels() -> dict[str, str]:
    """The labels of :data:`BUILD_INFO` (kopf's version read from its package metadata: this
    module imports no Kubernetes code)."""
    return {
        "version": _version("bulk-termination-operator"),
        "commit": os.environ.get("BULKTERM_COMMIT") or "unknown",
        "python": platform.python_version(),
        "kopf": _version("kopf", "none"),
    }


BUILD_INFO.labels(**build_labels()).set(1)

#: The handlers :func:`measured` counts, and their results: each series exists from the start
#: (at 0), so that ``increase()`` and ratios see the first one.
HANDLERS = ("reconcile", "expire", "acknowledge")
RESULTS = ("success", "requeue", "error")
for _handler in HANDLERS:
    RECONCILE_DURATION.labels(_handler)
    for _result in RESULTS:
        RECONCILES.labels(_handler, _result)

P = ParamSpec("P")
R = TypeVar("R")


class Outcome:
    """The result of one handler invocation; ``success`` unless it says otherwise."""

    def __init__(self) -> None:
        self.result = "success"


_OUTCOME: ContextVar[Outcome | None] = ContextVar("bulkterm_reconcile_outcome", default=None)


def requeued() -> None:
    """Within a :func:`measured` handler: it ends without having done what it was started for
    (kopf or a peer starts it again), so it counts as ``requeue``."""
    outcome = _OUTCOME.get()
    if outcome is not None:
        outcome.result = "requeue"


def measured(
    handler: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Count each call of an async handler into :data:`RECONCILES` and time it into
    :data:`RECONCILE_DURATION`: ``error`` when it raises, ``requeue`` when it is cancelled
    (kopf stops it) or calls :func:`requeued`, else ``success``."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            outcome = Outcome()
            token = _OUTCOME.set(outcome)
            started = time.monotonic()
            try:
                return await fn(*args, **kwargs)
            except Exception:
                outcome.result = "error"
                raise
            except BaseException:  # cancelled: stopped before it was done
                outcome.result = "requeue"
                raise
            finally:
                _OUTCOME.reset(token)
                RECONCILES.labels(handler, outcome.result).inc()
                RECONCILE_DURATION.labels(handler).observe(time.monotonic() - started)

        return wrapper

    return decorate


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
