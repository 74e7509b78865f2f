"""The chart on a real API server: ``helm install``, ``upgrade`` and ``uninstall`` as shipped.

Rendering tests (test_helm, test_rbac, test_deployment) check what the chart says; these
check that a real kube-apiserver accepts it, which is where the CRD once failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.chart.conftest import VARIANTS
from tests.kube import Kube
from tests.plugins.helm import CHART, Release
from tests.plugins.kube import crd_document

pytestmark = pytest.mark.helm

CRD_NAME = "bulkterminations.aiapi.bulkops.dev"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"

# Prometheus Operator's CRD is not something this chart installs; a cluster that wants a
# ServiceMonitor has it. A minimal stand-in with the same group, kind and scope lets the API
# server accept the chart's object; its fields are checked by the rendering tests.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def extra_namespaces(kube: Kube, namespace: str) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{namespace}-{suffix}"
        kube.create_namespace(name)
        made.append(name)
        return name

    yield make
    for name in made:
        kube.delete("namespaces", name, namespace="")


def variant_values(variant: str, extra_namespaces: Callable[[str], str]) -> dict[str, Any]:
    if variant == "namespaced":
        return {"watchNamespaces": [extra_namespaces("a"), extra_namespaces("b")]}
    if variant == "peering":
        return {"replicaCount": 2}
    if variant == "metrics":
        return {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}}
    if variant == "hardened":  # docs/security.md: NetworkPolicy with egress, CA bundle, names
        values = dict(VARIANTS["hardened"])
        values["watchNamespaces"] = [extra_namespaces("a")]
        return values
    return {}


def on_server(kube: Kube, doc: dict[str, Any]) -> dict[str, Any] | None:
    meta = doc["metadata"]
    resource = f"{doc['apiVersion']}/{doc['kind']}"
    return kube.get_or_none(resource, meta["name"], namespace=meta.get("namespace", ""))


def args_of(release: Release) -> list[str]:
    return release.operator_args()


@pytest.mark.parametrize("variant", ["default", "namespaced", "peering", "metrics", "hardened"])
def test_chart_installs_upgrades_and_uninstalls(
    kube: Kube,
    namespace: str,
    install_chart: Callable[..., Release],
    extra_namespaces: Callable[[str], str],
    variant: str,
) -> None:
    if variant == "metrics":
        kube.install_crd(SERVICE_MONITOR_CRD)
    values = variant_values(variant, extra_namespaces)
    release = install_chart(namespace, values)
    manifest = release.manifest()
    assert manifest, "helm rendered nothing"
    missing = [
        f"{d['kind']}/{d['metadata']['name']}" for d in manifest if on_server(kube, d) is None
    ]
    assert missing == []

    upgraded = release.helm(
        "upgrade", release.name, str(CHART), "-n", namespace, "--reuse-values",
        "--set", "logLevel=DEBUG",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    (deployment,) = [d for d in manifest if d["kind"] == "Deployment"]
    live = on_server(kube, deployment)
    assert live is not None
    assert "--log-level=DEBUG" in live["spec"]["template"]["spec"]["containers"][0]["args"]

    removed = release.helm("uninstall", release.name, "-n", namespace)
    assert removed.returncode == 0, removed.stderr
    left = [f"{d['kind']}/{d['metadata']['name']}" for d in manifest if on_server(kube, d)]
    assert left == []
    # Helm never deletes CRDs: BulkTerminations survive an uninstall.
    assert kube.get_or_none(CRDS, CRD_NAME, namespace="") is not None


@pytest.fixture
def without_crd(kube: Kube) -> Iterator[None]:
    """The BulkTermination CRD removed for one test, and put back whatever happens."""
    kube.delete(CRDS, CRD_NAME, namespace="")
    kube.wait_gone(CRDS, CRD_NAME, namespace="", timeout=60)
    try:
        yield
    finally:
        kube.install_crd(crd_document())


def test_helm_install_creates_the_crd_a_real_server_accepts(
    kube: Kube, namespace: str, without_crd: None, install_chart: Callable[..., Release]
) -> None:
    install_chart(namespace)
    crd = kube.wait_for(
        CRDS,
        CRD_NAME,
        lambda c: any(
            x["type"] == "Established" and x["status"] == "True"
            for x in (c.get("status") or {}).get("conditions") or []
        ),
        namespace="",
        timeout=30,
    )
    shipped = yaml.safe_load((CHART / "crds" / "bulktermination.yaml").read_text())
    assert crd["spec"]["versions"][0]["schema"] == shipped["spec"]["versions"][0]["schema"]


def test_kubectl_apply_of_the_crds_folder_is_accepted(kubectl: Callable[..., Any]) -> None:
    from tests.plugins.kube import ROOT

    applied = kubectl("apply", "-f", str(ROOT / "crds"))
    assert applied.returncode == 0, applied.stderr
    assert CRD_NAME in applied.stdout
