"""What brings a terminated target back: recorded for each target the run acts on, before the
action is sent, and only for those."""

from __future__ import annotations

import base64
import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import Progress
from bulkterm.engine.restore_points import (
    RestorePoint,
    RestoreRecordUnreadable,
    decode_points,
    encode_points,
)
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, E, make_run, run_to_end, spec_of


def points_of(record: Progress) -> dict[str, RestorePoint]:
    assert record.restore is not None
    return {p.id: p for p in decode_points(record.restore.points)}


async def test_each_stopped_or_deleted_target_is_recorded_with_its_configuration_and_status(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-run1", Status.RUNNING, configuration_id="cfg-a")
    api.add(D, "dep-run2", Status.RUNNING, configuration_id="cfg-a")
    api.add(D, "dep-stopped", Status.STOPPED, configuration_id="cfg-b")
    api.add(E, "exe-run1", Status.RUNNING, configuration_id="cfg-c")
    spec = spec_of(
        (D, "dep-run1", DELETED), (D, "dep-run2", STOPPED), (D, "dep-stopped", DELETED),
        (E, "exe-run1", STOPPED),
    )  # fmt: skip
    final = await run_to_end(spec, api, clock)
    assert final.succeeded == 4
    assert points_of(final) == {
        "dep-run1": RestorePoint(D, "dep-run1", "cfg-a", Status.RUNNING),
        "dep-run2": RestorePoint(D, "dep-run2", "cfg-a", Status.RUNNING),
        "dep-stopped": RestorePoint(D, "dep-stopped", "cfg-b", Status.STOPPED),
        "exe-run1": RestorePoint(E, "exe-run1", "cfg-c", Status.RUNNING),
    }
    assert final.restore is not None
    assert (final.restore.deployments, final.restore.executions) == (3, 1)
    assert (final.restore.configurations, final.restore.unknown) == (3, 0)


async def test_a_target_already_at_its_status_is_not_recorded(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-stopped", Status.STOPPED, configuration_id="cfg-b")
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    final = await run_to_end(
        spec_of((D, "dep-stopped", STOPPED), (D, "dep-run", STOPPED)), api, clock
    )
    assert set(points_of(final)) == {"dep-run"}


async def test_the_record_is_saved_before_the_action_is_sent(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    run = make_run(spec_of((D, "dep-run", STOPPED)), api, clock)
    await run()
    first_with_a_send = next(s for s in run.snapshots if s.in_flight_groups)
    assert "dep-run" in points_of(first_with_a_send)


async def test_a_dry_run_records_nothing(api: FakeAiApi, clock: FakeClock) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    final = await run_to_end(spec_of((D, "dep-run", STOPPED), dryRun=True), api, clock)
    assert final.restore is None


async def test_a_resumed_run_keeps_the_record_and_does_not_read_it_again(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    run = make_run(spec_of((D, "dep-run", DELETED)), api, clock)
    await run()
    sent_stop = next(s for s in run.snapshots if s.in_flight_groups)
    saved = Progress.model_validate(sent_stop.to_status())
    api.calls.clear()
    final = await run_to_end(spec_of((D, "dep-run", DELETED)), api, clock, record=saved)
    assert points_of(final)["dep-run"] == RestorePoint(D, "dep-run", "cfg-a", Status.RUNNING)
    assert api.calls["get deployments"] <= 1  # the unconfirmed send's whole read, no more


async def test_many_targets_are_read_whole_with_a_list_not_one_get_each(
    api: FakeAiApi, clock: FakeClock
) -> None:
    for n in range(40):
        api.add(D, f"dep-{n:04d}", Status.RUNNING, configuration_id=f"cfg-{n % 3}")
    final = await run_to_end(
        spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(40)]), api, clock
    )
    assert len(points_of(final)) == 40
    assert api.calls["get deployments"] == 0


ids = st.from_regex(r"[a-z0-9]{4,16}", fullmatch=True)
points = st.builds(
    RestorePoint,
    kind=st.sampled_from(list(Kind)),
    id=ids,
    configuration_id=st.one_of(st.none(), ids),
    status=st.sampled_from(list(Status)),
)


@given(st.lists(points, unique_by=lambda p: (p.kind, p.id), max_size=50))
def test_the_encoded_entries_read_back_as_written(written: list[RestorePoint]) -> None:
    def key(p: RestorePoint) -> tuple[str, str]:
        return (p.kind.value, p.id)

    assert sorted(decode_points(encode_points(written)), key=key) == sorted(written, key=key)


def packed(raw: str) -> str:
    return base64.b64encode(gzip.compress(raw.encode())).decode()


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "aGVsbG8=",  # base64, not gzip
        packed('[["Deployment", "cfg-a", "RUNNING"]]'),  # no ids
        packed('[["Pod", "cfg-a", "RUNNING", ["x1234"]]]'),  # no such kind
        packed('[["Deployment", "cfg-a", "RUNNING", [7]]]'),  # an id that is no string
    ],
)
def test_a_damaged_record_is_refused_not_misread(text: str) -> None:
    with pytest.raises(RestoreRecordUnreadable, match=r"status\.restore\.points is unreadable"):
        decode_points(text)
