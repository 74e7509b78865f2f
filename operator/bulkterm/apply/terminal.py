"""``bulkterm apply`` as a run's host: records to the progress view, milestones as lines.

The run is the same :class:`~bulkterm.engine.Run` the operator hosts; this module only shows it
and decides when a terminal user is better served by giving up than by waiting (a URL that is
not the AI API, unless ``--timeout`` says how long to try).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bulkterm.aiapi.client import AiApiClient
from bulkterm.apply.output import summarise_calls
from bulkterm.display import ProgressView
from bulkterm.engine import ConditionType, EngineSettings, Milestone, Progress, Run, RunEvent
from bulkterm.manifest import Manifest

#: The stall a terminal run gives up on at once: whatever answers there is not the AI API, and
#: waiting longer changes nothing.
GIVE_UP_ON = "NotTheAiApi"


class NotTheAiApi(Exception):
    """The run stalled because the URL answers, but not as the AI API: it gave up."""

    def __init__(self, record: Progress, message: str) -> None:
        super().__init__(message)
        self.record = record
        self.message = message


class Interrupted(Exception):
    """SIGINT or SIGTERM during a run: carries the record as far as it got, to be printed."""

    def __init__(self, record: Progress) -> None:
        super().__init__("interrupted")
        self.record = record


class TerminalHost:
    """Shows one run: every record in the progress view, one line per milestone that a
    human at a terminal needs (a selection, paused schedules, a stall, a retry episode)."""

    def __init__(self, name: str, view: ProgressView) -> None:
        self.name = name
        self.view = view
        #: Called on a stall the run should not wait out (None: wait, e.g. under --timeout).
        self.give_up: Callable[[], object] | None = None
        self.gave_up: str | None = None
        self._retrying = False

    async def checkpoint(self, record: Progress) -> bool:
        self._show(record)
        return True  # nothing outlives the process: every record is as durable as it gets

    async def progress(self, record: Progress, *, urgent: bool) -> None:
        self._show(record)

    def event(self, event: RunEvent) -> None:
        if event.milestone is Milestone.STALLED:
            self.view.message(f"{self.name}: Stalled {event.reason}: {event.message}")
            if event.reason == GIVE_UP_ON and self.give_up is not None:
                self.gave_up = event.message
                self.give_up()
        elif event.milestone in (Milestone.SELECTED, Milestone.SCHEDULES_PAUSED):
            self.view.message(f"{self.name}: {event.message}")

    def _show(self, record: Progress) -> None:
        self.view.update(self.name, record)
        # One line per retry episode (not per request): the error that holds the run up.
        reconciling = record.condition(ConditionType.RECONCILING)
        retrying = reconciling is not None and reconciling.reason == "Retrying"
        if retrying and not self._retrying and reconciling is not None:
            self.view.message(f"{self.name}: {reconciling.message}")
        self._retrying = retrying


async def run_one(
    manifest: Manifest,
    api: AiApiClient,
    view: ProgressView,
    *,
    stall_after_seconds: float,
    give_up_when_stalled: bool,
) -> Progress:
    """Run ``manifest`` to its end; raises :class:`Interrupted` (a signal) or
    :class:`NotTheAiApi` (given up) with the record as far as it got."""
    host = TerminalHost(manifest.name, view)
    run = Run(manifest.spec, host, settings=EngineSettings(stall_after_seconds=stall_after_seconds))

    async def drive() -> Progress:
        await run.begin()
        return await run.drive(api)

    task = asyncio.create_task(drive(), name=f"run {manifest.name}")
    if give_up_when_stalled:
        host.give_up = lambda: bool(task.cancel())
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if host.gave_up is not None and (current is None or not current.cancelling()):
            raise NotTheAiApi(run.record, host.gave_up) from None
        raise Interrupted(run.record) from None
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        view.message(f"{manifest.name}: AI API calls: {summarise_calls(api.calls)}")
