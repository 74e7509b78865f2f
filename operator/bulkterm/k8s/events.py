"""The Kubernetes Events one run posts on its CR.

Milestones are posted as they happen (``Started``, ``Completed``, ``Failed``, and a stall under
its own reason: ``SecretNotFound``, ``Unauthorized``, …). Progress is aggregated, so a run of
10,000 targets posts a handful of Events, not thousands: ``BatchSubmitted`` at most once per
:data:`EVENT_INTERVAL`, ``TargetFailed`` once per failed target, grouped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from bulkterm.engine import Progress
from bulkterm.engine.reporting import Milestone, RunEvent

#: Seconds between aggregated BatchSubmitted events of one CR.
EVENT_INTERVAL = 10.0
#: Call labels of the AI API client that are writes (what BatchSubmitted counts).
WRITE_CALLS = ("bulk_patch", "stop", "delete")
#: Failed targets named in one TargetFailed event; the rest are counted.
FAILURES_SHOWN = 5


class EventSink(Protocol):
    """Posts an Event on the CR (kopf in the operator, a list in tests)."""

    def normal(self, reason: str, message: str) -> None: ...
    def warning(self, reason: str, message: str) -> None: ...


class RunEvents:
    """What one run tells the CR's Events; messages never hold secret content."""

    def __init__(
        self,
        sink: EventSink,
        *,
        interval: float = EVENT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._clock = clock
        self._calls: Mapping[str, int] = {}
        self._calls_reported = 0
        self._last_batch_at = float("-inf")
        self._reported_failures: set[int] = set()

    def milestone(self, event: RunEvent) -> None:
        """A milestone of the run, under the milestone's name (``Started``, ``Selected``,
        ``Completed``, ``Failed``, …); a stall under its own reason (``SecretNotFound``,
        ``Unauthorized``, …), so ``kubectl get events`` says what to fix."""
        reason = event.reason if event.milestone is Milestone.STALLED else event.milestone.value
        if event.warning:
            self._sink.warning(reason, event.message)
        else:
            self._sink.normal(reason, event.message)

    def spec_change_ignored(self, message: str) -> None:
        """The spec changed to a generation the run does not act on (a BulkTermination runs
        once); ``message`` says when the change came (``status.ignored_message``)."""
        self._sink.warning("SpecChangeIgnored", message)

    def count_calls(self, calls: Mapping[str, int]) -> None:
        """Count BatchSubmitted from ``calls`` (a client's call counter) from now on."""
        self._calls = calls
        self._calls_reported = 0

    def progress(self, record: Progress, *, final: bool = False) -> None:
        """Aggregated BatchSubmitted and TargetFailed for ``record``."""
        now = self._clock()
        if final or now - self._last_batch_at >= self._interval:
            calls = sum(n for label, n in self._calls.items() if label.startswith(WRITE_CALLS))
            if calls > self._calls_reported:
                self._sink.normal(
                    "BatchSubmitted",
                    f"{calls - self._calls_reported} write request(s) sent to the AI API; "
                    f"{record.progress} finished, {record.active} in flight",
                )
                self._calls_reported = calls
                self._last_batch_at = now
        new = [f for f in record.failures if f.index not in self._reported_failures]
        if new:
            shown = "; ".join(f"{f.kind.value} {f.id}: {f.reason}" for f in new[:FAILURES_SHOWN])
            more = f" (+{len(new) - FAILURES_SHOWN} more)" if len(new) > FAILURES_SHOWN else ""
            self._sink.warning("TargetFailed", f"{len(new)} target(s) failed: {shown}{more}")
            self._reported_failures.update(f.index for f in new)
