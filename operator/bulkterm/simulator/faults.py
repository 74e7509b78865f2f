"""Faults the simulator injects: into requests, by seeded chance, and into writes of items.

Request faults (:class:`~bulkterm.simulator.config.Faults`) are decided per request: every
decision draws the same number of random numbers from the seeded RNG whatever the outcome, so
the same seed and the same sequence of requests give the same faults.

Write faults hit chosen items and kinds, set on ``Backend.injector`` (``refusals``,
``ineffective``, ``bulk_refused``): an error answered to the
next writes of an id whatever its state, writes accepted but never applied (an action lost
inside the service), a bulk PATCH refused as unsupported although ``/lm/meta`` advertises it.

No injected fault is a violation: the client did nothing wrong.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from bulkterm.aiapi.models import Kind
from bulkterm.simulator.config import Faults


class FaultKind(Enum):
    DROP = "drop"
    SERVER_ERROR = "server_error"
    THROTTLE = "throttle"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True)
class Decision:
    """What happens to one request: a delay, maybe a fault, maybe a lost response."""

    delay_seconds: float = 0.0
    fault: FaultKind | None = None
    lose_response: bool = False


NO_FAULT = Decision()


def decide(faults: Faults, rng: random.Random, method: str) -> Decision:
    if not faults.active:
        return NO_FAULT
    if faults.methods is not None and method.upper() not in faults.methods:
        return NO_FAULT
    jitter, drop, error, throttle, unauthorized, lost = (rng.random() for _ in range(6))
    delay = (faults.latency_ms + jitter * faults.latency_jitter_ms) / 1000.0
    fault: FaultKind | None = None
    if drop < faults.drop_rate:
        fault = FaultKind.DROP
    elif error < faults.error_rate:
        fault = FaultKind.SERVER_ERROR
    elif throttle < faults.throttle_rate:
        fault = FaultKind.THROTTLE
    elif unauthorized < faults.unauthorized_rate:
        fault = FaultKind.UNAUTHORIZED
    return Decision(delay, fault, fault is None and lost < faults.lost_response_rate)


@dataclass(frozen=True)
class InjectedRefusal:
    """An error the API answers one write of an item with: a per-item ``error`` in a bulk
    answer, a 412 with this code and message for a single PATCH or DELETE."""

    code: str
    message: str


class FaultInjector:
    """The faults in force: request faults with their RNG, and write faults."""

    def __init__(self, faults: Faults, rng: random.Random) -> None:
        self.faults = faults
        self.rng = rng
        #: Per item id (any kind, any group): the errors its next writes get, in order.
        self.refusals: dict[str, list[InjectedRefusal]] = {}
        #: Item ids whose writes are answered as accepted and change nothing.
        self.ineffective: set[str] = set()
        #: Kinds whose bulk PATCH is refused as unsupported whatever ``/lm/meta`` says.
        self.bulk_refused: set[Kind] = set()

    def decide(self, method: str) -> Decision:
        return decide(self.faults, self.rng, method)

    def refusal(self, item_id: str) -> InjectedRefusal | None:
        """The error the next write of ``item_id`` gets (taken from its queue), if any."""
        queue = self.refusals.get(item_id)
        return queue.pop(0) if queue else None
