"""Variants of the project's CRD for scenarios the CRD as written refuses."""

from __future__ import annotations

import copy
from typing import Any


def without_order_rules(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without the rules that compare its lists in order (``map``): a spec change
    the API server then lets through (a reorder) is what an older CRD allowed."""
    lax = copy.deepcopy(crd)

    def strip(schema: dict[str, Any]) -> None:
        rules = schema.get("x-kubernetes-validations")
        if rules is not None:
            schema["x-kubernetes-validations"] = [r for r in rules if ".map(" not in r["rule"]]
        for sub in schema.get("properties", {}).values():
            strip(sub)
        if isinstance(schema.get("items"), dict):
            strip(schema["items"])

    for version in lax["spec"]["versions"]:
        strip(version["schema"]["openAPIV3Schema"])
    assert lax != crd, "no order rule found to leave out"
    return lax
