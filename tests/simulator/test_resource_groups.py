"""``AI-Resource-Group`` is required where the spec says so, groups do not see each other, and a
group the tenant lacks is 403 "RBAC Access denied" (as AI Core answers), never an empty list.

The simulator knows ``default``, the groups named in its config (``resource_groups``,
``initial_resource_group``), every group it seeds items into and every group created through
``/_sim/resource-groups``.
"""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import MERGE_PATCH, bulk, bulk_body

pytestmark = pytest.mark.simulator(bulk_updates=True)

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
    sim.add_resource_group("team-b")
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
    sim.add_resource_group("team-b")
    response = await bulk(
        api, Kind.EXECUTION, ("team-a-item", TargetStatus.STOPPED), resource_group="team-b"
    )
    assert response.json()["executions"][0]["error"]["code"] == "01010040"
    assert [(v.code, v.resource_group) for v in sim.violations] == [("NotFound", "team-b")]


#: Every operation that takes ``AI-Resource-Group``, in a group the simulator does not know.
SCOPED = [
    ("GET", "/v2/lm/deployments", None),
    ("GET", "/v2/lm/executions", None),
    ("GET", "/v2/lm/deployments/$count", None),
    ("GET", "/v2/lm/executions/$count", None),
    ("POST", "/v2/lm/deployments", {"configurationId": "conf-1"}),
    ("POST", "/v2/lm/executions", {"configurationId": "conf-1"}),
    ("PATCH", "/v2/lm/deployments", bulk_body(Kind.DEPLOYMENT, ("item-1", TargetStatus.STOPPED))),
    ("PATCH", "/v2/lm/executions", bulk_body(Kind.EXECUTION, ("item-1", TargetStatus.STOPPED))),
    ("GET", "/v2/lm/deployments/item-1", None),
    ("GET", "/v2/lm/executions/item-1", None),
    ("PATCH", "/v2/lm/deployments/item-1", {"targetStatus": "STOPPED"}),
    ("PATCH", "/v2/lm/executions/item-1", {"targetStatus": "STOPPED"}),
    ("DELETE", "/v2/lm/deployments/item-1", None),
    ("DELETE", "/v2/lm/executions/item-1", None),
]


def content_type(method: str, path: str) -> dict[str, str]:
    bulk_patch = method == "PATCH" and path.count("/") == 3
    return {"Content-Type": "application/merge-patch+json" if bulk_patch else "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "body"), SCOPED, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_a_group_the_simulator_does_not_know_is_403_on_every_scoped_operation(
    sim: Simulator, api: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING)
    sim.add_item(Kind.EXECUTION, "item-1", Status.RUNNING)
    headers = {"AI-Resource-Group": "no-such-group", **content_type(method, path)}
    response = await api.request(method, path, json=body, headers=headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("01000403", "RBAC Access denied")
    assert error["target"] == str(response.request.url)
    assert [(v.code, v.resource_group) for v in sim.violations] == [
        ("UnknownResourceGroup", "no-such-group")
    ]
    assert sim.state_of(Kind.DEPLOYMENT, "item-1") is Status.RUNNING
    assert sim.state_of(Kind.EXECUTION, "item-1") is Status.RUNNING
    assert len(sim.items()) == 2


async def test_the_default_group_always_exists(sim: Simulator, api: httpx.AsyncClient) -> None:
    listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "default"})
    assert listed.json() == {"count": 0, "resources": []}


@pytest.mark.simulator(resource_groups=("team-a", "team-b"))
async def test_groups_named_in_the_config_exist(api: httpx.AsyncClient) -> None:
    for group in ("team-a", "team-b"):
        listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": group})
        assert listed.status_code == 200
    denied = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "team-c"})
    assert denied.status_code == 403


@pytest.mark.simulator(initial_resource_group="seeded-team", initial_deployments=2)
async def test_the_group_of_the_initial_items_exists(api: httpx.AsyncClient) -> None:
    listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "seeded-team"})
    assert listed.json()["count"] == 2


@pytest.mark.simulator(initial_resource_group="empty-team")
async def test_the_initial_group_exists_even_without_items(api: httpx.AsyncClient) -> None:
    listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "empty-team"})
    assert listed.status_code == 200


async def test_a_group_seeded_through_the_python_api_exists(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.seed(executions=1, resource_group="team-x")
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING, resource_group="team-y")
    for group in ("team-x", "team-y"):
        listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": group})
        assert listed.status_code == 200


async def test_a_group_stays_known_after_its_items_are_gone(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.RUNNING, resource_group="team-a")
    sim.clear_items()
    listed = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "team-a"})
    assert listed.status_code == 200
    assert sim.resource_groups() == ["default", "team-a"]


async def test_groups_can_be_created_through_the_control_api(
    sim: Simulator, api: httpx.AsyncClient, raw: httpx.AsyncClient
) -> None:
    created = await raw.post("/_sim/resource-groups", json={"resource_group": "team-z"})
    seeded = await raw.post("/_sim/items", json={"resource_group": "team-s", "deployments": 1})
    listed = await raw.get("/_sim/resource-groups")
    assert (created.status_code, seeded.status_code) == (201, 201)
    assert listed.json() == {"resource_groups": ["default", "team-s", "team-z"]}
    for group in ("team-z", "team-s"):
        response = await api.get("/v2/lm/executions", headers={"AI-Resource-Group": group})
        assert response.status_code == 200


async def test_control_api_refuses_a_group_outside_the_pattern(raw: httpx.AsyncClient) -> None:
    response = await raw.post("/_sim/resource-groups", json={"resource_group": "-bad-"})
    assert response.status_code == 400


def test_add_resource_group_refuses_a_group_outside_the_pattern() -> None:
    with pytest.raises(ValueError):
        Simulator().add_resource_group("-bad-")


@pytest.mark.parametrize("config", [{"resource_groups": ("ok-group", "-bad-")}], ids=str)
def test_config_refuses_a_group_outside_the_pattern(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**config)  # type: ignore[arg-type]
