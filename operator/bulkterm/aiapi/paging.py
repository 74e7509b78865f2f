"""Walking a list with explicit ``$top``/``$skip`` until it has certainly ended.

Several pages are not one snapshot. An insertion at the front between two page reads shifts
later items to higher positions, so the next page repeats one: items are de-duplicated by id.
A deletion shifts them to lower positions, so ``$skip`` jumps over one: absence from a
multi-page list proves nothing (the engine confirms it with a GET).

The walk ends at the first page shorter than ``$top``, unless that page's ``count`` says more
items match than were delivered up to it: then the server caps its pages below ``$top``
without saying so, and the walk raises :class:`ResultTooLargeError` with the rows it got as
the ``limit`` (the caller reads again in pages of that size; a 413 says the same out loud).
It cannot run for ever:

* A full page that adds no new id means the server does not honour ``$skip``: the list cannot
  be paged (:class:`ListPagingError`).
* The first page's ``count`` bounds the pages: those it takes, plus as many again (at least
  two) for insertions while paging. More full pages than that is an error too. A ``count``
  no larger than one page tells nothing (the spec's "number of the resource instances in the
  list" may mean the page's own length), so then only :data:`MAX_PAGES_UNCOUNTED` applies.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from bulkterm.aiapi.errors import ListPagingError, ResultTooLargeError
from bulkterm.aiapi.wire import Identified, Page

T = TypeVar("T", bound=Identified)

#: Pages a walk may take when the first page's ``count`` gives no bound.
MAX_PAGES_UNCOUNTED = 10_000


def page_budget(count: int | None, size: int) -> int:
    """Most pages a walk over ``count`` items in pages of ``size`` may take."""
    if count is None or count <= size:
        return MAX_PAGES_UNCOUNTED
    pages = -(-count // size)
    return pages + max(2, pages)


class PageWalk(Generic[T]):
    """The state of one walk: feed it pages with :meth:`add` until it says the list ended.

    Any list whose resources have an ``id`` walks the same way: items, schedules,
    configurations."""

    def __init__(self, label: str, size: int) -> None:
        self.label = label
        self.size = size
        #: ``$skip`` of the next page to read.
        self.skip = 0
        self.pages = 0
        self._items: dict[str, T] = {}
        self._count: int | None = None
        self._budget = MAX_PAGES_UNCOUNTED

    @property
    def items(self) -> list[T]:
        """Every distinct item seen, in the order first seen."""
        return list(self._items.values())

    def add(self, page: Page[T]) -> bool:
        """Take the page read at :attr:`skip`; ``True`` when the list has ended."""
        self.pages += 1
        new = 0
        for item in page.items:
            if item.id not in self._items:
                self._items[item.id] = item
                new += 1
        if len(page.items) < self.size:
            self._check_short_page(page)
            return True
        if new == 0:
            raise ListPagingError(
                f"{self.label}: the full page at $skip={self.skip} holds only items already "
                "listed: the server does not honour $skip, so the list cannot be paged"
            )
        if self.pages == 1:
            self._count = page.count
            self._budget = page_budget(page.count, self.size)
        if self.pages >= self._budget:
            counted = (
                f"although the first page counted {self._count} items"
                if self._count is not None and self._count > self.size
                else "without a count to bound them"
            )
            raise ListPagingError(
                f"{self.label}: still full pages after {self.pages} pages of {self.size} "
                f"{counted}: stopped paging"
            )
        self.skip += self.size
        return False

    def _check_short_page(self, page: Page[T]) -> None:
        """A short page ends the list only if its ``count`` (when it is the total) agrees."""
        delivered = self.skip + len(page.items)
        if page.count is None or page.count <= delivered:
            return
        message = (
            f"{self.label}: the page at $skip={self.skip} holds {len(page.items)} rows for "
            f"$top={self.size}, but the list counts {page.count} items: the server caps pages"
        )
        if not page.items:
            raise ListPagingError(message + " and returned none")
        raise ResultTooLargeError(message, limit=len(page.items))
