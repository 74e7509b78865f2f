"""The chart on a real API server: ``helm install``, ``upgrade`` and ``uninstall`` as shipped.

Rendering tests (test_helm, test_rbac, test_deployment) check what the chart says; these
check that a real kube-apiserver accepts it, which is where the CRD once failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import VARIANTS
from tests.kube import Kube
from tests.plugins.helm import CHART, Release, helm_runner
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


def stand_in_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """A CRD with the group, kind and scope of one this chart does not install."""
    crd: dict[str, Any] = yaml.safe_load(yaml.safe_dump(SERVICE_MONITOR_CRD))
    crd["metadata"]["name"] = f"{plural}.{group}"
    crd["spec"]["group"] = group
    crd["spec"]["names"] = {"kind": kind, "plural": plural, "singular": kind.lower()}
    return crd


PROMETHEUS_RULE_CRD = stand_in_crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules")


def variant_values(variant: str, extra_namespaces: Callable[[str], str]) -> dict[str, Any]:
    if variant == "namespaced":
        return {"watchNamespaces": [extra_namespaces("a"), extra_namespaces("b")]}
    if variant == "peering":
        return {"replicaCount": 2}
    if variant == "metrics":
        return {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}}
    if variant == "platform":  # PDB, spread, labels, extra flags, dashboard, rules
        return {**VARIANTS["platform"], "rbac": {"aggregateClusterRoles": True}}
    if variant == "hardened":  # docs/security.md: NetworkPolicy with egress, CA bundle, names
        values = dict(VARIANTS["hardened"])
        values["watchNamespaces"] = [extra_namespaces("a")]
        return values
    # The chart's defaults, with the users' aggregated ClusterRoles the fixture leaves out.
    return {"rbac": {"aggregateClusterRoles": True}}


def on_server(kube: Kube, doc: dict[str, Any]) -> dict[str, Any] | None:
    meta = doc["metadata"]
    resource = f"{doc['apiVersion']}/{doc['kind']}"
    return kube.get_or_none(resource, meta["name"], namespace=meta.get("namespace", ""))


def args_of(release: Release) -> list[str]:
    return release.operator_args()


@pytest.mark.parametrize(
    "variant", ["default", "namespaced", "peering", "metrics", "hardened", "platform"]
)
def test_chart_installs_upgrades_and_uninstalls(
    kube: Kube,
    namespace: str,
    install_chart: Callable[..., Release],
    extra_namespaces: Callable[[str], str],
    variant: str,
) -> None:
    if variant in ("metrics", "platform"):
        kube.install_crd(SERVICE_MONITOR_CRD)
        kube.install_crd(PROMETHEUS_RULE_CRD)
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
    # The fixture installs with crds.enabled=false: the session's CRD is not the release's.
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


def established(crd: dict[str, Any]) -> bool:
    return any(
        x["type"] == "Established" and x["status"] == "True"
        for x in (crd.get("status") or {}).get("conditions") or []
    )


def test_helm_install_creates_the_crd_a_real_server_accepts(
    kube: Kube, namespace: str, without_crd: None, install_chart: Callable[..., Release]
) -> None:
    install_chart(namespace, {"crds": {"enabled": True}})
    crd = kube.wait_for(CRDS, CRD_NAME, established, namespace="", timeout=30)
    shipped: dict[str, Any] = crd_document()["spec"]  # type: ignore[assignment]
    assert [v["schema"] for v in crd["spec"]["versions"]] == [
        v["schema"] for v in shipped["versions"]
    ]
    assert crd["spec"]["names"] | shipped["names"] == crd["spec"]["names"]
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def chart_copy(tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name / CHART.name
    shutil.copytree(CHART, copy)
    return copy


def test_helm_upgrade_updates_the_templated_crd_and_uninstall_keeps_it(
    kube: Kube,
    namespace: str,
    without_crd: None,
    install_chart: Callable[..., Release],
    tmp_path: Path,
) -> None:
    release = install_chart(namespace, {"crds": {"enabled": True}})
    kube.wait_for(CRDS, CRD_NAME, established, namespace="", timeout=30)
    # The next chart version's CRD: one more printer column.
    newer = chart_copy(tmp_path, "newer")
    crd_file = newer / "files" / "crds" / "bulktermination.yaml"
    text = crd_file.read_text()
    column = "      additionalPrinterColumns:\n"
    assert column in text
    crd_file.write_text(text.replace(
        column, column + "        - {name: Upgraded, type: string, jsonPath: .spec.x}\n", 1
    ))  # fmt: skip
    upgraded = release.helm("upgrade", release.name, str(newer), "-n", namespace, "--reuse-values")
    assert upgraded.returncode == 0, upgraded.stderr
    live = kube.get(CRDS, CRD_NAME, namespace="")
    columns = [c["name"] for c in live["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[0] == "Upgraded"

    removed = release.helm("uninstall", release.name, "-n", namespace)
    assert removed.returncode == 0, removed.stderr
    assert "kept due to the resource policy" in removed.stdout + removed.stderr
    assert kube.get_or_none(CRDS, CRD_NAME, namespace="") is not None


def previous_layout(tmp_path: Path) -> Path:
    """The chart as it was before the CRD became a template: the CRD in crds/."""
    old = chart_copy(tmp_path, "previous")
    (old / "files" / "crds" / "bulktermination.yaml").rename(old / "crds" / "bulktermination.yaml")
    (old / "templates" / "crds.yaml").unlink()
    return old


def sample_bulk_termination(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": "survivor", "namespace": namespace},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "targets": [{"kind": "Deployment", "id": "dep-0001", "targetStatus": "STOPPED"}],
        },
    }


def test_upgrade_from_the_crds_folder_layout_adopts_the_crd_without_deleting_it(
    kube: Kube,
    namespace: str,
    without_crd: None,
    helm_bin: Path,
    tmp_path: Path,
) -> None:
    """docs/helm.md, "Upgrading from a chart with the CRD in crds/": Helm refuses to take over
    a CRD it installed from crds/ (no ownership metadata); labelling and annotating it as the
    release's, then upgrading, keeps the very same CRD and every BulkTermination."""
    helm = helm_runner(helm_bin, kube, tmp_path)
    release = "bto-layout"
    installed = helm("install", release, str(previous_layout(tmp_path)), "-n", namespace)
    assert installed.returncode == 0, installed.stderr
    crd = kube.wait_for(CRDS, CRD_NAME, established, namespace="", timeout=30)
    kube.create(sample_bulk_termination(namespace))

    refused = helm("upgrade", release, str(CHART), "-n", namespace, "--reuse-values")
    assert refused.returncode != 0
    assert "invalid ownership metadata" in refused.stderr

    kube.kubectl("label", "crd", CRD_NAME, "app.kubernetes.io/managed-by=Helm", check=True)
    kube.kubectl(
        "annotate", "crd", CRD_NAME,
        f"meta.helm.sh/release-name={release}", f"meta.helm.sh/release-namespace={namespace}",
        check=True,
    )  # fmt: skip
    upgraded = helm("upgrade", release, str(CHART), "-n", namespace, "--reuse-values")
    try:
        assert upgraded.returncode == 0, upgraded.stderr
        live = kube.get(CRDS, CRD_NAME, namespace="")
        assert live["metadata"]["uid"] == crd["metadata"]["uid"]
        assert live["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert kube.get_or_none("bulkterminations", "survivor", namespace=namespace) is not None
    finally:
        helm("uninstall", release, "-n", namespace, "--wait=false")


def test_kubectl_apply_of_the_crds_folder_is_accepted(kubectl: Callable[..., Any]) -> None:
    from tests.plugins.kube import ROOT

    applied = kubectl("apply", "-f", str(ROOT / "crds"))
    assert applied.returncode == 0, applied.stderr
    assert CRD_NAME in applied.stdout
