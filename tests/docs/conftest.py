"""The reader's cluster, where the docs' commands run as written.

The docs speak to a new user: they create namespaces (``ml-team``, ``data-team``), install the
release ``bulkterm`` into ``bulkterm-system`` with the CRD as part of it, and name files the
reader has at hand (``key.json``, ``examples/``, ``charts/``). So before a test runs a doc's
commands, the session's API server (the ``kube`` fixture, shared with every other test of this
worker) is made a new user's cluster for those names: the namespaces do not exist, no release
``bulkterm`` does, and the BulkTermination CRD is not installed (the docs' ``helm upgrade
--install`` creates it as the release's own; the ``kube`` fixture's copy has no Helm ownership
and would be refused). Afterwards the release is uninstalled, the namespaces are gone again and
the ``kube`` fixture's CRD is back, for the tests that follow.

A namespace cannot simply be deleted here: without a controller-manager its deletion never
finishes, and a namespace left Terminating could never be created again, as the docs do.
`forget_namespaces` does what the namespace controller would.

The environment name the docs' markers use for this (``<!-- console: kube -->``, see
``tests/docs/console.py``) is ``kube``: kubectl as the cluster admin, helm with state of its
own, the project's commands (``bulkterm``, ``kubectl-bulkterm``) on the PATH, in a working
directory that holds the repository's folders and a ``key.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.console import Block, Shell, run_block, section
from tests.kube import Kube
from tests.plugins.helm import ROOT, Release, helm_runner
from tests.plugins.kube import crd_document

#: What the docs name, and a new user's cluster does not have yet.
NAMESPACES = ("ml-team", "data-team", "bulkterm-system")
RELEASE, RELEASE_NAMESPACE = "bulkterm", "bulkterm-system"
CLUSTER_ROLE_BINDINGS = ("prometheus-reads-bulkterm",)
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME = "bulkterminations.aiapi.bulkops.dev"
#: The folders of the repository the docs' commands name by relative path.
FOLDERS = ("charts", "crds", "deploy", "examples")
#: A service key as the docs' `key.json` (only what a test's operator reads; no real secret).
PLACEHOLDER_KEY = {"clientid": "doc-reader", "clientsecret": "not-a-secret",
                   "url": "https://auth.example.com",
                   "serviceurls": {"AI_API_URL": "https://api.example.com"}}  # fmt: skip


@dataclass
class Reader:
    """A reader at a new user's cluster: where the docs' commands run."""

    kube: Kube
    workdir: Path
    helm: Callable[..., subprocess.CompletedProcess[str]]
    env: dict[str, str]

    def shell(self, **replace: str) -> Shell:
        return Shell(self.workdir, self.env, replace)

    def run(self, doc: Path, title: str, **replace: str) -> list[str]:
        """Run the blocks of a section that run in ``kube``; their outputs, in order."""
        outputs: list[str] = []
        for block in runnable(doc, title):
            outputs += run_block(self.shell(**replace), block)
        return outputs

    def release(self) -> Release:
        """The docs' release, as the helm fixtures know one (its ServiceAccount's token)."""
        return Release(RELEASE, RELEASE_NAMESPACE, {}, self.kube, self.helm)


def runnable(doc: Path, title: str) -> list[Block]:
    found = [block for block in section(doc, title) if block.runs]
    assert found, f"no block of {doc.name} under {title!r} is marked to run"
    assert {block.env for block in found} == {"kube"}, [b.where for b in found]
    return found


def forget_namespaces(kube: Kube, names: Sequence[str]) -> None:
    """Delete namespaces and everything in them, as the namespace controller would."""
    names = [n for n in names if kube.get_or_none("namespaces", n, namespace="") is not None]
    if not names:
        return
    kinds = kube.kubectl(
        "api-resources", "--namespaced=true", "--verbs=list,delete", "-o", "name", check=True
    ).stdout.split()
    for name in names:
        if kube.get_or_none(CRDS, CRD_NAME, namespace="") is not None:
            kube.purge("bulkterminations", name)  # their finalizers would hold them
        kube.kubectl("delete", ",".join(kinds), "--all", "-n", name, "--wait=false", check=True)
        kube.delete("namespaces", name, namespace="")
        namespace = kube.get("namespaces", name, namespace="")
        namespace["metadata"].pop("resourceVersion")
        namespace["spec"]["finalizers"] = []
        kube.request("PUT", f"/api/v1/namespaces/{name}/finalize", body=namespace)
        kube.wait_gone("namespaces", name, namespace="", timeout=30)


def clear(kube: Kube, helm: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Remove what the docs' commands make: the release (its cluster-wide objects with it),
    the namespaces, the ClusterRoleBindings they create."""
    helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--ignore-not-found", check=True)
    forget_namespaces(kube, NAMESPACES)
    for name in CLUSTER_ROLE_BINDINGS:
        kube.delete("rbac.authorization.k8s.io/v1/clusterrolebindings", name, namespace="")


@contextmanager
def new_users_cluster(kube: Kube, helm_bin: Path, tmp: Path) -> Iterator[Reader]:
    """The session's API server as a new user's cluster for the docs' names, for a while."""
    workdir, state = tmp / "reader", tmp / "state"
    workdir.mkdir()
    for folder in FOLDERS:
        (workdir / folder).symlink_to(ROOT / folder)
    (workdir / "key.json").write_text(json.dumps(PLACEHOLDER_KEY))
    helm = helm_runner(helm_bin, kube, state)
    env = kube.env(
        KUBECACHEDIR=str(state / "kubectl-cache"),
        HELM_CACHE_HOME=str(state / "helm-cache"),
        HELM_CONFIG_HOME=str(state / "helm-config"),
        HELM_DATA_HOME=str(state / "helm-data"),
        PATH=os.pathsep.join(
            [str(helm_bin.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        ),
    )
    clear(kube, helm)
    kube.delete(CRDS, CRD_NAME, namespace="")
    kube.wait_gone(CRDS, CRD_NAME, namespace="", timeout=60)
    try:
        yield Reader(kube, workdir, helm, env)
    finally:
        clear(kube, helm)
        kube.install_crd(crd_document())


@pytest.fixture
def reader(kube: Kube, helm_bin: Path, tmp_path: Path) -> Iterator[Reader]:
    """A new user's cluster for one test (see the module docstring)."""
    with new_users_cluster(kube, helm_bin, tmp_path) as fresh:
        yield fresh
