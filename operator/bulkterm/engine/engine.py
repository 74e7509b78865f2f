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
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import AuthError, ConfigurationError, TransientError
from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import verdicts
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
from bulkterm.engine.executor import (
    Executor,
    Outcome,
    SendReport,
)
from bulkterm.engine.ledger import Ledger
from bulkterm.engine.observer import Observer
from bulkterm.engine.planning import plan_of
from bulkterm.engine.progress import Phase, Progress, SelectionRecord, Situation
from bulkterm.engine.reporting import Reporter, RunHost
from bulkterm.engine.restore_points import RestorePoint
from bulkterm.engine.settings import EngineSettings
from bulkterm.engine.timing import backoff_delay, poll_interval
from bulkterm.spec import BulkTerminationSpec, Target

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

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
        suspended: Callable[[], bool] | None = None,
        approval: Callable[[], str | None] | None = None,
    ) -> None:
        """``targets`` overrides ``spec.targets``: the spec's own plus those a selector
        resolved to before the run (status indexes count into this list); ``selection`` is
        the record of that resolution, kept in every progress record. ``suspended`` is asked
        before every send (the live ``spec.suspend``): while it says so, nothing new is sent,
        what was sent is still watched, and the deadline does not run out. ``approval`` gives
        the plan digest the run is approved with (``spec.requireApproval``; None: not yet)."""
        self.spec = spec
        self._approval = approval or (lambda: None)
        self._suspended = suspended or (lambda: False)
        self._was_suspended = False
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
        self._reporter: Reporter | None = None
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

    async def run(self, host: RunHost | Reporter | None = None) -> Progress:
        """Drive every target to its target status, a failure, or the deadline, handing
        each record to ``host`` (through a :class:`Reporter`, which decides what is written
        when; without a host the record is only kept, see :attr:`progress`).

        Raises :class:`AuthError` after recording ``Stalled=True Unauthorized``, and
        :class:`ConfigurationError` (a URL the API does not serve) after recording
        ``Stalled=True EndpointNotFound``: only a human can fix either, so the caller decides
        when to try again (the operator retries later with the saved record, the CLI exits).
        """
        if self.ledger.loaded_terminal is not None:
            return self.ledger.loaded_terminal  # Complete/Failed never flip back
        if host is not None:
            self._reporter = host if isinstance(host, Reporter) else Reporter(host)
        if self.ledger.start_time is None:
            self.ledger.start_time = self._clock()
        self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
        self._note_suspension()
        await self._emit()  # Reconciling=True before any external call (kstatus race)
        try:
            if self.spec.dry_run:
                await self._dry_run()
            else:
                await self._loop()
        except (AuthError, ConfigurationError) as e:
            self._situation = verdicts.refused(e, self.ledger.summary())
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
            self._note_suspension()  # a resume restarts the deadline before it is checked
            deadline = None if self._suspended() else self._deadline
            if deadline is not None and self._clock() >= deadline:
                self._expire()
                return
            self._round_started = self._clock()
            delay = await self._round()
            if self.ledger.all_finished:
                self._finish()
                return
            self._note_suspension()
            decided = self._clock()
            await self._emit()  # not taken: the next record carries the same news
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
        if sends and self._suspended():
            sends = []  # suspended: decided again, from a fresh look, once resumed
        sends, points = await self._read_restore_points(sends, transient)
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
            await self._send(intents, before_send, points, transient)
        return self._after_round(transient, wake=wake, read=read)

    async def _read_restore_points(
        self, sends: list[tuple[int, Decision]], transient: list[TransientError]
    ) -> tuple[list[tuple[int, Decision]], dict[int, RestorePoint]]:
        """What brings back each target about to get its first action (recorded by
        :meth:`_send` with the in-flight entries, so only for actions really sent); a target
        whose read failed this round is not sent this round."""
        recorded = self.ledger.restore
        first = [i for i, _ in sends if i not in recorded]
        if not first:
            return sends, {}
        points = await self.observer.restore_points(first, transient)
        kept = [(i, d) for i, d in sends if i in recorded or i in points]
        return kept, points

    async def _send(
        self,
        intents: list[Intent],
        before_send: dict[int, Memory],
        points: dict[int, RestorePoint],
        transient: list[TransientError],
    ) -> None:
        mem = self.ledger.memory
        self._situation = Situation(Phase.RUNNING, "Running", self.ledger.summary())
        # Recorded as in flight, with what brings each target back, before sending (Job's
        # two-phase accounting): a restart must know what may have been sent. No record, no
        # send.
        self.ledger.record_restore(points)
        if not await self._emit():
            self.ledger.forget_restore(points)
            for index, old in before_send.items():
                mem[index] = old
            transient.append(
                TransientError("the progress record could not be saved, so nothing was sent")
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
            halted = [r.intent.index for r in report.results if r.outcome is Outcome.HALT]
            for index in halted:
                mem[index] = before_send[index]
            self.ledger.forget_restore(i for i in halted if i in points)
            raise report.halt

    def _note_suspension(self) -> None:
        """Say Suspended while ``spec.suspend`` holds (a stall still shows: it needs a human
        either way); on the resume, the deadline counts anew from then, as a Job's
        ``startTime`` is reset."""
        now_suspended = self._suspended()
        if now_suspended and self._situation.phase is not Phase.STALLED:
            self._situation = verdicts.suspended(self.ledger.summary())
        elif not now_suspended and self._was_suspended:
            self.ledger.start_time = self._clock()
        self._was_suspended = now_suspended

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
        # interval, not added to it (else a 10 s interval grew with the size of the run).
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
        self._last_transient = transient[-1]
        self._situation = verdicts.retrying(transient, backoff, self.ledger)
        since = self._unreadable_since
        unreadable_for = (now - since).total_seconds() if since is not None else 0.0
        if since is not None and unreadable_for >= self.settings.stall_after_seconds:
            # An outage ends and a wrong URL is fixed by a human: keep trying, say Stalled.
            self._situation = verdicts.unreadable(
                transient, unreadable_for, self._unreadable_rounds, backoff, self.ledger,
                self._where,
            )  # fmt: skip
        return max(delay, backoff)

    async def _observe(
        self, transient: list[TransientError], only: list[int] | None = None
    ) -> dict[int, Observation]:
        now = self._clock()
        observations, nothing = await self.observer.observe_open(transient, now, only)
        for kind in nothing:
            message = self._where.not_found(kind)
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
    def _where(self) -> verdicts.Where:
        """Where the run's messages say it looked: the group the client sends (``bulkterm
        apply --resource-group`` may override the spec's) and the endpoint."""
        group = getattr(self.executor.api, "resource_group", None)
        return verdicts.Where(
            str(group) if group else self.spec.connection.resource_group, self._endpoint
        )

    def _expire(self) -> None:
        now = self._clock()
        seconds = self.spec.active_deadline_seconds
        error = verdicts.describe(self._last_transient)
        last_error = f"; last error: {error}" if error else ""
        for i in self.ledger.open_indexes():
            last = self.ledger.memory[i].last_status
            seen = last.value if last is not None else "never"
            message = verdicts.deadline_failure(seconds, seen, last_error)
            self.ledger.fail(i, Decision(Verdict.FAIL, "DeadlineExceeded", message), now)
        self._situation = verdicts.expired(seconds, self.ledger, last_error)

    def _finish(self) -> None:
        if self.ledger.failed == 0:
            self.ledger.completion_time = self._clock()
        self._situation = verdicts.finished(self.ledger, self.observer.nothing_found, self._where)

    # --- dry run ---

    async def _dry_run(self) -> None:
        """Observe once and write down what a real run would do; send nothing (and finish
        no target: a kind none of whose targets exists is a predicted failure in the plan)."""
        nothing = await self._plan_from_a_look()
        self.ledger.completion_time = self._clock()
        self._situation = verdicts.dry_run(self.ledger.plan, nothing, self._where)  # type: ignore[arg-type]

    async def _plan_from_a_look(self) -> set[Kind]:
        """One look at every open target (retried a few times for transient errors), and the
        plan a real run would follow from it, in the ledger; the kinds none of whose targets
        was found."""
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
            nothing_found={kind: self._where.not_found(kind) for kind in nothing},
        )
        return nothing

    async def await_approval(self, host: RunHost | Reporter | None = None) -> None:
        """``spec.requireApproval``: plan from a fresh look every poll interval, write the plan
        and its digest, and send nothing until the approval quotes the digest of the plan as
        it stands. A target that moved, or a selector that would match more, makes another
        plan and another digest: an approval of the old one no longer counts. Returns once
        approved (at once for a run approved before); :meth:`run` then sends."""
        if host is not None:
            self._reporter = host if isinstance(host, Reporter) else Reporter(host)
        while self.ledger.approved_plan is None:
            await self._plan_from_a_look()
            plan = self.ledger.plan
            assert plan is not None
            approved = self._approval()
            if approved is not None and approved == plan.digest:
                self.ledger.approved_plan = plan.digest
                break
            self._situation = verdicts.awaiting_approval(plan, approved)
            await self._emit()
            await self._sleep(poll_interval(self.spec.poll_interval_seconds, self.settings))

    # --- reporting ---

    async def _emit(self) -> bool:
        """Hand the record to the host; whether it took it (as durably as it must)."""
        if self._reporter is None:
            self.ledger.update_conditions(self._situation, self._clock())
            return True
        return await self._reporter.offer(self.ledger.to_progress(self._situation, self._clock()))


def _single_only(intent: Intent, mem: Memory) -> bool:
    return intent.action is Action.DELETE and mem.last_status is Status.COMPLETED
