"""Fakes and helpers for the per-CR flow without Kubernetes: a Secret store and status sink
(``FakeKube``), an event sink (``FakeEvents``), spec builders and runners. The engine and the
AI API (the simulator, over HTTP) are real."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import EngineSettings
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.leases import RunLease
from bulkterm.k8s.reconciler import CrRef, LiveObject, Reconciler
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.k8s.secret_use import (
    GRANT_ANNOTATION,
    AdmissionTrust,
    Requester,
    SecretProblem,
    check_secret_use,
)
from bulkterm.simulator import Simulator, Timings
from bulkterm.simulator.python_api import SimulatorControls

NS = "ml-team"
#: Admission in force long before any CR a test makes.
TRUSTED = AdmissionTrust(datetime(2020, 1, 1, tzinfo=UTC))
REF = CrRef(namespace=NS, name="cleanup", generation=3, created=datetime.now(UTC))
FAST = EngineSettings(max_poll_seconds=0.2, resend_timeout_seconds=5)


class FakeKube:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.annotations: dict[tuple[str, str], dict[str, str]] = {}
        self.writes: list[dict[str, Any]] = []
        self.api_calls_at_write: list[int] = []
        #: AI API writes (PATCH, DELETE) the simulator had received when each status landed.
        self.sends_at_write: list[int] = []
        #: The CR's ``metadata.generation`` as the API server's answers to status writes show
        #: it (None: answers without it, as before the operator read them).
        self.generation: int | None = None
        #: What the admission policy vouches for (:mod:`bulkterm.k8s.secret_use`), and
        #: whether a name grant counts where it does not.
        self.trust = TRUSTED
        self.allow_name_grants = False

    @classmethod
    def with_key(cls, sim: Simulator) -> FakeKube:
        kube = cls(sim)
        kube.put_secret("aicore", "serviceKey", sim.service_key())
        return kube

    def put_secret(
        self, name: str, key: str, value: bytes | dict[str, Any], *, grant: str | None = None
    ) -> None:
        """A Secret in :data:`NS`, granted to BulkTerminations by name by ``grant`` (None: no
        name grant; it counts only with ``allow_name_grants``)."""
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.secrets[(NS, name)] = {key: raw}
        self.annotations[(NS, name)] = {} if grant is None else {GRANT_ANNOTATION: grant}

    async def admission_trust(self) -> AdmissionTrust:
        return self.trust

    async def read_secret_value(
        self,
        namespace: str,
        name: str,
        key: str,
        *,
        requester: Requester | None = None,
        use: SecretUse | None = None,
    ) -> bytes:
        """As :meth:`bulkterm.k8s.kubeapi.KubeApi.read_secret_value` decides, who and for
        what included."""
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretProblem("SecretNotFound", f"Secret {namespace}/{name} does not exist")
        notes = self.annotations.get((namespace, name))
        check_secret_use(
            notes,
            namespace,
            name,
            requester,
            use,
            trust=self.trust,
            allow_name_grants=self.allow_name_grants,
        )
        if key not in data:
            raise SecretProblem(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        return data[key]

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int | None:
        counters = self.sim.counters
        self.api_calls_at_write.append(sum(counters.values()))
        self.sends_at_write.append(ai_api_sends(self.sim))
        self.writes.append(status)
        return self.generation

    @property
    def status(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for patch in self.writes:
            for k, v in patch.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
        return merged


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def normal(self, reason: str, message: str) -> None:
        self.posted.append(("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.posted.append(("Warning", reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.posted]

    def warnings(self) -> list[str]:
        return [r for t, r, _ in self.posted if t == "Warning"]


def ai_api_sends(sim: SimulatorControls) -> int:
    """Write requests (PATCH, DELETE) the simulator received so far."""
    return sum(n for route, n in sim.counters.items() if route.startswith(("PATCH ", "DELETE ")))


def spec(*targets: tuple[str, str, str], secret: str = "aicore", **extra: Any) -> dict[str, Any]:
    return {
        "connection": {"secretRef": {"name": secret}},
        "targets": [{"kind": k, "id": i, "targetStatus": t} for k, i, t in targets],
        **extra,
    }


def reconciler(
    kube: FakeKube,
    events: FakeEvents,
    body: dict[str, Any],
    status: dict[str, Any] | None = None,
    *,
    ref: CrRef = REF,
    clients: ClientPool | None = None,
    lease: RunLease | None = None,
    live: LiveObject | None = None,
    **config: Any,
) -> Reconciler:
    # The simulator's keys are plain HTTP on loopback: allowed here, as the option says.
    cfg = OperatorConfig(
        **{
            "status_interval": 0.2,
            "stalled_retry_seconds": 0.1,
            "allow_plain_http": True,
            **config,
        }
    )
    return Reconciler(
        ref,
        body,
        status,
        kube=kube,
        events=events,
        config=cfg,
        engine_settings=FAST,
        clients=clients,
        lease=lease,
        live=live,
    )


async def run_for(seconds: float, rec: Reconciler) -> None:
    """Run ``rec`` for ``seconds``, then stop it as kopf does (the stop event), and wait."""
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


MIXED = (
    ("Deployment", "dep-run1", "DELETED"),
    ("Deployment", "dep-run2", "STOPPED"),
    ("Deployment", "dep-unk1", "DELETED"),
    ("Execution", "exe-done", "DELETED"),
    ("Execution", "exe-dead", "STOPPED"),
)


def seed_mixed(sim: Simulator) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-run2", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-unk1", Status.UNKNOWN, hold=True)  # no race with PENDING
    sim.add_item(Kind.EXECUTION, "exe-done", Status.COMPLETED)
    sim.add_item(Kind.EXECUTION, "exe-dead", Status.DEAD)


def running_for_deletion(
    sim: Simulator,
    n: int,
    *,
    stopping: float,
    deletion: float,
    prefix: str = "dep",
    resource_group: str = "default",
) -> list[tuple[str, str, str]]:
    """``n`` RUNNING deployments bound for DELETED, with stops slow enough to catch mid-run."""
    sim.set_timings(
        Timings(
            unknown_seconds=0.1,
            pending_seconds=0.1,
            stop_delay_seconds=0.1,
            stopping_seconds=stopping,
            deletion_seconds=deletion,
        )
    )
    targets = [("Deployment", f"{prefix}-{i:04d}", "DELETED") for i in range(n)]
    for _, item_id, _ in targets:
        sim.add_item(Kind.DEPLOYMENT, item_id, Status.RUNNING, resource_group=resource_group)
    return targets
