"""Variants of the project's CRD for scenarios the CRD as written refuses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def each_schema(crd: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to every schema node of every version of ``crd``, in place."""

    def walk(schema: dict[str, Any]) -> None:
        edit(schema)
        for sub in schema.get("properties", {}).values():
            walk(sub)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"])

    for version in crd["spec"]["versions"]:
        walk(version["schema"]["openAPIV3Schema"])


def without_order_rules(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without the rules that compare its lists in order (``map``): a spec change
    the API server then lets through (a reorder) is what an older CRD allowed."""
    lax = copy.deepcopy(crd)

    def strip(schema: dict[str, Any]) -> None:
        rules = schema.get("x-kubernetes-validations")
        if rules is not None:
            schema["x-kubernetes-validations"] = [r for r in rules if ".map(" not in r["rule"]]

    each_schema(lax, strip)
    assert lax != crd, "no order rule found to leave out"
    return lax
