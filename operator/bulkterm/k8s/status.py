"""The CR's status: reading it (terminal? resumable?) and writing records to it.

A record (:class:`Progress`) becomes the status with ``observedGeneration`` on top and on each
condition, and is sent as a JSON merge patch through the :class:`StatusThrottle`: progress at
most once per interval and in the background, changes of phase and records announcing sends at
once, waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from bulkterm.engine import (
    ConditionType,
    Progress,
    Situation,
    build_conditions,
    utcnow,
    with_observed_generation,
)
from bulkterm.k8s.throttle import CLOSE_RETRY_DELAYS, StatusThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrRef:
    """Which BulkTermination, and which generation of its spec, is being reconciled."""

    namespace: str
    name: str
    generation: int


class StatusWriteError(RuntimeError):
    """The API server kept refusing the final status write."""


class StatusPatcher(Protocol):
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int | None:
        """Returns the CR's ``metadata.generation`` as the API server answered (None: not
        known)."""
        ...


def _terminal_condition(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") in (ConditionType.COMPLETE, ConditionType.FAILED)
            and condition.get("status") == "True"
        ):
            return condition
    return None


def is_terminal(status: Mapping[str, Any] | None) -> bool:
    """Complete or Failed is True (the daemon's ``when`` filter and the TTL's trigger).

    Read from the raw status dict: kopf evaluates it on every watch event, where parsing the
    whole record into :class:`Progress` would be wasted work."""
    return _terminal_condition(status) is not None


#: Why a later spec change of a finished run is not acted on (the Event's message).
IGNORED = (
    "the spec changed to generation {generation} after the run finished and was ignored: "
    "a BulkTermination runs once; create a new one to run again"
)
#: The same for a change that reached the API server while the run was running (one the CRD
#: could not refuse): the run went on with the spec it started with, and its status (the
#: verdict, the indexes) is about that spec.
IGNORED_DURING_RUN = (
    "the spec changed to generation {generation} while the run was running and was ignored: "
    "the run went on with the spec of generation {ran}, which its status describes; a "
    "BulkTermination runs once; create a new one to run again"
)
#: How each note in a condition's message begins (a later note replaces an earlier one).
_NOTE_START = " (the spec changed to generation"


def ignored_message(generation: int, *, ran: int | None = None) -> str:
    """Why ``generation`` is not acted on: it came after the run finished, or (``ran``: the
    generation the run was started with) while the run was running."""
    if ran is None:
        return IGNORED.format(generation=generation)
    return IGNORED_DURING_RUN.format(generation=generation, ran=ran)


def unacknowledged(status: Mapping[str, Any] | None, generation: int) -> bool:
    """A finished run whose spec changed afterwards (a change the CRD could not refuse, e.g.
    under an older CRD): its ``observedGeneration`` lags behind, and kstatus would call it
    InProgress for ever."""
    if not is_terminal(status) or status is None:
        return False
    observed = status.get("observedGeneration")
    return isinstance(observed, int) and observed != generation


def acknowledgement(
    status: Mapping[str, Any], generation: int, *, ran: int | None = None
) -> dict[str, Any]:
    """The status patch that acknowledges ``generation`` on a finished run: the conditions
    keep their status, reason and transition time (terminal conditions never flip back);
    ``observedGeneration`` moves, and each message says that the change was ignored, and
    when it came (see :func:`ignored_message`)."""
    note = " (" + ignored_message(generation, ran=ran) + ")"
    conditions = []
    for raw in status.get("conditions") or ():
        condition = dict(raw)
        message = str(condition.get("message", "")).split(_NOTE_START)[0]
        condition["message"] = message + note
        condition["observedGeneration"] = generation
        conditions.append(condition)
    return {"observedGeneration": generation, "conditions": conditions}


def finished_at(status: Mapping[str, Any] | None) -> datetime | None:
    """When the run became terminal: the terminal condition's ``lastTransitionTime``."""
    condition = _terminal_condition(status)
    if condition is None:
        return None
    try:
        return datetime.fromisoformat(str(condition["lastTransitionTime"]))
    except (KeyError, TypeError, ValueError):
        return None


def restore(ref: CrRef, status: Mapping[str, Any], total: int) -> Progress:
    """The saved record (resume after a restart), or a fresh one for ``total`` targets."""
    if status.get("conditions"):
        try:
            record = Progress.model_validate(dict(status))
            if record.total == total:
                return record
        except ValidationError:
            log.warning(
                "%s/%s: status unreadable; starting from fresh observations",
                ref.namespace,
                ref.name,
            )
    return Progress(total=total, pending=total, progress=f"0/{total}")


def announces_sends(previous: Progress | None, record: Progress) -> bool:
    """Whether ``record`` holds in-flight actions that ``previous`` did not (a send round).

    Compared target by target (:meth:`Progress.sent`): a group that only shrank (targets
    finished) or was split by its answers announces nothing, and needs no write ahead of the
    throttle."""
    before = previous.sent() if previous is not None else {}
    return any(idx - before.get(key, set()) for key, idx in record.sent().items())


class StatusWriter:
    """Writes the records of one CR to its ``/status``."""

    def __init__(
        self,
        kube: StatusPatcher,
        ref: CrRef,
        current: Mapping[str, Any],
        *,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._kube = kube
        self._ref = ref
        self._clock = clock
        self._written_keys: set[str] = set(current)
        #: The status as the last write left it on the server (empty: nothing written yet, so
        #: the first write sends every key).
        self._landed: dict[str, Any] = {}
        self._throttle = StatusThrottle(self._write, interval)
        #: The newest ``metadata.generation`` the API server's answers to these writes showed.
        #: Above ``ref.generation``: the spec changed while the run was running (a change the
        #: CRD could not refuse); the run goes on with the spec it started with.
        self.newest_generation = ref.generation

    async def offer(self, record: Progress, *, force: bool = False) -> bool:
        """Offer ``record``; returns whether it is on the server (see ``StatusThrottle``).

        Only a forced offer waits for its write: the others are written in the background
        (``StatusThrottle.offer(wait=False)``), so the engine's rounds never wait for the API
        server to store a record that need not land before the run goes on."""
        status = with_observed_generation(record, self._ref.generation).to_status()
        return await self._throttle.offer(self._acknowledged(status), force=force, wait=force)

    def _acknowledged(self, status: dict[str, Any]) -> dict[str, Any]:
        """A terminal ``status`` written after the API server has shown a newer generation
        acknowledges it in the same write, as a change *during* the run: no status ever says
        "finished" for a spec the server has at a newer generation, so nothing later (the
        ``acknowledge`` handler) can take that change for one after the end."""
        if self.newest_generation <= self._ref.generation or not is_terminal(status):
            return status
        ran = self._ref.generation
        return {**status, **acknowledgement(status, self.newest_generation, ran=ran)}

    async def finish(self, record: Progress) -> int | None:
        """The terminal write of ``record`` (forced). Returns the generation of a spec change
        during the run that it acknowledged (see :meth:`_acknowledged`), None if there was
        none. A change that only this write's answer shows still came before the end was on
        the server: one more write acknowledges it."""
        landed = await self.offer(record, force=True)
        written = self._landed.get("observedGeneration")
        if landed and isinstance(written, int) and self.newest_generation > written:
            await self.offer(record, force=True)
        return self.newest_generation if self.newest_generation > self._ref.generation else None

    async def enter(self, record: Progress, situation: Situation) -> Progress:
        """``record`` with the conditions of ``situation``, written at once: every change of
        phase the operator decides (first visit, stall, refusal) goes here."""
        record = record.model_copy(
            update={
                "conditions": build_conditions(
                    record.conditions,
                    situation,
                    now=self._clock(),
                    observed_generation=self._ref.generation,
                )
            }
        )
        await self.offer(record, force=True)
        return record

    def abandon(self) -> None:
        """Write nothing more: another operator has taken the run over and writes its status."""
        self._throttle.gone = True

    @property
    def gone(self) -> bool:
        """The API server answered a write with 404: the BulkTermination was deleted."""
        return self._throttle.gone

    async def close(self, retry_delays: tuple[float, ...] = CLOSE_RETRY_DELAYS) -> bool:
        """Write what is held back and stop writing; False if the last status never landed."""
        return await self._throttle.close(retry_delays)

    async def _write(self, status: dict[str, Any]) -> None:
        # Merge patch: only the keys that changed since the last write landed (a key left out
        # keeps its value, so a large, unchanging one such as ``selection`` is sent once), and
        # a key that disappeared as null, or the old value would stay.
        patch = {k: v for k, v in status.items() if k not in self._landed or self._landed[k] != v}
        for gone in self._written_keys - status.keys():
            patch[gone] = None
        if patch:
            answered = await self._kube.patch_status(self._ref.namespace, self._ref.name, patch)
            if isinstance(answered, int) and answered > self.newest_generation:
                self.newest_generation = answered
        self._written_keys = set(status)
        self._landed = dict(status)
