"""Choosing how to look at the targets each round: one paged list, or a GET per target.

Pure: the cost model is the number of HTTP calls, which is what rate limits and latency
scale with. A list costs ``ceil(items / page_size)`` calls however many of the items are
ours; GETs cost one per outstanding target. Three targets among 50,000 deployments want
GETs; 500 among 600 want a single list page.
"""

from __future__ import annotations

import math
from enum import StrEnum


class ObservationMethod(StrEnum):
    LIST = "list"
    GET = "get"
    #: The size of the collection is unknown and it matters: ask ``$count`` first (one call).
    COUNT = "count"


def list_cost(items: int, page_size: int) -> int:
    """Calls a full list needs; an empty collection still costs one call."""
    return max(1, math.ceil(items / page_size))


def choose_observation(
    outstanding: int, known_items: int | None, page_size: int, *, list_usable: bool = True
) -> ObservationMethod:
    """The cheaper way to observe ``outstanding`` targets of one kind.

    Ties go to the list: it also proves absence (a full list is the only "gone" evidence
    that is not a 404), and it sees items that changed underneath.
    """
    if not list_usable or outstanding <= 0:
        return ObservationMethod.GET
    if known_items is None:
        # A count costs one call; with one or two targets the GETs are never dearer.
        return ObservationMethod.GET if outstanding <= 2 else ObservationMethod.COUNT
    if list_cost(known_items, page_size) <= outstanding:
        return ObservationMethod.LIST
    return ObservationMethod.GET
