"""The engine: decides, from targets and observations, what to send to the AI API, and runs it.

It knows nothing of Kubernetes (no kopf, no kubernetes client) and no HTTP library: it
talks to the :class:`~bulkterm.aiapi.base.AiApi` protocol, and reads and writes a
:class:`Progress` record that the operator maps to the CR status and ``bulkterm apply``
prints.
"""

from bulkterm.engine.batching import Intent, Request, make_batches
from bulkterm.engine.decisions import (
    UNKNOWN_CANNOT_BE_CHANGED,
    Action,
    Decision,
    Fault,
    InFlight,
    Limits,
    Memory,
    Observation,
    Source,
    Verdict,
    decide,
)
from bulkterm.engine.engine import Clock, Engine, Sleep, utcnow
from bulkterm.engine.executor import Executor
from bulkterm.engine.indexes import compress, expand
from bulkterm.engine.observation import ObservationMethod, choose_observation, list_cost
from bulkterm.engine.progress import (
    AttemptGroup,
    CapabilitiesRecord,
    Condition,
    ConditionType,
    Failure,
    InFlightEntry,
    InFlightGroup,
    Phase,
    Plan,
    PlanAction,
    PlanEntry,
    Progress,
    Situation,
    UnknownGroup,
    build_conditions,
    with_observed_generation,
)
from bulkterm.engine.reporting import Milestone, Reporter, RunEvent, RunHost
from bulkterm.engine.run import Run
from bulkterm.engine.settings import EngineSettings

__all__ = [
    "UNKNOWN_CANNOT_BE_CHANGED",
    "Action",
    "AttemptGroup",
    "CapabilitiesRecord",
    "Clock",
    "Condition",
    "ConditionType",
    "Decision",
    "Engine",
    "EngineSettings",
    "Executor",
    "Failure",
    "Fault",
    "InFlight",
    "InFlightEntry",
    "InFlightGroup",
    "Intent",
    "Limits",
    "Memory",
    "Milestone",
    "Observation",
    "ObservationMethod",
    "Phase",
    "Plan",
    "PlanAction",
    "PlanEntry",
    "Progress",
    "Reporter",
    "Request",
    "Run",
    "RunEvent",
    "RunHost",
    "Situation",
    "Sleep",
    "Source",
    "UnknownGroup",
    "Verdict",
    "build_conditions",
    "choose_observation",
    "compress",
    "decide",
    "expand",
    "list_cost",
    "make_batches",
    "utcnow",
    "with_observed_generation",
]
