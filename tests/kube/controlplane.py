"""A real Kubernetes control plane for the tests: etcd + kube-apiserver v1.36 on 127.0.0.1.

Why the real server and not an emulator: an emulator agrees with our own reading of
Kubernetes, so it accepted a CRD that every real API server rejects. The binaries come from
``hack/kube/build.sh`` (built once from Go modules and cached outside the clone, or taken from
``KUBEBUILDER_ASSETS``). No kubelet, scheduler or controller-manager runs: CRDs, custom
resources, Secrets, Events, RBAC, watches, TokenRequest (``kubectl create token``) and
``helm install`` all work without them. What does not happen without a controller-manager:
namespace deletion never finishes and ownerReferences are never garbage-collected, so the
fixtures delete what they made explicitly.

Everything listens on free loopback ports; etcd keeps its data in a temporary folder; the
PKI (a CA, the serving certificate, an admin client certificate in ``system:masters`` and the
service-account signing key) is made with ``openssl`` for each run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "hack" / "kube" / "build.sh"
PR_SET_PDEATHSIG = 1

# What the tests count and check on the server side: every request on BulkTerminations (the
# operator's status writes, kopf's patches), and every request made by a ServiceAccount (the
# operator as the chart's identity; a 403 here is an RBAC gap). Metadata level only: no
# request or response bodies, so Secret values never reach the audit log.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    # ResponseStarted is kept: a watch logs ResponseComplete only when it ends.
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "resources": [{"group": "aiapi.bulkops.dev"}]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started (the message says why)."""


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, however it dies (a
    killed pytest never runs its fixtures' teardown; servers must not outlive it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


#: Ports handed out for servers a test starts later: below Linux's ephemeral range (32768 on),
#: from which the kernel picks the source port of every outgoing connection and the port of
#: every bind to port 0; split in one block per pytest-xdist worker, so neither another worker
#: nor the kernel takes a port between the choice and the server's bind.
PORT_RANGE = (10_000, 32_000)
PORT_BLOCKS = 16
#: Where in its block this process starts looking: random, so that two test sessions on one
#: machine (a developer's and a helper's) rarely hand out the same port at the same moment.
_cursor = random.randrange(1 << 16)


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on, for a server started after this returns."""
    global _cursor
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low, high = PORT_RANGE
    size = (high - low) // PORT_BLOCKS
    start = low + (index % PORT_BLOCKS) * size
    for _ in range(size):
        port = start + _cursor % size
        _cursor = (_cursor + 1) % size
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ControlPlaneError(f"no free port in {start}-{start + size - 1} for {worker}")


def binaries() -> Path:
    """The folder holding ``kube-apiserver`` and ``etcd`` (built on first use, then cached)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise ControlPlaneError(
            f"hack/kube/build.sh failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    folder = Path(result.stdout.strip().splitlines()[-1])
    for name in ("kube-apiserver", "etcd"):
        if not os.access(folder / name, os.X_OK):
            raise ControlPlaneError(f"{folder / name} is missing or not executable")
    return folder


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args[:2])} failed: {result.stderr}")


def make_pki(folder: Path) -> None:
    """CA, apiserver serving cert (127.0.0.1, localhost), admin client cert, SA key pair."""
    folder.mkdir(parents=True, exist_ok=True)
    days = "2"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", days, "-subj", "/CN=bulkterm-test-ca", cwd=folder)  # fmt: skip

    def leaf(name: str, subject: str, extensions: str) -> None:
        (folder / f"{name}.ext").write_text(extensions)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", subject, cwd=folder)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", days, "-extfile",
                 f"{name}.ext", cwd=folder)  # fmt: skip

    leaf(
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    leaf(
        "admin",
        "/O=system:masters/CN=bulkterm-test-admin",
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


class ControlPlane:
    """etcd + kube-apiserver as child processes; ``start()`` waits for ``/readyz``."""

    def __init__(self, workdir: Path | None = None, bin_dir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="bulkterm-kube-"))
        self.bin_dir = bin_dir
        self.pki = self.workdir / "pki"
        self.kubeconfig_path = self.workdir / "admin.kubeconfig"
        self.port = 0
        self._procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        #: The command line of each server, in start order, for :meth:`resume`.
        self._argv: dict[str, list[str]] = {}

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> Self:
        bin_dir = self.bin_dir or binaries()
        self.bin_dir = bin_dir
        make_pki(self.pki)
        etcd_client, etcd_peer = free_port(), free_port()
        self.port = free_port()
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=bulkterm-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=bulkterm-test=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        p = self.pki
        self.audit_log = self.workdir / "audit.log"
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--authorization-mode=Node,RBAC",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/12",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
                "--audit-log-maxsize=0",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._write_kubeconfig()
        self._wait_ready(timeout)
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(
            argv,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._procs.append((name, proc, log))

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def _wait_ready(self, timeout: float) -> None:
        context = self._ssl_context()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc, log in self._procs:
                if proc.poll() is not None:
                    self.stop()
                    raise ControlPlaneError(
                        f"{name} exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
                    )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        self.stop()
        raise ControlPlaneError(f"kube-apiserver not ready in {timeout}s: {last}")

    def _write_kubeconfig(self) -> None:
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig(
            user={
                "client-certificate": str(self.pki / "admin.crt"),
                "client-key": str(self.pki / "admin.key"),
            }
        )))  # fmt: skip

    def kubeconfig(
        self, *, user: dict[str, str], namespace: str = "default", name: str = "admin"
    ) -> dict[str, object]:
        """A kubeconfig for this server with the given credentials (cert files or a token)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bulkterm-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [
                {
                    "name": name,
                    "context": {"cluster": "bulkterm-test", "user": name, "namespace": namespace},
                }
            ],
            "current-context": name,
        }

    def audit_mark(self) -> int:
        """A position in the audit log; :meth:`audit_events` reads what came after it."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audit_events(self, since: int = 0) -> list[dict[str, object]]:
        """One audit event per request logged after ``since``: its ``ResponseComplete`` stage,
        or ``ResponseStarted`` for a request still running (an open watch)."""
        with self.audit_log.open("rb") as f:
            f.seek(since)
            lines = f.read().splitlines()
        by_id: dict[str, dict[str, object]] = {}
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if event.get("stage") == "ResponseStarted":
                by_id.setdefault(event["auditID"], event)
            elif event.get("stage") in ("ResponseComplete", "Panic"):
                by_id[event["auditID"]] = event
        return list(by_id.values())

    def log(self, name: str) -> str:
        log = self.workdir / f"{name}.log"
        return log.read_text(errors="replace") if name in self._argv and log.exists() else ""

    def pause(self) -> None:
        """Stop kube-apiserver and etcd (an outage of the whole control plane) but keep the
        data, the PKI, the ports and the audit log, so :meth:`resume` brings the same cluster
        back: clients see connection refused in between."""
        self._terminate()

    def resume(self, timeout: float = 90) -> None:
        """Start etcd and kube-apiserver again after :meth:`pause`, on the same ports and data
        dir (the same cluster, the same tokens), and wait for ``/readyz``."""
        if self._procs:
            raise ControlPlaneError("resume() without pause(): the control plane is running")
        for name, argv in list(self._argv.items()):
            self._spawn(name, argv)
        self._wait_ready(timeout)

    def _terminate(self) -> None:
        # One at a time, apiserver first: signalled together, the apiserver hangs on its lost
        # etcd until it is killed.
        for _, proc, _ in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()

    def stop(self) -> None:
        self._terminate()
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
