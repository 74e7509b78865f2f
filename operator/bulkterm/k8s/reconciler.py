"""One BulkTermination, reconciled: the operator's host work around a :class:`Run`.

No kopf here: the handlers hand in the CR's identity, its spec and status, an event sink and a
stop signal, so this whole flow is testable without a Kubernetes API. The run owns the use case
and every phase it writes (:mod:`bulkterm.engine.run`); the reconciler does what only the
operator can: parse the spec and restore the record from the status, hold the run's Lease, turn
the Secret into an AI API client (:mod:`~bulkterm.k8s.credentials`,
:mod:`~bulkterm.k8s.clients`), write the records (:mod:`~bulkterm.k8s.host`,
:mod:`~bulkterm.k8s.status`) and stop the run when the CR is deleted or the operator stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from bulkterm import metrics
from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, ConfigurationError, CredentialsError
from bulkterm.engine import EngineSettings, Phase, Progress, Situation, build_conditions, utcnow
from bulkterm.engine.reporting import Milestone, RunEvent
from bulkterm.engine.run import Run
from bulkterm.k8s.clients import ClientPool
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.credentials import (
    CredentialsProblem,
    SecretReader,
    check_accepted,
    read_service_key,
    require_https,
    unusable,
)
from bulkterm.k8s.events import EventSink, RunEvents
from bulkterm.k8s.fleet import FleetApi
from bulkterm.k8s.host import OperatorHost
from bulkterm.k8s.kubeapi import without_waiting
from bulkterm.k8s.leases import ExclusiveApi, LeaseForbidden, LeaseLost, RunLease
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.k8s.secret_use import AdmissionTrust, Requester
from bulkterm.k8s.status import (
    CrRef,
    StatusPatcher,
    StatusWriteError,
    StatusWriter,
    finished_at,
    ignored_message,
    is_terminal,
    restore,
)
from bulkterm.k8s.throttle import CLOSE_RETRY_DELAYS
from bulkterm.manifest import describe_errors
from bulkterm.spec import APPROVED_PLAN_ANNOTATION, BulkTerminationSpec, run_spec_hash

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

    async def admission_trust(self) -> AdmissionTrust:
        """What the admission policy vouches for now (who may use a Secret, who may approve)."""
        ...


#: Stall reason: approval is required and cannot be verified (no admission policy in force).
APPROVAL_UNVERIFIABLE = "ApprovalUnverifiable"


class LiveObject(Protocol):
    """The BulkTermination as the watch keeps showing it while its run goes on (kopf's live
    ``body`` of a daemon): where ``spec.suspend`` is read before every send."""

    def spec(self) -> Mapping[str, Any]: ...

    def generation(self) -> int: ...

    def annotations(self) -> Mapping[str, str]: ...


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
        lease: RunLease | None = None,
        live: LiveObject | None = None,
    ) -> None:
        """``live``: the object as it changes during the run (None: the spec as given, as in
        unit tests, where ``spec.suspend`` then never changes)."""
        self.ref = ref
        self._spec_raw = spec
        self._live = live
        self._run_spec_hash = run_spec_hash(spec)
        #: The last live generation judged, and whether it changed only ``spec.suspend``.
        self._judged: tuple[int, bool] | None = None
        self._status_raw = dict(status or {})
        self._kube = kube
        self._config = config
        self._engine_settings = engine_settings or EngineSettings(
            stall_after_seconds=config.stall_after_seconds
        )
        #: Shared by every CR of the operator process (the handlers pass theirs).
        self._clients = clients or ClientPool.for_config(config)
        self._status = StatusWriter(
            kube,
            ref,
            self._status_raw,
            interval=config.status_interval,
            run_spec_hash=self._run_spec_hash,
            suspend_only=self._suspend_only_generation,
        )
        self._events = RunEvents(events)
        #: The stop event of the current ``run`` (set when the CR turns out to be gone).
        self._stop = asyncio.Event()
        self._host = OperatorHost(
            ref,
            self._status,
            self._events,
            gone=lambda: self.resource_gone,
            on_gone=lambda: self._stop.set(),
        )
        self._run: Run | None = None
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
                landed = await self._status.close(
                    () if stopped else CLOSE_RETRY_DELAYS, stop=stop
                )
                stopped = stopped or stop.is_set()  # the stop came while it retried
                if self._lease is not None and not self.handed_over:
                    await self._lease.release()
            self._host.set_stalled(None)  # the gauge counts runs of this process
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
                assert self._run is not None
                await self._run.hold("LeaseForbidden", str(exc))
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
        record = restore(self.ref, self._status_raw, _expected_total(spec, self._status_raw))
        if record.terminal:
            return record
        self._run = Run(
            spec,
            self._host,
            record,
            settings=self._engine_settings,
            suspended=self._suspended,
            approval=self._approved_plan,
        )
        if self._spec_changed_after_start(record):
            return await self._refuse_changed_spec(record)
        if not await self._hold_lease(stop):
            return None  # stopped while another operator runs it: nothing written
        seen = record.observed_generation == self.ref.generation and bool(record.conditions)
        await self._run.begin(again=not seen)
        metrics.ACTIVE_RUNS.labels(self.ref.namespace).inc()
        try:
            while not stop.is_set() and not self.resource_gone:
                result = await self._attempt(spec, stop)
                if result is not None:
                    return result
                await _wait(stop, self._config.stalled_retry_seconds)
            return self._run.record
        finally:
            metrics.ACTIVE_RUNS.labels(self.ref.namespace).dec()

    def _suspended(self) -> bool:
        spec = self._live.spec() if self._live is not None else self._spec_raw
        return bool(spec.get("suspend"))

    def _approved_plan(self) -> str | None:
        """The plan digest the annotation approves (``spec.requireApproval``)."""
        if self._live is None:
            return None
        return self._live.annotations().get(APPROVED_PLAN_ANNOTATION) or None

    def _suspend_only_generation(self) -> int | None:
        """The live object's generation, if its spec differs from the run's only in
        ``spec.suspend``. Asked at every status offer, so the spec (up to 10,000 ids) is
        hashed once per generation, not per offer."""
        if self._live is None:
            return None
        generation = self._live.generation()
        if self._judged is None or self._judged[0] != generation:
            same = run_spec_hash(self._live.spec()) == self._run_spec_hash
            self._judged = (generation, same)
        return generation if self._judged[1] else None

    def _spec_changed_after_start(self, record: Progress) -> bool:
        """The CRD makes the spec immutable, ``suspend`` excepted, its order included; a new
        generation after the start that changed more than ``suspend`` (the recorded
        ``runSpecHash`` tells) is a change it could not refuse (an older CRD, one without its
        rules), and the indexes in the status could then point at other targets. (A run that
        sees the change while it runs goes on with the spec it started with:
        ``StatusWriter.finish``.)"""
        seen = record.observed_generation
        if record.start_time is None or seen is None or seen == self.ref.generation:
            return False
        return self._status_raw.get("runSpecHash") != self._run_spec_hash

    async def _refuse_changed_spec(self, record: Progress) -> Progress:
        assert self._run is not None
        message = (
            f"spec changed after the run started (generation {record.observed_generation}"
            f" → {self.ref.generation}, past the CRD's immutability rules): progress indexes"
            " could point at other targets, so the run stops here; create a new"
            " BulkTermination for the rest"
        )
        return await self._run.fail("SpecChanged", message)

    async def _invalid_spec(self, message: str) -> None:
        """No run without a spec: the status says why, and the CR is done."""
        situation = Situation(Phase.FAILED, "InvalidSpec", message)
        record = Progress(conditions=build_conditions([], situation, now=utcnow()))
        await self._host.checkpoint(record)
        self._host.event(RunEvent(Milestone.FAILED, "InvalidSpec", message))

    async def _attempt(self, spec: BulkTerminationSpec, stop: asyncio.Event) -> Progress | None:
        """One try with the credentials as they are now: the record when the run ended or
        was stopped, None when it must wait and try again (stalled, or nothing sent)."""
        assert self._run is not None
        try:
            key = await read_service_key(
                self._kube,
                self.ref.namespace,
                spec.connection.secret_ref,
                Requester(self.ref.name, self.ref.created),
                SecretUse.of(spec),
            )
            require_https(key, allow_plain_http=self._config.allow_plain_http)
            await self._check_approval_is_verifiable(spec)
            async with contextlib.AsyncExitStack() as stack:
                client = await self._client(stack, key, spec.connection.resource_group)
                if self._host.stalled is not None:
                    await check_accepted(client)
                api: AiApi = client if self._lease is None else ExclusiveApi(client, self._lease)
                return await self._drive(api, stop)
        except CredentialsProblem as problem:
            await self._run.hold(problem.reason, problem.message)
            return None

    async def _check_approval_is_verifiable(self, spec: BulkTerminationSpec) -> None:
        """An approval counts only if the API server checked who gave it (the verb
        ``approve``, in the admission policy): without the policy in force (Secret use then
        rests on a name grant) nobody's approval can be told from anybody's patch."""
        if not spec.require_approval or spec.dry_run:
            return
        trust = await self._kube.admission_trust()
        if trust.since is None:
            raise CredentialsProblem(
                APPROVAL_UNVERIFIABLE,
                f"spec.requireApproval: an approval cannot be verified ({trust.problem}); "
                "nothing was sent",
            )

    async def _client(
        self, stack: contextlib.AsyncExitStack, key: ServiceKey, group: str
    ) -> FleetApi:
        try:
            return await stack.enter_async_context(self._clients.client(key, group))
        except (CredentialsError, ValueError) as exc:
            raise unusable(exc) from None

    async def _drive(self, api: AiApi, stop: asyncio.Event) -> Progress | None:
        """Drive the run until it ends or ``stop`` (the record), or it cannot go on (None)."""
        run = self._run
        assert run is not None
        self._events.count_calls(api.calls)
        task = asyncio.create_task(run.drive(api), name=f"run {self.ref.namespace}/{self.ref.name}")
        try:
            await _until_done_or_set(task, stop)
            if not task.done() and self._host.ending is not None:
                # Our own terminal status write made kopf's `when` filter stop this daemon
                # while the run was returning: let it finish, then report as usual.
                await asyncio.wait({task})
        finally:
            # Stopped (deleted mid-run, or the operator is stopping), or run() was cancelled:
            # the run ends here, never on its own in the background.
            stopped = not task.done()
            await self._reap(task)
        if stopped:
            return run.record  # the status keeps the last record: a restart resumes from it
        try:
            record = task.result()
        except (AuthError, ConfigurationError) as exc:
            log.warning("%s/%s: the AI API refused the run (%s)", *self._names, exc.message)
            return None
        except AiApiError as exc:
            log.warning(
                "%s/%s: resolving spec.selector failed (%s); trying again later",
                *self._names,
                exc.message,
            )
            return None
        changed = self._status.changed_during_run
        if changed is not None:
            self._events.spec_change_ignored(ignored_message(changed, ran=self.ref.generation))
        if record.start_time is not None:
            metrics.RUN_DURATION.labels(self.ref.namespace).observe(
                (utcnow() - record.start_time).total_seconds()
            )
        return record

    @property
    def _names(self) -> tuple[str, str]:
        return self.ref.namespace, self.ref.name

    async def _reap(self, task: asyncio.Task[Progress]) -> None:
        """Cancel ``task`` if it still runs, and wait until it has ended. An error it ends
        with while being cancelled is logged here, so none is ever "never retrieved"."""
        running = not task.done()
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if running and isinstance(outcome, Exception):
            log.warning(
                "%s/%s: the run failed while stopping (%s)", *self._names, type(outcome).__name__
            )


async def _until_done_or_set(task: asyncio.Task[Any], stop: asyncio.Event) -> None:
    """Wait until ``task`` is done or ``stop`` is set, leaving no helper task behind."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)


def _expected_total(spec: BulkTerminationSpec, status: dict[str, Any]) -> int:
    """How many targets the saved record must count to be this run's: the spec's, plus what
    its selector resolved to (recorded in ``status.selection``)."""
    selection = status.get("selection") if spec.selector is not None else None
    selected = selection.get("selected") if isinstance(selection, dict) else None
    return len(spec.targets) + (selected if isinstance(selected, int) else 0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
