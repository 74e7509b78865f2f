"""Manifests for ``bulkterm apply``: valid ones load, bad ones say which document, field and id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkterm.manifest import ManifestError, load_manifests
from bulkterm.spec import NO_TARGETS, ONE_FORM

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEADER = """apiVersion: aiapi.bulkops.dev/v1alpha1
kind: BulkTermination
metadata: {name: job}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ManifestError) as err:
        load_manifests(text, source="m.yaml")
    return err.value.problems


@pytest.mark.parametrize("name", ["bulktermination.yaml", "small.yaml", "approval.yaml"])
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
    assert problem == (
        "m.yaml: document 1 (job): spec.targets[0].targetStatus (id 'abcd'): "
        "must be one of STOPPED, DELETED, got 'GONE'"
    )


def test_duplicate_target_is_named_with_both_positions() -> None:
    text = HEADER + (
        "spec:\n  targets:\n"
        "  - {id: abcd, targetStatus: STOPPED}\n"
        "  - {id: abcd, targetStatus: DELETED}\n"
    )
    (problem,) = problems_of(text)
    assert problem == (
        "m.yaml: document 1 (job): spec.targets[1] (id 'abcd'): Deployment 'abcd' is already "
        "listed at targets[0]; each (kind, id) may appear once"
    )


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
    assert (
        problem
        == "m.yaml: document 1 (job): spec.batchsize: unknown field (did you mean batchSize?)"
    )


def test_a_misspelt_target_field_gets_a_suggestion() -> None:
    problems = problems_of(
        HEADER + "spec:\n  targets:\n  - {id: abcd, targetStatus: STOPPED}\n"
        "  - {id: efgh, targetStatuss: STOPPED}\n"
    )
    # Not also "targetStatus: required": the suggestion says it.
    assert problems == [
        "m.yaml: document 1 (job): spec.targets[1].targetStatuss (id 'efgh'): unknown field "
        "(did you mean targetStatus?)",
    ]


def test_an_unknown_field_like_no_other_gets_no_suggestion() -> None:
    (problem,) = problems_of(
        HEADER + "spec:\n  color: red\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert problem == "m.yaml: document 1 (job): spec.color: unknown field"


@pytest.mark.parametrize(
    ("spec_line", "expected"),
    [
        ("batchSize: 101", "spec.batchSize: must be an integer between 1 and 100, got 101"),
        ("batchSize: '5'", "spec.batchSize: must be an integer between 1 and 100, got '5'"),
        ("batchSize: 0", "spec.batchSize: must be an integer between 1 and 100, got 0"),
        ("dryRun: 'yes'", "spec.dryRun: must be true or false, got 'yes'"),
        (
            "activeDeadlineSeconds: 0",
            "spec.activeDeadlineSeconds: must be an integer of at least 1, got 0",
        ),
        (
            "activeDeadlineSeconds: 1.5",
            "spec.activeDeadlineSeconds: must be an integer of at least 1, got 1.5",
        ),
        (
            "connection: {resourceGroup: -x}",
            "spec.connection.resourceGroup: must be 3 to 253 ASCII letters, digits, '.' or "
            "'-', starting and ending with a letter or digit, got '-x'",
        ),
        (
            "connection: {secretRef: {name: ''}}",
            "spec.connection.secretRef.name: must not be empty",
        ),
        ("connection: {secretRef: {key: k}}", "spec.connection.secretRef.name: required"),
        ("connection: []", "spec.connection: must be a mapping"),
        (
            "connection: {secretRef: {name: '" + "x" * 254 + "'}}",
            "spec.connection.secretRef.name: must be at most 253 characters",
        ),
    ],
)
def test_messages_speak_the_manifest_language(spec_line: str, expected: str) -> None:
    text = HEADER + f"spec:\n  {spec_line}\n  targets: [{{id: abcd, targetStatus: STOPPED}}]\n"
    (problem,) = problems_of(text)
    assert problem == f"m.yaml: document 1 (job): {expected}"


def test_target_messages_speak_the_manifest_language() -> None:
    text = HEADER + (
        "spec:\n  targets:\n"
        "  - {kind: Pod, id: abcd, targetStatus: STOPPED}\n"
        "  - {id: 'a b', targetStatus: STOPPED}\n"
        "  - {targetStatus: STOPPED}\n"
        "  - not-a-mapping\n"
    )
    assert problems_of(text) == [
        "m.yaml: document 1 (job): spec.targets[0].kind (id 'abcd'): "
        "must be one of Deployment, Execution, got 'Pod'",
        "m.yaml: document 1 (job): spec.targets[1].id (id 'a b'): "
        "must be 4 to 64 ASCII letters, digits, '_', '.' or '-'",
        "m.yaml: document 1 (job): spec.targets[2].id: required",
        "m.yaml: document 1 (job): spec.targets[3]: must be a mapping",
    ]


def test_an_empty_or_missing_target_list_is_explained() -> None:
    assert problems_of(HEADER + "spec:\n  targets: []\n") == [
        "m.yaml: document 1 (job): spec.targets: must list at least 1 target"
    ]
    assert problems_of(HEADER + "spec:\n  batchSize: 5\n") == [
        f"m.yaml: document 1 (job): spec: {NO_TARGETS}"
    ]
    assert problems_of(HEADER + "spec:\n  targets: {id: abcd}\n") == [
        "m.yaml: document 1 (job): spec.targets: must be a list"
    ]


def test_no_message_speaks_pydantic() -> None:
    text = HEADER + (
        "spec:\n  batchSize: 1000\n  pollIntervalSeconds: x\n  dryRun: 2\n  foo: 1\n"
        "  connection: {resourceGroup: '-', secretRef: {name: '', namespace: ''}}\n"
        "  targets:\n"
        "  - {kind: Pod, id: 'a b', targetStatus: gone, extra: 1}\n"
        "  - {id: abcd, targetStatus: STOPPED}\n  - {id: abcd, targetStatus: STOPPED}\n"
    )
    problems = problems_of(text)
    for jargon in (
        "after validation",
        "Extra inputs",
        "Input should",
        "String should",
        "Value error",
    ):
        assert not any(jargon in p for p in problems), problems


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
    assert "m.yaml: document 1 (job): speck: unknown field" in problems  # spec is there
    assert (
        "m.yaml: document 1 (job): metadata.labelz: unknown field (did you mean labels?)"
        in problems
    )


def test_a_misspelt_spec_is_named_once() -> None:
    problems = problems_of(HEADER + "speck:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n")
    assert problems == ["m.yaml: document 1 (job): speck: unknown field (did you mean spec?)"]


def test_a_name_the_api_server_would_refuse_is_refused() -> None:
    (problem,) = problems_of(
        HEADER.replace("name: job", "name: Nightly_Job")
        + "spec:\n  targets: [{id: abcd, targetStatus: STOPPED}]\n"
    )
    assert "metadata.name 'Nightly_Job' is not a valid name" in problem


def test_an_object_of_another_kind_is_one_problem_not_one_per_field() -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {a: b}\n"
    assert problems_of(secret) == [
        "m.yaml: document 1 (key): kind must be 'BulkTermination', got 'Secret'"
    ]


# --- the compact form: ids sharing one targetStatus per kind -------------------------------


def test_the_compact_form_lists_deployments_then_executions_in_index_order() -> None:
    (m,) = load_manifests(
        HEADER + "spec:\n"
        "  executions: {targetStatus: DELETED, ids: [e0001, e0002]}\n"
        "  deployments: {targetStatus: STOPPED, ids: [d0001]}\n"
    )
    assert [(t.kind.value, t.id, t.target_status.value) for t in m.spec.targets] == [
        ("Deployment", "d0001", "STOPPED"),
        ("Execution", "e0001", "DELETED"),
        ("Execution", "e0002", "DELETED"),
    ]


def test_a_repeated_id_in_the_compact_form_names_both_places() -> None:
    assert problems_of(
        HEADER + "spec:\n  deployments: {targetStatus: STOPPED, ids: [d0001, d0002, d0001]}\n"
    ) == [
        "m.yaml: document 1 (job): spec.deployments.ids[2]: 'd0001' is already listed at "
        "ids[0]; each id may appear once"
    ]


def test_the_same_id_as_a_deployment_and_an_execution_is_two_targets() -> None:
    (m,) = load_manifests(
        HEADER + "spec:\n"
        "  deployments: {targetStatus: STOPPED, ids: [x0001]}\n"
        "  executions: {targetStatus: STOPPED, ids: [x0001]}\n"
    )
    assert len(m.spec.targets) == 2


def test_both_forms_at_once_are_refused() -> None:
    assert problems_of(
        HEADER + "spec:\n"
        "  targets: [{id: d0001, targetStatus: STOPPED}]\n"
        "  deployments: {targetStatus: STOPPED, ids: [d0002]}\n"
    ) == [f"m.yaml: document 1 (job): spec: {ONE_FORM}"]


def test_a_compact_list_needs_its_target_status_and_at_least_one_id() -> None:
    assert problems_of(HEADER + "spec:\n  executions: {ids: [e0001]}\n") == [
        "m.yaml: document 1 (job): spec.executions.targetStatus: required"
    ]
    assert problems_of(HEADER + "spec:\n  executions: {targetStatus: DELETED, ids: []}\n") == [
        "m.yaml: document 1 (job): spec.executions.ids: must list at least 1 id"
    ]


def test_a_bad_id_in_the_compact_form_is_named_with_its_index() -> None:
    assert problems_of(
        HEADER + "spec:\n  deployments: {targetStatus: STOPPED, ids: [d0001, 'd 2']}\n"
    ) == [
        "m.yaml: document 1 (job): spec.deployments.ids[1]: must be 4 to 64 ASCII letters, "
        "digits, '_', '.' or '-', got 'd 2'"
    ]
