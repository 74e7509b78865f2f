"""Fixtures for the CRD tests: the CRD as written (YAML), and a BulkTermination stored for real.

Whether a custom resource is valid is for the real API server to say (``kube``, ``namespace``
from ``tests/plugins/kube.py``); the YAML fixtures serve checks of the CRD text itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.crd.samples import crd_document, valid_cr
from tests.crd.server import create
from tests.kube import Kube


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return crd_document()


@pytest.fixture(scope="session")
def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


@pytest.fixture
def stored(kube: Kube, namespace: str) -> dict[str, Any]:
    """``valid_cr()`` created in the test's namespace, as the server returned it."""
    return create(kube, valid_cr(), namespace)
