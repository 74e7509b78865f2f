"""The decision table: from what was last observed about a target to what to do next.

Everything here is pure (no I/O, no clock, no mutation) so that every row of DESIGN's
decision table is a one-line unit test and the safety rules can be property-tested over
arbitrary observation sequences. The engine owns the loop; this module owns the judgement.

Two inputs per target: the fresh :class:`Observation` of this round and the engine's
:class:`Memory` of what it did before (an action in flight, refusals, when UNKNOWN began).
The memory is what turns "RUNNING" into either "send STOP" or "wait, STOP was accepted a
moment ago": without it a lagging status would make the engine hammer the API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bulkterm.aiapi.models import ItemState, Status, TargetStatus
from bulkterm.spec import Target

#: AI API error code for "Current status UNKNOWN cannot be changed" (stop on UNKNOWN).
UNKNOWN_CANNOT_BE_CHANGED = "01010076"

NEVER_SEEN = "never seen in this run: the item does not exist in this resource group"

_STOPPABLE = frozenset({Status.PENDING, Status.RUNNING})
_DELETABLE = frozenset({Status.STOPPED, Status.DEAD, Status.COMPLETED, Status.UNKNOWN})


class Action(StrEnum):
    """A write the engine may send. Only these two exist: the API accepts nothing else in bulk."""

    STOP = "STOP"
    DELETE = "DELETE"

    @property
    def target_status(self) -> TargetStatus:
        return TargetStatus.STOPPED if self is Action.STOP else TargetStatus.DELETED


class Verdict(StrEnum):
    SEND = "Send"
    WAIT = "Wait"
    DONE = "Done"
    FAIL = "Fail"


class Source(StrEnum):
    """Where an observation came from; a 404 on GET is weaker evidence than a full list."""

    LIST = "list"
    GET = "get"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the API said about one item this round: a status, or that it does not exist."""

    status: Status | None = None
    target_status: str | None = None
    gone: bool = False
    source: Source = Source.LIST

    @classmethod
    def of(cls, state: ItemState, source: Source = Source.LIST) -> Observation:
        return cls(status=state.status, target_status=state.target_status, source=source)

    @classmethod
    def not_found(cls, source: Source = Source.LIST) -> Observation:
        return cls(gone=True, source=source)

    def describe(self) -> str:
        if self.gone:
            return "not found"
        assert self.status is not None
        if self.target_status in (TargetStatus.STOPPED, TargetStatus.DELETED):
            return f"{self.status.value} (targetStatus {self.target_status})"
        return self.status.value


@dataclass(frozen=True, slots=True)
class InFlight:
    """An action the API accepted (or that was about to be sent) and whose effect is awaited."""

    action: Action
    sent_at: datetime
    #: The API accepted this very send (not only an earlier action of the target): recorded,
    #: so that a restart knows an accepted DELETE from one that may never have gone out.
    accepted: bool = False


@dataclass(frozen=True, slots=True)
class Fault:
    """The last refusal of a target's action: the API's own code and message when it gave one."""

    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Memory:
    """What the engine remembers about one target between rounds (and across restarts)."""

    in_flight: InFlight | None = None
    #: Actions sent to this target (every STOP and DELETE, accepted or not).
    attempts: int = 0
    #: Refused or lost actions: the budget ``backoffLimitPerTarget`` is spent from this.
    retries: int = 0
    transient_failures: int = 0
    stop_accepted: bool = False
    delete_accepted: bool = False
    #: The last status seen (a "gone" observation does not overwrite it).
    last_status: Status | None = None
    unknown_since: datetime | None = None
    #: Consecutive rounds the item was reported missing.
    gone_streak: int = 0
    #: The item was seen to exist in this run (kept across restarts). Only such an item can
    #: be "gone"; one never seen is "not found", which a wrong resource group or URL looks
    #: like too.
    seen: bool = False
    #: The in-flight action was restored from a record written *before* its send: whether it
    #: was sent is unknown until the item is read whole (its ``targetStatus``).
    unconfirmed: bool = False
    last_error: Fault | None = None
    last_attempt_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-target patience the spec and the settings grant."""

    resend_timeout: timedelta
    unknown_grace: timedelta
    backoff_limit: int
    #: Resend timeout of an accepted DELETE (``None``: same as ``resend_timeout``).
    delete_resend_timeout: timedelta | None = None

    def resend_timeout_for(self, action: Action) -> timedelta:
        if action is Action.DELETE and self.delete_resend_timeout is not None:
            return self.delete_resend_timeout
        return self.resend_timeout


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one target now, and why (reason is CamelCase, message is prose)."""

    verdict: Verdict
    reason: str
    message: str
    action: Action | None = None
    code: str | None = None
    #: An accepted action showed no effect by its resend timeout: this send (or, with the
    #: budget spent, this failure) holds only if a full read shows no sign of the action.
    lost: bool = False
    #: When a wait ends by itself (grace period, resend timeout): the loop need not sleep longer.
    wake_at: datetime | None = None


def _wait(reason: str, message: str, wake_at: datetime | None = None) -> Decision:
    return Decision(Verdict.WAIT, reason, message, wake_at=wake_at)


def _done(reason: str, message: str) -> Decision:
    return Decision(Verdict.DONE, reason, message)


def _fail(reason: str, message: str, code: str | None = None) -> Decision:
    return Decision(Verdict.FAIL, reason, message, code=code)


def _send(action: Action, reason: str, message: str) -> Decision:
    return Decision(Verdict.SEND, reason, message, action=action)


def decide(
    target: Target, obs: Observation | None, mem: Memory, *, now: datetime, limits: Limits
) -> Decision:
    """The next step for one target, given this round's observation (``None``: not observed).

    Acting only on a fresh observation is what keeps the safety rules true: a DELETE is
    never based on a stale "STOPPED" of an item that has since been restarted or is still
    stopping.
    """
    if obs is None:
        return _wait("NotObserved", "not observed this round; deciding once it is")
    if target.target_status is TargetStatus.STOPPED:
        base = _toward_stopped(obs, mem, now, limits)
    else:
        base = _toward_deleted(obs, mem)
    if base.verdict is not Verdict.SEND:
        return base
    return _gate(base, mem, now, limits)


def _unconfirmed_gone(obs: Observation, mem: Memory) -> bool:
    # Right after creation, while an item is still UNKNOWN, the AI API may answer "not found"
    # on GET although the item exists. One more look before believing such a 404.
    return (
        obs.source is Source.GET
        and mem.last_status is Status.UNKNOWN
        and not mem.delete_accepted
        and mem.gone_streak < 2
    )


def _toward_stopped(obs: Observation, mem: Memory, now: datetime, limits: Limits) -> Decision:
    if obs.gone:
        if _unconfirmed_gone(obs, mem):
            return _wait("ConfirmingNotFound", "404 right after UNKNOWN; checking again")
        if mem.seen:
            # It existed in this run and is gone now: not running, which is what was asked.
            after = " after its STOP was accepted" if mem.stop_accepted else ""
            return _done("Removed", f"was seen, then removed{after}: it is not running")
        return _fail("NotFound", NEVER_SEEN + ", so it cannot be stopped")
    status = obs.status
    if status is Status.STOPPED:
        if mem.stop_accepted:
            return _done("Stopped", "stopped")
        return _done("AlreadyStopped", "was already STOPPED")
    if status is Status.DEAD:
        return _done("AlreadyDead", "is DEAD: it is not running, nothing to stop")
    if status is Status.COMPLETED:
        return _done("AlreadyCompleted", "is COMPLETED: it is not running, nothing to stop")
    if obs.target_status == TargetStatus.DELETED:
        return _wait("DeletionInProgress", f"{status}: someone is deleting it")
    if status is Status.STOPPING:
        return _wait("Stopping", "STOPPING: waiting for STOPPED")
    if status in _STOPPABLE:
        if obs.target_status == TargetStatus.STOPPED:
            return _wait("StopRequested", f"{status}: a stop is already scheduled")
        return _send(Action.STOP, "Stop", f"{status}: stop")
    # UNKNOWN: the API refuses to stop it (01010076); it usually resolves to PENDING soon.
    since = mem.unknown_since or now
    give_up_at = since + limits.unknown_grace
    if now >= give_up_at:
        return _fail(
            "CannotStopUnknown",
            f"status stayed UNKNOWN for {_secs(now - since)}s, longer than "
            f"unknownGracePeriodSeconds={_secs(limits.unknown_grace)}; the AI API cannot stop "
            "an UNKNOWN item (error 01010076): delete it instead",
            code=UNKNOWN_CANNOT_BE_CHANGED,
        )
    return _wait(
        "UnknownStatus",
        "UNKNOWN cannot be stopped; waiting up to "
        f"{_secs(limits.unknown_grace)}s for it to resolve",
        wake_at=give_up_at,
    )


def _toward_deleted(obs: Observation, mem: Memory) -> Decision:
    if obs.gone:
        if _unconfirmed_gone(obs, mem):
            return _wait("ConfirmingNotFound", "404 right after UNKNOWN; checking again")
        if mem.delete_accepted:
            return _done("Deleted", "deleted")
        if mem.unconfirmed:
            # A DELETE was recorded before a restart, and nothing shows whether it went out:
            # report what was seen (it existed, now it is gone), not whose deletion it was.
            return _done("Removed", "was seen, then removed (by a DELETE whose answer never "
                         "arrived, or by someone else: the AI API cannot tell)")  # fmt: skip
        if mem.seen:
            return _done("Removed", "was seen, then removed by someone else")
        # Absent is what DELETED asks for, but say that it was never seen: a whole run of
        # these is what a wrong resource group or URL looks like (see NoTargetsFound).
        return _done("NotFound", NEVER_SEEN)
    status = obs.status
    if obs.target_status == TargetStatus.DELETED:
        return _wait("DeletionInProgress", f"{status}: deletion in progress")
    if status is Status.STOPPING:
        return _wait("Stopping", "STOPPING: waiting for STOPPED, then delete")
    if status in _STOPPABLE:
        if obs.target_status == TargetStatus.STOPPED:
            return _wait("StopRequested", f"{status}: a stop is already scheduled, then delete")
        return _send(Action.STOP, "StopBeforeDelete", f"{status}: stop, then delete once STOPPED")
    assert status in _DELETABLE
    return _send(Action.DELETE, "Delete", f"{status}: delete")


def _gate(base: Decision, mem: Memory, now: datetime, limits: Limits) -> Decision:
    """Hold back a due send while the same action is in flight, and enforce the retry budget."""
    assert base.action is not None
    in_flight = mem.in_flight
    if in_flight is not None and in_flight.action is base.action:
        expires = in_flight.sent_at + limits.resend_timeout_for(base.action)
        if now < expires:
            return _wait(
                "AwaitingEffect",
                f"{base.action} accepted; waiting for the status to change",
                wake_at=expires,
            )
        if mem.retries + 1 > limits.backoff_limit:
            return _exhausted(base.action, mem, limits, lost=True)
        return Decision(
            Verdict.SEND,
            "Resend",
            f"{base.action} accepted {_secs(now - in_flight.sent_at)}s ago without effect; "
            "sending again",
            action=base.action,
            lost=True,
        )
    if mem.retries > limits.backoff_limit:
        return _exhausted(base.action, mem, limits, lost=False)
    return base


def _exhausted(action: Action, mem: Memory, limits: Limits, *, lost: bool) -> Decision:
    retries = mem.retries + (1 if lost else 0)
    last = mem.last_error
    if lost:
        detail = f"the last {action} was accepted but had no visible effect"
    elif last is not None:
        detail = f"last error: {last.code + ': ' if last.code else ''}{last.message}"
    else:
        detail = "no error detail"
    return Decision(
        Verdict.FAIL,
        "RetriesExhausted",
        f"{action} refused or lost {retries} times (backoffLimitPerTarget="
        f"{limits.backoff_limit}); {detail}",
        action=action,
        code=last.code if last is not None and not lost else None,
        lost=lost,
    )


def _secs(delta: timedelta) -> int:
    return int(delta.total_seconds())


# --- how memory changes: pure, so the loop stays a thin sequence of I/O and bookkeeping ---


def remember_observation(mem: Memory, obs: Observation, now: datetime) -> Memory:
    """Fold a fresh observation into memory (UNKNOWN start time, last status, missing streak)."""
    if obs.gone:
        return replace(mem, gone_streak=mem.gone_streak + 1)
    unknown_since = (mem.unknown_since or now) if obs.status is Status.UNKNOWN else None
    return replace(
        mem,
        gone_streak=0,
        last_status=obs.status,
        unknown_since=unknown_since,
        seen=True,
    )


def remember_sent(mem: Memory, decision: Decision, now: datetime) -> Memory:
    """Record the send *before* it happens, so a crash mid-request never leads to a blind resend."""
    assert decision.action is not None
    last_error = mem.last_error
    if decision.lost:
        last_error = Fault(None, f"{decision.action} accepted but had no visible effect")
    return replace(
        mem,
        in_flight=InFlight(decision.action, now),
        unconfirmed=False,  # about this send: whether it went out is known after its answer
        attempts=mem.attempts + 1,
        retries=mem.retries + (1 if decision.lost else 0),
        last_attempt_time=now,
        last_error=last_error,
    )


def remember_accepted(mem: Memory, action: Action) -> Memory:
    flight = mem.in_flight
    if flight is not None and flight.action is action:
        mem = replace(mem, in_flight=replace(flight, accepted=True))
    if action is Action.STOP:
        return replace(mem, stop_accepted=True, unconfirmed=False)
    return replace(mem, delete_accepted=True, unconfirmed=False)


def remember_under_way(mem: Memory, action: Action, now: datetime) -> Memory:
    """A full read showed the action under way (``targetStatus`` set): it was accepted, by
    this run or an earlier one. Keep waiting from now on, without spending the budget."""
    return replace(remember_accepted(mem, action), in_flight=InFlight(action, now, accepted=True))


def remember_not_sent(mem: Memory) -> Memory:
    """A restored in-flight action the item shows no sign of: it was recorded, then the
    process died before sending. Not a refusal and not a lost send: no retry is spent."""
    return replace(mem, in_flight=None, unconfirmed=False)


def remember_refused(mem: Memory, fault: Fault) -> Memory:
    """A per-item error (bulk 202 item, or a 4xx on a single call): spend a retry, look again."""
    return replace(
        mem, in_flight=None, unconfirmed=False, retries=mem.retries + 1, last_error=fault
    )


def remember_not_found(mem: Memory, fault: Fault, *, per_retry: int) -> Memory:
    """404 on a single write: the next observation says whether it is gone. Usually that
    settles it; if the item keeps being listed while writes to it keep answering 404 (the
    transient "not found" of fresh UNKNOWN items), every ``per_retry``-th such answer spends
    a retry, so the loop ends even without a deadline. This is about the item, not the
    request, so unlike :func:`remember_transient` it is charged."""
    failures = mem.transient_failures + 1
    return replace(
        mem,
        in_flight=None,
        unconfirmed=False,
        transient_failures=failures,
        retries=mem.retries + (1 if failures % per_retry == 0 else 0),
        last_error=fault,
    )


def remember_unknown(mem: Memory, fault: Fault) -> Memory:
    """The request may have been acted on (a 500, 502 or 504, a timeout, a lost answer): as
    with a send restored from a record written before it, whether it was is unknown until the
    item is read whole (``targetStatus`` shows it). It stays in flight, unconfirmed, so that
    nothing is sent to the item again before that read; no retry is spent."""
    return replace(mem, unconfirmed=mem.in_flight is not None, last_error=fault)


def remember_transient(mem: Memory, fault: Fault) -> Memory:
    """The request was certainly not acted on (429, 503, never sent): the next round looks
    again and sends what is still due.

    A request-level failure is not the target's fault and spends none of its retries: an
    outage of any length ends when the service returns or when ``activeDeadlineSeconds``
    passes, never with every target failed ``RetriesExhausted``."""
    return replace(mem, in_flight=None, unconfirmed=False, last_error=fault)
