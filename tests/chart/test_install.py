"""The chart on a real API server: ``helm install``, ``upgrade`` and ``uninstall`` as shipped.

Rendering tests (test_helm, test_rbac, test_deployment) check what the chart says; these
check that a real kube-apiserver accepts it, which is where the CRD once failed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bulkterm.k8s.secret_use import DEFAULT_POLICY_NAME
from tests.chart.conftest import VARIANTS
from tests.kube import Kube, free_port
from tests.plugins.helm import CHART, ROOT, Release, helm_runner
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
    if variant == "platform":  # the API server keeps the field (a pruned one would be dropped)
        (pdb,) = [d for d in manifest if d["kind"] == "PodDisruptionBudget"]
        live_pdb = on_server(kube, pdb)
        assert live_pdb is not None
        assert live_pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

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


# --- watched namespaces that do not exist (templates/validate-namespaces.yaml) -------------------

#: What the ``install_chart`` fixture adds to every release (tests/plugins/helm.py), for the
#: tests below that run helm themselves because they expect it to fail.
FIXTURE_VALUES: dict[str, Any] = {
    "crds": {"enabled": False},
    "rbac": {"aggregateClusterRoles": False},
    "secretUse": {"admissionPolicy": {"create": False, "name": DEFAULT_POLICY_NAME}},
}


def values_file(tmp_path: Path, name: str, values: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{name}.yaml"
    path.write_text(yaml.safe_dump({**FIXTURE_VALUES, **values}))
    return path


def releases_named(helm: Callable[..., subprocess.CompletedProcess[str]], name: str,
                   namespace: str) -> list[dict[str, Any]]:  # fmt: skip
    """``helm list`` of every status (Helm 4 lists failed and pending releases by default;
    its ``--all`` is gone), filtered to one name."""
    listed = helm("list", "-n", namespace, "--filter", f"^{name}$", "-o", "json", check=True)
    return list(json.loads(listed.stdout))


def test_install_with_a_missing_watched_namespace_fails_before_creating_anything(
    kube: Kube, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    """Without the check Helm created the release namespace's objects, stopped at the
    missing namespace and left a failed release that blocked `helm install` of that name.
    Now the render fails first: no release, no object; and once the namespace exists, the
    README's `helm upgrade --install` of the same name succeeds."""
    helm = helm_runner(helm_bin, kube, tmp_path)
    name, late = "bto-late-ns", f"{namespace}-late"
    values = values_file(tmp_path, name, {"watchNamespaces": [namespace, late]})
    try:
        failed = helm("install", name, str(CHART), "-n", namespace, "-f", str(values))
        assert failed.returncode != 0
        assert f"do not exist (or are being deleted): {late}." in failed.stderr
        assert f"kubectl create namespace {late}" in failed.stderr
        assert f"kubectl create namespace {namespace}\n" not in failed.stderr + "\n"
        assert releases_named(helm, name, namespace) == []
        history = helm("history", name, "-n", namespace)
        assert history.returncode != 0 and "not found" in history.stderr
        instance = f"app.kubernetes.io/instance={name}"
        for kind in ("v1/serviceaccounts", "rbac.authorization.k8s.io/v1/roles",
                     "apps/v1/deployments"):  # fmt: skip
            assert kube.list(kind, namespace=namespace, label_selector=instance) == [], kind

        kube.create_namespace(late)
        retried = helm("upgrade", "--install", name, str(CHART), "-n", namespace,
                       "-f", str(values))  # fmt: skip
        assert retried.returncode == 0, retried.stderr
        assert [r["status"] for r in releases_named(helm, name, namespace)] == ["deployed"]
        roles = kube.list("rbac.authorization.k8s.io/v1/roles", namespace=late,
                          label_selector=instance)  # fmt: skip
        assert roles, "no Role in the namespace created for the retry"
    finally:
        helm("uninstall", name, "-n", namespace, "--wait=false")
        kube.delete("namespaces", late, namespace="")


def test_namespace_check_runs_only_where_helm_has_a_cluster(
    kube: Kube, namespace: str, helm_bin: Path, tmp_path: Path
) -> None:
    """`helm template` and `--dry-run=client` never ask the cluster (lookup answers "not
    found" for everything, kube-system included), so the check is skipped even with a
    reachable API server in KUBECONFIG; `--dry-run=server` asks, and the check runs."""
    helm = helm_runner(helm_bin, kube, tmp_path)
    name, late = "bto-no-cluster", f"{namespace}-never"
    values = str(values_file(tmp_path, name, {"watchNamespaces": [late]}))
    rendered = helm("template", name, str(CHART), "-n", namespace, "-f", values)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert any(d["kind"] == "Role" and d["metadata"]["namespace"] == late for d in docs)
    client = helm("install", name, str(CHART), "-n", namespace, "-f", values, "--dry-run=client")
    assert client.returncode == 0, client.stderr
    server = helm("install", name, str(CHART), "-n", namespace, "-f", values, "--dry-run=server")
    assert server.returncode != 0
    assert f"kubectl create namespace {late}" in server.stderr
    assert releases_named(helm, name, namespace) == []


# --- the operator outside the cluster (docs/helm.md) ---------------------------------------------


def doc_blocks(path: Path) -> list[str]:
    """The ```sh blocks of a Markdown file, line continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S)
    return [block.replace("\\\n", " ") for block in blocks]


def doc_block(path: Path, needle: str) -> str:
    (block,) = [b for b in doc_blocks(path) if needle in b]
    return block


def test_the_documented_out_of_cluster_run_works_as_the_charts_service_account(
    kube: Kube, namespace: str, install_chart: Callable[..., Release], tmp_path: Path
) -> None:
    """docs/helm.md, "Running the operator outside the cluster", as written: the token
    kubeconfig of the chart's ServiceAccount, then `bulkterm operator` with the documented
    flags, with the doc's names (release `bulkterm` in `bulkterm-system`, `ml-team`) replaced
    by this release's. Only the ports differ (free ones), as tests run side by side."""
    release = install_chart(namespace, {"watchNamespaces": [namespace]})
    (deployment,) = release.manifest_of("Deployment")
    env_of = {e["name"]: e.get("value") for e in
              deployment["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    names = {
        "bulkterm-bulk-termination-operator-admission": str(env_of["BULKTERM_ADMISSION_POLICY"]),
        "bulkterm-bulk-termination-operator": release.service_account,
        "bulkterm-system": release.namespace,
        "ml-team": namespace,
    }

    def ours(text: str) -> str:
        for doc_name, test_name in names.items():  # longest first: one is the other's prefix
            text = text.replace(doc_name, test_name)
        return text

    docs = ROOT / "docs" / "helm.md"
    made = doc_block(docs, "kubectl create token")
    script = "\n".join(line for line in made.splitlines() if not line.startswith("KUBECONFIG="))
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", ours(script)], cwd=tmp_path,
                         env=kube.env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    kubeconfig = tmp_path / "bulkterm-operator.kubeconfig"
    whoami = kube.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                          kubeconfig=kubeconfig, check=True)  # fmt: skip
    assert whoami.stdout == f"system:serviceaccount:{release.namespace}:{release.service_account}"

    (command,) = [line for line in doc_block(docs, "--admission-binding=").splitlines()
                  if line.startswith("bulkterm operator")]  # fmt: skip
    health = f"http://127.0.0.1:{free_port()}/healthz"
    argv = shlex.split(ours(command).replace("http://127.0.0.1:8080/healthz", health))
    assert argv[:2] == ["bulkterm", "operator"] and f"--liveness-endpoint={health}" in argv
    env = {k: v for k, v in kube.env(kubeconfig).items() if not k.startswith("BULKTERM_")}
    log = tmp_path / "operator.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkterm.cli", *argv[1:], f"--metrics-port={free_port()}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not healthy(health):
            assert proc.poll() is None, f"operator exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"operator not healthy:\n{log.read_text()}"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert "forbidden" not in log.read_text().lower()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
