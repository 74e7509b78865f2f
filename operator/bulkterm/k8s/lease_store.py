"""Where a run's Lease is kept: what it records, and its reads and writes on the API server.

:class:`~bulkterm.k8s.leases.RunLease` decides when to take, renew and give up a Lease, and
:func:`~bulkterm.k8s.leases.sweep_leases` which ones were left behind; this module only stores
them. The store says two things besides the record: :class:`LeaseConflict` (someone else wrote
the Lease since it was read: a lost race) and :class:`LeaseForbidden` (RBAC does not let the
operator hold Leases in the namespace).

The Leases live in the operator's own namespace, not the BulkTermination's, so they carry no
ownerReference (one cannot point across namespaces): the BulkTermination they belong to is
named by annotations (namespace, name, uid: the exact values) and by labels (the same, a long
name hashed down to a label value), so ``kubectl get leases -l`` finds a CR's Lease.

The Lease calls are Kubernetes API calls like any other, so :class:`KubeLeaseStore` makes them
through the process's :class:`~bulkterm.k8s.kubeapi.ApiWeather`: an API server that is away is
waited for (and reported once for the whole process), a 401/403 while it warms up after an
outage too, and :func:`~bulkterm.k8s.kubeapi.without_waiting` makes a call once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.kubeapi import ApiWeather
from bulkterm.spec import API_GROUP, API_VERSION, PLURAL

#: Annotation on the Lease naming the CR's uid: a Lease left by a deleted CR of the same name
#: is not this run's.
UID_ANNOTATION = f"{API_GROUP}/bulktermination-uid"
#: Annotations naming the CR's namespace and name, exactly (labels may hold a hash of a name).
NAMESPACE_ANNOTATION = f"{API_GROUP}/bulktermination-namespace"
NAME_ANNOTATION = f"{API_GROUP}/bulktermination-name"
#: Labels with the same three (for ``kubectl get leases -l``): label values are at most 63
#: characters, so a longer name is hashed down (:func:`label_value`).
UID_LABEL = UID_ANNOTATION
NAMESPACE_LABEL = NAMESPACE_ANNOTATION
NAME_LABEL = NAME_ANNOTATION
MANAGED_BY = {"app.kubernetes.io/managed-by": "bulk-termination-operator"}
#: The Leases of runs, and nothing else of the namespace (a Lease of kube's leader elections,
#: another release's own objects).
RUN_LEASES_SELECTOR = f"app.kubernetes.io/managed-by=bulk-termination-operator,{UID_LABEL}"
#: (connect, read) seconds of each attempt: a renewal must not hang longer than the lease lasts.
LEASE_REQUEST_TIMEOUT = (2.0, 5.0)


@dataclass
class LeaseRecord:
    """The parts of a Lease the operator reads and writes."""

    holder: str | None
    renew_time: datetime | None
    duration: float
    resource_version: str | None = None
    #: The uid of the BulkTermination the Lease names (as read; a write names its ``Owner``).
    cr_uid: str | None = None
    transitions: int = 0
    acquire_time: datetime | None = None

    def expired(self, now: datetime) -> bool:
        if not self.holder or self.renew_time is None:
            return True
        return now >= self.renew_time + timedelta(seconds=self.duration)


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 characters, alphanumeric at both ends): as it is
    when it fits, else cut and suffixed with a hash of the whole, as Lease names are."""
    if len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: 63 - 17].rstrip('.-_')}-{digest}"


@dataclass(frozen=True)
class Owner:
    """The BulkTermination the Lease belongs to (named on the Lease, which lives elsewhere)."""

    namespace: str
    name: str
    uid: str

    def labels(self) -> dict[str, str]:
        return {
            NAMESPACE_LABEL: label_value(self.namespace),
            NAME_LABEL: label_value(self.name),
            UID_LABEL: label_value(self.uid),
        }

    def annotations(self) -> dict[str, str]:
        return {
            NAMESPACE_ANNOTATION: self.namespace,
            NAME_ANNOTATION: self.name,
            UID_ANNOTATION: self.uid,
        }

    @classmethod
    def named_in(cls, annotations: dict[str, str]) -> Owner | None:
        """The BulkTermination a Lease's annotations name, or None if they name none."""
        namespace = annotations.get(NAMESPACE_ANNOTATION)
        name = annotations.get(NAME_ANNOTATION)
        uid = annotations.get(UID_ANNOTATION)
        if not (namespace and name and uid):
            return None
        return cls(namespace=namespace, name=name, uid=uid)


@dataclass(frozen=True)
class StoredLease:
    """A run's Lease as listed: its name, its record and the BulkTermination it names."""

    name: str
    record: LeaseRecord
    owner: Owner | None


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

    async def list(self, namespace: str) -> list[StoredLease]:
        """The runs' Leases in ``namespace`` (no other Lease of it)."""
        ...

    async def bulktermination_uid(self, namespace: str, name: str) -> str | None:
        """The uid of BulkTermination ``namespace/name`` now; None if there is none."""
        ...


def _micro_time(value: datetime | None) -> str | None:
    """A Lease's MicroTime (RFC 3339 with microseconds, UTC)."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLeaseStore:
    """:class:`LeaseStore` over ``coordination.k8s.io/v1``, each call through ``weather``, the
    outage policy of the other calls over ``api_client`` (``KubeApi.weather``)."""

    def __init__(self, api_client: Any, *, weather: ApiWeather | None = None) -> None:
        self._api = k8s.CoordinationV1Api(api_client)
        self._weather = weather or ApiWeather()
        self._custom = k8s.CustomObjectsApi(api_client)

    @staticmethod
    def _body(name: str, record: LeaseRecord, owner: Owner) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "annotations": owner.annotations(),
            "labels": {**MANAGED_BY, **owner.labels()},
        }
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
                    "the operator may not read or write Leases (coordination.k8s.io) in its "
                    "lease namespace; each run holds one so that two operators never both send "
                    "(grant get, create, update, delete and list on leases there: the chart's "
                    "Role in the release namespace does)"
                ) from None
            raise

    async def read(self, namespace: str, name: str) -> LeaseRecord | None:
        try:
            lease = await self._call("read Lease", self._api.read_namespaced_lease, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _record(lease)

    async def create(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        created = await self._call(
            "create Lease",
            self._api.create_namespaced_lease,
            namespace,
            self._body(name, record, owner),
        )
        return str(created.metadata.resource_version)

    async def replace(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        # A PUT replaces the whole object: the owner's names go in again, or the sweep could
        # no longer tell whose Lease it is.
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

    async def list(self, namespace: str) -> list[StoredLease]:
        found: list[StoredLease] = []
        token: str | None = None
        while True:
            page = await self._call(
                "list Leases",
                self._api.list_namespaced_lease,
                namespace,
                label_selector=RUN_LEASES_SELECTOR,
                limit=500,
                _continue=token,
            )
            for lease in page.items or []:
                annotations = lease.metadata.annotations or {}
                found.append(
                    StoredLease(lease.metadata.name, _record(lease), Owner.named_in(annotations))
                )
            token = page.metadata._continue if page.metadata else None
            if not token:
                return found

    async def bulktermination_uid(self, namespace: str, name: str) -> str | None:
        # A list by name, not a GET: the operator's RBAC lists BulkTerminations (kopf watches
        # them) and has no reason to GET one.
        answer = await self._weather.call(
            "list BulkTerminations",
            self._custom.list_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            _request_timeout=LEASE_REQUEST_TIMEOUT,
        )
        items = answer.get("items") if isinstance(answer, dict) else None
        for item in items or []:
            uid = (item.get("metadata") or {}).get("uid")
            if uid:
                return str(uid)
        return None


def _record(lease: Any) -> LeaseRecord:
    """The record of a ``V1Lease`` as read from the API server."""
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
