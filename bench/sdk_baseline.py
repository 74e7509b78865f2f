"""The baseline: a careful cleanup script written with SAP's official Python client.

This is what a user who knows the AI API would write with ``ai-api-client-sdk`` (2.6.1), in
the style of SAP's own samples and e2e cleanup: GET each target's status, stop the RUNNING /
PENDING ones (``bulk_modify`` in chunks of 100 when ``/meta`` says ``bulkUpdates``, else one
``modify`` each), poll each until it is STOPPED, then delete (``bulk_modify`` DELETED or one
``delete`` each) and poll until it is gone (404). UNKNOWN items that must be deleted are
deleted directly; DEAD and COMPLETED ones count as stopped. Writes that hit 429/5xx are
retried (the SDK retries GETs itself but not PATCH); per-item refusals are re-observed.

It works in chunks of 100 targets (observe a chunk, act on it at once), so no decision rests on
a status older than one chunk's worth of GETs. The poll schedule is the engine's default (0.5 s,
doubling while nothing moves, at most 10 s). Nothing here knows about the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import requests
from ai_api_client_sdk.ai_api_v2_client import AIAPIV2Client
from ai_api_client_sdk.exception import (
    AIAPINotFoundException,
    AIAPIPreconditionFailedException,
    AIAPIServerException,
)
from ai_api_client_sdk.models.base_models import BasicModifyRequest, BulkModifyErrorResponse
from ai_api_client_sdk.models.status import Status
from ai_api_client_sdk.models.target_status import TargetStatus

T = TypeVar("T")
CHUNK = 100
STOPPABLE = {Status.RUNNING, Status.PENDING}
NOT_RUNNING = {Status.STOPPED, Status.DEAD, Status.COMPLETED}
DELETABLE = {Status.STOPPED, Status.DEAD, Status.UNKNOWN, Status.COMPLETED}
#: SAP's bulk pages: "Only stopped, dead or unknown ... can be deleted" in bulk; a COMPLETED
#: execution is deleted with a single DELETE ("Completed, Dead, Stopped, or Unknown").
BULK_DELETABLE = {Status.STOPPED, Status.DEAD, Status.UNKNOWN}
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Job:
    kind: str  # "deployment" | "execution"
    id: str
    target: TargetStatus  # STOPPED | DELETED


@dataclass
class Outcome:
    done: dict[Job, str] = field(default_factory=dict)
    failed: dict[Job, str] = field(default_factory=dict)
    rounds: int = 0


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _retry(call: Callable[[], T], attempts: int = 5) -> T:
    """Retry 429/5xx and exhausted GET retries with a small backoff (the SDK never retries PATCH)."""
    for attempt in range(attempts):
        try:
            return call()
        except AIAPIServerException as exc:
            if exc.status_code not in RETRYABLE or attempt == attempts - 1:
                raise
        except requests.RequestException:
            if attempt == attempts - 1:
                raise
        time.sleep(min(0.2 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def cleanup(
    key: dict[str, Any], jobs: Sequence[Job], resource_group: str, *, deadline_s: float = 900.0
) -> Outcome:
    url = key["serviceurls"]["AI_API_URL"]
    client = AIAPIV2Client(
        base_url=url + "/v2/lm",
        auth_url=key["url"] + "/oauth/token",
        client_id=key["clientid"],
        client_secret=key["clientsecret"],
        resource_group=resource_group,
    )
    caps = client.meta.get().ai_api.capabilities.bulk_updates
    bulk = {
        "deployment": bool(caps and caps.deployments),
        "execution": bool(caps and caps.executions),
    }
    api = {"deployment": client.deployment, "execution": client.execution}
    result, sent = Outcome(), dict[Job, TargetStatus]()  # sent: asked, effect not yet seen
    open_jobs, interval, deadline = list(jobs), 0.5, time.monotonic() + deadline_s

    def send(kind: str, batch: list[Job], target: TargetStatus, *, single: bool = False) -> None:
        if bulk[kind] and not single:
            for chunk in _chunks(batch):
                reqs = [BasicModifyRequest(j.id, target) for j in chunk]
                reply = _retry(partial(api[kind].bulk_modify, reqs))
                answers = reply.deployments if kind == "deployment" else reply.executions
                refused = {a.id for a in answers if isinstance(a, BulkModifyErrorResponse)}
                sent.update({j: target for j in chunk if j.id not in refused})
            return
        for job in batch:
            try:
                if target is TargetStatus.STOPPED:
                    _retry(partial(api[kind].modify, job.id, target_status=target))
                else:
                    _retry(partial(api[kind].delete, job.id))
                sent[job] = target
            except (AIAPIPreconditionFailedException, AIAPINotFoundException):
                pass  # the status moved underneath: the next round looks again

    while open_jobs and time.monotonic() < deadline:
        result.rounds += 1
        moved, still_open = False, []
        for chunk in _chunks(open_jobs):
            stops: dict[str, list[Job]] = {"deployment": [], "execution": []}
            deletes: dict[str, list[Job]] = {"deployment": [], "execution": []}
            single_deletes: dict[str, list[Job]] = {"deployment": [], "execution": []}
            for job in chunk:
                try:
                    status = _retry(partial(api[job.kind].get, job.id, select="status")).status
                except AIAPINotFoundException:
                    gone = job.target is TargetStatus.DELETED
                    (result.done if gone else result.failed)[job] = (
                        "Deleted" if gone else "NotFound"
                    )
                    moved = True
                    continue
                if job.target is TargetStatus.STOPPED and status in NOT_RUNNING:
                    result.done[job], moved = status.value, True
                    continue
                still_open.append(job)
                if status in STOPPABLE and sent.get(job) is not TargetStatus.STOPPED:
                    stops[job.kind].append(job)
                elif (
                    job.target is TargetStatus.DELETED
                    and status in DELETABLE
                    and sent.get(job) is not TargetStatus.DELETED
                ):
                    (deletes if status in BULK_DELETABLE else single_deletes)[job.kind].append(job)
                # else: STOPPING, UNKNOWN that must be stopped, or a deletion in progress: wait
            for kind in api:
                for batch, target in (
                    (stops[kind], TargetStatus.STOPPED),
                    (deletes[kind], TargetStatus.DELETED),
                ):
                    if batch:
                        send(kind, batch, target)
                        moved = True
                if single_deletes[kind]:
                    send(kind, single_deletes[kind], TargetStatus.DELETED, single=True)
                    moved = True
        open_jobs = still_open
        if open_jobs:
            interval = 0.5 if moved else min(interval * 2, 10.0)
            time.sleep(interval)
    result.failed.update({job: "DeadlineExceeded" for job in open_jobs})
    return result
