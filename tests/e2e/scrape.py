"""Scraping a real operator's ``/metrics`` as Prometheus does: HTTPS (the operator's
self-signed certificate is not verified, as the chart's ServiceMonitor does not) with a
ServiceAccount's token, which the operator has the real API server review."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import OperatorProcess
from tests.kube import Kube
from tests.plugins.helm import Release

SERVICE_ACCOUNT = "v1/ServiceAccount"
CLUSTER_ROLE_BINDING = "rbac.authorization.k8s.io/v1/ClusterRoleBinding"


def service_account_token(kube: Kube, namespace: str, name: str) -> str:
    """A fresh token of ServiceAccount ``namespace/name``, created if need be."""
    if kube.get_or_none(SERVICE_ACCOUNT, name, namespace=namespace) is None:
        kube.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            namespace=namespace,
        )
    result = kube.kubectl("create", "token", name, "-n", namespace, "--duration=1h", check=True)
    return result.stdout.strip()


def reader_role(release: Release) -> str:
    """The release's ClusterRole for scrapers (``<fullname>-metrics-reader``)."""
    (name,) = [
        role["metadata"]["name"]
        for role in release.manifest_of("ClusterRole")
        if role["metadata"]["name"].endswith("-metrics-reader")
    ]
    return str(name)


def scrape(port: int, token: str | None = None, *, scheme: str = "https") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{scheme}://127.0.0.1:{port}/metrics"
    return httpx.get(url, headers=headers, verify=False, timeout=15)


def scrape_until(
    port: int, token: str, done: Callable[[httpx.Response], bool], timeout: float = 30
) -> httpx.Response:
    """Scrape until ``done`` (RBAC reaches the authorizer within moments, and the operator
    remembers a refusal for 10 s)."""
    deadline = time.monotonic() + timeout
    while True:
        response = scrape(port, token)
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(1)


def operator_for(
    kube: Kube, release: Release, workdir: Path, *flags: str, **env: str
) -> OperatorProcess:
    """``bulkterm operator`` as the release's ServiceAccount, watching its namespace."""
    return OperatorProcess(
        kube, release.namespace, workdir, *flags, kubeconfig=release.kubeconfig(), env=env
    )


def chart_values(namespace: str, **metrics: Any) -> dict[str, Any]:
    return {"watchNamespaces": [namespace], "metrics": metrics}
