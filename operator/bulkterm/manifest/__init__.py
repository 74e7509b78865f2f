"""Reading ``BulkTermination`` manifests for ``bulkterm apply``.

The same rules as the CRD apply (through :class:`~bulkterm.spec.BulkTerminationSpec`), and a bad
manifest is reported the way a reviewer would want it: which document, which field, which id,
why. Nothing is sent to the AI API until every document in the input is valid.

This module reads the documents around the spec (``apiVersion``, ``kind``, ``metadata``, the
fields the API server accepts there); the size limits checked before anything is built are in
:mod:`bulkterm.manifest.limits`, and the wording of the spec's validation errors in
:mod:`bulkterm.manifest.messages`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from bulkterm.manifest.limits import (
    YamlLoader,
    list_lengths,
    over_long_target_lists,
    too_long,
)
from bulkterm.manifest.messages import closest, describe_errors, unknown_field
from bulkterm.spec import API_GROUP, API_VERSION, KIND, BulkTerminationSpec, UnboundedSpec

__all__ = [
    "API_VERSION_FULL",
    "NAME",
    "Manifest",
    "ManifestError",
    "YamlLoader",
    "describe_errors",
    "load_manifests",
]

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
    #: ``metadata.labels`` as written (``bulkterm split`` carries them over).
    labels: Mapping[str, str] = field(default_factory=dict)


def load_manifests(text: str, *, source: str = "input", unbounded: bool = False) -> list[Manifest]:
    """Parse and validate every document; raise :class:`ManifestError` listing all problems.

    A document listing more targets than the CRD allows (:data:`~bulkterm.spec.MAX_TARGETS`,
    :data:`~bulkterm.spec.MAX_LISTED_TARGETS` in ``spec.targets``) is refused from a
    streaming count before anything is built (:mod:`bulkterm.manifest.limits`); that refusal
    names only such documents.
    ``unbounded`` lifts the size limits and nothing else (``bulkterm split``).
    """
    try:
        too_long = [] if unbounded else over_long_target_lists(text, source)
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
        problems.append(f"{where}: {key}: {unknown_field(str(key), TOP_LEVEL, raw)}")
    for key in sorted(set(metadata) - OBJECT_META, key=str):
        problems.append(
            f"{where}: metadata.{key}: {unknown_field(str(key), OBJECT_META, metadata)}"
        )
    spec_raw = raw.get("spec")
    spec: BulkTerminationSpec | None = None
    refusal = None if unbounded else too_long(*list_lengths(spec_raw), source=source)
    if spec_raw is None and any(closest(str(k), TOP_LEVEL, raw) == "spec" for k in raw):
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
