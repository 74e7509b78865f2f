"""Plausible content for seeded items: ids, configurations and a mix of statuses.

The mix cycles through a fixed pattern so that any count of 7 or more contains every status
the kind can have, and the same seed always yields the same ids and ages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bulkterm.aiapi.models import Kind, Status


@dataclass(frozen=True)
class Configuration:
    """A configuration an item runs with; the simulator does not model configurations further."""

    id: str
    name: str
    scenario_id: str
    executable_id: str


CONFIGURATIONS: dict[Kind, tuple[Configuration, ...]] = {
    Kind.DEPLOYMENT: (
        Configuration(
            "sim-config-serve-small", "serve small", "sim-scenario-serving", "sim-executable-serve"
        ),
        Configuration(
            "sim-config-serve-large", "serve large", "sim-scenario-serving", "sim-executable-serve"
        ),
        Configuration("sim-config-chat", "chat", "sim-scenario-chat", "sim-executable-chat"),
    ),
    Kind.EXECUTION: (
        Configuration(
            "sim-config-train-nightly",
            "train nightly",
            "sim-scenario-training",
            "sim-executable-train",
        ),
        Configuration(
            "sim-config-train-weekly",
            "train weekly",
            "sim-scenario-training",
            "sim-executable-train",
        ),
        Configuration(
            "sim-config-evaluate", "evaluate", "sim-scenario-evaluation", "sim-executable-evaluate"
        ),
    ),
}

#: Status pattern of seeded items (deployments never complete: no COMPLETED there).
STATUS_MIX: dict[Kind, tuple[Status, ...]] = {
    Kind.DEPLOYMENT: (
        Status.RUNNING,
        Status.STOPPED,
        Status.PENDING,
        Status.DEAD,
        Status.UNKNOWN,
        Status.RUNNING,
        Status.STOPPING,
        Status.RUNNING,
        Status.STOPPED,
        Status.DEAD,
    ),
    Kind.EXECUTION: (
        Status.RUNNING,
        Status.COMPLETED,
        Status.PENDING,
        Status.DEAD,
        Status.UNKNOWN,
        Status.STOPPED,
        Status.STOPPING,
        Status.COMPLETED,
        Status.RUNNING,
        Status.COMPLETED,
    ),
}

_ID_PREFIX = {Kind.DEPLOYMENT: "d", Kind.EXECUTION: "e"}


def configuration_for(kind: Kind, configuration_id: str) -> Configuration:
    """The known configuration with this id, or an ad-hoc one for ids the catalogue lacks."""
    for configuration in CONFIGURATIONS[kind]:
        if configuration.id == configuration_id:
            return configuration
    return Configuration(
        configuration_id,
        f"configuration {configuration_id}",
        "sim-scenario-custom",
        "sim-executable-custom",
    )


def new_id(kind: Kind, rng: random.Random) -> str:
    """16 hex characters starting with ``d``/``e``, like AI Core's ids."""
    return f"{_ID_PREFIX[kind]}{rng.getrandbits(60):015x}"


def status_at(kind: Kind, index: int) -> Status:
    mix = STATUS_MIX[kind]
    return mix[index % len(mix)]
