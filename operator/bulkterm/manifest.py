"""Reading ``BulkTermination`` manifests for ``bulkterm apply``.

The same rules as the CRD apply (through :class:`~bulkterm.spec.BulkTerminationSpec`), and a bad
manifest is reported the way a reviewer would want it: which document, which field, which id,
why. Nothing is sent to the AI API until every document in the input is valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from bulkterm.spec import API_GROUP, API_VERSION, KIND, BulkTerminationSpec

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"

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


def load_manifests(text: str, *, source: str = "input") -> list[Manifest]:
    """Parse and validate every document; raise :class:`ManifestError` listing all problems."""
    try:
        documents = list(yaml.safe_load_all(text))
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
            manifests.append(_one(raw, position, source))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if not manifests and not problems:
        problems.append(f"{source}: no BulkTermination documents found")
    if problems:
        raise ManifestError(problems)
    return manifests


def _one(raw: Any, position: int, source: str) -> Manifest:
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
        problems.append(f"{where}: kind must be {KIND!r}, got {raw.get('kind')!r}")
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
        problems.append(f"{where}: unknown field {key!r}")
    for key in sorted(set(metadata) - OBJECT_META, key=str):
        problems.append(f"{where}: unknown field 'metadata.{key}'")
    spec_raw = raw.get("spec")
    spec: BulkTerminationSpec | None = None
    if not isinstance(spec_raw, dict):
        problems.append(f"{where}: spec is required and must be a mapping")
    else:
        try:
            # Strict JSON mode: the API server would refuse batchSize: "5" too.
            # (default=str: YAML turns an unquoted 2024-01-01 into a date; kubectl sends it
            # as the string it looks like, and so do we.)
            text = json.dumps(_as_the_api_server_reads(spec_raw), default=str)
            spec = BulkTerminationSpec.model_validate_json(text, strict=True)
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
    )


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
    """Pydantic errors as ``spec.targets[3] (id 'x'): field: why`` lines, without input dumps."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        path = "spec"
        target_id: str | None = None
        loc = list(error["loc"])
        for i, part in enumerate(loc):
            if isinstance(part, int):
                path += f"[{part}]"
                if i > 0 and loc[i - 1] == "targets":
                    target_id = _target_id(spec_raw, part)
            else:
                path += f".{part}"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        suffix = f" (id {target_id!r})" if target_id else ""
        lines.append(f"{path}{suffix}: {message}")
    return lines


def _target_id(spec_raw: Any, index: int) -> str | None:
    try:
        value = spec_raw["targets"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) and len(value) <= 80 else None
