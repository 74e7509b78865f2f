"""Which record is written how: checkpoints before sends, phases at once, answers with the next.

:func:`classify` is the one place that decides; :class:`Reporter` applies it and says the
milestones the records show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bulkterm.engine import InFlightGroup, Milestone, Phase, Progress, Reporter, Situation
from bulkterm.engine.decisions import Action
from bulkterm.engine.progress import build_conditions
from bulkterm.engine.reporting import Write, classify
from tests.hosts import CallbackHost

T1 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 30, 8, 0, 10, tzinfo=UTC)


def record(*groups: InFlightGroup, succeeded: int = 0, phase: Situation | None = None) -> Progress:
    situation = phase or Situation(Phase.RUNNING, "Running", "")
    return Progress(
        total=100,
        succeeded=succeeded,
        in_flight_groups=list(groups) or None,
        conditions=build_conditions([], situation, now=T1),
    )


def stop(at: datetime, indexes: str, accepted: bool | None = None) -> InFlightGroup:
    return InFlightGroup(action=Action.STOP, sent_at=at, indexes=indexes, accepted=accepted)


def announces(before: Progress | None, after: Progress) -> bool:
    return classify(before, after) is Write.CHECKPOINT


STALLED = Situation(Phase.STALLED, "AiApiUnreachable", "cannot connect")
DONE = Situation(Phase.COMPLETE, "AllTargetsTerminated", "all done")


def test_a_first_group_in_flight_announces_a_send() -> None:
    assert announces(None, record(stop(T1, "0-9")))
    assert announces(record(), record(stop(T1, "0-9")))


def test_a_group_split_by_its_answers_announces_nothing() -> None:
    """After the answer, the accepted part is a group of its own: nothing new was sent."""
    sent = record(stop(T1, "0-9"))
    answered = record(stop(T1, "7-9"), stop(T1, "0-6", accepted=True))
    assert not announces(sent, answered)


def test_only_answers_are_not_written_until_the_next_change() -> None:
    sent = record(stop(T1, "0-9"))
    answered = record(stop(T1, "7-9"), stop(T1, "0-6", accepted=True))
    assert classify(sent, answered) is Write.NOTHING
    assert classify(sent, record(stop(T1, "0-9"), succeeded=1)) is Write.LATER


def test_a_group_that_only_shrank_announces_nothing() -> None:
    assert not announces(record(stop(T1, "0-9")), record(stop(T1, "0-4")))


def test_a_new_target_or_a_new_send_time_announces_a_send() -> None:
    before = record(stop(T1, "0-9", accepted=True))
    assert announces(before, record(stop(T1, "0-10", accepted=True)))
    assert announces(before, record(stop(T1, "0-9", accepted=True), stop(T2, "20")))
    delete = InFlightGroup(action=Action.DELETE, sent_at=T1, indexes="0")
    assert announces(before, record(stop(T1, "1-9", accepted=True), delete))


def test_the_first_record_and_a_terminal_one_are_checkpoints() -> None:
    assert classify(None, record()) is Write.CHECKPOINT
    assert classify(record(), record(succeeded=100, phase=DONE)) is Write.CHECKPOINT


def test_an_unchanged_record_is_not_written_again() -> None:
    assert classify(record(succeeded=3), record(succeeded=3)) is Write.NOTHING


def test_a_change_of_phase_is_written_at_once_and_counters_at_the_hosts_pace() -> None:
    assert classify(record(), record(phase=STALLED)) is Write.NOW
    assert classify(record(), record(succeeded=5)) is Write.LATER


async def test_a_refused_checkpoint_is_not_taken_and_offered_again() -> None:
    answers = [False, True]

    async def write(_: Progress) -> bool:
        return answers.pop(0)

    host = CallbackHost(write)
    reporter = Reporter(host)
    assert await reporter.offer(record(stop(T1, "0"))) is False
    assert reporter.last is None
    assert await reporter.offer(record(stop(T1, "0"))) is True
    assert host.checkpoints == 2


async def test_a_stall_is_said_once_per_reason_in_a_row() -> None:
    async def write(_: Progress) -> None:
        return None

    host = CallbackHost(write)
    reporter = Reporter(host)
    await reporter.offer(record())
    await reporter.offer(record(phase=STALLED))
    await reporter.offer(record(succeeded=1, phase=STALLED))
    await reporter.offer(record(succeeded=2))
    await reporter.offer(record(succeeded=2, phase=STALLED))
    stalls = [e for e in host.events if e.milestone is Milestone.STALLED]
    assert [(e.reason, e.message) for e in stalls] == [("AiApiUnreachable", "cannot connect")] * 2


async def test_the_end_is_said_once_even_when_its_checkpoint_is_refused() -> None:
    async def refuse(_: Progress) -> bool:
        return False

    host = CallbackHost(refuse)
    reporter = Reporter(host)
    end = record(succeeded=100, phase=DONE)
    assert await reporter.offer(end) is False
    assert await reporter.offer(end) is True  # taken: nothing more to write
    assert [e.milestone for e in host.events] == [Milestone.COMPLETED]


def _groups(draw_sets: list[tuple[bool, bool, frozenset[int]]]) -> list[InFlightGroup]:
    return [
        InFlightGroup(
            action=Action.STOP if stop else Action.DELETE,
            sent_at=T1,
            indexes=",".join(str(i) for i in sorted(indexes)),
            accepted=True if accepted else None,
        )
        for stop, accepted, indexes in draw_sets
        if indexes
    ]


_GROUPS = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.frozensets(st.integers(0, 20), max_size=6)),
    max_size=4,
)


def _pairs(groups: list[tuple[bool, bool, frozenset[int]]]) -> set[tuple[bool, int]]:
    """What the drawn groups put in flight, read from the draw itself: (is STOP, index)."""
    return {(stop, index) for stop, _, indexes in groups for index in indexes}


@given(before=_GROUPS, after=_GROUPS)
def test_a_running_record_is_a_checkpoint_exactly_when_it_puts_a_target_in_flight_anew(
    before: list[tuple[bool, bool, frozenset[int]]], after: list[tuple[bool, bool, frozenset[int]]]
) -> None:
    last, new = record(*_groups(before)), record(*_groups(after))
    new_sends = bool(_pairs(after) - _pairs(before))
    assert (classify(last, new) is Write.CHECKPOINT) == new_sends
    assert classify(new, new) is Write.NOTHING
