"""The size limits of a manifest, checked before anything is built.

A document listing more targets than the CRD allows would cost time and memory to construct
and validate only to be refused, so the target lists are counted from the YAML parser's events
(libyaml's speed, no object built) and such a document is refused from that count alone. The
same limits are checked again on the loaded document (:func:`too_long`, :func:`list_lengths`),
which also sees through YAML aliases.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from bulkterm.spec import MAX_LISTED_TARGETS, MAX_TARGETS, too_many_ids

#: libyaml's loader when PyYAML was built with it (much faster on large input), else pure Python.
YamlLoader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Where target lists are, in the two forms, for the early count.
_LISTED = ("spec", "targets")
_ID_LISTS = (("spec", "deployments", "ids"), ("spec", "executions", "ids"))


def too_many_targets(count: int) -> str:
    return (
        f"spec.targets: {count} targets, at most {MAX_LISTED_TARGETS} in this form (list up "
        f"to {MAX_TARGETS} ids in spec.deployments and spec.executions instead)"
    )


def split_command_line(source: str) -> str:
    """``bulkterm split`` for the input named ``source`` (``stdin``: the same input again)."""
    given = "-" if source in ("stdin", "-") else shlex.quote(source)
    return f"bulkterm split -f {given} > parts.yaml"


def way_out(source: str) -> str:
    """What to do with a document over the limits: ``bulkterm split``, as a command line."""
    return (
        f"`{split_command_line(source)}` writes it as BulkTerminations that fit (at most "
        f"{MAX_TARGETS} ids each, named NAME-1, NAME-2, …); apply parts.yaml instead "
        "(`bulkterm apply -f parts.yaml`, or `kubectl apply --server-side -f parts.yaml`)"
    )


def too_long(listed: int | None, ids: int, *, source: str) -> str | None:
    """The refusal for target lists of these lengths, naming the way out (``bulkterm split``
    of ``source``), or None when they fit."""
    if listed is not None and listed > MAX_LISTED_TARGETS:
        refusal = too_many_targets(listed)
    elif ids > MAX_TARGETS:
        refusal = f"spec: {too_many_ids(ids)}"
    else:
        return None
    return f"{refusal}; {way_out(source)}"


@dataclass
class _Open:
    """A mapping or sequence being read by :func:`over_long_target_lists`."""

    is_mapping: bool
    #: Where it is (``("spec", "targets")``), or None deeper than anything looked at.
    path: tuple[str, ...] | None
    expect_key: bool = True
    key: str | None = None
    items: int = 0


_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def over_long_target_lists(text: str, source: str) -> list[str]:
    """Target lists longer than the CRD allows, counted from the parser's events (C speed,
    nothing built). Aliases are not followed: the loaded document is counted again.
    Below 2 characters per item (``[a,a,…]``) no list can be too long, so short input is not
    scanned at all."""
    if len(text) <= 2 * MAX_LISTED_TARGETS:
        return []
    resolver = yaml.resolver.Resolver()
    problems: list[str] = []
    position = 0
    stack: list[_Open] = []
    name: str | None = None
    count: int | None = None
    ids: dict[tuple[str, ...], int] = {}
    empty = False
    for event in yaml.parse(text, Loader=YamlLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            stack, name, count, ids, empty = [], None, None, {}, False
        elif isinstance(event, yaml.DocumentEndEvent):
            if not empty:
                position += 1
                refusal = too_long(count, sum(ids.values()), source=source)
                if refusal is not None:
                    where = f"{source}: document {position}" + (f" ({name})" if name else "")
                    problems.append(f"{where}: {refusal}")
        elif isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            # A repeated key: the last one counts, as when loading.
            if done.path == _LISTED and not done.is_mapping:
                count = done.items
            elif done.path in _ID_LISTS and not done.is_mapping:
                ids[done.path] = done.items
            _finished(stack)
        elif isinstance(event, yaml.NodeEvent):  # a scalar, an alias, or a collection opens
            path = _path_of(stack, event)
            if isinstance(event, yaml.CollectionStartEvent):
                is_mapping = isinstance(event, yaml.MappingStartEvent)
                stack.append(_Open(is_mapping=is_mapping, path=path))
                continue
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag or resolver.resolve(  # type: ignore[no-untyped-call]
                    yaml.ScalarNode, event.value, event.implicit
                )
                if not stack and tag == _NULL_TAG:
                    empty = True  # an empty document: not counted, as load_manifests skips it
                elif path == ("metadata", "name"):
                    name = event.value if tag == _STR_TAG and event.value else None
            _finished(stack)
    return problems


def _path_of(stack: list[_Open], event: yaml.NodeEvent) -> tuple[str, ...] | None:
    """Where a node opening now sits: ``()`` the root, ``("spec", "targets")``, or None for
    a key or anything deeper than three levels (nothing there is looked at)."""
    if not stack:
        return ()
    parent = stack[-1]
    if not parent.is_mapping or parent.path is None or len(parent.path) >= 3:
        return None
    if parent.expect_key:
        parent.key = event.value if isinstance(event, yaml.ScalarEvent) else None
        return None
    return None if parent.key is None else (*parent.path, parent.key)


def _finished(stack: list[_Open]) -> None:
    """A node inside ``stack[-1]`` has been read completely."""
    if not stack:
        return
    parent = stack[-1]
    if parent.is_mapping:
        parent.expect_key = not parent.expect_key
    else:
        parent.items += 1


def list_lengths(spec_raw: Any) -> tuple[int | None, int]:
    """How long ``spec.targets`` is (None if not a list) and how many ids the compact form has."""
    if not isinstance(spec_raw, dict):
        return None, 0
    targets = spec_raw.get("targets")
    ids = 0
    for kind in ("deployments", "executions"):
        group = spec_raw.get(kind)
        listed = group.get("ids") if isinstance(group, dict) else None
        ids += len(listed) if isinstance(listed, list) else 0
    return (len(targets) if isinstance(targets, list) else None), ids
