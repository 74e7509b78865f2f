"""Manifests for ``bulkterm apply``: valid ones load, bad ones say which document, field and id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkterm.manifest import ManifestError, load_manifests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEADER = """apiVersion: aiapi.bulkops.dev/v1alpha1
kind: BulkTermination
metadata: {name: job}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ManifestError) as err:
        load_manifests(text, source="m.yaml")
    return err.value.problems


@pytest.mark.parametrize("name", ["bulktermination.yaml", "small.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    manifests = load_manifests((EXAMPLES / name).read_text())
    assert manifests and all(m.spec.targets for m in manifests)


def test_defaults_fill_kind_and_batch_size() -> None:
    (m,) = load_manifests(HEADER + "spec:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n")
    assert m.spec.targets[0].kind.value == "Deployment"
    assert m.spec.batch_size == 100


def test_bad_id_names_document_field_and_id() -> None:
    (problem,) = problems_of(HEADER + "spec:\n  targets: [{id: 'a b', targetStatus: STOPPED}]\n")
    assert problem.startswith("m.yaml: document 1 (job): spec.targets[0].id (id 'a b')")


def test_bad_target_status_is_named() -> None:
    (problem,) = problems_of(HEADER + "spec:\n  targets: [{id: abcd, targetStatus: GONE}]\n")
    assert "spec.targets[0].targetStatus" in problem and "STOPPED" in problem


def test_duplicate_target_is_named_with_both_positions() -> None:
    text = HEADER + (
        "spec:\n  targets:\n"
        "  - {id: abcd, targetStatus: STOPPED}\n"
        "  - {id: abcd, targetStatus: DELETED}\n"
    )
    (problem,) = problems_of(text)
    assert "targets[1]" in problem and "targets[0]" in problem and "'abcd'" in problem


def test_same_id_of_different_kinds_is_allowed() -> None:
    text = HEADER + (
        "spec:\n  targets:\n"
        "  - {kind: Deployment, id: abcd, targetStatus: STOPPED}\n"
        "  - {kind: Execution, id: abcd, targetStatus: DELETED}\n"
    )
    assert len(load_manifests(text)[0].spec.targets) == 2


def test_unknown_field_is_refused_not_ignored() -> None:
    (problem,) = problems_of(
        HEADER + "spec:\n  batchsize: 5\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert "spec.batchsize" in problem


def test_batch_size_above_100_is_refused() -> None:
    (problem,) = problems_of(
        HEADER + "spec:\n  batchSize: 101\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert "spec.batchSize" in problem and "100" in problem


def test_every_bad_document_is_reported_not_just_the_first() -> None:
    good = HEADER + "spec:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    bad = HEADER.replace("job", "second") + "spec:\n  targets: []\n"
    worse = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: third}\n"
    problems = problems_of("---\n".join([good, bad, worse]))
    assert any("document 2 (second): spec.targets" in p for p in problems)
    assert any("document 3 (third): kind must be 'BulkTermination'" in p for p in problems)


def test_invalid_yaml_gives_line_and_column() -> None:
    (problem,) = problems_of("spec: [unclosed\n")
    assert problem.startswith("m.yaml: not valid YAML at line")


def test_empty_input_is_an_error() -> None:
    assert problems_of("") == ["m.yaml: no BulkTermination documents found"]


def test_numbers_given_as_strings_are_refused_as_the_api_server_would() -> None:
    (problem,) = problems_of(
        HEADER + "spec:\n  batchSize: '5'\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert "spec.batchSize" in problem


def test_non_ascii_ids_are_refused_as_the_api_server_would() -> None:
    (problem,) = problems_of(HEADER + "spec:\n  targets: [{id: déployé, targetStatus: STOPPED}]\n")
    assert "spec.targets[0].id" in problem


def test_unquoted_date_like_id_is_read_as_the_string_kubectl_would_send() -> None:
    (m,) = load_manifests(HEADER + "spec:\n  targets: [{id: 2024-01-01, targetStatus: STOPPED}]\n")
    assert m.spec.targets[0].id == "2024-01-01"


def test_a_commented_out_block_is_defaulted_as_the_api_server_does() -> None:
    text = (
        HEADER
        + "spec:\n  connection:\n  #  resourceGroup: team-a\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    (m,) = load_manifests(text)
    assert m.spec.connection.resource_group == "default"


def test_unknown_top_level_and_metadata_fields_are_named() -> None:
    text = (
        "apiVersion: aiapi.bulkops.dev/v1alpha1\nkind: BulkTermination\n"
        "metadata: {name: job, labelz: {a: b}}\nspeck: {}\n"
        "spec:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    problems = problems_of(text)
    assert any("unknown field 'speck'" in p for p in problems)
    assert any("unknown field 'metadata.labelz'" in p for p in problems)


def test_a_name_the_api_server_would_refuse_is_refused() -> None:
    (problem,) = problems_of(
        HEADER.replace("name: job", "name: Nightly_Job")
        + "spec:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert "metadata.name 'Nightly_Job' is not a valid name" in problem
