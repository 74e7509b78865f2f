"""Deciding, per request, which injected fault (if any) hits it.

Every decision draws the same number of random numbers from the seeded RNG whatever the
outcome, so the same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

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
