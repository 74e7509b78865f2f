"""What a run tells its host, and the one place that decides which record is written when.

A run (:class:`~bulkterm.engine.run.Run`) is hosted by the operator (a CR's status and Events)
or by ``bulkterm apply`` (a terminal). Both see the run through :class:`RunHost`, three calls:

* ``checkpoint``: a record that must be durable before the run goes on (the first record, one
  announcing sends, a terminal one). It answers whether it is; a run does not send what it
  could not record, since a restart reads the record to know what may have been sent.
* ``progress``: best effort; ``urgent`` when the phase changed (it should be seen soon, but
  nothing depends on it landing).
* ``event``: milestones (started, selected, stalled, finished), each said once.

:func:`classify` is that decision as a pure function; :class:`Reporter` applies it to the
records a run produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Protocol

from bulkterm.engine.progress import ConditionType, Progress


class Milestone(StrEnum):
    STARTED = "Started"
    SELECTED = "Selected"
    SCHEDULES_PAUSED = "SchedulesPaused"
    STALLED = "Stalled"
    COMPLETED = "Completed"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A milestone of a run; ``reason`` is the CamelCase reason a human reads (for a stall,
    what is wrong: ``Unauthorized``, ``SecretNotFound``, ``AiApiUnreachable``, …)."""

    milestone: Milestone
    reason: str
    message: str

    @property
    def warning(self) -> bool:
        return self.milestone in (Milestone.STALLED, Milestone.FAILED)


class RunHost(Protocol):
    """Where a run's records and milestones go (the operator's CR, or a terminal)."""

    async def checkpoint(self, record: Progress) -> bool:
        """Make ``record`` durable now; whether it is (False: the run sends nothing)."""
        ...

    async def progress(self, record: Progress, *, urgent: bool) -> None:
        """Take ``record`` when convenient (``urgent``: a change of phase); never raises."""
        ...

    def event(self, event: RunEvent) -> None:
        """Say ``event`` (once per milestone; a stall once per reason in a row)."""
        ...


class Write(Enum):
    """How a record reaches its host."""

    NOTHING = "nothing"  # unchanged, or only answers that ride with the next write
    LATER = "later"  # progress: at the host's pace
    NOW = "now"  # a change of phase: soon, not waited for
    CHECKPOINT = "checkpoint"  # durable before the run goes on


def classify(last: Progress | None, record: Progress) -> Write:
    """How ``record`` is written, given ``last``, the record the host last took.

    The first record, a terminal one and one announcing sends (in-flight actions ``last`` did
    not hold, target by target: a group that only shrank or was split by its answers
    announces nothing) are checkpoints. A record that differs only by answers (``accepted``)
    is not written: lost in a crash, they cost a whole read of each item after the restart,
    not a write after every send round."""
    return _classify(last, None if last is None else last.to_status(), record, record.to_status())


def _classify(
    last: Progress | None,
    last_dumped: dict[str, object] | None,
    record: Progress,
    dumped: dict[str, object],
) -> Write:
    """:func:`classify` with both records' statuses at hand (a run keeps the last one's)."""
    if last is None or last_dumped is None:
        return Write.CHECKPOINT
    if dumped == last_dumped:
        return Write.NOTHING
    if record.terminal or record.selection != last.selection:
        return Write.CHECKPOINT  # a frozen selection is durable before anything acts on it
    before = last.sent()
    if any(indexes - before.get(key, set()) for key, indexes in record.sent().items()):
        return Write.CHECKPOINT
    if _without_in_flight(dumped) == _without_in_flight(last_dumped):
        return Write.NOTHING
    if _phase(record) != _phase(last):
        return Write.NOW
    return Write.LATER


def _without_in_flight(status: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in status.items() if k != "inFlightGroups"}


def _phase(record: Progress) -> frozenset[tuple[str, str, str]]:
    return frozenset((c.type, c.status, c.reason) for c in record.conditions)


def stall_of(record: Progress) -> tuple[str, str] | None:
    """The reason and message of a stall ``record`` is in (a terminal record is not)."""
    condition = record.condition(ConditionType.STALLED)
    if record.terminal or condition is None or condition.status != "True":
        return None
    return condition.reason, condition.message or condition.reason


class Reporter:
    """Hands a run's records to its host as :func:`classify` says, and derives the milestones
    the records show (a stall begun, the end)."""

    def __init__(self, host: RunHost) -> None:
        self.host = host
        self._last: Progress | None = None
        self._last_dumped: dict[str, object] | None = None
        self._stall: str | None = None

    @property
    def last(self) -> Progress | None:
        """The record the host last took."""
        return self._last

    async def offer(self, record: Progress) -> bool:
        """Hand ``record`` over; whether the host has it as durably as it must (a record
        that need not be durable counts as taken)."""
        dumped = record.to_status()
        last = self._last
        write = _classify(last, self._last_dumped, record, dumped)
        if write is Write.NOTHING:
            return True
        taken = True
        if write is Write.CHECKPOINT:
            taken = await self.host.checkpoint(record)
            if not taken and not record.terminal:
                return False
            # A terminal record is the run's last: its host keeps trying to land it (the
            # operator until it stops), and its end is said either way.
        else:
            await self.host.progress(record, urgent=write is Write.NOW)
        self._last, self._last_dumped = record, dumped
        self._milestones(last, record)
        return taken

    def say(self, event: RunEvent) -> None:
        self.host.event(event)

    def _milestones(self, previous: Progress | None, record: Progress) -> None:
        stall = stall_of(record)
        reason = stall[0] if stall is not None else None
        if stall is not None and reason != self._stall:
            self.say(RunEvent(Milestone.STALLED, stall[0], stall[1]))
        self._stall = reason
        if record.terminal and (previous is None or not previous.terminal):
            complete = record.condition(ConditionType.COMPLETE)
            if complete is not None and complete.status == "True":
                message = complete.message or f"{record.progress} targets"
                self.say(RunEvent(Milestone.COMPLETED, complete.reason, message))
            failed = record.condition(ConditionType.FAILED)
            if failed is not None and failed.status == "True":
                self.say(RunEvent(Milestone.FAILED, failed.reason, failed.message or failed.reason))
