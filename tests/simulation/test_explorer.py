"""The three promises, checked over 200 seeded fault schedules on every ``make test``.

``make explore`` runs ten thousand or more (``python -m tests.simulation.explorer --seeds N``).
A failing seed names itself and replays exactly with ``--seed N -v``.
"""

from __future__ import annotations

import os

import pytest

from tests.simulation.explorer import explore, replay_hint

SEEDS = int(os.environ.get("BULKTERM_EXPLORER_SEEDS", "200"))
CHUNK = 25


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds-{s}")
def test_every_promise_holds_under_seeded_fault_schedules(first: int) -> None:
    broken = []
    for seed in range(first, min(first + CHUNK, SEEDS)):
        result = explore(seed)
        if not result.ok:
            broken.append("\n".join([result.description, *result.broken, replay_hint(seed)]))
    assert not broken, "\n\n".join(broken)


def test_a_seed_replays_exactly() -> None:
    first, second = explore(49), explore(49)  # faults, kills and three runs sharing ids
    assert first.trace and first.requests > 50
    assert (first.trace, first.broken, first.requests, first.simulated_seconds) == (
        second.trace,
        second.broken,
        second.requests,
        second.simulated_seconds,
    )
