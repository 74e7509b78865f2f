"""The Kubernetes side the operator benchmarks share: the control plane, the CRs, the operator.

A real kube-apiserver + etcd (the test suite's public ``ControlPlane`` and ``Kube``, binaries
from ``hack/kube/build.sh``) with the CRD and a namespace, the BulkTermination manifests, the
granted service-key Secret, and ``bulkterm operator`` started as a subprocess. Imported by
``fleet.py`` and ``operator_vs_apply.py``; imports none of them.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from bulkterm.aiapi.models import Kind

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for ``tests.kube``
from targets import RESOURCE_GROUP, WANTED
from tests.kube.client import Kube  # the test suite's real control plane
from tests.kube.controlplane import ControlPlane, die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
SECRET = "aicore-service-key"
CRD_PATH = ROOT / "crds" / "bulktermination.yaml"
BULKTERMINATIONS = f"/apis/aiapi.bulkops.dev/v1alpha1/namespaces/{NAMESPACE}/bulkterminations"


def manifest_of(
    pairs: list[tuple[Kind, str]], form: str, name: str, poll_interval: int | None = None
) -> dict[str, Any]:
    """One BulkTermination named ``name`` for these (kind, id) pairs: deployments DELETED,
    executions STOPPED (a kind with no id is left out of the compact form)."""
    ids: dict[Kind, list[str]] = {Kind.DEPLOYMENT: [], Kind.EXECUTION: []}
    for kind, id_ in pairs:
        ids[kind].append(id_)
    spec: dict[str, Any] = {
        "connection": {"secretRef": {"name": SECRET}, "resourceGroup": RESOURCE_GROUP}
    }
    if poll_interval is not None:
        spec["pollIntervalSeconds"] = poll_interval
    if form == "list":
        spec["targets"] = [
            {"kind": kind.value, "id": id_, "targetStatus": WANTED[kind].value}
            for kind in (Kind.DEPLOYMENT, Kind.EXECUTION)
            for id_ in ids[kind]
        ]
    else:
        for kind, field_name in ((Kind.DEPLOYMENT, "deployments"), (Kind.EXECUTION, "executions")):
            if ids[kind]:
                spec[field_name] = {"targetStatus": WANTED[kind].value, "ids": ids[kind]}
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


class Plane:
    """The real control plane: started on first use, with the CRD and :data:`NAMESPACE` in."""

    def __init__(self, workdir: Path) -> None:
        self.plane = ControlPlane(workdir=workdir / "control-plane")
        self.workdir = workdir
        self.kube: Kube | None = None

    def start(self) -> Kube:
        if self.kube is None:
            self.plane.start()
            self.kube = Kube(self.plane, self.workdir / "kube")
            trusted_from = self.kube.install_secret_use_policy()
            crd = next(d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d)
            self.kube.install_crd(crd)
            self.kube.create_namespace(NAMESPACE)
            time.sleep(max(0.0, trusted_from - time.monotonic()))
        return self.kube

    def stop(self) -> None:
        if self.kube is not None:
            self.kube.close()
        self.plane.stop()


def admin_client(plane: ControlPlane) -> httpx.Client:
    """An HTTP client of the API server with the admin certificate, no timeout (for watches)."""
    context = ssl.create_default_context(cafile=str(plane.pki / "ca.crt"))
    context.load_cert_chain(str(plane.pki / "admin.crt"), str(plane.pki / "admin.key"))
    return httpx.Client(base_url=plane.url, verify=context, timeout=None)


def put_service_key(kube: Kube, service_key: dict[str, Any]) -> None:
    """The Secret the CRs name (replacing one an earlier row left); the admission policy
    vouches for the CRs the bench creates as admin."""
    if kube.get_or_none("secrets", SECRET, namespace=NAMESPACE) is not None:
        kube.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}")
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "stringData": {"serviceKey": json.dumps(service_key)},
        }
    )


def start_operator(
    kube: Kube,
    log_path: Path,
    extra_flags: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``bulkterm operator`` on :data:`NAMESPACE` as a subprocess (logging to ``log_path``),
    returned once its health endpoint answers; raises if it exits or is not healthy in 60 s."""
    health = f"http://127.0.0.1:{free_port()}/healthz"
    # The runs' Leases beside the CRs: the operator runs as admin, with no namespace of its own.
    env = {
        **kube.env(),
        "BULKTERM_ALLOW_PLAIN_HTTP": "true",
        "BULKTERM_LEASE_NAMESPACE": NAMESPACE,
        **(env_extra or {}),
    }
    env.pop("BULKTERM_NAMESPACES", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "bulkterm.cli", "operator", "--namespace", NAMESPACE,
            "--liveness-endpoint", health, "--metrics-port", "0", "--log-format", "plain",
            *extra_flags,
        ],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > 60:
            proc.kill()
            raise TimeoutError("operator not healthy in 60 s")
        time.sleep(0.1)
