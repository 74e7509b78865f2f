"""A valid BulkTermination to derive good and bad samples from."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "bulktermination.yaml"
EXAMPLES = ROOT / "examples"


def valid_cr(**spec: Any) -> dict[str, Any]:
    """A minimal valid BulkTermination; keyword arguments override spec fields."""
    body: dict[str, Any] = {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": "nightly-cleanup", "namespace": "ml-team"},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "targets": [
                {
                    "kind": "Deployment",
                    "id": "aa97b177-9383-4934-8543-0f91a7a0283a",
                    "targetStatus": "STOPPED",
                },
                {"kind": "Execution", "id": "e6f1a0c2d3b4", "targetStatus": "DELETED"},
            ],
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body
