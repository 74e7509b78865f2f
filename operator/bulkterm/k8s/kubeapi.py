"""The few Kubernetes API calls the operator makes besides kopf's own: read a Secret, write
``/status``, delete a finished CR.

The sync ``kubernetes`` client runs in a worker thread; the configuration is loaded explicitly
(in-cluster, else ``KUBECONFIG``) when the operator starts, because the package reads
``KUBECONFIG`` at import time and tests point it elsewhere later.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from bulkterm.spec import API_GROUP, API_VERSION, PLURAL


class SecretProblem(Exception):
    """The credentials Secret cannot be used; ``reason`` is a CamelCase status reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class KubeApi:
    """Thin async wrapper over the sync client for the calls the handlers need."""

    def __init__(self, api_client: k8s.ApiClient | None = None) -> None:
        self._client = api_client or _load_client()
        self._core = k8s.CoreV1Api(self._client)
        self._custom = k8s.CustomObjectsApi(self._client)

    async def read_secret_value(self, namespace: str, name: str, key: str) -> bytes:
        """The bytes under ``key`` of Secret ``namespace/name``; never logs or returns metadata."""
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretProblem(
                    "SecretNotFound", f"Secret {namespace}/{name} does not exist"
                ) from None
            if exc.status == 403:
                raise SecretProblem(
                    "SecretForbidden", f"the operator may not read Secret {namespace}/{name}"
                ) from None
            raise SecretProblem(
                "SecretUnreadable", f"reading Secret {namespace}/{name} failed (HTTP {exc.status})"
            ) from None
        data = secret.data or {}
        if key not in data:
            string_data = secret.string_data or {}
            if key in string_data:
                return str(string_data[key]).encode()
            raise SecretProblem(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        try:
            return base64.b64decode(data[key], validate=True)
        except (ValueError, TypeError):
            raise SecretProblem(
                "InvalidServiceKey", f"Secret {namespace}/{name} key {key!r} is not valid base64"
            ) from None

    async def resource_served(self) -> bool:
        """Whether discovery lists BulkTerminations (discovery needs no RBAC grant)."""

        def discover() -> bool:
            try:
                found = self._custom.get_api_resources(API_GROUP, API_VERSION)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return any(r.name == PLURAL for r in found.resources or [])

        return await asyncio.to_thread(discover)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(
                self._custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def _load_client() -> k8s.ApiClient:
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return k8s.ApiClient(configuration)
