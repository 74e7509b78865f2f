"""Settling a journal's requested creations whose answer was never recorded, against the
simulator over HTTP: the item made for it is found and taken, never made twice; one not
found is created again only after a while."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import Kind, Status
from bulkterm.restore.execute import LIST_LAG, settle
from bulkterm.restore.journal import Journal, JournalEntry
from bulkterm.simulator import Simulator

D = Kind.DEPLOYMENT
NOW = datetime.now(UTC).replace(microsecond=0)


class Kept:
    """Where the journal would be saved; keeps each save."""

    where = "memory"

    def __init__(self) -> None:
        self.saved: list[str] = []

    def load(self) -> Journal | None:
        return None

    def save(self, journal: Journal) -> None:
        self.saved.append(journal.dumps())


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[AiApiClient]:
    async with AiApiClient.from_service_key(simulator.service_key()) as made:
        yield made


def requested(old: str, at: datetime, configuration: str = "cfg-a") -> JournalEntry:
    return JournalEntry(kind=D, old_id=old, configuration_id=configuration, requested_at=at)


async def test_the_item_created_after_the_request_is_taken_as_its_answer(
    simulator: Simulator, client: AiApiClient
) -> None:
    simulator.add_item(D, "dep-before", Status.RUNNING, configuration_id="cfg-a",
                       created_at=NOW - timedelta(hours=1))  # fmt: skip
    simulator.add_item(D, "dep-made", Status.RUNNING, configuration_id="cfg-a",
                       created_at=NOW + timedelta(seconds=1))  # fmt: skip
    simulator.add_item(D, "dep-other", Status.RUNNING, configuration_id="cfg-b",
                       created_at=NOW + timedelta(seconds=1))  # fmt: skip
    journal = Journal(source="s", entries=[requested("dep-old", NOW)])
    kept = Kept()
    adopted = await settle(client, journal, kept, {"dep-old"}, NOW + timedelta(seconds=5))
    assert [e.new_id for e in adopted] == ["dep-made"]
    assert journal.restored() == {(D, "dep-old"): "dep-made"} and kept.saved


async def test_an_item_another_entry_claims_is_not_taken_twice(
    simulator: Simulator, client: AiApiClient
) -> None:
    simulator.add_item(D, "dep-made", Status.RUNNING, configuration_id="cfg-a",
                       created_at=NOW + timedelta(seconds=1))  # fmt: skip
    journal = Journal(source="s", entries=[
        JournalEntry(kind=D, old_id="dep-a", configuration_id="cfg-a", requested_at=NOW,
                     new_id="dep-made"),
        requested("dep-b", NOW),
    ])  # fmt: skip
    later = NOW + LIST_LAG + timedelta(seconds=1)
    assert await settle(client, journal, Kept(), set(), later) == []
    assert journal.awaiting() == set()  # dropped: the next restore creates it


async def test_a_recent_request_not_listed_yet_stays_awaiting_its_answer(
    simulator: Simulator, client: AiApiClient
) -> None:
    simulator.add_resource_group("default")
    journal = Journal(source="s", entries=[requested("dep-old", NOW)])
    adopted = await settle(client, journal, Kept(), set(), NOW + timedelta(seconds=5))
    assert adopted == [] and journal.awaiting() == {(D, "dep-old")}
