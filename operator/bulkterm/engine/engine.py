"""The engine's loop: observe → decide → send → record → report → sleep, until done.

One :class:`Engine` drives one BulkTermination (or one ``bulkterm apply``). It owns no
policy: the decision table lives in :mod:`~bulkterm.engine.decisions`, request shapes in
:mod:`~bulkterm.engine.batching`, HTTP in :mod:`~bulkterm.engine.executor`, the record in
:mod:`~bulkterm.engine.ledger`. What is left here is sequencing, time, and error policy.

Time is injected (``clock``, ``sleep``) so tests run hours of polling in milliseconds and
a simulator can share the same fake clock. Cancellation is always safe: state changes
happen synchronously between awaits, and every send is recorded before it is made, so the
record read after a cancel (or the last one reported) never claims less than was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import AuthError, ConfigurationError, TransientError
from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine.batching import Intent, make_batches
from bulkterm.engine.decisions import (
    Action,
    Decision,
    Limits,
    Memory,
    Observation,
    Verdict,
    decide,
    remember_accepted,
    remember_not_found,
    remember_refused,
    remember_sent,
    remember_transient,
    remember_unknown,
)
from bulkterm.engine.errors import RecordNotWritten
from bulkterm.engine.executor import (
    Executor,
    Outcome,
    SendReport,
)
from bulkterm.engine.ledger import Ledger
from bulkterm.engine.observer import Observer
from bulkterm.engine.planning import plan_of
from bulkterm.engine.progress import Phase, Progress, SelectionRecord, Situation
from bulkterm.engine.settings import EngineSettings
from bulkterm.engine.timing import backoff_delay, poll_interval
from bulkterm.spec import BulkTerminationSpec, Target

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
ProgressCallback = Callable[[Progress], Awaitable[None]]

#: How many times a dry run retries observations that failed transiently.
DRY_RUN_OBSERVATION_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Runs one set of targets to completion against one AI API endpoint and resource group."""

    def __init__(
        self,
        spec: BulkTerminationSpec,
        api: AiApi,
        record: Progress | None = None,
        *,
        settings: EngineSettings | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        targets: Sequence[Target] | None = None,
        selection: SelectionRecord | None = None,
    ) -> None:
        """``targets`` overrides ``spec.targets``: the spec's own plus those a selector
        resolved to before the run (status indexes count into this list); ``selection`` is
        the record of that resolution, kept in every progress record."""
        self.spec = spec
        self.settings = settings or EngineSettings()
        self.executor = Executor(
            api,
            single_call_concurrency=self.settings.single_call_concurrency,
            bulk_concurrency=self.settings.bulk_concurrency,
            list_page_size=self.settings.list_page_size,
        )
        self.ledger = Ledger.from_record(
            spec.targets if targets is None else targets, self.settings, record
        )
        if selection is not None:
            self.ledger.selection = selection
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._limits = Limits(
            resend_timeout=timedelta(seconds=self.settings.resend_timeout_seconds),
            unknown_grace=timedelta(seconds=spec.unknown_grace_period_seconds),
            backoff_limit=spec.backoff_limit_per_target,
            delete_resend_timeout=timedelta(seconds=self.settings.delete_resend_timeout_seconds),
        )
        self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
        self._capabilities_read = False
        self._bulk: dict[Kind, bool] = {}
        self.observer = Observer(self.executor, self.ledger, self.settings)
        self._transient_streak = 0
        #: When the current round's look began: the poll interval runs from there.
        self._round_started = clock()
        self._on_progress: ProgressCallback | None = None
        self._last_emitted: dict[str, object] | None = None
        self._last_record: Progress | None = None
        #: The last request-level error, for messages (Retrying, DeadlineExceeded).
        self._last_transient: TransientError | None = None
        #: Since when, and for how many rounds in a row, the AI API could not be read at all.
        self._unreadable_since: datetime | None = None
        self._unreadable_rounds = 0
        key = getattr(api, "key", None)
        self._endpoint = str(getattr(key, "api_url", "") or "the AI API")

    # --- public ---

    @property
    def progress(self) -> Progress:
        """The record as of now; valid at any time, including after a cancellation."""
        if self.ledger.loaded_terminal is not None:
            return self.ledger.loaded_terminal
        return self.ledger.to_progress(self._situation, self._clock())

    async def run(self, on_progress: ProgressCallback | None = None) -> Progress:
        """Drive every target to its target status, a failure, or the deadline.

        Raises :class:`AuthError` after recording ``Stalled=True Unauthorized``, and
        :class:`ConfigurationError` (a URL the API does not serve) after recording
        ``Stalled=True EndpointNotFound``: only a human can fix either, so the caller decides
        when to try again (the operator retries later with the saved record, the CLI exits).
        """
        if self.ledger.loaded_terminal is not None:
            return self.ledger.loaded_terminal  # Complete/Failed never flip back
        self._on_progress = on_progress
        if self.ledger.start_time is None:
            self.ledger.start_time = self._clock()
        self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
        await self._emit()  # Reconciling=True before any external call (kstatus race)
        try:
            if self.spec.dry_run:
                await self._dry_run()
            else:
                await self._loop()
        except AuthError as e:
            self._situation = Situation(
                Phase.STALLED,
                "Unauthorized",
                f"the AI API refused the credentials ({e.message}); fix the service key or "
                f"resource group; {self.ledger.summary()}",
            )
            await self._emit()
            raise
        except ConfigurationError as e:
            # A URL the AI API does not serve: nothing can be learnt about any target there.
            self._situation = Situation(
                Phase.STALLED, e.reason, f"{e.message}; {self.ledger.summary()}"
            )
            await self._emit()
            raise
        await self._emit()
        return self.progress

    # --- the loop ---

    @property
    def _deadline(self) -> datetime | None:
        seconds = self.spec.active_deadline_seconds
        if seconds is None or self.ledger.start_time is None:
            return None
        return self.ledger.start_time + timedelta(seconds=seconds)

    async def _loop(self) -> None:
        while True:
            deadline = self._deadline
            if deadline is not None and self._clock() >= deadline:
                self._expire()
                return
            self._round_started = self._clock()
            delay = await self._round()
            if self.ledger.all_finished:
                self._finish()
                return
            decided = self._clock()
            with contextlib.suppress(RecordNotWritten):
                await self._emit()  # a progress write; the next one carries the same news
            delay -= (self._clock() - decided).total_seconds()  # the write is part of the wait
            if deadline is not None:
                delay = min(delay, (deadline - self._clock()).total_seconds())
            await self._sleep(max(0.0, delay))

    async def _round(self) -> float:
        """One observe → decide → send pass; returns how long to sleep before the next."""
        transient: list[TransientError] = []
        if not await self._ensure_capabilities(transient):
            return self._after_round(transient, wake=None, read=False)
        looked_at = self._clock()
        observations = await self._observe(transient)
        read = bool(observations) or not self.ledger.open_indexes()
        await self.observer.confirm_restored_sends(observations, transient)
        now = self._clock()
        ledger, mem = self.ledger, self.ledger.memory
        sends: list[tuple[int, Decision]] = []
        wake: datetime | None = None
        suspects: list[tuple[int, Decision]] = []
        for i in ledger.open_indexes():
            target = ledger.targets[i]
            # Judged as of the look: the reads may have taken a while, and what they saw (an
            # UNKNOWN, say) is only known to have held then.
            decision = decide(
                target, observations.get(i), mem[i], now=looked_at, limits=self._limits
            )
            if decision.lost:
                suspects.append((i, decision))
            elif decision.verdict is Verdict.DONE:
                ledger.succeed(i, decision.reason)
            elif decision.verdict is Verdict.FAIL:
                ledger.fail(i, decision, now)
            elif decision.verdict is Verdict.SEND:
                sends.append((i, decision))
            elif decision.wake_at is not None:
                wake = decision.wake_at if wake is None else min(wake, decision.wake_at)
        for i, decision in await self.observer.really_lost(suspects, transient, now):
            if decision.verdict is Verdict.FAIL:
                ledger.fail(i, decision, now)
            else:
                sends.append((i, decision))
        if sends and self._clock() - looked_at > self._limits.resend_timeout:
            # The reads of this round took longer than an accepted action is trusted to show
            # (slow pages, timeouts): what they saw may predate another run's write. Look
            # again before acting on it.
            return self._after_round(transient, wake=now, read=read)
        intents: list[Intent] = []
        before_send: dict[int, Memory] = {}
        for i, decision in sends:
            assert decision.action is not None
            target = ledger.targets[i]
            before_send[i] = mem[i]
            mem[i] = remember_sent(mem[i], decision, now)
            intents.append(Intent(i, target.kind, target.id, decision.action))
        if intents:
            await self._send(intents, before_send, transient)
        return self._after_round(transient, wake=wake, read=read)

    async def _send(
        self,
        intents: list[Intent],
        before_send: dict[int, Memory],
        transient: list[TransientError],
    ) -> None:
        mem = self.ledger.memory
        self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
        try:
            # Recorded as in flight before sending (Job's two-phase accounting): a restart
            # must know what may have been sent. No record, no send.
            await self._emit()
        except RecordNotWritten as e:
            for index, old in before_send.items():
                mem[index] = old
            transient.append(
                TransientError(f"the progress record could not be saved, so nothing was sent: {e}")
            )
            return
        # The bulk endpoint deletes only STOPPED, DEAD and UNKNOWN items (the single DELETE
        # also takes a COMPLETED execution): such deletes always go one by one.
        singles: list[Intent] = []
        bulkable: list[Intent] = []
        for intent in intents:
            (singles if _single_only(intent, mem[intent.index]) else bulkable).append(intent)
        report = await self.executor.send(
            make_batches(bulkable, self.spec.batch_size), self._bulk, singles
        )
        self._apply(report)
        transient.extend(report.transient)
        if report.halt is not None:
            # Only the requests refused for credentials or configuration were not acted on;
            # every other request of the round keeps its answer (nothing accepted is resent).
            for result in report.results:
                if result.outcome is Outcome.HALT:
                    mem[result.intent.index] = before_send[result.intent.index]
            raise report.halt

    def _apply(self, report: SendReport) -> None:
        mem = self.ledger.memory
        for kind in report.bulk_unsupported:
            self._bulk[kind] = False
            self.ledger.set_capabilities(
                deployments=self._bulk.get(Kind.DEPLOYMENT, False),
                executions=self._bulk.get(Kind.EXECUTION, False),
            )
        per_retry = self.settings.transient_errors_per_retry
        for result in report.results:
            i = result.intent.index
            if result.outcome is Outcome.ACCEPTED:
                mem[i] = remember_accepted(mem[i], result.intent.action)
            elif result.outcome is Outcome.NOT_FOUND:
                assert result.fault is not None
                mem[i] = remember_not_found(mem[i], result.fault, per_retry=per_retry)
            elif result.outcome is Outcome.REFUSED:
                assert result.fault is not None
                mem[i] = remember_refused(mem[i], result.fault)
            elif result.outcome is Outcome.TRANSIENT:
                assert result.fault is not None
                mem[i] = remember_transient(mem[i], result.fault)
            elif result.outcome is Outcome.UNKNOWN:
                assert result.fault is not None
                mem[i] = remember_unknown(mem[i], result.fault)

    def _after_round(
        self, transient: list[TransientError], *, wake: datetime | None, read: bool = True
    ) -> float:
        now = self._clock()
        if read or not transient:
            self._unreadable_since, self._unreadable_rounds = None, 0
        else:
            self._unreadable_since = self._unreadable_since or self._round_started
            self._unreadable_rounds += 1
        # One look per interval, from look to look: the round's own calls are part of the
        # interval, not added to it (else 10 s meant 10 s plus a 10,000-target round).
        spent = (now - self._round_started).total_seconds()
        delay = max(0.0, poll_interval(self.spec.poll_interval_seconds, self.settings) - spent)
        if wake is not None:
            delay = min(delay, max(0.0, (wake - now).total_seconds()))
        if not transient:
            self._transient_streak = 0
            self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
            return delay
        self._transient_streak += 1
        retry_after = max((e.retry_after or 0.0 for e in transient), default=0.0) or None
        backoff = backoff_delay(self._transient_streak, retry_after, self.settings, self._rng)
        worst = transient[-1]
        self._last_transient = worst
        self._situation = Situation(
            Phase.RETRYING,
            "Retrying",
            f"{len(transient)} transient AI API error(s), last {_describe(worst)}; "
            f"retrying in {backoff:.1f}s; {self.ledger.summary()}",
        )
        since = self._unreadable_since
        if since is not None and (now - since).total_seconds() >= self.settings.stall_after_seconds:
            # Not a quiet round but a run that cannot work: say so, with what is wrong where,
            # and keep trying (an outage ends; a wrong URL is fixed by a human).
            self._situation = Situation(
                Phase.STALLED,
                _problem(transient),
                f"the AI API at {self._endpoint} could not be read for "
                f"{int((now - since).total_seconds())}s ({self._unreadable_rounds} rounds): "
                f"{_describe(worst)}; still retrying (next in {backoff:.1f}s); "
                f"{self.ledger.summary()}",
            )
        return max(delay, backoff)

    async def _observe(
        self, transient: list[TransientError], only: list[int] | None = None
    ) -> dict[int, Observation]:
        now = self._clock()
        observations, nothing = await self.observer.observe_open(transient, now, only)
        for kind in nothing:
            message = self._not_found_message(kind)
            for i, target in enumerate(self.ledger.targets):
                if target.kind is kind and self.ledger.result[i] is None:
                    self.ledger.fail(i, Decision(Verdict.FAIL, "NotFound", message), now)
        return observations

    async def _ensure_capabilities(self, transient: list[TransientError]) -> bool:
        """Read ``/meta`` once per run; bulk PATCH is used only where it says so."""
        if self._capabilities_read:
            return True
        try:
            caps = await self.executor.capabilities()
        except TransientError as e:
            transient.append(e)
            return False
        self._bulk = {kind: caps.bulk_updates.supports(kind) for kind in Kind}
        self.ledger.set_capabilities(
            deployments=self._bulk[Kind.DEPLOYMENT], executions=self._bulk[Kind.EXECUTION]
        )
        self._capabilities_read = True
        return True

    @property
    def _resource_group(self) -> str:
        """The group the client sends (``bulkterm apply --resource-group`` may override the
        spec's)."""
        group = getattr(self.executor.api, "resource_group", None)
        return str(group) if group else self.spec.connection.resource_group

    def _not_found_message(self, kind: Kind) -> str:
        """Why every target of ``kind`` is NotFound when none of them was found."""
        return (
            f"not found in resource group {self._resource_group!r} at {self._endpoint}, and "
            f"neither was any other {kind.value.lower()} of this run"
        )

    def _expire(self) -> None:
        now = self._clock()
        seconds = self.spec.active_deadline_seconds
        error = _describe(self._last_transient)
        last_error = f"; last error: {error}" if error else ""
        for i in self.ledger.open_indexes():
            last = self.ledger.memory[i].last_status
            self.ledger.fail(
                i,
                Decision(
                    Verdict.FAIL,
                    "DeadlineExceeded",
                    f"not finished within activeDeadlineSeconds={seconds}; last seen "
                    f"{last.value if last is not None else 'never'}{last_error}",
                ),
                now,
            )
        self._situation = Situation(
            Phase.FAILED,
            "DeadlineExceeded",
            f"activeDeadlineSeconds={seconds} passed; {self.ledger.summary()}{last_error}",
        )

    def _finish(self) -> None:
        ledger = self.ledger
        if ledger.failed == 0:
            ledger.completion_time = self._clock()
            outcomes = ", ".join(f"{n} {reason}" for reason, n in sorted(ledger.outcomes.items()))
            self._situation = Situation(
                Phase.COMPLETE,
                "AllTargetsTerminated",
                f"all {ledger.total} targets reached their target status ({outcomes})",
            )
        elif self.observer.nothing_found:
            kinds = " and ".join(f"{k.value.lower()}s" for k in self.observer.nothing_found)
            self._situation = Situation(
                Phase.FAILED,
                "NoTargetsFound",
                f"none of the {kinds} was found in resource group "
                f"{self._resource_group!r} at {self._endpoint}: check "
                f"connection.resourceGroup and the service key's AI_API_URL; "
                f"{ledger.failed} of {ledger.total} targets failed, {ledger.succeeded} succeeded",
            )
        else:
            self._situation = Situation(
                Phase.FAILED,
                "FailedTargets",
                f"{ledger.failed} of {ledger.total} targets failed, {ledger.succeeded} "
                "succeeded (see failures)",
            )

    # --- dry run ---

    async def _dry_run(self) -> None:
        """Observe once and write down what a real run would do; send nothing (and finish
        no target: a kind none of whose targets exists is a predicted failure in the plan)."""
        observations: dict[int, Observation] = {}
        nothing: set[Kind] = set()
        for attempt in range(1, DRY_RUN_OBSERVATION_ATTEMPTS + 1):
            transient: list[TransientError] = []
            if await self._ensure_capabilities(transient):
                missing = [
                    i
                    for i in self.ledger.open_indexes()
                    if i not in observations and self.ledger.targets[i].kind not in nothing
                ]
                seen, absent = await self.observer.observe_open(transient, self._clock(), missing)
                observations.update(seen)
                nothing.update(absent)
            if not transient or attempt == DRY_RUN_OBSERVATION_ATTEMPTS:
                break
            self._transient_streak += 1
            retry_after = max((e.retry_after or 0.0 for e in transient), default=0.0) or None
            await self._sleep(
                backoff_delay(self._transient_streak, retry_after, self.settings, self._rng)
            )
        self.ledger.plan = plan_of(
            self.ledger,
            observations,
            now=self._clock(),
            limits=self._limits,
            max_entries=self.settings.max_plan_entries,
            nothing_found={kind: self._not_found_message(kind) for kind in nothing},
        )
        plan = self.ledger.plan
        failing = sorted(plan.failures.items(), key=lambda item: (-item[1], item[0]))
        why = ": " + ", ".join(f"{reason} {n}" for reason, n in failing) if failing else ""
        kinds = " and ".join(f"{k.value.lower()}s" for k in Kind if k in nothing)
        none_found = (
            f"; none of the {kinds} was found in resource group {self._resource_group!r} at {self._endpoint}: "
            "a real run would end Failed NoTargetsFound (check connection.resourceGroup and "
            "the service key's AI_API_URL)"
            if nothing
            else ""
        )
        self.ledger.completion_time = self._clock()
        self._situation = Situation(
            Phase.COMPLETE,
            "DryRun",
            f"dry run, nothing was sent: would stop {plan.stop}, delete {plan.delete}, wait on "
            f"{plan.wait}; {plan.skip} already at target status; {plan.fail} would fail"
            f"{why}{none_found}",
        )

    # --- reporting ---

    async def _emit(self) -> None:
        """Hand the record to the caller when it changed (status writes are not free)."""
        if self._on_progress is None:
            self.ledger.update_conditions(self._situation, self._clock())
            return
        record = self.ledger.to_progress(self._situation, self._clock())
        dumped = record.to_status()
        if dumped == self._last_emitted:
            return
        if self._last_record is not None and _only_answers(
            dumped, self._last_emitted, record, self._last_record
        ):
            # Only answers arrived (``accepted: true``): they ride with the next write. Lost
            # in a crash before it, they cost a whole read of each item after the restart,
            # not a write of every CR after every send round.
            return
        await self._on_progress(record)
        # Only once it was taken: a failed write is offered again.
        self._last_emitted, self._last_record = dumped, record


def _only_answers(
    dumped: dict[str, object],
    last_dumped: dict[str, object] | None,
    record: Progress,
    last: Progress,
) -> bool:
    """Whether ``record`` differs from the last one taken only by answers (``accepted``)."""
    if last_dumped is None or record.sent() != last.sent():
        return False
    return {k: v for k, v in dumped.items() if k != "inFlightGroups"} == {
        k: v for k, v in last_dumped.items() if k != "inFlightGroups"
    }


def _problem(errors: list[TransientError]) -> str:
    """The kind of problem that keeps the AI API unreadable, as a condition reason."""
    reasons = {e.reason for e in errors}
    for reason in ("NotTheAiApi", "AiApiUnreachable"):
        if reason in reasons:
            return reason
    if any(e.status_code is None for e in errors):
        return "AiApiTimeout"  # no answer at all: timeouts, dropped connections
    return "AiApiUnavailable"  # answers, but 5xx or 429 ones


def _single_only(intent: Intent, mem: Memory) -> bool:
    return intent.action is Action.DELETE and mem.last_status is Status.COMPLETED


def _describe(error: TransientError | None) -> str:
    if error is None:
        return ""
    http = f"HTTP {error.status_code}: " if error.status_code else ""
    return f"{http}{error.message}"
