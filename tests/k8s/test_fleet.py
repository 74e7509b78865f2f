"""Many runs, one AI API: bulk PATCHes of several runs merged into shared requests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.base import AiApi, ForwardingApi
from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.errors import PartialBulkError, TransientError
from bulkterm.aiapi.models import BulkItemResult, Kind, Status, TargetStatus
from bulkterm.engine.batching import Intent, Request
from bulkterm.engine.decisions import Action
from bulkterm.engine.executor import Executor, Outcome
from bulkterm.k8s.bulkmerge import MAX_ITEMS, BulkMerger, pack
from bulkterm.k8s.clients import ClientPool
from bulkterm.simulator import Simulator
from tests.k8s.test_clients import key_of

D = Kind.DEPLOYMENT
STOP = TargetStatus.STOPPED
PATCH = "PATCH /lm/deployments"

submissions = st.lists(
    st.lists(
        st.sampled_from([f"d{i:04d}" for i in range(150)]), min_size=1, max_size=100, unique=True
    ),
    max_size=30,
)


@given(submissions)
def test_packed_requests_hold_every_item_once_within_the_bulk_rules(
    raw: list[list[str]],
) -> None:
    items = [[(i, STOP) for i in ids] for ids in raw]
    requests = pack(items)
    placed = sorted(member for r in requests for member in r)
    assert placed == [(s, k) for s, sub in enumerate(items) for k in range(len(sub))]
    for request in requests:
        ids = [items[s][k][0] for s, k in request]
        assert len(ids) <= MAX_ITEMS
        assert len(ids) == len(set(ids))


@given(submissions)
def test_packing_needs_no_more_requests_than_items_fill_plus_one_per_repeated_id(
    raw: list[list[str]],
) -> None:
    """Distinct ids fill requests to 100; only an id named by several runs forces more."""
    requests = pack([[(i, STOP) for i in ids] for ids in raw])
    total = sum(len(ids) for ids in raw)
    repeats = max(
        (sum(i in ids for ids in raw) for i in {i for ids in raw for i in ids}), default=0
    )
    assert len(requests) <= -(-total // MAX_ITEMS) + repeats


def test_small_submissions_share_one_request() -> None:
    assert pack([[("d0001", STOP)], [("d0002", STOP)], [("d0003", STOP)]]) == [
        [(0, 0), (1, 0), (2, 0)]
    ]


def test_a_hundred_runs_of_seventy_items_need_seventy_requests() -> None:
    runs = [[(f"d{r:03d}-{k:02d}", STOP) for k in range(70)] for r in range(100)]
    requests = pack(runs)
    assert len(requests) == 70
    assert all(len(r) == 100 for r in requests)


class FailsOneRequest(ForwardingApi):
    """Answers every bulk PATCH from the simulator except the ``failing``-th, which gets 503."""

    def __init__(self, inner: AiApi, failing: int) -> None:
        super().__init__(inner)
        self.failing = failing
        self.sent: list[list[str]] = []

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        self.sent.append([i for i, _ in items])
        if len(self.sent) == self.failing:
            raise TransientError("HTTP 503", status_code=503, not_executed=True)
        return await super().bulk_patch(kind, items)


async def test_a_run_split_over_two_requests_gets_the_answers_of_one_and_the_failure_of_the_other(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    a_ids = [f"dep-a{n:03d}" for n in range(60)]
    b_ids = [f"dep-b{n:03d}" for n in range(60)]
    _running(simulator, *a_ids, *b_ids)
    async with AiApiClient.from_service_key(key_of(simulator), "default") as client:
        sender = FailsOneRequest(client, failing=2)
        merger = BulkMerger(sender, window=0.05)
        a, b = await asyncio.gather(
            merger.submit(D, [(i, STOP) for i in a_ids]),
            merger.submit(D, [(i, STOP) for i in b_ids]),
            return_exceptions=True,
        )
    # a fills request 1 whole; b fills its last 40 places, the rest goes in request 2 (503)
    assert isinstance(a, list) and [r.id for r in a] == a_ids
    assert isinstance(b, PartialBulkError)
    assert [r.id for r in b.results] == b_ids[:40]
    assert b.failed == frozenset(b_ids[40:])
    assert isinstance(b.error, TransientError) and b.error.not_executed
    assert simulator.counters[PATCH] == 1


async def test_the_engine_judges_a_partly_failed_bulk_call_item_by_item(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    ids = [f"dep-{n:03d}" for n in range(10)]
    _running(simulator, *ids)
    async with AiApiClient.from_service_key(key_of(simulator), "default") as client:

        class Partly(ForwardingApi):
            async def bulk_patch(
                self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
            ) -> list[BulkItemResult]:
                answered = await super().bulk_patch(kind, items[:6])
                error = TransientError("HTTP 503", status_code=503, not_executed=True)
                raise PartialBulkError(answered, frozenset(i for i, _ in items[6:]), error)

        executor = Executor(Partly(client))
        intents = tuple(Intent(n, D, i, Action.STOP) for n, i in enumerate(ids))
        report = await executor.send([Request(D, intents)], {D: True})
    outcomes = {r.intent.id: r.outcome for r in report.results}
    assert outcomes == {
        **{i: Outcome.ACCEPTED for i in ids[:6]},
        **{i: Outcome.TRANSIENT for i in ids[6:]},
    }
    assert len(report.transient) == 1
    assert [v.id for v in simulator.items(D) if v.target_status == "STOPPED"] == ids[:6]


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


async def test_two_runs_asking_the_same_action_on_one_id_share_one_item_and_its_answer(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    _running(simulator, "dep-0001")
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        answers = await asyncio.gather(
            a.bulk_patch(Kind.DEPLOYMENT, [("dep-0001", STOP)]),
            b.bulk_patch(Kind.DEPLOYMENT, [("dep-0001", STOP)]),
        )
    assert simulator.counters[PATCH] == 1
    assert [[r.accepted for r in answer] for answer in answers] == [[True], [True]]
    assert simulator.violations == []


async def test_two_runs_deleting_the_same_twenty_items_send_each_deletion_once(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    ids = [f"dep-{n:04d}" for n in range(20)]
    for item_id in ids:
        simulator.add_item(Kind.DEPLOYMENT, item_id, Status.STOPPED)
    pool = ClientPool(ClientSettings())
    key = key_of(simulator)
    delete = [(i, TargetStatus.DELETED) for i in ids]
    async with pool.client(key, "default") as a, pool.client(key, "default") as b:
        first = await a.bulk_patch(Kind.DEPLOYMENT, delete)
        second = await b.bulk_patch(Kind.DEPLOYMENT, delete)  # a later window: already under way
    assert all(r.accepted for r in [*first, *second])
    assert simulator.violations == []
    assert simulator.counters[PATCH] == 1


async def test_a_different_action_on_one_id_waits_for_the_request_before_it(
    simulator: Simulator,
) -> None:
    simulator.set_bulk_updates(True)
    simulator.add_item(Kind.DEPLOYMENT, "dep-0001", Status.STOPPED)
    merger_sends: list[list[tuple[str, TargetStatus]]] = []
    in_flight = 0
    overlapped = False

    class Slow(ForwardingApi):
        async def bulk_patch(
            self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
        ) -> list[BulkItemResult]:
            nonlocal in_flight, overlapped
            in_flight += 1
            overlapped = overlapped or in_flight > 1
            merger_sends.append(list(items))
            await asyncio.sleep(0.01)
            try:
                return [BulkItemResult(id=i, message="ok") for i, _ in items]
            finally:
                in_flight -= 1

    async with AiApiClient.from_service_key(key_of(simulator), "default") as client:
        merger = BulkMerger(Slow(client), window=0.0)
        await asyncio.gather(
            merger.submit(Kind.DEPLOYMENT, [("dep-0001", STOP)]),
            merger.submit(Kind.DEPLOYMENT, [("dep-0001", TargetStatus.DELETED)]),
        )
    assert len(merger_sends) == 2
    assert not overlapped


async def test_a_run_cancelled_in_the_merge_window_sends_nothing(simulator: Simulator) -> None:
    simulator.set_bulk_updates(True)
    _running(simulator, "dep-0001", "dep-0002")
    async with AiApiClient.from_service_key(key_of(simulator), "default") as client:
        merger = BulkMerger(client, window=0.05)
        waiting = asyncio.create_task(merger.submit(Kind.DEPLOYMENT, [("dep-0001", STOP)]))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        other = await merger.submit(Kind.DEPLOYMENT, [("dep-0002", STOP)])
        await asyncio.sleep(0.1)
    assert [r.id for r in other] == ["dep-0002"]
    assert simulator.counters[PATCH] == 1
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-0001") is Status.RUNNING
