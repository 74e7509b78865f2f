"""What ``bulkterm apply -f`` reads (files, directories, stdin) and what ``-o`` prints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import bulkterm.manifest as manifest_module
from bulkterm.aiapi.models import Kind
from bulkterm.manifest import ManifestError, load_manifests
from bulkterm.spec import MAX_LISTED_TARGETS, MAX_TARGETS
from tests.cli.test_apply import bulkterm, manifest


def _doc(name: str, id_: str) -> str:
    return manifest(("Deployment", id_, "STOPPED"), name=name)


@pytest.fixture
def manifests_dir(tmp_path: Path) -> Path:
    """``b.yml``, ``a.yaml``, ``c.json``, a README and ``sub/d.yaml``: kubectl's view of a dir."""
    root = tmp_path / "manifests"
    (root / "sub").mkdir(parents=True)
    (root / "b.yml").write_text(_doc("second", "dep-b001"))
    (root / "a.yaml").write_text(_doc("first", "dep-a001"))
    (root / "c.json").write_text(json.dumps(yaml.safe_load(_doc("third", "dep-c001"))))
    (root / "README.md").write_text("# not a manifest\n")
    (root / "sub" / "d.yaml").write_text(_doc("nested", "dep-d001"))
    return root


def _names(stdout: str) -> list[str]:
    payload = json.loads(stdout)
    assert (payload["apiVersion"], payload["kind"]) == ("v1", "List"), payload
    return [item["metadata"]["name"] for item in payload["items"]]


def test_a_directory_applies_its_yaml_and_json_files_sorted_not_recursively(
    manifests_dir: Path,
) -> None:
    result = bulkterm("apply", "-f", str(manifests_dir), "--simulator", "--dry-run", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert _names(result.stdout) == ["first", "second", "third"]


def test_recursive_also_reads_subdirectories(manifests_dir: Path) -> None:
    result = bulkterm(
        "apply", "-R", "-f", str(manifests_dir), "--simulator", "--dry-run", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    assert _names(result.stdout) == ["first", "second", "third", "nested"]


def test_a_problem_in_a_directory_names_the_file(manifests_dir: Path) -> None:
    (manifests_dir / "b.yml").write_text(_doc("second", "no way"))
    result = bulkterm("apply", "-f", str(manifests_dir), "--simulator")
    assert result.returncode == 2
    assert f"{manifests_dir / 'b.yml'}: document 1 (second): spec.targets[0].id" in result.stderr
    assert result.stdout == ""


def test_a_directory_without_manifests_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    result = bulkterm("apply", "-f", str(tmp_path), "--simulator")
    assert result.returncode == 2
    assert f"{tmp_path}: no .yaml, .yml or .json files" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_output_of_one_document_is_the_object_itself(tmp_path: Path) -> None:
    result = bulkterm(
        "apply", "-f", "-", "--simulator", "--dry-run", "-o", "json",
        stdin=_doc("only", "dep-o001"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["kind"] == "BulkTermination" and payload["metadata"] == {"name": "only"}
    assert "status" in payload


def test_json_output_of_several_documents_is_a_list(tmp_path: Path) -> None:
    text = "---\n".join([_doc("one", "dep-o001"), _doc("two", "dep-t001")])
    result = bulkterm("apply", "-f", "-", "--simulator", "--dry-run", "-o", "json", stdin=text)
    assert result.returncode == 0, result.stderr
    assert _names(result.stdout) == ["one", "two"]


# --- an over-long manifest is refused before it costs much ------------------------------------


def _many_targets(count: int, name: str = "big") -> str:
    lines = [
        "apiVersion: aiapi.bulkops.dev/v1alpha1",
        "kind: BulkTermination",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  targets:",
    ]
    lines += [
        f"  - {{kind: Deployment, id: d{i:07d}, targetStatus: STOPPED}}" for i in range(count)
    ]
    return "\n".join(lines) + "\n"


def test_too_many_targets_are_refused_early_and_cheaply(monkeypatch: pytest.MonkeyPatch) -> None:
    """100,001 targets: refused with the count, before any target becomes a Python object."""

    def no_construction(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the documents were constructed")

    monkeypatch.setattr(manifest_module, "_construct_documents", no_construction)
    text = _many_targets(100_001)
    started = time.monotonic()
    with pytest.raises(ManifestError) as refused:
        load_manifests(text, source="big.yaml")
    elapsed = time.monotonic() - started
    assert refused.value.problems == [f"big.yaml: document 1 (big): {_listed_refusal(100_001)}"]
    assert elapsed < 10, elapsed  # was 23 s (pure-Python YAML, then pydantic)


def test_too_many_targets_in_a_later_document_names_that_document() -> None:
    over = MAX_LISTED_TARGETS + 1
    text = "---\n".join([_doc("small", "dep-s001"), "", _many_targets(over, "later")])
    with pytest.raises(ManifestError) as refused:
        load_manifests(text, source="m.yaml")
    assert refused.value.problems == [
        f"m.yaml: document 2 (later): {_listed_refusal(over, 'm.yaml')}"
    ]


def test_exactly_the_maximum_is_accepted() -> None:
    (m,) = load_manifests(_many_targets(MAX_LISTED_TARGETS))
    assert len(m.spec.targets) == MAX_LISTED_TARGETS


def _listed_refusal(count: int, source: str = "big.yaml") -> str:
    return (
        f"spec.targets: {count} targets, at most {MAX_LISTED_TARGETS} in this form (list up to "
        f"{MAX_TARGETS} ids in spec.deployments and spec.executions instead); " + _way_out(source)
    )


def _way_out(source: str) -> str:
    return (
        f"`bulkterm split -f {source} > parts.yaml` writes it as BulkTerminations that fit "
        f"(at most {MAX_TARGETS} ids each, named NAME-1, NAME-2, …); apply parts.yaml instead "
        "(`bulkterm apply -f parts.yaml`, or `kubectl apply --server-side -f parts.yaml`)"
    )


def _many_ids(deployments: int, executions: int, name: str = "big") -> str:
    def block(kind: str, prefix: str, count: int) -> list[str]:
        return [f"  {kind}:", "    targetStatus: DELETED", "    ids:"] + [
            f"    - {prefix}{i:015x}" for i in range(count)
        ]

    lines = [
        "apiVersion: aiapi.bulkops.dev/v1alpha1",
        "kind: BulkTermination",
        f"metadata: {{name: {name}}}",
        "spec:",
        *block("deployments", "d", deployments),
        *block("executions", "e", executions),
    ]
    return "\n".join(lines) + "\n"


def test_the_compact_form_carries_the_maximum_across_both_kinds() -> None:
    (m,) = load_manifests(_many_ids(6_000, MAX_TARGETS - 6_000))
    assert len(m.spec.targets) == MAX_TARGETS
    assert m.spec.targets[0].kind is Kind.DEPLOYMENT
    assert m.spec.targets[6_000].kind is Kind.EXECUTION  # deployments first, then executions


def test_too_many_ids_across_both_kinds_are_refused_early(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_construction(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the documents were constructed")

    monkeypatch.setattr(manifest_module, "_construct_documents", no_construction)
    with pytest.raises(ManifestError) as refused:
        load_manifests(_many_ids(6_000, MAX_TARGETS - 5_999), source="big.yaml")
    assert refused.value.problems == [
        f"big.yaml: document 1 (big): spec: at most {MAX_TARGETS} ids in spec.deployments.ids "
        f"and spec.executions.ids together, got {MAX_TARGETS + 1}; {_way_out('big.yaml')}"
    ]


def test_the_way_out_is_bulkterm_split_of_the_same_input() -> None:
    """Whatever noticed the size (the streaming count or the check after loading), the
    refusal names ``bulkterm split`` with the command line for this input."""
    over = MAX_LISTED_TARGETS + 1
    items = ", ".join(f"{{id: d{i:07d}, targetStatus: STOPPED}}" for i in range(over))
    aliased = (
        "apiVersion: aiapi.bulkops.dev/v1alpha1\nkind: BulkTermination\n"
        f"metadata: {{name: job, annotations: {{a: &t [{items}]}}}}\n"
        "spec: {targets: *t}\n"
    )
    for text, source, command in [
        (_many_ids(MAX_TARGETS + 1, 0), "big.yaml", "bulkterm split -f big.yaml > parts.yaml"),
        (_many_ids(MAX_TARGETS + 1, 0), "stdin", "bulkterm split -f - > parts.yaml"),
        (aliased, "my list.yaml", "bulkterm split -f 'my list.yaml' > parts.yaml"),
    ]:
        with pytest.raises(ManifestError) as refused:
            load_manifests(text, source=source)
        (problem,) = refused.value.problems
        assert f"`{command}` writes it as BulkTerminations that fit" in problem


def test_bulkterm_apply_of_a_list_over_the_limit_names_bulkterm_split(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(_many_ids(MAX_TARGETS + 1, 0))
    result = bulkterm("apply", "-f", str(path), "--simulator")
    assert result.returncode == 2, result.stderr
    assert f"`bulkterm split -f {path} > parts.yaml`" in result.stderr
    assert "apply parts.yaml instead" in result.stderr


def test_an_aliased_targets_list_is_counted_too() -> None:
    """The streaming count cannot see through an alias; the check after loading does."""
    over = MAX_LISTED_TARGETS + 1
    items = ", ".join(f"{{id: d{i:07d}, targetStatus: STOPPED}}" for i in range(over))
    text = (
        "apiVersion: aiapi.bulkops.dev/v1alpha1\nkind: BulkTermination\n"
        f"metadata: {{name: job, annotations: {{a: &t [{items}]}}}}\n"
        "spec: {targets: *t}\n"
    )
    with pytest.raises(ManifestError) as refused:
        load_manifests(text, source="m.yaml")
    assert any(
        f"spec.targets: {over} targets, at most {MAX_LISTED_TARGETS}" in p
        for p in refused.value.problems
    ), refused.value.problems


def test_the_c_yaml_loader_is_used_when_present() -> None:
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml")
    assert manifest_module.YamlLoader is yaml.CSafeLoader
