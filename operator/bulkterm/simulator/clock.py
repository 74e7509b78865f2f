"""Time for the simulator: any ``() -> float`` in seconds, or a :class:`SimClock` tests move.

Every status change, token expiry and deletion is computed lazily from this clock when the
item is next looked at, so no background task runs and a test can jump an hour ahead in one
call instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: What the simulator accepts as a clock (``time.monotonic`` by default).
Clock = Callable[[], float]


class SimClock:
    """A clock that only moves when told to: ``clock.advance(5)``. Thread-safe."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward (never back) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"SimClock(now={self():.3f})"
