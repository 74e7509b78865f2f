"""One BulkTermination, from its validated spec to its terminal record: the use case.

A :class:`Run` owns the run's record and every phase it reports: accepted (``Reconciling=True``
before any AI API call), held (the host cannot give it an AI API now), the selector resolved and
the schedules paused before any target is sent, the loop (:class:`~bulkterm.engine.Engine`), and
the end. Its host (the operator for a CR, ``bulkterm apply`` for a terminal) supplies the AI API
client and takes the records and milestones through :class:`~bulkterm.engine.reporting.RunHost`;
it never writes a phase of its own. Restarting is the host's business too: a new process makes a
new Run from the last record that was durably written.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.errors import AuthError, ConfigurationError, TransientError
from bulkterm.engine import verdicts
from bulkterm.engine.engine import Clock, Engine, Sleep, utcnow
from bulkterm.engine.progress import Phase, Progress, SelectionRecord, Situation, build_conditions
from bulkterm.engine.reporting import Milestone, Reporter, RunEvent, RunHost
from bulkterm.engine.selection import (
    SelectionRefused,
    describe_selection,
    note_active_schedules,
    pause_schedules,
    run_targets,
)
from bulkterm.engine.settings import EngineSettings
from bulkterm.engine.timing import poll_interval
from bulkterm.spec import BulkTerminationSpec, Target


def fresh_record(total: int) -> Progress:
    """The record of a run that has not begun: ``total`` targets, all pending."""
    return Progress(total=total, pending=total, progress=f"0/{total}")


class Run:
    """Runs one spec to its terminal record against the AI API its host supplies."""

    def __init__(
        self,
        spec: BulkTerminationSpec,
        host: RunHost,
        record: Progress | None = None,
        *,
        settings: EngineSettings | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        suspended: Callable[[], bool] | None = None,
        approval: Callable[[], str | None] | None = None,
    ) -> None:
        """``record``: the last record durably written (a resumed run), else a fresh one.
        ``suspended``: the live ``spec.suspend`` (the spec as created, if not given): while
        it holds, the run resolves and watches but sends nothing, schedules included.
        ``approval``: the plan digest the run is approved with (``spec.requireApproval``)."""
        self.spec = spec
        self._approval = approval
        self._suspended = suspended or (lambda: spec.suspend)
        self.settings = settings or EngineSettings()
        self._reporter = Reporter(host)
        self._record = record if record is not None else fresh_record(len(spec.targets))
        self._engine: Engine | None = None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    @property
    def record(self) -> Progress:
        """The record as of now; valid at any time, including after a cancellation."""
        return self._engine.progress if self._engine is not None else self._record

    async def begin(self, *, again: bool = False) -> None:
        """Before any AI API call: the run is accepted (``Reconciling=True``). A run that
        already said so is not announced ``again`` unless its host asks (a new generation of
        its spec); ``Started`` is said once, for a record that had no conditions."""
        record = self._record
        if record.terminal or (record.conditions and not again):
            return
        message = _accepted_message(self.spec)
        await self._enter(Situation(Phase.RUNNING, "Running", message))
        if not record.conditions:
            self._reporter.say(RunEvent(Milestone.STARTED, "Started", message))

    async def hold(self, reason: str, message: str) -> None:
        """The host cannot give the run an AI API now (its credentials, its lease): the run
        is ``Stalled`` for ``reason`` until a later :meth:`drive`."""
        await self._enter(Situation(Phase.STALLED, reason, message))

    async def fail(self, reason: str, message: str) -> Progress:
        """End the run ``Failed`` before it sends anything (a refused selector, a spec that
        changed under a run that had started)."""
        return await self._enter(Situation(Phase.FAILED, reason, message))

    async def drive(self, api: AiApi) -> Progress:
        """Selector, schedules, then the loop, until the run is terminal: its record.

        Raises :class:`AuthError` or :class:`ConfigurationError` after recording
        ``Stalled=True`` (only a human can fix either: the host decides when to try again),
        and other AI API errors of the selector's resolution (nothing recorded or sent)."""
        if self.record.terminal:
            return self.record
        self._record = self.record
        self._engine = None
        try:
            chosen = await self._targets(api)
        except (AuthError, ConfigurationError) as exc:
            await self._enter(verdicts.refused(exc, self._record.summary()))
            raise
        if isinstance(chosen, Progress):
            return chosen
        targets, selection = chosen
        engine = Engine(
            self.spec,
            api,
            self._record,
            settings=self.settings,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
            targets=targets,
            selection=selection,
            suspended=self._suspended,
            approval=self._approval,
        )
        self._engine = engine
        if self.spec.require_approval and not self.spec.dry_run:
            await engine.await_approval(self._reporter)
            if selection is not None and selection.schedules_paused < len(selection.schedules):
                engine.ledger.selection = await self._pause_schedules(api, selection)
                self._engine = engine
        return await engine.run(self._reporter)

    async def _targets(self, api: AiApi) -> tuple[list[Target], SelectionRecord | None] | Progress:
        """The run's targets: the spec's, then what its selector resolved to (once: a restart
        reads them back from the record), with the selector's schedules paused before any
        target is sent. A Failed record if the selector is refused."""
        recorded = self._record.selection
        try:
            targets, selection = await run_targets(self.spec, api, recorded, now=self._clock())
        except SelectionRefused as refusal:
            return await self.fail(refusal.reason, refusal.message)
        if selection is not None and recorded is None:
            self._reporter.say(
                RunEvent(Milestone.SELECTED, "Selected", describe_selection(selection))
            )
        if selection is not None and not self.spec.dry_run and not self.spec.require_approval:
            if selection.schedules_paused < len(selection.schedules):
                selection = await self._pause_schedules(api, selection)
        return targets, selection

    async def _pause_schedules(self, api: AiApi, selection: SelectionRecord) -> SelectionRecord:
        """The selector's execution schedules set INACTIVE, before any target is sent (and
        not while suspended: pausing a schedule is a write, too)."""
        await self._while_suspended()
        noted = await note_active_schedules(api, selection)
        if noted is not selection:
            current = self._engine.progress if self._engine is not None else self._record
            if not await self._reporter.offer(current.model_copy(update={"selection": noted})):
                raise TransientError(
                    "the record of which execution schedules are ACTIVE could not be saved, "
                    "so none was paused"
                )
        selection = await pause_schedules(api, noted)
        self._reporter.say(
            RunEvent(
                Milestone.SCHEDULES_PAUSED,
                "SchedulesPaused",
                f"{selection.schedules_paused} execution schedule(s) set INACTIVE "
                "before any target was sent",
            )
        )
        return selection

    async def _while_suspended(self) -> None:
        """Wait, saying Suspended, until the run is resumed (nothing was sent yet)."""
        if not self._suspended():
            return
        await self._enter(verdicts.suspended(self._record.summary()))
        while self._suspended():
            await self._sleep(poll_interval(self.spec.poll_interval_seconds, self.settings))

    async def _enter(self, situation: Situation) -> Progress:
        """``situation`` on the current record, handed to the host."""
        record = self.record
        now: datetime = self._clock()
        self._engine = None
        self._record = record.model_copy(
            update={"conditions": build_conditions(record.conditions, situation, now=now)}
        )
        await self._reporter.offer(self._record)
        return self._record


def _accepted_message(spec: BulkTerminationSpec) -> str:
    n = len(spec.targets)
    mode = " (dry run)" if spec.dry_run else ""
    if spec.selector is not None:
        listed = f"{n} listed target(s) and " if n else ""
        return f"accepted {listed}a selector{mode}; resolving it with the AI API"
    return f"accepted {n} target(s){mode}; waiting for the first AI API observation"
