"""Uninstalling when the operator is already gone: the chart README's finalizer commands.

A BulkTermination the operator has not finished with carries its finalizer. With no operator
left to remove it, deleting the BulkTermination, or the CRD (whose deletion waits for its
last object), never finishes; the README's `kubectl patch` of the finalizers is the way out.
These tests run the README's commands as written, on a real API server with no operator.

The CRD's deletion is done by the API server itself (its CRD finalizer deletes the objects,
then the CRD), so it works here without a controller-manager. The BulkTermination CRD is
shared by every test of this worker and must stay, so the CRD test deletes a copy of it
under another API group (same schema and kind; no short names or categories, which would
make `kubectl get bt` ambiguous), with its own kubectl discovery cache and only kubectl
touching it, so that no client's discovery remembers the group once it is gone. The
BulkTermination test uses the shared CRD: deleting BulkTerminations is what it is about.
"""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulkterm.k8s.handlers import FINALIZER
from tests.kube import Kube
from tests.plugins.helm import CHART
from tests.plugins.kube import crd_document

pytestmark = pytest.mark.helm

README = CHART / "README.md"
RESOURCE = "bulkterminations.aiapi.bulkops.dev"


def readme_block(needle: str) -> str:
    """The README's ```sh block holding ``needle``, line continuations joined."""
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b.replace("\\\n", " ") for b in blocks if needle in b]
    return block


def readme_line(needle: str) -> str:
    (line,) = [x for x in readme_block(needle).splitlines() if needle in x]
    return line


def abandoned(api_version: str, name: str, namespace: str) -> dict[str, Any]:
    """A BulkTermination as an operator that went away mid-run leaves it: its finalizer on."""
    return {
        "apiVersion": api_version,
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": namespace, "finalizers": [FINALIZER]},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "targets": [{"kind": "Deployment", "id": "dep-0001", "targetStatus": "STOPPED"}],
        },
    }


def shell(
    kube: Kube, script: str, cache: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A README snippet in bash as the admin, with its own kubectl discovery cache."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=kube.env(KUBECACHEDIR=str(cache)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def remove_finalizers_script(namespace: str, resource: str = RESOURCE) -> str:
    """The README's finalizer removal, for ``resource`` and in ``namespace`` only (this
    worker's API server is shared by its tests, one after the other; any namespace's
    leftovers are not this test's to touch)."""
    script = readme_block('"finalizers":null')
    assert script.count("--all-namespaces") == 1 and script.count(RESOURCE) == 2
    return script.replace("--all-namespaces", f"-n {namespace}").replace(RESOURCE, resource)


def test_without_the_operator_bulkterminations_wait_for_the_documented_patch(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        kube.create(abandoned("aiapi.bulkops.dev/v1alpha1", name, namespace))
    in_namespace = f"-n {namespace}"

    delete = readme_line(f"kubectl delete {RESOURCE} --all").replace(
        "--all-namespaces", in_namespace
    )
    deleted = shell(kube, delete, tmp_path / "cache")
    assert deleted.returncode == 0, deleted.stderr
    wait = readme_line("kubectl wait --for=delete").replace("--all-namespaces", in_namespace)
    short_wait = wait.replace("--timeout=5m", "--timeout=3s")
    assert short_wait != wait
    hangs = shell(kube, short_wait, tmp_path / "cache")
    assert hangs.returncode != 0 and "timed out" in hangs.stderr
    for name in ("first", "second"):
        held = kube.get("bulkterminations", name, namespace=namespace)
        assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == [
            FINALIZER
        ]

    patched = shell(kube, remove_finalizers_script(namespace), tmp_path / "cache")
    assert patched.returncode == 0, patched.stderr
    assert patched.stdout.count("patched") == 2
    waited = shell(kube, wait.replace("--timeout=5m", "--timeout=30s"), tmp_path / "cache")
    assert waited.returncode == 0, waited.stderr
    assert kube.list("bulkterminations", namespace=namespace) == []


def crd_copy(group: str) -> dict[str, Any]:
    crd: dict[str, Any] = copy.deepcopy(dict(crd_document()))
    crd["metadata"] = {"name": f"bulkterminations.{group}"}
    crd["spec"]["group"] = group
    for key in ("shortNames", "categories"):
        crd["spec"]["names"].pop(key, None)
    return crd


def test_without_the_operator_the_crd_deletion_finishes_after_the_documented_patch(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    group = f"u{hashlib.sha1(namespace.encode()).hexdigest()[:8]}.uninstall.test"
    resource, cache = f"bulkterminations.{group}", tmp_path / "cache"

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                              timeout=60, env=kube.env(KUBECACHEDIR=str(cache)))  # fmt: skip

    created = kubectl("create", "-f", "-", input=yaml.safe_dump(crd_copy(group)))
    assert created.returncode == 0, created.stderr
    try:
        established = kubectl("wait", "--for=condition=Established", f"crd/{resource}",
                              "--timeout=30s")  # fmt: skip
        assert established.returncode == 0, established.stderr
        objects = [abandoned(f"{group}/v1alpha1", n, namespace) for n in ("first", "second")]
        made = kubectl("create", "-f", "-", input=yaml.safe_dump_all(objects))
        assert made.returncode == 0, made.stderr

        delete_crd = readme_line("kubectl delete crd").replace(RESOURCE, resource)
        hangs = shell(kube, delete_crd + " --timeout=3s", cache)
        assert hangs.returncode != 0 and "timed out" in hangs.stderr
        terminating = kubectl(
            "get", "crd", resource, "-o", "jsonpath={.metadata.deletionTimestamp}"
        )
        assert terminating.returncode == 0 and terminating.stdout, terminating.stderr

        patched = shell(kube, remove_finalizers_script(namespace, resource), cache)
        assert patched.returncode == 0, patched.stderr
        assert patched.stdout.count("patched") == 2
        gone = kubectl("wait", "--for=delete", f"crd/{resource}", "--timeout=30s")
        assert gone.returncode == 0, gone.stderr
    finally:
        for name in ("first", "second"):
            kubectl("patch", resource, name, "-n", namespace, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
        kubectl("delete", "crd", resource, "--ignore-not-found", "--timeout=30s")
