"""What brings a terminated target back: recorded for each target the run acts on, before the
action is sent, and only for those."""

from __future__ import annotations

import base64
import gzip
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkterm.aiapi.errors import AuthError, PermanentError
from bulkterm.aiapi.models import ItemState, Kind, Status
from bulkterm.engine import Progress
from bulkterm.engine.restore_points import (
    RestorePoint,
    RestoreRecordUnreadable,
    decode_points,
    encode_points,
)
from bulkterm.spec import BulkTerminationSpec, Target
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, E, make_run, run_to_end, spec_of
from tests.hosts import CallbackHost


def points_of(record: Progress, spec: BulkTerminationSpec) -> dict[str, RestorePoint]:
    assert record.restore is not None
    return {p.id: p for p in decode_points(record.restore.points, spec.targets).values()}


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
    assert points_of(final, spec) == {
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
    spec = spec_of((D, "dep-stopped", STOPPED), (D, "dep-run", STOPPED))
    final = await run_to_end(spec, api, clock)
    assert set(points_of(final, spec)) == {"dep-run"}


async def test_the_record_is_saved_before_the_action_is_sent(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    spec = spec_of((D, "dep-run", STOPPED))
    run = make_run(spec, api, clock)
    await run()
    first_with_a_send = next(s for s in run.snapshots if s.in_flight_groups)
    assert "dep-run" in points_of(first_with_a_send, spec)


async def test_a_dry_run_records_nothing(api: FakeAiApi, clock: FakeClock) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    final = await run_to_end(spec_of((D, "dep-run", STOPPED), dryRun=True), api, clock)
    assert final.restore is None


async def test_a_resumed_run_keeps_the_record_and_does_not_read_it_again(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    spec = spec_of((D, "dep-run", DELETED))
    run = make_run(spec, api, clock)
    await run()
    sent_stop = next(s for s in run.snapshots if s.in_flight_groups)
    saved = Progress.model_validate(sent_stop.to_status())
    api.calls.clear()
    final = await run_to_end(spec, api, clock, record=saved)
    assert points_of(final, spec)["dep-run"] == RestorePoint(D, "dep-run", "cfg-a", Status.RUNNING)
    assert api.calls["get deployments"] <= 1  # the unconfirmed send's whole read, no more


async def test_many_targets_are_read_whole_with_a_list_not_one_get_each(
    api: FakeAiApi, clock: FakeClock
) -> None:
    for n in range(40):
        api.add(D, f"dep-{n:04d}", Status.RUNNING, configuration_id=f"cfg-{n % 3}")
    spec = spec_of(*[(D, f"dep-{n:04d}", STOPPED) for n in range(40)])
    final = await run_to_end(spec, api, clock)
    assert len(points_of(final, spec)) == 40
    assert api.calls["get deployments"] == 0


ids = st.from_regex(r"[a-z0-9]{4,16}", fullmatch=True)
entries = st.tuples(
    st.sampled_from(list(Kind)), ids, st.one_of(st.none(), ids), st.sampled_from(list(Status))
)


@given(st.lists(entries, unique_by=lambda e: (e[0], e[1]), max_size=50), st.randoms())
def test_the_encoded_entries_read_back_as_written(
    written: list[tuple[Kind, str, str | None, Status]], rng: random.Random
) -> None:
    targets = [Target(kind=k, id=i, target_status=STOPPED) for k, i, _, _ in written]
    recorded = [n for n in range(len(written)) if rng.random() < 0.7]
    points = {n: RestorePoint(*written[n]) for n in recorded}
    assert decode_points(encode_points(points), targets) == points


def packed(raw: str) -> str:
    return base64.b64encode(gzip.compress(raw.encode(), mtime=0)).decode()


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "aGVsbG8=",  # base64, not gzip
        packed('[["cfg-a", "RUNNING"]]'),  # no indexes
        packed('[["cfg-a", "SLEEPING", "0"]]'),  # no such status
        packed('[["cfg-a", "RUNNING", "0-1,7"]]'),  # past the run's targets
        packed('[["cfg-a", "RUNNING", "1-0"]]'),  # ranges expand never writes
    ],
)
def test_a_damaged_record_is_refused_not_misread(text: str) -> None:
    with pytest.raises(RestoreRecordUnreadable, match=r"status\.restore\.points is unreadable"):
        decode_points(text, [Target(kind=D, id="dep-0000", target_status=STOPPED)] * 2)


async def test_an_action_whose_record_was_not_saved_leaves_no_restore_point(
    api: FakeAiApi, clock: FakeClock
) -> None:
    """The first stop's record is refused, so nothing is sent; meanwhile someone else stops the
    deployment. The run never acted on it, so it has nothing to restore."""
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    refused: list[Progress] = []

    async def host_refusing_the_first_send(record: Progress) -> bool:
        if record.in_flight_groups and not refused:
            refused.append(record)
            api.schedule(D, "dep-run", 0.5, Status.STOPPED)
            return False
        return True

    engine = make_run(spec_of((D, "dep-run", STOPPED)), api, clock).engine
    final = await engine.run(CallbackHost(host_refusing_the_first_send))
    assert refused and "dep-run" in points_of(refused[0], spec_of((D, "dep-run", STOPPED)))
    assert final.outcomes == {"AlreadyStopped": 1}
    assert final.restore is None
    assert api.sent == []


async def test_a_target_the_api_refuses_to_show_whole_is_still_acted_on_and_recorded_unknown(
    api: FakeAiApi, clock: FakeClock
) -> None:
    """A refusal (4xx) of the whole read would refuse it every round: the run must not wait on
    it for ever; the record says it has no configuration."""
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    status_only = api.get_state

    async def refused_whole(kind: Kind, item_id: str, *, full: bool = False) -> ItemState:
        if full:
            raise PermanentError("get deployments: HTTP 403: not allowed")
        return await status_only(kind, item_id)

    api.get_state = refused_whole  # type: ignore[method-assign]
    spec = spec_of((D, "dep-run", STOPPED))
    final = await run_to_end(spec, api, clock)
    assert final.outcomes == {"Stopped": 1}
    assert points_of(final, spec) == {"dep-run": RestorePoint(D, "dep-run", None, None)}
    assert final.restore is not None and final.restore.unknown == 1


async def test_a_later_first_action_uses_what_the_first_whole_list_showed(
    api: FakeAiApi, clock: FakeClock
) -> None:
    """Forty targets are stopped in the first round; one more is UNKNOWN then and stopped a
    few rounds later: its restore point comes from the same whole list, not from another."""
    for n in range(40):
        api.add(D, f"dep-{n:04d}", Status.RUNNING, configuration_id="cfg-a")
    api.add(D, "dep-late", Status.UNKNOWN, configuration_id="cfg-b")
    api.schedule(D, "dep-late", 12.0, Status.PENDING)
    whole_lists = 0
    list_items = api.list_items

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal whole_lists
        whole_lists += 1
        return await list_items(*args, **kwargs)

    api.list_items = counted  # type: ignore[method-assign]
    ids = [f"dep-{n:04d}" for n in range(40)] + ["dep-late"]
    spec = spec_of(*[(D, i, STOPPED) for i in ids])
    final = await run_to_end(spec, api, clock)
    assert final.outcomes == {"Stopped": 41}
    assert points_of(final, spec)["dep-late"] == RestorePoint(
        D, "dep-late", "cfg-b", Status.UNKNOWN
    )
    assert whole_lists == 1


async def test_an_action_refused_for_credentials_leaves_no_restore_point(
    api: FakeAiApi, clock: FakeClock
) -> None:
    """The stop was written down, then refused before the API acted on it (a revoked key):
    the run stalls, and its record must not claim it terminated the target."""
    api.add(D, "dep-run", Status.RUNNING, configuration_id="cfg-a")
    api.fail_next["bulk_patch"] = [AuthError("HTTP 401: the token was revoked")]
    run = make_run(spec_of((D, "dep-run", STOPPED)), api, clock)
    with pytest.raises(AuthError):
        await run()
    assert any(s.restore for s in run.snapshots)  # written with the action, before the send
    assert run.snapshots[-1].restore is None
