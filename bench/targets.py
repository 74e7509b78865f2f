"""What every variant of the benchmark shares: the targets and how the engine is driven.

Kept free of the simulator and of SAP's SDK so that the scale worker (a child process whose
memory is measured) imports only what the engine itself needs.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.engine import Engine, EngineSettings, Progress
from bulkterm.spec import BulkTerminationSpec

RESOURCE_GROUP = "default"
#: Share of targets that must be DELETED (the rest: STOPPED).
DELETED_SHARE = 0.6
#: Wall-clock bound of every variant, so a regression fails instead of hanging.
DEADLINE_SECONDS = 600
#: The target status of each kind in the compact form (``spec.deployments``/``executions``).
WANTED = {Kind.DEPLOYMENT: TargetStatus.DELETED, Kind.EXECUTION: TargetStatus.STOPPED}


def make_spec(n: int, executions_share: float, seed: int) -> BulkTerminationSpec:
    """``n`` targets, deterministic in (n, share, seed): kinds, ids and target statuses."""
    rng = random.Random(f"bench:{seed}")
    targets = []
    for i in range(n):
        kind = Kind.EXECUTION if rng.random() < executions_share else Kind.DEPLOYMENT
        target = TargetStatus.DELETED if rng.random() < DELETED_SHARE else TargetStatus.STOPPED
        prefix = "exe" if kind is Kind.EXECUTION else "dep"
        targets.append(
            {"kind": kind.value, "id": f"{prefix}-{seed}-{i:06d}", "targetStatus": target}
        )
    return BulkTerminationSpec.model_validate(
        {
            "connection": {"resourceGroup": RESOURCE_GROUP},
            "targets": targets,
            "activeDeadlineSeconds": DEADLINE_SECONDS,
        }
    )


def target_ids(targets: int, executions_share: float, seed: int) -> list[tuple[Kind, str]]:
    """The kinds and ids of :func:`make_spec` (same seed, same draws), in its order."""
    out: list[tuple[Kind, str]] = []
    rng = random.Random(f"bench:{seed}")
    for i in range(targets):
        kind = Kind.EXECUTION if rng.random() < executions_share else Kind.DEPLOYMENT
        rng.random()  # make_spec's draw of the target status
        prefix = "exe" if kind is Kind.EXECUTION else "dep"
        out.append((kind, f"{prefix}-{seed}-{i:06d}"))
    return out


async def engine_run(
    spec: BulkTerminationSpec, key: dict[str, Any]
) -> tuple[Progress, Counter[str]]:
    """The engine with its default settings, as ``bulkterm apply`` runs it."""
    async with AiApiClient.from_service_key(key, RESOURCE_GROUP) as api:
        engine = Engine(spec, api, settings=EngineSettings())
        progress = await engine.run()
        return progress, Counter(api.calls)


def compact_json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
