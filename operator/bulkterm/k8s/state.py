"""What the handlers of one operator process share, handed to them by kopf as ``memo``.

kopf gives every handler a ``memo``: the one passed to ``kopf.run`` for the operator's own
activities (login, startup), a shallow copy of it per resource for the resource handlers. So
the parts that must be one per process (the Kubernetes API client, the AI API client pool, the
set of runs in this process) are objects the copies share, made once at start-up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.kubeapi import KubeApi
from bulkterm.k8s.leases import LeaseNamespace, holder_identity, lease_namespace
from bulkterm.k8s.secret_use import AdmissionNames


@dataclass
class Login:
    """What the login handler remembers between its calls."""

    #: The credentials the last login handed kopf.
    credentials: Any = None
    #: Set when the API server no longer accepts the operator's credentials (None: not run
    #: by ``run_operator``, the login hands kopf what it finds, as kopf's own would).
    refused: bool | None = None


@dataclass
class OperatorState:
    """The operator process's state, as kopf's ``memo``."""

    config: OperatorConfig = field(default_factory=OperatorConfig)
    #: Who this process is in the Leases of its runs (``bulkterm.k8s.leases``).
    holder: str = field(default_factory=holder_identity)
    #: Where the runs' Leases live, and why there (set by ``start``).
    leases: LeaseNamespace | None = None
    #: The task deleting Leases that crashes left behind (``leases.sweep_forever``).
    lease_sweeper: asyncio.Task[None] | None = None
    #: uids of the BulkTerminations whose run (the ``reconcile`` daemon) is in this process: a
    #: spec change during the run is that run's to acknowledge (``StatusWriter.finish``).
    running: set[str] = field(default_factory=set)
    login: Login = field(default_factory=Login)
    _kube: KubeApi | None = None
    _clients: ClientPool | None = None

    @property
    def kube(self) -> KubeApi:
        if self._kube is None:
            raise RuntimeError("the operator has not started (OperatorState.start)")
        return self._kube

    @property
    def clients(self) -> ClientPool:
        """AI API clients of every CR in this process: one token cache and one rate limit per
        tenant."""
        if self._clients is None:
            raise RuntimeError("the operator has not started (OperatorState.start)")
        return self._clients

    def start(self) -> None:
        """Make the process-wide clients (before kopf copies this memo for any resource)."""
        if self._kube is None:
            self._kube = KubeApi(
                admission=AdmissionNames(
                    self.config.admission_policy, self.config.admission_binding
                ),
                allow_name_grants=self.config.allow_name_grants,
            )
        if self._clients is None:
            self._clients = ClientPool.for_config(self.config)
        if self.leases is None:
            self.leases = lease_namespace(self.config.lease_namespace)

    @property
    def lease_namespace(self) -> str:
        """The namespace of the runs' Leases (the operator's own, see ``leases``)."""
        if self.leases is None:
            raise RuntimeError("the operator has not started (OperatorState.start)")
        return self.leases.name
