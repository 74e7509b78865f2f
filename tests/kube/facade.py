"""``KubeEmulator``: the API emulator on a free port in its own thread, plus conveniences.

The server runs in a thread with its own event loop, so synchronous clients (the ``kubernetes``
package, kubectl subprocesses, these helpers) and an operator running in the test's own loop
all work at once. Helpers talk HTTP to the server like any client.

    with KubeEmulator(crds=["crds/bulktermination.yaml"]) as kube:
        kube.create({...})
        kube.kubectl("get", "bt", "-o", "yaml")

A kopf operator connects in-process with ``@kopf.on.login()`` returning
``kube.connection_info()``, or as a subprocess with ``env=kube.env()`` (``KUBECONFIG``).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp.web
import httpx
import yaml

from tests.kube.emulator import ApiEmulator, Resolved
from tests.kube.schema import load_yaml_docs

if TYPE_CHECKING:
    import kopf
    import kubernetes.client

T = TypeVar("T")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class KubeApiError(Exception):
    """A non-2xx answer from the emulator (``.status``, ``.body`` as parsed JSON)."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class KubeEmulator:
    """A running :class:`ApiEmulator` with a kubeconfig, kubectl and CRUD helpers."""

    def __init__(
        self,
        *,
        crds: Iterable[str | Path | Mapping[str, Any]] = (),
        validate: bool = True,
        workdir: str | Path | None = None,
        host: str = "127.0.0.1",
        **options: Any,
    ) -> None:
        """``options`` go to :class:`ApiEmulator` (``auto_namespaces``, ``event_log_limit``, …)."""
        self._crds = list(crds)
        self._options = options
        self._validate = validate
        self._host = host
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kube-emulator-"))
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self.cache_dir = self.workdir / "kubectl-cache"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._emulator: ApiEmulator | None = None
        self._client: httpx.Client | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 10) -> Self:
        self._thread = threading.Thread(target=self._main, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            raise RuntimeError("the Kubernetes emulator did not start") from self._failure
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig()), encoding="utf-8")
        self._client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        self._thread = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start()
            self._failure = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        emulator = ApiEmulator(validate=self._validate, **self._options)
        async with emulator:
            runner = aiohttp.web.ServerRunner(
                aiohttp.web.Server(emulator), shutdown_timeout=1, handle_signals=False
            )
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self._host, 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            for crd in self._crds:
                emulator.install_crd_now(_load_crd(crd))
            self._emulator = emulator
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                emulator.close_watches()
                await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def emulator(self) -> ApiEmulator:
        """The kmock handler (``.objects``, ``.resources``, DSL reactions). Prefer :meth:`run`
        to touch its state while the server is running."""
        assert self._emulator is not None, "not started"
        return self._emulator

    def run(self, fn: Callable[[ApiEmulator], T], timeout: float = 10) -> T:
        """Call ``fn(emulator)`` in the server's loop (thread-safe access to its state)."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn(self.emulator))
            except BaseException as e:
                future.set_exception(e)

        self._loop.call_soon_threadsafe(call)
        return future.result(timeout)

    # --- clients ---------------------------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "kmock", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": "kmock", "user": {}}],
            "contexts": [
                {
                    "name": "kmock",
                    "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace},
                }
            ],
            "current-context": "kmock",
        }

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for subprocesses (``kopf run``, ``kubectl``, the project CLI)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig_path),
            "KUBECACHEDIR": str(self.cache_dir),
            **extra,
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server, with its own discovery cache."""
        command = [
            KUBECTL,
            "--kubeconfig",
            str(self.kubeconfig_path),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        return subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env=env,
        )

    def connection_info(self) -> kopf.ConnectionInfo:
        """For in-process kopf: return this from an ``@kopf.on.login()`` handler."""
        import kopf

        return kopf.ConnectionInfo(server=self.url, insecure=True, default_namespace="default")

    def login(self, **_: Any) -> kopf.ConnectionInfo:
        """A ready-made login handler: ``kopf.on.login(registry=r)(kube.login)``."""
        return self.connection_info()

    def api_client(self) -> kubernetes.client.ApiClient:
        """A ``kubernetes`` client bound to this server (whatever ``KUBECONFIG`` says)."""
        import kubernetes.client

        config = kubernetes.client.Configuration(host=self.url)
        config.verify_ssl = False
        return kubernetes.client.ApiClient(config)

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
        assert self._client is not None, "not started"
        content: bytes | None = None
        if body is not None:
            text = yaml.safe_dump(body) if content_type.endswith("yaml") else json.dumps(body)
            content = text.encode()
        response = self._client.request(
            method, path, content=content, params=params, headers={"Content-Type": content_type}
        )
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code >= 400:
            raise KubeApiError(response.status_code, data)
        return data

    def resolve(self, resource: str) -> Resolved:
        """``bt``, ``bulkterminations``, ``BulkTermination``, ``secrets``, ``v1/secrets``, …"""
        return self.run(lambda emulator: emulator.find(resource))

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

    def install_crd(self, crd: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Create a CRD (from a file or a dict); its resource is served at once."""
        body = _load_crd(crd)
        try:
            return dict(
                self.request(
                    "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=body
                )
            )
        except KubeApiError as e:
            if e.status != 409:
                raise
            return self.get("customresourcedefinitions", body["metadata"]["name"])

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create an object; the resource is found from its ``kind``."""
        namespace = namespace or (body.get("metadata") or {}).get("namespace") or "default"
        path = self.path(body["kind"], namespace=namespace)
        return dict(self.request("POST", path, body=dict(body)))

    def apply_file(self, path: str | Path) -> list[dict[str, Any]]:
        """Create every document of a YAML file (no kubectl involved)."""
        return [self.create(doc) for doc in load_yaml_docs(path)]

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
    ) -> list[dict[str, Any]]:
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

    def wait_for(
        self,
        resource: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        namespace: str = "default",
        timeout: float = 10,
        interval: float = 0.05,
    ) -> dict[str, Any]:
        """Poll until the object exists and ``predicate(obj)`` holds; return it."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            last = self.get_or_none(resource, name, namespace=namespace)
            if last is not None and predicate(last):
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{resource}/{name} did not satisfy the condition in "
                    f"{timeout}s; last seen: {last}"
                )
            time.sleep(interval)

    def wait_gone(
        self, resource: str, name: str, *, namespace: str = "default", timeout: float = 10
    ) -> None:
        deadline = time.monotonic() + timeout
        while self.get_or_none(resource, name, namespace=namespace) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{resource}/{name} still exists after {timeout}s")
            time.sleep(0.05)

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


def _load_crd(crd: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(crd, Mapping):
        return dict(crd)
    docs: Sequence[dict[str, Any]] = load_yaml_docs(crd)
    found = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if len(found) != 1:
        raise ValueError(f"{crd}: expected one CustomResourceDefinition, found {len(found)}")
    return found[0]
