"""End to end: the real ``bulkterm operator`` (a subprocess, as in a pod) against the emulated
Kubernetes API and the AI API simulator, all over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulkterm.simulator import SimulatorThread, Timings
from tests.kube import KubeEmulator, condition

NS = "ml-team"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """``bulkterm operator`` as a child process; start, kill and restart it like a pod."""

    def __init__(
        self, kube: KubeEmulator, log_dir: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.kube = kube
        self.log_dir = log_dir
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> OperatorProcess:
        self.starts += 1
        self.watch_mark = int(self.kube.run(lambda e: len(e._requests)))
        port = free_port()
        self.health = f"http://127.0.0.1:{port}/healthz"
        self.log_path = self.log_dir / f"operator-{self.starts}.log"
        env = {**os.environ, **self.kube.env(), **self.env}
        env.pop("BULKTERM_NAMESPACES", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulkterm.cli",
                "operator",
                "--namespace",
                NS,
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited early:\n{self.log()}")
            try:
                healthy = httpx.get(self.health, timeout=1).status_code == 200
            except httpx.HTTPError:
                healthy = False
            # Healthy is not enough: objects created before kopf's watch is up would only be
            # seen after its next re-list. Wait for the watch request itself.
            if healthy and self.watching():
                return self
            time.sleep(0.1)
        raise TimeoutError(f"operator not healthy in 30 s:\n{self.log()}")

    def watching(self) -> bool:
        since = self.watch_mark

        def seen(emulator: Any) -> bool:
            return any(
                "bulkterminations" in str(r.url.path) and r.url.query.get("watch") in ("true", "1")
                for r in list(emulator._requests)[since:]
            )

        return bool(self.kube.run(seen))

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

    with SimulatorThread(simulator_config(timings=timings())) as s:
        yield s


@pytest.fixture(autouse=True)
def namespace(kube: KubeEmulator) -> str:
    """The namespace exists before the operator starts, as in a cluster."""
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return NS


@pytest.fixture
def operator(kube: KubeEmulator, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube, tmp_path).start()
    yield op
    op.stop()


@pytest.fixture
def make_operator(kube: KubeEmulator, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    made: list[OperatorProcess] = []

    def make(*extra: str, env: dict[str, str] | None = None) -> OperatorProcess:
        op = OperatorProcess(kube, tmp_path, *extra, env=env)
        made.append(op)
        return op

    yield make
    for op in made:
        op.stop()


def secret(key: dict[str, Any], name: str = "aicore-service-key") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": "Opaque",
        "data": {"serviceKey": base64.b64encode(json.dumps(key).encode()).decode()},
    }


def bulk_termination(name: str, *targets: tuple[str, str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": NS},
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
