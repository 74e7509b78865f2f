"""Whatever a client sends and however time passes, items only move along AI Core's flows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimClock, Simulator, SimulatorConfig
from bulkterm.simulator.backend import RequestContext
from tests.simulator.helpers import STATUSES

EDGES = {
    Status.UNKNOWN: {Status.PENDING},
    Status.PENDING: {Status.RUNNING, Status.DEAD, Status.STOPPING},
    Status.RUNNING: {Status.COMPLETED, Status.DEAD, Status.STOPPING},
    Status.STOPPING: {Status.STOPPED},
}


def reachable(start: Status) -> set[Status]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in EDGES.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


kinds = st.sampled_from([Kind.DEPLOYMENT, Kind.EXECUTION])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=20)),
        st.tuples(st.sampled_from(["STOPPED", "DELETED"]), st.integers(0, 5)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=kinds,
    statuses=st.lists(st.integers(0, 6), min_size=6, max_size=6),
    dies=st.lists(st.booleans(), min_size=6, max_size=6),
    script=steps,
)
def test_items_move_only_along_the_documented_flows(
    kind: Kind, statuses: list[int], dies: list[bool], script: list[tuple[str, float]]
) -> None:
    clock = SimClock()
    sim = Simulator(SimulatorConfig(seed=1), clock=clock)
    ids = [f"item-{n}" for n in range(6)]
    for item, index, dead in zip(ids, statuses, dies, strict=True):
        options = STATUSES[kind]
        sim.add_item(kind, item, options[index % len(options)], goes_dead=dead)
    last: dict[str, Status | None] = {item: sim.state_of(kind, item) for item in ids}
    url = "http://127.0.0.1/v2/lm/test"
    context = RequestContext(route="PATCH /lm/test", url=url, request_id="r")
    for action, value in script:
        if action == "advance":
            clock.advance(value)
        else:
            item = ids[int(value)]
            before = sim.item(kind, item)
            result = sim.backend.bulk_modify(
                kind, "default", [(item, TargetStatus(action))], context
            )
            accepted = "message" in result[kind.collection][0]
            if accepted:
                assert before is not None and not before.deleting
        for item in ids:
            now = sim.state_of(kind, item)
            previous = last[item]
            if previous is None:
                assert now is None, "a deleted item came back"
            elif now is not None:
                assert now in reachable(previous), f"{previous} -> {now}"
            last[item] = now
