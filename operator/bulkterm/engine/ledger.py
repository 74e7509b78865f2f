"""Per-target bookkeeping of one run, and its round trip through the progress record.

The ledger is the engine's whole state. Everything that matters for a restart is written
into the record in bounded form (index ranges grouped by send time, by attempt counts, by
UNKNOWN start), so a new process can load a record that an old one saved and carry on:
finished targets stay finished, accepted actions are not sent again before their resend
timeout, and retry budgets are not refilled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.engine import indexes
from bulkterm.engine.decisions import Action, Decision, InFlight, Memory, remember_accepted
from bulkterm.engine.progress import (
    AttemptGroup,
    BulkUpdatesRecord,
    CapabilitiesRecord,
    Condition,
    Failure,
    InFlightEntry,
    InFlightGroup,
    Plan,
    Progress,
    RestoreRecord,
    SelectionRecord,
    Situation,
    UnknownGroup,
    build_conditions,
    counts,
)
from bulkterm.engine.restore_points import RestorePoint, points_of, restore_record
from bulkterm.engine.settings import EngineSettings
from bulkterm.spec import Target

_BLANK = Memory()


class Result(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def whole_seconds(moment: datetime) -> datetime:
    """Kubernetes timestamps have second precision; so does everything the record holds."""
    return moment.replace(microsecond=0)


class Ledger:
    """Memory, results and counters of every target of one run."""

    def __init__(self, targets: Sequence[Target], settings: EngineSettings) -> None:
        self.targets = list(targets)
        self.settings = settings
        self.memory: list[Memory] = [_BLANK] * len(self.targets)
        self.result: list[Result | None] = [None] * len(self.targets)
        self.succeeded = 0
        self.failed = 0
        self.outcomes: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.conditions: list[Condition] = []
        self.start_time: datetime | None = None
        self.completion_time: datetime | None = None
        self.capabilities: CapabilitiesRecord | None = None
        self.plan: Plan | None = None
        self.approved_plan: str | None = None
        self.selection: SelectionRecord | None = None
        #: Per target index: what brings it back, recorded with its first action (read only:
        #: :meth:`record_restore` and :meth:`forget_restore` change it).
        self.restore: dict[int, RestorePoint] = {}
        self._restore_changes = 0
        self._restore_encoded: tuple[int, RestoreRecord | None] | None = None
        self.loaded_terminal: Progress | None = None

    # --- loading a saved record ---

    @classmethod
    def from_record(
        cls, targets: Sequence[Target], settings: EngineSettings, record: Progress | None
    ) -> Ledger:
        ledger = cls(targets, settings)
        if record is None:
            return ledger
        if record.terminal:
            ledger.loaded_terminal = record
        n = len(ledger.targets)
        for i in _valid(indexes.expand(record.completed_indexes), n):
            ledger._set_result(i, Result.SUCCEEDED)
        for i in _valid(indexes.expand(record.failed_indexes), n):
            if ledger.result[i] is None:
                ledger._set_result(i, Result.FAILED)
        mem = ledger.memory
        for group in record.attempt_groups or ():
            for i in _valid(indexes.expand(group.indexes), n):
                mem[i] = Memory(attempts=group.attempts, retries=group.retries)
        for i in _valid(indexes.expand(record.seen_indexes), n):
            mem[i] = replace(mem[i], seen=True)
        for flight in record.in_flight_groups or ():
            for i in _valid(indexes.expand(flight.indexes), n):
                restored = replace(
                    mem[i],
                    in_flight=InFlight(flight.action, flight.sent_at, bool(flight.accepted)),
                    attempts=max(mem[i].attempts, 1),
                    seen=True,  # something was sent to it: it existed
                )
                # Accepted on evidence before the restart: an accepted DELETE whose item is
                # gone is ``Deleted``, not someone else's ``Removed``. Otherwise it was written
                # before the send, and whether it went out is unknown until the item is read
                # whole: counting it as accepted let a $skip shift in a paged list pass a
                # still-STOPPED item off as deleted, with no DELETE ever sent.
                mem[i] = (
                    remember_accepted(restored, flight.action)
                    if flight.accepted
                    else replace(restored, unconfirmed=True)
                )
        for unknown in record.unknown_since or ():
            for i in _valid(indexes.expand(unknown.indexes), n):
                mem[i] = replace(mem[i], unknown_since=unknown.since)
        ledger.outcomes.update(record.outcomes)
        ledger.failures = list(record.failures)
        ledger.conditions = list(record.conditions)
        ledger.start_time = record.start_time
        ledger.completion_time = record.completion_time
        ledger.capabilities = record.capabilities
        ledger.plan = record.plan
        ledger.approved_plan = record.approved_plan
        ledger.selection = record.selection
        ledger.restore = points_of(record.restore, ledger.targets)
        return ledger

    # --- results ---

    def _set_result(self, index: int, result: Result) -> None:
        self.result[index] = result
        if result is Result.SUCCEEDED:
            self.succeeded += 1
        else:
            self.failed += 1

    def succeed(self, index: int, reason: str) -> None:
        assert self.result[index] is None, f"target {index} finished twice"
        self._set_result(index, Result.SUCCEEDED)
        self.outcomes[reason] += 1

    def fail(self, index: int, decision: Decision, now: datetime) -> None:
        assert self.result[index] is None, f"target {index} finished twice"
        self._set_result(index, Result.FAILED)
        if len(self.failures) < self.settings.max_failure_entries:
            target = self.targets[index]
            mem = self.memory[index]
            self.failures.append(
                Failure(
                    index=index,
                    kind=target.kind,
                    id=target.id,
                    reason=decision.reason,
                    message=decision.message,
                    code=decision.code,
                    attempts=mem.attempts,
                    last_attempt_time=(
                        whole_seconds(mem.last_attempt_time) if mem.last_attempt_time else None
                    ),
                )
            )

    def open_indexes(self) -> list[int]:
        return [i for i, r in enumerate(self.result) if r is None]

    @property
    def total(self) -> int:
        return len(self.targets)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def all_finished(self) -> bool:
        return self.finished == self.total

    def set_capabilities(self, deployments: bool, executions: bool) -> None:
        self.capabilities = CapabilitiesRecord(
            bulk_updates=BulkUpdatesRecord(deployments=deployments, executions=executions)
        )

    def bulk_for(self, kind: Kind) -> bool:
        if self.capabilities is None:
            return False
        b = self.capabilities.bulk_updates
        return b.deployments if kind is Kind.DEPLOYMENT else b.executions

    def summary(self) -> str:
        active = sum(1 for i, r in enumerate(self.result) if r is None and self.memory[i].in_flight)
        return counts(self.total, self.succeeded, self.failed, active)

    # --- writing the record ---

    def update_conditions(self, situation: Situation, now: datetime) -> None:
        self.conditions = build_conditions(self.conditions, situation, now=whole_seconds(now))

    def record_restore(self, points: Mapping[int, RestorePoint]) -> None:
        self.restore.update(points)
        self._restore_changes += 1

    def forget_restore(self, indexes: Iterable[int]) -> None:
        """Entries of actions that were not sent after all (their record was not saved)."""
        for index in indexes:
            self.restore.pop(index, None)
        self._restore_changes += 1

    def _restore_record(self) -> RestoreRecord | None:
        """Encoded once per change, not at every record."""
        if self._restore_encoded is None or self._restore_encoded[0] != self._restore_changes:
            self._restore_encoded = (self._restore_changes, restore_record(self.restore))
        return self._restore_encoded[1]

    def to_progress(self, situation: Situation, now: datetime) -> Progress:
        self.update_conditions(situation, now)
        completed: list[int] = []
        failed: list[int] = []
        flights: dict[tuple[Action, bool], dict[datetime, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        attempts: dict[tuple[int, int], list[int]] = defaultdict(list)
        unknown: dict[datetime, list[int]] = defaultdict(list)
        seen: list[int] = []
        entries: list[InFlightEntry] = []
        active = 0
        for i, result in enumerate(self.result):
            if result is Result.SUCCEEDED:
                completed.append(i)
                continue
            if result is Result.FAILED:
                failed.append(i)
                continue
            mem = self.memory[i]
            if mem.seen:
                seen.append(i)
            if mem.in_flight is not None:
                active += 1
                sent = whole_seconds(mem.in_flight.sent_at)
                flights[mem.in_flight.action, _accepted(mem)][sent].append(i)
                if len(entries) < self.settings.max_in_flight_entries:
                    target = self.targets[i]
                    entries.append(
                        InFlightEntry(
                            index=i,
                            kind=target.kind,
                            id=target.id,
                            action=mem.in_flight.action,
                            sent_at=sent,
                            attempt=max(mem.attempts, 1),
                        )
                    )
            if mem.attempts or mem.retries:
                attempts[(mem.attempts, mem.retries)].append(i)
            if (
                mem.unknown_since is not None
                and self.targets[i].target_status is TargetStatus.STOPPED
            ):
                unknown[whole_seconds(mem.unknown_since)].append(i)
        limit = self.settings.max_index_groups
        pending = self.total - self.succeeded - self.failed - active
        return Progress(
            total=self.total,
            pending=pending,
            active=active,
            succeeded=self.succeeded,
            failed=self.failed,
            progress=f"{self.finished}/{self.total}",
            completed_indexes=indexes.compress(completed),
            failed_indexes=indexes.compress(failed),
            seen_indexes=indexes.compress(seen),
            in_flight_groups=[
                InFlightGroup(
                    action=action,
                    sent_at=at,
                    indexes=indexes.compress(idx),
                    accepted=True if accepted else None,
                )
                for action in Action
                for accepted in (False, True)
                for at, idx in _bounded(flights.get((action, accepted), {}), limit)
            ]
            or None,
            attempt_groups=[
                AttemptGroup(attempts=a, retries=r, indexes=indexes.compress(idx))
                for (a, r), idx in sorted(attempts.items())
            ]
            or None,
            unknown_since=[
                UnknownGroup(since=at, indexes=indexes.compress(idx))
                for at, idx in _bounded(unknown, limit)
            ]
            or None,
            in_flight=entries,
            failures=list(self.failures),
            outcomes=dict(sorted(self.outcomes.items())),
            start_time=whole_seconds(self.start_time) if self.start_time else None,
            completion_time=(whole_seconds(self.completion_time) if self.completion_time else None),
            capabilities=self.capabilities,
            conditions=list(self.conditions),
            plan=self.plan,
            approved_plan=self.approved_plan,
            selection=self.selection,
            restore=self._restore_record(),
        )


def _valid(found: Iterable[int], n: int) -> Iterable[int]:
    return (i for i in found if i < n)


def _bounded(groups: dict[datetime, list[int]], limit: int) -> list[tuple[datetime, list[int]]]:
    """At most ``limit`` groups: the oldest merge into the next younger one.

    Merging towards the *later* time errs on the side of patience (a resend or a grace
    expiry comes later, never earlier), which is the safe direction for both uses.
    """
    ordered = sorted(groups.items())
    while len(ordered) > limit:
        (_, oldest), (at, younger) = ordered[0], ordered[1]
        ordered = [(at, oldest + younger), *ordered[2:]]
    return ordered


def _accepted(mem: Memory) -> bool:
    """Whether the in-flight action is known to be accepted (not merely recorded)."""
    return mem.in_flight is not None and mem.in_flight.accepted and not mem.unconfirmed
