"""Whether this replica is the active one: kopf's peering pauses, followed into
``bulkterm_active_replica``.

kopf offers no hook for them (no handler, setting or memo field says that the operator is
paused): its peering decides per peering object, and logs one line when it pauses this
operator ("Pausing operations in favour of [...]", or "Pausing all operators, including
self: [...]" for peers of equal priority) and one when it resumes ("Resuming operations after
the pause..."). That line is the signal: :class:`PeeringPauses` is a filter on kopf's peering
logger. With peering kopf starts paused (silently, until its first look at the peers), so the
gauge starts at 0; standalone it is 1 for good. With ``--namespace`` kopf keeps one peering
object per namespace and decides for each, but every replica keeps its record alive in all of
them, so the decisions agree (within one look at the peers); the gauge follows the latest.
tests/k8s/test_replica.py drives kopf's own peering code, so a kopf that words these lines
otherwise fails there, not in production.
"""

from __future__ import annotations

import logging

from bulkterm import metrics

#: The logger of kopf's peering (``kopf._core.engines.peering``).
PEERING_LOGGER = "kopf._core.engines.peering"


class PeeringPauses(logging.Filter):
    """Sets ``bulkterm_active_replica`` from kopf's pause and resume lines; passes on the
    records at or above ``level`` (the operator's log level: the logger is lowered to INFO so
    that the pause lines reach this filter whatever the operator logs)."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Pausing "):
            metrics.ACTIVE_REPLICA.set(0)
        elif message.startswith("Resuming operations"):
            metrics.ACTIVE_REPLICA.set(1)
        return record.levelno >= self.level


def follow_peering(peering: str | None, level: int) -> PeeringPauses | None:
    """Make ``bulkterm_active_replica`` follow kopf's peering (``peering``: its name, None when
    standalone: always active), for an operator that logs at ``level``."""
    if peering is None:
        metrics.ACTIVE_REPLICA.set(1)
        return None
    metrics.ACTIVE_REPLICA.set(0)
    pauses = PeeringPauses(level)
    logger = logging.getLogger(PEERING_LOGGER)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addFilter(pauses)
    return pauses
