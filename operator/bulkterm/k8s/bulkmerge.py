"""Bulk PATCHes from many runs of one tenant and resource group, sent as shared requests.

The runs of a fleet each send their own small bulk PATCHes, and the AI API takes up to 100 items
a request: what the runs submit within :data:`MERGE_WINDOW_SECONDS` goes out in shared requests
of at most 100 items, one item per (id, action), whose answer every run that asked it gets; a
different action on the same id waits for the request before it; a run's items spread over two
requests where that fills them. Each run gets back exactly its items' answers, so one run's
refused item is never another's; a request that fails as a whole fails for the items it carried,
which each run handles as its own error (:class:`~bulkterm.aiapi.errors.PartialBulkError` when
only some of its items were in it). A run cancelled while its items wait for the window sends
none of them.

What was accepted, or may have been, is remembered
(:class:`~bulkterm.k8s.accepted.AcceptedActions`): an action already under way answers a later
submission of it without a send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import AiApiError, PartialBulkError, TransientError
from bulkterm.aiapi.models import BulkItemResult, Kind, TargetStatus
from bulkterm.k8s.accepted import AcceptedActions, maybe_acted_on

#: How long a bulk submission waits for others to share its request. The runs of a fleet each
#: send after their own status write, which a busy API server spreads over a second or more: a
#: much shorter window catches few other runs' items, and requests go out part empty. A fifth
#: of a second is nothing beside a 10 s poll.
MERGE_WINDOW_SECONDS = 0.2
#: The AI API's bulk limit.
MAX_ITEMS = 100


@dataclass
class _Submission:
    items: list[tuple[str, TargetStatus]]
    answer: asyncio.Future[list[BulkItemResult]]
    #: The run that submitted it (see :meth:`AcceptedActions.held_for`).
    writer: int | None = None
    #: Its run stopped waiting (cancelled) before the request went out: nothing is sent for it.
    withdrawn: bool = False


class BulkMerger:
    """Bulk PATCHes of one kind from many runs, sent as few shared requests as the AI API's
    rules allow (at most 100 items, each id once)."""

    def __init__(
        self,
        sender: AiApi,
        window: float = MERGE_WINDOW_SECONDS,
        accepted: AcceptedActions | None = None,
        singles: Mapping[tuple[Kind, str, TargetStatus], object] | None = None,
    ) -> None:
        self._sender = sender
        self._window = window
        self._pending: dict[Kind, list[_Submission]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self.accepted = accepted or AcceptedActions(time.monotonic)
        #: Items of requests sent and not yet answered, and where their answer will be.
        self._in_flight: dict[tuple[Kind, str, TargetStatus], _Answer] = {}
        #: The group's single writes under way (see :meth:`writing`).
        self._singles = singles if singles is not None else {}

    def writing(self, kind: Kind, item_id: str, action: TargetStatus) -> TransientError | None:
        """Why ``action`` may not be sent to the item now: a write of the other action to it
        is under way (a merged request still unanswered, or a single call). Two writes to one
        item at once race, and the second is refused; the run looks again instead."""
        other = TargetStatus.DELETED if action is TargetStatus.STOPPED else TargetStatus.STOPPED
        if (kind, item_id, other) in self._in_flight or (kind, item_id, other) in self._singles:
            return TransientError(
                f"a {other} of {kind.value.lower()} {item_id} is under way; looking again "
                f"before sending a {action}",
                not_executed=True,
            )
        return None

    async def submit(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]], writer: int | None = None
    ) -> list[BulkItemResult]:
        loop = asyncio.get_running_loop()
        submission = _Submission(list(items), loop.create_future(), writer=writer)
        # A run cancelled while it waits leaves its answer unread: read it here, so a failed
        # request is not reported as a "never retrieved" exception.
        submission.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        queue = self._pending.setdefault(kind, [])
        queue.append(submission)
        if len(queue) == 1:  # the first of a window: flush it when the window closes
            task = asyncio.create_task(self._flush_later(kind))
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        try:
            return await asyncio.shield(submission.answer)
        except asyncio.CancelledError:
            submission.withdrawn = True  # still queued: its items are not sent
            raise

    async def _flush_later(self, kind: Kind) -> None:
        await asyncio.sleep(self._window)
        batch = [s for s in self._pending.pop(kind, []) if not s.withdrawn]
        # One item per (id, action): the runs that asked the same share its answer. An action
        # already under way (accepted earlier) is answered without a send; one in a request
        # still unanswered (retrying, say) shares that request's answer.
        first: dict[tuple[str, TargetStatus], tuple[int, int]] = {}
        unique: list[list[tuple[str, TargetStatus]]] = [[] for _ in batch]
        position: list[list[tuple[int, int] | _Answer]] = [[] for _ in batch]
        writers: dict[tuple[str, TargetStatus], int | None] = {}
        for s, submission in enumerate(batch):
            for item in submission.items:
                carrier = self._in_flight.get((kind, *item))
                held = (
                    self.accepted.held_for(kind, item[0], submission.writer)
                    if submission.writer is not None
                    else None
                )
                held = held or self.writing(kind, *item)
                if held is not None:
                    position[s].append(_answered(held))
                elif carrier is not None:
                    position[s].append(carrier)
                elif self.accepted.covers(kind, *item):
                    position[s].append(_answered(_UNDER_WAY))
                else:
                    if item not in first:
                        first[item] = (s, len(unique[s]))
                        unique[s].append(item)
                        writers[item] = submission.writer
                    position[s].append(first[item])
        packed = pack(unique)
        requests = [[unique[s][k] for s, k in r] for r in packed]
        answers = [asyncio.get_running_loop().create_future() for _ in requests]
        carriers: dict[tuple[int, int], _Answer] = {}  # unique item -> its request's answer
        for r, members in enumerate(packed):
            for member in members:
                carriers[member] = answers[r]
        for request, answer in zip(requests, answers, strict=True):
            for item in request:
                self._in_flight[(kind, *item)] = answer
        try:
            sent = await _send_in_turn(requests, lambda items: self._send(kind, items, writers))
        finally:
            for request in requests:
                for item in request:
                    self._in_flight.pop((kind, *item), None)
        for answer, result in zip(answers, sent, strict=True):
            answer.set_result(result)
        for s, submission in enumerate(batch):
            parts = [where if isinstance(where, asyncio.Future) else carriers[where]
                     for where in position[s]]  # fmt: skip
            results = await asyncio.gather(*(asyncio.shield(p) for p in parts))
            if not submission.answer.done():
                _answer(submission, results)

    async def _send(
        self,
        kind: Kind,
        items: list[tuple[str, TargetStatus]],
        writers: dict[tuple[str, TargetStatus], int | None] | None = None,
    ) -> dict[str, BulkItemResult]:
        try:
            answer = {r.id: r for r in await self._sender.bulk_patch(kind, items)}
        except Exception as e:
            if maybe_acted_on(e):
                for item_id, action in items:
                    writer = (writers or {}).get((item_id, action))
                    self.accepted.note(kind, item_id, action, maybe=True, writer=writer)
            raise
        for item_id, action in items:
            result = answer.get(item_id)
            if result is not None and result.accepted:
                self.accepted.note(kind, item_id, action)
        return answer

    async def close(self) -> None:
        for task in list(self._flushers):
            task.cancel()
        await asyncio.gather(*self._flushers, return_exceptions=True)
        for queue in self._pending.values():
            for s in queue:
                if not s.answer.done():
                    s.answer.cancel()
        self._pending.clear()


#: The answer for an item whose action another run's request already had accepted.
_UNDER_WAY: dict[str, BulkItemResult] = {}
#: What a request came back with: its items' results, or its failure.
_Answer = asyncio.Future[dict[str, BulkItemResult] | BaseException]


def _answered(result: dict[str, BulkItemResult] | BaseException) -> _Answer:
    answer: _Answer = asyncio.get_running_loop().create_future()
    answer.set_result(result)
    return answer


async def _send_in_turn(
    requests: list[list[tuple[str, TargetStatus]]],
    send: Callable[[list[tuple[str, TargetStatus]]], Awaitable[dict[str, BulkItemResult]]],
) -> list[dict[str, BulkItemResult] | BaseException]:
    """Send every request, side by side, except that one naming an id an earlier request
    also names (a different action on it) waits for that one's answer: two writes to one item
    at once would race, and the second would be refused."""
    done: list[asyncio.Future[None]] = [
        asyncio.get_running_loop().create_future() for _ in requests
    ]
    answers: list[dict[str, BulkItemResult] | BaseException] = [{} for _ in requests]
    ids = [{item_id for item_id, _ in r} for r in requests]

    async def one(r: int) -> None:
        try:
            for earlier in range(r):
                if ids[earlier] & ids[r]:
                    await done[earlier]
            answers[r] = await send(requests[r])
        except Exception as e:
            answers[r] = e
        finally:
            done[r].set_result(None)

    await asyncio.gather(*(one(r) for r in range(len(requests))))
    return answers


def _answer(
    submission: _Submission, answers: Sequence[dict[str, BulkItemResult] | BaseException]
) -> None:
    """A run's answer from the answers of the requests that carried its items (one per item):
    its items' results, the failure of the request that carried them all, or both
    (:class:`PartialBulkError`)."""
    results: list[BulkItemResult] = []
    failed: set[str] = set()
    error: AiApiError | None = None
    for (item_id, _), answer in zip(submission.items, answers, strict=True):
        if isinstance(answer, BaseException):
            failed.add(item_id)
            if error is None:
                error = answer if isinstance(answer, AiApiError) else None
                if error is None:
                    submission.answer.set_exception(answer)  # not the AI API's: a bug, raise
                    return
        elif answer is _UNDER_WAY:
            results.append(BulkItemResult(id=item_id, message="already under way"))
        elif item_id in answer:
            results.append(answer[item_id])
    if error is None:
        submission.answer.set_result(results)
    elif not results and len(failed) == len(submission.items):
        submission.answer.set_exception(error)
    else:
        submission.answer.set_exception(PartialBulkError(results, frozenset(failed), error))


def pack(submissions: Sequence[Sequence[tuple[str, TargetStatus]]]) -> list[list[tuple[int, int]]]:
    """Requests as (submission, item) indexes: no request over :data:`MAX_ITEMS` items nor
    naming an id twice (two runs may name one id). A submission goes whole into the first
    request it fits; one that fits none fills the gaps item by item, so a hundred runs of 70
    items need 70 requests, not a hundred. Pure, so the rules can be property-tested."""
    requests: list[tuple[list[tuple[int, int]], set[str]]] = []

    def room(ids: set[str], taken: set[str]) -> bool:
        return len(taken) + len(ids) <= MAX_ITEMS and not ids & taken

    first_open = 0  # requests before it are full: keeps the packing linear in practice
    for index, items in enumerate(submissions):
        ids = {i for i, _ in items}
        whole = next((r for r in requests[first_open:] if room(ids, r[1])), None)
        if whole is not None:
            whole[0].extend((index, k) for k in range(len(items)))
            whole[1].update(ids)
        else:
            for k, (item_id, _) in enumerate(items):
                slot = next((r for r in requests[first_open:] if room({item_id}, r[1])), None)
                if slot is None:
                    slot = ([], set())
                    requests.append(slot)
                slot[0].append((index, k))
                slot[1].add(item_id)
        while first_open < len(requests) and len(requests[first_open][1]) >= MAX_ITEMS:
            first_open += 1
    return [members for members, _ in requests]
