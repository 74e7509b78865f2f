"""The only part of the engine that talks to the AI API.

It turns observation choices and batches into calls and calls into per-target facts
(observed, accepted, refused, not found, transient) without judging them: judgement stays
in the pure planner. That split is what lets a later shared executor serve many runs
against one (endpoint, resource group): it would merge their requests here and hand each
run back only its own results.

Error policy: Auth and configuration errors propagate (a human must act, the caller
decides), but a send
round first finishes and reports every other request of the round; Transient
errors become per-target facts so that one failed batch never discards the results of the
others; Permanent errors become refusals recorded against the targets they concern.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import (
    AiApiError,
    AuthError,
    BulkUnsupportedError,
    ConfigurationError,
    NotFoundError,
    PartialBulkError,
    PermanentError,
    ResultTooLargeError,
    TransientError,
)
from bulkterm.aiapi.models import (
    BulkItemResult,
    Capabilities,
    ItemState,
    ItemSummary,
    Kind,
    Status,
)
from bulkterm.engine.batching import Intent, Request
from bulkterm.engine.decisions import Action, Fault, Observation, Source
from bulkterm.engine.observation import ObservationMethod

T = TypeVar("T")


class Outcome(StrEnum):
    ACCEPTED = "Accepted"
    REFUSED = "Refused"
    NOT_FOUND = "NotFound"
    #: Certainly not acted on (429, 503, never sent): may be sent again after the next look.
    TRANSIENT = "Transient"
    #: Maybe acted on (500, 502, 504, a timeout, a lost answer): read the item whole before
    #: anything is sent to it again.
    UNKNOWN = "Unknown"
    #: Refused for the credentials or the configuration (a URL the API does not serve): not
    #: acted on; the run stalls once the round is recorded.
    HALT = "Halt"


@dataclass(frozen=True, slots=True)
class SendResult:
    intent: Intent
    outcome: Outcome
    fault: Fault | None = None
    #: The answer came from a bulk PATCH (whose rules are narrower than the single calls').
    bulk: bool = False


@dataclass(slots=True)
class SendReport:
    results: list[SendResult] = field(default_factory=list)
    transient: list[TransientError] = field(default_factory=list)
    #: Kinds whose bulk PATCH the server refused as unsupported: use single calls from now on.
    bulk_unsupported: set[Kind] = field(default_factory=set)
    #: A request of the round was refused for the credentials or the configuration. The others
    #: ran to the end, so their answers are kept; the engine raises this once it recorded them.
    halt: AuthError | ConfigurationError | None = None


@dataclass(slots=True)
class ObservationReport:
    kind: Kind
    method: ObservationMethod
    #: Only the ids that were observed; a missing id is "not observed this round".
    observations: dict[str, Observation] = field(default_factory=dict)
    #: Items in the collection, when a full (unfiltered, every page) list was read.
    list_size: int | None = None
    #: The server refused the list itself (e.g. 400/413): do not choose a list again.
    list_refused: bool = False
    transient: list[TransientError] = field(default_factory=list)


def fault_of(error: AiApiError) -> Fault:
    """Keep the API's own code; the message is built by the client and holds no secrets."""
    return Fault(error.code, error.message)


class Executor:
    """Runs the engine's reads and writes against one :class:`AiApi` with bounded concurrency."""

    def __init__(
        self,
        api: AiApi,
        *,
        single_call_concurrency: int = 10,
        bulk_concurrency: int = 4,
        list_page_size: int = 10_000,
    ) -> None:
        self.api = api
        self._single = asyncio.Semaphore(single_call_concurrency)
        self._bulk = asyncio.Semaphore(bulk_concurrency)
        self._default_page_size = list_page_size
        #: Page sizes the server turned out to cap below the default (413, or short pages).
        self._page_sizes: dict[Kind, int] = {}

    def page_size(self, kind: Kind) -> int:
        """``$top`` of this kind's list pages: the setting, until the server allows fewer."""
        return self._page_sizes.get(kind, self._default_page_size)

    async def _list(self, kind: Kind) -> tuple[list[ItemState], int]:
        """Every item of ``kind`` and the page size it was read with. A server that serves
        fewer rows per page than asked is read again in pages it serves (once per cap: a
        list read with a smaller page never grows it back)."""
        while True:
            size = self.page_size(kind)
            try:
                return await self.api.list_states(kind, page_size=size), size
            except ResultTooLargeError as e:
                if e.limit >= size:
                    raise
                self._page_sizes[kind] = e.limit

    async def capabilities(self) -> Capabilities:
        """``GET /meta``; a server without the endpoint (404/4xx) supports no bulk PATCH."""
        try:
            return await self.api.meta()
        except (NotFoundError, PermanentError):
            return Capabilities()

    async def count(self, kind: Kind) -> int:
        return await self.api.count(kind)

    async def observe(
        self,
        kind: Kind,
        ids: Sequence[str],
        method: ObservationMethod,
        *,
        deleting: Collection[str] = (),
        counted: int | None = None,
    ) -> ObservationReport:
        """Observe ``ids``. ``deleting``: ids with an accepted DELETE, whose absence from a
        multi-page list is expected and needs no confirming GET. ``counted``: the size of the
        collection just read with ``$count``, which a list must agree with to prove absence."""
        if method is ObservationMethod.LIST:
            report = ObservationReport(kind, method)
            try:
                # Unfiltered and every page (the client pages until exhausted or raises).
                states, page_size = await self._list(kind)
                doubtful = counted is not None and len(states) < counted
                if doubtful and 0 < len(states) < page_size:
                    # Fewer rows than counted a moment ago, on one short page: a server that
                    # caps pages silently and counts only the page looks exactly like this.
                    self._page_sizes[kind] = len(states)
                    states, page_size = await self._list(kind)
            except TransientError as e:
                report.transient.append(e)
                return report
            except (PermanentError, NotFoundError):
                fallback = await self._get_each(kind, ids)
                fallback.list_refused = True
                return fallback
            by_id = {s.id: s for s in states}
            missing = [item_id for item_id in ids if item_id not in by_id]
            # A list proves absence only as one snapshot that agrees with the count.
            paged = len(states) >= page_size or doubtful
            expected = [i for i in missing if i in deleting] if paged else []
            for item_id in expected:
                report.observations[item_id] = Observation.not_found(Source.LIST)
            missing = [i for i in missing if i not in deleting] if paged else missing
            for item_id in ids:
                state = by_id.get(item_id)
                if state is not None:
                    report.observations[item_id] = Observation.of(state, Source.LIST)
            if missing and paged:
                # Several pages are not one snapshot: an item deleted between two page reads
                # shifts the rest forward and `$skip` jumps over one. Absence from such a
                # list proves nothing, so each missing id is confirmed with its own GET.
                confirmed = await self._get_each(kind, missing)
                report.observations.update(confirmed.observations)
                report.transient.extend(confirmed.transient)
            else:
                for item_id in missing:
                    report.observations[item_id] = Observation.not_found(Source.LIST)
            report.list_size = len(states)
            return report
        return await self._get_each(kind, ids)

    async def _get_each(self, kind: Kind, ids: Sequence[str]) -> ObservationReport:
        report = ObservationReport(kind, ObservationMethod.GET)

        async def one(item_id: str) -> tuple[str, Observation | TransientError | None]:
            try:
                return item_id, Observation.of(await self.api.get_state(kind, item_id), Source.GET)
            except NotFoundError:
                return item_id, Observation.not_found(Source.GET)
            except TransientError as e:
                return item_id, e
            except PermanentError:
                return item_id, None  # unreadable this round; the deadline bounds the wait

        for item_id, result in await _gather(self._single, [one(i) for i in ids]):
            if isinstance(result, Observation):
                report.observations[item_id] = result
            elif isinstance(result, TransientError):
                report.transient.append(result)
        return report

    async def read_whole(
        self, kind: Kind, ids: Sequence[str]
    ) -> tuple[dict[str, ItemState | None], list[TransientError]]:
        """Full GETs (with ``targetStatus``): ``None`` for a 404; unreadable ids are absent."""

        async def one(item_id: str) -> tuple[str, ItemState | TransientError | bool | None]:
            try:
                return item_id, await self.api.get_state(kind, item_id, full=True)
            except NotFoundError:
                return item_id, None
            except TransientError as e:
                return item_id, e
            except PermanentError:
                return item_id, False

        states: dict[str, ItemState | None] = {}
        errors: list[TransientError] = []
        for item_id, result in await _gather(self._single, [one(i) for i in ids]):
            if isinstance(result, TransientError):
                errors.append(result)
            elif result is None or isinstance(result, ItemState):
                states[item_id] = result
        return states, errors

    async def list_whole(self, kind: Kind) -> dict[str, ItemSummary] | TransientError | None:
        """Every item of ``kind`` read whole (``configurationId`` included), by id; ``None``
        when the server refuses such a list (the caller reads the items one by one)."""
        try:
            items = await self.api.list_items(kind, page_size=self.page_size(kind))
        except TransientError as e:
            return e
        except (PermanentError, NotFoundError):
            return None
        return {item.id: item for item in items}

    async def send(
        self,
        requests: Sequence[Request],
        bulk: Mapping[Kind, bool],
        singles: Sequence[Intent] = (),
    ) -> SendReport:
        """Send every request; bulk where the kind supports it, otherwise one call per item.
        ``singles`` always go one by one (actions the bulk endpoint refuses by rule)."""
        report = SendReport()
        bulk_requests = [r for r in requests if bulk.get(r.kind, False)]
        single_items = [
            *(i for r in requests if not bulk.get(r.kind, False) for i in r.items),
            *singles,
        ]
        outcomes = await _gather(self._bulk, [self._send_bulk(r, report) for r in bulk_requests])
        fallback = [i for leftovers in outcomes for i in leftovers]
        await self._send_singles([*single_items, *fallback], report)
        await self._recheck_refusals(report)
        return report

    async def _recheck_refusals(self, report: SendReport) -> None:
        """A refusal is judged by the item's state, never by the words of the message.

        It may only mean the action is already under way: an earlier send whose answer was
        lost, or one sent before a restart. ``$select=status`` cannot show that (it leaves
        ``targetStatus`` out), so each refused item is read whole; if its stop or deletion is
        in progress the action counts as accepted, not as a refusal that would burn the
        target's retries. A DELETE refused for an item the read shows COMPLETED (which only
        the single DELETE takes) is sent again at once as the single call."""
        refused = [i for i, r in enumerate(report.results) if r.outcome is Outcome.REFUSED]

        async def read(index: int) -> tuple[int, ItemState | None]:
            intent = report.results[index].intent
            try:
                return index, await self.api.get_state(intent.kind, intent.id, full=True)
            except (NotFoundError, PermanentError, TransientError):
                return index, None

        singles: list[int] = []
        for index, state in await _gather(self._single, [read(i) for i in refused]):
            if state is None:
                continue
            result = report.results[index]
            if already_under_way(result.intent.action, state):
                report.results[index] = SendResult(result.intent, Outcome.ACCEPTED)
            elif (
                result.bulk
                and result.intent.action is Action.DELETE
                and (state.status is Status.COMPLETED)
            ):
                singles.append(index)
        if singles:
            again = SendReport()
            await self._send_singles([report.results[i].intent for i in singles], again)
            report.transient.extend(again.transient)
            report.halt = report.halt or again.halt
            for index, result in zip(singles, again.results, strict=True):
                report.results[index] = result

    async def _send_bulk(self, request: Request, report: SendReport) -> list[Intent]:
        """One bulk PATCH; returns the intents to retry as single calls (bulk unsupported)."""
        items: Sequence[Intent] = request.items
        try:
            answer = await self.api.bulk_patch(
                request.kind, [(i.id, i.action.target_status) for i in items]
            )
        except PartialBulkError as e:
            # Merged with other runs' items into several requests, one of which failed:
            # the answered items are judged by their answers, the others by the failure.
            failed = [i for i in items if i.id in e.failed]
            retry = self._failed_whole(request.kind, failed, e.error, report)
            answered = [i for i in items if i.id not in e.failed]
            return retry + self._judge_answers(answered, e.results, report)
        except AiApiError as e:
            return self._failed_whole(request.kind, items, e, report)
        return self._judge_answers(items, answer, report)

    @staticmethod
    def _failed_whole(
        kind: Kind, items: Sequence[Intent], error: AiApiError, report: SendReport
    ) -> list[Intent]:
        """A bulk request failed as a whole: every item it carried shares the failure."""
        if isinstance(error, BulkUnsupportedError):
            report.bulk_unsupported.add(kind)
            return list(items)
        if isinstance(error, AuthError | ConfigurationError):
            report.halt = report.halt or error
            report.results.extend(SendResult(i, Outcome.HALT, fault_of(error)) for i in items)
        elif isinstance(error, TransientError):
            report.transient.append(error)
            outcome = _transient_outcome(error)
            report.results.extend(SendResult(i, outcome, fault_of(error)) for i in items)
        else:
            report.results.extend(SendResult(i, Outcome.REFUSED, fault_of(error)) for i in items)
        return []

    @staticmethod
    def _judge_answers(
        items: Sequence[Intent], answer: Sequence[BulkItemResult], report: SendReport
    ) -> list[Intent]:
        """Each item by its own answer. A refused item is a refusal, whatever the message
        says: the next look shows why (a COMPLETED execution, which only the single DELETE
        takes, is sent that way from then on: see the engine's ``_single_only``). Nothing is
        left to retry as single calls here."""
        by_id: dict[str, BulkItemResult] = {}
        for item in answer:
            by_id.setdefault(item.id, item)
        for intent in items:
            result = by_id.get(intent.id)
            if result is None:
                fault = Fault(None, "the 202 response had no result for this item")
                report.results.append(SendResult(intent, Outcome.REFUSED, fault))
            elif result.error is not None:
                fault = Fault(result.error.code, result.error.message)
                report.results.append(SendResult(intent, Outcome.REFUSED, fault, bulk=True))
            else:
                report.results.append(SendResult(intent, Outcome.ACCEPTED))
        return []

    async def _send_singles(self, intents: Sequence[Intent], report: SendReport) -> None:
        async def one(intent: Intent) -> SendResult:
            try:
                if intent.action is Action.STOP:
                    await self.api.stop(intent.kind, intent.id)
                else:
                    await self.api.delete(intent.kind, intent.id)
            except NotFoundError as e:
                return SendResult(intent, Outcome.NOT_FOUND, fault_of(e))
            except (AuthError, ConfigurationError) as e:
                report.halt = report.halt or e
                return SendResult(intent, Outcome.HALT, fault_of(e))
            except TransientError as e:
                report.transient.append(e)
                return SendResult(intent, _transient_outcome(e), fault_of(e))
            except PermanentError as e:
                return SendResult(intent, Outcome.REFUSED, fault_of(e))
            return SendResult(intent, Outcome.ACCEPTED)

        report.results.extend(await _gather(self._single, [one(i) for i in intents]))


def _transient_outcome(error: TransientError) -> Outcome:
    return Outcome.TRANSIENT if error.not_executed else Outcome.UNKNOWN


def already_under_way(action: Action, state: ItemState) -> bool:
    """Whether a full read shows the action accepted (by this run or any earlier one)."""
    if state.target_status == "DELETED":
        return True  # deletion in progress answers a STOP as well as a DELETE
    if action is Action.STOP:
        return state.target_status == "STOPPED" or state.status in (Status.STOPPING, Status.STOPPED)
    return False


async def _gather(semaphore: asyncio.Semaphore, coros: Sequence[Awaitable[T]]) -> list[T]:
    """Run ``coros`` with at most the semaphore's width at once, keeping order.

    On an escaping error (Auth, or a bug) the siblings are cancelled and the error itself
    is raised, not an ExceptionGroup, so callers can ``except AuthError`` as usual.
    """
    if not coros:
        return []

    async def bounded(coro: Awaitable[T]) -> T:
        async with semaphore:
            return await coro

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(c)) for c in coros]
    except BaseExceptionGroup as eg:
        leaves = _leaves(eg)
        auth = next((e for e in leaves if isinstance(e, AuthError)), None)
        raise (auth or leaves[0]) from None
    return [t.result() for t in tasks]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        if isinstance(e, BaseExceptionGroup):
            out.extend(_leaves(e))
        else:
            out.append(e)
    return out
