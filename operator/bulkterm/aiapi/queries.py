"""The filters of a request, checked before anything is sent.

A filter the server would refuse (an id outside the spec's pattern, a page size out of range)
is a ``ValueError`` here rather than a 400 later, and a filter that would silently mean
something else (an empty id list: no filter at all) is refused outright. Long ``executableIds``
filters are cut into requests whose URLs gateways accept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bulkterm.aiapi.models import ID_PATTERN, MAX_EXECUTABLE_IDS

#: ``$top`` of the spec (``Aitop``): at most 100,000.
MAX_PAGE_SIZE = 100_000
#: Longest ``executableIds`` value one request carries, URL-encoded: request lines of 8 KB
#: are a common gateway limit, and the rest of the URL needs room too.
MAX_EXECUTABLE_IDS_CHARS = 6000


def checked_id(name: str, value: str) -> str:
    """``value`` if it matches the spec's id pattern; the server would answer 400 otherwise."""
    if not isinstance(value, str) or not re.fullmatch(ID_PATTERN, value):
        raise ValueError(f"{name} {value!r} does not match the AI API's id pattern {ID_PATTERN}")
    return value


def page_size(size: int) -> int:
    """``size`` if it is a ``$top`` the spec allows."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer in 1..{MAX_PAGE_SIZE}, got {size!r}")
    return size


def executable_id_chunks(ids: Sequence[str] | None) -> list[list[str] | None]:
    """The ``executableIds`` of each request: ``[None]`` (one request, no filter), or the ids
    checked, de-duplicated and cut into parts of at most 1000 ids (the spec's ``maxItems``)
    and at most :data:`MAX_EXECUTABLE_IDS_CHARS` characters URL-encoded (1000 ids of 64
    characters would make a 67 KB URL, which gateways refuse long before)."""
    if ids is None:
        return [None]
    if isinstance(ids, str):
        raise ValueError("executable_ids is a list of ids, not one string")
    unique = list(dict.fromkeys(checked_id("executable id", i) for i in ids))
    if not unique:
        raise ValueError("executable_ids is empty: give None for no executable filter")
    chunks: list[list[str] | None] = []
    chunk: list[str] = []
    length = 0
    for ident in unique:
        cost = len(ident) + 3  # the id and its separator, "%2C" once encoded
        if chunk and (len(chunk) == MAX_EXECUTABLE_IDS or length + cost > MAX_EXECUTABLE_IDS_CHARS):
            chunks.append(chunk)
            chunk, length = [], 0
        chunk.append(ident)
        length += cost
    chunks.append(chunk)
    return chunks
