"""An asyncio event loop on virtual time: what sleeps for an hour returns at once, in order.

Deterministic simulation needs two things from the loop: time that moves only when every
task is waiting for it, and no real I/O whose timing could reorder callbacks. The loop's
``time()`` is a number this module owns; when nothing is ready and a timer is due later, the
selector jumps the clock to that timer instead of blocking. Everything that keeps time
through the loop (``asyncio.sleep``, ``wait_for``, timeouts, aiolimiter, httpx's timeouts)
then runs in simulated seconds, and the order of callbacks depends only on the program.

A loop with nothing ready and no timer left would block for ever: that is a deadlock of the
program under test, reported as :class:`Deadlock` instead of hanging the test.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits for something no timer and no I/O will ever bring."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector (the loop's self-pipe still works) that never waits in real time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._real = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise Deadlock("no task can make progress: nothing is ready and no timer is set")
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` starts at 0 and jumps to the next timer whenever the loop would wait."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual_now += seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop, then close the loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
