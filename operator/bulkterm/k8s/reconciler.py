"""One BulkTermination, reconciled: credentials → engine → throttled status and events.

No kopf here: the handlers hand in the CR's identity, its spec and status, an event sink and a
stop signal, so this whole flow is testable without a Kubernetes API. The order of writes is
the contract with kstatus, Flux and Argo CD: the first write (``observedGeneration``,
``Reconciling=True``) lands before any AI API call, the terminal write is forced, and terminal
conditions never flip back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from bulkterm import metrics
from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, CredentialsError
from bulkterm.aiapi.models import Kind
from bulkterm.engine import (
    ConditionType,
    Engine,
    EngineSettings,
    Phase,
    Progress,
    Situation,
    build_conditions,
    utcnow,
    with_observed_generation,
)
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.kubeapi import SecretProblem
from bulkterm.k8s.throttle import StatusThrottle
from bulkterm.manifest import describe_errors
from bulkterm.spec import BulkTerminationSpec

log = logging.getLogger(__name__)

#: Seconds between aggregated BatchSubmitted events of one CR.
EVENT_INTERVAL = 10.0
_WRITE_CALLS = ("bulk_patch", "stop", "delete")


class StatusWriteError(RuntimeError):
    """The API server kept refusing the final status write."""


class Kube(Protocol):
    async def read_secret_value(self, namespace: str, name: str, key: str) -> bytes: ...
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...


class Events(Protocol):
    def normal(self, reason: str, message: str) -> None: ...
    def warning(self, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class CrRef:
    namespace: str
    name: str
    generation: int


def _terminal_condition(status: dict[str, Any] | None) -> dict[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") in (ConditionType.COMPLETE, ConditionType.FAILED)
            and condition.get("status") == "True"
        ):
            return condition
    return None


def is_terminal(status: dict[str, Any] | None) -> bool:
    """Complete or Failed is True (the daemon's ``when`` filter and the TTL's trigger).

    Read from the raw status dict: kopf evaluates it on every watch event, where parsing the
    whole record into :class:`Progress` would be wasted work."""
    return _terminal_condition(status) is not None


def finished_at(status: dict[str, Any] | None) -> datetime | None:
    """When the run became terminal: the terminal condition's ``lastTransitionTime``."""
    condition = _terminal_condition(status)
    if condition is None:
        return None
    try:
        return datetime.fromisoformat(str(condition["lastTransitionTime"]))
    except (KeyError, TypeError, ValueError):
        return None


class Reconciler:
    """Runs one CR until it is terminal or the stop event is set."""

    def __init__(
        self,
        ref: CrRef,
        spec: dict[str, Any],
        status: dict[str, Any] | None,
        *,
        kube: Kube,
        events: Events,
        config: OperatorConfig,
        engine_settings: EngineSettings | None = None,
        client_settings: ClientSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ref = ref
        self._spec_raw = spec
        self._status_raw = dict(status or {})
        self._kube = kube
        self._events = events
        self._config = config
        self._engine_settings = engine_settings or EngineSettings()
        self._client_settings = client_settings or ClientSettings(
            concurrency=config.api_concurrency, rate_limit_per_second=config.api_rate_limit
        )
        self._clock = clock
        self._written_keys: set[str] = set(self._status_raw)
        self._throttle = StatusThrottle(self._write, config.status_interval)
        self._record: Progress | None = None
        self._stall_reason: str | None = None
        self._reported_failures: set[int] = set()
        self._calls_reported = 0
        #: The running client's call counter (for aggregated BatchSubmitted events).
        self._api_calls: Mapping[str, int] = {}
        self._last_event_at = float("-inf")

    # -- the flow --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Progress | None:
        try:
            spec = BulkTerminationSpec.model_validate(self._spec_raw)
        except ValidationError as exc:
            await self._invalid_spec("; ".join(describe_errors(exc, self._spec_raw)))
            return None
        self._record = self._restore(spec)
        if self._record.terminal:
            return self._record
        if self._spec_changed_after_start():
            return await self._refuse_changed_spec()
        await self._first_visit(spec)
        metrics.ACTIVE_RUNS.inc()
        result: Progress | None = None
        try:
            while not stop.is_set():
                key = await self._credentials(spec)
                if key is None:
                    await _wait(stop, self._config.stalled_retry_seconds)
                    continue
                result = await self._run_engine(spec, key, stop)
                if result is not None:
                    break
                if not stop.is_set():
                    await _wait(stop, self._config.stalled_retry_seconds)
            else:
                result = self._record
        finally:
            metrics.ACTIVE_RUNS.dec()
            landed = await self._throttle.close()
        if not landed:
            # Raising makes kopf restart the daemon, which resumes from the last status
            # that did land and writes the outcome again.
            raise StatusWriteError(
                f"{self.ref.namespace}/{self.ref.name}: final status not written"
            )
        return result

    def _restore(self, spec: BulkTerminationSpec) -> Progress:
        """The saved record (resume after a restart), or a fresh one."""
        if self._status_raw.get("conditions"):
            try:
                record = Progress.model_validate(self._status_raw)
                if record.total == len(spec.targets):
                    return record
            except ValidationError:
                log.warning(
                    "%s/%s: status unreadable; starting from fresh observations",
                    self.ref.namespace,
                    self.ref.name,
                )
        total = len(spec.targets)
        return Progress(total=total, pending=total, progress=f"0/{total}")

    def _spec_changed_after_start(self) -> bool:
        """The CRD makes the spec immutable, except that CEL cannot see a reordering of the
        targets list-map; a new generation after the start can only be that, and the indexes
        in the status would then point at other targets."""
        assert self._record is not None
        seen = self._record.observed_generation
        return (
            self._record.start_time is not None and seen is not None and seen != self.ref.generation
        )

    async def _refuse_changed_spec(self) -> Progress:
        assert self._record is not None
        message = (
            f"spec changed after the run started (generation {self._record.observed_generation}"
            f" → {self.ref.generation}; targets reordered?): progress indexes would point at "
            "other targets, so the run stops here; create a new BulkTermination for the rest"
        )
        record = await self._enter(Situation(Phase.FAILED, "SpecChanged", message))
        await self._throttle.close()
        self._events.warning("Failed", message)
        return record

    async def _enter(self, situation: Situation, base: Progress | None = None) -> Progress:
        """The record (or ``base``) with the conditions of ``situation``, written at once:
        every change of phase the handlers decide (first visit, stall, refusal) goes here."""
        record = base if base is not None else self._record
        assert record is not None
        record = record.model_copy(
            update={
                "conditions": build_conditions(
                    record.conditions,
                    situation,
                    now=self._clock(),
                    observed_generation=self.ref.generation,
                )
            }
        )
        self._record = record
        await self._throttle.offer(self._status(record), force=True)
        return record

    async def _first_visit(self, spec: BulkTerminationSpec) -> None:
        """Before any AI API call: ``observedGeneration`` and ``Reconciling=True``."""
        assert self._record is not None
        record = self._record
        if record.observed_generation == self.ref.generation and record.conditions:
            return
        fresh = not record.conditions
        await self._enter(Situation(Phase.RUNNING, "Running", _accepted_message(spec)))
        if fresh:
            self._events.normal("Started", _accepted_message(spec))

    async def _credentials(self, spec: BulkTerminationSpec) -> ServiceKey | None:
        ref = spec.connection.secret_ref
        if ref is None:
            await self._stall("SecretRefMissing", "spec.connection.secretRef is required")
            return None
        if ref.namespace is not None and ref.namespace != self.ref.namespace:
            await self._stall(
                "CrossNamespaceSecretRefused",
                f"spec.connection.secretRef.namespace {ref.namespace!r}: the Secret must be in "
                f"the BulkTermination's own namespace {self.ref.namespace!r}",
            )
            return None
        try:
            raw = await self._kube.read_secret_value(self.ref.namespace, ref.name, ref.key)
            return ServiceKey.from_json(raw, source=f"Secret {ref.name} key {ref.key!r}")
        except SecretProblem as exc:
            await self._stall(exc.reason, exc.message)
        except CredentialsError as exc:
            await self._stall("InvalidServiceKey", str(exc))
        return None

    async def _run_engine(
        self, spec: BulkTerminationSpec, key: ServiceKey, stop: asyncio.Event
    ) -> Progress | None:
        """Run the engine until it ends (returns the record) or stalls on credentials (None)."""
        group = spec.connection.resource_group
        try:
            client = AiApiClient(key, group, self._client_settings)
        except (CredentialsError, ValueError) as exc:  # e.g. an x509 key whose PEMs do not load
            await self._stall("InvalidServiceKey", str(exc))
            return None
        async with client as api:
            if self._stall_reason is not None:
                # Probe before resuming, so a still-broken key keeps the CR Stalled instead
                # of flapping Reconciling on every retry. $count carries the resource group
                # (meta does not), so a 403 for the wrong group is caught here too.
                try:
                    await api.count(Kind.DEPLOYMENT)
                except AuthError as exc:
                    await self._stall(
                        "Unauthorized", f"AI API refused the credentials: {exc.message}"
                    )
                    return None
                except AiApiError:
                    pass  # not about credentials: the engine backs off as usual
            engine = Engine(spec, api, self._record, settings=self._engine_settings)
            self._api_calls = api.calls

            async def on_progress(record: Progress) -> None:
                previous, self._record = self._record, record
                metrics.RECONCILE_ROUNDS.inc()
                # Actions about to be sent are written at once, not throttled: if the
                # operator dies right after sending, the restart must know what was sent.
                await self._throttle.offer(self._status(record), force=_sends(previous, record))
                self._aggregate_events(record)

            task = asyncio.create_task(engine.run(on_progress))
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not task.done() and self._record is not None and self._record.terminal:
                # Our own terminal status write made kopf's `when` filter stop this daemon
                # while the engine was returning: let it finish, then report as usual.
                await asyncio.wait({task})
            if not task.done():
                # Deleted mid-run (or the operator is stopping): end cleanly; the status
                # keeps the last record so a restart resumes without repeating work.
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._record = engine.progress
                return self._record
            try:
                record = task.result()
            except AuthError as exc:
                self._record = engine.progress
                await self._throttle.offer(self._status(self._record), force=True)
                if self._stall_reason != "Unauthorized":
                    self._events.warning(
                        "CredentialsInvalid", f"AI API refused the credentials: {exc.message}"
                    )
                self._stall_reason = "Unauthorized"
                return None
        self._record = record
        self._stall_reason = None
        await self._throttle.offer(self._status(record), force=True)
        self._aggregate_events(record, final=True)
        self._finish_events(record)
        return record

    # -- status ------------------------------------------------------------------------------

    def _status(self, record: Progress) -> dict[str, Any]:
        return with_observed_generation(record, self.ref.generation).to_status()

    async def _write(self, status: dict[str, Any]) -> None:
        # Merge patch: a key that disappeared must be sent as null, or the old value stays.
        patch: dict[str, Any] = dict(status)
        for gone in self._written_keys - status.keys():
            patch[gone] = None
        await self._kube.patch_status(self.ref.namespace, self.ref.name, patch)
        self._written_keys = set(status)

    async def _stall(self, reason: str, message: str) -> None:
        await self._enter(Situation(Phase.STALLED, reason, message))
        if self._stall_reason != reason:
            self._events.warning("CredentialsInvalid", message)
            log.warning("%s/%s stalled: %s", self.ref.namespace, self.ref.name, message)
        self._stall_reason = reason

    async def _invalid_spec(self, message: str) -> None:
        await self._enter(Situation(Phase.FAILED, "InvalidSpec", message), base=Progress())
        await self._throttle.close()
        self._events.warning("Failed", message)

    # -- events ------------------------------------------------------------------------------

    def _aggregate_events(self, record: Progress, *, final: bool = False) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if final or now - self._last_event_at >= EVENT_INTERVAL:
            calls = sum(n for label, n in self._api_calls.items() if label.startswith(_WRITE_CALLS))
            if calls > self._calls_reported:
                self._events.normal(
                    "BatchSubmitted",
                    f"{calls - self._calls_reported} write request(s) sent to the AI API; "
                    f"{record.progress} finished, {record.active} in flight",
                )
                self._calls_reported = calls
                self._last_event_at = now
        new = [f for f in record.failures if f.index not in self._reported_failures]
        if new:
            shown = "; ".join(f"{f.kind.value} {f.id}: {f.reason}" for f in new[:5])
            more = f" (+{len(new) - 5} more)" if len(new) > 5 else ""
            self._events.warning("TargetFailed", f"{len(new)} target(s) failed: {shown}{more}")
            self._reported_failures.update(f.index for f in new)

    def _finish_events(self, record: Progress) -> None:
        metrics.TARGETS.labels("succeeded").inc(record.succeeded)
        metrics.TARGETS.labels("failed").inc(record.failed)
        complete = record.condition(ConditionType.COMPLETE)
        failed = record.condition(ConditionType.FAILED)
        if complete is not None and complete.status == "True":
            self._events.normal("Completed", complete.message or f"{record.progress} targets")
        elif failed is not None and failed.status == "True":
            self._events.warning("Failed", failed.message or failed.reason)


def _sends(previous: Progress | None, record: Progress) -> bool:
    """Whether ``record`` holds in-flight actions that ``previous`` did not (a send round)."""

    def groups(p: Progress | None) -> set[tuple[object, ...]]:
        return (
            {(g.action, g.sent_at, g.indexes) for g in (p.in_flight_groups or [])} if p else set()
        )

    return bool(groups(record) - groups(previous))


def _accepted_message(spec: BulkTerminationSpec) -> str:
    n = len(spec.targets)
    mode = " (dry run)" if spec.dry_run else ""
    return f"accepted {n} target(s){mode}; waiting for the first AI API observation"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
