"""``Kube``: test helpers that talk to a real API server like any client (HTTPS, admin cert).

Resources are found by discovery, as kubectl finds them: ``bt``, ``bulkterminations``,
``BulkTermination``, ``secrets``, ``v1/events``, ``rbac.authorization.k8s.io/v1/roles``.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bulkterm.k8s.secret_use import ACTIVATION_SECONDS, policy_manifests
from tests.kube.controlplane import ControlPlane

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class KubeApiError(Exception):
    """A non-2xx answer (``.status``, ``.body`` as parsed JSON)."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body

    @property
    def causes(self) -> list[dict[str, str]]:
        details = self.body.get("details") if isinstance(self.body, dict) else None
        return list((details or {}).get("causes") or [])


@dataclass(frozen=True)
class Resolved:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class Kube:
    """Admin access to a :class:`ControlPlane`, plus kubectl with the same identity."""

    def __init__(self, plane: ControlPlane, workdir: Path) -> None:
        self.plane = plane
        self.workdir = workdir
        self.kubeconfig_path = plane.kubeconfig_path
        self.cache_dir = workdir / "kubectl-cache"
        context = ssl.create_default_context(cafile=str(plane.pki / "ca.crt"))
        context.load_cert_chain(str(plane.pki / "admin.crt"), str(plane.pki / "admin.key"))
        self._client = httpx.Client(base_url=plane.url, verify=context, timeout=30)
        self._resources: builtins.list[Resolved] = []

    @property
    def url(self) -> str:
        return self.plane.url

    def close(self) -> None:
        self._client.close()

    # --- clients ---------------------------------------------------------------------------------

    def env(self, kubeconfig: Path | None = None, **extra: str) -> dict[str, str]:
        """Environment for subprocesses (the operator, kubectl, helm, the project CLI)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        return {
            **env,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig_path),
            "KUBECACHEDIR": str(self.cache_dir),
            **extra,
        }

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl against this server with its own discovery cache (admin unless told)."""
        command = [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig_path),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def token_kubeconfig(
        self, service_account: str, namespace: str, *, duration: str = "1h"
    ) -> Path:
        """A kubeconfig holding a fresh token of a ServiceAccount (``kubectl create token``)."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={duration}",
            check=True,
        ).stdout.strip()  # fmt: skip
        path = self.workdir / f"{namespace}.{service_account}.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                self.plane.kubeconfig(
                    user={"token": token}, namespace=namespace, name=service_account
                )
            )
        )
        path.chmod(0o600)
        return path

    # --- HTTP helpers ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; returns parsed JSON or raises :class:`KubeApiError`."""
        content: bytes | None = None
        if body is not None:
            text = yaml.safe_dump(body) if content_type.endswith("yaml") else json.dumps(body)
            content = text.encode()
        for _ in range(50):
            response = self._client.request(
                method, path, content=content, params=params, headers={"Content-Type": content_type}
            )
            # A CRD's storage answers 429 for a moment after the CRD is created or updated.
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 0.2), 1.0))
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code >= 400:
            raise KubeApiError(response.status_code, data)
        return data

    def _discover(self) -> builtins.list[Resolved]:
        found: builtins.list[Resolved] = []

        def add(group: str, version: str, data: dict[str, Any]) -> None:
            for r in data.get("resources", []):
                if "/" in r["name"]:
                    continue
                found.append(Resolved(group, version, r["name"], r["kind"], r["namespaced"]))
                for short in r.get("shortNames") or []:
                    found.append(Resolved(group, version, short, r["kind"], r["namespaced"]))

        add("", "v1", self.request("GET", "/api/v1"))
        for group in self.request("GET", "/apis")["groups"]:
            for version in group["versions"]:
                gv = version["groupVersion"]
                add(group["name"], version["version"], self.request("GET", f"/apis/{gv}"))
        return found

    def resolve(self, resource: str) -> Resolved:
        """``bt``, ``bulkterminations``, ``BulkTermination``, ``v1/events``, ``group/v/plural``."""
        prefix, _, name = resource.rpartition("/")
        for attempt in range(2):
            if attempt or not self._resources:
                self._resources = self._discover()
            for r in self._resources:
                if prefix and prefix != r.api_version:
                    continue
                if name.lower() in (r.plural, r.kind.lower()):
                    short = [x for x in self._resources if x.kind == r.kind and x.group == r.group]
                    plural = max(short, key=lambda x: len(x.plural)).plural
                    return Resolved(r.group, r.version, plural, r.kind, r.namespaced)
        raise KeyError(f"the server does not serve {resource!r}")

    def path(
        self,
        resource: str,
        name: str | None = None,
        *,
        namespace: str | None = "default",
        subresource: str | None = None,
    ) -> str:
        res = self.resolve(resource)
        base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        if res.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{res.plural}"
        if name is not None:
            base += f"/{name}"
        if subresource is not None:
            base += f"/{subresource}"
        return base

    # --- CRUD ----------------------------------------------------------------------------------------

    def install_crd(self, crd: Mapping[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Create or replace a CRD and wait until it is Established and served."""
        name = crd["metadata"]["name"]
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        try:
            self.request("POST", path, body=dict(crd))
        except KubeApiError as e:
            if e.status != 409:
                raise
            current = self.request("GET", f"{path}/{name}")
            body = {
                **crd,
                "metadata": {
                    **crd["metadata"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                },
            }
            self.request("PUT", f"{path}/{name}", body=body)
        deadline = time.monotonic() + timeout
        while True:
            current = self.request("GET", f"{path}/{name}")
            conditions = {
                c["type"]: c["status"]
                for c in (current.get("status") or {}).get("conditions") or []
            }
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established: {conditions}")
            time.sleep(0.1)
        self._resources = []
        return dict(current)

    def create(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Create an object; the resource is found from ``apiVersion`` and ``kind``."""
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or "default"
        api_version = body.get("apiVersion", "")
        path = self.path(f"{api_version}/{body['kind']}", namespace=namespace)
        params = {"dryRun": "All"} if dry_run else None
        return dict(self.request("POST", path, body=dict(body), params=params))

    def install_secret_use_policy(self) -> float:
        """The chart's admission policy for Secret use, under its default name
        (:func:`bulkterm.k8s.secret_use.policy_manifests`); returns the ``time.monotonic()``
        from which an operator trusts it for BulkTerminations created then (creation
        timestamps are whole seconds, hence the extra one)."""
        made = time.monotonic()
        for manifest in policy_manifests():
            self.create(manifest, namespace="")
        return made + ACTIVATION_SECONDS + 1.0

    def create_namespace(self, name: str) -> None:
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def get(self, resource: str, name: str, *, namespace: str = "default") -> dict[str, Any]:
        return dict(self.request("GET", self.path(resource, name, namespace=namespace)))

    def get_or_none(
        self, resource: str, name: str, *, namespace: str = "default"
    ) -> dict[str, Any] | None:
        try:
            return self.get(resource, name, namespace=namespace)
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def list(
        self, resource: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        data = self.request("GET", self.path(resource, namespace=namespace), params=params)
        return list(data["items"])

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "default",
        subresource: str | None = None,
        patch_type: str = "merge",
    ) -> dict[str, Any]:
        """``patch_type``: ``merge`` (default), ``json`` or ``apply``."""
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "apply": "application/apply-patch+yaml",
        }[patch_type]
        path = self.path(resource, name, namespace=namespace, subresource=subresource)
        return dict(
            self.request(
                "PATCH",
                path,
                body=patch,
                content_type=content_type,
                params={"fieldManager": "tests"} if patch_type == "apply" else None,
            )
        )

    def patch_status(
        self, resource: str, name: str, status: Mapping[str, Any], *, namespace: str = "default"
    ) -> dict[str, Any]:
        return self.patch(
            resource, name, {"status": dict(status)}, namespace=namespace, subresource="status"
        )

    def delete(
        self, resource: str, name: str, *, namespace: str = "default"
    ) -> dict[str, Any] | None:
        """Delete (or mark for deletion when finalizers hold it); ``None`` if absent."""
        try:
            return dict(self.request("DELETE", self.path(resource, name, namespace=namespace)))
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def remove_finalizers(
        self, resource: str, name: str, *, namespace: str = "default"
    ) -> dict[str, Any] | None:
        try:
            return self.patch(
                resource, name, {"metadata": {"finalizers": None}}, namespace=namespace
            )
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def purge(self, resource: str, namespace: str) -> None:
        """Delete every object of a resource in a namespace, finalizers or not (there is no
        namespace controller here to do it)."""
        for obj in self.list(resource, namespace=namespace):
            name = obj["metadata"]["name"]
            self.remove_finalizers(resource, name, namespace=namespace)
            self.delete(resource, name, namespace=namespace)

    def wait_for(
        self,
        resource: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        namespace: str = "default",
        timeout: float = 10,
        interval: float = 0.1,
    ) -> dict[str, Any]:
        """Poll until the object exists and ``predicate(obj)`` holds; return it."""
        deadline = time.monotonic() + timeout
        while True:
            last = self.get_or_none(resource, name, namespace=namespace)
            if last is not None and predicate(last):
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{resource}/{name} did not satisfy the condition in {timeout}s; "
                    f"last seen: {last}"
                )
            time.sleep(interval)

    def wait_gone(
        self, resource: str, name: str, *, namespace: str = "default", timeout: float = 10
    ) -> None:
        deadline = time.monotonic() + timeout
        while self.get_or_none(resource, name, namespace=namespace) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{resource}/{name} still exists after {timeout}s")
            time.sleep(0.1)

    def events(
        self, *, namespace: str | None = None, involved: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Core v1 Events, optionally only those about the object named ``involved``."""
        items = self.list("v1/events", namespace=namespace)
        return [
            e
            for e in items
            if involved is None or e.get("involvedObject", {}).get("name") == involved
        ]


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of a type, if present."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None
