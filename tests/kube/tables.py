"""Server-side printing (``meta.k8s.io/v1`` Table) for ``kubectl get``, with printer columns.

Covers the JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``[*]`` and filters like
``[?(@.type=="Ready")]``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_SEGMENT = re.compile(
    r"""\.(?P<name>[\w-]+|\*)"""
    r"""|\[(?P<index>-?\d+|\*)\]"""
    r"""|\[\?\(@(?P<fpath>(?:\.[\w-]+)+)\s*(?P<op>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[\w.-]+)\)\]"""
)


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """All values ``expr`` selects in ``obj`` (``{…}`` braces optional)."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    nodes: list[Any] = [obj]
    pos = 0
    while pos < len(expr):
        m = _SEGMENT.match(expr, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {expr!r} at {pos}")
        pos = m.end()
        out: list[Any] = []
        for node in nodes:
            if m.group("name") is not None:
                name = m.group("name")
                if name == "*":
                    out += list(node.values()) if isinstance(node, Mapping) else list(node or [])
                elif isinstance(node, Mapping) and name in node:
                    out.append(node[name])
            elif m.group("index") is not None:
                if not isinstance(node, list):
                    continue
                if m.group("index") == "*":
                    out += node
                else:
                    i = int(m.group("index"))
                    if -len(node) <= i < len(node):
                        out.append(node[i])
            else:
                items = node if isinstance(node, list) else []
                raw = m.group("fval")
                value = raw[1:-1] if raw[0] in "'\"" else raw
                for item in items:
                    got = jsonpath(item, m.group("fpath"))
                    matched = bool(got) and str(got[0]) == value
                    if matched == (m.group("op") == "=="):
                        out.append(item)
        nodes = out
    return nodes


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d"
    return f"{years}y"


def _age(value: Any, now: datetime.datetime) -> str:
    if not isinstance(value, str):
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((now - then).total_seconds())


def _cell(column: Mapping[str, Any], obj: Mapping[str, Any], now: datetime.datetime) -> Any:
    try:
        found = jsonpath(obj, column["jsonPath"])
    except ValueError:
        return None
    if not found:
        return None
    value = found[0]
    if column.get("type") == "date":
        return _age(value, now)
    if isinstance(value, dict | list):
        return str(value)
    return value


DEFAULT_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "CreationTimestamp is a timestamp representing the server time when this "
        "object was created.",
    },
]


def table(
    objects: Iterable[Mapping[str, Any]],
    columns: Sequence[Mapping[str, Any]] | None,
    *,
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A ``Table`` for the given objects: Name, then the printer columns (or Age)."""
    columns = list(columns) if columns else DEFAULT_COLUMNS
    now = datetime.datetime.now(tz=datetime.UTC)
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name must be unique within a namespace.",
        }
    ]
    definitions += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {
            "cells": [obj.get("metadata", {}).get("name")] + [_cell(c, obj, now) for c in columns],
        }
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
