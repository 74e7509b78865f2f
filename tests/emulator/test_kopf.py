"""An unchanged kopf operator against the emulator: create → status → delete, end to end.

Two ways to run an operator against ``kube``:

- in-process, in the test's own event loop: a fresh ``kopf.OperatorRegistry()`` whose
  ``@kopf.on.login`` returns ``kube.connection_info()`` (the ``kubernetes`` package read
  ``KUBECONFIG`` at import, so environment variables do not reach it); blocking helpers of
  ``kube`` go through ``asyncio.to_thread`` so the operator keeps running;
- as a ``kopf run`` subprocess with ``env=kube.env()`` (``KUBECONFIG`` points at the emulator).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kopf

from tests.kube import KubeEmulator, condition

GROUP, VERSION, PLURAL = "aiapi.bulkops.dev", "v1alpha1", "bulkterminations"


def bt(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BulkTermination",
        "metadata": {"name": name},
        "spec": {
            "targets": [
                {"id": "d1234", "targetStatus": "STOPPED"},
                {"id": "d5678", "targetStatus": "DELETED"},
            ]
        },
    }


def _ready(obj: dict[str, Any]) -> bool:
    cond = condition(obj, "Ready")
    return cond is not None and cond["status"] == "True"


async def test_in_process_operator(kube: KubeEmulator) -> None:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kube.login)
    daemon_log: list[str] = []

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = 20  # INFO: kopf.info() below becomes an Event
        settings.watching.server_timeout = 60

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(spec: Any, body: Any, patch: kopf.Patch, **_: Any) -> None:
        kopf.info(body, reason="Accepted", message=f"{len(spec['targets'])} targets")
        patch.status["total"] = len(spec["targets"])
        patch.status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Complete",
                "message": "done",
                "observedGeneration": 1,
            }
        ]

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=5)
    async def watcher(stopped: kopf.DaemonStopped, name: str, **_: Any) -> None:
        daemon_log.append(f"started {name}")
        await stopped.wait()
        daemon_log.append(f"stopped {name}")

    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(registry=registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    try:
        await asyncio.to_thread(kube.create, bt("run-1"))
        done = await asyncio.to_thread(kube.wait_for, "bt", "run-1", _ready)
        assert done["status"]["total"] == 2
        assert "kopf.zalando.org/KopfFinalizerMarker" in done["metadata"]["finalizers"]
        assert daemon_log == ["started run-1"]
        events = await asyncio.to_thread(kube.events, involved="run-1")
        assert ("Accepted", "2 targets") in {(e["reason"], e["message"]) for e in events}

        await asyncio.to_thread(kube.delete, "bt", "run-1")
        await asyncio.to_thread(kube.wait_gone, "bt", "run-1")  # kopf released its finalizer
        assert daemon_log == ["started run-1", "stopped run-1"]
    finally:
        stop.set()
        await asyncio.wait_for(operator, 10)


OPERATOR = """\
import kopf

@kopf.on.create("aiapi.bulkops.dev", "v1alpha1", "bulkterminations")
def created(spec, patch, **_):
    patch.status["total"] = len(spec["targets"])
    patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Complete"}]

@kopf.daemon("aiapi.bulkops.dev", "v1alpha1", "bulkterminations", cancellation_timeout=5)
async def idle(stopped, **_):
    await stopped.wait()
"""


def test_operator_subprocess(kube: KubeEmulator, tmp_path: Path) -> None:
    script = tmp_path / "operator.py"
    script.write_text(textwrap.dedent(OPERATOR), encoding="utf-8")
    process = subprocess.Popen(
        # A namespace pattern makes kopf list and watch /api/v1/namespaces as well.
        [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace=ml-*", str(script)],
        env=kube.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        kube.create(bt("run-2"), namespace="ml-team")
        done = kube.wait_for("bt", "run-2", _ready, namespace="ml-team", timeout=30)
        assert done["status"]["total"] == 2
        kube.delete("bt", "run-2", namespace="ml-team")
        kube.wait_gone("bt", "run-2", namespace="ml-team", timeout=15)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert "Handler 'created' succeeded" in output, output
    paths = kube.run(lambda emulator: {request.url.path for request in emulator})
    assert "/api/v1/namespaces" in paths  # listed and watched for the pattern
