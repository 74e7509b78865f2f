"""Label and field selectors as the API server parses them (the common subset)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


class SelectorError(ValueError):
    """An unparseable selector (the API server answers 400)."""


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


Check = Callable[[Mapping[str, str]], bool]


def _label_check(key: str, op: str, values: frozenset[str]) -> Check:
    def check(labels: Mapping[str, str]) -> bool:
        if op in ("in", "=", "=="):
            return labels.get(key) in values
        if op in ("notin", "!="):
            return labels.get(key) not in values
        if op == "exists":
            return key in labels
        return key not in labels  # "!"

    return check


def label_selector(selector: str | None) -> Predicate:
    """``a=b,c!=d,e in (x,y),f notin (z),g,!h`` → a predicate on an object."""
    checks: list[Check] = []
    for term in _split_terms(selector or ""):
        if m := _SET_TERM.match(term):
            _, key, op, raw = m.groups()
            values = frozenset(v.strip() for v in raw.split(",") if v.strip())
            checks.append(_label_check(key, op, values))
        elif m := _EQ_TERM.match(term):
            key, op, value = m.groups()
            checks.append(_label_check(key, op, frozenset({value})))
        elif m := _EXISTS_TERM.match(term):
            negate, key = m.groups()
            checks.append(_label_check(key, "!" if negate else "exists", frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")

    def predicate(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return predicate


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return None if node is None else str(node)


def _field_check(path: str, negate: bool, value: str) -> Predicate:
    def check(obj: Mapping[str, Any]) -> bool:
        return ((_field(obj, path) or "") == value) != negate

    return check


def field_selector(selector: str | None) -> Predicate:
    """``metadata.name=x,metadata.namespace!=y`` → a predicate (any dotted path is allowed)."""
    checks: list[Predicate] = []
    for term in _split_terms(selector or ""):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise SelectorError(f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        checks.append(_field_check(path, op == "!=", value))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all(check(obj) for check in checks)

    return predicate
