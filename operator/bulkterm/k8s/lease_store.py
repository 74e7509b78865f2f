"""Where a run's Lease is kept: what it records, and its reads and writes on the API server.

:class:`~bulkterm.k8s.leases.RunLease` decides when to take, renew and give up a Lease; this
module only stores it. The store says two things besides the record: :class:`LeaseConflict`
(someone else wrote the Lease since it was read: a lost race) and :class:`LeaseForbidden`
(RBAC does not let the operator hold Leases in the namespace).

The Lease calls are Kubernetes API calls like any other, so :class:`KubeLeaseStore` makes them
through the process's :class:`~bulkterm.k8s.kubeapi.ApiWeather`: an API server that is away is
waited for (and reported once for the whole process), a 401/403 while it warms up after an
outage too, and :func:`~bulkterm.k8s.kubeapi.without_waiting` makes a call once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.kubeapi import ApiWeather
from bulkterm.spec import API_GROUP, API_VERSION, KIND

#: Annotation on the Lease naming the CR's uid: a Lease left by a deleted CR of the same name
#: (before the garbage collector removed it) is not this run's.
UID_ANNOTATION = f"{API_GROUP}/bulktermination-uid"
#: (connect, read) seconds of each attempt: a renewal must not hang longer than the lease lasts.
LEASE_REQUEST_TIMEOUT = (2.0, 5.0)


@dataclass
class LeaseRecord:
    """The parts of a Lease the operator reads and writes."""

    holder: str | None
    renew_time: datetime | None
    duration: float
    resource_version: str | None = None
    cr_uid: str | None = None
    transitions: int = 0
    acquire_time: datetime | None = None

    def expired(self, now: datetime) -> bool:
        if not self.holder or self.renew_time is None:
            return True
        return now >= self.renew_time + timedelta(seconds=self.duration)


@dataclass(frozen=True)
class Owner:
    """The CR the Lease belongs to (its ownerReference: deleted with it)."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
        }


class LeaseConflict(Exception):
    """The Lease changed (or appeared) since it was read: someone else wrote it."""


class LeaseForbidden(Exception):
    """RBAC does not let the operator write Leases in the namespace: no run may start there
    (running without the lease would give up the guarantee it exists for)."""


class LeaseStore(Protocol):
    """Lease reads and writes; each raises :class:`LeaseConflict` on a lost race,
    :class:`LeaseForbidden` when RBAC refuses Leases, and anything else when the API server
    refused the call or could not be reached (the caller tries again later)."""

    async def read(self, namespace: str, name: str) -> LeaseRecord | None: ...

    async def create(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str: ...

    async def replace(
        self, namespace: str, name: str, record: LeaseRecord, owner: Owner
    ) -> str: ...

    async def delete(self, namespace: str, name: str, resource_version: str) -> None: ...


def _micro_time(value: datetime | None) -> str | None:
    """A Lease's MicroTime (RFC 3339 with microseconds, UTC)."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLeaseStore:
    """:class:`LeaseStore` over ``coordination.k8s.io/v1``, each call through ``weather``, the
    outage policy of the other calls over ``api_client`` (``KubeApi.weather``)."""

    def __init__(self, api_client: Any, *, weather: ApiWeather | None = None) -> None:
        self._api = k8s.CoordinationV1Api(api_client)
        self._weather = weather or ApiWeather()

    @staticmethod
    def _body(name: str, record: LeaseRecord, owner: Owner) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "annotations": {UID_ANNOTATION: record.cr_uid} if record.cr_uid else {},
            "labels": {"app.kubernetes.io/managed-by": "bulk-termination-operator"},
        }
        metadata["ownerReferences"] = [owner.reference()]
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": max(1, round(record.duration)),
                "acquireTime": _micro_time(record.acquire_time),
                "renewTime": _micro_time(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._weather.call(
                what, fn, *args, _request_timeout=LEASE_REQUEST_TIMEOUT, **kwargs
            )
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict(str(exc.reason)) from None
            if exc.status == 403:
                raise LeaseForbidden(
                    "the operator may not read or write Leases (coordination.k8s.io) in this "
                    "namespace; each run holds one so that two operators never both send "
                    "(grant get, create, update and delete on leases: the chart does)"
                ) from None
            raise

    async def read(self, namespace: str, name: str) -> LeaseRecord | None:
        try:
            lease = await self._call("read Lease", self._api.read_namespaced_lease, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        spec = lease.spec
        annotations = lease.metadata.annotations or {}
        return LeaseRecord(
            holder=spec.holder_identity or None,
            renew_time=spec.renew_time,
            acquire_time=spec.acquire_time,
            duration=float(spec.lease_duration_seconds or 0),
            resource_version=lease.metadata.resource_version,
            cr_uid=annotations.get(UID_ANNOTATION),
            transitions=int(spec.lease_transitions or 0),
        )

    async def create(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        created = await self._call(
            "create Lease",
            self._api.create_namespaced_lease,
            namespace,
            self._body(name, record, owner),
        )
        return str(created.metadata.resource_version)

    async def replace(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        # A PUT replaces the whole object: the owner goes in again, or the Lease would outlive
        # its CR.
        replaced = await self._call(
            "replace Lease",
            self._api.replace_namespaced_lease,
            name,
            namespace,
            self._body(name, record, owner),
        )
        return str(replaced.metadata.resource_version)

    async def delete(self, namespace: str, name: str, resource_version: str) -> None:
        options = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(resource_version=resource_version or None)
        )
        try:
            await self._call(
                "delete Lease", self._api.delete_namespaced_lease, name, namespace, body=options
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
