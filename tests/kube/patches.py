"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), copy-on-write.

Stored objects are shared between versions (a 10,000-target spec is not copied on every status
write), so nothing here mutates its input: containers on the changed paths are copied.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """A patch that cannot be applied (the API server answers 422)."""


class PatchTestFailed(PatchError):
    """A JSON-patch ``test`` operation did not match."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool = False) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_add):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path /{'/'.join(tokens)} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token)]
        else:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
    return node


def _copy_path(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    """Copy the containers along ``tokens[:-1]``; return (new root, the copied parent)."""
    root = doc.copy() if isinstance(doc, dict | list) else doc
    node = root
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node or not isinstance(node[token], dict | list):
                raise PatchError(f"path /{'/'.join(tokens)} does not exist")
            node[token] = node[token].copy()
            node = node[token]
        elif isinstance(node, list):
            index = _index(node, token)
            if not isinstance(node[index], dict | list):
                raise PatchError(f"path /{'/'.join(tokens)} does not exist")
            node[index] = node[index].copy()
            node = node[index]
        else:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
    return root, node


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    root, parent = _copy_path(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(tokens)}")
    return root


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    root, parent = _copy_path(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last)]
    else:
        raise PatchError(f"cannot remove /{'/'.join(tokens)}")
    return root


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902. Raises :class:`PatchTestFailed` for a failed ``test``, else :class:`PatchError`."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind = op["op"]
        tokens = _tokens(op["path"])
        if kind == "test":
            actual = _get(doc, tokens)
            if actual != op.get("value"):
                raise PatchTestFailed(
                    f"testing value {op['path']} failed: {actual!r} != {op.get('value')!r}"
                )
        elif kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            doc = _add(_remove(doc, tokens), tokens, copy.deepcopy(op.get("value")))
        elif kind == "move":
            source = _tokens(op["from"])
            value = _get(doc, source)
            doc = _add(_remove(doc, source), tokens, value)
        elif kind == "copy":
            value = copy.deepcopy(_get(doc, _tokens(op["from"])))
            doc = _add(doc, tokens, value)
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc
