"""Pydantic's validation errors in the manifest's own terms.

``bulkterm apply`` and the operator (a spec the API server admitted but the engine cannot run)
report a bad spec the way a reviewer would want it: the field path as written (camelCase,
``spec.targets[3].id``), the target's id, and the rule the value breaks ("must be an integer
between 1 and 100, got 101"), never pydantic's wording or a dump of the input. An unknown field
suggests the nearest known one.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from bulkterm.aiapi.models import ID_PATTERN, RESOURCE_GROUP_PATTERN
from bulkterm.manifest.limits import too_many_targets
from bulkterm.spec import INT64_MAX, BulkTerminationSpec


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
            unknown[n] = unknown_field(str(key), fields, _value_at(spec_raw, parent))
            match = closest(str(key), fields, _value_at(spec_raw, parent))
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
            return too_many_targets(int(ctx.get("actual_length", 0))).removeprefix("spec.targets: ")
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


def closest(key: str, known: Collection[str], given: Any) -> str | None:
    """The known field ``key`` was probably meant to be (not one that is given as well)."""
    present = set(given) if isinstance(given, dict) else set()
    candidates = {k.lower(): k for k in known if k not in present}
    match = difflib.get_close_matches(key.lower(), list(candidates), n=1, cutoff=0.75)
    return candidates[match[0]] if match else None


def unknown_field(key: str, known: Collection[str], given: Any) -> str:
    match = closest(key, known, given)
    return "unknown field" + (f" (did you mean {match}?)" if match else "")


def _target_id(spec_raw: Any, index: int) -> str | None:
    try:
        value = spec_raw["targets"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) and len(value) <= 80 else None
