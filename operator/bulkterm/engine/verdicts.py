"""What a run says when it waits, gives up or ends: the wording of its situations.

Pure functions of the ledger and the errors seen, so the messages a human reads in the status,
the Events and on stderr are written in one place and can be tested without a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bulkterm.aiapi.errors import AuthError, ConfigurationError, TransientError
from bulkterm.aiapi.models import Kind
from bulkterm.engine.ledger import Ledger
from bulkterm.engine.progress import Phase, Plan, Situation


@dataclass(frozen=True)
class Where:
    """The resource group and endpoint a run talks to, as its messages name them."""

    resource_group: str
    endpoint: str

    def not_found(self, kind: Kind) -> str:
        """Why every target of ``kind`` is NotFound when none of them was found."""
        return (
            f"not found in resource group {self.resource_group!r} at {self.endpoint}, and "
            f"neither was any other {kind.value.lower()} of this run"
        )

    def none_found(self, kinds: Iterable[Kind]) -> str:
        names = " and ".join(f"{k.value.lower()}s" for k in kinds)
        return (
            f"none of the {names} was found in resource group {self.resource_group!r} at "
            f"{self.endpoint}"
        )


def describe(error: TransientError | None) -> str:
    if error is None:
        return ""
    http = f"HTTP {error.status_code}: " if error.status_code else ""
    return f"{http}{error.message}"


def problem(errors: list[TransientError]) -> str:
    """The kind of problem that keeps the AI API unreadable, as a condition reason."""
    reasons = {e.reason for e in errors}
    for reason in ("NotTheAiApi", "AiApiUnreachable"):
        if reason in reasons:
            return reason
    if any(e.status_code is None for e in errors):
        return "AiApiTimeout"  # no answer at all: timeouts, dropped connections
    return "AiApiUnavailable"  # answers, but 5xx or 429 ones


def refused(error: AuthError | ConfigurationError, summary: str) -> Situation:
    """Only a human can fix refused credentials or a URL the AI API does not serve (nothing
    can be learnt about any target there): Stalled, with what to fix."""
    if isinstance(error, ConfigurationError):
        return Situation(Phase.STALLED, error.reason, f"{error.message}; {summary}")
    return Situation(
        Phase.STALLED,
        "Unauthorized",
        f"the AI API refused the credentials ({error.message}); fix the service key or "
        f"resource group; {summary}",
    )


def retrying(errors: list[TransientError], backoff: float, ledger: Ledger) -> Situation:
    return Situation(
        Phase.RETRYING,
        "Retrying",
        f"{len(errors)} transient AI API error(s), last {describe(errors[-1])}; "
        f"retrying in {backoff:.1f}s; {ledger.summary()}",
    )


def awaiting_approval(plan: Plan, approved: str | None) -> Situation:
    would = (
        f"would stop {plan.stop}, delete {plan.delete}, wait on {plan.wait}, leave "
        f"{plan.skip}, fail {plan.fail}"
    )
    if approved is None:
        why = "not approved yet"
    else:
        why = f"the approval quotes {approved}, a plan that no longer stands"
    return Situation(
        Phase.AWAITING_APPROVAL,
        "AwaitingApproval",
        f"{why}: nothing is sent until the annotation aiapi.bulkops.dev/approved-plan is "
        f"{plan.digest} (status.plan.digest); the plan {would}",
    )


def suspended(summary: str) -> Situation:
    return Situation(
        Phase.SUSPENDED,
        "Suspended",
        f"suspended (spec.suspend): nothing new is sent, what was sent is still watched; "
        f"set spec.suspend to false to resume; {summary}",
    )


def unreadable(
    errors: list[TransientError], seconds: float, rounds: int, backoff: float,
    ledger: Ledger, where: Where,
) -> Situation:  # fmt: skip
    """Not a quiet round but a run that cannot work: what is wrong where, still trying."""
    return Situation(
        Phase.STALLED,
        problem(errors),
        f"the AI API at {where.endpoint} could not be read for {int(seconds)}s ({rounds} "
        f"rounds): {describe(errors[-1])}; still retrying (next in {backoff:.1f}s); "
        f"{ledger.summary()}",
    )


def deadline_failure(seconds: int | None, last_seen: str, last_error: str) -> str:
    """Why one target failed DeadlineExceeded."""
    return f"not finished within activeDeadlineSeconds={seconds}; last seen {last_seen}{last_error}"


def expired(seconds: int | None, ledger: Ledger, last_error: str) -> Situation:
    return Situation(
        Phase.FAILED,
        "DeadlineExceeded",
        f"activeDeadlineSeconds={seconds} passed; {ledger.summary()}{last_error}",
    )


def finished(ledger: Ledger, nothing_found: Iterable[Kind], where: Where) -> Situation:
    """The terminal situation of a run whose every target is finished."""
    if ledger.failed == 0:
        outcomes = ", ".join(f"{n} {reason}" for reason, n in sorted(ledger.outcomes.items()))
        return Situation(
            Phase.COMPLETE,
            "AllTargetsTerminated",
            f"all {ledger.total} targets reached their target status ({outcomes})",
        )
    counts = f"{ledger.failed} of {ledger.total} targets failed, {ledger.succeeded} succeeded"
    kinds = list(nothing_found)
    if kinds:
        return Situation(
            Phase.FAILED,
            "NoTargetsFound",
            f"{where.none_found(kinds)}: check connection.resourceGroup and the service key's "
            f"AI_API_URL; {counts}",
        )
    return Situation(Phase.FAILED, "FailedTargets", f"{counts} (see failures)")


def dry_run(plan: Plan, nothing_found: Iterable[Kind], where: Where) -> Situation:
    """What a dry run found: what a real run would do, and which failures it predicts."""
    failing = sorted(plan.failures.items(), key=lambda item: (-item[1], item[0]))
    why = ": " + ", ".join(f"{reason} {n}" for reason, n in failing) if failing else ""
    kinds = [k for k in Kind if k in set(nothing_found)]
    none_found = (
        f"; {where.none_found(kinds)}: a real run would end Failed NoTargetsFound (check "
        "connection.resourceGroup and the service key's AI_API_URL)"
        if kinds
        else ""
    )
    return Situation(
        Phase.COMPLETE,
        "DryRun",
        f"dry run, nothing was sent: would stop {plan.stop}, delete {plan.delete}, wait on "
        f"{plan.wait}; {plan.skip} already at target status; {plan.fail} would fail"
        f"{why}{none_found}",
    )
