"""What the engine knows about the AI API, and how sure it is.

:class:`Observer` reads for the loop: each round's observations of the open targets (list,
GET or count, whichever costs fewer calls), folded into the ledger's memory; and whole reads
(with ``targetStatus``) where a list cannot settle a question: whether an action restored
from a record was ever sent, and whether an action past its resend timeout is lost or only
slow. Nothing here sends a write, and nothing here judges a target: that is the decision
table's job.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime

from bulkterm.aiapi.errors import NotFoundError, PermanentError, TransientError
from bulkterm.aiapi.models import ItemState, Kind
from bulkterm.engine.decisions import (
    Decision,
    Observation,
    remember_accepted,
    remember_not_sent,
    remember_observation,
    remember_under_way,
)
from bulkterm.engine.executor import Executor, ObservationReport, already_under_way
from bulkterm.engine.ledger import Ledger
from bulkterm.engine.observation import ObservationMethod, choose_observation, list_cost
from bulkterm.engine.restore_points import RestorePoint
from bulkterm.engine.settings import EngineSettings


class Observer:
    """Reads for one run; remembers which observation methods the server allows."""

    def __init__(self, executor: Executor, ledger: Ledger, settings: EngineSettings) -> None:
        self.executor = executor
        self.ledger = ledger
        self.settings = settings
        self._known_items: dict[Kind, int | None] = {}
        #: A ``$count`` no list has been checked against yet (the list after it failed): the
        #: next list is checked against it, since a silently capped page is only told from a
        #: whole list by a count.
        self._unchecked_count: dict[Kind, int] = {}
        #: Restore points a whole list showed for targets not sent yet (see restore_points).
        self._read_ahead: dict[int, RestorePoint] = {}
        self._list_usable: dict[Kind, bool] = {kind: True for kind in Kind}
        self._count_usable: dict[Kind, bool] = {kind: True for kind in Kind}
        #: Kinds none of whose targets was found at their first observation.
        self.nothing_found: list[Kind] = []
        #: Kinds for which that question is decided (a target was seen, or none was found).
        self._settled: set[Kind] = set()

    async def observe_open(
        self, transient: list[TransientError], now: datetime, only: list[int] | None = None
    ) -> tuple[dict[int, Observation], list[Kind]]:
        """Observe the open targets and fold the observations into memory. Returns them and
        the kinds found to have no target at all (their observations are left out: the
        caller fails those targets)."""
        ledger = self.ledger
        open_idx = ledger.open_indexes() if only is None else only
        by_kind: dict[Kind, list[int]] = defaultdict(list)
        for i in open_idx:
            by_kind[ledger.targets[i].kind].append(i)
        observations: dict[int, Observation] = {}
        kinds = [kind for kind in Kind if by_kind.get(kind)]
        # The kinds are separate collections: read side by side, a round costs the slower
        # one's latency, not the sum. Every read is awaited before an error is raised, so
        # none is left running; the first error (in kind order) is the one raised.
        answers = await asyncio.gather(
            *(self._observe_targets(kind, by_kind[kind]) for kind in kinds),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        for kind, report in zip(kinds, answers, strict=True):
            assert not isinstance(report, BaseException)
            idx = by_kind[kind]
            transient.extend(report.transient)
            position = {ledger.targets[i].id: i for i in idx}
            for item_id, obs in report.observations.items():
                observations[position[item_id]] = obs
        nothing = self._nothing_found(by_kind, observations)
        mem = ledger.memory
        for i, obs in observations.items():
            mem[i] = remember_observation(mem[i], obs, now)
        return observations, nothing

    async def _observe_targets(self, kind: Kind, idx: list[int]) -> ObservationReport:
        targets, mem = self.ledger.targets, self.ledger.memory
        # Absence from a multi-page list is trusted only where we asked for it: an accepted
        # DELETE. Any other missing id is confirmed by a GET (see Executor).
        deleting = {targets[i].id for i in idx if mem[i].delete_accepted}
        return await self._observe_kind(kind, [targets[i].id for i in idx], deleting)

    def _nothing_found(
        self, by_kind: dict[Kind, list[int]], observations: dict[int, Observation]
    ) -> list[Kind]:
        """The first full observation of a kind finds none of its targets: what a wrong
        resource group or API URL looks like. Those targets must fail ``NotFound`` at once
        (never "already deleted"), so their observations are taken out here."""
        ledger = self.ledger
        found: list[Kind] = []
        for kind, idx in by_kind.items():
            if kind in self._settled:
                continue  # decided: no scan of every target on every round
            of_kind = [i for i, t in enumerate(ledger.targets) if t.kind is kind]
            untouched = all(ledger.result[i] is None and not ledger.memory[i].seen for i in of_kind)
            if not untouched:
                self._settled.add(kind)  # something of this kind exists: never again
                continue
            if len(idx) != len(of_kind):
                continue
            if not all(i in observations and observations[i].gone for i in of_kind):
                continue  # some not observed this round (transient): look again next round
            self._settled.add(kind)
            self.nothing_found.append(kind)
            found.append(kind)
            for i in of_kind:
                observations.pop(i, None)
        return found

    async def _observe_kind(
        self, kind: Kind, ids: list[str], deleting: set[str]
    ) -> ObservationReport:
        page = self.executor.page_size(kind)
        method = choose_observation(
            len(ids), self._known_items.get(kind), page, list_usable=self._list_usable[kind]
        )
        counted = self._unchecked_count.get(kind) if method is ObservationMethod.LIST else None
        if method is ObservationMethod.COUNT:
            if not self._count_usable[kind]:
                method = ObservationMethod.LIST
            else:
                try:
                    counted = self._known_items[kind] = await self.executor.count(kind)
                    self._unchecked_count[kind] = counted
                except TransientError as e:
                    return ObservationReport(kind, method, transient=[e])
                except (NotFoundError, PermanentError):
                    self._count_usable[kind] = False
                    method = ObservationMethod.LIST
                else:
                    method = choose_observation(len(ids), self._known_items[kind], page)
        report = await self.executor.observe(kind, ids, method, deleting=deleting, counted=counted)
        if report.list_size is not None:
            self._known_items[kind] = report.list_size
            self._unchecked_count.pop(kind, None)
        if report.list_refused:
            self._list_usable[kind] = False
        return report

    async def confirm_restored_sends(
        self, observations: dict[int, Observation], transient: list[TransientError]
    ) -> None:
        """Actions restored from a record were written before their send: read each such
        item whole once to learn whether it went out (``targetStatus`` shows it)."""
        mem = self.ledger.memory
        pending = [
            i
            for i in self.ledger.open_indexes()
            if mem[i].unconfirmed and i in observations and not observations[i].gone
        ]
        if not pending:
            return
        states = await self.read_whole(pending, transient)
        for i, state in states.items():
            flight = mem[i].in_flight
            assert flight is not None
            if state is None:
                continue  # gone meanwhile: decided from the observation as usual
            if already_under_way(flight.action, state):
                mem[i] = remember_accepted(mem[i], flight.action)
            else:
                mem[i] = remember_not_sent(mem[i])

    async def really_lost(
        self, suspects: list[tuple[int, Decision]], transient: list[TransientError], now: datetime
    ) -> list[tuple[int, Decision]]:
        """An accepted action past its resend timeout is read whole before it is sent again
        or failed ``RetriesExhausted``: a slow but healthy action (a 45-minute deletion)
        shows its ``targetStatus`` and is waited on further, with no retry spent. Only an
        action with no sign of it is really lost; a gone item is decided next round."""
        if not suspects:
            return []
        states = await self.read_whole([i for i, _ in suspects], transient)
        mem = self.ledger.memory
        lost: list[tuple[int, Decision]] = []
        for i, decision in suspects:
            assert decision.action is not None
            state = states.get(i)
            if state is None:
                continue  # gone, or unreadable this round: the next observation decides
            if already_under_way(decision.action, state):
                mem[i] = remember_under_way(mem[i], decision.action, now)
            else:
                lost.append((i, decision))
        return lost

    async def read_whole(
        self, indexes_: list[int], transient: list[TransientError]
    ) -> dict[int, ItemState | None]:
        """Full GETs (``targetStatus`` included); ``None`` for a 404; absent when unreadable."""
        targets = self.ledger.targets
        by_kind: dict[Kind, list[int]] = defaultdict(list)
        for i in indexes_:
            by_kind[targets[i].kind].append(i)
        out: dict[int, ItemState | None] = {}
        for kind, idx in by_kind.items():
            states, errors = await self.executor.read_whole(kind, [targets[i].id for i in idx])
            transient.extend(errors)
            for i in idx:
                if targets[i].id in states:
                    out[i] = states[targets[i].id]
        return out

    async def restore_points(
        self, indexes_: list[int], transient: list[TransientError]
    ) -> dict[int, RestorePoint]:
        """Each target read whole, for what brings it back (see
        :mod:`bulkterm.engine.restore_points`): one list of its kind where that costs fewer
        calls than a GET each, GETs for the rest. A target gone meanwhile, or one the API
        refuses to show whole, gets an entry without a configuration (the record says so, and
        the run goes on: a refusal would refuse every round); one unreadable for a transient
        error gets none, and is not sent this round.

        A list keeps what it showed of the kind's other open targets, for their own first
        action in a later round: the run lists each kind whole once, not once per round with
        first actions (their status then is as of that list, earlier in the run)."""
        targets = self.ledger.targets
        by_kind: dict[Kind, list[int]] = defaultdict(list)
        points: dict[int, RestorePoint] = {}
        for i in indexes_:
            ahead = self._read_ahead.pop(i, None)
            if ahead is not None:
                points[i] = ahead
            else:
                by_kind[targets[i].kind].append(i)
        for kind, idx in by_kind.items():
            rest = idx
            known = self._known_items.get(kind)
            if known is not None and list_cost(known, self.executor.page_size(kind)) < len(idx):
                listed = await self.executor.list_whole(kind)
                if isinstance(listed, TransientError):
                    transient.append(listed)
                    continue
                rest = []
                wanted = set(idx)
                for i in self.ledger.open_indexes():
                    if targets[i].kind is not kind or i in self.ledger.restore:
                        continue
                    item = (listed or {}).get(targets[i].id)
                    if item is None:
                        if i in wanted:
                            rest.append(i)  # a page may have skipped it: asked for alone
                        continue
                    point = RestorePoint(kind, item.id, item.configuration_id, item.status)
                    if i in wanted:
                        points[i] = point
                    else:
                        self._read_ahead[i] = point
            errors_before = len(transient)
            states = await self.read_whole(rest, transient)
            refused = len(transient) == errors_before  # else: look again next round
            for i in rest:
                state = states.get(i)
                if state is not None:
                    points[i] = RestorePoint(kind, state.id, state.configuration_id, state.status)
                elif i in states or refused:
                    points[i] = RestorePoint(kind, targets[i].id, None, None)
        return points
