"""One sender per BulkTermination: a ``coordination.k8s.io`` Lease per run.

kopf's peering keeps replicas of *one* deployment from acting together, but only when it is on,
and only among operators that share a peering object. Two operators without it (``replicaCount:
2`` with peering off, two releases in one namespace watching the same one, a developer's
``bulkterm operator`` pointed at the cluster) would each run every BulkTermination: each sends, each writes status.
And after an API outage longer than the peering lifetime, two peered replicas can both believe
they are active for a moment. So each run also holds a Lease of its own:

* acquired before the run's first status write, so a second operator writes nothing at all;
  while another live holder has it, the run waits (and says so once in the log);
* renewed every :attr:`LeaseTiming.renew_every` seconds; a renewal that finds another holder
  means the run was taken over, and it stops (:class:`LeaseLost`);
* every AI API *write* waits for a fresh lease (:class:`ExclusiveApi`): renewed less than
  ``duration - margin`` seconds ago. While the API server is away nobody can renew or take the
  lease, so sends pause once it would have expired and resume when the renewal lands;
* released when the run ends or the operator stops (SIGTERM), so a successor takes over at
  once; after a SIGKILL it expires ``duration`` seconds after the last renewal.

Expiry is judged by the holder's ``renewTime`` against this process's clock, as the Lease API
intends; the clocks of a cluster's nodes agree within far less than the duration.

Where the Leases live: in one namespace, the operator's own (:func:`lease_namespace`: the
``BULKTERM_LEASE_NAMESPACE`` setting, else ``POD_NAMESPACE``, which the chart sets, else the pod's
service-account namespace file, else the kubeconfig context's namespace, else ``default``), so
the operator needs Lease rights there only (the chart's Role), never where the CRs or anybody
else's Leases are. Operators exclude each other only when they share that namespace: the
replicas of a release, and releases installed in one namespace; a developer's ``bulkterm
operator`` beside a release must be given the release's namespace. The name,
``bulktermination.<namespace>.<name>`` (:func:`lease_name`), holds the CR's namespace, so two
CRs of one name in two namespaces never share a Lease (the namespace, a DNS label, has no dot:
the name cannot be read two ways).

A Lease in another namespace cannot be owned by the CR (an ownerReference cannot cross
namespaces), so nothing garbage-collects it. It names its CR instead (namespace, name and uid,
as annotations and labels: :class:`~bulkterm.k8s.lease_store.Owner`), and:

* the run deletes it when it ends (done, failed, or stopped because the CR was deleted or the
  operator stops), as before;
* a Lease that names another uid than the run's (the CR was deleted and one of the same name
  created) is the old CR's: the new run takes it over at once;
* whatever a crash leaves behind, :func:`sweep_leases` deletes once it is stale: at start-up
  and every :data:`SWEEP_EVERY` seconds each operator lists the runs' Leases of its namespace
  and deletes each one that has **expired** (nobody renews it, so no run can be sending under
  it) **and whose CR no longer exists by uid** (none of that name, or one with another uid: uids
  are never reused, so that CR can never come back). The delete is conditional on the version
  listed, so a Lease taken again meanwhile stays. A Lease whose CR still exists is kept (a
  resumed run takes it over; one of a CR that had finished is swept once the CR is deleted);
  one whose CR this operator may not read (a namespace it does not watch) is left to the
  operator that watches it.

The Lease itself is stored by :mod:`bulkterm.k8s.lease_store`, whose calls follow the outage
policy of every Kubernetes call (:class:`~bulkterm.k8s.kubeapi.ApiWeather`): an API server that
is away is waited for inside the call. What reaches this module is what the server said (a
conflict, a refusal), or an outage when the call was made not to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from bulkterm.aiapi.base import AiApi, ForwardingApi
from bulkterm.aiapi.models import (
    BulkItemResult,
    Kind,
    TargetStatus,
)
from bulkterm.k8s.kubeapi import without_waiting
from bulkterm.k8s.lease_store import (
    KubeLeaseStore,
    LeaseConflict,
    LeaseForbidden,
    LeaseRecord,
    LeaseStore,
    Owner,
    StoredLease,
)

__all__ = [
    "ExclusiveApi",
    "KubeLeaseStore",
    "LeaseConflict",
    "LeaseForbidden",
    "LeaseLost",
    "LeaseNamespace",
    "LeaseRecord",
    "LeaseStore",
    "LeaseTiming",
    "Owner",
    "RunLease",
    "StoredLease",
    "holder_identity",
    "lease_name",
    "lease_namespace",
    "sweep_forever",
    "sweep_leases",
]

log = logging.getLogger(__name__)

LEASE_PREFIX = "bulktermination."
#: Where a pod's service account says its namespace is.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Seconds between two sweeps of the runs' Leases left behind by crashes.
SWEEP_EVERY = 300.0


def holder_identity() -> str:
    """This process: the pod's name (``HOSTNAME``) and a random suffix, so two processes in
    one pod, or a restarted container, are told apart."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{secrets.token_hex(4)}"


def lease_name(cr_namespace: str, cr_name: str) -> str:
    """``bulktermination.<namespace>.<name>``, hashed down when too long for a name (253
    characters); a DNS subdomain either way."""
    key = f"{cr_namespace}.{cr_name}"
    name = LEASE_PREFIX + key
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    # Cut where a '.' or '-' would end a part: each part of a subdomain ends alphanumeric.
    return f"{LEASE_PREFIX}{key[: 253 - len(LEASE_PREFIX) - 17].rstrip('.-')}-{digest}"


class LeaseNamespace(NamedTuple):
    """The namespace of the runs' Leases, and where that came from (said at start-up)."""

    name: str
    source: str


def lease_namespace(configured: str | None = None) -> LeaseNamespace:
    """Where this operator keeps its runs' Leases: ``configured`` (``BULKTERM_LEASE_NAMESPACE``),
    else ``POD_NAMESPACE`` (the chart sets it from the pod's own namespace), else the service
    account's namespace file (any pod), else the current kubeconfig context's namespace (a
    ``bulkterm operator`` run outside a cluster), else ``default``."""
    if configured:
        return LeaseNamespace(configured, "BULKTERM_LEASE_NAMESPACE")
    pod = os.environ.get("POD_NAMESPACE", "").strip()
    if pod:
        return LeaseNamespace(pod, "POD_NAMESPACE")
    with contextlib.suppress(OSError):
        mounted = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if mounted:
            return LeaseNamespace(mounted, str(SERVICE_ACCOUNT_NAMESPACE))
    context = _kubeconfig_namespace()
    if context:
        return LeaseNamespace(context, "the kubeconfig context")
    return LeaseNamespace("default", "no namespace configured")


def _kubeconfig_namespace() -> str | None:
    """The current kubeconfig context's namespace (``KUBECONFIG``, else ``~/.kube/config``)."""
    from kubernetes import config as k8s_config

    setting = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        _, current = k8s_config.list_kube_config_contexts(config_file=setting)  # type: ignore[no-untyped-call]
    except Exception:  # no kubeconfig, an unreadable one, no current context
        return None
    namespace = ((current or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


@dataclass(frozen=True)
class LeaseTiming:
    #: A holder that has not renewed for this long is gone (bounds failover after a SIGKILL:
    #: a standby takes a run over once both the active's peering record, 6 s by default, and
    #: this Lease have expired, so the two match).
    duration: float = 6.0
    #: One write per running run every 2 s; a renewal may take 2.5 s (``duration - margin -
    #: renew_every``) before sends pause for it.
    renew_every: float = 2.0
    #: Sends stop this long before the lease would expire without a renewal.
    margin: float = 1.5
    #: How often a run waiting for another holder looks again (one read per waiting run each
    #: time): a standby takes the run within this long of the Lease's expiry.
    retry_every: float = 0.5


class LeaseLost(Exception):
    """Another operator took this run over (or the CR went away): stop, write nothing more."""

    def __init__(self, holder: str | None) -> None:
        super().__init__(f"taken over by {holder}" if holder else "the lease was removed")
        self.holder = holder


class RunLease:
    """This process's hold on one run's Lease."""

    def __init__(
        self,
        store: LeaseStore,
        namespace: str,
        owner: Owner,
        *,
        holder: str,
        timing: LeaseTiming | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        #: Where the Lease lives (the operator's namespace, not the CR's).
        self.namespace = namespace
        self.name = lease_name(owner.namespace, owner.name)
        self._owner = owner
        self.holder = holder
        self.timing = timing or LeaseTiming()
        self._clock = clock
        self._monotonic = monotonic or asyncio.get_running_loop().time
        self._record: LeaseRecord | None = None
        #: Monotonic time of the last successful acquire or renewal.
        self._renewed_at: float | None = None
        self._lost: LeaseLost | None = None
        self._fresh = asyncio.Event()
        self._waited_on: str | None = None

    # --- acquiring ---

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Hold the Lease, waiting while another live holder has it; False if ``stop`` came
        first, also while an attempt waits for the API server. Errors are tried again every
        ``retry_every`` seconds (this runs before anything else of the run)."""
        while not stop.is_set():
            try:
                acquired = await self._attempt(stop)
                if acquired is None:
                    return False
                if acquired:
                    if self._waited_on is not None:
                        log.info(
                            "%s/%s: took over from %s",
                            self._owner.namespace,
                            self._owner.name,
                            self._waited_on,
                        )
                    return True
            except LeaseConflict:
                continue  # raced with another acquirer: read again at once
            except LeaseForbidden:
                raise
            except Exception as exc:  # refused, or the server is away: try again
                log.debug("lease %s/%s: %s", self.namespace, self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.timing.retry_every)
        return False

    async def _attempt(self, stop: asyncio.Event) -> bool | None:
        """One :meth:`_try_acquire`, given up (None) when ``stop`` comes first: the store waits
        out an API server that is away, and a stopping operator cannot wait for it. A Lease
        that such an attempt created after all is never renewed, and expires."""
        attempt = asyncio.ensure_future(self._try_acquire())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({attempt, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            attempt.cancel()
            stopped.cancel()
            await asyncio.gather(attempt, stopped, return_exceptions=True)
        return None if attempt.cancelled() else attempt.result()

    async def _try_acquire(self) -> bool:
        current = await self._store.read(self.namespace, self.name)
        # Stamped after the read, which may have waited out an outage: the record says when
        # it was written, and this process counts its freshness from the same moment.
        now, sent = self._clock(), self._monotonic()
        if current is None:
            record = self._new_record(now, transitions=0)
            record.resource_version = await self._store.create(
                self.namespace, self.name, record, self._owner
            )
            self._record = record
            self._mark_renewed(sent)
            return True
        stale = current.cr_uid is not None and current.cr_uid != self._owner.uid
        if current.holder == self.holder or stale or current.expired(now):
            transitions = current.transitions + (0 if current.holder == self.holder else 1)
            record = self._new_record(now, transitions=transitions)
            record.resource_version = current.resource_version
            if current.holder == self.holder and current.acquire_time is not None:
                record.acquire_time = current.acquire_time
            record.resource_version = await self._store.replace(
                self.namespace, self.name, record, self._owner
            )
            self._record = record
            self._mark_renewed(sent)
            return True
        if self._waited_on != current.holder:
            self._waited_on = current.holder
            log.info(
                "%s/%s: another operator (%s) is running it; waiting until it finishes or its "
                "lease expires",
                self._owner.namespace,
                self._owner.name,
                current.holder,
            )
        return False

    def _new_record(self, now: datetime, *, transitions: int) -> LeaseRecord:
        return LeaseRecord(
            holder=self.holder,
            renew_time=now,
            acquire_time=now,
            duration=self.timing.duration,
            cr_uid=self._owner.uid,
            transitions=transitions,
        )

    # --- keeping ---

    async def keep(self) -> None:
        """Renew until cancelled or lost; run as a task beside the run."""
        while self._lost is None:
            await asyncio.sleep(self.timing.renew_every if self._is_fresh() else 0.5)
            await self.renew()

    async def renew(self) -> None:
        """One renewal: a replace conditional on the version last written."""
        if self._record is None or self._lost is not None:
            return
        # Fresh from when the renewal was sent, as the renewTime it carries says: a write that
        # lands late (a slow API server, an outage waited out) must not make this process
        # count itself fresh after another operator may have taken the Lease.
        sent = self._monotonic()
        record = replace(self._record, renew_time=self._clock())
        try:
            record.resource_version = await self._store.replace(
                self.namespace, self.name, record, self._owner
            )
        except LeaseConflict:
            await self._check_taken()
            return
        except Exception as exc:  # refused, or the server is away: next time
            log.debug("renewing lease %s/%s: %s", self.namespace, self.name, exc)
            if not self._is_fresh():
                self._fresh.clear()
            return
        self._record = record
        self._mark_renewed(sent)

    async def _check_taken(self) -> None:
        try:
            current = await self._store.read(self.namespace, self.name)
        except Exception:  # cannot tell yet; the next renewal asks again
            return
        if current is None or current.holder != self.holder:
            self._lost = LeaseLost(current.holder if current else None)
            self._fresh.set()  # wake permit() waiters so that they raise
            log.warning(
                "%s/%s: the run was taken over (%s); stopping here",
                self._owner.namespace,
                self._owner.name,
                self._lost,
            )
            return
        self._record = current  # our own write whose answer was lost: carry on from it

    def _mark_renewed(self, sent: float) -> None:
        """The Lease was written with a renewTime taken at monotonic time ``sent``."""
        self._renewed_at = sent
        if self._is_fresh():
            self._fresh.set()

    def _is_fresh(self) -> bool:
        if self._renewed_at is None:
            return False
        return self._monotonic() - self._renewed_at < self.timing.duration - self.timing.margin

    async def permit(self) -> None:
        """Return when a write may go out: the lease is held and fresh. Raises
        :class:`LeaseLost` once another holder has it."""
        while True:
            if self._lost is not None:
                raise self._lost
            if self._is_fresh():
                return
            self._fresh.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fresh.wait(), self.timing.renew_every)

    # --- releasing ---

    async def release(self) -> None:
        """Give the Lease up (a successor need not wait for it to expire); best effort, once."""
        if self._record is None or self._lost is not None:
            return
        record, self._record = self._record, None
        self._renewed_at = None
        try:
            # Once, never waited for: this runs as the run ends, often while the operator
            # stops, and the Lease expires by itself anyway.
            with without_waiting():
                await self._store.delete(self.namespace, self.name, record.resource_version or "")
        except LeaseConflict:
            pass  # written since by someone else: theirs now, not ours to remove
        except Exception as exc:  # refused (a revoked token, RBAC gone), or the server is away
            # One line, no retry.
            code = getattr(exc, "status", None)
            log.warning(
                "%s/%s: lease %s/%s not released (%s%s); it expires %.0f s after its last renewal",
                self._owner.namespace,
                self._owner.name,
                self.namespace,
                self.name,
                type(exc).__name__,
                f" HTTP {code}" if code else "",
                record.duration,
            )


async def sweep_leases(
    store: LeaseStore,
    namespace: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[str]:
    """Delete the runs' Leases in ``namespace`` that a crash left behind: expired, and whose
    BulkTermination no longer exists by uid (see the module docstring). The names deleted.

    A Lease that cannot be judged (its CR unreadable: a namespace this operator does not
    watch, an outage) is left for the next sweep; :class:`LeaseForbidden` from the listing
    itself (no ``list`` on Leases) is raised."""
    deleted: list[str] = []
    for lease in await store.list(namespace):
        owner, record = lease.owner, lease.record
        if owner is None or not record.expired(clock()):
            continue
        try:
            uid = await store.bulktermination_uid(owner.namespace, owner.name)
        except Exception as exc:  # refused (not a namespace of ours), or the server is away
            log.debug("lease %s/%s: its BulkTermination unreadable: %s", namespace, lease.name, exc)
            continue
        if uid == owner.uid:
            continue  # its CR is still there: its next run takes the Lease over
        try:
            await store.delete(namespace, lease.name, record.resource_version or "")
        except LeaseConflict:
            continue  # written since it was listed: held again, not left behind
        log.info(
            "deleted lease %s/%s, left behind by BulkTermination %s/%s (uid %s), which is gone",
            namespace,
            lease.name,
            owner.namespace,
            owner.name,
            owner.uid,
        )
        deleted.append(lease.name)
    return deleted


async def sweep_forever(store: LeaseStore, namespace: str, *, every: float = SWEEP_EVERY) -> None:
    """:func:`sweep_leases` now and every ``every`` seconds, until cancelled; a failed sweep is
    tried again at the next one (RBAC without ``list`` on Leases is said once)."""
    refused = False
    while True:
        try:
            await sweep_leases(store, namespace)
        except LeaseForbidden:
            if not refused:
                log.warning(
                    "the operator may not list Leases in namespace %s: Leases left behind by a "
                    "crash are not cleaned up (grant list on leases there: the chart does)",
                    namespace,
                )
            refused = True
        except Exception as exc:  # the server is away or refused: next time
            log.debug("sweeping the leases of namespace %s: %s", namespace, exc)
        await asyncio.sleep(every)


class ExclusiveApi(ForwardingApi):
    """An :class:`~bulkterm.aiapi.base.AiApi` whose writes wait for :meth:`RunLease.permit`.

    Reads go straight through: two operators reading is harmless, and a run waiting for its
    lease must not fall behind on what it knows."""

    def __init__(self, api: AiApi, lease: RunLease) -> None:
        super().__init__(api)
        self._lease = lease

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        await self._lease.permit()
        return await super().bulk_patch(kind, items)

    async def stop(self, kind: Kind, item_id: str) -> None:
        await self._lease.permit()
        await super().stop(kind, item_id)

    async def delete(self, kind: Kind, item_id: str) -> None:
        await self._lease.permit()
        await super().delete(kind, item_id)

    async def pause_execution_schedule(self, schedule_id: str) -> None:
        await self._lease.permit()
        await super().pause_execution_schedule(schedule_id)
