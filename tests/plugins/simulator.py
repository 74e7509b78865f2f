"""Fixtures that run the AI API simulator (``bulkterm.simulator``) for any test.

* ``simulator`` — an async, started :class:`Simulator` on 127.0.0.1 and a free port, with fast
  timings (a full lifecycle in well under a second) and seed 1.
* ``simulator_thread`` — the same in a background thread, for synchronous code (SAP's SDK,
  ``requests``, subprocesses).
* ``simulator_factory`` / ``simulator_thread_factory`` — build more, or differently configured,
  simulators; all are stopped at teardown.
* ``sim_clock`` — a :class:`SimClock` for tests that move time by hand.
* :func:`simulator_config` — the test defaults with overrides.

The fixtures start from the product's defaults, as a real AI Core is configured: in
particular ``bulkUpdates`` is **off** (SAP: "set to false by default"). A test about bulk PATCH
turns it on explicitly. Configure the ``simulator``/``simulator_thread`` fixtures with a
marker on the test, its class or its module (``pytestmark``); markers merge, the closest one
winning per setting::

    pytestmark = pytest.mark.simulator(bulk_updates=True)          # a module about bulk PATCH
    @pytest.mark.simulator(faults=Faults(error_rate=0.5))          # adds to the module's
    @pytest.mark.simulator(simulated_clock=True)   # uses the ``sim_clock`` fixture
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from bulkterm.simulator import (
    Clock,
    SimClock,
    Simulator,
    SimulatorConfig,
    SimulatorThread,
    Timings,
)

#: 1/20 of the defaults: UNKNOWN 0.1 s, PENDING 0.15 s, STOPPING 0.15 s, deletion 0.4 s,
#: executions complete after 3 s.
FAST_TIMINGS = Timings.fast(0.05)


def simulator_config(**overrides: Any) -> SimulatorConfig:
    """A :class:`SimulatorConfig` for tests: 127.0.0.1, free port, fast timings, seed 1."""
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "timings": FAST_TIMINGS, "seed": 1}
    settings.update(overrides)
    return SimulatorConfig(**settings)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "simulator(**overrides): SimulatorConfig overrides for the simulator fixtures; "
        "simulated_clock=True runs them on the sim_clock fixture",
    )


def marked_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``simulator`` markers of a test merged: module, then class, then the test itself
    (the closest marker wins per setting)."""
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("simulator"))):
        overrides.update(marker.kwargs)
    return overrides


def _marked(request: pytest.FixtureRequest) -> tuple[SimulatorConfig, Clock | None]:
    overrides = marked_overrides(request)
    clock: Clock | None = None
    if overrides.pop("simulated_clock", False):
        clock = request.getfixturevalue("sim_clock")
    return simulator_config(**overrides), clock


@pytest.fixture
def sim_clock() -> SimClock:
    """A clock that stands still until ``sim_clock.advance(seconds)``."""
    return SimClock()


@pytest.fixture
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started simulator (configure with ``@pytest.mark.simulator(...)``)."""
    config, clock = _marked(request)
    async with Simulator(config, clock=clock) as sim:
        yield sim


@pytest.fixture
def simulator_thread(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    """A simulator serving from a background thread, for synchronous clients."""
    config, clock = _marked(request)
    with SimulatorThread(config, clock=clock) as sim:
        yield sim


@pytest.fixture
async def simulator_factory() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """``await simulator_factory(clock=None, **config_overrides)`` → a started simulator."""
    started: list[Simulator] = []

    async def make(clock: Clock | None = None, **overrides: Any) -> Simulator:
        sim = Simulator(simulator_config(**overrides), clock=clock)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
def simulator_thread_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """``simulator_thread_factory(clock=None, **config_overrides)`` → a started thread runner."""
    started: list[SimulatorThread] = []

    def make(clock: Clock | None = None, **overrides: Any) -> SimulatorThread:
        sim = SimulatorThread(simulator_config(**overrides), clock=clock)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
