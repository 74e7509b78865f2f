"""Execution schedules as the spec describes them, and the executions ACTIVE ones start.

``/lm/executionSchedules`` (``execution_schedule.query``/``count``/``get``/``modify``/
``delete``): filters ``configurationId`` and ``status`` (ACTIVE/INACTIVE), ``$top``/``$skip``.
An ACTIVE schedule starts an execution every ``period_seconds`` of the simulator's clock (its
cron is shown, not interpreted); an INACTIVE one starts none. The clock here only moves when
a test advances it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator import Simulator
from tests.simulator.spec import Spec, load_spec

INACTIVE = {"status": "INACTIVE"}
ACTIVE = {"status": "ACTIVE"}
SCHEDULES = "/v2/lm/executionSchedules"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(load_spec())


@pytest.fixture
def nightly(sim: Simulator) -> str:
    """An ACTIVE schedule of ``cfg-train`` (scenario ``training``) running every 60 s."""
    sim.add_execution_schedule(
        "nightly",
        configuration_id="cfg-train",
        scenario_id="training",
        executable_id="exe-train",
        period_seconds=60,
        cron="0 0 * * *",
    )
    return "nightly"


async def runs_of(api: httpx.AsyncClient, schedule: str) -> list[dict[str, Any]]:
    response = await api.get("/v2/lm/executions", params={"executionScheduleId": schedule})
    assert response.status_code == 200, response.text
    resources: list[dict[str, Any]] = response.json()["resources"]
    return resources


async def patch(api: httpx.AsyncClient, schedule: str, body: Any) -> httpx.Response:
    return await api.patch(f"{SCHEDULES}/{schedule}", json=body)


# -- running -------------------------------------------------------------------------------


async def test_an_active_schedule_starts_nothing_before_its_first_period(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(59)
    assert await runs_of(api, nightly) == []


async def test_an_active_schedule_starts_an_execution_every_period(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(60)
    assert len(await runs_of(api, nightly)) == 1
    sim.advance(125)
    assert len(await runs_of(api, nightly)) == 3


async def test_a_started_execution_names_its_schedule_configuration_and_scenario(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(60)
    (run,) = await runs_of(api, nightly)
    assert run["executionScheduleId"] == "nightly"
    assert run["configurationId"] == "cfg-train"
    assert run["scenarioId"] == "training"
    assert run["executableId"] == "exe-train"


async def test_runs_missed_between_looks_start_at_their_due_times_and_have_moved_on(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(60)
    first_due = datetime.fromisoformat((await runs_of(api, nightly))[0]["createdAt"])
    sim.advance(60 * 5)
    runs = await runs_of(api, nightly)
    created = [datetime.fromisoformat(r["createdAt"]) for r in runs]
    assert created == [first_due + timedelta(seconds=60 * n) for n in range(6)]
    # The oldest has run its whole lifecycle (UNKNOWN 2 s, PENDING 3 s, 60 s running); the
    # newest has only just been created.
    assert (runs[0]["status"], runs[-1]["status"]) == ("COMPLETED", "UNKNOWN")


async def test_an_inactive_schedule_starts_nothing(sim: Simulator, api: httpx.AsyncClient) -> None:
    sim.add_execution_schedule(
        "paused", configuration_id="cfg-train", status=ScheduleStatus.INACTIVE, period_seconds=60
    )
    sim.advance(600)
    assert await runs_of(api, "paused") == []


async def test_pausing_stops_further_runs_but_keeps_those_already_due(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(130)
    response = await patch(api, nightly, INACTIVE)
    assert response.status_code == 202
    sim.advance(600)
    assert len(await runs_of(api, nightly)) == 2


async def test_reactivating_restarts_the_period_without_catching_up(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    await patch(api, nightly, INACTIVE)
    sim.advance(600)
    await patch(api, nightly, ACTIVE)
    sim.advance(59)
    assert await runs_of(api, nightly) == []
    sim.advance(1)
    assert len(await runs_of(api, nightly)) == 1


async def test_a_schedule_runs_only_until_its_end(sim: Simulator, api: httpx.AsyncClient) -> None:
    now = sim.backend.wall(sim.backend.now())
    sim.add_execution_schedule(
        "ending",
        configuration_id="cfg-train",
        period_seconds=60,
        end=datetime.fromtimestamp(now + 150, tz=UTC),
    )
    sim.advance(600)
    assert len(await runs_of(api, "ending")) == 2


async def test_a_schedule_does_not_run_before_its_start(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    now = sim.backend.wall(sim.backend.now())
    sim.add_execution_schedule(
        "later",
        configuration_id="cfg-train",
        period_seconds=60,
        start=datetime.fromtimestamp(now + 150, tz=UTC),
    )
    sim.advance(240)
    assert len(await runs_of(api, "later")) == 2  # at 180 s and 240 s


async def test_executions_of_a_deleted_schedule_stay_and_no_more_start(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    sim.advance(60)
    response = await api.delete(f"{SCHEDULES}/{nightly}")
    assert response.status_code == 202
    assert response.json() == {"id": "nightly", "message": "Execution Schedule deleted"}
    sim.advance(600)
    assert len(await runs_of(api, nightly)) == 1
    assert (await api.get(f"{SCHEDULES}/{nightly}")).status_code == 404


async def test_schedules_run_in_their_own_resource_group_only(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_execution_schedule(
        "elsewhere", configuration_id="cfg-train", resource_group="team-b", period_seconds=60
    )
    sim.advance(60)
    assert await runs_of(api, "elsewhere") == []
    assert [v.id for v in sim.items(Kind.EXECUTION, "team-b")] != []


# -- reading -------------------------------------------------------------------------------


async def test_get_shows_the_schedule_as_the_spec_describes_it(
    spec: Spec, api: httpx.AsyncClient, nightly: str
) -> None:
    response = await api.get(f"{SCHEDULES}/{nightly}")
    assert response.status_code == 200
    body = response.json()
    spec.validate_response("/lm/executionSchedules/{executionScheduleId}", "get", 200, body)
    assert (body["id"], body["status"], body["cron"], body["configurationId"]) == (
        "nightly",
        "ACTIVE",
        "0 0 * * *",
        "cfg-train",
    )


async def test_get_of_an_unknown_schedule_is_a_404_with_the_envelope(
    spec: Spec, api: httpx.AsyncClient
) -> None:
    response = await api.get(f"{SCHEDULES}/no-such-schedule")
    assert response.status_code == 404
    spec.validate_response(
        "/lm/executionSchedules/{executionScheduleId}", "get", 404, response.json()
    )


async def test_a_schedule_id_outside_the_pattern_is_a_400(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get(f"{SCHEDULES}/abc")
    assert response.status_code == 400
    assert [v.code for v in sim.violations] == ["InvalidId"]


@pytest.fixture
def three(sim: Simulator) -> None:
    sim.add_execution_schedule("sched-a", configuration_id="cfg-one")
    sim.add_execution_schedule("sched-b", configuration_id="cfg-two")
    sim.add_execution_schedule(
        "sched-c", configuration_id="cfg-one", status=ScheduleStatus.INACTIVE
    )


async def test_list_returns_every_schedule_in_creation_order_matching_the_spec(
    spec: Spec, api: httpx.AsyncClient, three: None
) -> None:
    response = await api.get(SCHEDULES)
    body = response.json()
    spec.validate_response("/lm/executionSchedules", "get", 200, body)
    assert [s["id"] for s in body["resources"]] == ["sched-a", "sched-b", "sched-c"]
    assert body["count"] == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "ACTIVE"}, ["sched-a", "sched-b"]),
        ({"status": "INACTIVE"}, ["sched-c"]),
        ({"configurationId": "cfg-one"}, ["sched-a", "sched-c"]),
        ({"configurationId": "cfg-one", "status": "ACTIVE"}, ["sched-a"]),
    ],
    ids=str,
)
async def test_list_filters_by_status_and_configuration(
    api: httpx.AsyncClient, three: None, params: dict[str, str], expected: list[str]
) -> None:
    body = (await api.get(SCHEDULES, params=params)).json()
    assert [s["id"] for s in body["resources"]] == expected


async def test_list_pages_with_top_and_skip(api: httpx.AsyncClient, three: None) -> None:
    first = (await api.get(SCHEDULES, params={"$top": "2", "$skip": "0"})).json()
    second = (await api.get(SCHEDULES, params={"$top": "2", "$skip": "2"})).json()
    assert [s["id"] for s in first["resources"] + second["resources"]] == [
        "sched-a",
        "sched-b",
        "sched-c",
    ]
    assert first["count"] == second["count"] == 3


async def test_count_is_plain_text_and_takes_the_same_filters(
    api: httpx.AsyncClient, three: None
) -> None:
    response = await api.get(f"{SCHEDULES}/$count", params={"configurationId": "cfg-one"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "2"


@pytest.mark.parametrize(
    "params",
    [
        {"status": "PAUSED"},
        {"status": "RUNNING"},
        {"status": ["ACTIVE", "INACTIVE"]},
        {"configurationId": "no"},
        {"$top": "100001"},
        {"$skip": "-1"},
    ],
    ids=str,
)
async def test_a_malformed_schedule_filter_is_a_400_with_the_envelope(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await api.get(SCHEDULES, params=params)
    assert response.status_code == 400
    spec.validate_response("/lm/executionSchedules", "get", 400, response.json())
    assert [v.code for v in sim.violations] == ["MalformedRequest"]


async def test_a_malformed_filter_on_the_schedule_count_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{SCHEDULES}/$count", params={"status": "PAUSED"})
    assert response.status_code == 400


async def test_schedules_need_the_resource_group_header(
    raw: httpx.AsyncClient, sim: Simulator
) -> None:
    headers = {"Authorization": f"Bearer {sim.issue_token()}"}
    response = await raw.get(SCHEDULES, headers=headers)
    assert response.status_code == 400
    assert "AI-Resource-Group" in response.json()["error"]["message"]


# -- modifying -----------------------------------------------------------------------------


async def test_pausing_answers_202_as_the_spec_describes_and_shows_inactive(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    response = await patch(api, nightly, INACTIVE)
    assert response.status_code == 202
    path = "/lm/executionSchedules/{executionScheduleId}"
    spec.validate_response(path, "patch", 202, response.json())
    assert (await api.get(f"{SCHEDULES}/{nightly}")).json()["status"] == "INACTIVE"
    view = sim.execution_schedule(nightly)
    assert view is not None and view.status is ScheduleStatus.INACTIVE


async def test_pausing_a_paused_schedule_is_accepted(api: httpx.AsyncClient, nightly: str) -> None:
    await patch(api, nightly, INACTIVE)
    response = await patch(api, nightly, INACTIVE)
    assert response.status_code == 202


async def test_a_patch_moves_modified_at_but_not_created_at(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    before = (await api.get(f"{SCHEDULES}/{nightly}")).json()
    sim.advance(3600)
    await patch(api, nightly, INACTIVE)
    after = (await api.get(f"{SCHEDULES}/{nightly}")).json()
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]


async def test_a_patch_may_change_cron_end_and_configuration(
    sim: Simulator, api: httpx.AsyncClient, nightly: str
) -> None:
    response = await patch(
        api,
        nightly,
        {"cron": "0 6 * * *", "end": "2099-01-01T00:00:00Z", "configurationId": "cfg-retrain"},
    )
    assert response.status_code == 202
    body = (await api.get(f"{SCHEDULES}/{nightly}")).json()
    assert (body["cron"], body["end"], body["configurationId"]) == (
        "0 6 * * *",
        "2099-01-01T00:00:00Z",
        "cfg-retrain",
    )
    sim.advance(60)
    (run,) = await runs_of(api, nightly)
    assert run["configurationId"] == "cfg-retrain"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "at least one of"),
        ({"name": "renamed"}, "at least one of"),
        ({"status": "PAUSED"}, "ACTIVE or INACTIVE"),
        ({"status": "inactive"}, "ACTIVE or INACTIVE"),
        ({"configurationId": "x"}, "configurationId"),
        ({"cron": ""}, "cron"),
        ({"cron": 5}, "cron"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2030-01-01T00:00:00"}, "end"),
        ({"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, "later than start"),
        (["INACTIVE"], "JSON object"),
    ],
    ids=str,
)
async def test_a_malformed_patch_is_a_400_naming_what_is_wrong(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, nightly: str, body: Any, says: str
) -> None:
    response = await patch(api, nightly, body)
    assert response.status_code == 400
    spec.validate_response(
        "/lm/executionSchedules/{executionScheduleId}", "patch", 400, response.json()
    )
    assert says in response.json()["error"]["message"]
    view = sim.execution_schedule(nightly)
    assert view is not None and view.status is ScheduleStatus.ACTIVE


async def test_a_patch_that_is_not_json_media_is_a_415(
    api: httpx.AsyncClient, nightly: str
) -> None:
    response = await api.patch(
        f"{SCHEDULES}/{nightly}",
        content=b'{"status": "INACTIVE"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 415


async def test_pausing_an_unknown_schedule_is_a_404_with_the_envelope(
    spec: Spec, api: httpx.AsyncClient
) -> None:
    response = await patch(api, "no-such-schedule", INACTIVE)
    assert response.status_code == 404
    spec.validate_response(
        "/lm/executionSchedules/{executionScheduleId}", "patch", 404, response.json()
    )


async def test_deleting_answers_as_the_spec_describes(
    spec: Spec, api: httpx.AsyncClient, nightly: str
) -> None:
    response = await api.delete(f"{SCHEDULES}/{nightly}")
    path = "/lm/executionSchedules/{executionScheduleId}"
    spec.validate_response(path, "delete", 202, response.json())


async def test_deleting_an_unknown_schedule_is_a_404(api: httpx.AsyncClient) -> None:
    response = await api.delete(f"{SCHEDULES}/no-such-schedule")
    assert response.status_code == 404


async def test_creating_a_schedule_is_not_modelled_and_says_so(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(SCHEDULES, json={"configurationId": "cfg-x", "cron": "* * * * *"})
    assert response.status_code == 405
    assert [v.code for v in sim.violations] == ["MethodNotAllowed"]


# -- capability and control ----------------------------------------------------------------


async def test_meta_reports_execution_schedules(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v2/lm/meta")).json()
    assert body["aiApi"]["capabilities"]["executionSchedules"] is True


@pytest.mark.simulator(execution_schedules=False)
async def test_without_schedules_meta_says_so_and_their_paths_are_not_served(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.get("/v2/lm/meta")).json()
    assert body["aiApi"]["capabilities"]["executionSchedules"] is False
    response = await api.get(SCHEDULES)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")


async def test_the_control_api_seeds_and_lists_schedules(
    sim: Simulator, raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    seeded = await raw.post(
        "/_sim/items",
        json={
            "execution_schedules": [
                {
                    "id": "hourly-eval",
                    "configuration_id": "cfg-eval",
                    "scenario_id": "evaluation",
                    "cron": "0 * * * *",
                    "period_seconds": 30,
                }
            ]
        },
    )
    assert seeded.status_code == 201, seeded.text
    assert seeded.json()["created"] == [
        {"kind": "ExecutionSchedule", "id": "hourly-eval", "status": "ACTIVE"}
    ]
    sim.advance(30)
    (run,) = await runs_of(api, "hourly-eval")
    assert run["scenarioId"] == "evaluation"
    listed = (await raw.get("/_sim/execution-schedules")).json()
    assert [(s["id"], s["runs"], s["period_seconds"]) for s in listed] == [("hourly-eval", 1, 30)]


@pytest.mark.parametrize(
    "schedule",
    [
        {"id": "x", "configuration_id": "cfg-eval"},
        {"id": "period-zero", "configuration_id": "cfg-eval", "period_seconds": 0},
        {"id": "bad-status", "configuration_id": "cfg-eval", "status": "PAUSED"},
        {"id": "no-config"},
        {"id": "naive-start", "configuration_id": "cfg-eval", "start": "2030-01-01T00:00:00"},
    ],
    ids=lambda s: s["id"],
)
async def test_the_control_api_refuses_a_schedule_it_could_not_run(
    raw: httpx.AsyncClient, schedule: dict[str, Any]
) -> None:
    seeded = await raw.post("/_sim/items", json={"execution_schedules": [schedule]})
    assert seeded.status_code == 400


def test_a_schedule_period_must_be_positive(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="period_seconds must be > 0"):
        sim.add_execution_schedule("never-ends", configuration_id="cfg-x", period_seconds=0)


def test_clearing_items_forgets_schedules_too(sim: Simulator, nightly: str) -> None:
    sim.clear_items()
    sim.advance(600)
    assert sim.execution_schedules() == []
    assert sim.items(Kind.EXECUTION) == []


def test_a_paused_schedule_seen_from_python_has_started_what_was_due(
    sim: Simulator, nightly: str
) -> None:
    sim.advance(120)
    view = sim.execution_schedule(nightly)
    assert view is not None and view.runs == 2
    assert {i.execution_schedule_id for i in sim.items(Kind.EXECUTION)} == {"nightly"}
    assert {i.status for i in sim.items(Kind.EXECUTION)} <= set(Status)
