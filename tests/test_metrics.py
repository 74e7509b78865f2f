"""The operator's metrics page: the standard series a dashboard expects, and labels PromQL
can use as they are."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest
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


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_build_info_says_version_commit_python_and_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    from importlib.metadata import version

    monkeypatch.delenv("BULKTERM_COMMIT", raising=False)
    assert metrics.build_labels() == {
        "version": version("bulk-termination-operator"),
        "commit": "unknown",
        "python": platform.python_version(),
        "kopf": version("kopf"),
    }
    monkeypatch.setenv("BULKTERM_COMMIT", "0123abc")
    assert metrics.build_labels()["commit"] == "0123abc"
    served = [
        s for f in metrics.REGISTRY.collect() if f.name == "bulkterm_build_info" for s in f.samples
    ]
    assert [s.value for s in served] == [1.0]


async def _measure(body: Callable[[], Awaitable[None]]) -> None:
    @metrics.measured("acknowledge")
    async def handler() -> None:
        await body()

    await handler()


@pytest.mark.parametrize(
    ("result", "body", "raises"),
    [
        ("success", lambda: asyncio.sleep(0), None),
        ("requeue", lambda: _requeue(), None),
        ("error", lambda: _fail(), RuntimeError),
        ("requeue", lambda: _cancelled(), asyncio.CancelledError),
    ],
)
async def test_a_handler_is_counted_once_by_result_and_timed(
    result: str, body: Callable[[], Awaitable[None]], raises: type[BaseException] | None
) -> None:
    before = {
        r: _sample("bulkterm_reconcile_total", handler="acknowledge", result=r)
        for r in metrics.RESULTS
    }
    timed = _sample("bulkterm_reconcile_duration_seconds_count", handler="acknowledge")
    if raises is None:
        await _measure(body)
    else:
        with pytest.raises(raises):
            await _measure(body)
    after = {
        r: _sample("bulkterm_reconcile_total", handler="acknowledge", result=r)
        for r in metrics.RESULTS
    }
    assert {r: after[r] - before[r] for r in metrics.RESULTS} == {
        r: 1.0 if r == result else 0.0 for r in metrics.RESULTS
    }
    assert _sample("bulkterm_reconcile_duration_seconds_count", handler="acknowledge") == timed + 1


async def _requeue() -> None:
    metrics.requeued()


async def _fail() -> None:
    raise RuntimeError("boom")


async def _cancelled() -> None:
    raise asyncio.CancelledError


def test_requeued_outside_a_measured_handler_does_nothing() -> None:
    metrics.requeued()


def test_every_handler_and_result_has_a_series_from_the_start() -> None:
    for handler in metrics.HANDLERS:
        for result in metrics.RESULTS:
            labels = {"handler": handler, "result": result}
            assert metrics.REGISTRY.get_sample_value("bulkterm_reconcile_total", labels) is not None
