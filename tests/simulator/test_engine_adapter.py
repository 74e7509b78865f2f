"""The engine tests' in-process API (``tests/engine/fake_api.py``) and the real client over HTTP
give the same answers, errors and violations for the same simulator state: the engine tests
and the simulator obey one set of rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import AiApiError
from bulkterm.aiapi.models import BulkItemResult, ItemState, Kind, Status, TargetStatus
from bulkterm.simulator import ItemView, Simulator, Timings
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.simulator.helpers import STATUSES, seed_every_status

pytestmark = pytest.mark.simulator(bulk_updates=True)

CASES = [
    pytest.param(kind, status, target, id=f"{kind}-{status}-{target}")
    for kind in Kind
    for status in STATUSES[kind]
    for target in TargetStatus
]


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AiApiClient]:
    async with AiApiClient.from_service_key(sim.service_key(), "default") as api:
        yield api


@pytest.fixture
def fake() -> FakeAiApi:
    """Configured like the ``sim`` fixture: its stop and delete timings, and ``$select=status``
    hiding ``targetStatus``."""
    timings = Timings()
    return FakeAiApi(
        FakeClock(),
        stop_lag_seconds=timings.stop_delay_seconds,
        stop_seconds=timings.stopping_seconds,
        delete_seconds=timings.deletion_seconds,
        report_target_status=False,
    )


def seed_both(sim: Simulator, fake: FakeAiApi, kind: Kind) -> dict[Status, str]:
    seed_every_status(fake.backend, kind)
    return seed_every_status(sim, kind)


def outcome(result: Any) -> Any:
    """What a caller can tell from an answer (request ids and URLs differ by design)."""
    if isinstance(result, AiApiError):
        return (type(result).__name__, result.status_code, result.code)
    if isinstance(result, list) and result and isinstance(result[0], BulkItemResult):
        return [(r.id, r.accepted, r.error and r.error.code) for r in result]
    return result


async def both(client: AiApi, fake: AiApi, call: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``call`` made through the client over HTTP and through the in-process API."""
    answers = []
    for api in (client, fake):
        try:
            answers.append(outcome(await getattr(api, call)(*args, **kwargs)))
        except AiApiError as error:
            answers.append(outcome(error))
    return answers[0], answers[1]


def state(view: ItemView | None) -> tuple[Status, str, bool] | None:
    return None if view is None else (view.status, view.target_status, view.deleting)


def violations(recorded: list[Any]) -> list[tuple[str, str | None, str, int]]:
    return [(v.code, v.id, v.route, v.http_status) for v in recorded]


@pytest.mark.parametrize(("kind", "status", "target"), CASES)
async def test_a_bulk_write_is_answered_alike(
    sim: Simulator,
    client: AiApiClient,
    fake: FakeAiApi,
    kind: Kind,
    status: Status,
    target: TargetStatus,
) -> None:
    ids = seed_both(sim, fake, kind)
    http, local = await both(client, fake, "bulk_patch", kind, [(ids[status], target)])
    assert http == local
    assert violations(sim.violations) == violations(fake.violations)
    assert state(sim.item(kind, ids[status])) == state(fake.backend.item(kind, ids[status]))


@pytest.mark.parametrize(("kind", "status", "target"), CASES)
async def test_a_single_write_is_answered_alike(
    sim: Simulator,
    client: AiApiClient,
    fake: FakeAiApi,
    kind: Kind,
    status: Status,
    target: TargetStatus,
) -> None:
    ids = seed_both(sim, fake, kind)
    write = "stop" if target is TargetStatus.STOPPED else "delete"
    http, local = await both(client, fake, write, kind, ids[status])
    assert http == local
    assert violations(sim.violations) == violations(fake.violations)


@pytest.mark.parametrize("kind", list(Kind))
async def test_reads_are_answered_alike(
    sim: Simulator, client: AiApiClient, fake: FakeAiApi, kind: Kind
) -> None:
    ids = seed_both(sim, fake, kind)
    for item_id in [*ids.values(), "not-there"]:
        for full in (False, True):
            http, local = await both(client, fake, "get_state", kind, item_id, full=full)
            assert http == local
            assert isinstance(http, ItemState) or http[0] == "NotFoundError"
    for status in (None, Status.RUNNING):
        expected = len(ids) if status is None else 1
        assert await both(client, fake, "count", kind, status=status) == (expected, expected)
        http, local = await both(client, fake, "list_states", kind, status=status)
        assert http == local
    assert await both(client, fake, "meta") == (await client.meta(),) * 2
    assert sim.violations == fake.violations == []


async def test_bulk_patch_while_meta_says_off_is_refused_alike(
    sim: Simulator, client: AiApiClient, fake: FakeAiApi
) -> None:
    for backend in (sim.backend, fake.backend):
        backend.set_bulk_updates(False)
    ids = seed_both(sim, fake, Kind.EXECUTION)
    item = ids[Status.RUNNING]
    http, local = await both(client, fake, "bulk_patch", Kind.EXECUTION, [(item, "STOPPED")])
    assert http == local and http[0] == "BulkUnsupportedError"
    assert violations(sim.violations) == violations(fake.violations) != []
