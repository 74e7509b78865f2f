"""The CRD's spec schema and the pydantic ``BulkTerminationSpec`` say the same thing.

Two ways: the schemas are compared field by field (names, required, defaults, enums, bounds,
patterns), and a set of sample documents is accepted or refused alike by the real API server
and by pydantic, with the same defaults filled in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bulkterm.spec import INT64_MAX, BulkTerminationSpec
from tests.crd.samples import valid_cr
from tests.crd.server import admit
from tests.kube import Kube, KubeApiError

# Keywords both sides state; anything else in the CRD must be implied by the pydantic model.
_COMPARED = (
    "type",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
)


def _pydantic_schema() -> dict[str, Any]:
    return BulkTerminationSpec.model_json_schema(by_alias=True, mode="validation")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref`` and unwrap ``Optional`` (``anyOf [X, null]``) into X."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        assert len(options) == 1, node
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(options[0], defs), **rest}
    return node


def _implied(crd_node: dict[str, Any], key: str, py_value: Any = None) -> bool:
    """Keywords one side states that add nothing: lengths implied by an enum, a bounded
    pattern or a date-time format (CRD), and int64's maximum (pydantic; the API server applies it to every integer)."""
    if key == "maximum" and crd_node.get("type") == "integer" and key not in crd_node:
        return py_value == INT64_MAX
    if key in ("minLength", "maxLength"):
        if "enum" in crd_node:
            return True
        if key == "minLength" and crd_node.get("pattern") == r"^[A-Za-z0-9_.-]{4,64}$":
            return crd_node[key] == 4
        if key == "maxLength" and crd_node.get("pattern", "").endswith(("{4,64}$",)):
            return crd_node[key] == 64
        if key == "maxLength" and crd_node.get("pattern", "").endswith("{1,251}[a-zA-Z0-9]$"):
            return crd_node[key] == 253
        if key == "maxLength" and crd_node.get("format") == "date-time":
            return True  # a bound for CEL's cost estimate; the format bounds it already
    return False


def _compare(
    crd_node: dict[str, Any],
    py_node: dict[str, Any],
    defs: dict[str, Any],
    path: str,
    problems: list[str],
) -> None:
    py_node = _resolve(py_node, defs)
    for key in _COMPARED:
        crd_value, py_value = crd_node.get(key), py_node.get(key)
        if key == "default" and py_value is None and "default" not in crd_node:
            continue  # optional without a default on both sides
        if key == "default" and crd_value == {} and py_value is None:
            continue  # object defaulted to {} (nested defaults) vs. default_factory
        if crd_value != py_value and not (
            (py_value is None and _implied(crd_node, key)) or _implied(crd_node, key, py_value)
        ):
            problems.append(f"{path}: {key}: CRD {crd_value!r} != pydantic {py_value!r}")
    if crd_node.get("type") == "object":
        crd_props = crd_node.get("properties", {})
        py_props = py_node.get("properties", {})
        if set(crd_props) != set(py_props):
            problems.append(
                f"{path}: fields: CRD {sorted(crd_props)} != pydantic {sorted(py_props)}"
            )
        if sorted(crd_node.get("required", [])) != sorted(py_node.get("required", [])):
            problems.append(
                f"{path}: required: CRD {crd_node.get('required')} != "
                f"pydantic {py_node.get('required')}"
            )
        for name in set(crd_props) & set(py_props):
            _compare(crd_props[name], py_props[name], defs, f"{path}.{name}", problems)
    if crd_node.get("type") == "array":
        _compare(crd_node["items"], py_node["items"], defs, f"{path}[]", problems)


def test_schemas_agree_field_by_field(openapi: dict[str, Any]) -> None:
    py = _pydantic_schema()
    problems: list[str] = []
    _compare(openapi["properties"]["spec"], py, py.get("$defs", {}), ".spec", problems)
    assert problems == []


def _targets(*ids: str, kind: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for id_ in ids:
        target: dict[str, Any] = {"id": id_, "targetStatus": "STOPPED"}
        if kind:
            target["kind"] = kind
        out.append(target)
    return out


# (spec overrides on top of valid_cr()); None deletes a key.
SAMPLES: list[Any] = [
    pytest.param({}, id="valid"),
    pytest.param({"connection": None}, id="no-connection"),
    pytest.param({"connection": {}}, id="empty-connection"),
    pytest.param({"connection": {"resourceGroup": "rg-1.team"}}, id="no-secretRef"),
    pytest.param({"connection": {"secretRef": {"name": "k", "key": "other"}}}, id="secret-key"),
    pytest.param({"connection": {"secretRef": {"key": "other"}}}, id="secret-no-name"),
    pytest.param({"connection": {"secretRef": {"name": ""}}}, id="secret-empty-name"),
    pytest.param({"connection": {"secretRef": {"name": "x" * 254}}}, id="secret-long-name"),
    pytest.param({"connection": {"resourceGroup": "ab"}}, id="rg-too-short"),
    pytest.param({"connection": {"resourceGroup": "abc"}}, id="rg-shortest"),
    pytest.param({"connection": {"resourceGroup": "a" * 253}}, id="rg-longest"),
    pytest.param({"connection": {"resourceGroup": "a" * 254}}, id="rg-too-long"),
    pytest.param({"connection": {"resourceGroup": "rg_1"}}, id="rg-underscore"),
    pytest.param({"connection": {"url": "https://evil"}}, id="connection-url"),
    pytest.param({"targets": _targets("abcd")}, id="kind-defaulted"),
    pytest.param({"targets": _targets("abc")}, id="id-3-chars"),
    pytest.param({"targets": _targets("a" * 64)}, id="id-64-chars"),
    pytest.param({"targets": _targets("a" * 65)}, id="id-65-chars"),
    pytest.param({"targets": _targets("a.b-c_d")}, id="id-punctuation"),
    pytest.param({"targets": _targets("a/b/c")}, id="id-slash"),
    pytest.param({"targets": _targets("abcd", kind="Pod")}, id="kind-unknown"),
    pytest.param({"targets": [{"id": "abcd", "targetStatus": "RUNNING"}]}, id="status-unknown"),
    pytest.param({"targets": [{"id": "abcd"}]}, id="status-missing"),
    pytest.param(
        {"targets": [{"id": "abcd", "targetStatus": "STOPPED", "x": 1}]}, id="target-extra-field"
    ),
    pytest.param({"targets": []}, id="targets-empty"),
    pytest.param({"targets": None}, id="targets-missing"),
    pytest.param({"targets": _targets(*(f"d{i:05d}" for i in range(10_000)))}, id="10000"),
    pytest.param({"targets": _targets(*(f"d{i:05d}" for i in range(10_001)))}, id="10001"),
    pytest.param({"targets": _targets("abcd", "abcd")}, id="duplicate"),
    pytest.param(
        {"targets": _targets("abcd") + _targets("abcd", kind="Deployment")},
        id="duplicate-after-default",
    ),
    pytest.param(
        {"targets": _targets("abcd", kind="Deployment") + _targets("abcd", kind="Execution")},
        id="same-id-two-kinds",
    ),
    *[
        pytest.param({field: value}, id=f"{field}={value}")
        for field, values in {
            "batchSize": [0, 1, 100, 101],
            "pollIntervalSeconds": [0, 1, 3600, 3601],
            "activeDeadlineSeconds": [0, 1, 10**9],
            "ttlSecondsAfterFinished": [-1, 0, 86400],
            "backoffLimitPerTarget": [-1, 0, 100, 101],
            "unknownGracePeriodSeconds": [-1, 0, 86400, 86401],
            "dryRun": [True, False],
        }.items()
        for value in values
    ],
    pytest.param({"batchSize": "5"}, id="batchSize-string"),
    pytest.param({"dryRun": "true"}, id="dryRun-string"),
    pytest.param({"unknownField": 1}, id="unknown-field"),
]


def _spec_of(overrides: dict[str, Any]) -> dict[str, Any]:
    spec = dict(valid_cr()["spec"])
    for key, value in overrides.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def _server_verdict(kube: Kube, namespace: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The spec as the API server would store it (strict field validation), None if refused."""
    try:
        return admit(kube, {**valid_cr(), "spec": spec}, namespace)["spec"]
    except KubeApiError as refused:
        assert refused.status in (400, 422), refused
        return None


def _pydantic_verdict(spec: dict[str, Any]) -> dict[str, Any] | None:
    # JSON mode + strict: the input arrives as JSON, and "5" must not pass for 5 (as on the server).
    try:
        model = BulkTerminationSpec.model_validate_json(json.dumps(spec), strict=True)
    except ValidationError:
        return None
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


@pytest.mark.parametrize("overrides", SAMPLES)
def test_same_verdict_and_defaults(kube: Kube, namespace: str, overrides: dict[str, Any]) -> None:
    spec = _spec_of(overrides)
    server = _server_verdict(kube, namespace, spec)
    py = _pydantic_verdict(spec)
    assert (server is None) == (py is None), (
        f"API server admits: {server is not None}; pydantic: {py is not None}"
    )
    assert server == py


def test_same_verdict_on_non_ascii_ids(kube: Kube, namespace: str) -> None:
    spec = _spec_of({"targets": _targets("déployé")})
    assert _server_verdict(kube, namespace, spec) is None
    assert _pydantic_verdict(spec) is None


def test_lax_python_mode_coerces(kube: Kube, namespace: str) -> None:
    """A reminder, not a requirement: outside strict JSON mode pydantic coerces "5" to 5."""
    spec = _spec_of({"batchSize": "5"})
    assert _server_verdict(kube, namespace, spec) is None
    assert BulkTerminationSpec.model_validate(spec).batch_size == 5
