"""Run hosts for tests: where a run's records and milestones go when no operator hosts it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bulkterm.engine import Progress, RunEvent

#: Takes each record; returning False refuses a checkpoint (the run then sends nothing).
Callback = Callable[[Progress], Awaitable[bool | None]]


class CallbackHost:
    """Every record the run hands over goes to ``callback``, checkpoints and progress alike;
    a checkpoint is durable unless the callback returns False. Milestones are kept in
    ``events``."""

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.events: list[RunEvent] = []
        self.checkpoints = 0

    async def checkpoint(self, record: Progress) -> bool:
        self.checkpoints += 1
        return await self.callback(record) is not False

    async def progress(self, record: Progress, *, urgent: bool) -> None:
        await self.callback(record)

    def event(self, event: RunEvent) -> None:
        self.events.append(event)
