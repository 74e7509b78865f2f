"""Many runs, one AI API: bulk PATCHes of several runs merged into shared requests."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.client import ClientSettings
from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.fleet import MAX_ITEMS, pack
from bulkterm.simulator import Simulator
from tests.k8s.test_clients import key_of

STOP = TargetStatus.STOPPED
PATCH = "PATCH /lm/deployments"

submissions = st.lists(
    st.lists(
        st.sampled_from([f"d{i:04d}" for i in range(150)]), min_size=1, max_size=100, unique=True
    ),
    max_size=30,
)


@given(submissions)
def test_packed_requests_hold_every_submission_once_within_the_bulk_rules(
    raw: list[list[str]],
) -> None:
    items = [[(i, STOP) for i in ids] for ids in raw]
    requests = pack(items)
    assert sorted(i for r in requests for i in r) == list(range(len(items)))
    for request in requests:
        ids = [i for member in request for i, _ in items[member]]
        assert len(ids) <= MAX_ITEMS
        assert len(ids) == len(set(ids))


def test_small_submissions_share_one_request() -> None:
    assert pack([[("d0001", STOP)], [("d0002", STOP)], [("d0003", STOP)]]) == [[0, 1, 2]]


def _running(simulator: Simulator, *ids: str) -> None:
    for i in ids:
        simulator.add_item(Kind.DEPLOYMENT, i, Status.RUNNING)


async def test_bulk_patches_of_two_runs_go_out_as_one_request(simulator: Simulator) -> None:
    simulator.set_bulk_updates(True)
    _running(simulator, "dep-a001", "dep-a002", "dep-b001")
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        answers = await asyncio.gather(
            a.bulk_patch(Kind.DEPLOYMENT, [("dep-a001", STOP), ("dep-a002", STOP)]),
            b.bulk_patch(Kind.DEPLOYMENT, [("dep-b001", STOP), ("dep-nope", STOP)]),
        )
    assert simulator.counters[PATCH] == 1
    assert [r.id for r in answers[0]] == ["dep-a001", "dep-a002"]
    assert [r.id for r in answers[1]] == ["dep-b001", "dep-nope"]
    assert all(r.accepted for r in answers[0])
    assert answers[1][0].accepted and not answers[1][1].accepted  # b's refusal is b's alone


async def test_two_runs_naming_one_id_are_sent_in_different_requests(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    _running(simulator, "dep-0001")
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        await asyncio.gather(
            a.bulk_patch(Kind.DEPLOYMENT, [("dep-0001", STOP)]),
            b.bulk_patch(Kind.DEPLOYMENT, [("dep-0001", STOP)]),
        )
    assert simulator.counters[PATCH] == 2
    assert simulator.violations == []
