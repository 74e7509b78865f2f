"""Fixtures: the real ``helm`` binary, and the chart installed on the real API server.

``make install`` puts helm into the venv (tools/fetch_helm.py), so a missing helm is a broken
set-up and fails the tests instead of skipping them.

- ``helm_bin`` (session): the path of the helm binary.
- ``install_chart``: ``install_chart(namespace, values, release=None) -> Release`` runs
  ``helm install --wait=false`` of the chart as shipped (its ``crds/`` included) into
  ``namespace``, with ``crds.enabled=false`` unless ``values`` say otherwise: the ``kube``
  fixture has already installed the BulkTermination CRD, which a templated CRD of the release
  could not take over (Helm refuses objects without its ownership labels), and one CRD cannot
  belong to several releases at once. ``tests/chart/test_install.py`` installs the templated CRD.
  Likewise ``rbac.aggregateClusterRoles=false`` unless asked for: those ClusterRoles are for
  namespace users, bound to nobody by the chart, while the releases made here stand for the
  operator's identity, whose every granted rule ``tests/e2e/test_rbac.py`` proves needed.
  ``tests/chart/test_aggregated_roles.py`` installs them. And
  ``secretUse.admissionPolicy.create=false`` naming the ``kube`` fixture's policy unless asked
  for: that one is in force already, where a release's own would be new (the operator trusts
  a policy only for BulkTerminations created 10 s after it), and cluster-scoped.
  Every release made in a test is uninstalled afterwards. A Release hands out a
  kubeconfig holding a token of the chart's own ServiceAccount, so an operator run with it has
  exactly the rendered RBAC, as the API server enforces it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulkterm.k8s.secret_use import DEFAULT_POLICY_NAME
from tests.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bulk-termination-operator"


def find_helm() -> Path | None:
    """The venv's helm (installed by `make install`) first, then one on PATH."""
    venv_helm = Path(sys.executable).parent / "helm"
    if venv_helm.is_file():
        return venv_helm
    on_path = shutil.which("helm")
    return Path(on_path) if on_path else None


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    helm = find_helm()
    if helm is None:
        pytest.fail(
            "helm not found (neither next to the interpreter nor on PATH). `make install` "
            "fetches it; or run: python tools/fetch_helm.py --dest "
            f"{Path(sys.executable).parent}",
            pytrace=False,
        )
    return helm


@dataclass
class Release:
    """A chart release on the test API server."""

    name: str
    namespace: str
    values: dict[str, Any]
    kube: Kube
    helm: Callable[..., subprocess.CompletedProcess[str]]

    @property
    def service_account(self) -> str:
        return str(self.manifest_of("ServiceAccount")[0]["metadata"]["name"])

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm("get", "manifest", self.name, "-n", self.namespace, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def manifest_of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.manifest() if d.get("kind") == kind]

    def kubeconfig(self) -> Path:
        """A kubeconfig with a fresh token of the chart's ServiceAccount."""
        return self.kube.token_kubeconfig(self.service_account, self.namespace)

    def operator_args(self) -> list[str]:
        """The operator's flags exactly as the chart renders them into its Deployment."""
        (deployment,) = self.manifest_of("Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return list(container["args"])


def helm_runner(
    helm_bin: Path, kube: Kube, workdir: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``helm(*args, check=False)`` against the test API server, with Helm's own state kept
    in ``workdir`` (never the user's ~/.config/helm)."""

    def helm(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(helm_bin), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=kube.env(HELM_CACHE_HOME=str(workdir / "helm-cache"),
                         HELM_CONFIG_HOME=str(workdir / "helm-config"),
                         HELM_DATA_HOME=str(workdir / "helm-data")),
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args[:2])} failed:\n{result.stderr}")
        return result

    return helm


def install_release(
    helm_bin: Path, kube: Kube, workdir: Path, name: str, namespace: str, values: dict[str, Any]
) -> Release:
    """``helm install`` of the chart as shipped (its ``crds/`` included) into ``namespace``;
    the CRD template and the users' aggregated ClusterRoles are off unless ``values`` turn
    them on (see the module docstring)."""
    helm = helm_runner(helm_bin, kube, workdir)
    values = {
        **values,
        "crds": {"enabled": False, **values.get("crds", {})},
        "rbac": {"aggregateClusterRoles": False, **values.get("rbac", {})},
        "secretUse": {
            **values.get("secretUse", {}),
            "admissionPolicy": {
                "create": False,
                "name": DEFAULT_POLICY_NAME,
                **values.get("secretUse", {}).get("admissionPolicy", {}),
            },
        },
    }
    values_file = workdir / f"values-{name}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm("install", name, str(CHART), "-n", namespace, "-f", str(values_file), check=True)
    return Release(name, namespace, values, kube, helm)


@pytest.fixture
def install_chart(
    kube: Kube, helm_bin: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Release]]:
    made: list[Release] = []

    def install(
        namespace: str, values: dict[str, Any] | None = None, release: str | None = None
    ) -> Release:
        name = release or "bto-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
        made.append(install_release(helm_bin, kube, tmp_path, name, namespace, values or {}))
        return made[-1]

    yield install
    for rel in made:
        rel.helm("uninstall", rel.name, "-n", rel.namespace, "--wait=false")
