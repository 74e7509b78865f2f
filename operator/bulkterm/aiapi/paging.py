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

A short first page can still be a capped one whose ``count`` is its own length: :class:`Lister`
asks once for one row past it (see :meth:`Lister._probe_cap`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

import httpx

from bulkterm.aiapi.errors import ListPagingError, PermanentError, ResultTooLargeError
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


#: Pages this long are checked once for a silent cap (the smallest cap seen is 1000 rows).
PROBE_FROM_ROWS = 1000
#: How a 413 names the rows a page may hold: "Result set exceeds the maximum of 1000 rows. Use
#: $top and $skip to paginate."
_ROW_LIMIT = re.compile(r"maximum of (\d+) rows")

#: One GET of a list page: ``(label, path, query)`` to the response.
Fetch = Callable[[str, str, Mapping[str, str]], Awaitable[httpx.Response]]


class Lister:
    """The list walks of one client: every page in turn (:class:`PageWalk`), a 413 read as the
    page size the server allows, and a probe that tells a silently capped page from a whole
    one. What the probes found is remembered per path, so each size is probed once."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        #: The largest single page each list path was seen to serve whole (see _probe_cap).
        self._whole_rows: dict[str, int] = {}

    async def walk(
        self,
        label: str,
        path: str,
        params: Mapping[str, str],
        size: int,
        read: Callable[[httpx.Response], Page[T]],
    ) -> list[T]:
        """Every page of a list, ``$top=size`` each, until :class:`PageWalk` says it ended."""
        query = dict(params)
        walk: PageWalk[T] = PageWalk(label, size)
        while True:
            query["$skip"] = str(walk.skip)
            try:
                response = await self._fetch(label, path, query)
            except PermanentError as exc:
                raise too_large(exc, size) or exc from None
            page = read(response)
            if walk.add(page):
                if walk.pages == 1:
                    await self._probe_cap(label, path, query, len(page.items), read)
                return walk.items

    async def _probe_cap(
        self,
        label: str,
        path: str,
        query: Mapping[str, str],
        rows: int,
        read: Callable[[httpx.Response], Page[T]],
    ) -> None:
        """A single short page is the whole list only if the server does not cap pages
        silently: one whose ``count`` is the page's own length could, and nothing in the page
        would say so. So the first time a page of at least :data:`PROBE_FROM_ROWS` rows (the
        smallest cap seen, on another ``/v2/lm`` endpoint) is larger than any this server has
        been seen to serve whole, one row past its end is asked for: none means the page was
        whole (caps are fixed numbers, so smaller pages need no probe again); one means the
        server serves ``rows`` rows a page (:class:`ResultTooLargeError`)."""
        if rows < PROBE_FROM_ROWS or rows <= self._whole_rows.get(path, 0):
            return
        probe = {**query, "$skip": str(rows), "$top": "1"}
        if read(await self._fetch(label, path, probe)).items:
            raise ResultTooLargeError(
                f"{label}: a page of {rows} rows for $top={query['$top']} was followed by more "
                "items: the server caps pages without saying so",
                limit=rows,
            )
        self._whole_rows[path] = rows


def too_large(exc: PermanentError, size: int) -> ResultTooLargeError | None:
    """A 413 on a list page: the rows the server allows per page, from its message when it
    names them, else half the page asked for (the walk shrinks until a page is served)."""
    if exc.status_code != 413 or isinstance(exc, ResultTooLargeError):
        return None
    named = _ROW_LIMIT.search(exc.message)
    limit = int(named.group(1)) if named else size // 2
    if not 1 <= limit < size:
        return None  # a 413 that no smaller page can avoid: an ordinary refusal
    return ResultTooLargeError(
        exc.message,
        limit=limit,
        status_code=exc.status_code,
        code=exc.code,
        request_id=exc.request_id,
    )
