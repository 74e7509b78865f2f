"""Capture real BulkTerminations in every state the GitOps health checks must read.

``make gitops-testdata`` (or ``.venv/bin/python hack/gitops/capture.py``) writes them to
``deploy/argocd/aiapi.bulkops.dev/BulkTermination/testdata/``, where Argo CD's own test layout
(``health_test.yaml``) expects them; the Flux CEL and kstatus tests read the same files.

Why captured and not written by hand: a hand-written object agrees with our reading of the
API, which is exactly what a health check must not be tested against. These come from the
real kube-apiserver + etcd of the tests (``tests/kube``, binaries from ``make kube``) with
the project's CRD installed (so its defaults, e.g. ``status: {observedGeneration: 0}``, are
the server's), written to by the real ``bulkterm operator`` subprocess (admin kubeconfig)
against the AI API simulator, and read back with ``kubectl get -o yaml``. Only server
bookkeeping that differs on every run and that no health check reads is dropped
(``managedFields``, ``uid``, ``resourceVersion``).

The captures are committed; the tests never start a cluster. Run this again when the
operator's status changes (about a minute).
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.kube import ControlPlane, Kube, KubeApiError, condition, free_port  # noqa: E402
from tests.kube.crd import without_order_rules  # noqa: E402

from bulkterm.aiapi.models import Kind, Status  # noqa: E402
from bulkterm.simulator import SimulatorConfig, SimulatorThread, Timings  # noqa: E402

TESTDATA = ROOT / "deploy" / "argocd" / "aiapi.bulkops.dev" / "BulkTermination" / "testdata"
CRD = ROOT / "crds" / "bulktermination.yaml"
NAMESPACE = "ml-team"
SECRET = "aicore-service-key"
BT = "bulkterminations"
#: Server bookkeeping that changes on every capture and that no health check reads.
NOISE = ("managedFields", "uid", "resourceVersion")


def timings(stopping: float) -> Timings:
    """Quick lifecycles; the mid-run capture slows STOPPING and deletion down."""
    return Timings(
        unknown_seconds=0.2,
        pending_seconds=0.2,
        stop_delay_seconds=0.1,
        stopping_seconds=stopping,
        deletion_seconds=stopping,
        execution_run_seconds=None,
    )


def bulk_termination(name: str, *targets: tuple[str, str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "connection": {"secretRef": {"name": SECRET}},
            "pollIntervalSeconds": 1,
            "targets": [{"kind": k, "id": i, "targetStatus": t} for k, i, t in targets],
            **spec,
        },
    }


def secret(key: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {"serviceKey": base64.b64encode(json.dumps(key).encode()).decode()},
    }


def true(type_: str) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        c = condition(obj, type_)
        return c is not None and c.get("status") == "True"

    return check


@contextmanager
def operator(kube: Kube, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bulkterm operator`` watching NAMESPACE, as admin; healthy before it is yielded."""
    health = f"http://127.0.0.1:{free_port()}/healthz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkterm.cli", "operator", "--namespace", NAMESPACE,
         "--liveness-endpoint", health, "--metrics-port", "0", "--status-interval", "0.5",
         "--log-format", "plain"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        # The runs' Leases beside the CRs: as admin, the operator has no namespace of its own.
        env=kube.env(
            BULKTERM_STALLED_RETRY_SECONDS="0.5",
            BULKTERM_ALLOW_PLAIN_HTTP="true",
            BULKTERM_LEASE_NAMESPACE=NAMESPACE,
        ),
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not become healthy:\n{log.read_text()}")
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Capture:
    def __init__(self, kube: Kube, out: Path) -> None:
        self.kube = kube
        self.out = out
        self.written: list[Path] = []

    def save(self, name: str, file: str, what: str) -> dict[str, Any]:
        """``kubectl get -o yaml`` of one BulkTermination, less NOISE, into ``file``."""
        text = self.kube.kubectl("get", BT, name, "-n", NAMESPACE, "-o", "yaml", check=True).stdout
        obj: dict[str, Any] = yaml.safe_load(text)
        for key in NOISE:
            obj["metadata"].pop(key, None)
        header = (
            f"# {what}\n"
            "# Captured from a real kube-apiserver by hack/gitops/capture.py (make gitops-testdata);\n"
            "# do not edit by hand.\n"
        )
        path = self.out / file
        path.write_text(header + yaml.safe_dump(obj, sort_keys=False, width=100))
        self.written.append(path)
        print(f"capture: {path}: {what}")
        return obj


def capture(out: Path, workdir: Path) -> list[Path]:
    crd = next(
        d
        for d in yaml.safe_load_all(CRD.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    )
    with ControlPlane(workdir=workdir / "plane") as plane, SimulatorThread(
        SimulatorConfig(host="127.0.0.1", port=0, bulk_updates=True, timings=timings(0.5), seed=1)
    ) as sim:  # fmt: skip
        kube = Kube(plane, workdir / "kube")
        try:
            trusted_from = kube.install_secret_use_policy()
            kube.install_crd(crd)
            kube.create_namespace(NAMESPACE)
            time.sleep(max(0.0, trusted_from - time.monotonic()))
            shot = Capture(kube, out)
            wait = kube.wait_for

            # 1. No operator yet: what the API server alone makes of a new object.
            kube.create(bulk_termination("new", ("Deployment", "d-new-1", "STOPPED")))
            shot.save("new", "new.yaml", "A new BulkTermination no operator has seen yet")
            kube.delete(BT, "new", namespace=NAMESPACE)

            for item in (
                "d-done-1",
                "d-done-2",
                "d-fail-1",
                "d-dry-1",
                "d-changed-1",
                "d-changed-2",
                "d-held-1",
                "d-gated-1",
            ):
                sim.add_item(Kind.DEPLOYMENT, item, Status.RUNNING)
            sim.add_item(Kind.EXECUTION, "e-done-1", Status.STOPPED)
            kube.create(secret(sim.service_key()))
            with operator(kube, workdir / "operator.log"):
                kube.create(bulk_termination(
                    "complete", ("Deployment", "d-done-1", "STOPPED"),
                    ("Deployment", "d-done-2", "DELETED"), ("Execution", "e-done-1", "STOPPED"),
                ))  # fmt: skip
                kube.create(bulk_termination(
                    "failed", ("Deployment", "d-fail-1", "STOPPED"),
                    ("Deployment", "d-never-existed", "STOPPED"),
                ))  # fmt: skip
                kube.create(bulk_termination(
                    "dry-run", ("Deployment", "d-dry-1", "DELETED"), dryRun=True
                ))  # fmt: skip
                kube.create(bulk_termination(
                    "changed-after-finish", ("Deployment", "d-changed-1", "STOPPED"),
                    ("Deployment", "d-changed-2", "STOPPED"),
                ))  # fmt: skip
                kube.create(bulk_termination(
                    "suspended", ("Deployment", "d-held-1", "STOPPED"), suspend=True
                ))  # fmt: skip
                kube.create(bulk_termination(
                    "awaiting-approval", ("Deployment", "d-gated-1", "DELETED"),
                    requireApproval=True,
                ))  # fmt: skip
                stalled = bulk_termination("stalled", ("Deployment", "d-done-1", "STOPPED"))
                stalled["spec"]["connection"]["secretRef"]["name"] = "no-such-secret"
                kube.create(stalled)

                wait(BT, "complete", true("Complete"), namespace=NAMESPACE, timeout=60)
                shot.save("complete", "complete.yaml", "Every target reached its status: Complete")
                wait(BT, "failed", true("Failed"), namespace=NAMESPACE, timeout=60)
                shot.save(
                    "failed", "failed.yaml", "Finished with a target that does not exist: Failed"
                )
                wait(BT, "dry-run", true("Complete"), namespace=NAMESPACE, timeout=60)
                shot.save(
                    "dry-run",
                    "dry-run.yaml",
                    "spec.dryRun: the plan is written, nothing sent: Complete",
                )
                wait(BT, "suspended", true("Suspended"), namespace=NAMESPACE, timeout=60)
                shot.save(
                    "suspended", "suspended.yaml", "spec.suspend: nothing new is sent: Suspended"
                )
                wait(
                    BT, "awaiting-approval",
                    lambda o: "AwaitingApproval" in str(o.get("status", {}).get("conditions")),
                    namespace=NAMESPACE, timeout=60,
                )  # fmt: skip
                shot.save(
                    "awaiting-approval",
                    "awaiting-approval.yaml",
                    "spec.requireApproval: the plan and its digest are written, nothing sent",
                )
                wait(BT, "stalled", true("Stalled"), namespace=NAMESPACE, timeout=60)
                shot.save("stalled", "stalled.yaml", "The Secret it names does not exist: Stalled")
                wait(BT, "changed-after-finish", true("Complete"), namespace=NAMESPACE, timeout=60)

                # Mid-run: stops and deletions take 30 s now, so the run is caught with one
                # target done (already stopped) and two actions accepted and awaited.
                sim.set_timings(timings(30.0))
                for item in ("d-slow-1", "d-slow-2"):
                    sim.add_item(Kind.DEPLOYMENT, item, Status.RUNNING)
                sim.add_item(Kind.EXECUTION, "e-slow-done", Status.STOPPED)
                kube.create(bulk_termination(
                    "running", ("Deployment", "d-slow-1", "STOPPED"),
                    ("Deployment", "d-slow-2", "DELETED"), ("Execution", "e-slow-done", "STOPPED"),
                ))  # fmt: skip
                wait(
                    BT, "running",
                    lambda o: o.get("status", {}).get("active", 0) == 2
                    and o["status"].get("succeeded", 0) == 1,
                    namespace=NAMESPACE, timeout=60,
                )  # fmt: skip
                shot.save(
                    "running", "running.yaml", "Mid-run: one target done, two actions awaited"
                )

            # The operator is gone: a spec change to a finished run stays unacknowledged
            # (generation 2, status.observedGeneration 1) whatever the operator would do. The
            # CRD as written refuses every spec change, a reorder included; one installed
            # without its order rules (an older CRD) lets a reorder through.
            kube.install_crd(without_order_rules(crd))
            targets = kube.get(BT, "changed-after-finish", namespace=NAMESPACE)["spec"]["targets"]
            reorder = {"spec": {"targets": list(reversed(targets))}}
            deadline = time.monotonic() + 30
            while True:  # until the API server has the lax CRD in force
                try:
                    kube.patch(BT, "changed-after-finish", reorder, namespace=NAMESPACE)
                    break
                except KubeApiError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            shot.save(
                "changed-after-finish", "spec-changed.yaml",
                "A Complete run whose spec.targets were reordered afterwards, not yet acknowledged",
            )  # fmt: skip
            # An operator again: it acknowledges generation 2 without running it again.
            with operator(kube, workdir / "operator-2.log"):
                wait(
                    BT, "changed-after-finish",
                    lambda o: o.get("status", {}).get("observedGeneration") == 2,
                    namespace=NAMESPACE, timeout=60,
                )  # fmt: skip
                shot.save(
                    "changed-after-finish", "acknowledged.yaml",
                    "The same run once the operator acknowledged generation 2: still Complete",
                )  # fmt: skip
            kube.purge(BT, NAMESPACE)
            return shot.written
        finally:
            kube.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TESTDATA, help="folder to write into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulkterm-gitops-") as tmp:
        capture(args.out, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
