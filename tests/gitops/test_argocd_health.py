"""Argo CD's health check for BulkTermination (deploy/argocd/aiapi.bulkops.dev/BulkTermination).

Every case of its ``health_test.yaml`` (Argo CD's own test format) runs in Lua 5.1 with only
the libraries Argo CD opens for a check from argocd-cm, against objects captured from a real
API server and operator (hack/gitops/capture.py).
"""

from __future__ import annotations

import pytest
import yaml

from tests.gitops.readers import (
    ARGOCD,
    HEALTH_LUA,
    TESTDATA,
    Health,
    LuaError,
    argocd_health,
    captured,
    health_tests,
    load,
)

CASES = health_tests()


@pytest.mark.parametrize(("input_path", "expected"), CASES, ids=[c[0] for c in CASES])
def test_health_test_yaml_case(input_path: str, expected: Health) -> None:
    assert argocd_health(load(ARGOCD / input_path)) == expected


def test_every_captured_object_is_a_case_of_health_test_yaml() -> None:
    captures = {f"testdata/{p.name}" for p in TESTDATA.glob("*.yaml")}
    assert captures == {path for path, _ in CASES}


def test_a_new_object_is_progressing_until_the_operator_observes_it() -> None:
    assert argocd_health(captured("new")).status == "Progressing"


def test_an_object_with_no_status_at_all_is_progressing() -> None:
    # As a BulkTermination made under a CRD without the status default would read.
    obj = captured("new")
    del obj["status"]
    assert argocd_health(obj) == Health(
        "Progressing", "Waiting for the operator to observe generation 1 (observed: 0)"
    )


def test_an_object_with_an_empty_status_is_progressing() -> None:
    # `status: {}` reads as no status does: no observedGeneration is generation 0 observed
    # (kstatus, which skips its generation check then, needs the CRD's default instead).
    obj = captured("new")
    obj["status"] = {}
    assert argocd_health(obj) == Health(
        "Progressing", "Waiting for the operator to observe generation 1 (observed: 0)"
    )


def test_a_spec_change_after_the_run_finished_is_progressing_until_acknowledged() -> None:
    assert argocd_health(captured("spec-changed")).status == "Progressing"


def test_an_acknowledged_spec_change_keeps_the_finished_verdict() -> None:
    # Captured after the operator acknowledged generation 2 of the finished run: the
    # terminal conditions stay, observedGeneration moves, the message says it was ignored.
    health = argocd_health(captured("acknowledged"))
    assert health.status == "Healthy"
    assert "was ignored" in health.message


def test_a_stalled_run_is_degraded_with_the_stalled_message() -> None:
    assert argocd_health(captured("stalled")) == Health(
        "Degraded", "Secret ml-team/no-such-secret does not exist"
    )


def test_the_check_never_calls_a_library_argo_cd_does_not_open() -> None:
    script = HEALTH_LUA.read_text()
    for library in ("string.", "math.", "io.", ":sub(", ":format(", ":find(", ":match("):
        assert library not in script


@pytest.mark.parametrize(
    "script",
    [
        'return {status = string.upper("healthy")}',
        'return {status = ("healthy"):upper()}',
        "return {status = tostring(math.floor(1.5))}",
        'return {status = require("string").upper("healthy")}',
    ],
    ids=["string library", "string methods", "math library", "require string"],
)
def test_the_sandbox_refuses_what_argo_cd_refuses(script: str) -> None:
    with pytest.raises(LuaError):
        argocd_health(captured("running"), script)


def test_the_sandbox_reports_an_unknown_status_as_argo_cd_does() -> None:
    assert argocd_health(captured("running"), 'return {status = "Fine"}') == Health(
        "Unknown", "Lua returned an invalid health status"
    )


def test_argocd_cm_holds_health_lua_verbatim() -> None:
    config_map = yaml.safe_load((ARGOCD.parents[1] / "argocd-cm.yaml").read_text())
    key = "resource.customizations.health.aiapi.bulkops.dev_BulkTermination"
    assert config_map["data"][key] == HEALTH_LUA.read_text()
