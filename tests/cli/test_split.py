"""``bulkterm split``: a BulkTermination too large for the API server, written as several that fit."""

from __future__ import annotations

from collections import Counter

import yaml
from click.testing import CliRunner

from bulkterm.manifest import load_manifests
from bulkterm.spec import MAX_TARGETS
from bulkterm.split import split_command


def _big(deployments: int, executions: int, *, status: str = "STOPPED") -> str:
    targets = [
        {"kind": "Deployment", "id": f"d{i:015x}", "targetStatus": status}
        for i in range(deployments)
    ] + [
        {"kind": "Execution", "id": f"e{i:015x}", "targetStatus": "DELETED"}
        for i in range(executions)
    ]
    return yaml.safe_dump(
        {
            "apiVersion": "aiapi.bulkops.dev/v1alpha1",
            "kind": "BulkTermination",
            "metadata": {"name": "cleanup", "namespace": "ml", "labels": {"team": "ml"}},
            "spec": {
                "connection": {"secretRef": {"name": "aicore"}},
                "batchSize": 50,
                "targets": targets,
            },
        }
    )


def _run(text: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(split_command, ["-f", "-", *args], input=text)
    return result.exit_code, result.stdout, result.stderr


def test_twenty_five_thousand_targets_become_parts_the_api_server_takes() -> None:
    code, out, err = _run(_big(20_000, 5_000))
    assert code == 0, err
    parts = load_manifests(out)  # bounded: what the API server and bulkterm apply accept
    assert [p.name for p in parts] == ["cleanup-1", "cleanup-2", "cleanup-3"]
    assert [len(p.spec.targets) for p in parts] == [MAX_TARGETS, MAX_TARGETS, 5_000]
    written = Counter((t.kind, t.id, t.target_status) for p in parts for t in p.spec.targets)
    (original,) = load_manifests(_big(20_000, 5_000), unbounded=True)
    assert written == Counter((t.kind, t.id, t.target_status) for t in original.spec.targets)
    assert "cleanup: 25000 targets in 3 BulkTermination(s): cleanup-1 … cleanup-3" in err


def test_each_part_holds_one_kind_and_one_target_status() -> None:
    code, out, _ = _run(_big(3, 2), "--max-targets", "2")
    assert code == 0
    specs = [doc["spec"] for doc in yaml.safe_load_all(out)]
    forms = [(next(k for k in ("deployments", "executions") if k in s)) for s in specs]
    assert forms == ["deployments", "deployments", "executions"]
    assert [s[f]["ids"] for s, f in zip(specs, forms, strict=True)] == [
        ["d000000000000000", "d000000000000001"],
        ["d000000000000002"],
        ["e000000000000000", "e000000000000001"],
    ]


def test_the_rest_of_the_spec_and_the_labels_are_copied_without_defaults() -> None:
    code, out, _ = _run(_big(2, 0), "--max-targets", "1")
    assert code == 0
    first = next(yaml.safe_load_all(out))
    assert first["metadata"] == {"name": "cleanup-1", "namespace": "ml", "labels": {"team": "ml"}}
    assert first["spec"] == {
        "deployments": {"targetStatus": "STOPPED", "ids": ["d000000000000000"]},
        "connection": {"secretRef": {"name": "aicore"}},
        "batchSize": 50,
    }


def test_a_manifest_that_fits_comes_back_as_one_document_under_its_own_name() -> None:
    code, out, _ = _run(_big(10, 0))
    assert code == 0
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["cleanup"]


def test_a_bad_target_is_named_and_nothing_is_written() -> None:
    text = _big(12_000, 0).replace("d000000000000007", "d 7", 1)
    code, out, err = _run(text)
    assert code == 2
    assert out == ""
    assert "spec.targets[7].id (id 'd 7'): must be 4 to 64 ASCII letters" in err


def test_a_duplicate_anywhere_in_a_large_input_is_refused() -> None:
    text = _big(12_000, 0).replace("d000000000002edf", "d000000000000001", 1)
    code, _, err = _run(text)
    assert code == 2
    assert (
        "spec.targets[11999] (id 'd000000000000001'): Deployment 'd000000000000001' is already listed at targets[1]"
        in err
    )


def test_max_targets_out_of_range_is_refused() -> None:
    code, out, err = _run(_big(2, 0), "--max-targets", "10001")
    assert code == 2 and out == ""
    assert "--max-targets must be between 1 and 10000, got 10001" in err


def test_the_parts_need_no_further_grant_on_the_secret() -> None:
    """Spending a key is RBAC's verb ``use`` on the Secret, checked at admission against each
    part's author, whatever the part is called: the parts' new names change nothing."""
    code, _, err = _run(_big(3, 0), "--max-targets", "2")
    assert code == 0
    (note,) = [line for line in err.splitlines() if line.startswith("note: ")]
    assert "need no further grant" in note
    assert "needs the verb `use` on that Secret, as for cleanup" in note
    assert "`kubectl -n ml auth can-i use secret/aicore`" in note


def test_a_name_grant_is_mentioned_only_for_operators_that_allow_name_grants() -> None:
    _, _, err = _run(_big(3, 0), "--max-targets", "2")
    (note,) = [line for line in err.splitlines() if line.startswith("note: ")]
    grant = note.split(". Only where ", 1)[1]
    assert grant.startswith("the operator allows name grants (BULKTERM_ALLOW_NAME_GRANTS")
    assert "aiapi.bulkops.dev/allowed-bulkterminations must name the parts" in grant
    assert "cleanup-*" in grant


def test_a_manifest_that_fits_gets_no_note() -> None:
    _, _, err = _run(_big(10, 0))
    assert "note:" not in err
