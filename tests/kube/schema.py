"""What a Kubernetes API server does with a CRD's structural schema, in Python.

Used by the CRD tests and by the emulator's admission step: null pruning, defaulting, pruning of
unknown fields, OpenAPI validation (via ``jsonschema``), list-type checks that JSON Schema cannot
express (``x-kubernetes-list-type: map``/``set``) and CEL rules (``x-kubernetes-validations``,
via ``celpy``). The order is the API server's: drop nulls, default, prune, validate.

Go's RE2 treats ``\\w`` as ASCII while Python's ``re`` treats it as Unicode, so converted patterns
get the ``(?a)`` flag: a pattern accepts here exactly what the API server accepts.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

JSON = Any
Schema = Mapping[str, Any]

# RFC 3339 as Kubernetes' strfmt accepts it (fractions and offsets optional; "Z" or +hh:mm).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("z", "Z").replace(" ", "T"))
    except ValueError:
        return False
    return True


_FORMAT_CHECKER.checkers["date-time"] = (_is_date_time, ())

_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml_docs(path: str | Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a (multi-document) file."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.load_all(f, Loader=loader) if doc]


def load_crd(path: str | Path) -> dict[str, Any]:
    """The one CustomResourceDefinition in a file."""
    crds = [d for d in load_yaml_docs(path) if d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise ValueError(f"{path}: expected one CustomResourceDefinition, found {len(crds)}")
    return crds[0]


def crd_version(crd: Mapping[str, Any], version: str | None = None) -> dict[str, Any]:
    """The named version of a CRD, or its storage version."""
    for ver in crd["spec"]["versions"]:
        if ver["name"] == version or (version is None and ver.get("storage")):
            return dict(ver)
    raise KeyError(f"CRD {crd['metadata']['name']} has no version {version!r}")


def crd_schema(crd: Mapping[str, Any], version: str | None = None) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of a CRD version."""
    return dict(crd_version(crd, version)["schema"]["openAPIV3Schema"])


# ---------------------------------------------------------------------------------------------
# Schema walking


def walk_schema(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every sub-schema with its path: ``.spec.targets[].id``; additionalProperties as ``.*``."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk_schema(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from walk_schema(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from walk_schema(schema["additionalProperties"], f"{path}.*")


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _is_object_schema(schema: Schema) -> bool:
    return schema.get("type") == "object" or "properties" in schema


# ---------------------------------------------------------------------------------------------
# Conversion to JSON Schema


def to_json_schema(schema: Schema) -> dict[str, Any]:
    """Convert a structural OpenAPI v3 schema to a JSON Schema that validates like the server.

    ``nullable`` becomes a ``null`` type; objects reject unknown fields unless they preserve
    them; ``x-kubernetes-int-or-string`` becomes integer-or-string; int32/int64 formats become
    bounds; patterns get RE2's ASCII ``\\w``. ``x-kubernetes-*`` list types and CEL rules are not
    expressible here: see :func:`list_type_errors` and :func:`cel_errors`.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in {"description", "default", "example"}:
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key == "additionalProperties" and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in {"allOf", "anyOf", "oneOf"}:
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "not":
            out[key] = to_json_schema(value)
        elif key == "pattern":
            out[key] = f"(?a){value}"
        elif key == "nullable":
            continue
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    fmt = schema.get("format")
    if schema.get("type") == "integer" and isinstance(fmt, str) and fmt in _INT_BOUNDS:
        low, high = _INT_BOUNDS[fmt]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if (
        _is_object_schema(schema)
        and not _preserves(schema)
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-embedded-resource")
    ):
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


# ---------------------------------------------------------------------------------------------
# Nulls, defaults, pruning (copy-on-write: inputs are never mutated)


def drop_nulls(schema: Schema, obj: JSON) -> JSON:
    """Remove ``null`` values of non-nullable fields, as the API server does before defaulting."""
    if isinstance(obj, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        result: dict[str, Any] | None = None
        for key, value in obj.items():
            sub = props.get(key) if key in props else extra if isinstance(extra, Mapping) else None
            if sub is None:
                continue
            if value is None and not sub.get("nullable"):
                result = dict(obj) if result is None else result
                del result[key]
                continue
            new = drop_nulls(sub, value)
            if new is not value:
                result = dict(obj) if result is None else result
                result[key] = new
        return obj if result is None else result
    if isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        new_list = [drop_nulls(items, v) for v in obj]
        return obj if all(a is b for a, b in zip(new_list, obj, strict=True)) else new_list
    return obj


def apply_defaults(schema: Schema, obj: JSON) -> JSON:
    """Fill in ``default`` values of absent fields (recursively, as structural defaulting does)."""
    if isinstance(obj, dict):
        props = schema.get("properties", {})
        result: dict[str, Any] | None = None
        for key, sub in props.items():
            if key not in obj and "default" in sub:
                result = dict(obj) if result is None else result
                result[key] = apply_defaults(sub, copy.deepcopy(sub["default"]))
        source = obj if result is None else result
        for key, value in list(source.items()):
            sub = props.get(key)
            if sub is None:
                extra = schema.get("additionalProperties")
                sub = extra if isinstance(extra, Mapping) else None
            if sub is None:
                continue
            new = apply_defaults(sub, value)
            if new is not value:
                result = dict(obj) if result is None else result
                result[key] = new
        return obj if result is None else result
    if isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        new_list = [apply_defaults(items, v) for v in obj]
        return obj if all(a is b for a, b in zip(new_list, obj, strict=True)) else new_list
    return obj


def prune(schema: Schema, obj: JSON, path: str = "", removed: list[str] | None = None) -> JSON:
    """Drop fields the schema does not know (unless preserved); record their paths in ``removed``.

    At the root, ``apiVersion``, ``kind`` and ``metadata`` are never pruned (the server keeps
    them whatever the schema says).
    """
    removed = [] if removed is None else removed
    if isinstance(obj, dict) and _is_object_schema(schema) and not _preserves(schema):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        result: dict[str, Any] | None = None
        for key, value in obj.items():
            if path == "" and key in {"apiVersion", "kind", "metadata"}:
                continue
            sub = props.get(key)
            if sub is None and isinstance(extra, Mapping):
                sub = extra
            if sub is None and extra is not True:
                result = dict(obj) if result is None else result
                del result[key]
                removed.append(f"{path}.{key}")
                continue
            if sub is None:
                continue
            new = prune(sub, value, f"{path}.{key}", removed)
            if new is not value:
                result = dict(obj) if result is None else result
                result[key] = new
        return obj if result is None else result
    if isinstance(obj, dict) and _preserves(schema) and "properties" in schema:
        # Preserved objects still prune inside the properties they do declare.
        result = None
        for key, sub in schema["properties"].items():
            if key in obj:
                new = prune(sub, obj[key], f"{path}.{key}", removed)
                if new is not obj[key]:
                    result = dict(obj) if result is None else result
                    result[key] = new
        return obj if result is None else result
    if isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        new_list = [prune(items, v, f"{path}[{i}]", removed) for i, v in enumerate(obj)]
        return obj if all(a is b for a, b in zip(new_list, obj, strict=True)) else new_list
    return obj


# ---------------------------------------------------------------------------------------------
# Validation


def _json_path(parts: Iterator[str | int] | list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_errors(schema: Schema, obj: JSON) -> list[str]:
    """OpenAPI validation errors as ``.path: message`` strings (empty when valid)."""
    validator = jsonschema.Draft7Validator(to_json_schema(schema), format_checker=_FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [
        f"{_json_path(list(e.absolute_path)) or '.'}: {e.message.replace('(?a)', '')}"
        for e in errors
    ]


def list_type_errors(schema: Schema, obj: JSON, path: str = "") -> list[str]:
    """Duplicates in ``x-kubernetes-list-type`` ``map`` (by key fields) and ``set`` lists."""
    errors: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                errors += list_type_errors(sub, value, f"{path}.{key}")
    elif isinstance(obj, list):
        items = schema.get("items")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = list(schema.get("x-kubernetes-list-map-keys", []))
            seen: dict[tuple[Any, ...], int] = {}
            for index, item in enumerate(obj):
                if not isinstance(item, dict):
                    continue
                missing = [k for k in keys if k not in item]
                if missing:
                    errors.append(f"{path}[{index}]: Required value: list-map key(s) {missing}")
                    continue
                key = tuple(_hashable(item[k]) for k in keys)
                if key in seen:
                    shown = ", ".join(f"{k}: {item[k]!r}" for k in keys)
                    errors.append(
                        f"{path}[{index}]: Duplicate value: {{{shown}}} "
                        f"(already at {path}[{seen[key]}])"
                    )
                else:
                    seen[key] = index
        elif list_type == "set":
            seen_set: dict[Any, int] = {}
            for index, item in enumerate(obj):
                key = _hashable(item)
                if key in seen_set:
                    errors.append(f"{path}[{index}]: Duplicate value: {item!r}")
                else:
                    seen_set[key] = index
        if isinstance(items, Mapping):
            for index, item in enumerate(obj):
                errors += list_type_errors(items, item, f"{path}[{index}]")
    return errors


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


# ---------------------------------------------------------------------------------------------
# CEL (x-kubernetes-validations)


def cel_rules(schema: Schema) -> list[tuple[str, dict[str, Any]]]:
    """All ``x-kubernetes-validations`` rules with the schema path they sit at."""
    return [
        (path, dict(rule))
        for path, sub in walk_schema(schema)
        for rule in sub.get("x-kubernetes-validations", [])
    ]


_CEL_CACHE: dict[str, Any] = {}


def _cel_program(rule: str) -> Any:
    import celpy  # slow import: only when CEL is needed

    if rule not in _CEL_CACHE:
        env = celpy.Environment()
        _CEL_CACHE[rule] = env.program(env.compile(rule))
    return _CEL_CACHE[rule]


def eval_cel(rule: str, self_value: JSON, old_value: JSON = None, *, has_old: bool = False) -> bool:
    """Evaluate one CEL rule on ``self`` (and ``oldSelf`` for transition rules)."""
    from celpy.adapter import json_to_cel

    activation = {"self": json_to_cel(self_value)}
    if has_old:
        activation["oldSelf"] = json_to_cel(old_value)
    result = _cel_program(rule).evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return bool(result)


def canonical(schema: Schema, value: JSON) -> JSON:
    """``value`` with list-maps sorted by their keys and sets sorted, recursively.

    Kubernetes' CEL compares lists of ``x-kubernetes-list-type`` ``map`` and ``set`` ignoring
    order; celpy compares all lists in order. Feeding celpy canonically ordered values gives the
    server's semantics (rules that index such lists by position would see the sorted order).
    """
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            out[key] = canonical(sub, item) if sub is not None else item
        return out
    if isinstance(value, list):
        items = schema.get("items")
        result = [canonical(items, v) for v in value] if isinstance(items, Mapping) else value
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = list(schema.get("x-kubernetes-list-map-keys", []))
            return sorted(
                result,
                key=lambda v: repr(
                    [_hashable(v.get(k)) for k in keys] if isinstance(v, dict) else v
                ),
            )
        if list_type == "set":
            return sorted(result, key=lambda v: repr(_hashable(v)))
        return result
    return value


def _is_transition_rule(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


_MISSING = object()


def cel_errors(schema: Schema, new: JSON, old: JSON = _MISSING, path: str = "") -> list[str]:
    """Failed CEL rules for ``new`` (and the update from ``old``), as ``.path: message``.

    Transition rules (those using ``oldSelf``) run only where the old value exists at the same
    path, as on the API server. Like the server's validation ratcheting, nothing is checked in
    subtrees that did not change in an update. List items are correlated for list-maps only.
    """
    if old is not _MISSING and new == old:
        return []
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        text = rule["rule"]
        transition = _is_transition_rule(text)
        if transition and old is _MISSING:
            continue
        try:
            ok = eval_cel(
                text,
                canonical(schema, new),
                canonical(schema, old) if transition else None,
                has_old=transition,
            )
        except Exception as exc:  # an evaluation error rejects the object, as on the server
            errors.append(f"{path or '.'}: Invalid value: CEL rule {text!r} failed: {exc}")
            continue
        if not ok:
            message = rule.get("message") or f"failed rule: {text}"
            errors.append(f"{path or '.'}: Invalid value: {' '.join(message.split())}")
    if isinstance(new, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in new.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is None:
                continue
            old_value = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            errors += cel_errors(sub, value, old_value, f"{path}.{key}")
    elif isinstance(new, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        old_by_key: dict[Any, Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            keys = schema.get("x-kubernetes-list-map-keys", [])
            old_by_key = {
                tuple(_hashable(o.get(k)) for k in keys): o for o in old if isinstance(o, dict)
            }
            for index, item in enumerate(new):
                ikey = (
                    tuple(_hashable(item.get(k)) for k in keys) if isinstance(item, dict) else None
                )
                old_item = old_by_key.get(ikey, _MISSING)
                errors += cel_errors(items, item, old_item, f"{path}[{index}]")
        else:
            for index, item in enumerate(new):
                errors += cel_errors(items, item, _MISSING, f"{path}[{index}]")
    return errors


# ---------------------------------------------------------------------------------------------
# Everything together


def admit(
    schema: Schema, obj: JSON, old: JSON = _MISSING, *, strict: bool = False
) -> tuple[JSON, list[str], list[str]]:
    """Default, prune and validate ``obj`` as the API server would on a create or update.

    Returns ``(admitted object, errors, pruned field paths)``. With ``strict``, pruned fields
    are errors too (``kubectl``'s ``fieldValidation=Strict``). Subtrees equal to the old object
    are not re-validated (ratcheting), which also keeps status writes on a 10,000-target object
    cheap.
    """
    removed: list[str] = []
    if isinstance(obj, dict) and isinstance(old, dict):
        # Top-level values shared with the old object (copy-on-write patches keep them) were
        # admitted before: walk only the rest. Keeps a status write on 10,000 targets cheap.
        fresh = {k: v for k, v in obj.items() if k not in old or old[k] is not v}
        fresh = prune(schema, apply_defaults(schema, drop_nulls(schema, fresh)), "", removed)
        obj = {
            k: (fresh[k] if k in fresh else v)
            for k, v in obj.items()
            if k in fresh or (k in old and old[k] is v)
        }
        obj.update({k: v for k, v in fresh.items() if k not in obj})
    else:
        obj = drop_nulls(schema, obj)
        obj = apply_defaults(schema, obj)
        obj = prune(schema, obj, "", removed)
    errors: list[str] = []
    if strict:
        errors += [f'{path}: unknown field "{path.lstrip(".")}"' for path in removed]
    if isinstance(obj, dict) and isinstance(old, dict):
        # Validate only the top-level fields that changed (metadata is the server's business).
        changed = {
            k: v for k, v in obj.items() if k not in {"metadata"} and old.get(k, _MISSING) != v
        }
        sub_schema = dict(schema)
        sub_schema["required"] = [r for r in schema.get("required", []) if r in changed]
        sub_schema["properties"] = {
            k: v for k, v in schema.get("properties", {}).items() if k in changed
        }
        errors += schema_errors(
            {**sub_schema, "x-kubernetes-preserve-unknown-fields": True}, changed
        )
        missing = [r for r in schema.get("required", []) if r not in obj]
        errors += [f".{r}: Required value" for r in missing]
        errors += list_type_errors(schema, changed)
    else:
        body = {k: v for k, v in obj.items() if k != "metadata"} if isinstance(obj, dict) else obj
        plain = dict(schema)
        if isinstance(obj, dict):
            plain["properties"] = {
                k: v for k, v in schema.get("properties", {}).items() if k != "metadata"
            }
        errors += schema_errors({**plain, "x-kubernetes-preserve-unknown-fields": True}, body)
        errors += list_type_errors(schema, obj)
    errors += cel_errors(schema, obj, old)
    return obj, errors, removed


def missing_descriptions(schema: Schema) -> list[str]:
    """Paths of sub-schemas without a ``description`` (``kubectl explain`` would show nothing)."""
    return [path or "." for path, sub in walk_schema(schema) if not sub.get("description")]


def untyped(schema: Schema) -> list[str]:
    """Paths of sub-schemas without a ``type`` (structural schemas need one everywhere)."""
    return [
        path or "."
        for path, sub in walk_schema(schema)
        if "type" not in sub and not sub.get("x-kubernetes-int-or-string")
    ]
