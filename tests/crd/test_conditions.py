"""``status.conditions`` is metav1.Condition's shape: ``type``, ``status``, ``reason``,
``message`` and ``lastTransitionTime`` each required, ``reason`` CamelCase within its pattern,
and every condition the operator writes passes.

Asked of the real API server through the status subresource, as the operator writes it: a
condition a reader such as ``kubectl wait``, kstatus or Argo CD could not rely on is refused
there, and a condition the operator builds that the schema refused would fail every status
write of its run.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bulkterm.engine.progress import (
    Condition,
    Phase,
    Progress,
    Situation,
    build_conditions,
    with_observed_generation,
)
from bulkterm.k8s import credentials
from bulkterm.k8s.status import acknowledgement
from tests.crd.server import problems
from tests.kube import Kube, KubeApiError

REQUIRED = ("type", "status", "reason", "message", "lastTransitionTime")
#: metav1.Condition's reason pattern.
REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "bulkterm"
T0 = datetime(2026, 11, 28, 20, 47, tzinfo=UTC)
T1 = datetime(2026, 11, 28, 21, 5, tzinfo=UTC)


def _condition(**overrides: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": "Ready",
        "status": "False",
        "reason": "Running",
        "message": "0/2 finished (0 succeeded, 0 failed); 2 in flight, 0 pending",
        "lastTransitionTime": "2026-11-28T20:47:00Z",
        "observedGeneration": 1,
    }
    condition.update(overrides)
    return {k: v for k, v in condition.items() if v is not None}


def _write(kube: Kube, stored: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    meta = stored["metadata"]
    kube.patch_status("bt", meta["name"], status, namespace=meta["namespace"])
    return kube.get("bt", meta["name"], namespace=meta["namespace"])


def _refusal(kube: Kube, stored: dict[str, Any], condition: dict[str, Any]) -> list[str]:
    with pytest.raises(KubeApiError) as refused:
        _write(kube, stored, {"conditions": [condition]})
    assert refused.value.status == 422
    return [f"{field}: {message}" for field, message in problems(refused.value)]


def test_the_schema_requires_what_metav1_condition_requires(openapi: dict[str, Any]) -> None:
    items = openapi["properties"]["status"]["properties"]["conditions"]["items"]
    assert set(items["required"]) == set(REQUIRED)
    assert items["properties"]["reason"]["pattern"] == REASON
    assert items["properties"]["reason"]["maxLength"] == 1024
    assert items["properties"]["message"]["maxLength"] == 32768
    assert items["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_a_complete_condition_is_admitted(kube: Kube, stored: dict[str, Any]) -> None:
    read = _write(kube, stored, {"conditions": [_condition()]})
    assert read["status"]["conditions"] == [_condition()]


def test_an_empty_message_is_admitted(kube: Kube, stored: dict[str, Any]) -> None:
    # Required, as metav1.Condition's, but may be empty.
    read = _write(kube, stored, {"conditions": [_condition(message="")]})
    assert read["status"]["conditions"][0]["message"] == ""


@pytest.mark.parametrize("field", REQUIRED)
def test_a_condition_without_a_required_field_is_refused(
    kube: Kube, stored: dict[str, Any], field: str
) -> None:
    condition = _condition()
    del condition[field]
    assert f"status.conditions[0].{field}: Required value" in _refusal(kube, stored, condition)


@pytest.mark.parametrize(
    "reason",
    ["", "Not CamelCase", "1Starts-with-a-digit", "EndsWith:", "Has-Hyphen", "R" * 1025],
    ids=["empty", "space", "digit-first", "trailing-colon", "hyphen", "too-long"],
)
def test_a_reason_outside_metav1_condition_constraints_is_refused(
    kube: Kube, stored: dict[str, Any], reason: str
) -> None:
    refused = _refusal(kube, stored, _condition(reason=reason))
    assert any(p.startswith("status.conditions[0].reason: ") for p in refused), refused


def test_a_lasttransitiontime_that_is_not_a_date_time_is_refused(
    kube: Kube, stored: dict[str, Any]
) -> None:
    refused = _refusal(kube, stored, _condition(lastTransitionTime="yesterday"))
    assert any(p.startswith("status.conditions[0].lastTransitionTime: ") for p in refused)


def test_a_message_over_32768_characters_is_refused(kube: Kube, stored: dict[str, Any]) -> None:
    refused = _refusal(kube, stored, _condition(message="x" * 32769))
    assert any(p.startswith("status.conditions[0].message: ") for p in refused), refused


# --- what the operator writes ---------------------------------------------------------------


def _reasons() -> list[str]:
    """Every condition reason the operator can write, as its source spells them: the second
    argument of each ``Situation(...)``, each error class's ``reason``, the first argument of
    each ``.hold(...)``/``.fail(...)`` of a run, the credentials problems (the table in
    :mod:`bulkterm.k8s.credentials`), and the few the builder and verdicts return directly."""
    found = {"Complete", "Failed", "Resumed", "AiApiTimeout", "AiApiUnavailable"}
    for path in OPERATOR.rglob("*.py"):
        if "simulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                position = {"Situation": 1, "hold": 0, "fail": 0}.get(name)
                if position is not None and len(node.args) > position:
                    arg = node.args[position]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    target, value = _assignment(statement)
                    if target == "reason" and isinstance(value, str):
                        found.add(value)
    # A reason starts each row of the table (a row's continuation lines are indented).
    lines = (credentials.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    found.update(line.split()[0] for line in lines[rules[1] + 1 : rules[2]] if line[:1].isalpha())
    return sorted(found)


def _assignment(statement: ast.stmt) -> tuple[str | None, object]:
    """``(name, constant)`` of ``name = "..."`` or ``name: str = "..."``."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target, value = statement.targets[0], statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value = statement.target, statement.value
    else:
        return None, None
    if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
        return target.id, value.value
    return None, None


def test_the_reasons_written_are_collected() -> None:
    reasons = _reasons()
    assert {
        "SecretNotFound", "Unauthorized", "NotTheAiApi", "TLSVerificationFailed", "InvalidSpec",
        "LeaseForbidden", "FailedTargets", "Retrying",
    } <= set(reasons)  # fmt: skip


@pytest.mark.parametrize("reason", _reasons())
def test_every_reason_the_operator_writes_fits_the_pattern(reason: str) -> None:
    assert re.fullmatch(REASON, reason)


def _written(phase: Phase, previous: list[Condition]) -> list[Condition]:
    situation = Situation(phase, "DeadlineExceeded", "1/2 finished (1 succeeded, 0 failed)")
    return build_conditions(previous, situation, now=T1, observed_generation=1)


def _every_list_written() -> list[Any]:
    """The condition lists the builder makes: every phase, from no conditions and from
    those of every other phase (a transition moves lastTransitionTime of some, not others)."""
    cases = []
    for phase in Phase:
        cases.append(pytest.param([], phase, id=f"first-{phase.value}"))
        for before in Phase:
            if before is not phase:
                previous = build_conditions(
                    [], Situation(before, "Running", ""), now=T0, observed_generation=1
                )
                cases.append(pytest.param(previous, phase, id=f"{before.value}-{phase.value}"))
    return cases


@pytest.mark.parametrize(("previous", "phase"), _every_list_written())
def test_every_condition_list_the_operator_writes_is_admitted(
    kube: Kube, stored: dict[str, Any], previous: list[Condition], phase: Phase
) -> None:
    record = Progress(total=2, pending=2, conditions=_written(phase, previous))
    status = with_observed_generation(record, 1).to_status()
    assert all(set(REQUIRED) <= set(c) for c in status["conditions"])  # type: ignore[union-attr]
    assert _write(kube, stored, status)["status"]["conditions"] == status["conditions"]


def test_an_acknowledged_spec_change_keeps_the_conditions_admitted(
    kube: Kube, stored: dict[str, Any]
) -> None:
    record = Progress(total=2, succeeded=2, conditions=_written(Phase.COMPLETE, []))
    status = with_observed_generation(record, 1).to_status()
    _write(kube, stored, status)
    patch = acknowledgement(status, 2, ran=1)
    assert _write(kube, stored, patch)["status"]["conditions"] == patch["conditions"]
