"""Requests the AI API accepts: one kind each, ≤ batch size (≤100), an id at most once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.models import Kind
from bulkterm.engine import Action, Intent, make_batches

D, E = Kind.DEPLOYMENT, Kind.EXECUTION


def intents(n: int, kind: Kind = D, action: Action = Action.STOP, start: int = 0) -> list[Intent]:
    return [Intent(start + i, kind, f"{kind.value[:3]}-{start + i:05d}", action) for i in range(n)]


def test_250_intents_go_out_as_three_requests_of_at_most_100():
    assert [len(r.items) for r in make_batches(intents(250))] == [100, 100, 50]


def test_batch_size_below_100_is_honoured():
    assert [len(r.items) for r in make_batches(intents(25), batch_size=10)] == [10, 10, 5]


def test_batch_size_above_100_is_capped_at_the_api_limit():
    assert max(len(r.items) for r in make_batches(intents(300), batch_size=500)) == 100


def test_each_request_holds_a_single_kind():
    requests = make_batches([*intents(3, D), *intents(3, E, start=3)])
    assert [(r.kind, len(r.items)) for r in requests] == [(D, 3), (E, 3)]


def test_stop_and_delete_share_a_request_when_both_are_due():
    mixed = [*intents(2, action=Action.STOP), *intents(2, action=Action.DELETE, start=2)]
    (request,) = make_batches(mixed)
    assert {i.action for i in request.items} == {Action.STOP, Action.DELETE}


def test_the_same_id_twice_is_split_across_requests():
    twice = [Intent(0, D, "dep-0001", Action.STOP), Intent(1, D, "dep-0001", Action.DELETE)]
    requests = make_batches(twice)
    assert [len(r.items) for r in requests] == [1, 1]


def test_no_intents_no_requests():
    assert make_batches([]) == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Kind)),
            st.integers(0, 150).map(lambda n: f"item-{n:04d}"),
            st.sampled_from(list(Action)),
        ),
        max_size=400,
    ),
    st.integers(1, 150),
)
def test_every_intent_is_sent_once_in_a_valid_request(raw, batch_size):
    given_intents = [Intent(i, k, item_id, a) for i, (k, item_id, a) in enumerate(raw)]
    requests = make_batches(given_intents, batch_size)
    sent = [i for r in requests for i in r.items]
    assert sorted(sent, key=lambda i: i.index) == given_intents
    for r in requests:
        ids = [i.id for i in r.items]
        assert 1 <= len(ids) <= min(batch_size, 100)
        assert len(set(ids)) == len(ids)
        assert all(i.kind is r.kind for i in r.items)
