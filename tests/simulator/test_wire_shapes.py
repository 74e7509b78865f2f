"""Every answer of the simulator has the shape SAP's official spec declares for it."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Faults, Simulator
from bulkterm.simulator.seeding import CONFIGURATIONS
from tests.simulator.helpers import KIND_PARAMS, MERGE_PATCH, bulk, seed_every_status
from tests.simulator.spec import Spec, load_spec

pytestmark = pytest.mark.simulator(bulk_updates=True)

ITEM_PATH = {
    Kind.DEPLOYMENT: "/lm/deployments/{deploymentId}",
    Kind.EXECUTION: "/lm/executions/{executionId}",
}

#: Fields SAP's Python SDK passes to required constructor arguments (contract §14).
SDK_REQUIRED = {
    Kind.DEPLOYMENT: {
        "id", "deploymentUrl", "configurationId", "configurationName", "scenarioId",
        "status", "targetStatus", "createdAt", "modifiedAt",
    },
    Kind.EXECUTION: {
        "id", "configurationId", "configurationName", "scenarioId",
        "status", "targetStatus", "createdAt", "modifiedAt",
    },
}  # fmt: skip
#: What the SDK's ``*GetStatusResponse`` accepts: anything more makes it raise TypeError.
SDK_SELECT_STATUS = {"id", "configurationId", "status", "createdAt", "modifiedAt"}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(load_spec())


def collection(kind: Kind) -> str:
    return f"/lm/{kind.collection}"


async def test_meta_matches_MetaCapabilities(spec: Spec, api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/lm/meta")
    assert response.status_code == 200
    spec.validate_response("/lm/meta", "get", 200, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_list_of_items_in_every_status_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_every_status(sim, kind)
    sim.add_item(kind, "being-deleted", Status.STOPPED, target_status="DELETED")
    response = await api.get(f"/v2/lm/{kind.collection}")
    assert response.status_code == 200
    spec.validate_response(collection(kind), "get", 200, response.json())
    assert len(response.json()["resources"]) == len(seed_every_status(sim, kind)) + 1


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_list_with_select_status_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_every_status(sim, kind)
    response = await api.get(f"/v2/lm/{kind.collection}", params={"$select": "status"})
    spec.validate_response(collection(kind), "get", 200, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_get_of_an_item_in_every_status_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    for item in seed_every_status(sim, kind).values():
        response = await api.get(f"/v2/lm/{kind.collection}/{item}")
        assert response.status_code == 200
        spec.validate_response(ITEM_PATH[kind], "get", 200, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_get_with_select_status_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "item-1", Status.RUNNING)
    response = await api.get(f"/v2/lm/{kind.collection}/item-1", params={"$select": "status"})
    spec.validate_response(ITEM_PATH[kind], "get", 200, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_count_is_a_plain_text_integer(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_every_status(sim, kind)
    response = await api.get(f"/v2/lm/{kind.collection}/$count")
    assert response.headers["Content-Type"].startswith("text/plain")
    spec.validate_response(f"{collection(kind)}/$count", "get", 200, int(response.text))
    assert int(response.text) == len(seed_every_status(sim, kind))


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_create_answer_matches_the_spec(
    spec: Spec, api: httpx.AsyncClient, kind: Kind
) -> None:
    response = await api.post(
        f"/v2/lm/{kind.collection}", json={"configurationId": CONFIGURATIONS[kind][0].id}
    )
    assert response.status_code == 202
    spec.validate_response(collection(kind), "post", 202, response.json())
    assert response.headers["Location"].endswith(
        f"/v2/lm/{kind.collection}/{response.json()['id']}"
    )


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_answer_with_accepted_and_refused_items_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    ids = seed_every_status(sim, kind)
    response = await bulk(
        api,
        kind,
        (ids[Status.RUNNING], TargetStatus.STOPPED),
        (ids[Status.DEAD], TargetStatus.DELETED),
        (ids[Status.STOPPED], TargetStatus.STOPPED),
        ("no-such-item", TargetStatus.DELETED),
    )
    assert response.status_code == 202
    spec.validate_response(collection(kind), "patch", 202, response.json())
    refused = [r for r in response.json()[kind.collection] if "error" in r]
    assert len(refused) == 2
    for item in refused:
        assert set(item["error"]) >= {"code", "message", "requestId", "target"}
        assert item["error"]["target"] == f"{sim.url}/v2/lm/{kind.collection}"


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_single_stop_answer_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "item-1", Status.RUNNING)
    response = await api.patch(f"/v2/lm/{kind.collection}/item-1", json={"targetStatus": "STOPPED"})
    assert response.status_code == 202
    spec.validate_response(ITEM_PATH[kind], "patch", 202, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_delete_answer_matches_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "item-1", Status.STOPPED)
    response = await api.delete(f"/v2/lm/{kind.collection}/item-1")
    assert response.status_code == 202
    spec.validate_response(ITEM_PATH[kind], "delete", 202, response.json())


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_declared_errors_match_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "stopped-1", Status.STOPPED)
    bad = await api.patch(f"/v2/lm/{kind.collection}", json={}, headers=MERGE_PATCH)
    missing = await api.get(f"/v2/lm/{kind.collection}/no-such-item")
    refused = await api.patch(
        f"/v2/lm/{kind.collection}/stopped-1", json={"targetStatus": "STOPPED"}
    )
    bad_query = await api.get(f"/v2/lm/{kind.collection}", params={"status": "SLEEPING"})
    assert (bad.status_code, missing.status_code, refused.status_code) == (400, 404, 412)
    spec.validate_response(collection(kind), "patch", 400, bad.json())
    spec.validate_response(ITEM_PATH[kind], "get", 404, missing.json())
    spec.validate_response(ITEM_PATH[kind], "patch", 412, refused.json())
    spec.validate_response(collection(kind), "get", 400, bad_query.json())


@pytest.mark.simulator(max_result_rows=1)
async def test_errors_the_spec_does_not_declare_use_the_same_envelope(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, raw: httpx.AsyncClient
) -> None:
    sim.seed(deployments=2)
    unauthorized = await raw.get("/v2/lm/deployments", headers={"AI-Resource-Group": "default"})
    forbidden = await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": "other-team"})
    too_large = await api.get("/v2/lm/deployments")
    media = await api.patch(
        "/v2/lm/deployments", content=b"x", headers={"Content-Type": "text/plain"}
    )
    sim.set_faults(Faults(throttle_rate=1.0))
    throttled = await api.get("/v2/lm/deployments")
    sim.set_faults(Faults(error_rate=1.0))
    failed = await api.get("/v2/lm/deployments")
    answers = [unauthorized, forbidden, too_large, media, throttled, failed]
    assert [r.status_code for r in answers] == [401, 403, 413, 415, 429, 503]
    for response in answers:
        spec.validate_response("/lm/deployments", "get", response.status_code, response.json())
    assert forbidden.json()["error"]["message"] == "RBAC Access denied"


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_403_and_415_have_the_envelope_on_every_operation_of_the_kind(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    """The spec declares neither; the envelope is ``AiApiError`` as on the declared errors."""
    sim.add_item(kind, "running-1", Status.RUNNING)
    other = {"AI-Resource-Group": "other-team"}
    item_path = f"/v2/lm/{kind.collection}/running-1"
    answers = {
        (collection(kind), "get"): await api.get(f"/v2/lm/{kind.collection}", headers=other),
        (f"{collection(kind)}/$count", "get"): await api.get(
            f"/v2/lm/{kind.collection}/$count", headers=other
        ),
        (ITEM_PATH[kind], "get"): await api.get(item_path, headers=other),
        (ITEM_PATH[kind], "delete"): await api.delete(item_path, headers=other),
        (collection(kind), "patch"): await api.patch(
            f"/v2/lm/{kind.collection}", json={kind.collection: []}
        ),
        (ITEM_PATH[kind], "patch"): await api.patch(
            item_path, json={"targetStatus": "STOPPED"}, headers=MERGE_PATCH
        ),
        (collection(kind), "post"): await api.post(
            f"/v2/lm/{kind.collection}", json={"configurationId": "conf-1"}, headers=MERGE_PATCH
        ),
    }
    statuses = [response.status_code for response in answers.values()]
    assert statuses == [403, 403, 403, 403, 415, 415, 415]
    for (path, method), response in answers.items():
        spec.validate_response(path, method, response.status_code, response.json())
        assert response.json()["error"]["target"] == str(response.request.url)


async def test_error_target_is_the_invoked_url_query_included(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    missing = await api.get("/v2/lm/deployments/no-such-item", params={"$select": "status"})
    bad_query = await api.get("/v2/lm/executions", params={"status": "SLEEPING"})
    for response in (missing, bad_query):
        assert response.json()["error"]["target"] == str(response.request.url)
    assert missing.json()["error"]["target"] == (
        f"{sim.url}/v2/lm/deployments/no-such-item?%24select=status"
    )
    assert bad_query.json()["error"]["target"] == f"{sim.url}/v2/lm/executions?status=SLEEPING"


async def test_a_path_the_api_does_not_serve_has_no_envelope(api: httpx.AsyncClient) -> None:
    """Not an ``AiApiError``: a client must not read it as "this item is gone"."""
    response = await api.get("/v2/lm/deployments/d-1/logs")
    assert response.status_code == 404
    assert not response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_items_carry_every_field_sap_python_sdk_requires(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_every_status(sim, kind)
    listed = (await api.get(f"/v2/lm/{kind.collection}")).json()["resources"]
    single = (await api.get(f"/v2/lm/{kind.collection}/{listed[0]['id']}")).json()
    for item in [*listed, single]:
        assert set(item) >= SDK_REQUIRED[kind]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_select_status_returns_exactly_what_sap_python_sdk_accepts(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "item-1", Status.RUNNING)
    single = await api.get(f"/v2/lm/{kind.collection}/item-1", params={"$select": "status"})
    listed = await api.get(f"/v2/lm/{kind.collection}", params={"$select": "status"})
    assert set(single.json()) == SDK_SELECT_STATUS
    assert set(listed.json()["resources"][0]) == SDK_SELECT_STATUS


@pytest.mark.simulator(select_status_includes_target_status=True)
async def test_select_status_can_be_configured_to_keep_target_status(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "item-1", Status.STOPPED, target_status="DELETED")
    single = await api.get("/v2/lm/deployments/item-1", params={"$select": "status"})
    assert single.json()["targetStatus"] == "DELETED"
