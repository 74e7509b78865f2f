"""``bulkterm_active_replica`` follows kopf's own peering decisions: kopf's peering code is run
here as the operator runs it, so a kopf that stops logging its pauses and resumptions the way
``bulkterm.k8s.replica`` reads them fails this test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import peering

from bulkterm import metrics
from bulkterm.k8s.replica import PEERING_LOGGER, PeeringPauses, follow_peering

PEERING = "bt-peering"


def active() -> float | None:
    return metrics.REGISTRY.get_sample_value("bulkterm_active_replica")


@pytest.fixture
def pauses() -> Iterator[PeeringPauses]:
    logger = logging.getLogger(PEERING_LOGGER)
    level = logger.level
    follower = follow_peering(PEERING, logging.WARNING)
    assert follower is not None
    try:
        yield follower
    finally:
        logger.removeFilter(follower)
        logger.setLevel(level)
        metrics.ACTIVE_REPLICA.set(1)


async def peers_seen(toggle: aiotoggles.Toggle, peers: dict[str, int]) -> None:
    """kopf's peering handling one look at the peering object: ``peers`` by priority."""
    settings = kopf.OperatorSettings()
    settings.peering.name = PEERING
    settings.peering.priority = 10
    now = datetime.now(UTC).isoformat()
    status = {name: {"priority": p, "lifetime": 60, "lastseen": now} for name, p in peers.items()}
    woken = asyncio.Event()
    woken.set()  # kopf would otherwise sleep until the peers' records expire
    await peering.process_peering_event(
        raw_event={"type": "MODIFIED", "object": {"metadata": {"name": PEERING}, "status": status}},  # type: ignore[typeddict-item]
        namespace=None,
        resource=None,  # type: ignore[arg-type]  # only used to clean dead peers
        identity=peering.Identity("me"),
        settings=settings,
        autoclean=False,
        stream_pressure=woken,
        conflicts_found=toggle,
    )


def test_standalone_is_always_active() -> None:
    metrics.ACTIVE_REPLICA.set(0)
    assert follow_peering(None, logging.INFO) is None
    assert active() == 1


async def test_with_peering_a_replica_starts_standing_by_and_follows_kopf(
    pauses: PeeringPauses,
) -> None:
    assert active() == 0  # kopf starts paused until it has seen the peers
    toggles = aiotoggles.ToggleSet(any)
    toggle = await toggles.make_toggle(True, name=PEERING)  # as kopf makes it with peering
    await peers_seen(toggle, {"me": 10})
    assert toggle.is_off() and active() == 1
    await peers_seen(toggle, {"me": 10, "higher": 20})
    assert toggle.is_on() and active() == 0
    await peers_seen(toggle, {"me": 10, "lower": 5})
    assert toggle.is_off() and active() == 1
    await peers_seen(toggle, {"me": 10, "same": 10})
    assert toggle.is_on() and active() == 0


async def test_the_pause_lines_are_read_but_logged_only_at_the_operators_level(
    pauses: PeeringPauses, caplog: pytest.LogCaptureFixture
) -> None:
    toggles = aiotoggles.ToggleSet(any)
    toggle = await toggles.make_toggle(True, name=PEERING)
    with caplog.at_level(logging.DEBUG):
        await peers_seen(toggle, {"me": 10})
    assert active() == 1  # read at INFO although the operator logs WARNING and up
    assert not [r for r in caplog.records if r.name == PEERING_LOGGER]
