"""Fixtures for the operator layer's unit tests: a fake Kubernetes and fake Events.

(``KubeApi`` itself is tested against the real API server, in tests/e2e/test_kubeapi.py.)
"""

from __future__ import annotations

import pytest

from bulkterm.simulator import Simulator
from tests.k8s.support import FakeEvents, FakeKube


@pytest.fixture
def kube(simulator: Simulator) -> FakeKube:
    """A fake Kubernetes holding the simulator's service key in Secret ``aicore``."""
    return FakeKube.with_key(simulator)


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()
