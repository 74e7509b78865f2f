"""The operator's metrics page: the standard series a dashboard expects, and labels PromQL
can use as they are."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from bulkterm import metrics


def _page() -> str:
    return generate_latest(metrics.REGISTRY).decode()


def test_the_standard_process_platform_and_gc_series_are_exposed() -> None:
    page = _page()
    for series in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert re.search(rf"^{series}(\{{| )", page, re.MULTILINE), series


def test_an_endpoint_label_is_one_token() -> None:
    assert metrics.endpoint_label("bulk_patch deployments") == "bulk_patch_deployments"
    assert metrics.endpoint_label("token") == "token"


def test_every_endpoint_value_on_the_page_is_one_token() -> None:
    metrics.AIAPI_CALLS.labels(metrics.endpoint_label("list executions"), "ok").inc(0)
    values = re.findall(r'endpoint="([^"]*)"', _page())
    assert values, "no endpoint label on the page"
    assert all(re.fullmatch(r"[A-Za-z_$]+", v) for v in values), values
