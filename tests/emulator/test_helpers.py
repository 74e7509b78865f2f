"""The emulator's building blocks: patches, selectors, JSONPath, ages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube.patches import PatchError, PatchTestFailed, json_patch, merge_patch
from tests.kube.selectors import SelectorError, field_selector, label_selector
from tests.kube.tables import human_duration, jsonpath


def test_merge_patch_is_copy_on_write() -> None:
    shared = {"targets": [1, 2]}
    doc = {"spec": shared, "status": {"a": 1, "b": 2}}
    result = merge_patch(doc, {"status": {"a": None, "c": 3}})
    assert result == {"spec": shared, "status": {"b": 2, "c": 3}}
    assert result["spec"] is shared
    assert doc["status"] == {"a": 1, "b": 2}


def test_json_patch() -> None:
    doc: dict[str, Any] = {"metadata": {"annotations": {"a/b": "1"}}, "list": [1, 2]}
    ops = [
        {"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"},
        {"op": "add", "path": "/list/-", "value": 3},
        {"op": "replace", "path": "/list/0", "value": 0},
        {"op": "move", "from": "/list/1", "path": "/moved"},
        {"op": "copy", "from": "/moved", "path": "/copied"},
        {"op": "remove", "path": "/metadata/annotations/a~1b"},
    ]
    assert json_patch(doc, ops) == {
        "metadata": {"annotations": {}},
        "list": [0, 3],
        "moved": 2,
        "copied": 2,
    }
    assert doc == {"metadata": {"annotations": {"a/b": "1"}}, "list": [1, 2]}
    with pytest.raises(PatchTestFailed):
        json_patch(doc, [{"op": "test", "path": "/list/0", "value": 9}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=x", True),
        ("app==x", True),
        ("app!=x", False),
        ("app", True),
        ("!app", False),
        ("tier in (a, b)", True),
        ("tier notin (b)", True),
        ("app=x,tier=b", False),
        ("missing!=y", True),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    obj = {"metadata": {"labels": {"app": "x", "tier": "a"}}}
    assert label_selector(selector)(obj) is expected


def test_field_selector() -> None:
    obj = {"metadata": {"name": "n", "namespace": "ns"}}
    assert field_selector("metadata.name=n,metadata.namespace!=other")(obj)
    assert not field_selector("metadata.name==m")(obj)
    with pytest.raises(SelectorError):
        label_selector("a=(")


def test_jsonpath_of_printer_columns() -> None:
    obj = {
        "status": {
            "progress": "1/2",
            "conditions": [
                {"type": "Reconciling", "reason": "Running"},
                {"type": "Ready", "reason": "Complete"},
            ],
        }
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].reason') == ["Complete"]
    assert jsonpath(obj, ".status.progress") == ["1/2"]
    assert jsonpath(obj, ".status.conditions[*].type") == ["Reconciling", "Ready"]
    assert jsonpath(obj, ".status.conditions[0].type") == ["Reconciling"]
    assert jsonpath(obj, ".status.missing") == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
        (400 * 86400, "400d"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text
