"""Fixtures: an emulated Kubernetes API (kmock 0.8, completed) with the project's CRD installed.

- ``kube``: a started :class:`tests.kube.KubeEmulator` on a free 127.0.0.1 port with
  ``crds/bulktermination.yaml`` installed; stopped after the test.
- ``kubectl``: ``kubectl(*args, input=None, check=False, timeout=60)`` against ``kube``.
- ``kube_factory``: ``kube_factory(crds=(...), validate=True)`` for more or differently
  configured servers (each stopped after the test).

An operator under test connects in-process with ``kopf.on.login(registry=r)(kube.login)``, or
as a subprocess with ``env=kube.env()`` (``KUBECONFIG``/``KUBECACHEDIR`` set).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.kube import KubeEmulator

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "bulktermination.yaml"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def kube_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., KubeEmulator]]:
    started: list[KubeEmulator] = []

    def start(**kwargs: Any) -> KubeEmulator:
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("kube"))
        emulator = KubeEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def kube(kube_factory: Callable[..., KubeEmulator]) -> KubeEmulator:
    return kube_factory(crds=[CRD_PATH])


@pytest.fixture
def kubectl(kube: KubeEmulator) -> Kubectl:
    return kube.kubectl
