"""Who may read a real operator's metrics, as a real API server decides.

``bulkterm operator`` runs as the chart's ServiceAccount (so with the chart's RBAC for the
reviews, ``<fullname>-metrics-auth``), serving ``/metrics`` over HTTPS on 127.0.0.1; scrapers
are ServiceAccounts of the test's namespace with tokens from ``kubectl create token``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import OperatorProcess
from tests.e2e.scrape import (
    CLUSTER_ROLE_BINDING,
    chart_values,
    operator_for,
    reader_role,
    scrape,
    scrape_until,
    service_account_token,
)
from tests.kube import Kube, free_port
from tests.plugins.helm import Release

pytestmark = [pytest.mark.e2e, pytest.mark.helm]


@pytest.fixture
def release(kube: Kube, namespace: str, install_chart: Callable[..., Release]) -> Release:
    return install_chart(namespace, chart_values(namespace))


@pytest.fixture
def started() -> Iterator[list[OperatorProcess]]:
    operators: list[OperatorProcess] = []
    yield operators
    for operator in operators:
        operator.stop()


def start(
    kube: Kube, release: Release, tmp_path: Path, started: list[OperatorProcess], *flags: str
) -> int:
    port = free_port()
    operator = operator_for(
        kube, release, tmp_path, "--metrics-address", "127.0.0.1", "--metrics-port", str(port),
        *flags,
    )  # fmt: skip
    started.append(operator)
    operator.start()
    return port


@pytest.fixture
def port(kube: Kube, release: Release, tmp_path: Path, started: list[OperatorProcess]) -> int:
    return start(kube, release, tmp_path, started)


@pytest.fixture
def bound_reader(kube: Kube, namespace: str, release: Release) -> Iterator[str]:
    """A token of ServiceAccount ``prometheus``, bound to the release's metrics-reader
    ClusterRole by a ClusterRoleBinding of its own (deleted afterwards)."""
    token = service_account_token(kube, namespace, "prometheus")
    name = f"{namespace}-prometheus-reads-metrics"
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": reader_role(release),
            },
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}],
        },
        namespace="",
    )
    try:
        yield token
    finally:
        kube.delete(CLUSTER_ROLE_BINDING, name, namespace="")


def test_a_scrape_without_a_token_is_refused_with_401(port: int) -> None:
    response = scrape(port)
    assert response.status_code == 401
    assert "bulkterm_" not in response.text


def test_a_scrape_with_a_token_the_api_server_does_not_accept_is_401(port: int) -> None:
    assert scrape(port, "eyJhbGciOiJSUzI1NiJ9.forged.token").status_code == 401


def test_a_service_account_without_the_metrics_reader_grant_gets_403(
    kube: Kube, namespace: str, port: int
) -> None:
    response = scrape(port, service_account_token(kube, namespace, "curious"))
    assert response.status_code == 403
    assert "bulkterm_" not in response.text


def test_a_service_account_bound_to_the_metrics_reader_role_gets_the_series(
    port: int, bound_reader: str
) -> None:
    response = scrape_until(port, bound_reader, lambda r: r.status_code == 200)
    assert response.status_code == 200, response.text
    assert "bulkterm_kube_reachable 1.0" in response.text
    assert "bulkterm_aiapi_calls_total" in response.text


def test_no_scraper_token_reaches_the_operator_log(
    kube: Kube,
    namespace: str,
    release: Release,
    tmp_path: Path,
    started: list[OperatorProcess],
    bound_reader: str,
) -> None:
    port = start(kube, release, tmp_path, started, "--log-level", "DEBUG")
    stranger = service_account_token(kube, namespace, "curious")
    scrape_until(port, bound_reader, lambda r: r.status_code == 200)
    scrape(port, stranger)
    scrape(port, "forged-token-value")
    log = started[-1].log()
    assert "refused (403 Forbidden)" in log
    for token in (bound_reader, stranger, "forged-token-value"):
        assert token not in log
        assert token.split(".")[-1] not in log  # not even a token's signature


def test_the_plain_http_opt_out_serves_without_a_token(
    kube: Kube, release: Release, tmp_path: Path, started: list[OperatorProcess]
) -> None:
    port = start(kube, release, tmp_path, started, "--metrics-secure=false")
    response = scrape(port, scheme="http")
    assert response.status_code == 200
    assert "bulkterm_kube_reachable 1.0" in response.text
    with pytest.raises(httpx.HTTPError):
        scrape(port)  # no TLS there


def test_without_the_charts_review_grants_a_scrape_is_503_naming_them(
    kube: Kube,
    namespace: str,
    install_chart: Callable[..., Release],
    tmp_path: Path,
    started: list[OperatorProcess],
) -> None:
    """metrics.secure false in the chart leaves out metrics-rbac.yaml; an operator serving
    HTTPS all the same cannot review anybody, and says why."""
    bare = install_chart(namespace, chart_values(namespace, secure=False), release="bare")
    port = start(kube, bare, tmp_path, started)
    response = scrape(port, service_account_token(kube, namespace, "prometheus"))
    assert response.status_code == 503
    assert "may not create tokenreviews (HTTP 403)" in started[-1].log()
