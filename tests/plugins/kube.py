"""Fixtures: a real kube-apiserver + etcd for the whole test run, and a namespace per test.

- ``control_plane`` (session): etcd + kube-apiserver v1.36 on free 127.0.0.1 ports, started
  once (3-6 s) and always stopped; the binaries come from ``hack/kube/build.sh``.
- ``kube`` (session): :class:`tests.kube.Kube` with admin rights; the project's CRD is
  installed (and Established) before any test sees it, and so is the chart's admission policy
  that checks the verb ``use`` on a BulkTermination's Secret
  (:func:`bulkterm.k8s.secret_use.policy_manifests`, under its default name), in force for
  :data:`~bulkterm.k8s.secret_use.ACTIVATION_SECONDS`: so the operator trusts the admission
  of every BulkTermination a test creates, as it would in a cluster with the chart.
- ``namespace``: a fresh namespace for one test. Afterwards every BulkTermination in it is
  deleted (finalizers removed first: the operator under test is gone by then) and the
  namespace is deleted; without a controller-manager it stays Terminating, which is harmless.
- ``kubectl``: ``kubectl(*args, input=None, check=False, timeout=60)`` as admin.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import yaml

from tests.kube import ControlPlane, Kube

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "bulktermination.yaml"


class Kubectl(Protocol):
    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


def crd_document() -> dict[str, object]:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    return dict(crd)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(workdir=tmp_path_factory.mktemp("control-plane"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    client = Kube(control_plane, tmp_path_factory.mktemp("kube-client"))
    trusted_from = client.install_secret_use_policy()
    client.install_crd(crd_document())
    time.sleep(max(0.0, trusted_from - time.monotonic()))
    try:
        yield client
    finally:
        client.close()


def namespace_for(node_name: str) -> str:
    """A valid, unique, recognisable namespace name for a test."""
    digest = hashlib.sha1(node_name.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"{stem}-{digest}"


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace; or, with ``@pytest.mark.namespace("ml-team")``, that fixed one (for
    manifests that name their namespace), emptied of what tests put there afterwards instead
    of deleted, as a deleted namespace would stay Terminating for the rest of the run."""
    marker = request.node.get_closest_marker("namespace")
    fixed = str(marker.args[0]) if marker else None
    name = fixed or namespace_for(request.node.name)
    if kube.get_or_none("namespaces", name, namespace="") is None:
        kube.create_namespace(name)
    yield name
    kube.purge("bulkterminations", name)
    if fixed:
        kube.purge("secrets", name)
    else:
        kube.delete("namespaces", name, namespace="")


@pytest.fixture
def kubectl(kube: Kube) -> Kubectl:
    return kube.kubectl
