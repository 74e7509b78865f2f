"""Cutting intents into requests the AI API accepts: per kind, ≤100 items, each id once.

Pure, so the rules the API enforces (``maxItems: 100``, ``uniqueItems``, one id per request)
are checked here by property tests rather than discovered as 400s in production. Intents
carry their target index so that a shared executor can later merge intents of many runs
and route each per-item result back to the run and target that asked for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bulkterm.aiapi.models import MAX_BULK_ITEMS, Kind
from bulkterm.engine.decisions import Action


@dataclass(frozen=True, slots=True)
class Intent:
    """One action the planner wants sent to one item."""

    index: int
    kind: Kind
    id: str
    action: Action


@dataclass(frozen=True, slots=True)
class Request:
    """One bulk PATCH: a single kind, STOP and DELETE items mixed, no id twice."""

    kind: Kind
    items: tuple[Intent, ...]


def make_batches(intents: Iterable[Intent], batch_size: int = MAX_BULK_ITEMS) -> list[Request]:
    """Pack intents into as few valid requests as possible, in target order.

    The planner gives each target at most one action per round, so ids rarely collide; when
    they do (the same id asked twice, e.g. by two coalesced runs) the second goes to a later
    request instead of breaking the "once per request" rule.
    """
    size = max(1, min(batch_size, MAX_BULK_ITEMS))
    everything = list(intents)
    requests: list[Request] = []
    for kind in Kind:
        ordered = sorted((i for i in everything if i.kind is kind), key=lambda i: i.index)
        open_batches: list[tuple[list[Intent], set[str]]] = []
        first_open = 0  # batches before this one are full: keeps packing linear in practice
        for intent in ordered:
            slot = first_open
            while slot < len(open_batches):
                items, ids = open_batches[slot]
                if len(items) < size and intent.id not in ids:
                    break
                slot += 1
            if slot == len(open_batches):
                open_batches.append(([], set()))
            items, ids = open_batches[slot]
            items.append(intent)
            ids.add(intent.id)
            while first_open < len(open_batches) and len(open_batches[first_open][0]) >= size:
                first_open += 1
        requests.extend(Request(kind, tuple(items)) for items, _ in open_batches)
    return requests
