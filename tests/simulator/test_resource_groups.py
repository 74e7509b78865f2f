"""``AI-Resource-Group`` is required where the spec says so, and groups do not see each other."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator
from tests.simulator.helpers import MERGE_PATCH, bulk, bulk_body

OPERATIONS = [
    ("GET", "/v2/lm/deployments", None),
    ("GET", "/v2/lm/executions/$count", None),
    ("POST", "/v2/lm/deployments", {"configurationId": "conf-1"}),
    ("PATCH", "/v2/lm/executions", bulk_body(Kind.EXECUTION, ("item-1", TargetStatus.STOPPED))),
    ("GET", "/v2/lm/deployments/item-1", None),
    ("PATCH", "/v2/lm/executions/item-1", {"targetStatus": "STOPPED"}),
    ("DELETE", "/v2/lm/deployments/item-1", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_every_deployment_and_execution_operation_needs_the_header(
    sim: Simulator, raw: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING)
    headers = {"Authorization": f"Bearer {sim.issue_token()}", **MERGE_PATCH}
    response = await raw.request(method, path, json=body, headers=headers)
    assert response.status_code == 400
    assert [v.code for v in sim.violations] == ["MissingResourceGroup"]
    assert sim.state_of(Kind.DEPLOYMENT, "item-1") is Status.RUNNING


@pytest.mark.parametrize("group", ["a", "-starts-with-dash", "has space", "under_score"])
async def test_group_id_outside_the_pattern_is_refused(
    sim: Simulator, api: httpx.AsyncClient, group: str
) -> None:
    response = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": group})
    assert response.status_code == 400
    assert [v.code for v in sim.violations] == ["InvalidResourceGroup"]


async def test_meta_needs_no_resource_group(sim: Simulator, raw: httpx.AsyncClient) -> None:
    response = await raw.get(
        "/v2/lm/meta", headers={"Authorization": f"Bearer {sim.issue_token()}"}
    )
    assert response.status_code == 200
    assert sim.violations == []


async def test_items_of_one_group_are_invisible_to_another(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "team-a-item", Status.RUNNING, resource_group="team-a")
    other = {"AI-Resource-Group": "team-b"}
    listed = await api.get("/v2/lm/deployments", headers=other)
    single = await api.get("/v2/lm/deployments/team-a-item", headers=other)
    counted = await api.get("/v2/lm/deployments/$count", headers=other)
    assert listed.json() == {"count": 0, "resources": []}
    assert single.status_code == 404
    assert counted.text == "0"


async def test_changes_in_one_group_do_not_touch_another(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "shared-id", Status.RUNNING, resource_group="team-a")
    sim.add_item(Kind.DEPLOYMENT, "shared-id", Status.STOPPED, resource_group="team-b")
    response = await bulk(
        api, Kind.DEPLOYMENT, ("shared-id", TargetStatus.DELETED), resource_group="team-b"
    )
    assert "message" in response.json()["deployments"][0]
    team_a = sim.item(Kind.DEPLOYMENT, "shared-id", "team-a")
    assert team_a is not None and team_a.target_status == "RUNNING"


async def test_bulk_in_the_wrong_group_reports_the_items_not_found(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "team-a-item", Status.RUNNING, resource_group="team-a")
    response = await bulk(
        api, Kind.EXECUTION, ("team-a-item", TargetStatus.STOPPED), resource_group="team-b"
    )
    assert response.json()["executions"][0]["error"]["code"] == "01010040"
    assert [(v.code, v.resource_group) for v in sim.violations] == [("NotFound", "team-b")]


@pytest.mark.simulator(resource_groups=("team-a",))
async def test_a_group_the_tenant_lacks_is_forbidden_when_groups_are_declared(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    allowed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "team-a"})
    denied = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "team-b"})
    assert (allowed.status_code, denied.status_code) == (200, 403)
    assert denied.json()["error"]["message"] == "forbidden: RBAC Access denied"
