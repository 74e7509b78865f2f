"""Job-style compressed index ranges ("0-44,46") over the immutable ``spec.targets`` list.

Kubernetes Job stores ``completedIndexes`` this way because a row per item does not fit in
an object for 10,000 items, while the ranges of a mostly-sequential run stay a few bytes.
The same text is the resume source of truth, so parsing is strict: a corrupted record must
fail loudly rather than silently skip or redo targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def compress(indexes: Iterable[int]) -> str:
    """Render indexes as sorted, merged ranges; duplicates are harmless (a set is implied)."""
    parts: list[str] = []
    for first, last in ranges(indexes):
        parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


def ranges(indexes: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Maximal runs of consecutive indexes as inclusive ``(first, last)`` pairs."""
    ordered = sorted(set(indexes))
    if ordered and ordered[0] < 0:
        raise ValueError(f"index {ordered[0]} is negative")
    start: int | None = None
    prev = -2
    for index in ordered:
        if start is None:
            start = index
        elif index != prev + 1:
            yield start, prev
            start = index
        prev = index
    if start is not None:
        yield start, prev


def expand(text: str | None) -> list[int]:
    """Parse ranges back into sorted, unique indexes; rejects anything :func:`compress` never writes."""
    if not text:
        return []
    result: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part.strip())
        if match is None:
            raise ValueError(f"malformed index range {part!r} in {text!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"descending index range {part!r} in {text!r}")
        result.update(range(first, last + 1))
    return sorted(result)
