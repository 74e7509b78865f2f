"""Time for the simulator: any ``() -> float`` in seconds, or a :class:`SimClock` tests move.

Every status change, token expiry and deletion is computed lazily from this clock when the
item is next looked at, so no background task runs and a test can jump an hour ahead in one
call instead of sleeping.
"""

from __future__ import annotations

import threading
import time
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


class Timebase:
    """The simulator's clock, and the wall-clock time each clock reading stands for.

    Lifecycles run on the clock (which a test may move by hand); what goes on the wire
    (``createdAt``, ``modifiedAt``…) is wall time: ``wall_origin`` (epoch seconds, default
    now) at the clock's reading when this was made, moving with the clock from there.
    """

    def __init__(self, clock: Clock | None = None, wall_origin: float | None = None) -> None:
        self.clock: Clock = clock or time.monotonic
        self._clock_origin = self.clock()
        self._wall_origin = time.time() if wall_origin is None else wall_origin

    def now(self) -> float:
        return self.clock()

    def wall(self, at: float) -> float:
        """Wall-clock epoch seconds of clock time ``at``."""
        return self._wall_origin + (at - self._clock_origin)
