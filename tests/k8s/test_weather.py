"""An API server that is away is weather: ``ApiWeather`` retries until it answers, logs the
outage once when it starts and once when it ends, and counts it; kopf's backoffs ride out an
outage of a bounded length; kopf's per-attempt retry lines are cut to the first."""

from __future__ import annotations

import itertools
import logging

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from bulkterm import metrics
from bulkterm.k8s.kubeapi import ApiWeather, KopfBackoffs, KopfRetryLogFilter, is_outage


def refused() -> urllib3.exceptions.MaxRetryError:
    return urllib3.exceptions.MaxRetryError(None, "/status", reason=ConnectionRefusedError(111))  # type: ignore[arg-type]


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_what_counts_as_an_outage() -> None:
    assert is_outage(refused())
    assert is_outage(ApiException(status=503))
    assert is_outage(ApiException(status=429))
    assert is_outage(ConnectionResetError())
    assert not is_outage(ApiException(status=404))
    assert not is_outage(ApiException(status=422))
    assert not is_outage(ValueError("bug"))


async def test_a_call_waits_out_an_outage_and_logs_it_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = iter([refused(), refused(), ApiException(status=503), refused()])
    calls = 0

    def patch() -> str:
        nonlocal calls
        calls += 1
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "written"

    stalls_before = value("bulkterm_kube_stalled_calls_total", {"call": "write status"})
    outages_before = value("bulkterm_kube_outages_total")
    weather = ApiWeather(backoff=(0.0, 0.01))
    with caplog.at_level(logging.WARNING, logger="bulkterm.k8s.kubeapi"):
        assert await weather.call("write status", patch) == "written"
    assert calls == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Kubernetes API unreachable (write status: MaxRetryError)")
    assert lines[1].startswith("Kubernetes API reachable again after")
    assert all(r.exc_info is None for r in caplog.records)  # no traceback
    assert weather.outage_since is None and weather.outages == 1
    assert value("bulkterm_kube_stalled_calls_total", {"call": "write status"}) == (
        stalls_before + 4
    )
    assert value("bulkterm_kube_outages_total") == outages_before + 1
    assert value("bulkterm_kube_reachable") == 1.0


async def test_a_refusal_is_raised_at_once() -> None:
    calls = 0

    def patch() -> None:
        nonlocal calls
        calls += 1
        raise ApiException(status=422)

    with pytest.raises(ApiException):
        await ApiWeather(backoff=(0.0,)).call("write status", patch)
    assert calls == 1


async def test_a_forbidden_right_after_an_outage_is_the_server_warming_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = iter([refused(), ApiException(status=403), ApiException(status=403)])

    def patch() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "written"

    with caplog.at_level(logging.WARNING, logger="bulkterm.k8s.kubeapi"):
        assert await ApiWeather(backoff=(0.0,)).call("write status", patch) == "written"
    assert len(caplog.records) == 2  # the outage, and the server answering again

    def forbidden() -> None:
        raise ApiException(status=403)

    with pytest.raises(ApiException):  # no outage seen: 403 is RBAC saying no
        await ApiWeather(backoff=(0.0,)).call("write status", forbidden)


async def test_give_up_after_bounds_the_wait() -> None:
    def patch() -> None:
        raise refused()

    with pytest.raises(urllib3.exceptions.MaxRetryError):
        await ApiWeather(backoff=(0.01,), give_up_after=0.05).call("write status", patch)


def test_kopf_backoffs_ride_out_the_tolerance_and_restart_per_request() -> None:
    backoffs = KopfBackoffs(60)
    first = list(backoffs)
    assert first[:3] == [0.5, 1.0, 2.0]
    assert set(first[3:]) == {2.0}
    assert 60 <= sum(first) < 62
    assert list(backoffs) == first  # iterated afresh for every kopf request
    assert not hasattr(backoffs, "__len__")  # kopf numbers attempts without a total
    assert list(itertools.islice(KopfBackoffs(600), 100))[-1] == 2.0


def test_kopf_backoffs_retry_within_2_s_yet_stay_bounded() -> None:
    """A watch is back within about 2 s of the API server's return, and a long outage costs
    one attempt per watch every 2 s, not a hot loop."""
    steps = list(KopfBackoffs(600))
    assert max(steps) == 2.0
    assert min(steps) >= 0.5
    assert len(steps) <= 600 / 2.0 + 3


def test_kopf_retry_lines_keep_the_first_attempt_only() -> None:
    keep = KopfRetryLogFilter()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf", logging.ERROR, __file__, 1, message, None, None)

    assert keep.filter(record("Request attempt #1 failed; will retry: GET /x -> refused"))
    assert keep.filter(record("Request attempt #1/6 failed; will retry: GET /x -> refused"))
    assert not keep.filter(record("Request attempt #2 failed; will retry: GET /x -> refused"))
    assert not keep.filter(record("Request attempt #12 failed; will retry: GET /x"))
    assert keep.filter(record("Request attempt #61 failed; escalating: GET /x -> refused"))
    assert keep.filter(record("Handler 'reconcile' succeeded."))


async def test_a_refused_status_write_is_counted() -> None:
    from bulkterm.k8s.throttle import StatusThrottle

    async def refuse(status: dict[str, object]) -> None:
        raise ApiException(status=422)

    before = value("bulkterm_status_write_failures_total")
    throttle = StatusThrottle(refuse, 60.0)
    assert not await throttle.offer({"progress": "0/1"}, force=True)
    assert not await throttle.close(())
    assert value("bulkterm_status_write_failures_total") == before + 2


def test_kopf_is_configured_from_the_operator_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import kopf

    from bulkterm.k8s import handlers
    from bulkterm.k8s.config import OperatorConfig
    from bulkterm.k8s.state import OperatorState

    monkeypatch.setenv("BULKTERM_PEERING_LIFETIME", "7")
    monkeypatch.setenv("BULKTERM_KUBE_OUTAGE_TOLERANCE_SECONDS", "120")
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings, memo=OperatorState(config=OperatorConfig()))
    assert settings.peering.lifetime == 7
    assert settings.peering.stealth is True
    backoffs = settings.networking.error_backoffs
    assert isinstance(backoffs, KopfBackoffs) and backoffs.tolerance == 120
    assert settings.posting.default_backoffs is backoffs
