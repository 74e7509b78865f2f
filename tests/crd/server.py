"""Asking the real API server about BulkTerminations: what it admits, what it refuses and why."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.kube import Kube, KubeApiError


def in_namespace(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of ``body`` placed in ``namespace`` (samples and examples name ``ml-team``)."""
    moved = copy.deepcopy(body)
    moved.setdefault("metadata", {})["namespace"] = namespace
    return moved


def admit(
    kube: Kube, body: dict[str, Any], namespace: str, *, field_validation: str = "Strict"
) -> dict[str, Any]:
    """The object as the API server would store it on create (a dry run: nothing is stored).

    ``Strict`` makes unknown and duplicate fields errors instead of pruning them.
    """
    return dict(
        kube.request(
            "POST",
            kube.path("bt", namespace=namespace),
            body=in_namespace(body, namespace),
            params={"dryRun": "All", "fieldValidation": field_validation},
        )
    )


def refusal(kube: Kube, body: dict[str, Any], namespace: str) -> KubeApiError:
    """The API server's answer to a create it refuses (strict field validation, dry run)."""
    with pytest.raises(KubeApiError) as refused:
        admit(kube, body, namespace)
    return refused.value


def problems(error: KubeApiError) -> list[tuple[str, str]]:
    """``(field, message)`` for every problem the server named.

    Validation errors (422) list them as the Status' causes. A strict-decoding error (400: an
    unknown field) has no causes; its message quotes each unknown field.
    """
    named = [(c.get("field", ""), c.get("message", "")) for c in error.causes]
    if named:
        return named
    message = error.body.get("message", "") if isinstance(error.body, dict) else str(error.body)
    return [(field, message) for field in re.findall(r'unknown field "([^"]+)"', message)]


def create(kube: Kube, body: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Create for real (the ``namespace`` fixture deletes it afterwards)."""
    return kube.create(in_namespace(body, namespace))
