"""Seeding the simulator from BulkTermination manifests: each target in a realistic status.

Used by ``bulkterm apply --simulator`` (the demo), ``bulkterm simulator --seed-from`` (the
README's walk-through) and the benchmark, so all three show the same mix for the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator.config import Timings
from bulkterm.spec import Target


def demo_timings() -> Timings:
    """Lifecycle durations of the embedded simulator: quick, but slow enough to watch."""
    return Timings(
        unknown_seconds=1.0,
        pending_seconds=1.5,
        stop_delay_seconds=0.3,
        stopping_seconds=1.5,
        deletion_seconds=2.0,
    )


#: The mix the embedded simulator gives a manifest's targets: mostly running, some already
#: stopped, dead or finished, some still starting, a few already gone (for DELETED targets).
_MIX: tuple[tuple[str, int], ...] = (
    ("RUNNING", 40),
    ("PENDING", 10),
    ("UNKNOWN", 8),
    ("STOPPING", 5),
    ("STOPPED", 15),
    ("DEAD", 7),
    ("COMPLETED", 10),
    ("GONE", 5),
)


def simulated_status(target: Target) -> Status | None:
    """A deterministic, realistic status for ``target`` (``None`` = does not exist).

    Deterministic (a hash of the id) so a demo prints the same thing every time. Targets that
    must be STOPPED are never missing, and deployments are never COMPLETED.
    """
    digest = int.from_bytes(hashlib.sha256(f"{target.kind}/{target.id}".encode()).digest()[:4])
    point = digest % sum(weight for _, weight in _MIX)
    name = _MIX[-1][0]
    for candidate, weight in _MIX:
        if point < weight:
            name = candidate
            break
        point -= weight
    if name == "GONE":
        return None if target.target_status is TargetStatus.DELETED else Status.RUNNING
    if name == "COMPLETED" and target.kind is Kind.DEPLOYMENT:
        return Status.STOPPED
    return Status(name)


def seed_targets(sim: Any, targets: Sequence[Target], *, resource_group: str) -> None:
    """Seed the simulator with ``targets`` in their :func:`simulated_status`.

    UNKNOWN items to be deleted stay UNKNOWN (stuck, the case SAP's docs say to delete);
    UNKNOWN items to be stopped resolve to PENDING, so they can be stopped.
    """
    for target in targets:
        status = simulated_status(target)
        if status is not None:
            stuck = status is Status.UNKNOWN and target.target_status is TargetStatus.DELETED
            sim.add_item(target.kind, target.id, status, resource_group=resource_group, hold=stuck)
