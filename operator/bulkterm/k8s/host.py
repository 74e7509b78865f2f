"""The operator as a run's host: a CR's status, its Events and the operator's metrics.

:class:`OperatorHost` is the operator's side of :class:`~bulkterm.engine.reporting.RunHost`: a
checkpoint is a forced status write (the terminal one acknowledging a spec change the API
server showed meanwhile), progress a background one, and each milestone an Event. It decides
nothing about what is written when; that is the run's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bulkterm import metrics
from bulkterm.engine import Progress
from bulkterm.engine.reporting import Milestone, RunEvent, stall_of
from bulkterm.k8s.events import RunEvents
from bulkterm.k8s.status import CrRef, StatusWriter

log = logging.getLogger(__name__)


class OperatorHost:
    """Writes one CR's records and says its milestones."""

    def __init__(
        self,
        ref: CrRef,
        status: StatusWriter,
        events: RunEvents,
        *,
        gone: Callable[[], bool],
        on_gone: Callable[[], None],
    ) -> None:
        self.ref = ref
        self.status = status
        self.events = events
        self._gone = gone
        self._on_gone = on_gone
        #: The reason of the stall the CR is in, if any (the stalled-runs gauge follows it).
        self.stalled: str | None = None
        #: The terminal record, once the run handed it over (its write may still be under way).
        self.ending: Progress | None = None
        #: (succeeded, failed, failures) of the last record counted into the metrics.
        self._counted: tuple[int, int, int] | None = None

    async def checkpoint(self, record: Progress) -> bool:
        if not self._take(record):
            return False
        if record.terminal:
            self.ending = record
            self.events.progress(record, final=True)
            return await self.status.finish(record)
        landed = await self.status.offer(record, force=True)
        if landed:
            self.events.progress(record)
        return landed

    async def progress(self, record: Progress, *, urgent: bool) -> None:
        if self._take(record):
            await self.status.offer(record, urgent=urgent)
            self.events.progress(record)

    def event(self, event: RunEvent) -> None:
        self.events.milestone(event)
        if event.milestone is Milestone.STALLED:
            metrics.STALLS.labels(event.reason, self.ref.namespace).inc()
            log.warning("%s/%s stalled: %s", self.ref.namespace, self.ref.name, event.message)
        if event.milestone in (Milestone.COMPLETED, Milestone.FAILED):
            outcome = "complete" if event.milestone is Milestone.COMPLETED else "failed"
            metrics.RUNS.labels(outcome, self.ref.namespace).inc()

    def set_stalled(self, reason: str | None) -> None:
        """Enter (a reason) or leave (None) a stall, keeping the stalled-runs gauge true."""
        if self.stalled is None and reason is not None:
            metrics.STALLED_RUNS.labels(self.ref.namespace).inc()
        elif self.stalled is not None and reason is None:
            metrics.STALLED_RUNS.labels(self.ref.namespace).dec()
        self.stalled = reason

    def _take(self, record: Progress) -> bool:
        """Count ``record`` into the metrics; False when there is no CR to write it to."""
        metrics.RECONCILE_ROUNDS.labels(self.ref.namespace).inc()
        self._count(record)
        if self._gone():
            self._on_gone()  # nobody to report to: the run stops as on deletion
            return False
        stall = stall_of(record)
        self.set_stalled(stall[0] if stall is not None else None)
        return True

    def _count(self, record: Progress) -> None:
        """Targets and failures into the metrics as they finish: the growth since the last
        record counted (the first counts from what the run had when this process took it)."""
        if self._counted is None:
            self._counted = (record.succeeded, record.failed, len(record.failures))
            return
        succeeded, failed, failures = self._counted
        # The namespace, never the name: namespaces are few, names are not (metrics.py).
        namespace = self.ref.namespace
        metrics.TARGETS.labels("succeeded", namespace).inc(max(0, record.succeeded - succeeded))
        metrics.TARGETS.labels("failed", namespace).inc(max(0, record.failed - failed))
        for failure in record.failures[failures:]:
            metrics.TARGET_FAILURES.labels(failure.reason, namespace).inc()
        self._counted = (
            max(succeeded, record.succeeded),
            max(failed, record.failed),
            max(failures, len(record.failures)),
        )
