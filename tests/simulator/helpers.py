"""Small helpers shared by the simulator's tests."""

from __future__ import annotations

from typing import Any

import httpx

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimulatorControls
from bulkterm.simulator.seeding import CONFIGURATIONS

#: Every status an item of the kind can be in (deployments never complete).
STATUSES = {
    Kind.DEPLOYMENT: tuple(s for s in Status if s is not Status.COMPLETED),
    Kind.EXECUTION: tuple(Status),
}
KIND_PARAMS = [Kind.DEPLOYMENT, Kind.EXECUTION]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
MODIFIED = {
    Kind.DEPLOYMENT: "Deployment modification scheduled",
    Kind.EXECUTION: "Execution modification scheduled",
}


def item_id(kind: Kind, status: Status | str) -> str:
    return f"{kind.collection[:3]}-{str(status).lower()}"


def seed_every_status(
    sim: SimulatorControls, kind: Kind, resource_group: str = "default"
) -> dict[Status, str]:
    ids = {}
    for status in STATUSES[kind]:
        ids[status] = item_id(kind, status)
        sim.add_item(
            kind,
            ids[status],
            status,
            resource_group=resource_group,
            configuration_id=CONFIGURATIONS[kind][0].id,
        )
    return ids


def bulk_body(kind: Kind, *items: tuple[str, TargetStatus | str]) -> dict[str, Any]:
    return {kind.collection: [{"id": i, "targetStatus": str(t)} for i, t in items]}


async def bulk(
    api: httpx.AsyncClient,
    kind: Kind,
    *items: tuple[str, TargetStatus | str],
    resource_group: str | None = None,
) -> httpx.Response:
    headers = dict(MERGE_PATCH)
    if resource_group is not None:
        headers["AI-Resource-Group"] = resource_group
    return await api.patch(
        f"/v2/lm/{kind.collection}", json=bulk_body(kind, *items), headers=headers
    )


def by_id(response: httpx.Response, kind: Kind) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in response.json()[kind.collection]}
