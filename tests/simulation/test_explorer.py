"""The three promises, checked over a few hundred seeded fault schedules on every ``make test``.

``make explore`` runs ten thousand or more (``python -m tests.simulation.explorer --seeds N``).
A failing seed names itself and replays exactly with ``--seed N -v``.
"""

from __future__ import annotations

import os

import pytest

from tests.simulation.explorer import explore, replay_hint

SEEDS = int(os.environ.get("BULKTERM_EXPLORER_SEEDS", "300"))
CHUNK = 25

#: Seeds below 300 that still break a promise: open defects the explorer found and that are
#: not fixed yet (CHANGELOG.md, "Known open"). Each is a re-send across runs of one tenant
#: when runs are killed, or writes lost, while another run acts on the same ids (one run
#: learns of another's write only from its answer), or a CannotStopUnknown under faults. A
#: seed here that starts passing fails this test, so the list only shrinks.
KNOWN_OPEN = frozenset({8, 10, 26, 71, 77, 93, 107, 153, 166, 229, 234, 257, 265, 272})


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds-{s}")
def test_every_promise_holds_under_seeded_fault_schedules(first: int) -> None:
    broken, fixed = [], []
    for seed in range(first, min(first + CHUNK, SEEDS)):
        result = explore(seed)
        if seed in KNOWN_OPEN:
            if result.ok:
                fixed.append(seed)
            continue
        if not result.ok:
            broken.append("\n".join([result.description, *result.broken, replay_hint(seed)]))
    assert not broken, "\n\n".join(broken)
    assert not fixed, f"seeds {fixed} keep every promise now: take them out of KNOWN_OPEN"


def test_a_seed_replays_exactly() -> None:
    first, second = explore(48), explore(48)  # faults, kills and three runs sharing ids
    assert first.trace and first.requests > 50
    assert (first.trace, first.broken, first.requests, first.simulated_seconds) == (
        second.trace,
        second.broken,
        second.requests,
        second.simulated_seconds,
    )
