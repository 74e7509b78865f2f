"""A list read page by page is not a snapshot: absence from it must be confirmed."""

from __future__ import annotations

from bulkterm.aiapi.models import ItemState, Kind, Status
from bulkterm.engine import EngineSettings
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, run_to_end, spec_of


class PageSkippingApi(FakeAiApi):
    """Loses one item from every multi-page list, as `$skip` does when an earlier item is
    deleted between two page reads."""

    def __init__(self, clock: FakeClock, skipped: str) -> None:
        super().__init__(clock)
        self.skipped = skipped

    async def list_states(
        self, kind: Kind, *, status: Status | None = None, page_size: int = 1000
    ) -> list[ItemState]:
        states = await super().list_states(kind, status=status, page_size=page_size)
        if len(states) > page_size:
            states = [s for s in states if s.id != self.skipped]
        return states


SMALL_PAGES = EngineSettings(list_page_size=2)


async def test_item_skipped_by_a_paged_list_is_not_taken_for_deleted(clock: FakeClock) -> None:
    api = PageSkippingApi(clock, skipped="dep-0003")
    ids = [f"dep-{i:04d}" for i in range(8)]
    for i in ids:
        api.add(D, i, Status.RUNNING)
    final = await run_to_end(
        spec_of(*[(D, i, DELETED) for i in ids]), api, clock, settings=SMALL_PAGES
    )
    assert api.status_of(D, "dep-0003") is None  # really deleted, not merely unseen
    assert final.outcomes.get("AlreadyDeleted", 0) == 0
    assert api.violations == []


async def test_item_skipped_by_a_paged_list_is_not_failed_as_not_found(clock: FakeClock) -> None:
    api = PageSkippingApi(clock, skipped="dep-0003")
    ids = [f"dep-{i:04d}" for i in range(8)]
    for i in ids:
        api.add(D, i, Status.RUNNING)
    final = await run_to_end(
        spec_of(*[(D, i, STOPPED) for i in ids]), api, clock, settings=SMALL_PAGES
    )
    assert final.failed == 0
    assert api.status_of(D, "dep-0003") is Status.STOPPED


async def test_absence_from_a_single_page_list_is_trusted(api: FakeAiApi, clock: FakeClock) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    final = await run_to_end(
        spec_of((D, "dep-0001", STOPPED), (D, "dep-gone", DELETED)), api, clock
    )
    assert final.outcomes["NotFound"] == 1
