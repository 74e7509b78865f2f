"""Fixtures for the CRD tests: the CRD and its schema."""

from __future__ import annotations

from typing import Any

import pytest

from tests.crd.samples import CRD_PATH
from tests.kube import schema as s


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return s.load_crd(CRD_PATH)


@pytest.fixture(scope="session")
def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    return s.crd_schema(crd)
