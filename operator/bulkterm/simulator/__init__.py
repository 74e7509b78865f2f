"""A local AI API (SAP AI Core) simulator: a sandbox for pipelines, demos, tests and benchmarks.

It answers like SAP's specification (``AI_CORE_API.yaml`` v2.42.0) and documented behaviour,
not like any particular client expects: OAuth2 client credentials, resource groups, lazy
status transitions on an injectable clock, the bulk stop/delete rules, fault injection, and a
record of every request a client should not have made. See ``docs/simulator.md``.
"""

from bulkterm.simulator.clock import Clock, SimClock
from bulkterm.simulator.config import Faults, SimulatorConfig, Timings
from bulkterm.simulator.python_api import SimulatorControls
from bulkterm.simulator.recording import Violation
from bulkterm.simulator.schedules import ScheduleView
from bulkterm.simulator.server import Simulator, SimulatorThread
from bulkterm.simulator.store import ItemView

__all__ = [
    "Clock",
    "Faults",
    "ItemView",
    "ScheduleView",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorControls",
    "SimulatorThread",
    "Timings",
    "Violation",
]
