"""Observing each round with as few calls as possible, and polling no faster than needed."""

from __future__ import annotations

import random

import pytest

from bulkterm.aiapi.models import Status
from bulkterm.engine import EngineSettings, ObservationMethod, choose_observation, list_cost
from bulkterm.engine.timing import backoff_delay, poll_interval
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, E, run_to_end, spec_of

LIST, GET, COUNT = ObservationMethod.LIST, ObservationMethod.GET, ObservationMethod.COUNT


@pytest.mark.parametrize(
    ("outstanding", "known", "expected"),
    [
        (3, 50_000, GET),  # 3 GETs beat 50 pages
        (500, 600, LIST),  # one page beats 500 GETs
        (50, 50_000, LIST),  # a tie goes to the list: it also proves absence
        (49, 50_000, GET),
        (1, None, GET),  # unknown size, one target: a count would already cost as much
        (2, None, GET),
        (3, None, COUNT),  # unknown size, several targets: count first (one call)
        (0, 10, GET),  # nothing to look at costs nothing
    ],
)
def test_the_cheaper_observation_is_chosen(outstanding, known, expected):
    assert choose_observation(outstanding, known, 1000) is expected


def test_a_refused_list_is_not_chosen_again():
    assert choose_observation(500, 600, 1000, list_usable=False) is GET


def test_an_empty_collection_still_costs_one_list_call():
    assert list_cost(0, 1000) == 1
    assert list_cost(1001, 1000) == 2


async def test_few_targets_among_many_items_are_observed_with_single_gets(
    api: FakeAiApi, clock: FakeClock
):
    for n in range(40_000):  # four pages of the default 10,000 rows
        api.add(D, f"dep-{n:05d}", Status.STOPPED)
    api.add(D, "dep-mine", Status.RUNNING)
    spec = spec_of((D, "dep-mine", STOPPED), (D, "dep-00001", STOPPED), (D, "dep-00002", STOPPED))
    await run_to_end(spec, api, clock)
    assert api.calls["count deployments"] == 1
    assert api.calls["list deployments"] == 0
    assert api.calls["get deployments"] >= 3


async def test_many_targets_among_few_items_are_observed_with_one_list_page_per_round(
    api: FakeAiApi, clock: FakeClock
):
    for n in range(400):
        api.add(E, f"exe-{n:04d}", Status.RUNNING)
    spec = spec_of(*[(E, f"exe-{n:04d}", STOPPED) for n in range(300)])
    await run_to_end(spec, api, clock)
    rounds = api.calls["list executions"]
    assert api.calls["get executions"] == 0
    assert api.calls["count executions"] == 1
    assert 2 <= rounds <= 10


async def test_absence_from_a_full_list_counts_as_not_found(api: FakeAiApi, clock: FakeClock):
    for n in range(10):
        api.add(D, f"dep-{n:04d}", Status.DEAD)
    spec = spec_of(*[(D, f"dep-{n:04d}", DELETED) for n in range(10)], (D, "dep-gone", DELETED))
    final = await run_to_end(spec, api, clock)
    assert api.calls["get deployments"] == 0
    assert final.outcomes == {"Deleted": 10, "NotFound": 1}


async def test_a_run_whose_only_target_is_never_found_fails_no_targets_found(
    api: FakeAiApi, clock: FakeClock
):
    final = await run_to_end(spec_of((D, "dep-gone", DELETED)), api, clock)
    assert api.calls["get deployments"] == 1
    assert (final.failed, final.outcomes) == (1, {})
    failed = final.condition("Failed")
    assert failed is not None and failed.reason == "NoTargetsFound"
    assert "resource group 'default'" in failed.message


async def test_poll_interval_seconds_is_the_time_between_looks(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=300)
    api.add(D, "dep-slow", Status.RUNNING)
    await run_to_end(spec_of((D, "dep-slow", STOPPED), poll_interval_seconds=20), api, clock)
    # a send, then a 300 s stop: one look every 20 s, never faster "because it moved"
    assert set(clock.slept) == {20}
    assert 300 / 20 <= len(clock.slept) <= 300 / 20 + 2


def test_poll_interval_is_capped_only_by_the_settings():
    assert poll_interval(10, EngineSettings()) == 10
    assert poll_interval(3600, EngineSettings(max_poll_seconds=5)) == 5


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    s = EngineSettings(backoff_base_seconds=1, backoff_max_seconds=30)
    rng = random.Random(1)
    delays = [backoff_delay(n, None, s, rng) for n in range(1, 10)]
    assert 0.5 <= delays[0] <= 1
    assert 4 <= delays[3] <= 8
    assert all(15 <= d <= 30 for d in delays[5:])


def test_backoff_honours_retry_after_as_a_floor():
    s = EngineSettings()
    assert backoff_delay(1, 45, s, random.Random(0)) == 45


def test_an_absurd_retry_after_is_bounded():
    s = EngineSettings(max_retry_after_seconds=300)
    assert backoff_delay(1, 86_400, s, random.Random(0)) == 300
