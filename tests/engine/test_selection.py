"""Resolving a selector: which listed items it names, and which it leaves and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine.selection import (
    ALREADY,
    ALSO_LISTED,
    EXCLUDED,
    NOT_IN_STATUSES,
    TOO_NEW,
    SelectionTooLarge,
    choose,
    decode_ids,
    encode_ids,
    resolve,
    server_filters,
)
from bulkterm.spec import Selector

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    id: str
    status: Status = Status.RUNNING
    created_at: datetime | None = NOW - timedelta(days=30)
    execution_schedule_id: str | None = None


def _selector(**fields: Any) -> Selector:
    base: dict[str, Any] = {"kind": "Deployment", "targetStatus": "STOPPED", "scenarioId": "sc-1"}
    return Selector.model_validate({**base, **fields})


def test_server_filters_carry_what_the_ai_api_filters_itself() -> None:
    selector = _selector(
        configurationId="cfg-1", executableIds=["ex-1", "ex-2"], statuses=["RUNNING"]
    )
    assert server_filters(selector) == {
        "scenario_id": "sc-1",
        "configuration_id": "cfg-1",
        "executable_ids": ["ex-1", "ex-2"],
        "status": Status.RUNNING,
    }


def test_several_statuses_are_filtered_here_not_by_the_ai_api() -> None:
    selector = _selector(statuses=["RUNNING", "PENDING"])
    assert "status" not in server_filters(selector)
    chosen = choose(
        selector,
        [Item("d001", Status.RUNNING), Item("d002", Status.PENDING), Item("d003", Status.DEAD)],
        now=NOW,
    )
    assert chosen.ids == ("d001", "d002")
    assert chosen.excluded == {NOT_IN_STATUSES: 1}


def test_without_statuses_items_already_at_the_target_are_left_out() -> None:
    items = [Item("d001", Status.RUNNING), Item("d002", Status.STOPPED), Item("d003", Status.DEAD)]
    chosen = choose(_selector(), items, now=NOW)
    assert chosen.ids == ("d001",)
    assert chosen.excluded == {ALREADY: 2}


def test_deleting_takes_items_in_every_status_without_statuses() -> None:
    items = [Item("d001", Status.RUNNING), Item("d002", Status.STOPPED), Item("d003", Status.DEAD)]
    assert len(choose(_selector(targetStatus="DELETED"), items, now=NOW).ids) == 3


def test_age_is_judged_by_created_at_against_the_run_start() -> None:
    items = [
        Item("d001", created_at=NOW - timedelta(days=8)),
        Item("d002", created_at=NOW - timedelta(days=6)),
        Item("d003", created_at=None),
    ]
    chosen = choose(_selector(olderThanSeconds=7 * 86400), items, now=NOW)
    assert chosen.ids == ("d001",)
    assert chosen.excluded == {TOO_NEW: 2}


def test_the_earlier_of_created_before_and_older_than_wins() -> None:
    items = [Item("d001", created_at=NOW - timedelta(days=3))]
    selector = _selector(createdBefore="2026-11-20T00:00:00Z", olderThanSeconds=86400)
    assert choose(selector, items, now=NOW).ids == ()


def test_exclude_ids_and_ids_listed_in_the_spec_are_not_chosen_twice() -> None:
    items = [Item("d001"), Item("d002"), Item("d003")]
    chosen = choose(_selector(excludeIds=["d002"]), items, now=NOW, already={"d003"})
    assert chosen.ids == ("d001",)
    assert chosen.excluded == {EXCLUDED: 1, ALSO_LISTED: 1}


def test_more_than_max_targets_is_refused_before_anything_is_chosen() -> None:
    items = [Item(f"d{i:04d}") for i in range(11)]
    with pytest.raises(SelectionTooLarge) as refused:
        choose(_selector(maxTargets=10), items, now=NOW)
    assert "matched 11 items, more than its maxTargets of 10" in str(refused.value)


def test_chosen_ids_are_oldest_first_and_repeats_count_once() -> None:
    items = [
        Item("d002", created_at=NOW - timedelta(days=2)),
        Item("d001", created_at=NOW - timedelta(days=9)),
        Item("d002", created_at=NOW - timedelta(days=2)),
    ]
    chosen = choose(_selector(), items, now=NOW)
    assert chosen.ids == ("d001", "d002")
    assert chosen.listed == 2


def test_schedules_of_chosen_executions_are_collected_for_pausing() -> None:
    selector = _selector(
        kind="Execution", scenarioId=None, executionScheduleId="sch-1", targetStatus="DELETED"
    )
    items = [
        Item("e001", Status.COMPLETED, execution_schedule_id="sch-1"),
        Item("e002", Status.RUNNING, execution_schedule_id="sch-2"),
        Item("e003", Status.DEAD),
    ]
    chosen = choose(selector, items, now=NOW)
    assert chosen.schedules == ("sch-1", "sch-2")
    assert [t.kind for t in chosen.targets()] == [Kind.EXECUTION] * 3
    assert {t.target_status for t in chosen.targets()} == {TargetStatus.DELETED}


class Lister:
    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.asked: list[tuple[Kind, dict[str, Any]]] = []

    async def list_items(self, kind: Kind, **filters: Any) -> list[Item]:
        self.asked.append((kind, filters))
        return self.items  # the filtering is the AI API's (tested in tests/simulator)


async def test_resolve_makes_one_list_request_with_the_server_filters() -> None:
    lister = Lister([Item("d001")])
    chosen = await resolve(_selector(configurationId="cfg-1"), lister, now=NOW)
    assert chosen.ids == ("d001",)
    assert lister.asked == [(Kind.DEPLOYMENT, {"scenario_id": "sc-1", "configuration_id": "cfg-1"})]


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.-]{4,64}", fullmatch=True), max_size=50))
def test_recorded_ids_read_back_as_written(ids: list[str]) -> None:
    assert decode_ids(encode_ids(ids)) == tuple(ids)


def test_an_unreadable_record_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="the recorded selection is unreadable"):
        decode_ids("not base64 at all!")


def test_ten_thousand_ai_core_ids_record_in_about_a_hundred_kilobytes() -> None:
    import random

    rnd = random.Random(7)
    ids = [f"d{rnd.getrandbits(60):015x}" for _ in range(10_000)]
    assert len(encode_ids(ids)) < 130_000
