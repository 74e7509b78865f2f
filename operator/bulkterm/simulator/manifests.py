"""Seeding the simulator from BulkTermination manifests: each target in a realistic status.

Used by ``bulkterm apply --simulator`` (the demo), ``bulkterm simulator --seed-from`` (the
README's walk-through) and the benchmark, so all three show the same mix for the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator.config import Timings
from bulkterm.simulator.seeding import CONFIGURATIONS
from bulkterm.spec import Selector, Target


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


def simulated_configuration(target: Target) -> str:
    """One of the catalogue's configurations for the target's kind, chosen by a hash of the id
    (as :func:`simulated_status`), so a restore in a demo names the same ones every time."""
    digest = hashlib.sha256(f"configuration/{target.kind}/{target.id}".encode()).digest()
    choices = CONFIGURATIONS[target.kind]
    return choices[int.from_bytes(digest[:4]) % len(choices)].id


def seed_targets(sim: Any, targets: Sequence[Target], *, resource_group: str) -> None:
    """Seed the simulator with ``targets`` in their :func:`simulated_status`.

    UNKNOWN items to be deleted stay UNKNOWN (stuck, the case SAP's docs say to delete);
    UNKNOWN items to be stopped resolve to PENDING, so they can be stopped.
    """
    for target in targets:
        status = simulated_status(target)
        if status is not None:
            stuck = status is Status.UNKNOWN and target.target_status is TargetStatus.DELETED
            sim.add_item(
                target.kind,
                target.id,
                status,
                resource_group=resource_group,
                hold=stuck,
                configuration_id=simulated_configuration(target),
            )


def seed_selector(
    sim: Any, selector: Selector, *, resource_group: str, now: datetime, count: int = 24
) -> None:
    """Seed a population a selector can be tried on: ``count`` items it matches (old enough,
    in the realistic status mix), a quarter as many too recent for its age filter, and as many
    again in another scenario and configuration, which the list filters leave out.

    Deterministic, so ``bulkterm apply --simulator`` shows the same selection every time.
    The selector's execution schedule (or one per scenario) exists and is ACTIVE."""
    prefix = "d" if selector.kind is Kind.DEPLOYMENT else "e"
    scenario = selector.scenario_id or "sim-scenario"
    configuration = selector.configuration_id or f"{scenario}-config"
    executable = selector.executable_ids[0] if selector.executable_ids else f"{scenario}-exec"
    schedule = selector.execution_schedule_id
    if selector.kind is Kind.EXECUTION:
        schedule = schedule or f"{scenario}-nightly"
        sim.add_execution_schedule(
            schedule,
            configuration_id=configuration,
            resource_group=resource_group,
            scenario_id=scenario,
            executable_id=executable,
            period_seconds=86_400.0,
        )
    age = timedelta(seconds=selector.older_than_seconds or 0)
    oldest = min(now - age, selector.created_before or now) - timedelta(days=1)
    recent = now - timedelta(minutes=5)

    def add(
        n: int, created: datetime, scenario_id: str, config: str, schedule_id: str | None
    ) -> None:
        item_id = f"{prefix}sim{n:013d}"
        target = Target(kind=selector.kind, id=item_id, target_status=selector.target_status)
        status = simulated_status(target) or Status.DEAD
        if selector.statuses and n % 2 == 0:
            status = selector.statuses[n % len(selector.statuses)]
        sim.add_item(
            selector.kind,
            item_id,
            status,
            resource_group=resource_group,
            configuration_id=config,
            scenario_id=scenario_id,
            executable_id=executable,
            created_at=created,
            execution_schedule_id=schedule_id,
        )

    quarter = max(1, count // 4)
    for n in range(count):
        add(n, oldest - timedelta(hours=n), scenario, configuration, schedule)
    for n in range(count, count + quarter):
        add(n, recent, scenario, configuration, schedule)
    for n in range(count + quarter, count + 2 * quarter):
        add(n, oldest, f"{scenario}-other", f"{configuration}-other", None)
