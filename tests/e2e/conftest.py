"""End to end: the real ``bulkterm operator`` (a subprocess, as in a pod) against a real
kube-apiserver + etcd and the AI API simulator, all over real HTTP(S) on 127.0.0.1.

The operator runs out of cluster **as the chart's own ServiceAccount** (a token from
``kubectl create token`` after ``helm install`` with ``watchNamespaces`` set to the test's
namespace), so every scenario also proves the chart's namespaced RBAC is enough: the API
server, not a reading of YAML, decides.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.secret_use import GRANT_ANNOTATION
from bulkterm.simulator import SimulatorThread, Timings
from tests.kube import Kube, condition, free_port
from tests.plugins.helm import Release

ROOT = Path(__file__).resolve().parents[2]


class OperatorProcess:
    """``bulkterm operator`` as a child process; start, kill and restart it like a pod."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        log_dir: Path,
        *extra: str,
        kubeconfig: Path | None = None,
        env: dict[str, str] | None = None,
        namespaced: bool = True,
        lease_namespace: str | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        #: Where its runs' Leases live: the release's namespace, as in its pod (default: the
        #: watched namespace, where the tests install the chart).
        self.lease_namespace = lease_namespace or namespace
        self.log_dir = log_dir
        self.extra = extra
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.namespaced = namespaced
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0

    def start(self) -> OperatorProcess:
        self.starts += 1
        port = free_port()
        self.health = f"http://127.0.0.1:{port}/healthz"
        self.log_path = self.log_dir / f"operator-{self.namespace}-{self.starts}.log"
        env = self.kube.env(self.kubeconfig, **self.env)
        env.pop("BULKTERM_NAMESPACES", None)
        env.setdefault("BULKTERM_LEASE_NAMESPACE", self.lease_namespace)
        # The simulators' keys are plain HTTP on loopback: allowed, as the option says.
        env.setdefault("BULKTERM_ALLOW_PLAIN_HTTP", "true")
        scope = ["--namespace", self.namespace] if self.namespaced else ["--all-namespaces"]
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulkterm.cli",
                "operator",
                *scope,
                "--liveness-endpoint",
                self.health,
                "--metrics-port",
                "0",
                "--status-interval",
                "0.5",
                "--log-format",
                "plain",
                *self.extra,
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        # On a real API server kopf lists, then watches from that list's resourceVersion, so
        # nothing created after this point is missed: healthy is enough.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited early:\n{self.log()}")
            try:
                if httpx.get(self.health, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"operator not healthy in 30 s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a node failure or OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def timings(*, stopping: float = 0.5, deletion: float = 0.5) -> Timings:
    """Quick lifecycles; tests that must catch a run mid-way slow down STOPPING."""
    return Timings(
        unknown_seconds=0.2,
        pending_seconds=0.2,
        stop_delay_seconds=0.1,
        stopping_seconds=stopping,
        deletion_seconds=deletion,
        execution_run_seconds=None,
    )


def wait_for_first_bulk_patch(sim: SimulatorThread, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sim.counters["PATCH /lm/deployments"] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("no bulk PATCH reached the simulator")
        time.sleep(0.05)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    from tests.plugins.simulator import simulator_config

    # The real service leaves bulkUpdates off by default; these runs are about the bulk path.
    with SimulatorThread(simulator_config(timings=timings(), bulk_updates=True)) as s:
        yield s


@pytest.fixture
def make_operator(
    kube: Kube, namespace: str, tmp_path: Path, install_chart: Callable[..., Release]
) -> Iterator[Callable[..., OperatorProcess]]:
    """``make_operator(*flags, env=None, values=None)``: the chart installed with
    ``watchNamespaces: [namespace]`` (plus ``values``) and an operator that runs with its
    ServiceAccount's token. Not started."""
    made: list[OperatorProcess] = []

    def make(
        *extra: str, env: dict[str, str] | None = None, values: dict[str, Any] | None = None
    ) -> OperatorProcess:
        release = install_chart(namespace, {"watchNamespaces": [namespace], **(values or {})})
        op = OperatorProcess(
            kube,
            namespace,
            tmp_path,
            *extra,
            kubeconfig=release.kubeconfig(),
            env=env,
            lease_namespace=release.namespace,
        )
        made.append(op)
        return op

    yield make
    for op in made:
        op.stop()


@pytest.fixture
def operator(make_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return make_operator().start()


def secret(
    namespace: str,
    key: dict[str, Any],
    name: str = "aicore-service-key",
    *,
    grant: str | None = None,
) -> dict[str, Any]:
    """The service-key Secret; ``grant`` names BulkTerminations in its annotation
    ``aiapi.bulkops.dev/allowed-bulkterminations`` (None: none), which counts only for an
    operator that allows name grants. Otherwise the admission policy the ``kube`` fixture
    installs vouches for every BulkTermination a test creates as admin."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if grant is not None:
        metadata["annotations"] = {GRANT_ANNOTATION: grant}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {"serviceKey": base64.b64encode(json.dumps(key).encode()).decode()},
    }


def role_for(
    kube: Kube, namespace: str, name: str, subject: dict[str, str], rules: list[dict[str, Any]]
) -> None:
    """A Role ``name`` with ``rules`` and a RoleBinding of the same name to ``subject``."""
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules,
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        }
    )


def bulk_termination(
    namespace: str, name: str, *targets: tuple[str, str, str], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "pollIntervalSeconds": 1,
            "targets": [{"kind": k, "id": i, "targetStatus": t} for k, i, t in targets],
            **spec,
        },
    }


def has_condition(type_: str, status: str = "True") -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        c = condition(obj, type_)
        return c is not None and c.get("status") == status

    return check


def start_deployment_run(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    name: str,
    count: int,
    target_status: str = "STOPPED",
    *,
    stopping: float = 3.0,
) -> list[str]:
    """``count`` RUNNING deployments (``dep-000``…) that take ``stopping`` seconds to stop, the
    Secret, and a BulkTermination ``name`` bringing them to ``target_status``; returns the
    ids once the first bulk PATCH reached the simulator."""
    sim.set_timings(timings(stopping=stopping, deletion=1.0))
    ids = [f"dep-{i:03d}" for i in range(count)]
    for i in ids:
        sim.add_item(Kind.DEPLOYMENT, i, Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, name, *[("Deployment", i, target_status) for i in ids]))
    wait_for_first_bulk_patch(sim)
    return ids
