"""What kstatus itself (sigs.k8s.io/cli-utils, status.Compute; built from hack/kstatus) says
about BulkTerminations captured from a real API server and operator. Flux's health checks
without healthCheckExprs, and kpt, read a resource this way.

kstatus never reads Complete or Failed: it reads ``observedGeneration`` against
``metadata.generation``, then ``Reconciling`` (InProgress) and ``Stalled`` (Failed), then, for
a kind it has no rules for, ``Ready`` (True: Current, False: InProgress); with no condition at
all the resource is Current.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gitops.readers import (
    STATUS_OF_CAPTURE,
    TESTDATA,
    GoMissing,
    captured,
    flux_health,
    kstatus,
)

#: kstatus and Flux's health expressions read every capture alike (``test_kstatus`` checks
#: that they agree object by object).
EXPECTED = STATUS_OF_CAPTURE


@pytest.fixture(scope="module")
def verdicts() -> Iterator[dict[str, dict[str, str]]]:
    try:
        yield kstatus(*sorted(TESTDATA.glob("*.yaml")))
    except GoMissing as e:
        pytest.skip(f"Go is not installed, so hack/kstatus cannot be built: {e}")


@pytest.mark.parametrize(("name", "status"), EXPECTED.items(), ids=list(EXPECTED))
def test_kstatus_on_each_captured_object(
    verdicts: dict[str, dict[str, str]], name: str, status: str
) -> None:
    assert verdicts[f"{name}.yaml"]["status"] == status


def test_every_captured_object_is_judged(verdicts: dict[str, dict[str, str]]) -> None:
    assert set(verdicts) == {f"{name}.yaml" for name in EXPECTED}


def test_a_new_object_waits_on_its_first_observed_generation(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["new.yaml"]["message"] == (
        "BulkTermination generation is 1, but latest observed generation is 0"
    )


def test_a_stalled_run_fails_with_the_stalled_message(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["stalled.yaml"]["message"] == "Secret ml-team/no-such-secret does not exist"


def test_a_running_run_shows_its_progress(verdicts: dict[str, dict[str, str]]) -> None:
    assert verdicts["running.yaml"]["message"] == (
        "1/3 finished (1 succeeded, 0 failed); 2 in flight, 0 pending"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_flux_expressions_agree_with_kstatus(
    verdicts: dict[str, dict[str, str]], name: str
) -> None:
    assert flux_health(captured(name)) == verdicts[f"{name}.yaml"]["status"]


def test_a_complete_run_is_current_through_its_ready_condition(
    verdicts: dict[str, dict[str, str]],
) -> None:
    assert verdicts["complete.yaml"] == {"status": "Current", "message": "Resource is Ready"}
