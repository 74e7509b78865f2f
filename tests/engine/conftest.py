from __future__ import annotations

import pytest

from tests.engine.fake_api import FakeAiApi, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> FakeAiApi:
    return FakeAiApi(clock)
