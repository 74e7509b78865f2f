"""Which records announce a send (and so are written ahead of the status throttle)."""

from __future__ import annotations

from datetime import UTC, datetime

from bulkterm.engine import InFlightGroup, Progress
from bulkterm.engine.decisions import Action
from bulkterm.k8s.status import announces_sends

T1 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 30, 8, 0, 10, tzinfo=UTC)


def record(*groups: InFlightGroup) -> Progress:
    return Progress(total=100, in_flight_groups=list(groups) or None)


def stop(at: datetime, indexes: str, accepted: bool | None = None) -> InFlightGroup:
    return InFlightGroup(action=Action.STOP, sent_at=at, indexes=indexes, accepted=accepted)


def test_a_first_group_in_flight_announces_a_send() -> None:
    assert announces_sends(None, record(stop(T1, "0-9")))
    assert announces_sends(record(), record(stop(T1, "0-9")))


def test_a_group_split_by_its_answers_announces_nothing() -> None:
    """After the answer, the accepted part is a group of its own: nothing new was sent."""
    sent = record(stop(T1, "0-9"))
    answered = record(stop(T1, "7-9"), stop(T1, "0-6", accepted=True))
    assert not announces_sends(sent, answered)


def test_a_group_that_only_shrank_announces_nothing() -> None:
    assert not announces_sends(record(stop(T1, "0-9")), record(stop(T1, "0-4")))


def test_a_new_target_or_a_new_send_time_announces_a_send() -> None:
    before = record(stop(T1, "0-9", accepted=True))
    assert announces_sends(before, record(stop(T1, "0-10", accepted=True)))
    assert announces_sends(before, record(stop(T1, "0-9", accepted=True), stop(T2, "20")))
    delete = InFlightGroup(action=Action.DELETE, sent_at=T1, indexes="0")
    assert announces_sends(before, record(stop(T1, "1-9", accepted=True), delete))
