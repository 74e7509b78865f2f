"""Settling a journal's requested creations whose answer was never recorded: the item made for
it is found and taken, never made twice; one not found is created again only after a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bulkterm.aiapi.models import ItemSummary, Kind, Status
from bulkterm.restore.execute import LIST_LAG, settle
from bulkterm.restore.journal import Journal, JournalEntry

D = Kind.DEPLOYMENT
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Listed:
    """The AI API's list, as a restore reads it; nothing else is called."""

    def __init__(self, *items: tuple[str, str, datetime]) -> None:
        self.items = [
            ItemSummary(id=i, status=Status.RUNNING, created_at=at, configuration_id=c)
            for i, c, at in items
        ]

    async def list_items(self, kind: Kind, *, configuration_id: str | None = None) -> list[Any]:
        return [i for i in self.items if i.configuration_id == configuration_id]


class Kept:
    where = "memory"

    def __init__(self) -> None:
        self.saved: list[str] = []

    def load(self) -> Journal | None:
        return None

    def save(self, journal: Journal) -> None:
        self.saved.append(journal.dumps())


def requested(old: str, at: datetime, configuration: str = "cfg-a") -> JournalEntry:
    return JournalEntry(kind=D, old_id=old, configuration_id=configuration, requested_at=at)


async def test_the_item_created_after_the_request_is_taken_as_its_answer() -> None:
    journal = Journal(source="s", entries=[requested("dep-old", NOW)])
    api = Listed(("dep-before", "cfg-a", NOW - timedelta(hours=1)),
                 ("dep-made", "cfg-a", NOW + timedelta(seconds=1)))  # fmt: skip
    adopted = await settle(api, journal, Kept(), {"dep-old"}, NOW + timedelta(seconds=5))  # type: ignore[arg-type]
    assert [e.new_id for e in adopted] == ["dep-made"]


async def test_an_item_another_entry_claims_is_not_taken_twice() -> None:
    journal = Journal(source="s", entries=[
        JournalEntry(kind=D, old_id="dep-a", configuration_id="cfg-a", requested_at=NOW,
                     new_id="dep-made"),
        requested("dep-b", NOW),
    ])  # fmt: skip
    api = Listed(("dep-made", "cfg-a", NOW + timedelta(seconds=1)))
    later = NOW + LIST_LAG + timedelta(seconds=1)
    assert await settle(api, journal, Kept(), set(), later) == []  # type: ignore[arg-type]
    assert journal.awaiting() == set()  # dropped: the next restore creates it


async def test_a_recent_request_not_listed_yet_stays_awaiting_its_answer() -> None:
    journal = Journal(source="s", entries=[requested("dep-old", NOW)])
    adopted = await settle(Listed(), journal, Kept(), set(), NOW + timedelta(seconds=5))  # type: ignore[arg-type]
    assert adopted == [] and journal.awaiting() == {(D, "dep-old")}
