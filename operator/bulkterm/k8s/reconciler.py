"""One BulkTermination, reconciled: credentials → engine → status and events.

No kopf here: the handlers hand in the CR's identity, its spec and status, an event sink and a
stop signal, so this whole flow is testable without a Kubernetes API. This module decides the
order of things and owns the engine's task; the jobs it orders live next to it:
:mod:`~bulkterm.k8s.credentials` (Secret → service key, or why not),
:mod:`~bulkterm.k8s.clients` (AI API clients sharing a tenant's tokens and rate),
:mod:`~bulkterm.k8s.status` (records → throttled status writes) and
:mod:`~bulkterm.k8s.events` (milestones and aggregated progress as Events).

The order of writes is the contract with kstatus, Flux and Argo CD: the first write
(``observedGeneration``, ``Reconciling=True``) lands before any AI API call, a record announcing
sends lands before the sends, the terminal write is forced, and terminal conditions never flip
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from bulkterm import metrics
from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, ConfigurationError, CredentialsError
from bulkterm.engine import (
    ConditionType,
    Engine,
    EngineSettings,
    Phase,
    Progress,
    Situation,
    utcnow,
)
from bulkterm.engine.errors import RecordNotWritten
from bulkterm.engine.progress import SelectionRecord
from bulkterm.engine.selection import (
    SelectionRefused,
    describe_selection,
    pause_schedules,
    run_targets,
)
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.credentials import (
    CredentialsProblem,
    SecretReader,
    check_accepted,
    read_service_key,
    refused,
    unusable,
)
from bulkterm.k8s.events import EventSink, RunEvents
from bulkterm.k8s.fleet import FleetApi
from bulkterm.k8s.kubeapi import without_waiting
from bulkterm.k8s.leases import ExclusiveApi, LeaseForbidden, LeaseLost, RunLease
from bulkterm.k8s.status import (
    CrRef,
    StatusPatcher,
    StatusWriteError,
    StatusWriter,
    announces_sends,
    finished_at,
    ignored_message,
    is_terminal,
    restore,
)
from bulkterm.k8s.throttle import CLOSE_RETRY_DELAYS
from bulkterm.manifest import describe_errors
from bulkterm.spec import BulkTerminationSpec, Target

__all__ = [
    "CrRef",
    "Kube",
    "Reconciler",
    "StatusWriteError",
    "finished_at",
    "is_terminal",
]

log = logging.getLogger(__name__)


class Kube(SecretReader, StatusPatcher, Protocol):
    """The Kubernetes API calls a run makes besides kopf's own."""


class Reconciler:
    """Runs one CR until it is terminal or the stop event is set."""

    def __init__(
        self,
        ref: CrRef,
        spec: dict[str, Any],
        status: dict[str, Any] | None,
        *,
        kube: Kube,
        events: EventSink,
        config: OperatorConfig,
        engine_settings: EngineSettings | None = None,
        clients: ClientPool | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease: RunLease | None = None,
    ) -> None:
        self.ref = ref
        self._spec_raw = spec
        self._status_raw = dict(status or {})
        self._kube = kube
        self._config = config
        self._engine_settings = engine_settings or EngineSettings(
            stall_after_seconds=config.stall_after_seconds
        )
        #: Shared by every CR of the operator process (the handlers pass theirs).
        self._clients = clients or ClientPool.for_config(config)
        self._status = StatusWriter(
            kube, ref, self._status_raw, interval=config.status_interval, clock=clock
        )
        self._events = RunEvents(events)
        self._record: Progress | None = None
        #: The stop event of the current ``run`` (set by the run itself when the CR is gone).
        self._stop = asyncio.Event()
        #: The reason of the stall the CR is in, if any.
        self._stalled: str | None = None
        #: (succeeded, failed, failures) of the last record counted into the metrics.
        self._counted: tuple[int, int, int] | None = None
        #: The run's Lease (None: exclusivity left to the host, as in unit tests).
        self._lease = lease
        self._keeper: asyncio.Task[None] | None = None
        #: Another operator took the run over: this one writes nothing more.
        self.handed_over = False

    # -- the flow --------------------------------------------------------------------------

    @property
    def resource_gone(self) -> bool:
        """A status write was answered 404: the BulkTermination was deleted under the run
        (before kopf's finalizer was on it, or after it was taken off). The run stops by
        itself then; it is not an error."""
        return self._status.gone and not self.handed_over

    async def run(self, stop: asyncio.Event) -> Progress | None:
        """Reconcile until terminal, ``stop``, or the resource is gone; cancelling this
        cancels the engine with it."""
        self._stop = stop
        cancelled = False
        try:
            result = await self._reconcile(stop)
        except LeaseLost as lost:
            self.handed_over = True
            self._status.abandon()
            log.info("%s/%s: run handed over (%s)", self.ref.namespace, self.ref.name, lost)
            return None
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if self._keeper is not None:
                self._keeper.cancel()
                await asyncio.gather(self._keeper, return_exceptions=True)
            # Stopped (SIGTERM, the CR deleted, kopf's hard stop): one last attempt, nothing
            # waited for, so that the operator exits within its grace period however the API
            # server answers (a revoked token, RBAC taken away, an outage); then the Lease.
            stopped = cancelled or stop.is_set()
            with without_waiting() if stopped else contextlib.nullcontext():
                landed = await self._status.close(() if stopped else CLOSE_RETRY_DELAYS)
                if self._lease is not None and not self.handed_over:
                    await self._lease.release()
            self._set_stalled(None)  # the gauge counts runs of this process
        if not landed and not self._status.gone and stopped:
            # One line, no restart: the operator is stopping (or the run was); the next run
            # resumes from the last status that landed.
            log.warning(
                "%s/%s: stopped without writing its last status (refused, or the API server "
                "is away); the next run resumes from the last status written",
                self.ref.namespace,
                self.ref.name,
            )
        elif not landed and not self._status.gone:
            # Raising makes kopf restart the daemon, which resumes from the last status
            # that did land and writes the outcome again. (A resource that is gone has no
            # status to write: its host says once that the run stopped, see ``resource_gone``.)
            raise StatusWriteError(
                f"{self.ref.namespace}/{self.ref.name}: final status not written"
            )
        return result

    async def _hold_lease(self, stop: asyncio.Event) -> bool:
        """Acquire the run's Lease (and keep renewing it) before the run writes anything;
        False if ``stop`` came first. RBAC that refuses Leases stalls the run (it must not run
        without one): that stall is written over the restored record, never a blank one."""
        if self._lease is None:
            return True
        while not stop.is_set():
            try:
                if not await self._lease.acquire(stop):
                    return False
            except LeaseForbidden as exc:
                await self._stall(CredentialsProblem("LeaseForbidden", str(exc)))
                await _wait(stop, self._config.stalled_retry_seconds)
                continue
            self._keeper = asyncio.create_task(self._lease.keep(), name=f"lease {self.ref.name}")
            return True
        return False

    async def _reconcile(self, stop: asyncio.Event) -> Progress | None:
        try:
            spec = BulkTerminationSpec.model_validate(self._spec_raw)
        except ValidationError as exc:
            await self._invalid_spec("; ".join(describe_errors(exc, self._spec_raw)))
            return None
        self._record = restore(self.ref, self._status_raw, _expected_total(spec, self._status_raw))
        if self._record.terminal:
            return self._record
        if self._spec_changed_after_start():
            return await self._refuse_changed_spec()
        if not await self._hold_lease(stop):
            return None  # stopped while another operator runs it: nothing written
        await self._first_visit(spec)
        metrics.ACTIVE_RUNS.inc()
        try:
            while not stop.is_set() and not self.resource_gone:
                result = await self._attempt(spec, stop)
                if result is not None:
                    return result
                await _wait(stop, self._config.stalled_retry_seconds)
            return self._record
        finally:
            metrics.ACTIVE_RUNS.dec()

    def _spec_changed_after_start(self) -> bool:
        """The CRD makes the spec immutable, its order included; a new generation after the
        start is a change it could not refuse (an older CRD, one without its rules), and the
        indexes in the status could then point at other targets. (A run that sees the change
        while it runs goes on with the spec it started with: ``StatusWriter.finish``.)"""
        assert self._record is not None
        seen = self._record.observed_generation
        return (
            self._record.start_time is not None and seen is not None and seen != self.ref.generation
        )

    async def _refuse_changed_spec(self) -> Progress:
        assert self._record is not None
        message = (
            f"spec changed after the run started (generation {self._record.observed_generation}"
            f" → {self.ref.generation}, past the CRD's immutability rules): progress indexes"
            " could point at other targets, so the run stops here; create a new"
            " BulkTermination for the rest"
        )
        record = await self._enter(Situation(Phase.FAILED, "SpecChanged", message))
        await self._status.close()
        self._events.failed(message)
        return record

    async def _invalid_spec(self, message: str) -> None:
        self._record = Progress()
        await self._enter(Situation(Phase.FAILED, "InvalidSpec", message))
        await self._status.close()
        self._events.failed(message)

    async def _first_visit(self, spec: BulkTerminationSpec) -> None:
        """Before any AI API call: ``observedGeneration`` and ``Reconciling=True``."""
        assert self._record is not None
        record = self._record
        if record.observed_generation == self.ref.generation and record.conditions:
            return
        fresh = not record.conditions
        await self._enter(Situation(Phase.RUNNING, "Running", _accepted_message(spec)))
        if fresh:
            self._events.started(_accepted_message(spec))

    async def _attempt(self, spec: BulkTerminationSpec, stop: asyncio.Event) -> Progress | None:
        """One try with the credentials as they are now: the record when the engine ended or
        was stopped, None when the run must wait and try again (stalled, or nothing sent)."""
        try:
            key = await read_service_key(
                self._kube, self.ref.namespace, spec.connection.secret_ref, self.ref.name
            )
            async with contextlib.AsyncExitStack() as stack:
                client = await self._client(stack, key, spec.connection.resource_group)
                if self._stalled is not None:
                    await check_accepted(client)
                api: AiApi = client if self._lease is None else ExclusiveApi(client, self._lease)
                return await self._run_engine(spec, api, stop)
        except CredentialsProblem as problem:
            await self._stall(problem)
            return None

    async def _client(
        self, stack: contextlib.AsyncExitStack, key: ServiceKey, group: str
    ) -> FleetApi:
        try:
            return await stack.enter_async_context(self._clients.client(key, group))
        except (CredentialsError, ValueError) as exc:
            raise unusable(exc) from None

    async def _run_engine(
        self, spec: BulkTerminationSpec, api: AiApi, stop: asyncio.Event
    ) -> Progress | None:
        """Run the engine until it ends or ``stop`` (the record), or it cannot go on (None)."""
        chosen = await self._targets(spec, api)
        if chosen is None or isinstance(chosen, Progress):
            return chosen
        targets, selection = chosen
        engine = Engine(
            spec,
            api,
            self._record,
            settings=self._engine_settings,
            targets=targets,
            selection=selection,
        )
        self._events.count_calls(api.calls)
        task = asyncio.create_task(
            engine.run(self._on_progress), name=f"engine {self.ref.namespace}/{self.ref.name}"
        )
        try:
            await _until_done_or_set(task, stop)
            if not task.done() and self._record is not None and self._record.terminal:
                # Our own terminal status write made kopf's `when` filter stop this daemon
                # while the engine was returning: let it finish, then report as usual.
                await asyncio.wait({task})
        finally:
            # Stopped (deleted mid-run, or the operator is stopping), or run() was cancelled:
            # the engine ends here, never on its own in the background.
            stopped = not task.done()
            await self._reap(task)
        if stopped:
            # The status keeps the last record, so a restart resumes without repeating work.
            self._record = engine.progress
            return self._record
        try:
            record = task.result()
        except (AuthError, ConfigurationError) as exc:
            await self._refused(engine.progress, exc)
            return None
        except RecordNotWritten:
            # An engine that leaves the retry to its host: it sent nothing. Start again from
            # the last record that landed (``_on_progress`` kept it), after the usual pause.
            if self.resource_gone:
                return None  # nothing to retry for: the run ends (see ``resource_gone``)
            log.warning(
                "%s/%s: status announcing sends not written; retrying later",
                self.ref.namespace,
                self.ref.name,
            )
            return None
        self._record = record
        self._set_stalled(None)
        changed = await self._status.finish(record)
        self._events.progress(record, final=True)
        self._events.finished(record)
        if changed is not None:
            self._events.spec_change_ignored(ignored_message(changed, ran=self.ref.generation))
        self._count(record)
        metrics.RUNS.labels("complete" if record.condition("Complete") else "failed").inc()
        if record.start_time is not None:
            metrics.RUN_DURATION.observe((utcnow() - record.start_time).total_seconds())
        return record

    async def _targets(
        self, spec: BulkTerminationSpec, api: AiApi
    ) -> tuple[list[Target], SelectionRecord | None] | Progress | None:
        """The run's targets: the spec's, then what its selector resolved to (once: a restart
        reads them back from the status). A Failed record if the selector is refused, None
        if the AI API cannot be asked now (try again later)."""
        recorded = self._record.selection if self._record is not None else None
        try:
            targets, selection = await run_targets(spec, api, recorded, now=utcnow())
            if selection is not None and not spec.dry_run:
                if selection.schedules_paused < len(selection.schedules):
                    selection = await pause_schedules(api, selection)
        except SelectionRefused as refusal:
            record = await self._enter(Situation(Phase.FAILED, refusal.reason, refusal.message))
            await self._status.close()
            self._events.failed(refusal.message)
            return record
        except (AuthError, ConfigurationError) as exc:
            await self._stall(refused(exc))
            return None
        except AiApiError as exc:
            log.warning(
                "%s/%s: resolving spec.selector failed (%s); trying again later",
                self.ref.namespace,
                self.ref.name,
                exc.message,
            )
            return None
        if selection is not None and recorded is None:
            self._events.selected(describe_selection(selection))
        return targets, selection

    async def _on_progress(self, record: Progress) -> None:
        """The engine's progress callback.

        A record announcing sends is written at once, not throttled: if the operator dies
        right after sending, the restart must know what was sent. If that write fails,
        :class:`RecordNotWritten` tells the engine not to send (and to offer it again)."""
        previous, self._record = self._record, record
        metrics.RECONCILE_ROUNDS.inc()
        self._count(record)
        sends = announces_sends(previous, record)
        if self.resource_gone:
            # Nobody to report to: stop as on deletion (the engine is reaped), and send nothing.
            self._stop.set()
            if sends:
                self._record = previous
                raise RecordNotWritten(f"{self.ref.namespace}/{self.ref.name} is gone")
            return
        self._engine_stall(record)
        written = await self._status.offer(record, force=sends)
        if sends and not written:
            # Not the record of this CR yet: the next offer must again count as a send round.
            self._record = previous
            raise RecordNotWritten(
                f"the status of {self.ref.namespace}/{self.ref.name} could not be written"
            )
        self._events.progress(record)

    async def _reap(self, task: asyncio.Task[Progress]) -> None:
        """Cancel ``task`` if it still runs, and wait until it has ended. An error it ends
        with while being cancelled is logged here, so none is ever "never retrieved"."""
        running = not task.done()
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if running and isinstance(outcome, Exception):
            log.warning(
                "%s/%s: the engine failed while stopping (%s)",
                self.ref.namespace,
                self.ref.name,
                type(outcome).__name__,
            )

    # -- phases --------------------------------------------------------------------------

    async def _enter(self, situation: Situation) -> Progress:
        """Every change of phase the operator decides (first visit, stall, refusal)."""
        assert self._record is not None
        self._record = await self._status.enter(self._record, situation)
        return self._record

    def _engine_stall(self, record: Progress) -> None:
        """A run that cannot read the AI API says ``Stalled`` (the engine decides when): a
        Warning Event when it begins, the gauge while it lasts."""
        stalled = record.condition(ConditionType.STALLED)
        reason = stalled.reason if stalled is not None and stalled.status == "True" else None
        if record.terminal or reason == self._stalled:
            return
        if reason is not None and stalled is not None:
            self._events.stalled(reason, stalled.message or reason)
        self._set_stalled(reason)

    def _set_stalled(self, reason: str | None) -> None:
        """Enter (a reason) or leave (None) a stall, keeping the stalled-runs gauge true."""
        if self._stalled is None and reason is not None:
            metrics.STALLED_RUNS.inc()
        elif self._stalled is not None and reason is None:
            metrics.STALLED_RUNS.dec()
        self._stalled = reason

    def _count(self, record: Progress) -> None:
        """Targets and failures into the metrics as they finish: the growth since the last
        record counted (the first counts from what the run had when this process took it)."""
        if self._counted is None:
            self._counted = (record.succeeded, record.failed, len(record.failures))
            return
        succeeded, failed, failures = self._counted
        metrics.TARGETS.labels("succeeded").inc(max(0, record.succeeded - succeeded))
        metrics.TARGETS.labels("failed").inc(max(0, record.failed - failed))
        for failure in record.failures[failures:]:
            metrics.TARGET_FAILURES.labels(failure.reason).inc()
        self._counted = (
            max(succeeded, record.succeeded),
            max(failed, record.failed),
            max(failures, len(record.failures)),
        )

    async def _stall(self, problem: CredentialsProblem) -> None:
        await self._enter(Situation(Phase.STALLED, problem.reason, problem.message))
        if self._stalled != problem.reason:
            metrics.STALLS.labels(problem.reason).inc()
            self._events.stalled(problem.reason, problem.message)
            log.warning("%s/%s stalled: %s", self.ref.namespace, self.ref.name, problem.message)
        self._set_stalled(problem.reason)

    async def _refused(self, record: Progress, exc: AuthError | ConfigurationError) -> None:
        """The engine ended on refused credentials or a URL the AI API does not serve; it
        recorded ``Stalled=True`` itself (with its summary), so only the record is written
        here, not a new phase."""
        self._record = record
        await self._status.offer(record, force=True)
        problem = refused(exc)
        if self._stalled != problem.reason:
            self._events.stalled(problem.reason, problem.message)
            log.warning("%s/%s stalled: %s", self.ref.namespace, self.ref.name, problem.message)
        self._set_stalled(problem.reason)


async def _until_done_or_set(task: asyncio.Task[Any], stop: asyncio.Event) -> None:
    """Wait until ``task`` is done or ``stop`` is set, leaving no helper task behind."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)


def _accepted_message(spec: BulkTerminationSpec) -> str:
    n = len(spec.targets)
    mode = " (dry run)" if spec.dry_run else ""
    if spec.selector is not None:
        listed = f"{n} listed target(s) and " if n else ""
        return f"accepted {listed}a selector{mode}; resolving it with the AI API"
    return f"accepted {n} target(s){mode}; waiting for the first AI API observation"


def _expected_total(spec: BulkTerminationSpec, status: dict[str, Any]) -> int:
    """How many targets the saved record must count to be this run's: the spec's, plus what
    its selector resolved to (recorded in ``status.selection``)."""
    selection = status.get("selection") if spec.selector is not None else None
    selected = selection.get("selected") if isinstance(selection, dict) else None
    return len(spec.targets) + (selected if isinstance(selected, int) else 0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
