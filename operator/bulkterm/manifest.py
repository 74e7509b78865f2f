"""Reading ``BulkTermination`` manifests for ``bulkterm apply``.

The same rules as the CRD apply (through :class:`~bulkterm.spec.BulkTerminationSpec`), and a bad
manifest is reported the way a reviewer would want it: which document, which field, which id,
why. Nothing is sent to the AI API until every document in the input is valid.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from bulkterm.aiapi.models import ID_PATTERN, RESOURCE_GROUP_PATTERN
from bulkterm.spec import (
    API_GROUP,
    API_VERSION,
    INT64_MAX,
    KIND,
    MAX_LISTED_TARGETS,
    MAX_TARGETS,
    BulkTerminationSpec,
    UnboundedSpec,
    too_many_ids,
)

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"

#: libyaml's loader when PyYAML was built with it (about 4 times faster), else pure Python.
YamlLoader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# What the API server accepts around the spec (with fieldValidation=Strict, as kubectl sends).
TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
OBJECT_META = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
        "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
        "labels", "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
# A DNS-1123 subdomain: what the API server requires of a custom resource's name.
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class ManifestError(ValueError):
    """The input is not a valid set of BulkTermination documents; ``problems`` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Manifest:
    """One valid BulkTermination document."""

    name: str
    namespace: str | None
    spec: BulkTerminationSpec
    document: int  # 1-based position in the input, for messages
    #: ``metadata.labels`` as written (``bulkterm split`` carries them over).
    labels: Mapping[str, str] = field(default_factory=dict)


def load_manifests(text: str, *, source: str = "input", unbounded: bool = False) -> list[Manifest]:
    """Parse and validate every document; raise :class:`ManifestError` listing all problems.

    A document listing more targets than the CRD allows (:data:`~bulkterm.spec.MAX_TARGETS`,
    :data:`~bulkterm.spec.MAX_LISTED_TARGETS` in ``spec.targets``) is refused from a
    streaming count before anything is built (a 100,001-target file would otherwise take
    seconds and hundreds of MB to be refused); that refusal names only such documents.
    ``unbounded`` lifts the size limits and nothing else (``bulkterm split``).
    """
    try:
        too_long = [] if unbounded else _over_long_target_lists(text, source)
        if too_long:
            raise ManifestError(too_long)
        documents = _construct_documents(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ManifestError([f"{source}: not valid YAML{where}: {problem}"]) from None
    manifests: list[Manifest] = []
    problems: list[str] = []
    position = 0
    for raw in documents:
        if raw is None:  # empty document between '---' separators
            continue
        position += 1
        try:
            manifests.append(_one(raw, position, source, unbounded=unbounded))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if not manifests and not problems:
        problems.append(f"{source}: no BulkTermination documents found")
    if problems:
        raise ManifestError(problems)
    return manifests


def _construct_documents(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=YamlLoader))


#: Where target lists are, in the two forms, for the early count.
_LISTED = ("spec", "targets")
_ID_LISTS = (("spec", "deployments", "ids"), ("spec", "executions", "ids"))


def _too_many_targets(count: int) -> str:
    return (
        f"spec.targets: {count} targets, at most {MAX_LISTED_TARGETS} in this form (list up "
        f"to {MAX_TARGETS} ids in spec.deployments and spec.executions instead)"
    )


def _too_long(listed: int | None, ids: int) -> str | None:
    """The refusal for target lists of these lengths, or None when they fit."""
    if listed is not None and listed > MAX_LISTED_TARGETS:
        return _too_many_targets(listed)
    if ids > MAX_TARGETS:
        return f"spec: {too_many_ids(ids)}"
    return None


@dataclass
class _Open:
    """A mapping or sequence being read by :func:`_over_long_target_lists`."""

    is_mapping: bool
    #: Where it is (``("spec", "targets")``), or None deeper than anything looked at.
    path: tuple[str, ...] | None
    expect_key: bool = True
    key: str | None = None
    items: int = 0


_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def _over_long_target_lists(text: str, source: str) -> list[str]:
    """Target lists longer than the CRD allows, counted from the parser's events (C speed,
    nothing built). Aliases are not followed: :func:`_one` counts again after loading.
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
                refusal = _too_long(count, sum(ids.values()))
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


def _one(raw: Any, position: int, source: str, *, unbounded: bool = False) -> Manifest:
    where = f"{source}: document {position}"
    if not isinstance(raw, dict):
        raise ManifestError([f"{where}: expected a mapping, got {type(raw).__name__}"])
    metadata_raw = raw.get("metadata")
    metadata: dict[str, Any] = metadata_raw if isinstance(metadata_raw, dict) else {}
    name = metadata.get("name")
    if isinstance(name, str) and name:
        where += f" ({name})"
    problems: list[str] = []
    if raw.get("kind") != KIND:
        # Another kind of object (a Secret next to it in a directory): its fields are not ours
        # to judge, so this is the one problem to report.
        raise ManifestError([f"{where}: kind must be {KIND!r}, got {raw.get('kind')!r}"])
    if raw.get("apiVersion") != API_VERSION_FULL:
        problems.append(
            f"{where}: apiVersion must be {API_VERSION_FULL!r}, got {raw.get('apiVersion')!r}"
        )
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: metadata.name is required")
    elif len(name) > 253 or not NAME.fullmatch(name):
        problems.append(
            f"{where}: metadata.name {name!r} is not a valid name: lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters"
        )
    for key in sorted(set(raw) - TOP_LEVEL, key=str):
        problems.append(f"{where}: {key}: {_unknown_field(str(key), TOP_LEVEL, raw)}")
    for key in sorted(set(metadata) - OBJECT_META, key=str):
        problems.append(
            f"{where}: metadata.{key}: {_unknown_field(str(key), OBJECT_META, metadata)}"
        )
    spec_raw = raw.get("spec")
    spec: BulkTerminationSpec | None = None
    refusal = None if unbounded else _too_long(*_list_lengths(spec_raw))
    if spec_raw is None and any(_closest(str(k), TOP_LEVEL, raw) == "spec" for k in raw):
        pass  # a misspelt spec: the unknown field above says "did you mean spec?"
    elif not isinstance(spec_raw, dict):
        problems.append(f"{where}: spec is required and must be a mapping")
    elif refusal is not None:
        problems.append(f"{where}: {refusal}")  # before pydantic
    else:
        try:
            # Strict JSON mode: the API server would refuse batchSize: "5" too.
            # (default=str: YAML turns an unquoted 2024-01-01 into a date; kubectl sends it
            # as the string it looks like, and so do we.)
            text = json.dumps(_as_the_api_server_reads(spec_raw), default=str)
            model = UnboundedSpec if unbounded else BulkTerminationSpec
            spec = model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            problems.extend(f"{where}: {line}" for line in describe_errors(exc, spec_raw))
    if problems or spec is None:
        raise ManifestError(problems)
    namespace = metadata.get("namespace")
    return Manifest(
        name=str(name),
        namespace=namespace if isinstance(namespace, str) else None,
        spec=spec,
        document=position,
        labels=_labels(metadata.get("labels")),
    )


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def _list_lengths(spec_raw: Any) -> tuple[int | None, int]:
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


def _as_the_api_server_reads(value: Any) -> Any:
    """What the API server does before validating: a null in a mapping is dropped (then the
    schema's default applies, e.g. a `connection:` block whose lines are all commented out),
    and a whole number written as 5.0 is the integer 5."""
    if isinstance(value, dict):
        return {k: _as_the_api_server_reads(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_the_api_server_reads(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def describe_errors(exc: ValidationError, spec_raw: Any) -> list[str]:
    """Pydantic's errors in the manifest's own terms, one ``spec.targets[3].id (id 'x'): why``
    line each: field paths as written (camelCase), the reason as a rule of the field
    ("must be an integer between 1 and 100, got 101"), never pydantic's wording or an input
    dump. An unknown field suggests the nearest known one (and then the "required" error of
    that field, which the suggestion already explains, is left out)."""
    errors = exc.errors(include_url=False)
    suggested: set[tuple[Any, ...]] = set()
    unknown: dict[int, str] = {}
    for n, error in enumerate(errors):
        if error["type"] == "extra_forbidden":
            *parent, key = error["loc"]
            fields = _field_aliases(parent)
            unknown[n] = _unknown_field(str(key), fields, _value_at(spec_raw, parent))
            match = _closest(str(key), fields, _value_at(spec_raw, parent))
            if match is not None:
                suggested.add((*parent, match))
    lines = []
    for n, error in enumerate(errors):
        loc = tuple(error["loc"])
        if error["type"] == "missing" and loc in suggested:
            continue
        message = unknown[n] if n in unknown else _reason(error, loc, spec_raw)
        if error["type"] == "value_error":
            # Checks of a whole list name their place first: "targets[1]: Deployment …" (of
            # the spec), "ids[2]: 'x' is already …" (of spec.deployments).
            place = re.match(r"(targets|ids)\[(\d+)\]: (.*)", message, re.DOTALL)
            if place:
                loc, message = (*loc, place.group(1), int(place.group(2))), place.group(3)
        lines.append(f"{_path(loc, spec_raw)}: {message}")
    return lines


def _path(loc: tuple[Any, ...], spec_raw: Any) -> str:
    """``spec.targets[3].id (id 'x')``: the id of the target it is in, if it has a usable one."""
    path = "spec"
    target_id: str | None = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            if i > 0 and loc[i - 1] == "targets":
                target_id = _target_id(spec_raw, part)
        else:
            path += f".{part}"
    return f"{path} (id {target_id!r})" if target_id else path


#: What the spec's patterns mean, for people.
PATTERNS = {
    ID_PATTERN: "must be 4 to 64 ASCII letters, digits, '_', '.' or '-'",
    RESOURCE_GROUP_PATTERN: "must be 3 to 253 ASCII letters, digits, '.' or '-', starting and "
    "ending with a letter or digit",
}


def _reason(error: ErrorDetails, loc: tuple[Any, ...], spec_raw: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = _shown(error.get("input"))
    # The id is already named after the path: "spec.targets[1].id (id 'a b')".
    if loc and loc[-1] == "id" and _path(loc, spec_raw).endswith(")"):
        given = None
    got = f", got {given}" if given is not None else ""
    if kind == "missing":
        return "required"
    if kind in ("int_type", "int_from_float", "int_parsing", "greater_than_equal",
                "greater_than", "less_than_equal", "less_than"):  # fmt: skip
        low, high = _bounds(loc)
        if kind == "less_than_equal" and high == INT64_MAX:
            return f"must be at most {INT64_MAX} (the largest integer Kubernetes stores){got}"
        if low is not None and high is not None and high != INT64_MAX:
            return f"must be an integer between {low} and {high}{got}"
        if low is not None:
            return f"must be an integer of at least {low}{got}"
        return f"must be an integer{got}"
    if kind == "bool_type":
        return f"must be true or false{got}"
    if kind == "string_type":
        return f"must be a string{got}"
    if kind == "enum":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(allowed)}{got}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{PATTERNS.get(pattern, f'must match {pattern}')}{got}"
    if kind == "string_too_short":
        least = int(ctx.get("min_length", 1))
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind == "list_type":
        return "must be a list"
    if kind == "too_short":
        noun = "target" if loc == ("targets",) else "id" if loc[-1:] == ("ids",) else "item"
        least = int(ctx.get("min_length", 1))
        return f"must list at least {least} {noun}{'s' if least != 1 else ''}"
    if kind == "too_long":
        if loc == ("targets",):
            return _too_many_targets(int(ctx.get("actual_length", 0))).removeprefix(
                "spec.targets: "
            )
        if loc and loc[-1] == "ids":
            return f"must list at most {ctx.get('max_length')} ids"
        return f"must list at most {ctx.get('max_length')} items"
    message = error["msg"].removeprefix("Value error, ")
    message = message.replace(" after validation", "").replace("Input should", "must")
    return message.replace("String should", "must")


def _shown(value: Any) -> str | None:
    """A given value, short enough to repeat in a message; None for anything bigger."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 40 else None
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return None


def _model_at(parent: Sequence[Any]) -> type[BaseModel] | None:
    """The model of the mapping at ``parent`` (a pydantic ``loc``), if there is one."""
    model: type[BaseModel] | None = BulkTerminationSpec
    for part in parent:
        if isinstance(part, int) or model is None:
            continue  # a list item: the list's field already named its model
        field = _field(model, str(part))
        model = _model_in(field.annotation) if field is not None else None
    return model


def _field(model: type[BaseModel], alias: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if alias in (info.alias, name):
            return info
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Connection``, ``SecretRef | None``, ``list[Target]``, …"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _bounds(loc: tuple[Any, ...]) -> tuple[int | None, int | None]:
    """``ge``/``le`` of the integer field at ``loc`` (also inside ``Annotated[…] | None``)."""
    model = _model_at(loc[:-1])
    field = _field(model, str(loc[-1])) if model is not None and loc else None
    if field is None:
        return None, None
    constraints: list[Any] = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        for extra in getattr(arg, "__metadata__", ()):
            constraints.extend(getattr(extra, "metadata", [extra]))
    low = next((c.ge for c in constraints if isinstance(getattr(c, "ge", None), int)), None)
    high = next((c.le for c in constraints if isinstance(getattr(c, "le", None), int)), None)
    return low, high


def _field_aliases(parent: Sequence[Any]) -> frozenset[str]:
    model = _model_at(parent)
    if model is None:
        return frozenset()
    return frozenset(field.alias or name for name, field in model.model_fields.items())


def _value_at(raw: Any, loc: Sequence[Any]) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _closest(key: str, known: Collection[str], given: Any) -> str | None:
    """The known field ``key`` was probably meant to be (not one that is given as well)."""
    present = set(given) if isinstance(given, dict) else set()
    candidates = {k.lower(): k for k in known if k not in present}
    match = difflib.get_close_matches(key.lower(), list(candidates), n=1, cutoff=0.75)
    return candidates[match[0]] if match else None


def _unknown_field(key: str, known: Collection[str], given: Any) -> str:
    match = _closest(key, known, given)
    return "unknown field" + (f" (did you mean {match}?)" if match else "")


def _target_id(spec_raw: Any, index: int) -> str | None:
    try:
        value = spec_raw["targets"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) and len(value) <= 80 else None
