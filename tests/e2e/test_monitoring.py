"""Every metric the chart's Grafana dashboard and PrometheusRule read is one a real operator
serves: ``bulkterm operator`` as the chart's ServiceAccount on the real API server, one
BulkTermination run to Complete against the simulator, then ``GET /metrics`` as Prometheus
scrapes it: over HTTPS, with the token of a ServiceAccount the chart binds to its
metrics-reader ClusterRole (``metrics.readers``), which the operator has the API server review.

A name counts as served when the page has a sample of it, or declares its family (``# TYPE``):
a labelled counter such as ``bulkterm_kube_stalled_calls_total`` has no sample until its first
increment, but a query of it is right all the same. ``up`` is Prometheus' own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.chart.promql import PROMETHEUS_SERIES, dashboard_exprs, metric_names, rendered_rules
from tests.e2e.conftest import bulk_termination, has_condition, secret
from tests.e2e.scrape import chart_values, operator_for, scrape, scrape_until, service_account_token
from tests.kube import Kube, free_port
from tests.plugins.helm import Release

pytestmark = [pytest.mark.e2e, pytest.mark.helm]

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def served_names(page: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(page):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


@pytest.fixture
def metrics_page(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    install_chart: Callable[..., Release],
    tmp_path: Path,
) -> Iterator[str]:
    prometheus = {"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}
    release = install_chart(namespace, chart_values(namespace, readers=[prometheus]))
    token = service_account_token(kube, namespace, "prometheus")
    port = free_port()
    flags = ("--metrics-address", "127.0.0.1", "--metrics-port", str(port))
    operator = operator_for(kube, release, tmp_path, *flags).start()
    try:
        # Prometheus without its token, and the operator's own ServiceAccount, which may not
        # read the metrics: refused.
        assert scrape(port).status_code == 401
        own = service_account_token(kube, namespace, release.service_account)
        assert scrape(port, own).status_code == 403
        sim.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
        kube.create(secret(namespace, sim.service_key()))
        kube.create(bulk_termination(namespace, "watched", ("Deployment", "dep-run1", "STOPPED")))
        kube.wait_for(
            "bulkterminations", "watched", has_condition("Complete"), namespace=namespace,
            timeout=60,
        )  # fmt: skip
        # The run's daemon returns (and is counted) just after it writes Complete.
        page = scrape_until(port, token, lambda r: r.status_code == 200 and _run_counted(r.text))
        assert page.status_code == 200, page.text
        yield page.text
    finally:
        operator.stop()


def test_every_metric_the_dashboard_queries_is_served(metrics_page: str) -> None:
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    assert used - PROMETHEUS_SERIES, "the dashboard reads no operator metric"
    assert sorted(used - PROMETHEUS_SERIES - served_names(metrics_page)) == []


def test_every_metric_the_alerts_use_is_served(metrics_page: str, helm_bin: Path) -> None:
    used = {name for rule in rendered_rules(helm_bin) for name in metric_names(rule["expr"])}
    assert used - PROMETHEUS_SERIES, "the alerts read no operator metric"
    assert sorted(used - PROMETHEUS_SERIES - served_names(metrics_page)) == []


def test_the_run_left_samples_for_what_the_alerts_count(metrics_page: str) -> None:
    """The alerts' ratios and increases need these series to exist after a normal run."""
    samples = {f.name for f in text_string_to_metric_families(metrics_page) if f.samples}
    assert {
        "bulkterm_targets",
        "bulkterm_aiapi_calls",
        "bulkterm_active_bulkterminations",
        "bulkterm_kube_reachable",
        "bulkterm_status_write_failures",
        "bulkterm_reconcile",
        "bulkterm_reconcile_duration_seconds",
        "bulkterm_kube_requests",
        "bulkterm_active_replica",
        "bulkterm_build_info",
        "process_resident_memory_bytes",
    } <= samples


def _samples(page: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == name
    ]


def _run_counted(page: str) -> bool:
    return any(
        labels.get("handler") == "reconcile" and value >= 1
        for labels, value in _samples(page, "bulkterm_reconcile_total")
    )


def test_the_run_is_counted_as_a_reconcile_and_its_api_calls_by_code(
    metrics_page: str, namespace: str
) -> None:
    """The run's daemon ended with the run: one ``success``; its status writes, Secret read and
    Lease calls answered 2xx; the standalone operator is the active replica; the run's
    targets carry their namespace, never their name."""
    reconciles = {
        labels["result"]: value
        for labels, value in _samples(metrics_page, "bulkterm_reconcile_total")
        if labels["handler"] == "reconcile"
    }
    assert reconciles["success"] >= 1 and reconciles["error"] == 0, reconciles
    requests = _samples(metrics_page, "bulkterm_kube_requests_total")
    answered = {(labels["method"], labels["code"]) for labels, value in requests if value}
    assert {("PATCH", "200"), ("GET", "200"), ("POST", "201")} <= answered, answered
    assert all(set(labels) == {"method", "code"} for labels, _ in requests)
    assert _samples(metrics_page, "bulkterm_active_replica") == [({}, 1.0)]
    ((build, one),) = _samples(metrics_page, "bulkterm_build_info")
    assert one == 1 and set(build) == {"version", "commit", "python", "kopf"}
    targets = _samples(metrics_page, "bulkterm_targets_total")
    assert ({"outcome": "succeeded", "bulktermination_namespace": namespace}, 1.0) in targets
    assert '"watched"' not in metrics_page  # the BulkTermination's name is in no label
